//! `/admin/api/*`: thin handlers over [`crate::admin`]. Every request but
//! `GET /admin/api/openapi.json` needs `Authorization: Bearer {admin token}`
//! (an embed session never authorises one); errors are JSON.

use std::future::{Ready, ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::client_ip::client_addr;
use super::openapi::{BadRequest, Conflict, NotFound, Unauthorized};
use super::problem;
use super::request_id::RequestId;
use crate::admin::{
    self, Actor, AdminResult, account_types, clients, explain, grants, settings, teams, users,
    workbooks, workspaces,
};
use crate::audit::Origin;
use crate::crypto::sha256_hex;
use crate::error::{ErrorCode, Problem};
use crate::gateway::Gateway;
use crate::policy::{Settings, SettingsPatch};

/// The name of the admin token that authenticated the request.
#[derive(Debug, Clone)]
struct AdminName(String);

fn unauthorized(message: &str) -> HttpResponse {
    let mut res = problem::json(&Problem::new(ErrorCode::Unauthorized, message));
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    res
}

fn bearer(req: &ServiceRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if req.path() == "/admin/api/openapi.json" && req.method() == actix_web::http::Method::GET {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let Some(gw) = req.app_data::<web::Data<Gateway>>().cloned() else {
        return Ok(req
            .into_response(problem::json(&Problem::internal()))
            .map_into_right_body());
    };
    let Some(token) = bearer(&req) else {
        let res =
            unauthorized("This endpoint needs an admin token: send Authorization: Bearer <token>.");
        return Ok(req.into_response(res).map_into_right_body());
    };
    match gw
        .store
        .admin_token_name(&sha256_hex(token.as_bytes()))
        .await
    {
        Ok(Some(name)) => {
            req.extensions_mut().insert(AdminName(name));
            Ok(next.call(req).await?.map_into_left_body())
        }
        Ok(None) => {
            let res = unauthorized(
                "The admin token is not valid. Create one with `embedgate admin-token create`.",
            );
            Ok(req.into_response(res).map_into_right_body())
        }
        Err(e) => {
            tracing::warn!(error = %e, "checking an admin token failed");
            Ok(req
                .into_response(problem::json(&Problem::unavailable()))
                .map_into_right_body())
        }
    }
}

/// The admin making the request, for the audit log.
struct AdminActor(Actor);

impl FromRequest for AdminActor {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trusted = req
            .app_data::<web::Data<Gateway>>()
            .map(|gw| gw.config.limits.trusted_proxies.clone())
            .unwrap_or_default();
        let ext = req.extensions();
        ready(Ok(AdminActor(Actor {
            admin: ext
                .get::<AdminName>()
                .map(|a| a.0.clone())
                .unwrap_or_default(),
            origin: Origin {
                request_id: ext.get::<RequestId>().map(|r| r.0.clone()),
                remote_addr: Some(client_addr(req, &trusted).to_string()),
            },
        })))
    }
}

fn respond<T: Serialize>(
    status: actix_web::http::StatusCode,
    result: AdminResult<T>,
) -> HttpResponse {
    match result {
        Ok(body) => HttpResponse::build(status).json(body),
        Err(p) => problem::json(&p),
    }
}

fn ok<T: Serialize>(result: AdminResult<T>) -> HttpResponse {
    respond(actix_web::http::StatusCode::OK, result)
}

fn created<T: Serialize>(result: AdminResult<T>) -> HttpResponse {
    respond(actix_web::http::StatusCode::CREATED, result)
}

fn no_content(result: AdminResult<()>) -> HttpResponse {
    match result {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(p) => problem::json(&p),
    }
}

/// A body as the admin API's resource types: a JSON object only (serde
/// would also read a struct from an array), checked field by field.
fn from_object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> AdminResult<T> {
    if !value.is_object() {
        return Err(Problem::validation(
            "The request body must be a JSON object.",
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        Problem::validation(format!(
            "The request body is not valid for this endpoint: {e}"
        ))
    })
}

/// A JSON object body, parsed into `T`.
struct Body<T>(T);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let web::Json(value) = json.await?;
            from_object(value).map(Body).map_err(|p| {
                let res = problem::json(&p);
                actix_web::error::InternalError::from_response(p.message, res).into()
            })
        })
    }
}

/// A JSON object body that may be empty.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> AdminResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value = serde_json::from_slice(body)
        .map_err(|e| Problem::validation(format!("The request body is not valid JSON: {e}")))?;
    from_object(value)
}

type Gw = web::Data<Gateway>;
type Id = web::Path<i64>;
type Name = web::Path<String>;

