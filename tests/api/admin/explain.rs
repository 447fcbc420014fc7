//! `GET /admin/api/explain` (SPEC §5, §8): the decision a handshake would
//! make now for a stored user, and why, in words a person can follow.

use embedgate::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use super::support::*;
use crate::helpers::*;

async fn explain(app: &TestApp, query: &str) -> Value {
    app.admin().get(&format!("/explain?{query}")).await
}

fn reasons(e: &Value) -> Vec<String> {
    e["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("reasons must be a list: {e}"))
        .iter()
        .map(|r| {
            r.as_str()
                .unwrap_or_else(|| panic!("a reason is a string: {e}"))
                .to_owned()
        })
        .collect()
}

/// The one reason that mentions every needle (case-sensitive).
fn reason_with(e: &Value, needles: &[&str]) -> String {
    reasons(e)
        .into_iter()
        .find(|r| needles.iter().all(|n| r.contains(n)))
        .unwrap_or_else(|| panic!("no reason mentions all of {needles:?}: {e:#}"))
}

/// The last reason (the rule that decided a denial) mentions every needle.
fn last_reason_says(e: &Value, needles: &[&str]) {
    let all = reasons(e);
    let last = all
        .last()
        .unwrap_or_else(|| panic!("a denial must give a reason: {e:#}"));
    for n in needles {
        assert!(
            last.to_lowercase().contains(&n.to_lowercase()),
            "the last reason {last:?} should mention {n:?}: {e:#}"
        );
    }
}

fn assert_allowed(e: &Value, level: &str, permissions: &[&str]) {
    assert_eq!(e["allowed"], true, "{e:#}");
    assert_eq!(e["code"], Value::Null, "{e:#}");
    assert_eq!(e["level"], level, "{e:#}");
    assert_eq!(sorted(&e["permissions"]), sorted_strs(permissions), "{e:#}");
}

fn assert_denied(e: &Value, code: &str) {
    let mut keys: Vec<String> = e.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        sorted_strs(&["allowed", "level", "permissions", "code", "reasons"]),
        "{e:#}"
    );
    assert_eq!(e["allowed"], false, "{e:#}");
    assert_eq!(e["code"], code, "{e:#}");
    assert_eq!(e["level"], Value::Null, "{e:#}");
    assert_eq!(e["permissions"], json!([]), "{e:#}");
}

async fn create_user(app: &TestApp, body: Value) -> i64 {
    app.admin().post("/users", body).await["id"]
        .as_i64()
        .expect("a user id")
}

async fn workspace(app: &TestApp, name: &str, parent: Option<i64>) -> i64 {
    let body = match parent {
        Some(p) => json!({"name": name, "parent": p}),
        None => json!({"name": name}),
    };
    app.admin().post("/workspaces", body).await["id"]
        .as_i64()
        .expect("a workspace id")
}

fn plain_source() -> Value {
    json!({"type": "template", "template": "inventory.html", "dataset": "inventory.csv"})
}

#[tokio::test]
async fn a_direct_workbook_grant_is_explained_by_the_users_teams_and_the_granted_workbook() {
    let app = spawn_app().await;
    seed(&app).await;
    create_user(
        &app,
        json!({"email": "ana@acme.example", "teams": ["acme-analysts", "staff"]}),
    )
    .await;

    let e = explain(&app, "email=ana@acme.example&workbook=sales").await;
    assert_allowed(&e, "view", &["view"]);
    // The user's teams, both of them.
    reason_with(&e, &["teams", "acme-analysts", "staff"]);
    // The grant: which team, which level, on what.
    reason_with(&e, &["acme-analysts", "view", "workbook \"sales\""]);
    // staff has no grant and no reason says it has one.
    assert!(
        !reasons(&e)
            .iter()
            .any(|r| r.contains("staff") && r.contains("workbook \"sales\"")),
        "{e:#}"
    );
    // The account type that shaped the permissions.
    reason_with(&e, &["Viewer", "permission"]);
}

