//! The console's pages (GET): each reads through `crate::admin` and the
//! store, never writes.

use actix_web::{HttpResponse, web};
use minijinja::context;
use minijinja::value::Serde;
use serde::Deserialize;

use super::{Console, render};
use crate::admin::{
    self, account_types, audit, clients, explain, grants, teams, workbooks, workspaces,
};
use crate::gateway::Gateway;

type Gw = web::Data<Gateway>;

/// `?notice=` and `?error=` after a form.
#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    pub notice: Option<String>,
    pub error: Option<String>,
}

fn flash(f: &Flash) -> minijinja::Value {
    context! { notice => f.notice.clone(), error => f.error.clone() }
}

/// A list or an error message, for templates.
fn list<T: serde::Serialize>(r: admin::AdminResult<Vec<T>>) -> (minijinja::Value, Option<String>) {
    match r {
        Ok(items) => (minijinja::Value::from(Serde(items)), None),
        Err(p) => (minijinja::Value::from(Vec::<i32>::new()), Some(p.message)),
    }
}

async fn login(gw: Gw, f: web::Query<Flash>) -> HttpResponse {
    render(&gw, None, "login.html", context! { ..flash(&f) })
}

async fn dashboard(gw: Gw, c: Console, f: web::Query<Flash>) -> HttpResponse {
    let since = gw.now_millis() - 3_600_000;
    let counts = gw.store.handshake_counts(since).await.unwrap_or_default();
    let (allowed, denied): (i64, i64) = counts.iter().fold((0, 0), |(a, d), (outcome, _, n)| {
        if outcome == "allowed" {
            (a + n, d)
        } else {
            (a, d + n)
        }
    });
    let by_code: Vec<(String, i64)> = counts
        .iter()
        .filter(|(o, _, _)| o == "denied")
        .map(|(_, code, n)| (code.clone().unwrap_or_else(|| "-".into()), *n))
        .collect();
    let (users, teams, workbooks, grants) = gw.policy.read().counts();
    let settings = admin::settings::get(&gw);
    render(
        &gw,
        Some(&c),
        "dashboard.html",
        context! {
            allowed, denied, by_code, users, teams, workbooks, grants,
            settings => Serde(settings), ..flash(&f)
        },
    )
}

async fn settings_page(gw: Gw, c: Console, f: web::Query<Flash>) -> HttpResponse {
    let (types, _) = list(account_types::list(&gw).await);
    render(
        &gw,
        Some(&c),
        "settings.html",
        context! {
            settings => Serde(admin::settings::get(&gw)), account_types => types, ..flash(&f)
        },
    )
}

