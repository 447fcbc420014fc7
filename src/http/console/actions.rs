//! The console's forms (POST): each checks the CSRF token (through
//! [`Posted`]), calls the same `crate::admin` function as the REST API, and
//! goes back to its page with a notice or an error. Secrets (a new client's,
//! a rotated one) are rendered once in the answer, never put in a URL.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use minijinja::value::Serde;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Console, Posted, back, clear_cookie, render, session_cookie};
use crate::admin::{
    self, AdminResult, account_types, clients, grants, teams, users, workbooks, workspaces,
};
use crate::crypto::sha256_hex;
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::policy::SettingsPatch;

type Gw = web::Data<Gateway>;

/// Comma-separated names, trimmed, empty ones dropped.
fn names(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> AdminResult<T> {
    serde_json::from_value(v).map_err(|e| Problem::validation(e.to_string()))
}

/// `key=value` lines or comma-separated pairs.
fn attributes(raw: &str) -> AdminResult<serde_json::Map<String, Value>> {
    raw.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), json!(v.trim())))
                .ok_or_else(|| {
                    Problem::validation(format!("attributes: {pair:?} is not key=value"))
                })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(gw: Gw, req: HttpRequest, form: web::Form<LoginForm>) -> HttpResponse {
    // A cross-site sign-in attempt: refuse what a browser marks as foreign.
    if let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    {
        let ours = url::Url::parse(&gw.config.server.public_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        let host = req.connection_info().host().to_owned();
        if origin != ours && !origin.ends_with(&format!("//{host}")) {
            return HttpResponse::Forbidden().body("Refused: a sign-in from another site.");
        }
    }
    let hash = sha256_hex(form.token.trim().as_bytes());
    match gw.store.admin_token_name(&hash).await {
        Ok(Some(_)) => match session_cookie(&gw, hash) {
            Ok(cookie) => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/admin/"))
                .insert_header((header::SET_COOKIE, cookie))
                .finish(),
            Err(_) => back("/admin/login", Err(Problem::internal())),
        },
        Ok(None) => back(
            "/admin/login",
            Err(Problem::new(
                crate::error::ErrorCode::Unauthorized,
                "That admin token is not valid.",
            )),
        ),
        Err(_) => back("/admin/login", Err(Problem::unavailable())),
    }
}

#[derive(Debug, Default, Deserialize)]
struct Empty {}

async fn logout(_: Posted<Empty>) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/admin/login?notice=Signed+out."))
        .insert_header((header::SET_COOKIE, clear_cookie()))
        .finish()
}

#[derive(Debug, Deserialize)]
struct SettingsForm {
    #[serde(default)]
    auto_provisioning: Option<String>,
    default_account_type: String,
    #[serde(default)]
    company_separation: Option<String>,
    company_attribute: String,
}

async fn settings(gw: Gw, p: Posted<SettingsForm>) -> HttpResponse {
    let f = p.form;
    let patch = SettingsPatch {
        auto_provisioning: Some(f.auto_provisioning.is_some()),
        default_account_type: Some(f.default_account_type),
        company_separation: Some(crate::policy::CompanySeparationPatch {
            enabled: Some(f.company_separation.is_some()),
            attribute: Some(f.company_attribute),
        }),
    };
    let result = admin::settings::patch(&gw, &p.console.actor, patch).await;
    back("/admin/settings", result.map(|_| "Settings saved.".into()))
}

#[derive(Debug, Deserialize)]
struct NewUser {
    email: String,
    #[serde(default)]
    teams: String,
    account_type: String,
    #[serde(default)]
    attributes: String,
}

async fn create_user(gw: Gw, p: Posted<NewUser>) -> HttpResponse {
    let f = p.form;
    let result = async {
        let body = json!({"email": f.email, "teams": names(&f.teams), "account_type": f.account_type,
            "attributes": attributes(&f.attributes)?});
        users::create(&gw, &p.console.actor, parse(body)?).await
    }
    .await;
    match result {
        Ok(u) => back(
            &format!("/admin/users/{}", u.id),
            Ok(format!("User {} created.", u.email)),
        ),
        Err(e) => back("/admin/users", Err(e)),
    }
}

#[derive(Debug, Deserialize)]
struct EditUser {
    #[serde(default)]
    teams: String,
    account_type: String,
    status: String,
}

