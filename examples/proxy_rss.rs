//! Memory use of the upstream proxy: does a 100 MiB download and a 100 MiB
//! upload through the gateway stream, or does something hold them whole?
//!
//! Starts a fake upstream and the gateway in this process (as the test
//! harness does), moves the bytes, and prints the process's peak resident
//! set size (`VmHWM`) before and after. Linux only (reads /proc/self/status).
//!
//!     cargo run --release --example proxy_rss

use std::sync::Arc;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use anyhow::{Context, bail};
use embedgate::app::Application;
use embedgate::clock::{Clock, SystemClock};
use embedgate::config::{Config, DatabaseUrl};
use embedgate::sign::{SignRequest, sign_url};
use embedgate::token::SigningAlgorithm;
use futures_util::StreamExt;
use serde_json::json;

const MIB: u64 = 1024 * 1024;
const TOTAL_MIB: u64 = 100;
static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// A stream of `mib` MiB in 64 KiB chunks of one static buffer.
fn chunks(mib: u64) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::iter((0..mib * 16).map(|_| Ok(Bytes::from_static(&CHUNK))))
}

#[path = "support/proc_status.rs"]
mod proc_status;

/// Peak and current resident set size, from /proc/self/status.
fn rss() -> String {
    let field = proc_status::field;
    format!(
        "VmHWM (peak) {:>10}   VmRSS {:>10}",
        field("VmHWM:"),
        field("VmRSS:")
    )
}

/// The fake upstream: `/app/big` streams 100 MiB, `/app/sink` counts and
/// drops what it is sent.
async fn upstream() -> anyhow::Result<u16> {
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/app/big",
                web::get().to(|| async { HttpResponse::Ok().streaming(chunks(TOTAL_MIB)) }),
            )
            .route(
                "/app/sink",
                web::post().to(|mut body: web::Payload| async move {
                    let mut n: u64 = 0;
                    while let Some(Ok(chunk)) = body.next().await {
                        n += chunk.len() as u64;
                    }
                    HttpResponse::Ok().body(n.to_string())
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")?;
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    Ok(port)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let up_port = upstream().await?;

    // The gateway, configured like tests/api/helpers.rs::test_config.
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".into();
    config.server.workers = 2;
    config.database.url = DatabaseUrl(format!("sqlite://{}", dir.path().join("eg.db").display()));
    config.keys.dir = dir.path().join("keys");
    config.content.templates_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into();
    config.content.data_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data").into();
    config.content.max_request_body_bytes = 2 * TOTAL_MIB * MIB;
    let clock = Arc::new(SystemClock);
    let app = Application::build(config, clock.clone()).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let gateway = app.gateway();
    tokio::spawn(app.run_until_stopped());
    let admin = embedgate::commands::create_admin_token(
        &gateway.store,
        "rss",
        clock.now().timestamp_millis(),
    )
    .await?;

    // A team, an upstream workbook it may explore, an embed client.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut secret = String::new();
    for (path, body) in [
        ("/teams", json!({"name": "bench"})),
        (
            "/workbooks",
            json!({"id": "big", "name": "Big",
                   "source": {"type": "upstream", "url": format!("http://127.0.0.1:{up_port}/app")}}),
        ),
        (
            "/grants",
            json!({"team": "bench", "workbook": "big", "level": "explore"}),
        ),
        (
            "/clients",
            json!({"client_id": "bench-host", "name": "Bench"}),
        ),
    ] {
        let res = http
            .post(format!("{base}/admin/api{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await?;
        if res.status() != 201 {
            bail!("POST {path}: {} {}", res.status(), res.text().await?);
        }
        if path == "/clients" {
            let client: serde_json::Value = res.json().await?;
            secret = client["secret"]
                .as_str()
                .context("no client secret")?
                .to_owned();
        }
    }

    // The handshake: a signed URL gives a session cookie.
    let url = sign_url(&SignRequest {
        client_id: "bench-host".into(),
        secret,
        algorithm: SigningAlgorithm::HS256,
        email: "bench@example.com".into(),
        workbook: "big".into(),
        teams: Some(vec!["bench".into()]),
        account_type: Some("Explorer".into()),
        attributes: Default::default(),
        first_name: None,
        last_name: None,
        ttl_secs: 300,
        tag: None,
        base_url: base.clone(),
        now: clock.unix(),
    })?;
    let res = http.get(&url).send().await?;
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("the handshake set no cookie")?
        .to_owned();

    println!("before            {}", rss());

    // 100 MiB down, counted chunk by chunk.
    let res = http
        .get(format!("{base}/embed/workbooks/big/big"))
        .header("Cookie", &cookie)
        .send()
        .await?;
    let mut down: u64 = 0;
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        down += chunk?.len() as u64;
    }
    println!("after download    {}   ({down} bytes)", rss());

    // 100 MiB up, streamed from one static chunk; the upstream counts it.
    let res = http
        .post(format!("{base}/embed/workbooks/big/sink"))
        .header("Cookie", &cookie)
        .body(reqwest::Body::wrap_stream(chunks(TOTAL_MIB)))
        .send()
        .await?;
    let up: u64 = res
        .text()
        .await?
        .trim()
        .parse()
        .context("the upload answer")?;
    println!("after upload      {}   ({up} bytes)", rss());

    if down != TOTAL_MIB * MIB || up != TOTAL_MIB * MIB {
        bail!("bytes lost: down {down}, up {up}");
    }
    Ok(())
}
