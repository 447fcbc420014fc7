//! Handlers of `/admin/api/clients`: embed clients, rotation and revocation, with their OpenAPI annotations.

use actix_web::{HttpResponse, web};

use super::{AdminActor, Body, Gw, Name, created, no_content, ok, optional_body};
use crate::admin::clients;
use crate::http::openapi::{BadRequest, Conflict, NotFound, Unauthorized};
use crate::http::problem;

/// Every embed client, revoked ones included; never secrets.
#[utoipa::path(
    get,
    path = "/admin/api/clients",
    tag = "clients",
    responses(
        (status = 200, description = "The embed clients.", body = Vec<crate::admin::views::ClientView>),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_clients(gw: Gw) -> HttpResponse {
    ok(clients::list(&gw).await)
}

/// Registers an embed client; an HMAC client's secret is shown only here.
#[utoipa::path(
    post,
    path = "/admin/api/clients",
    tag = "clients",
    request_body = clients::CreateClient,
    responses(
        (status = 201, description = "The new client (with `secret` for HMAC clients).", body = crate::admin::views::ClientView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_client(
    gw: Gw,
    a: AdminActor,
    body: Body<clients::CreateClient>,
) -> HttpResponse {
    created(clients::create(&gw, &a.0, body.0).await)
}

/// One embed client.
#[utoipa::path(
    get,
    path = "/admin/api/clients/{client_id}",
    tag = "clients",
    params(
        ("client_id" = String, Path, description = "The embed client's id."),
    ),
    responses(
        (status = 200, description = "The client.", body = crate::admin::views::ClientView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_client(gw: Gw, id: Name) -> HttpResponse {
    ok(clients::get(&gw, &id).await)
}

/// Rotates an HMAC client's secret; both secrets verify during the grace period.
#[utoipa::path(
    post,
    path = "/admin/api/clients/{client_id}/rotate",
    tag = "clients",
    params(
        ("client_id" = String, Path, description = "The embed client's id."),
    ),
    request_body(
        content = ref("#/components/schemas/Rotate"),
        description = "Optional: an empty body rotates with the default grace period."
    ),
    responses(
        (status = 200, description = "The client with its new `secret` and `previous_valid_until`.", body = crate::admin::views::ClientView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn rotate_client(
    gw: Gw,
    a: AdminActor,
    id: Name,
    body: web::Bytes,
) -> HttpResponse {
    match optional_body(&body) {
        Ok(input) => ok(clients::rotate(&gw, &a.0, &id, input).await),
        Err(p) => problem::json(&p),
    }
}

/// Revokes an embed client: its tokens and sessions stop working at once.
#[utoipa::path(
    delete,
    path = "/admin/api/clients/{client_id}",
    tag = "clients",
    params(
        ("client_id" = String, Path, description = "The embed client's id."),
    ),
    responses(
        (status = 204, description = "Revoked; the client stays in the list with status `revoked`."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn revoke_client(gw: Gw, a: AdminActor, id: Name) -> HttpResponse {
    no_content(clients::revoke(&gw, &a.0, &id).await)
}
