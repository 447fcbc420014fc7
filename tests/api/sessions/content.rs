//! Template content (SPEC §6): query parameters, company separation and the
//! tenant directory.

use reqwest::StatusCode;
use serde_json::{Value, json};

use embedgate::clock::Clock;

use super::support::*;
use crate::helpers::*;

const SALES: &str = "/embed/workbooks/sales";
const COMPANY_REQUIRED: &str = "Company separation requires that you are assigned to a company.";

// ---- query parameters ------------------------------------------------------

#[tokio::test]
async fn query_parameters_other_than_the_token_reach_the_template_in_order() {
    let app = spawn_app().await;
    seed(&app).await;
    let token = app.token().sign();
    let res = app
        .get(&format!(
            "/embed/workbooks/sales?theme=dark&jwt={token}&b=2&a=1&note=x%20y"
        ))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        "/embed/workbooks/sales?theme=dark&b=2&a=1&note=x%20y"
    );
    assert!(!location.contains(&token));
    let cookie = session_cookie(&res).unwrap();
    let dark = ok_page(&app, &location, &cookie).await;
    assert!(dark.contains("#0d1117"), "theme=dark is not dark: {dark}");
    let light = ok_page(&app, SALES, &cookie).await;
    assert!(!light.contains("#0d1117"), "no theme is not light: {light}");
    let other = ok_page(&app, "/embed/workbooks/sales?theme=light", &cookie).await;
    assert!(!other.contains("#0d1117"));
    // Sub-paths get the query too.
    let page = ok_page(
        &app,
        "/embed/workbooks/sales/pages/by-region?theme=dark",
        &cookie,
    )
    .await;
    assert!(page.contains("#0d1117"));
}

#[tokio::test]
async fn the_token_alias_is_dropped_from_the_redirect_too() {
    let app = spawn_app().await;
    seed(&app).await;
    let token = app.token().sign();
    let res = app
        .get(&format!(
            "/embed/workbooks/sales/pages/by-region?z=1&:jwt={token}&theme=dark"
        ))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"],
        "/embed/workbooks/sales/pages/by-region?z=1&theme=dark"
    );
}

// ---- company separation ----------------------------------------------------

/// A grant that lets Globex users (company globex) open sales.
async fn globex_on_sales(app: &TestApp) {
    app.admin()
        .post(
            "/grants",
            json!({"team": "globex-analysts", "workbook": "sales", "level": "view"}),
        )
        .await;
}

#[tokio::test]
async fn with_company_separation_each_company_sees_its_own_rows() {
    let app = spawn_app().await;
    seed(&app).await;
    globex_on_sales(&app).await;
    separation(&app, true).await;
    let ana = app.open(&app.token().sign(), "sales").await;
    let html = ok_page(&app, SALES, &ana).await;
    assert_eq!(sales_rows(&html), 5);
    assert!(!html.contains("globex"), "a Globex row leaked: {html}");
    let by_region = ok_page(&app, "/embed/workbooks/sales/pages/by-region", &ana).await;
    assert_eq!(sales_rows(&by_region), 5);
    assert!(!by_region.contains("East"), "Globex's region leaked");

    let gina = app
        .open(&TokenBuilder::globex(app.clock.unix()).sign(), "sales")
        .await;
    let html = ok_page(&app, SALES, &gina).await;
    assert_eq!(sales_rows(&html), 4);
    assert!(!html.contains(">acme<"), "an Acme row leaked: {html}");
    // The tag is separated as well.
    let v2 = ok_page(&app, "/embed/workbooks/sales?tag=v2", &ana).await;
    assert!(v2.contains("Sales, version 2"));
    // Monthly totals of Acme's rows only (2026-08: 1200 + 830).
    assert!(v2.contains("2030"), "{v2}");
    assert!(!v2.contains("4130"), "the v2 totals include Globex: {v2}");
}

#[tokio::test]
async fn an_all_companies_account_type_sees_every_row() {
    let app = spawn_app().await;
    seed(&app).await;
    app.admin()
        .post(
            "/account-types",
            json!({"name": "Auditor", "permissions": ["view", "all_companies"]}),
        )
        .await;
    separation(&app, true).await;
    let token = app
        .token()
        .email("audrey@acme.example")
        .claim("account_type", json!("Auditor"));
    let cookie = app.open(&token.sign(), "sales").await;
    assert_eq!(sales_seen(&app, &cookie).await, 9);
    // Even without a company attribute.
    let token = app
        .token()
        .email("aldo@acme.example")
        .claim("account_type", json!("Auditor"))
        .without("user_attributes");
    let cookie = app.open(&token.sign(), "sales").await;
    assert_eq!(sales_seen(&app, &cookie).await, 9);
}

