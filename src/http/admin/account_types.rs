//! Handlers of `/admin/api/account-types`, with their OpenAPI annotations.

use actix_web::HttpResponse;

use super::{AdminActor, Body, Gw, Name, created, no_content, ok};
use crate::admin::account_types;
use crate::http::openapi::{BadRequest, Conflict, NotFound, Unauthorized};

/// Every account type.
#[utoipa::path(
    get,
    path = "/admin/api/account-types",
    tag = "account-types",
    responses(
        (status = 200, description = "The account types.", body = Vec<crate::admin::views::AccountTypeView>),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_account_types(gw: Gw) -> HttpResponse {
    ok(account_types::list(&gw).await)
}

/// Creates an account type.
#[utoipa::path(
    post,
    path = "/admin/api/account-types",
    tag = "account-types",
    request_body = account_types::CreateAccountType,
    responses(
        (status = 201, description = "The new account type.", body = crate::admin::views::AccountTypeView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_account_type(
    gw: Gw,
    a: AdminActor,
    body: Body<account_types::CreateAccountType>,
) -> HttpResponse {
    created(account_types::create(&gw, &a.0, body.0).await)
}

/// One account type.
#[utoipa::path(
    get,
    path = "/admin/api/account-types/{name}",
    tag = "account-types",
    params(
        ("name" = String, Path, description = "The account type's name."),
    ),
    responses(
        (status = 200, description = "The account type.", body = crate::admin::views::AccountTypeView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_account_type(gw: Gw, name: Name) -> HttpResponse {
    ok(account_types::get(&gw, &name).await)
}

/// Changes an account type's permissions; built-in ones cannot change.
#[utoipa::path(
    patch,
    path = "/admin/api/account-types/{name}",
    tag = "account-types",
    params(
        ("name" = String, Path, description = "The account type's name."),
    ),
    request_body = account_types::PatchAccountType,
    responses(
        (status = 200, description = "The account type after the change.", body = crate::admin::views::AccountTypeView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn patch_account_type(
    gw: Gw,
    a: AdminActor,
    name: Name,
    body: Body<account_types::PatchAccountType>,
) -> HttpResponse {
    ok(account_types::patch(&gw, &a.0, &name, body.0).await)
}

/// Deletes an account type that is neither built in, the default, nor in use.
#[utoipa::path(
    delete,
    path = "/admin/api/account-types/{name}",
    tag = "account-types",
    params(
        ("name" = String, Path, description = "The account type's name."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn delete_account_type(gw: Gw, a: AdminActor, name: Name) -> HttpResponse {
    no_content(account_types::delete(&gw, &a.0, &name).await)
}
