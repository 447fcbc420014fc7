//! Handlers of `/admin/api/users`, including `revoke-sessions`, with their OpenAPI annotations.

use actix_web::{HttpResponse, web};

use super::{AdminActor, Body, Gw, Id, created, no_content, ok};
use crate::admin::users;
use crate::http::openapi::{BadRequest, Conflict, NotFound, Unauthorized};

/// Users, optionally filtered.
#[utoipa::path(
    get,
    path = "/admin/api/users",
    tag = "users",
    params(
        users::UserQuery,
    ),
    responses(
        (status = 200, description = "The users.", body = Vec<crate::admin::views::UserView>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_users(gw: Gw, q: web::Query<users::UserQuery>) -> HttpResponse {
    ok(users::list(&gw, q.into_inner()).await)
}

/// Creates a user.
#[utoipa::path(
    post,
    path = "/admin/api/users",
    tag = "users",
    request_body = users::CreateUser,
    responses(
        (status = 201, description = "The new user.", body = crate::admin::views::UserView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_user(
    gw: Gw,
    a: AdminActor,
    body: Body<users::CreateUser>,
) -> HttpResponse {
    created(users::create(&gw, &a.0, body.0).await)
}

/// One user.
#[utoipa::path(
    get,
    path = "/admin/api/users/{id}",
    tag = "users",
    params(
        ("id" = i64, Path, description = "The user's id."),
    ),
    responses(
        (status = 200, description = "The user.", body = crate::admin::views::UserView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_user(gw: Gw, id: Id) -> HttpResponse {
    ok(users::get(&gw, *id).await)
}

/// Changes a user: teams, account type, attributes, status or names.
#[utoipa::path(
    patch,
    path = "/admin/api/users/{id}",
    tag = "users",
    params(
        ("id" = i64, Path, description = "The user's id."),
    ),
    request_body = users::PatchUser,
    responses(
        (status = 200, description = "The user after the change.", body = crate::admin::views::UserView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn patch_user(
    gw: Gw,
    a: AdminActor,
    id: Id,
    body: Body<users::PatchUser>,
) -> HttpResponse {
    ok(users::patch(&gw, &a.0, *id, body.0).await)
}

/// Deletes a user.
#[utoipa::path(
    delete,
    path = "/admin/api/users/{id}",
    tag = "users",
    params(
        ("id" = i64, Path, description = "The user's id."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn delete_user(gw: Gw, a: AdminActor, id: Id) -> HttpResponse {
    no_content(users::delete(&gw, &a.0, *id).await)
}

/// Revokes every session of a user at once.
#[utoipa::path(
    post,
    path = "/admin/api/users/{id}/revoke-sessions",
    tag = "users",
    params(
        ("id" = i64, Path, description = "The user's id."),
    ),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn revoke_sessions(gw: Gw, a: AdminActor, id: Id) -> HttpResponse {
    no_content(users::revoke_sessions(&gw, &a.0, *id).await)
}