#[tokio::test]
async fn a_user_without_a_company_is_company_required_at_the_handshake() {
    let app = spawn_app().await;
    seed(&app).await;
    separation(&app, true).await;
    let token = app
        .token()
        .email("nora@acme.example")
        .without("user_attributes");
    let message = assert_error(
        app.handshake(&token.sign(), "sales").await,
        403,
        "company_required",
    )
    .await;
    assert_eq!(message, COMPANY_REQUIRED);
    // An empty company is no company.
    let token = app
        .token()
        .email("nora@acme.example")
        .claim("user_attributes", json!({"company": ""}));
    let message = assert_error(
        app.handshake(&token.sign(), "sales").await,
        403,
        "company_required",
    )
    .await;
    assert_eq!(message, COMPANY_REQUIRED);
}

#[tokio::test]
async fn a_user_without_a_company_is_company_required_on_the_next_session_request() {
    let app = spawn_app().await;
    seed(&app).await;
    let token = app
        .token()
        .email("nora@acme.example")
        .without("user_attributes");
    let cookie = app.open(&token.sign(), "sales").await;
    assert_eq!(sales_seen(&app, &cookie).await, 9);
    separation(&app, true).await;
    let message = assert_error(
        app.get_with_cookie(SALES, &cookie).await,
        403,
        "company_required",
    )
    .await;
    assert_eq!(message, COMPANY_REQUIRED);
    let message = assert_error(
        app.get_with_cookie("/embed/workbooks/sales/pages/by-region", &cookie)
            .await,
        403,
        "company_required",
    )
    .await;
    assert_eq!(message, COMPANY_REQUIRED);
}

#[tokio::test]
async fn a_workbook_without_a_company_field_is_not_separated() {
    let app = spawn_app().await;
    seed(&app).await;
    separation(&app, true).await;
    let token = TokenBuilder::globex(app.clock.unix())
        .email("nico@globex.example")
        .without("user_attributes");
    let cookie = app.open(&token.sign(), "inventory").await;
    let html = ok_page(&app, "/embed/workbooks/inventory", &cookie).await;
    for sku in ["W-01", "G-02", "Z-03"] {
        assert!(html.contains(sku), "{sku} missing: {html}");
    }
    let gina = app
        .open(&TokenBuilder::globex(app.clock.unix()).sign(), "inventory")
        .await;
    let html = ok_page(&app, "/embed/workbooks/inventory", &gina).await;
    assert!(html.contains("W-01") && html.contains("Z-03"));
}

#[tokio::test]
async fn turning_company_separation_on_and_off_takes_effect_on_the_next_request() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    assert_eq!(sales_seen(&app, &cookie).await, 9);
    separation(&app, true).await;
    assert_eq!(sales_seen(&app, &cookie).await, 5);
    separation(&app, false).await;
    assert_eq!(sales_seen(&app, &cookie).await, 9);
}

#[tokio::test]
async fn the_company_attribute_setting_is_honoured() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    let settings = app
        .admin()
        .settings(json!({"company_separation": {"enabled": true, "attribute": "tenant"}}))
        .await;
    assert_eq!(settings["company_separation"]["attribute"], "tenant");
    // ana has a "company" but no "tenant".
    let message = assert_error(
        app.get_with_cookie(SALES, &cookie).await,
        403,
        "company_required",
    )
    .await;
    assert_eq!(message, COMPANY_REQUIRED);
    let token = app.token().claim(
        "user_attributes",
        json!({"company": "acme", "tenant": "globex"}),
    );
    let cookie = app.open(&token.sign(), "sales").await;
    assert_eq!(sales_seen(&app, &cookie).await, 4);
    // Back to the default attribute: the company decides again.
    app.admin()
        .settings(json!({"company_separation": {"attribute": "company"}}))
        .await;
    assert_eq!(sales_seen(&app, &cookie).await, 5);
}

// ---- the directory ---------------------------------------------------------

