//! Access (SPEC §5) and its re-check on every session request (§2).

use reqwest::{Method, StatusCode};
use serde_json::json;

use embedgate::clock::Clock;

use super::support::*;
use crate::helpers::*;

const SALES: &str = "/embed/workbooks/sales";

/// ana's session on `sales`, checked to work.
async fn ana_session(app: &TestApp) -> String {
    let cookie = app.open(&app.token().sign(), "sales").await;
    ok_page(app, SALES, &cookie).await;
    cookie
}

// ---- re-check on every request ---------------------------------------------

#[tokio::test]
async fn removing_the_users_team_membership_denies_the_very_next_request() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = ana_session(&app).await;
    let id = user_id(&app, "ana@acme.example").await;
    app.admin()
        .patch(&format!("/users/{id}"), json!({"teams": []}))
        .await;
    assert_error(
        app.get_with_cookie(SALES, &cookie).await,
        403,
        "access_denied",
    )
    .await;
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales/pages/by-region", &cookie)
            .await,
        403,
        "access_denied",
    )
    .await;
    // Giving the membership back lets the same session in again.
    app.admin()
        .patch(&format!("/users/{id}"), json!({"teams": ["acme-analysts"]}))
        .await;
    ok_page(&app, SALES, &cookie).await;
}

#[tokio::test]
async fn deleting_the_grant_denies_the_very_next_request() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = ana_session(&app).await;
    let grant = grant_id(&app, "acme-analysts", "sales", None).await;
    app.admin().delete(&format!("/grants/{grant}")).await;
    assert_error(
        app.get_with_cookie(SALES, &cookie).await,
        403,
        "access_denied",
    )
    .await;
    // The tag grant is another grant and still opens the tag.
    ok_page(&app, "/embed/workbooks/sales?tag=v2", &cookie).await;
}

#[tokio::test]
async fn deleting_the_team_denies_the_very_next_request() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = ana_session(&app).await;
    let team = team_id(&app, "acme-analysts").await;
    app.admin().delete(&format!("/teams/{team}")).await;
    assert_error(
        app.get_with_cookie(SALES, &cookie).await,
        403,
        "access_denied",
    )
    .await;
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales?tag=v2", &cookie)
            .await,
        403,
        "access_denied",
    )
    .await;
}

#[tokio::test]
async fn deactivating_the_user_is_user_deactivated_on_the_very_next_request() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = ana_session(&app).await;
    let id = user_id(&app, "ana@acme.example").await;
    app.admin()
        .patch(&format!("/users/{id}"), json!({"status": "deactivated"}))
        .await;
    assert_error(
        app.get_with_cookie(SALES, &cookie).await,
        403,
        "user_deactivated",
    )
    .await;
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales/_api/me", &cookie)
            .await,
        403,
        "user_deactivated",
    )
    .await;
}

#[tokio::test]
async fn revoking_the_users_sessions_ends_them_and_a_new_handshake_works() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = ana_session(&app).await;
    let id = user_id(&app, "ana@acme.example").await;
    app.admin()
        .expect(
            Method::POST,
            &format!("/users/{id}/revoke-sessions"),
            None,
            204,
        )
        .await;
    assert_error(
        app.get_with_cookie(SALES, &cookie).await,
        401,
        "session_invalid",
    )
    .await;
    let fresh = app.open(&app.token().sign(), "sales").await;
    ok_page(&app, SALES, &fresh).await;
    // The revoked one stays revoked.
    assert_error(
        app.get_with_cookie(SALES, &cookie).await,
        401,
        "session_invalid",
    )
    .await;
}

#[tokio::test]
async fn deleting_the_embed_client_ends_its_sessions() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = ana_session(&app).await;
    let globex = app
        .open(&TokenBuilder::globex(app.clock.unix()).sign(), "inventory")
        .await;
    app.admin().delete(&format!("/clients/{ACME_CLIENT}")).await;
    assert_error(
        app.get_with_cookie(SALES, &cookie).await,
        401,
        "session_invalid",
    )
    .await;
    // Other clients' sessions go on.
    ok_page(&app, "/embed/workbooks/inventory", &globex).await;
}

