//! [`Application`]: builds the gateway from a configuration and binds it.
//! Production (`serve`, `demo`) and the tests build it the same way; tests
//! bind port 0 and read the real port back.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::http::{self, request_id, telemetry::RootSpan};

pub struct Application {
    port: u16,
    server: Server,
    gateway: Arc<Gateway>,
}

impl Application {
    /// Builds the gateway and binds `server.bind`.
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<Application> {
        let gateway = Gateway::build(config, clock).await?;
        Application::serve(gateway)
    }

    /// Binds an already built gateway.
    pub fn serve(gateway: Gateway) -> anyhow::Result<Application> {
        let config = gateway.config.clone();
        let listener = TcpListener::bind(config.bind_addr())
            .with_context(|| format!("binding {}", config.server.bind))?;
        let port = listener.local_addr()?.port();
        warn_about_insecure_context(&config);
        let gateway = Arc::new(gateway);
        start_maintenance(&gateway);
        let data = web::Data::from(Arc::clone(&gateway));
        let demo = gateway.demo.is_some();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
                .wrap(TracingLogger::<RootSpan>::new())
                .wrap(from_fn(request_id::middleware))
                .configure(http::routes(demo))
        })
        .shutdown_timeout(config.server.shutdown_timeout_secs)
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(5));
        if config.server.workers > 0 {
            server = server.workers(config.server.workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Application {
            port,
            server,
            gateway,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn gateway(&self) -> Arc<Gateway> {
        Arc::clone(&self.gateway)
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM drains in-flight requests first).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.gateway.recorder.flush().await;
        result
    }
}

/// Browsers only keep `Secure` cookies on https:// or loopback http://.
fn warn_about_insecure_context(config: &Config) {
    let Ok(url) = url::Url::parse(&config.server.public_url) else {
        return;
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() == "http" && !loopback {
        tracing::warn!(
            public_url = %config.server.public_url,
            "public_url is plain http:// on a non-loopback host: browsers will refuse the Secure session cookie; serve HTTPS (tls_cert/tls_key) or put a TLS proxy in front"
        );
    }
}

/// Purges expired `jti`s every minute and old audit entries every hour.
fn start_maintenance(gw: &Arc<Gateway>) {
    let gw = Arc::clone(gw);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        let mut minutes = 0u64;
        loop {
            tick.tick().await;
            if let Err(e) = gw.store.purge_jtis(gw.now()).await {
                tracing::warn!(error = %e, "purging used jtis failed");
            }
            let days = i64::from(gw.config.audit.retention_days);
            if minutes % 60 == 0 && days > 0 {
                let before = gw.now_millis() - days * 86_400_000;
                match gw.store.prune_audit(before).await {
                    Ok(n) if n > 0 => tracing::info!(pruned = n, "old audit entries pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
                }
            }
            minutes += 1;
        }
    });
}
