//! `GET /demo/`: the demo host page (only in `embedgate demo`).

use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::value::Serde;
use serde::Deserialize;

use super::problem;
use crate::error::Problem;
use crate::gateway::Gateway;

#[derive(Debug, Deserialize)]
struct Choice {
    user: Option<String>,
    workbook: Option<String>,
    tag: Option<String>,
}

async fn host_page(
    req: HttpRequest,
    gw: web::Data<Gateway>,
    q: web::Query<Choice>,
) -> HttpResponse {
    let Some(demo) = &gw.demo else {
        return problem::negotiated(&req, &gw, &Problem::not_found("The demo is not running."));
    };
    let page = crate::demo::host_page(
        &gw,
        demo,
        q.user.as_deref(),
        q.workbook.as_deref(),
        q.tag.as_deref(),
    )
    .and_then(|page| {
        gw.content
            .render_page("demo/host.html", minijinja::Value::from(Serde(&page)))
    });
    match page {
        Ok(html) => HttpResponse::Ok()
            .content_type(ContentType::html())
            .insert_header(("Cache-Control", "no-store"))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "rendering the demo page failed");
            problem::negotiated(&req, &gw, &Problem::internal())
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/demo/", web::get().to(host_page))
        .route(
            "/demo",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/demo/"))
                    .finish()
            }),
        )
        .route(
            "/",
            web::get().to(|| async {
                HttpResponse::Found()
                    .insert_header(("Location", "/demo/"))
                    .finish()
            }),
        );
}
