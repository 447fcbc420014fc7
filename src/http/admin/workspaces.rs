//! Handlers of `/admin/api/workspaces`, with their OpenAPI annotations.

use actix_web::HttpResponse;

use super::{AdminActor, Body, Gw, Id, created, no_content, ok};
use crate::admin::workspaces;
use crate::http::openapi::{BadRequest, Conflict, NotFound, Unauthorized};

/// Every workspace.
#[utoipa::path(
    get,
    path = "/admin/api/workspaces",
    tag = "workspaces",
    responses(
        (status = 200, description = "The workspaces.", body = Vec<crate::admin::views::WorkspaceView>),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_workspaces(gw: Gw) -> HttpResponse {
    ok(workspaces::list(&gw).await)
}

/// Creates a workspace.
#[utoipa::path(
    post,
    path = "/admin/api/workspaces",
    tag = "workspaces",
    request_body = workspaces::CreateWorkspace,
    responses(
        (status = 201, description = "The new workspace.", body = crate::admin::views::WorkspaceView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_workspace(
    gw: Gw,
    a: AdminActor,
    body: Body<workspaces::CreateWorkspace>,
) -> HttpResponse {
    created(workspaces::create(&gw, &a.0, body.0).await)
}

/// One workspace.
#[utoipa::path(
    get,
    path = "/admin/api/workspaces/{id}",
    tag = "workspaces",
    params(
        ("id" = i64, Path, description = "The workspace's id."),
    ),
    responses(
        (status = 200, description = "The workspace.", body = crate::admin::views::WorkspaceView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_workspace(gw: Gw, id: Id) -> HttpResponse {
    ok(workspaces::get(&gw, *id).await)
}

/// Deletes an empty workspace with the grants on it.
#[utoipa::path(
    delete,
    path = "/admin/api/workspaces/{id}",
    tag = "workspaces",
    params(
        ("id" = i64, Path, description = "The workspace's id."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn delete_workspace(gw: Gw, a: AdminActor, id: Id) -> HttpResponse {
    no_content(workspaces::delete(&gw, &a.0, *id).await)
}
