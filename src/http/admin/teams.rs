//! Handlers of `/admin/api/teams`, with their OpenAPI annotations.

use actix_web::HttpResponse;

use super::{AdminActor, Body, Gw, Id, created, no_content, ok};
use crate::admin::teams;
use crate::http::openapi::{BadRequest, Conflict, NotFound, Unauthorized};

/// Every team.
#[utoipa::path(
    get,
    path = "/admin/api/teams",
    tag = "teams",
    responses(
        (status = 200, description = "The teams.", body = Vec<crate::admin::views::TeamView>),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_teams(gw: Gw) -> HttpResponse {
    ok(teams::list(&gw).await)
}

/// Creates a team.
#[utoipa::path(
    post,
    path = "/admin/api/teams",
    tag = "teams",
    request_body = teams::CreateTeam,
    responses(
        (status = 201, description = "The new team.", body = crate::admin::views::TeamView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_team(
    gw: Gw,
    a: AdminActor,
    body: Body<teams::CreateTeam>,
) -> HttpResponse {
    created(teams::create(&gw, &a.0, body.0).await)
}

/// One team.
#[utoipa::path(
    get,
    path = "/admin/api/teams/{id}",
    tag = "teams",
    params(
        ("id" = i64, Path, description = "The team's id."),
    ),
    responses(
        (status = 200, description = "The team.", body = crate::admin::views::TeamView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_team(gw: Gw, id: Id) -> HttpResponse {
    ok(teams::get(&gw, *id).await)
}

/// Changes a team.
#[utoipa::path(
    patch,
    path = "/admin/api/teams/{id}",
    tag = "teams",
    params(
        ("id" = i64, Path, description = "The team's id."),
    ),
    request_body = teams::PatchTeam,
    responses(
        (status = 200, description = "The team after the change.", body = crate::admin::views::TeamView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn patch_team(
    gw: Gw,
    a: AdminActor,
    id: Id,
    body: Body<teams::PatchTeam>,
) -> HttpResponse {
    ok(teams::patch(&gw, &a.0, *id, body.0).await)
}

/// Deletes a team with its memberships and grants.
#[utoipa::path(
    delete,
    path = "/admin/api/teams/{id}",
    tag = "teams",
    params(
        ("id" = i64, Path, description = "The team's id."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn delete_team(gw: Gw, a: AdminActor, id: Id) -> HttpResponse {
    no_content(teams::delete(&gw, &a.0, *id).await)
}