#[tokio::test]
async fn deleting_the_user_ends_its_sessions() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = ana_session(&app).await;
    let id = user_id(&app, "ana@acme.example").await;
    app.admin().delete(&format!("/users/{id}")).await;
    assert_error(
        app.get_with_cookie(SALES, &cookie).await,
        401,
        "session_invalid",
    )
    .await;
}

// ---- access ----------------------------------------------------------------

#[tokio::test]
async fn a_workspace_grant_covers_workbooks_at_any_depth() {
    let app = spawn_app().await;
    seed(&app).await;
    let manager = || {
        app.token()
            .email("mo@acme.example")
            .claim("teams", json!(["acme-managers"]))
    };
    // sales is in finance, inside reports: two levels down.
    let sales = app.open(&manager().sign(), "sales").await;
    let html = ok_page(&app, SALES, &sales).await;
    assert_eq!(sales_rows(&html), 9);
    assert_eq!(me(&app, "sales", &sales).await["level"], "explore");
    let orders = app.open(&manager().sign(), "orders").await;
    ok_page(&app, "/embed/workbooks/orders", &orders).await;
    // inventory is outside the workspace.
    assert_error(
        app.handshake(&manager().sign(), "inventory").await,
        403,
        "access_denied",
    )
    .await;
}

#[tokio::test]
async fn a_deeper_workspace_grant_still_covers_the_workbook() {
    let app = spawn_app().await;
    let fixture = seed(&app).await;
    // A grant on the inner workspace only.
    app.admin()
        .post(
            "/grants",
            json!({"team": "globex-analysts", "workspace": fixture.finance, "level": "view"}),
        )
        .await;
    let token = TokenBuilder::globex(app.clock.unix());
    let cookie = app.open(&token.sign(), "sales").await;
    ok_page(&app, SALES, &cookie).await;
    // orders is in reports, not in finance.
    assert_error(
        app.handshake(&TokenBuilder::globex(app.clock.unix()).sign(), "orders")
            .await,
        403,
        "access_denied",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_workbook_and_a_forbidden_one_give_the_same_answer() {
    let app = spawn_app().await;
    seed(&app).await;
    let unknown = app.handshake(&app.token().sign(), "no-such-workbook").await;
    let unknown_status = unknown.status();
    let unknown_body: serde_json::Value = unknown.json().await.unwrap();
    let forbidden = app.handshake(&app.token().sign(), "inventory").await;
    let forbidden_status = forbidden.status();
    let forbidden_body: serde_json::Value = forbidden.json().await.unwrap();
    assert_eq!(unknown_status, StatusCode::FORBIDDEN);
    assert_eq!(unknown_body["error"]["code"], "access_denied");
    assert_eq!(forbidden_status, unknown_status);
    assert_eq!(forbidden_body, unknown_body);
    // The HTML pages are the same too.
    let unknown = app
        .get(&format!(
            "/embed/workbooks/no-such-workbook?jwt={}",
            app.token().sign()
        ))
        .await;
    let forbidden = app
        .get(&format!(
            "/embed/workbooks/inventory?jwt={}",
            app.token().sign()
        ))
        .await;
    assert_eq!(unknown.status(), forbidden.status());
    let (u, f) = (
        unknown.text().await.unwrap(),
        forbidden.text().await.unwrap(),
    );
    assert_eq!(u.replace("no-such-workbook", "inventory"), f);
    assert!(
        !f.contains("inventory"),
        "the denial names the workbook: {f}"
    );
}

#[tokio::test]
async fn a_tag_grant_opens_the_tag_only() {
    let app = spawn_app().await;
    seed(&app).await;
    app.admin()
        .post("/teams", json!({"name": "tag-testers"}))
        .await;
    app.admin()
        .post(
            "/grants",
            json!({"team": "tag-testers", "workbook": "sales", "level": "view", "tag": "v2"}),
        )
        .await;
    let tester = || {
        TokenBuilder::globex(app.clock.unix())
            .email("tess@globex.example")
            .claim("teams", json!(["tag-testers"]))
    };
    let res = app
        .get_json(&format!(
            "/embed/workbooks/sales?tag=v2&jwt={}",
            tester().sign()
        ))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/embed/workbooks/sales?tag=v2");
    let cookie = session_cookie(&res).unwrap();
    let html = ok_page(&app, "/embed/workbooks/sales?tag=v2", &cookie).await;
    assert!(html.contains("Sales, version 2"), "{html}");
    // The published version is not covered by a tag grant.
    assert_error(
        app.get_with_cookie(SALES, &cookie).await,
        403,
        "access_denied",
    )
    .await;
    assert_error(
        app.handshake(&tester().sign(), "sales").await,
        403,
        "access_denied",
    )
    .await;
}

#[tokio::test]
async fn a_published_grant_does_not_open_a_tag() {
    let app = spawn_app().await;
    seed(&app).await;
    let manager = || {
        app.token()
            .email("mo@acme.example")
            .claim("teams", json!(["acme-managers"]))
    };
    let res = app
        .get_json(&format!(
            "/embed/workbooks/sales?tag=v2&jwt={}",
            manager().sign()
        ))
        .await;
    assert_error(res, 403, "access_denied").await;
    let cookie = app.open(&manager().sign(), "sales").await;
    let html = ok_page(&app, SALES, &cookie).await;
    assert!(!html.contains("Sales, version 2"));
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales?tag=v2", &cookie)
            .await,
        403,
        "access_denied",
    )
    .await;
    // ana has both grants: her session opens either version.
    let ana = ana_session(&app).await;
    let v2 = ok_page(&app, "/embed/workbooks/sales?tag=v2", &ana).await;
    assert!(v2.contains("Sales, version 2"), "{v2}");
}

#[tokio::test]
async fn an_unknown_tag_is_access_denied() {
    let app = spawn_app().await;
    seed(&app).await;
    let res = app
        .get_json(&format!(
            "/embed/workbooks/sales?tag=v9&jwt={}",
            app.token().sign()
        ))
        .await;
    let unknown_tag = error_body(res, 403).await;
    assert_eq!(unknown_tag["error"]["code"], "access_denied");
    let forbidden = error_body(app.handshake(&app.token().sign(), "inventory").await, 403).await;
    assert_eq!(unknown_tag, forbidden);
    let cookie = ana_session(&app).await;
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales?tag=v9", &cookie)
            .await,
        403,
        "access_denied",
    )
    .await;
}