/// Users of both customers in several teams, made through the admin API.
async fn populate(app: &TestApp) {
    let admin = app.admin();
    admin
        .post(
            "/teams",
            json!({"name": "globex-managers", "description": "Globex managers"}),
        )
        .await;
    for (email, teams, first) in [
        ("al@acme.example", json!(["acme-analysts"]), "Al"),
        ("mo@acme.example", json!(["acme-managers"]), "Mo"),
        (
            "both@acme.example",
            json!(["acme-analysts", "acme-managers"]),
            "Bo",
        ),
        ("gus@globex.example", json!(["globex-analysts"]), "Gus"),
        ("gm@globex.example", json!(["globex-managers"]), "Gail"),
        (
            "gboth@globex.example",
            json!(["globex-analysts", "globex-managers"]),
            "Gabe",
        ),
        ("stan@staff.example", json!(["staff"]), "Stan"),
        ("nobody@acme.example", json!([]), "Nobody"),
    ] {
        admin
            .post(
                "/users",
                json!({"email": email, "teams": teams, "first_name": first, "last_name": "Tester"}),
            )
            .await;
    }
}

fn emails(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn me_describes_the_session_user() {
    let app = spawn_app().await;
    seed(&app).await;
    let token = app
        .token()
        .claim("first_name", json!("Ana"))
        .claim("last_name", json!("Lima"));
    let cookie = app.open(&token.sign(), "sales").await;
    let me = me(&app, "sales", &cookie).await;
    assert_eq!(
        me,
        json!({
            "email": "ana@acme.example",
            "first_name": "Ana",
            "last_name": "Lima",
            "account_type": "Viewer",
            "teams": ["acme-analysts"],
            "level": "view",
            "permissions": ["view"],
        })
    );
}

#[tokio::test]
async fn the_workbook_list_shows_only_workbooks_the_user_may_open() {
    let app = spawn_app().await;
    seed(&app).await;
    let ana = app.open(&app.token().sign(), "sales").await;
    let list = ok_json(&app, "/embed/workbooks/sales/_api/workbooks", &ana).await;
    assert_eq!(list, json!([{"id": "sales", "name": "Sales"}]));

    let manager = app
        .token()
        .email("mo@acme.example")
        .claim("teams", json!(["acme-managers"]));
    let mo = app.open(&manager.sign(), "orders").await;
    let list = ok_json(&app, "/embed/workbooks/orders/_api/workbooks", &mo).await;
    assert_eq!(
        list,
        json!([{"id": "orders", "name": "Orders"}, {"id": "sales", "name": "Sales"}])
    );
    let list = ok_json(&app, "/embed/workbooks/orders/_api/workbooks?q=ord", &mo).await;
    assert_eq!(list, json!([{"id": "orders", "name": "Orders"}]));
    let list = ok_json(&app, "/embed/workbooks/orders/_api/workbooks?q=SAL", &mo).await;
    assert_eq!(list, json!([{"id": "sales", "name": "Sales"}]));
    // A workbook the user may not open is not found by name either.
    let list = ok_json(&app, "/embed/workbooks/orders/_api/workbooks?q=invent", &mo).await;
    assert_eq!(list, json!([]));

    let gina = app
        .open(&TokenBuilder::globex(app.clock.unix()).sign(), "inventory")
        .await;
    let list = ok_json(&app, "/embed/workbooks/inventory/_api/workbooks", &gina).await;
    assert_eq!(list, json!([{"id": "inventory", "name": "Inventory"}]));
}

#[tokio::test]
async fn the_user_list_shows_only_users_who_share_a_team() {
    let app = spawn_app().await;
    seed(&app).await;
    populate(&app).await;
    let ana = app.open(&app.token().sign(), "sales").await;
    let list = ok_json(&app, "/embed/workbooks/sales/_api/users", &ana).await;
    assert_eq!(
        emails(&list),
        ["al@acme.example", "ana@acme.example", "both@acme.example"]
    );
    for entry in list.as_array().unwrap() {
        let mut keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["email", "first_name", "last_name"], "{entry}");
    }
    let text = list.to_string();
    for leak in [
        "globex",
        "Gus",
        "Gail",
        "Gabe",
        "staff",
        "Stan",
        "acme-managers",
        "mo@",
    ] {
        assert!(
            !text.contains(leak),
            "{leak} leaked to an Acme user: {text}"
        );
    }
    let list = ok_json(&app, "/embed/workbooks/sales/_api/users?q=al", &ana).await;
    assert_eq!(emails(&list), ["al@acme.example"]);
    for q in ["gus", "globex", "stan", "mo@"] {
        let list = ok_json(
            &app,
            &format!("/embed/workbooks/sales/_api/users?q={q}"),
            &ana,
        )
        .await;
        assert_eq!(list, json!([]), "q={q}");
    }

    let gina = app
        .open(&TokenBuilder::globex(app.clock.unix()).sign(), "inventory")
        .await;
    let list = ok_json(&app, "/embed/workbooks/inventory/_api/users", &gina).await;
    assert_eq!(
        emails(&list),
        [
            "gboth@globex.example",
            "gina@globex.example",
            "gus@globex.example"
        ]
    );
    let text = list.to_string();
    for leak in [
        "acme",
        "Al\"",
        "Bo\"",
        "staff",
        "Stan",
        "globex-managers",
        "gm@",
    ] {
        assert!(
            !text.contains(leak),
            "{leak} leaked to a Globex user: {text}"
        );
    }
    let list = ok_json(&app, "/embed/workbooks/inventory/_api/users?q=acme", &gina).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn the_team_list_shows_only_the_users_own_teams() {
    let app = spawn_app().await;
    seed(&app).await;
    populate(&app).await;
    let token = app
        .token()
        .email("max@acme.example")
        .claim("teams", json!(["acme-analysts", "acme-managers"]));
    let cookie = app.open(&token.sign(), "sales").await;
    let teams = ok_json(&app, "/embed/workbooks/sales/_api/teams", &cookie).await;
    assert_eq!(
        teams,
        json!([
            {"name": "acme-analysts", "description": "acme-analysts team"},
            {"name": "acme-managers", "description": "acme-managers team"},
        ])
    );
    let ana = app.open(&app.token().sign(), "sales").await;
    let teams = ok_json(&app, "/embed/workbooks/sales/_api/teams", &ana).await;
    assert_eq!(
        teams,
        json!([{"name": "acme-analysts", "description": "acme-analysts team"}])
    );
    let gina = app
        .open(&TokenBuilder::globex(app.clock.unix()).sign(), "inventory")
        .await;
    let teams = ok_json(&app, "/embed/workbooks/inventory/_api/teams", &gina).await;
    assert_eq!(
        teams,
        json!([{"name": "globex-analysts", "description": "globex-analysts team"}])
    );
}

#[tokio::test]
async fn the_directory_follows_membership_changes_on_the_next_request() {
    let app = spawn_app().await;
    seed(&app).await;
    populate(&app).await;
    let ana = app.open(&app.token().sign(), "sales").await;
    let before = ok_json(&app, "/embed/workbooks/sales/_api/users", &ana).await;
    assert!(!emails(&before).contains(&"gus@globex.example".to_owned()));
    // Moving al out of the team hides him at once.
    let al = user_id(&app, "al@acme.example").await;
    app.admin()
        .patch(&format!("/users/{al}"), json!({"teams": ["staff"]}))
        .await;
    let after = ok_json(&app, "/embed/workbooks/sales/_api/users", &ana).await;
    assert_eq!(emails(&after), ["ana@acme.example", "both@acme.example"]);
}

// ---- the render cache ------------------------------------------------------

/// Pages are cached by what they are rendered from (SPEC §6 says nothing of
/// it; README "Behaviour where the contract is silent"): a page seen before
/// must still follow every change an admin makes to what it shows.
#[tokio::test]
async fn a_page_seen_before_shows_renames_and_user_changes_on_the_next_request() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    let before = ok_page(&app, SALES, &cookie).await;
    assert_eq!(ok_page(&app, SALES, &cookie).await, before);
    assert!(before.contains("<h1>Sales</h1>"), "{before}");
    assert!(before.contains(">acme-analysts<"), "{before}");
    assert!(before.contains("ana@acme.example"), "{before}");

    let admin = app.admin();
    admin
        .patch("/workbooks/sales", json!({"name": "Sales EU"}))
        .await;
    let team = team_id(&app, "acme-analysts").await;
    admin
        .patch(
            &format!("/teams/{team}"),
            json!({"name": "acme-analysts-eu"}),
        )
        .await;
    let user = user_id(&app, "ana@acme.example").await;
    admin
        .patch(&format!("/users/{user}"), json!({"first_name": "Ana"}))
        .await;

    let after = ok_page(&app, SALES, &cookie).await;
    assert!(after.contains("<h1>Sales EU</h1>"), "{after}");
    assert!(after.contains(">acme-analysts-eu<"), "{after}");
    assert!(!after.contains(">acme-analysts<"), "{after}");
    assert!(after.contains("Ana &middot;"), "{after}");
}
