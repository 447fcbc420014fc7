//! Operations endpoints (SPEC §10) and the gateway's public keys.

use std::time::Duration;

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

/// How long `readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The database is reachable (answered within two seconds).
pub async fn readyz(gw: web::Data<Gateway>) -> HttpResponse {
    match tokio::time::timeout(READY_TIMEOUT, gw.store.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: database unreachable");
            problem::json(&Problem::unavailable())
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer in time");
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