#[tokio::test]
async fn the_effective_level_is_the_highest_grant() {
    let app = spawn_app().await;
    seed(&app).await;
    // view on the workbook (acme-analysts) and explore on the workspace (acme-managers).
    let token = app
        .token()
        .email("both@acme.example")
        .claim("teams", json!(["acme-analysts", "acme-managers"]))
        .claim("account_type", json!("Explorer"));
    let cookie = app.open(&token.sign(), "sales").await;
    let me = me(&app, "sales", &cookie).await;
    assert_eq!(me["level"], "explore");
    assert_eq!(permissions(&me), sorted(&["view", "explore", "export"]));
    // An edit grant on the workbook beats the workspace's explore.
    app.admin()
        .post(
            "/grants",
            json!({"team": "acme-managers", "workbook": "sales", "level": "edit"}),
        )
        .await;
    let me = super::support::me(&app, "sales", &cookie).await;
    assert_eq!(me["level"], "edit");
}

#[tokio::test]
async fn a_viewer_gets_view_only_whatever_the_grant() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = ana_session(&app).await;
    let me_view = me(&app, "sales", &cookie).await;
    assert_eq!(me_view["account_type"], "Viewer");
    assert_eq!(me_view["level"], "view");
    assert_eq!(permissions(&me_view), sorted(&["view"]));
    let html = ok_page(&app, SALES, &cookie).await;
    assert!(!html.contains("Export CSV"), "a viewer may not export");

    let manager = app
        .token()
        .email("mo@acme.example")
        .claim("teams", json!(["acme-managers"]))
        .claim("account_type", json!("Viewer"));
    let cookie = app.open(&manager.sign(), "sales").await;
    let me_explore = me(&app, "sales", &cookie).await;
    assert_eq!(me_explore["level"], "explore");
    assert_eq!(permissions(&me_explore), sorted(&["view"]));
}

