//! Handlers of `/admin/api/workbooks` and their tags, with their OpenAPI annotations.

use actix_web::{HttpResponse, web};

use super::{AdminActor, Body, Gw, Name, created, no_content, ok};
use crate::admin::workbooks;
use crate::http::openapi::{BadRequest, Conflict, NotFound, Unauthorized};

/// Every workbook.
#[utoipa::path(
    get,
    path = "/admin/api/workbooks",
    tag = "workbooks",
    responses(
        (status = 200, description = "The workbooks.", body = Vec<crate::admin::views::WorkbookView>),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_workbooks(gw: Gw) -> HttpResponse {
    ok(workbooks::list(&gw).await)
}

/// Creates a workbook.
#[utoipa::path(
    post,
    path = "/admin/api/workbooks",
    tag = "workbooks",
    request_body = workbooks::CreateWorkbook,
    responses(
        (status = 201, description = "The new workbook.", body = crate::admin::views::WorkbookView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_workbook(
    gw: Gw,
    a: AdminActor,
    body: Body<workbooks::CreateWorkbook>,
) -> HttpResponse {
    created(workbooks::create(&gw, &a.0, body.0).await)
}

/// One workbook.
#[utoipa::path(
    get,
    path = "/admin/api/workbooks/{id}",
    tag = "workbooks",
    params(
        ("id" = String, Path, description = "The workbook's id."),
    ),
    responses(
        (status = 200, description = "The workbook.", body = crate::admin::views::WorkbookView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_workbook(gw: Gw, id: Name) -> HttpResponse {
    ok(workbooks::get(&gw, &id).await)
}

/// Changes a workbook.
#[utoipa::path(
    patch,
    path = "/admin/api/workbooks/{id}",
    tag = "workbooks",
    params(
        ("id" = String, Path, description = "The workbook's id."),
    ),
    request_body = workbooks::PatchWorkbook,
    responses(
        (status = 200, description = "The workbook after the change.", body = crate::admin::views::WorkbookView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn patch_workbook(
    gw: Gw,
    a: AdminActor,
    id: Name,
    body: Body<workbooks::PatchWorkbook>,
) -> HttpResponse {
    ok(workbooks::patch(&gw, &a.0, &id, body.0).await)
}

/// Deletes a workbook with its tags and grants.
#[utoipa::path(
    delete,
    path = "/admin/api/workbooks/{id}",
    tag = "workbooks",
    params(
        ("id" = String, Path, description = "The workbook's id."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn delete_workbook(gw: Gw, a: AdminActor, id: Name) -> HttpResponse {
    no_content(workbooks::delete(&gw, &a.0, &id).await)
}

/// Creates or replaces a tagged version of a workbook.
#[utoipa::path(
    put,
    path = "/admin/api/workbooks/{id}/tags/{tag}",
    tag = "workbooks",
    params(
        ("id" = String, Path, description = "The workbook's id."),
        ("tag" = String, Path, description = "The tag's name."),
    ),
    request_body = workbooks::PutTag,
    responses(
        (status = 200, description = "The workbook after the change.", body = crate::admin::views::WorkbookView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn put_tag(
    gw: Gw,
    a: AdminActor,
    p: web::Path<(String, String)>,
    body: Body<workbooks::PutTag>,
) -> HttpResponse {
    let (id, tag) = p.into_inner();
    ok(workbooks::put_tag(&gw, &a.0, &id, &tag, body.0).await)
}

/// Deletes a tagged version of a workbook.
#[utoipa::path(
    delete,
    path = "/admin/api/workbooks/{id}/tags/{tag}",
    tag = "workbooks",
    params(
        ("id" = String, Path, description = "The workbook's id."),
        ("tag" = String, Path, description = "The tag's name."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn delete_tag(
    gw: Gw,
    a: AdminActor,
    p: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, tag) = p.into_inner();
    no_content(workbooks::delete_tag(&gw, &a.0, &id, &tag).await)
}
