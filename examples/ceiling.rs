//! The ceiling of the load benchmark (`bench/run.sh`): a minimal actix-web
//! server that answers every path with a fixed page. Given the page a
//! template workbook renders (`--body FILE`, captured by the benchmark from
//! the gateway), it shows what actix-web alone does on this machine, so the
//! gateway's rows can be read as a ratio to it.
//!
//!     cargo run --release --example ceiling -- 127.0.0.1:9100 [--body page.html]

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;

/// Used without `--body`: about the size of the rendered sales workbook.
const FALLBACK: &str = concat!(
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Ceiling</title></head><body>",
    "<p>The bench passes the page the gateway renders with --body; this is a stand-in.</p>",
    "</body></html>\n"
);

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut bind = "127.0.0.1:9100".to_owned();
    let mut body = FALLBACK.as_bytes().to_vec();
    while let Some(arg) = args.next() {
        if arg == "--body" {
            let path = args.next().context("--body needs a file")?;
            body = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
        } else {
            bind = arg;
        }
    }
    let body = web::Bytes::from(body);
    HttpServer::new(move || {
        let body = body.clone();
        App::new().default_service(web::to(move || {
            let body = body.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body(body)
            }
        }))
    })
    .bind(&bind)
    .with_context(|| format!("binding {bind}"))?
    .run()
    .await?;
    Ok(())
}
