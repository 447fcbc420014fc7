//! The admin console at `/admin/` (SPEC §8): server-rendered pages for
//! people, over the same `crate::admin` functions as the REST API.
//!
//! Signing in with an admin token sets the `embedgate_admin` cookie
//! (`HttpOnly; Secure; SameSite=Strict`, path `/admin`) holding, signed, the
//! token's SHA-256 (never the token), an expiry and a CSRF secret. Every
//! request checks that the token still exists; every form carries the CSRF
//! secret and a POST without it is refused.

mod actions;
mod pages;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::time::Duration as CookieDuration;
use cookie::{Cookie, CookieJar, SameSite};
use minijinja::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::client_ip::client_addr;
use super::request_id::RequestId;
use crate::admin::Actor;
use crate::audit::Origin;
use crate::gateway::Gateway;

pub const COOKIE_NAME: &str = "embedgate_admin";
/// How long a console sign-in lasts.
const SESSION_SECS: i64 = 8 * 3600;

#[derive(Debug, Serialize, Deserialize)]
struct ConsoleClaims {
    /// SHA-256 of the admin token signed in with.
    th: String,
    csrf: String,
    exp: i64,
}

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct Console {
    pub admin: String,
    pub csrf: String,
    pub actor: Actor,
}

/// Why a console request cannot go on.
#[derive(Debug)]
pub enum Refused {
    /// Not signed in (or no longer): go to the sign-in page.
    SignIn,
    /// A form without the right CSRF token.
    Csrf,
    /// The form could not be read.
    BadForm(String),
    Unavailable,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::SignIn => f.write_str("sign in first"),
            Refused::Csrf => f.write_str("the form's CSRF token is missing or wrong"),
            Refused::BadForm(e) => write!(f, "the form is not valid: {e}"),
            Refused::Unavailable => f.write_str("the database is unavailable"),
        }
    }
}

impl ResponseError for Refused {
    fn status_code(&self) -> StatusCode {
        match self {
            Refused::SignIn => StatusCode::SEE_OTHER,
            Refused::Csrf => StatusCode::FORBIDDEN,
            Refused::BadForm(_) => StatusCode::BAD_REQUEST,
            Refused::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Refused::SignIn => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/admin/login"))
                .finish(),
            other => HttpResponse::build(other.status_code())
                .content_type("text/plain; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body(format!(
                    "Refused: {other}. Go back, reload the page and try again."
                )),
        }
    }
}

fn seal(gw: &Gateway, claims: &ConsoleClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut jar = CookieJar::new();
    jar.signed_mut(&gw.keys.console)
        .add(Cookie::new(COOKIE_NAME, payload));
    jar.get(COOKIE_NAME)
        .map(|c| c.value().to_owned())
        .unwrap_or_default()
}

fn open(gw: &Gateway, req: &HttpRequest) -> Option<ConsoleClaims> {
    for header in crate::http::cookie_headers(req) {
        for c in Cookie::split_parse(header).flatten() {
            if c.name() != COOKIE_NAME {
                continue;
            }
            let mut jar = CookieJar::new();
            jar.add_original(Cookie::new(COOKIE_NAME, c.value().to_owned()));
            let Some(verified) = jar.signed(&gw.keys.console).get(COOKIE_NAME) else {
                continue;
            };
            let Ok(json) = URL_SAFE_NO_PAD.decode(verified.value()) else {
                continue;
            };
            if let Ok(claims) = serde_json::from_slice::<ConsoleClaims>(&json)
                && claims.exp > gw.now()
            {
                return Some(claims);
            }
        }
    }
    None
}

/// The `Set-Cookie` value for a new console session.
fn session_cookie(gw: &Gateway, token_hash: String) -> anyhow::Result<String> {
    let claims = ConsoleClaims {
        th: token_hash,
        csrf: crate::crypto::random_token("", 24)?,
        exp: gw.now() + SESSION_SECS,
    };
    Ok(Cookie::build((COOKIE_NAME, seal(gw, &claims)))
        .path("/admin")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(CookieDuration::seconds(SESSION_SECS))
        .build()
        .to_string())
}

fn clear_cookie() -> String {
    Cookie::build((COOKIE_NAME, ""))
        .path("/admin")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(CookieDuration::seconds(0))
        .build()
        .to_string()
}