/// The runtime settings.
#[utoipa::path(
    get,
    path = "/admin/api/settings",
    tag = "settings",
    responses(
        (status = 200, description = "The settings.", body = Settings),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
async fn get_settings(gw: Gw) -> HttpResponse {
    ok(Ok(settings::get(&gw)))
}
/// Changes settings: any subset, nested objects merged.
#[utoipa::path(
    patch,
    path = "/admin/api/settings",
    tag = "settings",
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "The whole settings after the change.", body = Settings),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = [])),
)]
async fn patch_settings(gw: Gw, a: AdminActor, body: Body<SettingsPatch>) -> HttpResponse {
    ok(settings::patch(&gw, &a.0, body.0).await)
}

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
async fn list_clients(gw: Gw) -> HttpResponse {
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
async fn create_client(gw: Gw, a: AdminActor, body: Body<clients::CreateClient>) -> HttpResponse {
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
async fn get_client(gw: Gw, id: Name) -> HttpResponse {
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
async fn rotate_client(gw: Gw, a: AdminActor, id: Name, body: web::Bytes) -> HttpResponse {
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
async fn revoke_client(gw: Gw, a: AdminActor, id: Name) -> HttpResponse {
    no_content(clients::revoke(&gw, &a.0, &id).await)
}

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
async fn list_teams(gw: Gw) -> HttpResponse {
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
async fn create_team(gw: Gw, a: AdminActor, body: Body<teams::CreateTeam>) -> HttpResponse {
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
async fn get_team(gw: Gw, id: Id) -> HttpResponse {
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
async fn patch_team(gw: Gw, a: AdminActor, id: Id, body: Body<teams::PatchTeam>) -> HttpResponse {
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
async fn delete_team(gw: Gw, a: AdminActor, id: Id) -> HttpResponse {
    no_content(teams::delete(&gw, &a.0, *id).await)
}

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
async fn list_users(gw: Gw, q: web::Query<users::UserQuery>) -> HttpResponse {
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
async fn create_user(gw: Gw, a: AdminActor, body: Body<users::CreateUser>) -> HttpResponse {
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
async fn get_user(gw: Gw, id: Id) -> HttpResponse {
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
async fn patch_user(gw: Gw, a: AdminActor, id: Id, body: Body<users::PatchUser>) -> HttpResponse {
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
async fn delete_user(gw: Gw, a: AdminActor, id: Id) -> HttpResponse {
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
async fn revoke_sessions(gw: Gw, a: AdminActor, id: Id) -> HttpResponse {
    no_content(users::revoke_sessions(&gw, &a.0, *id).await)
}

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
async fn list_account_types(gw: Gw) -> HttpResponse {
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
async fn create_account_type(
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
async fn get_account_type(gw: Gw, name: Name) -> HttpResponse {
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
async fn patch_account_type(
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
async fn delete_account_type(gw: Gw, a: AdminActor, name: Name) -> HttpResponse {
    no_content(account_types::delete(&gw, &a.0, &name).await)
}

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
async fn list_workspaces(gw: Gw) -> HttpResponse {
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
async fn create_workspace(
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
async fn get_workspace(gw: Gw, id: Id) -> HttpResponse {
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
async fn delete_workspace(gw: Gw, a: AdminActor, id: Id) -> HttpResponse {
    no_content(workspaces::delete(&gw, &a.0, *id).await)
}

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
async fn list_workbooks(gw: Gw) -> HttpResponse {
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
async fn create_workbook(
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
async fn get_workbook(gw: Gw, id: Name) -> HttpResponse {
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
async fn patch_workbook(
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
async fn delete_workbook(gw: Gw, a: AdminActor, id: Name) -> HttpResponse {
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
async fn put_tag(
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
async fn delete_tag(gw: Gw, a: AdminActor, p: web::Path<(String, String)>) -> HttpResponse {
    let (id, tag) = p.into_inner();
    no_content(workbooks::delete_tag(&gw, &a.0, &id, &tag).await)
}

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
async fn list_grants(gw: Gw, q: web::Query<grants::GrantQuery>) -> HttpResponse {
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
async fn create_grant(gw: Gw, a: AdminActor, body: Body<grants::CreateGrant>) -> HttpResponse {
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
async fn get_grant(gw: Gw, id: Id) -> HttpResponse {
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
async fn delete_grant(gw: Gw, a: AdminActor, id: Id) -> HttpResponse {
    no_content(grants::delete(&gw, &a.0, *id).await)
}

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
async fn list_audit(gw: Gw, q: web::Query<admin::audit::AuditQuery>) -> HttpResponse {
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
async fn get_explain(gw: Gw, q: web::Query<explain::ExplainQuery>) -> HttpResponse {
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
async fn inspect_token(gw: Gw, body: Body<admin::inspect::InspectRequest>) -> HttpResponse {
    ok(admin::inspect::inspect(&gw, body.0).await)
}

/// This document: the admin API in OpenAPI 3, public (no token).
#[utoipa::path(
    get,
    path = "/admin/api/openapi.json",
    tag = "openapi",
    responses((status = 200, description = "The OpenAPI document.", body = Object)),
)]
async fn openapi_json() -> HttpResponse {
    match super::openapi::document() {
        Some(json) => HttpResponse::Ok()
            .content_type(header::ContentType::json())
            .body(json),
        None => problem::json(&Problem::internal()),
    }
}

async fn not_found() -> HttpResponse {
    problem::json(&Problem::not_found("There is no such admin API endpoint."))
}

fn bad_input(message: String) -> Error {
    let res = problem::json(&Problem::validation(message.clone()));
    actix_web::error::InternalError::from_response(message, res).into()
}

/// The admin API's routes, with its auth and its error shapes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use web::{delete, get, patch, post, put, resource};
    cfg.service(
        web::scope("/admin/api")
            .wrap(from_fn(require_admin))
            .app_data(
                web::JsonConfig::default()
                    .limit(1 << 20)
                    .error_handler(|e, _| {
                        bad_input(format!(
                            "The request body is not valid JSON for this endpoint: {e}"
                        ))
                    }),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| bad_input(format!("The query string is not valid: {e}"))),
            )
            .app_data(web::PathConfig::default().error_handler(|_, _| {
                let res = problem::json(&Problem::not_found("There is no such resource."));
                actix_web::error::InternalError::from_response("not found", res).into()
            }))
            .service(resource("/openapi.json").route(get().to(openapi_json)))
            .service(
                resource("/settings")
                    .route(get().to(get_settings))
                    .route(patch().to(patch_settings)),
            )
            .service(
                resource("/clients")
                    .route(get().to(list_clients))
                    .route(post().to(create_client)),
            )
            .service(
                resource("/clients/{client_id}")
                    .route(get().to(get_client))
                    .route(delete().to(revoke_client)),
            )
            .service(resource("/clients/{client_id}/rotate").route(post().to(rotate_client)))
            .service(
                resource("/teams")
                    .route(get().to(list_teams))
                    .route(post().to(create_team)),
            )
            .service(
                resource("/teams/{id}")
                    .route(get().to(get_team))
                    .route(patch().to(patch_team))
                    .route(delete().to(delete_team)),
            )
            .service(
                resource("/users")
                    .route(get().to(list_users))
                    .route(post().to(create_user)),
            )
            .service(
                resource("/users/{id}")
                    .route(get().to(get_user))
                    .route(patch().to(patch_user))
                    .route(delete().to(delete_user)),
            )
            .service(resource("/users/{id}/revoke-sessions").route(post().to(revoke_sessions)))
            .service(
                resource("/account-types")
                    .route(get().to(list_account_types))
                    .route(post().to(create_account_type)),
            )
            .service(
                resource("/account-types/{name}")
                    .route(get().to(get_account_type))
                    .route(patch().to(patch_account_type))
                    .route(delete().to(delete_account_type)),
            )
            .service(
                resource("/workspaces")
                    .route(get().to(list_workspaces))
                    .route(post().to(create_workspace)),
            )
            .service(
                resource("/workspaces/{id}")
                    .route(get().to(get_workspace))
                    .route(delete().to(delete_workspace)),
            )
            .service(
                resource("/workbooks")
                    .route(get().to(list_workbooks))
                    .route(post().to(create_workbook)),
            )
            .service(
                resource("/workbooks/{id}")
                    .route(get().to(get_workbook))
                    .route(patch().to(patch_workbook))
                    .route(delete().to(delete_workbook)),
            )
            .service(
                resource("/workbooks/{id}/tags/{tag}")
                    .route(put().to(put_tag))
                    .route(delete().to(delete_tag)),
            )
            .service(
                resource("/grants")
                    .route(get().to(list_grants))
                    .route(post().to(create_grant)),
            )
            .service(
                resource("/grants/{id}")
                    .route(get().to(get_grant))
                    .route(delete().to(delete_grant)),
            )
            .service(resource("/audit").route(get().to(list_audit)))
            .service(resource("/explain").route(get().to(get_explain)))
            .service(resource("/tokens/inspect").route(post().to(inspect_token)))
            .default_service(web::to(not_found)),
    );
}