#[tokio::test]
async fn a_workspace_grant_two_levels_up_is_explained_by_the_granting_workspace() {
    let app = spawn_app().await;
    seed(&app).await;
    let regions = workspace(&app, "regions", None).await;
    let emea = workspace(&app, "emea", Some(regions)).await;
    let nordics = workspace(&app, "nordics", Some(emea)).await;
    app.admin()
        .post(
            "/workbooks",
            json!({"id": "nordic-sales", "name": "Nordic sales", "workspace": nordics,
                "source": plain_source()}),
        )
        .await;
    app.admin()
        .post(
            "/grants",
            json!({"team": "staff", "workspace": regions, "level": "explore"}),
        )
        .await;
    create_user(
        &app,
        json!({"email": "sam@corp.example", "teams": ["staff"], "account_type": "Explorer"}),
    )
    .await;
    create_user(
        &app,
        json!({"email": "nils@corp.example", "teams": ["acme-analysts"]}),
    )
    .await;

    let e = explain(&app, "email=sam@corp.example&workbook=nordic-sales").await;
    assert_allowed(&e, "explore", &["view", "explore", "export"]);
    reason_with(&e, &["staff", "explore", "workspace \"regions\""]);

    // Someone outside the granted team is not let in through the workspace.
    let e = explain(&app, "email=nils@corp.example&workbook=nordic-sales").await;
    assert_denied(&e, "access_denied");
    last_reason_says(&e, &["grant", "nordic-sales"]);
}

#[tokio::test]
async fn a_tag_is_allowed_only_through_a_grant_for_that_tag() {
    let app = spawn_app().await;
    seed(&app).await;
    app.open(&app.token().sign(), "sales").await;
    app.open(
        &app.token()
            .email("mia@acme.example")
            .claim("teams", json!(["acme-managers"]))
            .sign(),
        "orders",
    )
    .await;
    app.admin()
        .expect(
            Method::PUT,
            "/workbooks/sales/tags/v3",
            Some(json!({"source": plain_source()})),
            200,
        )
        .await;

    let e = explain(&app, "email=ana@acme.example&workbook=sales&tag=v2").await;
    assert_allowed(&e, "view", &["view"]);
    reason_with(&e, &["acme-analysts", "workbook \"sales\"", "tag \"v2\""]);

    // v3 exists but nobody was granted it.
    let e = explain(&app, "email=ana@acme.example&workbook=sales&tag=v3").await;
    assert_denied(&e, "access_denied");
    last_reason_says(&e, &["grant", "tag \"v3\""]);

    // mia's workspace grant is for the published version, not for v2.
    let e = explain(&app, "email=mia@acme.example&workbook=sales").await;
    assert_allowed(&e, "explore", &["view"]);
    let e = explain(&app, "email=mia@acme.example&workbook=sales&tag=v2").await;
    assert_denied(&e, "access_denied");
    last_reason_says(&e, &["grant", "tag \"v2\""]);
}

#[tokio::test]
async fn the_account_type_caps_the_permissions_of_an_edit_grant() {
    let app = spawn_app().await;
    seed(&app).await;
    app.admin()
        .post(
            "/grants",
            json!({"team": "staff", "workbook": "inventory", "level": "edit"}),
        )
        .await;
    for (email, account_type) in [
        ("vic@corp.example", "Viewer"),
        ("eve@corp.example", "Explorer"),
        ("cat@corp.example", "Creator"),
    ] {
        create_user(
            &app,
            json!({"email": email, "teams": ["staff"], "account_type": account_type}),
        )
        .await;
    }

    let e = explain(&app, "email=vic@corp.example&workbook=inventory").await;
    assert_allowed(&e, "edit", &["view"]);
    reason_with(&e, &["staff", "edit", "workbook \"inventory\""]);
    let why = reason_with(&e, &["\"Viewer\"", "permission"]);
    assert!(why.contains("view"), "{why}");
    assert!(!why.contains("explore"), "Viewer has no explore: {why}");

    let e = explain(&app, "email=eve@corp.example&workbook=inventory").await;
    assert_allowed(&e, "edit", &["view", "explore", "export"]);
    reason_with(&e, &["\"Explorer\"", "permission", "explore", "export"]);

    let e = explain(&app, "email=cat@corp.example&workbook=inventory").await;
    assert_allowed(&e, "edit", &["view", "explore", "export", "edit"]);
    reason_with(&e, &["\"Creator\"", "permission", "edit"]);
}

#[tokio::test]
async fn the_highest_of_several_grants_wins() {
    let app = spawn_app().await;
    let fixture = seed(&app).await;
    app.open(
        &app.token()
            .email("max@acme.example")
            .claim("teams", json!(["acme-analysts", "acme-managers"]))
            .claim("account_type", json!("Creator"))
            .sign(),
        "sales",
    )
    .await;

    // view on the workbook (acme-analysts) and explore on workspace reports
    // (acme-managers): explore.
    let e = explain(&app, "email=max@acme.example&workbook=sales").await;
    assert_allowed(&e, "explore", &["view", "explore", "export"]);
    reason_with(&e, &["acme-analysts", "view", "workbook \"sales\""]);
    reason_with(&e, &["acme-managers", "explore", "workspace \"reports\""]);

    // An edit grant on the inner workspace finance outranks both.
    app.admin()
        .post(
            "/grants",
            json!({"team": "acme-analysts", "workspace": fixture.finance, "level": "edit"}),
        )
        .await;
    let e = explain(&app, "email=max@acme.example&workbook=sales").await;
    assert_allowed(&e, "edit", &["view", "explore", "export", "edit"]);
    reason_with(&e, &["acme-analysts", "edit", "workspace \"finance\""]);
    reason_with(&e, &["acme-managers", "explore", "workspace \"reports\""]);
}

