//! Handlers of `/admin/api/grants`, with their OpenAPI annotations.

use actix_web::{HttpResponse, web};

use super::{AdminActor, Body, Gw, Id, created, no_content, ok};
use crate::admin::grants;
use crate::http::openapi::{BadRequest, Conflict, NotFound, Unauthorized};

/// Grants, optionally filtered.
#[utoipa::path(
    get,
    path = "/admin/api/grants",
    tag = "grants",
    params(
        grants::GrantQuery,
    ),
    responses(
        (status = 200, description = "The grants.", body = Vec<crate::admin::views::GrantView>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_grants(gw: Gw, q: web::Query<grants::GrantQuery>) -> HttpResponse {
    ok(grants::list(&gw, q.into_inner()).await)
}

/// Grants a team a level on a workbook or a workspace.
#[utoipa::path(
    post,
    path = "/admin/api/grants",
    tag = "grants",
    request_body = grants::CreateGrant,
    responses(
        (status = 201, description = "The new grant.", body = crate::admin::views::GrantView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_grant(
    gw: Gw,
    a: AdminActor,
    body: Body<grants::CreateGrant>,
) -> HttpResponse {
    created(grants::create(&gw, &a.0, body.0).await)
}

/// One grant.
#[utoipa::path(
    get,
    path = "/admin/api/grants/{id}",
    tag = "grants",
    params(
        ("id" = i64, Path, description = "The grant's id."),
    ),
    responses(
        (status = 200, description = "The grant.", body = crate::admin::views::GrantView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_grant(gw: Gw, id: Id) -> HttpResponse {
    ok(grants::get(&gw, *id).await)
}

/// Revokes a grant.
#[utoipa::path(
    delete,
    path = "/admin/api/grants/{id}",
    tag = "grants",
    params(
        ("id" = i64, Path, description = "The grant's id."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn delete_grant(gw: Gw, a: AdminActor, id: Id) -> HttpResponse {
    no_content(grants::delete(&gw, &a.0, *id).await)
}
