//! The fixed-page servers of the load benchmark (`bench/run.sh`): a minimal
//! actix-web server that answers every path with one page, nothing else (no
//! logs, no assertion check).
//!
//! - With `--body FILE` (the page a template workbook renders, captured by
//!   the benchmark from the gateway) it is the ceiling: what actix-web alone
//!   does on this machine, so the gateway's rows read as a ratio to it.
//! - Without, it is the upstream behind upstream workbooks and nginx,
//!   answering a ~2 KB HTML page as an analytics server would.
//!
//!     cargo run --release --example ceiling -- 127.0.0.1:9100 [--body page.html]

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;

/// The upstream's page: about 2 KB, like the template workbook the gateway
/// renders.
fn upstream_page() -> String {
    let mut rows = String::new();
    for i in 0..24 {
        rows.push_str(&format!(
            "<tr><td>2026-{:02}</td><td>acme</td><td>North</td><td class=\"num\">{}</td></tr>\n",
            i % 12 + 1,
            1000 + i * 37
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Upstream</title></head>\n\
         <body>\n<h1>Upstream workbook</h1>\n<table>\n{rows}</table>\n</body>\n</html>\n"
    )
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut bind = "127.0.0.1:9100".to_owned();
    let mut body = upstream_page().into_bytes();
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
