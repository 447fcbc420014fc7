//! HTTP wiring: routes, middleware and response shapes. Handlers here
//! translate between HTTP and the actix-free modules; they hold no rules of
//! their own.

pub mod admin;
pub mod client_ip;
mod console;
mod demo;
pub mod embed;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod proxy;
pub mod request_id;
pub mod telemetry;

use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web};

use crate::error::Problem;

async fn not_found() -> HttpResponse {
    problem::json(&Problem::not_found("There is nothing at this address."))
}

/// Every route of the gateway. `demo` adds the demo host page.
pub fn routes(demo: bool) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        cfg.route("/healthz", web::get().to(ops::healthz))
            .route("/readyz", web::get().to(ops::readyz))
            .route("/metrics", web::get().to(ops::metrics))
            .route("/.well-known/jwks.json", web::get().to(ops::jwks))
            .service(
                web::scope("/embed")
                    .wrap(
                        DefaultHeaders::new()
                            .add(("Cache-Control", "no-store"))
                            .add(("Referrer-Policy", "no-referrer")),
                    )
                    .service(web::scope("/workbooks").default_service(web::to(embed::workbook)))
                    .default_service(web::to(embed::not_found)),
            )
            .configure(admin::configure)
            .configure(console::configure);
        if demo {
            cfg.configure(demo::configure);
        }
        cfg.default_service(web::to(not_found));
    }
}

/// The request's `Cookie` header values as text. Checked as UTF-8 in one
/// pass rather than byte by byte as visible ASCII (`HeaderValue::to_str`,
/// 3 % of a session request's instructions for its one long cookie): what
/// matters of them, the session cookie's value, is Base64 that its codec
/// decodes strictly.
pub(crate) fn cookie_headers(req: &actix_web::HttpRequest) -> impl Iterator<Item = &str> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
}
