//! `/admin/api/*`: thin handlers over [`crate::admin`]. Every request but
//! `GET /admin/api/openapi.json` needs `Authorization: Bearer {admin token}`
//! (an embed session never authorises one); errors are JSON.

mod account_types;
mod clients;
mod grants;
mod insight;
mod settings;
mod teams;
mod users;
mod workbooks;
mod workspaces;

pub(super) use account_types::*;
pub(super) use clients::*;
pub(super) use grants::*;
pub(super) use insight::*;
pub(super) use settings::*;
pub(super) use teams::*;
pub(super) use users::*;
pub(super) use workbooks::*;
pub(super) use workspaces::*;

use std::future::{Ready, ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::client_ip::client_addr;
use super::problem;
use super::request_id::RequestId;
use crate::admin::{Actor, AdminResult};
use crate::audit::Origin;
use crate::crypto::sha256_hex;
use crate::error::{ErrorCode, Problem};
use crate::gateway::Gateway;

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
pub(super) struct AdminActor(pub(super) Actor);

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

pub(super) fn ok<T: Serialize>(result: AdminResult<T>) -> HttpResponse {
    respond(actix_web::http::StatusCode::OK, result)
}

pub(super) fn created<T: Serialize>(result: AdminResult<T>) -> HttpResponse {
    respond(actix_web::http::StatusCode::CREATED, result)
}

pub(super) fn no_content(result: AdminResult<()>) -> HttpResponse {
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
pub(super) struct Body<T>(pub(super) T);

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
pub(super) fn optional_body<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> AdminResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value = serde_json::from_slice(body)
        .map_err(|e| Problem::validation(format!("The request body is not valid JSON: {e}")))?;
    from_object(value)
}

pub(super) type Gw = web::Data<Gateway>;
pub(super) type Id = web::Path<i64>;
pub(super) type Name = web::Path<String>;

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