fn gateway(req: &HttpRequest) -> Option<web::Data<Gateway>> {
    req.app_data::<web::Data<Gateway>>().cloned()
}

async fn console_of(req: HttpRequest) -> Result<Console, Refused> {
    let gw = gateway(&req).ok_or(Refused::Unavailable)?;
    let claims = open(&gw, &req).ok_or(Refused::SignIn)?;
    let admin = match gw.store.admin_token_name(&claims.th).await {
        Ok(Some(name)) => name,
        Ok(None) => return Err(Refused::SignIn),
        Err(_) => return Err(Refused::Unavailable),
    };
    let actor = Actor {
        admin: admin.clone(),
        origin: Origin {
            request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
            remote_addr: Some(client_addr(&req, &gw.config.limits.trusted_proxies).to_string()),
        },
    };
    Ok(Console {
        admin,
        csrf: claims.csrf,
        actor,
    })
}

impl FromRequest for Console {
    type Error = Refused;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Refused>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(console_of(req.clone()))
    }
}

/// A signed-in admin's form, accepted only with the session's CSRF token.
pub struct Posted<T> {
    pub console: Console,
    pub form: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for Posted<T> {
    type Error = Refused;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Refused>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let console = console_of(req).await?;
            let body = body.await.map_err(|e| Refused::BadForm(e.to_string()))?;
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).map_err(|e| Refused::BadForm(e.to_string()))?;
            let sent = pairs
                .iter()
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.as_bytes());
            let ok = sent.is_some_and(|s| {
                aws_lc_rs::constant_time::verify_slices_are_equal(s, console.csrf.as_bytes())
                    .is_ok()
            });
            if !ok {
                return Err(Refused::Csrf);
            }
            let rest: Vec<(String, String)> =
                pairs.into_iter().filter(|(k, _)| k != "csrf").collect();
            let encoded =
                serde_urlencoded::to_string(&rest).map_err(|e| Refused::BadForm(e.to_string()))?;
            let form = serde_urlencoded::from_str(&encoded)
                .map_err(|e| Refused::BadForm(e.to_string()))?;
            Ok(Posted { console, form })
        })
    }
}

/// Console pages may only be framed by nobody, and only load themselves.
fn secure_headers(builder: &mut actix_web::HttpResponseBuilder) {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // `same-origin`, not `no-referrer`: with no-referrer, browsers send
        // `Origin: null` on form posts and the sign-in origin check fails.
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ));
}

/// The navigation entry a page belongs to.
fn section(template: &str) -> &'static str {
    match template {
        "settings.html" => "/admin/settings",
        "users.html" | "user.html" => "/admin/users",
        "teams.html" => "/admin/teams",
        "account_types.html" => "/admin/account-types",
        "workbooks.html" => "/admin/workbooks",
        "clients.html" => "/admin/clients",
        "audit.html" => "/admin/audit",
        "explain.html" => "/admin/explain",
        "inspect.html" => "/admin/inspect",
        "sandbox.html" => "/admin/sandbox",
        _ => "/admin/",
    }
}

/// Renders a console page; `ctx` is merged with the common values.
pub fn render(gw: &Gateway, console: Option<&Console>, template: &str, ctx: Value) -> HttpResponse {
    let common = minijinja::context! {
        admin => console.map(|c| c.admin.clone()),
        csrf => console.map(|c| c.csrf.clone()),
        public_url => gw.config.public_url(),
        section => section(template),
    };
    let ctx = minijinja::context! { ..ctx, ..common };
    let mut builder = HttpResponse::Ok();
    secure_headers(&mut builder);
    match gw.content.render_page(&format!("admin/{template}"), ctx) {
        Ok(html) => builder
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, template, "rendering a console page failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("The console page could not be rendered; see the gateway's log.")
        }
    }
}

/// After a form: back to `to` with a message.
pub fn back(to: &str, result: Result<String, crate::error::Problem>) -> HttpResponse {
    let (key, message) = match result {
        Ok(notice) => ("notice", notice),
        Err(p) => ("error", format!("{}: {}", p.code, p.message)),
    };
    let sep = if to.contains('?') { '&' } else { '?' };
    let location = format!(
        "{to}{sep}{key}={}",
        url::form_urlencoded::byte_serialize(message.as_bytes()).collect::<String>()
    );
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Every console route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    pages::configure(cfg);
    actions::configure(cfg);
}
