//! Operations endpoints (SPEC §10) and the gateway's public keys.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::problem;
use crate::error::Problem;
use crate::gateway::Gateway;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database is reachable.
pub async fn readyz(gw: web::Data<Gateway>) -> HttpResponse {
    match gw.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database unreachable");
            problem::json(&Problem::unavailable())
        }
    }
}

pub async fn metrics(gw: web::Data<Gateway>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(gw.metrics.render(gw.now(), gw.store.query_count()))
}

/// `GET /.well-known/jwks.json`: keys that verify identity assertions.
pub async fn jwks(gw: web::Data<Gateway>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .json(gw.keys.jwks())
}
