//! Handlers of `/admin/api/settings`, with their OpenAPI annotations.

use actix_web::HttpResponse;

use super::{AdminActor, Body, Gw, ok};
use crate::admin::settings;
use crate::http::openapi::{BadRequest, Unauthorized};
use crate::policy::{Settings, SettingsPatch};

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
pub(super) async fn get_settings(gw: Gw) -> HttpResponse {
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
pub(super) async fn patch_settings(
    gw: Gw,
    a: AdminActor,
    body: Body<SettingsPatch>,
) -> HttpResponse {
    ok(settings::patch(&gw, &a.0, body.0).await)
}