#[tokio::test]
async fn no_grant_and_an_unknown_workbook_are_both_access_denied_with_the_same_shape() {
    let app = spawn_app().await;
    seed(&app).await;
    app.open(&app.token().sign(), "sales").await;

    let no_grant = explain(&app, "email=ana@acme.example&workbook=inventory").await;
    assert_denied(&no_grant, "access_denied");
    last_reason_says(&no_grant, &["no team", "grant", "\"inventory\""]);

    let orders = explain(&app, "email=ana@acme.example&workbook=orders").await;
    assert_denied(&orders, "access_denied");
    last_reason_says(&orders, &["no team", "grant", "\"orders\""]);

    let unknown = explain(&app, "email=ana@acme.example&workbook=no-such-workbook").await;
    assert_denied(&unknown, "access_denied");
    last_reason_says(&unknown, &["no workbook", "no-such-workbook"]);

    for key in ["allowed", "level", "permissions", "code"] {
        assert_eq!(no_grant[key], unknown[key], "{key}");
    }
}

#[tokio::test]
async fn a_deactivated_user_is_explained_as_user_deactivated_before_any_grant() {
    let app = spawn_app().await;
    seed(&app).await;
    app.open(&app.token().sign(), "sales").await;
    let ana = app.admin().user("ana@acme.example").await["id"]
        .as_i64()
        .unwrap();
    app.admin()
        .patch(&format!("/users/{ana}"), json!({"status": "deactivated"}))
        .await;

    let e = explain(&app, "email=ana@acme.example&workbook=sales").await;
    assert_denied(&e, "user_deactivated");
    last_reason_says(&e, &["deactivated"]);
    // The decision stopped there: no grant is offered as a reason.
    assert!(
        !reasons(&e).iter().any(|r| r.contains("workbook \"sales\"")),
        "{e:#}"
    );
}

#[tokio::test]
async fn a_user_without_a_company_is_explained_as_company_required_under_separation() {
    let app = spawn_app().await;
    seed(&app).await;
    let nico = create_user(
        &app,
        json!({"email": "nico@acme.example", "teams": ["acme-analysts"],
            "attributes": {"company": "acme"}}),
    )
    .await;
    // Separation off: the company does not matter.
    let e = explain(&app, "email=nico@acme.example&workbook=sales").await;
    assert_allowed(&e, "view", &["view"]);

    // On, with the attribute "tenant": nico has a company but no tenant.
    app.admin()
        .settings(json!({"company_separation": {"enabled": true, "attribute": "tenant"}}))
        .await;
    let e = explain(&app, "email=nico@acme.example&workbook=sales").await;
    assert_denied(&e, "company_required");
    last_reason_says(&e, &["company separation", "\"tenant\""]);

    app.admin()
        .patch(
            &format!("/users/{nico}"),
            json!({"attributes": {"tenant": "acme"}}),
        )
        .await;
    let e = explain(&app, "email=nico@acme.example&workbook=sales").await;
    assert_allowed(&e, "view", &["view"]);
    reason_with(&e, &["company", "\"acme\""]);
}

#[tokio::test]
async fn an_unknown_email_is_explained_as_user_not_provisioned_when_auto_provisioning_is_off() {
    let app = spawn_app().await;
    seed(&app).await;
    app.admin()
        .settings(json!({"auto_provisioning": false}))
        .await;
    let e = explain(&app, "email=nobody@acme.example&workbook=sales").await;
    assert_denied(&e, "user_not_provisioned");
    last_reason_says(&e, &["nobody@acme.example", "auto-provisioning"]);
    assert_eq!(reasons(&e).len(), 1, "{e:#}");
}

#[tokio::test]
async fn explain_changes_nothing_and_writes_no_audit_entry() {
    let app = spawn_app().await;
    seed(&app).await;
    app.open(&app.token().sign(), "sales").await;
    app.open(
        &app.token()
            .email("mia@acme.example")
            .claim("teams", json!(["acme-managers"]))
            .sign(),
        "orders",
    )
    .await;
    // Everything recorded so far is written (including last_seen_at).
    let audit_before = app.admin().audit("limit=1000").await;
    let before = snapshot(&app).await;

    for query in [
        "email=ana@acme.example&workbook=sales",
        "email=ANA@acme.example&workbook=sales&tag=v2",
        "email=mia@acme.example&workbook=orders",
        "email=ana@acme.example&workbook=inventory",
        "email=ana@acme.example&workbook=no-such-workbook",
        "email=nobody@acme.example&workbook=sales",
    ] {
        explain(&app, query).await;
    }

    let audit_after = app.admin().audit("limit=1000").await;
    assert_eq!(audit_before, audit_after, "explain wrote to the audit log");
    assert_eq!(before, snapshot(&app).await, "explain changed the state");
    // It did not create the unknown user either.
    assert_eq!(app.admin().user("nobody@acme.example").await, Value::Null);
}

