//! Handlers of the read-only views of the admin API: the audit log, explain, the token inspector and the OpenAPI document, with their OpenAPI annotations.

use actix_web::{HttpResponse, web};

use super::{Body, Gw, ok};
use crate::admin::{self, explain};
use crate::http::openapi::{BadRequest, Unauthorized};
use crate::http::problem;

/// The audit log, newest first, optionally filtered.
#[utoipa::path(
    get,
    path = "/admin/api/audit",
    tag = "audit",
    params(
        admin::audit::AuditQuery,
    ),
    responses(
        (status = 200, description = "The entries, newest first.", body = Vec<crate::admin::views::AuditView>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_audit(gw: Gw, q: web::Query<admin::audit::AuditQuery>) -> HttpResponse {
    ok(admin::audit::list(&gw, q.into_inner()).await)
}

/// The decision a handshake would make now for a stored user, and why.
#[utoipa::path(
    get,
    path = "/admin/api/explain",
    tag = "explain",
    params(
        explain::ExplainQuery,
    ),
    responses(
        (status = 200, description = "The decision and its reasons.", body = explain::Explanation),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_explain(gw: Gw, q: web::Query<explain::ExplainQuery>) -> HttpResponse {
    ok(explain::explain(&gw, q.into_inner()))
}

/// Checks every rule against an embed token without consuming its jti or changing anything.
#[utoipa::path(
    post,
    path = "/admin/api/tokens/inspect",
    tag = "tokens",
    request_body = admin::inspect::InspectRequest,
    responses(
        (status = 200, description = "Every check and its outcome.", body = admin::inspect::InspectResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn inspect_token(
    gw: Gw,
    body: Body<admin::inspect::InspectRequest>,
) -> HttpResponse {
    ok(admin::inspect::inspect(&gw, body.0).await)
}

/// This document: the admin API in OpenAPI 3, public (no token).
#[utoipa::path(
    get,
    path = "/admin/api/openapi.json",
    tag = "openapi",
    responses((status = 200, description = "The OpenAPI document.", body = Object)),
)]
pub(super) async fn openapi_json() -> HttpResponse {
    match crate::http::openapi::document() {
        Some(json) => HttpResponse::Ok()
            .content_type(actix_web::http::header::ContentType::json())
            .body(json),
        None => problem::json(&crate::error::Problem::internal()),
    }
}