#[derive(Debug, Default, Deserialize)]
struct Search {
    q: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

async fn users_page(gw: Gw, c: Console, s: web::Query<Search>) -> HttpResponse {
    let q = s.q.clone().unwrap_or_default();
    gw.recorder.flush().await;
    let found = gw.store.search_users(q.trim(), 200).await;
    let users: Vec<admin::views::UserView> = {
        let state = gw.policy.read();
        found
            .unwrap_or_default()
            .iter()
            .map(|u| admin::views::UserView::new(u, &state))
            .collect()
    };
    let (teams, _) = list(teams::list(&gw).await);
    let (types, _) = list(account_types::list(&gw).await);
    render(
        &gw,
        Some(&c),
        "users.html",
        context! {
            q, users => Serde(users), teams, account_types => types,
            notice => s.notice.clone(), error => s.error.clone()
        },
    )
}

async fn user_page(gw: Gw, c: Console, id: web::Path<i64>, f: web::Query<Flash>) -> HttpResponse {
    match admin::users::get(&gw, *id).await {
        Ok(user) => {
            let (teams, _) = list(teams::list(&gw).await);
            let (types, _) = list(account_types::list(&gw).await);
            let events = audit::list(
                &gw,
                audit::AuditQuery {
                    email: Some(user.email.clone()),
                    limit: Some(20),
                    ..audit::AuditQuery::default()
                },
            )
            .await
            .unwrap_or_default();
            render(
                &gw,
                Some(&c),
                "user.html",
                context! {
                    user => Serde(user), teams, account_types => types, events => Serde(events), ..flash(&f)
                },
            )
        }
        Err(p) => super::back("/admin/users", Err(p)),
    }
}

async fn teams_page(gw: Gw, c: Console, f: web::Query<Flash>) -> HttpResponse {
    let (teams, error) = list(teams::list(&gw).await);
    render(
        &gw,
        Some(&c),
        "teams.html",
        context! { teams, load_error => error, ..flash(&f) },
    )
}

async fn account_types_page(gw: Gw, c: Console, f: web::Query<Flash>) -> HttpResponse {
    let (types, _) = list(account_types::list(&gw).await);
    render(
        &gw,
        Some(&c),
        "account_types.html",
        context! { account_types => types, ..flash(&f) },
    )
}

async fn workbooks_page(gw: Gw, c: Console, f: web::Query<Flash>) -> HttpResponse {
    let (spaces, _) = list(workspaces::list(&gw).await);
    let (books, _) = list(workbooks::list(&gw).await);
    let (all_grants, _) = list(grants::list(&gw, grants::GrantQuery::default()).await);
    let (teams, _) = list(teams::list(&gw).await);
    render(
        &gw,
        Some(&c),
        "workbooks.html",
        context! {
            workspaces => spaces, workbooks => books, grants => all_grants, teams, ..flash(&f)
        },
    )
}

async fn clients_page(gw: Gw, c: Console, f: web::Query<Flash>) -> HttpResponse {
    let (list_, _) = list(clients::list(&gw).await);
    render(
        &gw,
        Some(&c),
        "clients.html",
        context! { clients => list_, ..flash(&f) },
    )
}

async fn audit_page(gw: Gw, c: Console, q: web::Query<audit::AuditQuery>) -> HttpResponse {
    let q = q.into_inner();
    let filters = context! {
        email => q.email.clone(), event => q.event.clone(), outcome => q.outcome.clone()
    };
    let query = audit::AuditQuery {
        limit: Some(q.limit.unwrap_or(200)),
        ..q
    };
    let (entries, error) = list(audit::list(&gw, query).await);
    render(
        &gw,
        Some(&c),
        "audit.html",
        context! { entries, filters, error },
    )
}

#[derive(Debug, Default, Deserialize)]
struct ExplainForm {
    email: Option<String>,
    workbook: Option<String>,
    tag: Option<String>,
}

async fn explain_page(gw: Gw, c: Console, q: web::Query<ExplainForm>) -> HttpResponse {
    let q = q.into_inner();
    let (result, error) = match (&q.email, &q.workbook) {
        (Some(email), Some(workbook)) if !email.is_empty() && !workbook.is_empty() => {
            match explain::explain(
                &gw,
                explain::ExplainQuery {
                    email: email.clone(),
                    workbook: workbook.clone(),
                    tag: q.tag.clone(),
                },
            ) {
                Ok(e) => (Some(e), None),
                Err(p) => (None, Some(p.message)),
            }
        }
        _ => (None, None),
    };
    let (books, _) = list(workbooks::list(&gw).await);
    render(
        &gw,
        Some(&c),
        "explain.html",
        context! {
            form => context! { email => q.email, workbook => q.workbook, tag => q.tag },
            result => result.map(Serde), error, workbooks => books
        },
    )
}

async fn inspect_page(gw: Gw, c: Console) -> HttpResponse {
    render(&gw, Some(&c), "inspect.html", context! {})
}

async fn sandbox_page(gw: Gw, c: Console) -> HttpResponse {
    super::actions::sandbox_form(&gw, &c, None, None, None).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/login", web::get().to(login))
        .route("/admin/", web::get().to(dashboard))
        .route(
            "/admin",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/admin/"))
                    .finish()
            }),
        )
        .route("/admin/settings", web::get().to(settings_page))
        .route("/admin/users", web::get().to(users_page))
        .route("/admin/users/{id}", web::get().to(user_page))
        .route("/admin/teams", web::get().to(teams_page))
        .route("/admin/account-types", web::get().to(account_types_page))
        .route("/admin/workbooks", web::get().to(workbooks_page))
        .route("/admin/clients", web::get().to(clients_page))
        .route("/admin/audit", web::get().to(audit_page))
        .route("/admin/explain", web::get().to(explain_page))
        .route("/admin/inspect", web::get().to(inspect_page))
        .route("/admin/sandbox", web::get().to(sandbox_page));
}
