//! A small, fast upstream for the load benchmark (`bench/run.sh`): answers
//! every path with the same ~2 KB HTML page, as an analytics server behind
//! an upstream workbook would. Nothing else: no assertion check, no logs.
//!
//!     cargo run --release --example upstream -- 127.0.0.1:9000

use actix_web::{App, HttpResponse, HttpServer, web};

/// About 2 KB, like the template workbook the gateway renders.
fn page() -> String {
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
async fn main() -> std::io::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let body = web::Bytes::from(page());
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
    .bind(bind)?
    .run()
    .await
}