#[tokio::test]
async fn explain_refuses_a_query_without_email_with_a_bad_email_or_without_workbook() {
    let app = spawn_app().await;
    seed(&app).await;
    app.open(&app.token().sign(), "sales").await;
    for query in [
        "workbook=sales",
        "email=&workbook=sales",
        "email=ana&workbook=sales",
        "email=ana%20smith@acme.example&workbook=sales",
        "email=ana@acme.example",
    ] {
        let res = app
            .admin()
            .send(Method::GET, &format!("/explain?{query}"), None)
            .await;
        assert_error(res, 400, "validation_failed").await;
    }
    // Without the admin token: 401.
    let res = admin_without_bearer(
        &app,
        Method::GET,
        "/explain?email=ana@acme.example&workbook=sales",
        &[],
        None,
    )
    .await;
    assert_error(res, 401, "unauthorized").await;
}

/// What a handshake answers: `None` for a 303, else the error code.
async fn handshake_code(app: &TestApp, token: &str, workbook: &str) -> Option<String> {
    let res = app.handshake(token, workbook).await;
    if res.status() == 303 {
        return None;
    }
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(
        status, 403,
        "a stored user's handshake fails on access: {body}"
    );
    Some(
        body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("an error code: {body}"))
            .to_owned(),
    )
}

#[tokio::test]
async fn explain_agrees_with_what_a_real_handshake_answers() {
    let app = spawn_app().await;
    seed(&app).await;
    let mia = || {
        app.token()
            .email("mia@acme.example")
            .claim("teams", json!(["acme-managers"]))
            .claim("account_type", json!("Explorer"))
    };
    let nora = || {
        app.token()
            .email("nora@acme.example")
            .claim("user_attributes", json!({}))
    };
    let gina = || TokenBuilder::globex(app.clock.unix());
    // Store the users (their tokens carry the same claims later on).
    app.open(&app.token().sign(), "sales").await;
    app.open(&mia().sign(), "orders").await;
    app.open(&gina().sign(), "inventory").await;
    app.open(&nora().sign(), "sales").await;
    app.admin()
        .settings(json!({"company_separation": {"enabled": true}}))
        .await;

    let cases: Vec<(&str, TokenBuilder, &str, Option<&str>)> = vec![
        ("ana@acme.example", app.token(), "sales", None),
        (
            "ana@acme.example",
            app.token(),
            "orders",
            Some("access_denied"),
        ),
        (
            "ana@acme.example",
            app.token(),
            "nope",
            Some("access_denied"),
        ),
        ("mia@acme.example", mia(), "sales", None),
        (
            "mia@acme.example",
            mia(),
            "inventory",
            Some("access_denied"),
        ),
        ("gina@globex.example", gina(), "inventory", None),
        (
            "gina@globex.example",
            gina(),
            "sales",
            Some("access_denied"),
        ),
        (
            "nora@acme.example",
            nora(),
            "sales",
            Some("company_required"),
        ),
    ];
    for (email, token, workbook, expected) in cases {
        let e = explain(&app, &format!("email={email}&workbook={workbook}")).await;
        let got = handshake_code(&app, &token.sign(), workbook).await;
        assert_eq!(got.as_deref(), expected, "handshake {email} {workbook}");
        assert_eq!(e["allowed"], got.is_none(), "{email} {workbook}: {e:#}");
        assert_eq!(
            e["code"].as_str(),
            got.as_deref(),
            "{email} {workbook}: {e:#}"
        );
    }

    // A deactivated user: both say user_deactivated.
    let gina_id = app.admin().user("gina@globex.example").await["id"]
        .as_i64()
        .unwrap();
    app.admin()
        .patch(
            &format!("/users/{gina_id}"),
            json!({"status": "deactivated"}),
        )
        .await;
    let e = explain(&app, "email=gina@globex.example&workbook=inventory").await;
    assert_eq!(e["code"], "user_deactivated", "{e:#}");
    let got = handshake_code(&app, &gina().sign(), "inventory").await;
    assert_eq!(got.as_deref(), Some("user_deactivated"));
}