#[tokio::test]
async fn an_explorer_with_an_explore_grant_may_view_explore_and_export() {
    let app = spawn_app().await;
    seed(&app).await;
    let token = app
        .token()
        .email("mo@acme.example")
        .claim("teams", json!(["acme-managers"]))
        .claim("account_type", json!("Explorer"));
    let cookie = app.open(&token.sign(), "sales").await;
    let me = me(&app, "sales", &cookie).await;
    assert_eq!(me["account_type"], "Explorer");
    assert_eq!(me["level"], "explore");
    assert_eq!(permissions(&me), sorted(&["view", "explore", "export"]));
    let html = ok_page(&app, SALES, &cookie).await;
    assert!(html.contains("Export CSV"), "{html}");
}

#[tokio::test]
async fn an_explorer_with_a_view_grant_may_view_and_export_only() {
    let app = spawn_app().await;
    seed(&app).await;
    let token = app.token().claim("account_type", json!("Explorer"));
    let cookie = app.open(&token.sign(), "sales").await;
    let me = me(&app, "sales", &cookie).await;
    assert_eq!(me["level"], "view");
    assert_eq!(permissions(&me), sorted(&["view", "export"]));
}

#[tokio::test]
async fn a_creator_with_an_edit_grant_may_edit() {
    let app = spawn_app().await;
    seed(&app).await;
    app.admin()
        .post(
            "/grants",
            json!({"team": "acme-managers", "workbook": "orders", "level": "edit"}),
        )
        .await;
    let creator = || {
        app.token()
            .email("cleo@acme.example")
            .claim("teams", json!(["acme-managers"]))
            .claim("account_type", json!("Creator"))
    };
    let cookie = app.open(&creator().sign(), "orders").await;
    let me_edit = me(&app, "orders", &cookie).await;
    assert_eq!(me_edit["level"], "edit");
    assert_eq!(
        permissions(&me_edit),
        sorted(&["view", "explore", "export", "edit"])
    );
    // On sales the same creator only has the workspace's explore: no edit.
    let cookie = app.open(&creator().sign(), "sales").await;
    let me_explore = me(&app, "sales", &cookie).await;
    assert_eq!(me_explore["level"], "explore");
    assert_eq!(
        permissions(&me_explore),
        sorted(&["view", "explore", "export"])
    );
}

#[tokio::test]
async fn a_custom_account_type_gives_only_its_permissions() {
    let app = spawn_app().await;
    seed(&app).await;
    app.admin()
        .post(
            "/account-types",
            json!({"name": "Analyst", "permissions": ["view", "explore"]}),
        )
        .await;
    let token = app
        .token()
        .email("mo@acme.example")
        .claim("teams", json!(["acme-managers"]))
        .claim("account_type", json!("Analyst"));
    let cookie = app.open(&token.sign(), "sales").await;
    let me = me(&app, "sales", &cookie).await;
    assert_eq!(me["account_type"], "Analyst");
    assert_eq!(permissions(&me), sorted(&["view", "explore"]));
    // A change of the user's account type shows on the next request.
    let id = user_id(&app, "mo@acme.example").await;
    app.admin()
        .patch(&format!("/users/{id}"), json!({"account_type": "Creator"}))
        .await;
    let me = super::support::me(&app, "sales", &cookie).await;
    assert_eq!(permissions(&me), sorted(&["view", "explore", "export"]));
}
