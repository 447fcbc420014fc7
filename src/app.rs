//! [`Application`]: builds the gateway from a configuration and binds it.
//! Production (`serve`, `demo`) and the tests build it the same way; tests
//! bind port 0 and read the real port back.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
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
        let server = match tls_config(&config)? {
            Some(tls) => server.listen_rustls_0_23(listener, tls)?.run(),
            None => server.listen(listener)?.run(),
        };
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

/// The rustls configuration when `tls_cert` and `tls_key` are set.
fn tls_config(config: &Config) -> anyhow::Result<Option<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    if config.server.tls_cert.is_empty() {
        return Ok(None);
    }
    let certs = CertificateDer::pem_file_iter(&config.server.tls_cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificate chain {}", config.server.tls_cert))?;
    let key = PrivateKeyDer::from_pem_file(&config.server.tls_key)
        .with_context(|| format!("reading the private key {}", config.server.tls_key))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    Ok(Some(tls))
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

/// Runs [`Gateway::maintain`] every minute.
fn start_maintenance(gw: &Arc<Gateway>) {
    let gw = Arc::clone(gw);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            gw.maintain().await;
        }
    });
}