async fn update_user(gw: Gw, id: web::Path<i64>, p: Posted<EditUser>) -> HttpResponse {
    let f = p.form;
    let to = format!("/admin/users/{id}");
    let result = async {
        let patch = parse(
            json!({"teams": names(&f.teams), "account_type": f.account_type, "status": f.status}),
        )?;
        users::patch(&gw, &p.console.actor, *id, patch).await
    }
    .await;
    back(&to, result.map(|_| "User saved.".into()))
}

async fn revoke_sessions(gw: Gw, id: web::Path<i64>, p: Posted<Empty>) -> HttpResponse {
    let result = users::revoke_sessions(&gw, &p.console.actor, *id).await;
    back(
        &format!("/admin/users/{id}"),
        result.map(|()| "Every session of this user was ended.".into()),
    )
}

async fn delete_user(gw: Gw, id: web::Path<i64>, p: Posted<Empty>) -> HttpResponse {
    let result = users::delete(&gw, &p.console.actor, *id).await;
    back("/admin/users", result.map(|()| "User deleted.".into()))
}

#[derive(Debug, Deserialize)]
struct NewTeam {
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_team(gw: Gw, p: Posted<NewTeam>) -> HttpResponse {
    let body = json!({"name": p.form.name, "description": p.form.description});
    let result = async { teams::create(&gw, &p.console.actor, parse(body)?).await }.await;
    back(
        "/admin/teams",
        result.map(|t| format!("Team {} created.", t.name)),
    )
}

async fn delete_team(gw: Gw, id: web::Path<i64>, p: Posted<Empty>) -> HttpResponse {
    let result = teams::delete(&gw, &p.console.actor, *id).await;
    back(
        "/admin/teams",
        result.map(|()| "Team deleted with its memberships and grants.".into()),
    )
}

#[derive(Debug, Deserialize)]
struct NewAccountType {
    name: String,
    #[serde(default)]
    permissions: String,
}

async fn create_account_type(gw: Gw, p: Posted<NewAccountType>) -> HttpResponse {
    let body = json!({"name": p.form.name, "permissions": names(&p.form.permissions)});
    let result = async { account_types::create(&gw, &p.console.actor, parse(body)?).await }.await;
    back(
        "/admin/account-types",
        result.map(|a| format!("Account type {} created.", a.name)),
    )
}

async fn delete_account_type(gw: Gw, name: web::Path<String>, p: Posted<Empty>) -> HttpResponse {
    let result = account_types::delete(&gw, &p.console.actor, &name).await;
    back(
        "/admin/account-types",
        result.map(|()| "Account type deleted.".into()),
    )
}

#[derive(Debug, Deserialize)]
struct NewWorkspace {
    name: String,
    #[serde(default)]
    parent: String,
}

async fn create_workspace(gw: Gw, p: Posted<NewWorkspace>) -> HttpResponse {
    let parent = p.form.parent.trim().parse::<i64>().ok();
    let body = json!({"name": p.form.name, "parent": parent});
    let result = async { workspaces::create(&gw, &p.console.actor, parse(body)?).await }.await;
    back(
        "/admin/workbooks",
        result.map(|w| format!("Workspace {} created.", w.name)),
    )
}

async fn delete_workspace(gw: Gw, id: web::Path<i64>, p: Posted<Empty>) -> HttpResponse {
    let result = workspaces::delete(&gw, &p.console.actor, *id).await;
    back(
        "/admin/workbooks",
        result.map(|()| "Workspace deleted.".into()),
    )
}

#[derive(Debug, Deserialize)]
struct NewWorkbook {
    id: String,
    name: String,
    #[serde(default)]
    workspace: String,
    kind: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    dataset: String,
    #[serde(default)]
    company_field: String,
    #[serde(default)]
    url: String,
}

fn source_of(f: &NewWorkbook) -> Value {
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    if f.kind == "upstream" {
        json!({"type": "upstream", "url": f.url.trim()})
    } else {
        json!({"type": "template", "template": f.template.trim(), "dataset": opt(&f.dataset),
            "company_field": opt(&f.company_field)})
    }
}

async fn create_workbook(gw: Gw, p: Posted<NewWorkbook>) -> HttpResponse {
    let f = &p.form;
    let body = json!({"id": f.id.trim(), "name": f.name, "workspace": f.workspace.trim().parse::<i64>().ok(),
        "source": source_of(f)});
    let result = async { workbooks::create(&gw, &p.console.actor, parse(body)?).await }.await;
    back(
        "/admin/workbooks",
        result.map(|w| format!("Workbook {} created.", w.id)),
    )
}

async fn delete_workbook(gw: Gw, id: web::Path<String>, p: Posted<Empty>) -> HttpResponse {
    let result = workbooks::delete(&gw, &p.console.actor, &id).await;
    back(
        "/admin/workbooks",
        result.map(|()| "Workbook deleted with its tags and grants.".into()),
    )
}

#[derive(Debug, Deserialize)]
struct NewGrant {
    team: String,
    target: String,
    level: String,
    #[serde(default)]
    tag: String,
}

async fn create_grant(gw: Gw, p: Posted<NewGrant>) -> HttpResponse {
    let f = &p.form;
    let tag = (!f.tag.trim().is_empty()).then(|| f.tag.trim().to_owned());
    // The target select sends "workbook:{id}" or "workspace:{id}".
    let body = match f.target.split_once(':') {
        Some(("workspace", id)) => {
            json!({"team": f.team, "workspace": id.parse::<i64>().ok(), "level": f.level, "tag": tag})
        }
        Some(("workbook", id)) => {
            json!({"team": f.team, "workbook": id, "level": f.level, "tag": tag})
        }
        _ => json!({"team": f.team, "level": f.level}),
    };
    let result = async { grants::create(&gw, &p.console.actor, parse(body)?).await }.await;
    back(
        "/admin/workbooks",
        result.map(|g| format!("Grant {} created.", g.id)),
    )
}

async fn delete_grant(gw: Gw, id: web::Path<i64>, p: Posted<Empty>) -> HttpResponse {
    let result = grants::delete(&gw, &p.console.actor, *id).await;
    back("/admin/workbooks", result.map(|()| "Grant deleted.".into()))
}

#[derive(Debug, Deserialize)]
struct NewClient {
    #[serde(default)]
    client_id: String,
    name: String,
    #[serde(default)]
    allowed_origins: String,
    #[serde(default)]
    allowed_teams: String,
    #[serde(default)]
    allow_internal_users: Option<String>,
}

/// The clients page with a secret shown once.
async fn clients_with_secret(
    gw: &Gateway,
    c: &Console,
    shown: AdminResult<admin::views::ClientView>,
) -> HttpResponse {
    match shown {
        Ok(client) => {
            let list = clients::list(gw).await.unwrap_or_default();
            render(
                gw,
                Some(c),
                "clients.html",
                context! {
                    clients => Serde(list), shown => Serde(client),
                    notice => "Copy the secret now: it is shown only once."
                },
            )
        }
        Err(e) => back("/admin/clients", Err(e)),
    }
}

async fn create_client(gw: Gw, p: Posted<NewClient>) -> HttpResponse {
    let f = &p.form;
    let id = (!f.client_id.trim().is_empty()).then(|| f.client_id.trim().to_owned());
    let body = json!({"client_id": id, "name": f.name, "allowed_origins": names(&f.allowed_origins),
        "allowed_teams": names(&f.allowed_teams), "allow_internal_users": f.allow_internal_users.is_some()});
    let result = async { clients::create(&gw, &p.console.actor, parse(body)?).await }.await;
    clients_with_secret(&gw, &p.console, result).await
}

async fn rotate_client(gw: Gw, id: web::Path<String>, p: Posted<Empty>) -> HttpResponse {
    let result = clients::rotate(&gw, &p.console.actor, &id, clients::Rotate::default()).await;
    clients_with_secret(&gw, &p.console, result).await
}

async fn revoke_client(gw: Gw, id: web::Path<String>, p: Posted<Empty>) -> HttpResponse {
    let result = clients::revoke(&gw, &p.console.actor, &id).await;
    back(
        "/admin/clients",
        result.map(|()| format!("Client {id} revoked: its tokens and sessions stopped working.")),
    )
}

#[derive(Debug, Deserialize)]
struct InspectForm {
    token: String,
}

async fn inspect(gw: Gw, p: Posted<InspectForm>) -> HttpResponse {
    let token = p.form.token.trim().to_owned();
    let result = admin::inspect::inspect(&gw, admin::inspect::InspectRequest { token }).await;
    match result {
        Ok(r) => render(
            &gw,
            Some(&p.console),
            "inspect.html",
            context! { result => Serde(r) },
        ),
        Err(e) => render(
            &gw,
            Some(&p.console),
            "inspect.html",
            context! { error => e.message },
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct SandboxForm {
    client_id: String,
    email: String,
    #[serde(default)]
    teams: String,
    #[serde(default)]
    account_type: String,
    #[serde(default)]
    attributes: String,
    workbook: String,
    #[serde(default)]
    tag: String,
}

/// Signs a test embed URL with the chosen client's secret.
fn sign_sandbox(gw: &Gateway, f: &SandboxForm, secret: &str) -> anyhow::Result<String> {
    let attrs = attributes(&f.attributes).map_err(|p| anyhow::anyhow!(p.message))?;
    let request = crate::sign::SignRequest {
        client_id: f.client_id.clone(),
        secret: secret.to_owned(),
        algorithm: crate::token::SigningAlgorithm::HS256,
        email: f.email.trim().to_owned(),
        workbook: f.workbook.trim().to_owned(),
        teams: Some(names(&f.teams)).filter(|t| !t.is_empty()),
        account_type: Some(f.account_type.trim().to_owned()).filter(|a| !a.is_empty()),
        attributes: attrs
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
            .collect(),
        first_name: None,
        last_name: None,
        ttl_secs: 300,
        tag: Some(f.tag.trim().to_owned()).filter(|t| !t.is_empty()),
        base_url: String::new(),
        now: gw.now(),
    };
    crate::sign::sign_url(&request)
}

/// The sandbox page, with a signed URL when there is one.
pub async fn sandbox_form(
    gw: &Gateway,
    c: &Console,
    form: Option<&SandboxForm>,
    url: Option<String>,
    error: Option<String>,
) -> HttpResponse {
    let hmac_clients: Vec<String> = gw
        .store
        .list_clients()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.status == crate::store::ClientStatus::Active && c.algorithm.is_hmac())
        .map(|c| c.client_id)
        .collect();
    let books = workbooks::list(gw).await.unwrap_or_default();
    let form = form.map(|f| {
        context! { client_id => f.client_id.clone(), email => f.email.clone(), teams => f.teams.clone(),
            account_type => f.account_type.clone(), attributes => f.attributes.clone(),
            workbook => f.workbook.clone(), tag => f.tag.clone() }
    });
    render(
        gw,
        Some(c),
        "sandbox.html",
        context! {
            clients => hmac_clients, workbooks => Serde(books), form, url, error
        },
    )
}

async fn sandbox(gw: Gw, p: Posted<SandboxForm>) -> HttpResponse {
    let f = &p.form;
    let secret = gw
        .store
        .get_client(&f.client_id)
        .await
        .ok()
        .flatten()
        .and_then(|c| c.secret);
    let (url, error) = match secret {
        None => (
            None,
            Some(format!("{:?} is not an active HMAC client.", f.client_id)),
        ),
        Some(secret) => match sign_sandbox(&gw, f, &secret) {
            Ok(url) => (Some(url), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    sandbox_form(&gw, &p.console, Some(f), url, error).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    use web::post;
    cfg.route("/admin/login", post().to(login))
        .route("/admin/logout", post().to(logout))
        .route("/admin/settings", post().to(settings))
        .route("/admin/users", post().to(create_user))
        .route("/admin/users/{id}", post().to(update_user))
        .route(
            "/admin/users/{id}/revoke-sessions",
            post().to(revoke_sessions),
        )
        .route("/admin/users/{id}/delete", post().to(delete_user))
        .route("/admin/teams", post().to(create_team))
        .route("/admin/teams/{id}/delete", post().to(delete_team))
        .route("/admin/account-types", post().to(create_account_type))
        .route(
            "/admin/account-types/{name}/delete",
            post().to(delete_account_type),
        )
        .route("/admin/workspaces", post().to(create_workspace))
        .route("/admin/workspaces/{id}/delete", post().to(delete_workspace))
        .route("/admin/workbooks", post().to(create_workbook))
        .route("/admin/workbooks/{id}/delete", post().to(delete_workbook))
        .route("/admin/grants", post().to(create_grant))
        .route("/admin/grants/{id}/delete", post().to(delete_grant))
        .route("/admin/clients", post().to(create_client))
        .route("/admin/clients/{id}/rotate", post().to(rotate_client))
        .route("/admin/clients/{id}/revoke", post().to(revoke_client))
        .route("/admin/inspect", post().to(inspect))
        .route("/admin/sandbox", post().to(sandbox));
}
