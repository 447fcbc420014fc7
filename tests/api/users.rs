//! Users and auto-provisioning (SPEC §4), through HTTP with real signed
//! tokens: provisioning on and off, syncing embed users from claims, the
//! bounds set by embed clients, internal and deactivated users, concurrent
//! first handshakes, and the audit entries these produce (§8).

use embedgate::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const NOT_PROVISIONED: &str =
    "You don't have permission to access this page. Automatic updating of users is disabled.";

const INTRANET_CLIENT: &str = "intranet-host";
const INTRANET_SECRET: &str = "intranet-secret-0123456789-abcdefghijklmnop";

// ---------------------------------------------------------------------------
// Helpers of this module
// ---------------------------------------------------------------------------

/// A seeded gateway.
async fn seeded() -> TestApp {
    let app = spawn_app().await;
    seed(&app).await;
    app
}

/// Every user with this email (the admin list filtered by email).
async fn users_with_email(app: &TestApp, email: &str) -> Vec<Value> {
    app.admin()
        .get(&format!("/users?email={email}"))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Asserts that no user with this email exists, in any case spelling.
async fn assert_no_user(app: &TestApp, email: &str) {
    let lower = email.to_ascii_lowercase();
    let all = app.admin().users().await;
    let found: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["email"].as_str().unwrap_or_default().to_ascii_lowercase() == lower)
        .collect();
    assert!(
        found.is_empty(),
        "no user {email} expected, found {found:?}"
    );
}

/// The user's team names, sorted.
fn teams_of(user: &Value) -> Vec<String> {
    let mut teams: Vec<String> = user["teams"]
        .as_array()
        .unwrap_or_else(|| panic!("a user with teams expected, got {user}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    teams.sort();
    teams
}

fn names(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// The parts of a user that the claims may change.
fn profile(user: &Value) -> Value {
    json!({
        "id": user["id"],
        "email": user["email"],
        "kind": user["kind"],
        "status": user["status"],
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "account_type": user["account_type"],
        "teams": teams_of(user),
        "attributes": user["attributes"],
        "client_id": user["client_id"],
    })
}

async fn set_auto_provisioning(app: &TestApp, on: bool) {
    let settings = app.admin().settings(json!({"auto_provisioning": on})).await;
    assert_eq!(settings["auto_provisioning"], on, "{settings}");
}

/// Ana, an embed user of Acme's client: teams [acme-analysts], Viewer,
/// attributes {company: acme, region: emea}, names Ana Alves.
async fn provision_ana(app: &TestApp) -> Value {
    let token = app
        .token()
        .claim("first_name", json!("Ana"))
        .claim("last_name", json!("Alves"))
        .claim(
            "user_attributes",
            json!({"company": "acme", "region": "emea"}),
        )
        .sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("ana@acme.example").await;
    assert_eq!(user["kind"], "embed", "{user}");
    assert_eq!(teams_of(&user), names(&["acme-analysts"]));
    assert_eq!(user["account_type"], "Viewer");
    user
}

/// A client that may sign for internal users (no team restriction).
async fn create_intranet_client(app: &TestApp) {
    let client = app
        .admin()
        .post(
            "/clients",
            json!({"client_id": INTRANET_CLIENT, "name": "Intranet", "secret": INTRANET_SECRET,
                "allow_internal_users": true}),
        )
        .await;
    assert_eq!(client["allow_internal_users"], true, "{client}");
}

fn intranet_token(app: &TestApp, email: &str) -> TokenBuilder {
    TokenBuilder::new(INTRANET_CLIENT, INTRANET_SECRET, app.clock.unix()).email(email)
}

/// Ian, an internal user: teams [acme-managers], Explorer, {company: acme}.
async fn create_internal_ian(app: &TestApp) -> Value {
    let user = app
        .admin()
        .post(
            "/users",
            json!({"email": "ian@acme.example", "teams": ["acme-managers"],
                "account_type": "Explorer", "attributes": {"company": "acme"},
                "first_name": "Ian"}),
        )
        .await;
    assert_eq!(user["kind"], "internal", "{user}");
    user
}

async fn deactivate(app: &TestApp, user: &Value) {
    let updated = app
        .admin()
        .patch(
            &format!("/users/{}", user["id"]),
            json!({"status": "deactivated"}),
        )
        .await;
    assert_eq!(updated["status"], "deactivated", "{updated}");
}

/// `GET {workbook}/_api/me` with the session: what the session's user is.
async fn me(app: &TestApp, workbook: &str, cookie: &str) -> Value {
    let res = app
        .get_with_cookie(&format!("/embed/workbooks/{workbook}/_api/me"), cookie)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

// ---------------------------------------------------------------------------
// 1. Auto-provisioning on (the default)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unknown_email_creates_an_embed_user_from_the_claims() {
    let app = seeded().await;
    assert_no_user(&app, "nora@acme.example").await;
    let token = app
        .token()
        .email("nora@acme.example")
        .claim("teams", json!(["acme-analysts", "acme-managers"]))
        .claim("account_type", json!("Explorer"))
        .claim("first_name", json!("Nora"))
        .claim("last_name", json!("Nilsen"))
        .claim(
            "user_attributes",
            json!({"company": "acme", "region": "emea"}),
        )
        .sign();
    let cookie = app.open(&token, "orders").await;

    let users = users_with_email(&app, "nora@acme.example").await;
    assert_eq!(users.len(), 1, "{users:?}");
    let user = &users[0];
    assert_eq!(user["kind"], "embed");
    assert_eq!(user["status"], "active");
    assert_eq!(user["first_name"], "Nora");
    assert_eq!(user["last_name"], "Nilsen");
    assert_eq!(user["account_type"], "Explorer");
    assert_eq!(teams_of(user), names(&["acme-analysts", "acme-managers"]));
    assert_eq!(
        user["attributes"],
        json!({"company": "acme", "region": "emea"})
    );
    assert_eq!(user["client_id"], ACME_CLIENT);

    // The session is the created user's.
    let me = me(&app, "orders", &cookie).await;
    assert_eq!(me["email"], "nora@acme.example");
    assert_eq!(me["account_type"], "Explorer");
}

#[tokio::test]
async fn new_user_without_account_type_claim_gets_the_default_account_type() {
    let app = seeded().await;
    let token = app
        .token()
        .email("dora@acme.example")
        .without("account_type")
        .sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("dora@acme.example").await;
    assert_eq!(user["account_type"], "Viewer", "{user}");
}

#[tokio::test]
async fn new_user_gets_the_default_account_type_after_the_setting_changes() {
    let app = seeded().await;
    let settings = app
        .admin()
        .settings(json!({"default_account_type": "Creator"}))
        .await;
    assert_eq!(settings["default_account_type"], "Creator");
    let token = app.token().email("carl@acme.example").sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("carl@acme.example").await;
    assert_eq!(user["account_type"], "Creator", "{user}");

    // And again after changing it a second time.
    app.admin()
        .settings(json!({"default_account_type": "Explorer"}))
        .await;
    let token = app.token().email("erin@acme.example").sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("erin@acme.example").await;
    assert_eq!(user["account_type"], "Explorer", "{user}");
}

#[tokio::test]
async fn a_custom_account_type_named_in_the_token_is_used() {
    let app = seeded().await;
    app.admin()
        .post(
            "/account-types",
            json!({"name": "Auditor", "permissions": ["view", "export"]}),
        )
        .await;
    let token = app
        .token()
        .email("aud@acme.example")
        .claim("account_type", json!("Auditor"))
        .sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("aud@acme.example").await;
    assert_eq!(user["account_type"], "Auditor", "{user}");
}

#[tokio::test]
async fn email_is_stored_lower_case_and_matched_case_insensitively() {
    let app = seeded().await;
    let first = app.token().email("ANA@ACME.example").sign();
    app.open(&first, "sales").await;
    let users = app.admin().users().await;
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["email"], "ana@acme.example");
    let id = users[0]["id"].clone();

    // Another spelling reaches the same user, and updates it.
    let second = app
        .token()
        .email("Ana@Acme.EXAMPLE")
        .claim("account_type", json!("Explorer"))
        .sign();
    app.open(&second, "sales").await;
    let users = app.admin().users().await;
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 1, "one user for both spellings: {users:?}");
    assert_eq!(users[0]["id"], id);
    assert_eq!(users[0]["email"], "ana@acme.example");
    assert_eq!(users[0]["account_type"], "Explorer");
}

#[tokio::test]
async fn provisioning_a_user_is_audited_as_user_created() {
    let app = seeded().await;
    let token = app
        .token()
        .email("nora@acme.example")
        .claim("teams", json!(["acme-managers"]))
        .claim("account_type", json!("Explorer"))
        .sign();
    app.open(&token, "sales").await;
    let entries = app
        .admin()
        .audit("event=user_created&email=nora@acme.example")
        .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["event"], "user_created");
    assert_eq!(entry["email"], "nora@acme.example");
    assert_eq!(entry["client_id"], ACME_CLIENT);
    assert_eq!(entry["outcome"], "allowed");
    let note = entry["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("acme-managers"),
        "note names the teams: {note}"
    );
    assert!(
        note.contains("Explorer"),
        "note names the account type: {note}"
    );
}

// ---------------------------------------------------------------------------
// 2. Errors for a new user: nothing is created, no session is issued
// ---------------------------------------------------------------------------

#[tokio::test]
async fn new_user_without_teams_claim_is_rejected() {
    let app = seeded().await;
    let token = app
        .token()
        .email("nell@acme.example")
        .without("teams")
        .sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "teams_claim_required").await;
    assert_no_user(&app, "nell@acme.example").await;
}

#[tokio::test]
async fn new_user_with_empty_teams_claim_is_rejected() {
    let app = seeded().await;
    let token = app
        .token()
        .email("nell@acme.example")
        .claim("teams", json!([]))
        .sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "teams_claim_required").await;
    assert_no_user(&app, "nell@acme.example").await;
}

#[tokio::test]
async fn new_user_naming_a_team_that_does_not_exist_is_rejected_and_the_message_names_it() {
    let app = seeded().await;
    let token = TokenBuilder::globex(app.clock.unix())
        .claim("teams", json!(["globex-analysts", "globex-ghosts"]))
        .sign();
    let res = app.handshake(&token, "inventory").await;
    let message = assert_error(res, 403, "unknown_team").await;
    assert!(
        message.contains("globex-ghosts"),
        "the message names the team: {message}"
    );
    assert_no_user(&app, "gina@globex.example").await;
}

#[tokio::test]
async fn unknown_team_is_reported_for_a_team_the_client_allows_but_that_does_not_exist() {
    let app = seeded().await;
    app.admin()
        .post(
            "/clients",
            json!({"client_id": "initech-host", "name": "Initech", "secret": INTRANET_SECRET,
                "allowed_teams": ["acme-analysts", "initech-future"]}),
        )
        .await;
    let token = TokenBuilder::new("initech-host", INTRANET_SECRET, app.clock.unix())
        .email("ivy@initech.example")
        .claim("teams", json!(["acme-analysts", "initech-future"]))
        .sign();
    let res = app.handshake(&token, "sales").await;
    let message = assert_error(res, 403, "unknown_team").await;
    assert!(message.contains("initech-future"), "{message}");
    assert_no_user(&app, "ivy@initech.example").await;
}

#[tokio::test]
async fn new_user_with_an_account_type_that_does_not_exist_is_rejected() {
    let app = seeded().await;
    let token = app
        .token()
        .email("nell@acme.example")
        .claim("account_type", json!("Superuser"))
        .sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "unknown_account_type").await;
    assert_no_user(&app, "nell@acme.example").await;
}

#[tokio::test]
async fn new_user_naming_a_team_outside_the_clients_allowed_teams_is_rejected() {
    let app = seeded().await;
    // `staff` exists, but Acme's client may not name it.
    let token = app
        .token()
        .email("nell@acme.example")
        .claim("teams", json!(["acme-analysts", "staff"]))
        .sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "team_not_allowed").await;
    assert_no_user(&app, "nell@acme.example").await;

    // Another customer's team is refused the same way.
    let token = app
        .token()
        .email("nell@acme.example")
        .claim("teams", json!(["globex-analysts"]))
        .sign();
    let res = app.handshake(&token, "inventory").await;
    assert_error(res, 403, "team_not_allowed").await;
    assert_no_user(&app, "nell@acme.example").await;
}

#[tokio::test]
async fn allowed_teams_is_checked_before_team_existence() {
    let app = seeded().await;
    let token = app
        .token()
        .email("nell@acme.example")
        .claim("teams", json!(["acme-analysts", "no-such-team"]))
        .sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "team_not_allowed").await;
    assert_no_user(&app, "nell@acme.example").await;
}

#[tokio::test]
async fn new_user_whose_teams_do_not_grant_the_workbook_is_not_created() {
    let app = seeded().await;
    // acme-analysts has no grant on `orders`.
    let token = app.token().email("nell@acme.example").sign();
    let res = app.handshake(&token, "orders").await;
    assert_error(res, 403, "access_denied").await;
    assert_no_user(&app, "nell@acme.example").await;
    let created = app
        .admin()
        .audit("event=user_created&email=nell@acme.example")
        .await;
    assert!(created.is_empty(), "{created:?}");
}

// ---------------------------------------------------------------------------
// 3. Existing embed users are synced from the claims present
// ---------------------------------------------------------------------------

#[tokio::test]
async fn existing_embed_user_teams_are_replaced_by_the_teams_claim() {
    let app = seeded().await;
    provision_ana(&app).await;
    let token = app.token().claim("teams", json!(["acme-managers"])).sign();
    let cookie = app.open(&token, "sales").await;
    let user = app.admin().user("ana@acme.example").await;
    assert_eq!(teams_of(&user), names(&["acme-managers"]));
    let me = me(&app, "sales", &cookie).await;
    assert_eq!(me["teams"], json!(["acme-managers"]));
}

#[tokio::test]
async fn existing_embed_user_account_type_is_replaced_by_the_account_type_claim() {
    let app = seeded().await;
    provision_ana(&app).await;
    let token = app.token().claim("account_type", json!("Creator")).sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("ana@acme.example").await;
    assert_eq!(user["account_type"], "Creator");
}

#[tokio::test]
async fn existing_embed_user_attributes_are_replaced_by_user_attributes() {
    let app = seeded().await;
    provision_ana(&app).await;
    let token = app
        .token()
        .claim(
            "user_attributes",
            json!({"company": "acme", "tier": "gold"}),
        )
        .sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("ana@acme.example").await;
    assert_eq!(
        user["attributes"],
        json!({"company": "acme", "tier": "gold"}),
        "replaced, not merged: region is gone"
    );
}

#[tokio::test]
async fn an_empty_user_attributes_claim_clears_the_attributes() {
    let app = seeded().await;
    provision_ana(&app).await;
    let token = app.token().claim("user_attributes", json!({})).sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("ana@acme.example").await;
    assert_eq!(user["attributes"], json!({}), "{user}");
}

#[tokio::test]
async fn a_team_named_twice_gives_one_membership() {
    let app = seeded().await;
    let token = app
        .token()
        .email("nora@acme.example")
        .claim(
            "teams",
            json!(["acme-analysts", "acme-analysts", "acme-managers"]),
        )
        .sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("nora@acme.example").await;
    assert_eq!(teams_of(&user), names(&["acme-analysts", "acme-managers"]));
    let token = app
        .token()
        .email("nora@acme.example")
        .claim("teams", json!(["acme-managers", "acme-managers"]))
        .sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("nora@acme.example").await;
    assert_eq!(teams_of(&user), names(&["acme-managers"]));
}

#[tokio::test]
async fn existing_embed_user_names_are_replaced_by_the_name_claims() {
    let app = seeded().await;
    provision_ana(&app).await;
    let token = app
        .token()
        .claim("first_name", json!("Anabel"))
        .claim("last_name", json!("Alvarez"))
        .sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("ana@acme.example").await;
    assert_eq!(user["first_name"], "Anabel");
    assert_eq!(user["last_name"], "Alvarez");
}

#[tokio::test]
async fn absent_claims_leave_the_stored_values_alone() {
    let app = seeded().await;
    let token = app
        .token()
        .claim("teams", json!(["acme-analysts", "acme-managers"]))
        .claim("account_type", json!("Explorer"))
        .claim("first_name", json!("Ana"))
        .claim("last_name", json!("Alves"))
        .claim(
            "user_attributes",
            json!({"company": "acme", "region": "emea"}),
        )
        .sign();
    app.open(&token, "sales").await;
    let before = profile(&app.admin().user("ana@acme.example").await);

    let bare = app
        .token()
        .without("teams")
        .without("account_type")
        .without("user_attributes")
        .without("first_name")
        .without("last_name")
        .sign();
    app.open(&bare, "sales").await;
    let after = profile(&app.admin().user("ana@acme.example").await);
    assert_eq!(after, before);
    assert_eq!(
        after["teams"],
        json!(["acme-analysts", "acme-managers"]),
        "{after}"
    );
}

#[tokio::test]
async fn only_the_claims_present_are_applied() {
    let app = seeded().await;
    provision_ana(&app).await;
    // Only the account type is in the token: teams, attributes and names stay.
    let token = app
        .token()
        .without("teams")
        .without("user_attributes")
        .claim("account_type", json!("Explorer"))
        .sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("ana@acme.example").await;
    assert_eq!(user["account_type"], "Explorer");
    assert_eq!(teams_of(&user), names(&["acme-analysts"]));
    assert_eq!(
        user["attributes"],
        json!({"company": "acme", "region": "emea"})
    );
    assert_eq!(user["first_name"], "Ana");
    assert_eq!(user["last_name"], "Alves");
}

#[tokio::test]
async fn empty_teams_for_an_existing_embed_user_is_rejected_and_memberships_are_kept() {
    let app = seeded().await;
    let before = profile(&provision_ana(&app).await);
    let token = app
        .token()
        .claim("teams", json!([]))
        .claim("account_type", json!("Explorer"))
        .sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "teams_claim_required").await;
    let after = profile(&app.admin().user("ana@acme.example").await);
    assert_eq!(after, before);
    assert_eq!(after["teams"], json!(["acme-analysts"]));
}

#[tokio::test]
async fn user_updated_is_audited_with_the_teams_added_and_removed_and_the_account_type_change() {
    let app = seeded().await;
    provision_ana(&app).await;
    let token = app
        .token()
        .claim("teams", json!(["acme-managers"]))
        .claim("account_type", json!("Explorer"))
        .sign();
    app.open(&token, "sales").await;

    let created = app
        .admin()
        .audit("event=user_created&email=ana@acme.example")
        .await;
    assert_eq!(created.len(), 1, "{created:?}");
    let updated = app
        .admin()
        .audit("event=user_updated&email=ana@acme.example")
        .await;
    assert_eq!(updated.len(), 1, "{updated:?}");
    let entry = &updated[0];
    assert_eq!(entry["client_id"], ACME_CLIENT);
    assert_eq!(entry["outcome"], "allowed");
    let note = entry["note"].as_str().unwrap_or_default();
    for part in ["added", "acme-managers", "removed", "acme-analysts"] {
        assert!(note.contains(part), "{part:?} missing in the note {note:?}");
    }
    let old = note
        .find("Viewer")
        .expect("the old account type in the note");
    let new = note
        .find("Explorer")
        .expect("the new account type in the note");
    assert!(old < new, "account type old -> new: {note:?}");
    let added = note.find("added").unwrap();
    let removed = note.find("removed").unwrap();
    let managers = note.find("acme-managers").unwrap();
    let analysts = note.find("acme-analysts").unwrap();
    // Each team is listed right after the word for what happened to it.
    if added < removed {
        assert!(
            added < managers && managers < removed && removed < analysts,
            "{note:?}"
        );
    } else {
        assert!(
            removed < analysts && analysts < added && added < managers,
            "{note:?}"
        );
    }
}

#[tokio::test]
async fn a_handshake_denied_by_a_team_change_changes_nothing() {
    let app = seeded().await;
    // Ana is a manager, so she may open `orders`.
    let token = app
        .token()
        .claim("teams", json!(["acme-managers"]))
        .claim("first_name", json!("Ana"))
        .sign();
    app.open(&token, "orders").await;
    let before = profile(&app.admin().user("ana@acme.example").await);

    // A token moving her to acme-analysts (no grant on `orders`), with other changes.
    let token = app
        .token()
        .claim("teams", json!(["acme-analysts"]))
        .claim("account_type", json!("Creator"))
        .claim("first_name", json!("Changed"))
        .claim("user_attributes", json!({"company": "elsewhere"}))
        .sign();
    let res = app.handshake(&token, "orders").await;
    assert_error(res, 403, "access_denied").await;

    let after = profile(&app.admin().user("ana@acme.example").await);
    assert_eq!(after, before);
    let updated = app
        .admin()
        .audit("event=user_updated&email=ana@acme.example")
        .await;
    assert!(updated.is_empty(), "{updated:?}");
    let handshakes = app
        .admin()
        .audit("event=handshake&email=ana@acme.example&outcome=denied")
        .await;
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    assert_eq!(handshakes[0]["code"], "access_denied");
}

#[tokio::test]
async fn an_unknown_account_type_for_an_existing_user_changes_nothing() {
    let app = seeded().await;
    let before = profile(&provision_ana(&app).await);
    let token = app
        .token()
        .claim("teams", json!(["acme-managers"]))
        .claim("account_type", json!("Superuser"))
        .claim("user_attributes", json!({"company": "other"}))
        .sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "unknown_account_type").await;
    assert_eq!(profile(&app.admin().user("ana@acme.example").await), before);
}

#[tokio::test]
async fn an_unknown_team_for_an_existing_user_is_rejected_and_changes_nothing() {
    let app = seeded().await;
    let token = TokenBuilder::globex(app.clock.unix()).sign();
    app.open(&token, "inventory").await;
    let before = profile(&app.admin().user("gina@globex.example").await);
    let token = TokenBuilder::globex(app.clock.unix())
        .claim("teams", json!(["globex-analysts", "globex-ghosts"]))
        .claim("account_type", json!("Explorer"))
        .sign();
    let res = app.handshake(&token, "inventory").await;
    let message = assert_error(res, 403, "unknown_team").await;
    assert!(message.contains("globex-ghosts"), "{message}");
    assert_eq!(
        profile(&app.admin().user("gina@globex.example").await),
        before
    );
}

// ---------------------------------------------------------------------------
// 4. Auto-provisioning off
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unknown_email_is_rejected_when_auto_provisioning_is_off() {
    let app = seeded().await;
    set_auto_provisioning(&app, false).await;
    let token = app.token().email("nell@acme.example").sign();
    let res = app.handshake(&token, "sales").await;
    let message = assert_error(res, 403, "user_not_provisioned").await;
    assert_eq!(message, NOT_PROVISIONED);
    assert_no_user(&app, "nell@acme.example").await;
}

#[tokio::test]
async fn existing_users_keep_their_stored_values_when_auto_provisioning_is_off() {
    let app = seeded().await;
    let before = profile(&provision_ana(&app).await);
    set_auto_provisioning(&app, false).await;

    let token = app
        .token()
        .claim("teams", json!(["acme-managers"]))
        .claim("account_type", json!("Creator"))
        .claim("first_name", json!("Changed"))
        .claim("last_name", json!("Changed"))
        .claim("user_attributes", json!({"company": "other"}))
        .sign();
    let cookie = app.open(&token, "sales").await;

    let after = profile(&app.admin().user("ana@acme.example").await);
    assert_eq!(after, before, "the token's user claims are not applied");
    let me = me(&app, "sales", &cookie).await;
    assert_eq!(me["teams"], json!(["acme-analysts"]));
    assert_eq!(me["account_type"], "Viewer");
    assert_eq!(me["first_name"], "Ana");
    let updated = app
        .admin()
        .audit("event=user_updated&email=ana@acme.example")
        .await;
    assert!(updated.is_empty(), "{updated:?}");
}

#[tokio::test]
async fn existing_users_are_let_in_with_stored_teams_when_auto_provisioning_is_off() {
    let app = seeded().await;
    // Ana is a manager: only that team opens `orders`.
    let token = app.token().claim("teams", json!(["acme-managers"])).sign();
    app.open(&token, "orders").await;
    set_auto_provisioning(&app, false).await;

    // Claims that would deny access (if applied) or be refused are not applied.
    let token = app.token().claim("teams", json!(["acme-analysts"])).sign();
    app.open(&token, "orders").await;
    let token = app.token().without("teams").sign();
    app.open(&token, "orders").await;
    let token = app.token().claim("teams", json!([])).sign();
    app.open(&token, "orders").await;
    let token = app
        .token()
        .claim("teams", json!(["acme-managers"]))
        .claim("account_type", json!("Superuser"))
        .sign();
    app.open(&token, "orders").await;

    let user = app.admin().user("ana@acme.example").await;
    assert_eq!(teams_of(&user), names(&["acme-managers"]));
    assert_eq!(user["account_type"], "Viewer");
}

#[tokio::test]
async fn an_embed_user_created_by_the_admin_gets_in_when_auto_provisioning_is_off() {
    let app = seeded().await;
    set_auto_provisioning(&app, false).await;
    app.admin()
        .post(
            "/users",
            json!({"email": "eve@acme.example", "kind": "embed", "teams": ["acme-managers"],
                "account_type": "Explorer"}),
        )
        .await;
    let token = app
        .token()
        .email("eve@acme.example")
        .claim("teams", json!(["acme-analysts"]))
        .sign();
    let cookie = app.open(&token, "orders").await;
    let me = me(&app, "orders", &cookie).await;
    assert_eq!(me["teams"], json!(["acme-managers"]));
    assert_eq!(me["account_type"], "Explorer");
    let user = app.admin().user("eve@acme.example").await;
    assert_eq!(teams_of(&user), names(&["acme-managers"]));
}

#[tokio::test]
async fn auto_provisioning_can_be_turned_back_on() {
    let app = seeded().await;
    set_auto_provisioning(&app, false).await;
    let token = app.token().email("nell@acme.example").sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "user_not_provisioned").await;

    set_auto_provisioning(&app, true).await;
    let token = app
        .token()
        .email("nell@acme.example")
        .claim("account_type", json!("Explorer"))
        .sign();
    app.open(&token, "sales").await;
    let user = app.admin().user("nell@acme.example").await;
    assert_eq!(user["kind"], "embed", "{user}");
    assert_eq!(user["account_type"], "Explorer");

    // And claims are applied again to existing users.
    let token = app
        .token()
        .email("nell@acme.example")
        .claim("account_type", json!("Creator"))
        .sign();
    app.open(&token, "sales").await;
    assert_eq!(
        app.admin().user("nell@acme.example").await["account_type"],
        "Creator"
    );
}

#[tokio::test]
async fn the_auto_provisioning_setting_survives_a_restart() {
    let app = seeded().await;
    provision_ana(&app).await;
    set_auto_provisioning(&app, false).await;
    let app = app.restart().await;

    let settings = app.admin().get("/settings").await;
    assert_eq!(settings["auto_provisioning"], false, "{settings}");
    let token = app.token().email("nell@acme.example").sign();
    let res = app.handshake(&token, "sales").await;
    let message = assert_error(res, 403, "user_not_provisioned").await;
    assert_eq!(message, NOT_PROVISIONED);
    assert_no_user(&app, "nell@acme.example").await;

    // Existing users still get in, unchanged.
    let token = app.token().claim("account_type", json!("Creator")).sign();
    app.open(&token, "sales").await;
    assert_eq!(
        app.admin().user("ana@acme.example").await["account_type"],
        "Viewer"
    );
}

// ---------------------------------------------------------------------------
// 5. Embed clients bound the claims
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_token_from_another_client_for_an_embed_user_is_rejected() {
    let app = seeded().await;
    let before = profile(&provision_ana(&app).await);
    assert_eq!(before["client_id"], ACME_CLIENT);

    let token = TokenBuilder::globex(app.clock.unix())
        .email("ana@acme.example")
        .sign();
    let res = app.handshake(&token, "inventory").await;
    assert_error(res, 403, "user_belongs_to_other_client").await;
    assert_eq!(profile(&app.admin().user("ana@acme.example").await), before);
}

#[tokio::test]
async fn a_token_from_another_client_is_rejected_when_auto_provisioning_is_off() {
    let app = seeded().await;
    let before = profile(&provision_ana(&app).await);
    set_auto_provisioning(&app, false).await;
    // Ana's stored teams grant `sales`, so only the client check can refuse.
    let token = TokenBuilder::globex(app.clock.unix())
        .email("ana@acme.example")
        .sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "user_belongs_to_other_client").await;
    assert_eq!(profile(&app.admin().user("ana@acme.example").await), before);
}

#[tokio::test]
async fn an_embed_user_created_by_the_admin_api_belongs_to_the_first_client_that_signs_for_it() {
    let app = seeded().await;
    let created = app
        .admin()
        .post(
            "/users",
            json!({"email": "eve@globex.example", "kind": "embed", "teams": ["globex-analysts"]}),
        )
        .await;
    assert_eq!(created["kind"], "embed", "{created}");
    assert_eq!(created["client_id"], Value::Null, "{created}");

    // Globex signs first: the user is Globex's from now on.
    let token = TokenBuilder::globex(app.clock.unix())
        .email("eve@globex.example")
        .sign();
    app.open(&token, "inventory").await;
    let user = app.admin().user("eve@globex.example").await;
    assert_eq!(user["client_id"], GLOBEX_CLIENT, "{user}");
    let before = profile(&user);

    // Acme's client, with claims that would otherwise be fine, is refused.
    let token = app.token().email("eve@globex.example").sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "user_belongs_to_other_client").await;
    assert_eq!(
        profile(&app.admin().user("eve@globex.example").await),
        before
    );

    // Globex still gets in.
    let token = TokenBuilder::globex(app.clock.unix())
        .email("eve@globex.example")
        .sign();
    app.open(&token, "inventory").await;
}

#[tokio::test]
async fn a_client_may_not_name_teams_outside_its_allowed_teams_for_an_existing_user() {
    let app = seeded().await;
    let before = profile(&provision_ana(&app).await);
    let token = app
        .token()
        .claim("teams", json!(["acme-analysts", "staff"]))
        .claim("account_type", json!("Explorer"))
        .sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "team_not_allowed").await;
    assert_eq!(profile(&app.admin().user("ana@acme.example").await), before);
}

// ---------------------------------------------------------------------------
// 6. Internal users
// ---------------------------------------------------------------------------

#[tokio::test]
async fn internal_users_are_refused_by_clients_that_do_not_allow_them() {
    let app = seeded().await;
    let before = profile(&create_internal_ian(&app).await);
    let token = app
        .token()
        .email("ian@acme.example")
        .claim("teams", json!(["acme-managers"]))
        .sign();
    let res = app.handshake(&token, "orders").await;
    assert_error(res, 403, "internal_user_not_allowed").await;
    let token = TokenBuilder::globex(app.clock.unix())
        .email("ian@acme.example")
        .sign();
    let res = app.handshake(&token, "inventory").await;
    assert_error(res, 403, "internal_user_not_allowed").await;
    assert_eq!(profile(&app.admin().user("ian@acme.example").await), before);
}

#[tokio::test]
async fn internal_users_use_their_stored_values_through_a_client_that_allows_them() {
    let app = seeded().await;
    let before = profile(&create_internal_ian(&app).await);
    create_intranet_client(&app).await;

    // Claims that, if applied, would deny `orders` (only managers have it).
    let token = intranet_token(&app, "ian@acme.example")
        .claim("teams", json!(["globex-analysts"]))
        .claim("account_type", json!("Creator"))
        .claim("user_attributes", json!({"company": "globex"}))
        .claim("first_name", json!("Changed"))
        .sign();
    let cookie = app.open(&token, "orders").await;

    let after = profile(&app.admin().user("ian@acme.example").await);
    assert_eq!(after["kind"], "internal");
    assert_eq!(after["teams"], before["teams"]);
    assert_eq!(after["account_type"], before["account_type"]);
    assert_eq!(after["attributes"], before["attributes"]);
    let me = me(&app, "orders", &cookie).await;
    assert_eq!(me["teams"], json!(["acme-managers"]));
    assert_eq!(me["account_type"], "Explorer");
}

#[tokio::test]
async fn claims_naming_unknown_teams_or_account_types_are_ignored_for_internal_users() {
    let app = seeded().await;
    let before = profile(&create_internal_ian(&app).await);
    create_intranet_client(&app).await;
    let token = intranet_token(&app, "ian@acme.example")
        .claim("teams", json!(["no-such-team"]))
        .claim("account_type", json!("Superuser"))
        .sign();
    app.open(&token, "orders").await;
    let token = intranet_token(&app, "ian@acme.example")
        .claim("teams", json!([]))
        .sign();
    app.open(&token, "orders").await;
    let after = profile(&app.admin().user("ian@acme.example").await);
    assert_eq!(after["teams"], before["teams"]);
    assert_eq!(after["account_type"], before["account_type"]);
}

#[tokio::test]
async fn the_handshake_audit_entry_says_the_internal_users_claims_were_ignored() {
    let app = seeded().await;
    create_internal_ian(&app).await;
    create_intranet_client(&app).await;
    let token = intranet_token(&app, "ian@acme.example")
        .claim("teams", json!(["acme-analysts"]))
        .claim("account_type", json!("Creator"))
        .sign();
    app.open(&token, "orders").await;
    let entries = app
        .admin()
        .audit("event=handshake&email=ian@acme.example")
        .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["outcome"], "allowed");
    assert_eq!(entry["client_id"], INTRANET_CLIENT);
    let note = entry["note"].as_str().unwrap_or_default();
    assert!(note.contains("ignored"), "{note:?}");
    assert!(note.contains("teams"), "{note:?}");
    assert!(note.contains("account_type"), "{note:?}");
    let updated = app
        .admin()
        .audit("event=user_updated&email=ian@acme.example")
        .await;
    assert!(updated.is_empty(), "{updated:?}");
}

#[tokio::test]
async fn internal_users_get_in_when_auto_provisioning_is_off() {
    let app = seeded().await;
    create_internal_ian(&app).await;
    create_intranet_client(&app).await;
    set_auto_provisioning(&app, false).await;
    let token = intranet_token(&app, "ian@acme.example").sign();
    let cookie = app.open(&token, "orders").await;
    assert_eq!(
        me(&app, "orders", &cookie).await["teams"],
        json!(["acme-managers"])
    );
}

// ---------------------------------------------------------------------------
// 7. Deactivated users
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_deactivated_embed_user_is_rejected() {
    let app = seeded().await;
    let ana = provision_ana(&app).await;
    deactivate(&app, &ana).await;
    let token = app.token().sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "user_deactivated").await;
}

#[tokio::test]
async fn a_deactivated_user_is_rejected_when_auto_provisioning_is_off() {
    let app = seeded().await;
    let ana = provision_ana(&app).await;
    deactivate(&app, &ana).await;
    set_auto_provisioning(&app, false).await;
    let token = app.token().sign();
    let res = app.handshake(&token, "sales").await;
    assert_error(res, 403, "user_deactivated").await;
}

#[tokio::test]
async fn auto_provisioning_never_reactivates_a_deactivated_user() {
    let app = seeded().await;
    let ana = provision_ana(&app).await;
    deactivate(&app, &ana).await;
    let before = profile(&app.admin().user("ana@acme.example").await);
    for _ in 0..2 {
        let token = app
            .token()
            .claim("teams", json!(["acme-managers"]))
            .claim("account_type", json!("Explorer"))
            .claim("first_name", json!("Changed"))
            .claim("user_attributes", json!({"company": "other"}))
            .sign();
        let res = app.handshake(&token, "sales").await;
        assert_error(res, 403, "user_deactivated").await;
    }
    let after = profile(&app.admin().user("ana@acme.example").await);
    assert_eq!(after, before);
    assert_eq!(after["status"], "deactivated");
}

#[tokio::test]
async fn a_deactivated_internal_user_is_rejected_even_by_a_client_that_allows_internal_users() {
    let app = seeded().await;
    let ian = create_internal_ian(&app).await;
    create_intranet_client(&app).await;
    deactivate(&app, &ian).await;
    let token = intranet_token(&app, "ian@acme.example").sign();
    let res = app.handshake(&token, "orders").await;
    assert_error(res, 403, "user_deactivated").await;
}

#[tokio::test]
async fn a_reactivated_user_gets_in_again() {
    let app = seeded().await;
    let ana = provision_ana(&app).await;
    deactivate(&app, &ana).await;
    let token = app.token().sign();
    assert_error(
        app.handshake(&token, "sales").await,
        403,
        "user_deactivated",
    )
    .await;
    app.admin()
        .patch(
            &format!("/users/{}", ana["id"]),
            json!({"status": "active"}),
        )
        .await;
    let token = app.token().sign();
    app.open(&token, "sales").await;
}

// ---------------------------------------------------------------------------
// 8. Concurrent first handshakes
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_handshakes_for_the_same_new_email_create_one_user() {
    let app = seeded().await;
    let mut set = tokio::task::JoinSet::new();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    for i in 0..10 {
        let token = app
            .token()
            .email("race@acme.example")
            .claim("first_name", json!(format!("Racer {i}")))
            .sign();
        let url = app.url(&format!("/embed/workbooks/sales?jwt={token}"));
        let http = app.http.clone();
        let barrier = barrier.clone();
        set.spawn(async move {
            barrier.wait().await;
            let res = get_json_from(http, url).await;
            let status = res.status();
            let cookie = session_cookie(&res);
            let body = res.text().await.unwrap_or_default();
            (status, cookie, body)
        });
    }
    let mut ok = 0;
    while let Some(result) = set.join_next().await {
        let (status, cookie, body) = result.unwrap();
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "every first handshake succeeds: {body}"
        );
        assert!(cookie.is_some());
        ok += 1;
    }
    assert_eq!(ok, 10);
    let users = users_with_email(&app, "race@acme.example").await;
    assert_eq!(users.len(), 1, "{users:?}");
    let all = app.admin().users().await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let created = app
        .admin()
        .audit("event=user_created&email=race@acme.example")
        .await;
    assert_eq!(created.len(), 1, "{created:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_first_handshakes_create_one_user() {
    let app = seeded().await;
    let a = app.token().email("pair@acme.example").sign();
    let b = app.token().email("pair@acme.example").sign();
    let (ra, rb) = tokio::join!(app.handshake(&a, "sales"), app.handshake(&b, "sales"));
    assert_eq!(ra.status(), StatusCode::SEE_OTHER);
    assert_eq!(rb.status(), StatusCode::SEE_OTHER);
    let users = users_with_email(&app, "pair@acme.example").await;
    assert_eq!(users.len(), 1, "{users:?}");
}

/// First handshakes and claim changes that queue up while the writer is
/// busy are written together; each still gets its own outcome, planned and
/// decided again against the policy as it is when they are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handshake_writes_queued_together_each_get_their_own_outcome() {
    let app = seeded().await;
    let gw = app.gateway.clone();
    // A team the database no longer has while this instance still does (as
    // when another instance deleted it a moment ago).
    let lost = gw.policy.read().team_by_name("acme-managers").unwrap().id;
    assert!(gw.store.delete_team(lost).await.unwrap());
    // A grant that is taken away while the writes wait.
    let grant = app
        .admin()
        .post(
            "/grants",
            json!({"team": "acme-analysts", "workbook": "orders", "level": "view"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    // An existing user whose claims change.
    app.open(
        &app.token().claim("first_name", json!("Ana")).sign(),
        "sales",
    )
    .await;

    let mut requests: Vec<(&str, TokenBuilder, &str)> = Vec::new();
    for i in 0..8 {
        let email: &'static str = Box::leak(format!("new-{i}@acme.example").into_boxed_str());
        requests.push(("created", app.token().email(email), "sales"));
    }
    for _ in 0..2 {
        requests.push(("created", app.token().email("twice@acme.example"), "sales"));
    }
    requests.push((
        "lost",
        app.token()
            .email("lost@acme.example")
            .claim("teams", json!(["acme-analysts", "acme-managers"])),
        "sales",
    ));
    requests.push(("revoked", app.token().email("late@acme.example"), "orders"));
    requests.push((
        "updated",
        app.token().claim("first_name", json!("Anna")),
        "sales",
    ));

    // Hold the writer off so that every write queues; meanwhile take the
    // grant on `orders` away (in the database and in memory, as an admin
    // would): the `late@` handshake was allowed when it planned.
    let guard = gw.policy.write_lock().await;
    let mut set = tokio::task::JoinSet::new();
    for (kind, token, workbook) in &requests {
        let url = app.url(&format!("/embed/workbooks/{workbook}?jwt={}", token.sign()));
        let http = app.http.clone();
        let kind = *kind;
        set.spawn(async move {
            let res = get_json_from(http, url).await;
            let status = res.status().as_u16();
            (kind, status, res.text().await.unwrap())
        });
    }
    for (_, token, _) in &requests {
        let jti = token.claims["jti"].as_str().unwrap();
        while !gw.store.jti_used(ACME_CLIENT, jti).await.unwrap() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(gw.store.delete_grant(grant).await.unwrap());
    gw.policy
        .refresh(&gw.store, &guard, &embedgate::policy::Change::Grant(grant))
        .await
        .unwrap();
    drop(guard);

    while let Some(result) = set.join_next().await {
        let (kind, status, body) = result.unwrap();
        let want = match kind {
            "created" | "updated" => 303,
            "lost" => 500,
            _ => 403,
        };
        assert_eq!(status, want, "{kind}: {body}");
        if kind == "revoked" {
            assert!(body.contains("access_denied"), "{body}");
        }
    }

    let analysts = gw.policy.read().team_by_name("acme-analysts").unwrap().id;
    for i in 0..8 {
        let user = app.admin().user(&format!("new-{i}@acme.example")).await;
        assert_eq!(user["teams"], json!(["acme-analysts"]), "{user}");
    }
    assert_eq!(users_with_email(&app, "twice@acme.example").await.len(), 1);
    assert_no_user(&app, "lost@acme.example").await;
    assert_no_user(&app, "late@acme.example").await;
    assert_eq!(
        app.admin().user("ana@acme.example").await["first_name"],
        "Anna"
    );
    let members = gw.store.team_member_ids(analysts).await.unwrap();
    assert_eq!(members.len(), 10, "ana, 8 new users and twice: {members:?}");
    assert!(gw.store.team_member_ids(lost).await.unwrap().is_empty());
    // In memory as in the database: each new user opens a session at once.
    let cookie = app
        .open(&app.token().email("new-3@acme.example").sign(), "sales")
        .await;
    assert_eq!(
        app.get_with_cookie("/embed/workbooks/sales", &cookie)
            .await
            .status(),
        StatusCode::OK
    );
    gw.recorder.flush().await;
    assert_eq!(app.admin().audit("event=user_created").await.len(), 10);
    let updated = app.admin().audit("event=user_updated").await;
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert!(
        updated[0]["note"].as_str().unwrap().contains("first_name"),
        "{updated:?}"
    );
}

/// A first handshake whose email another instance has just taken (the
/// user is in the database, not yet in this instance's memory) signs that
/// user in, updated from the claims, instead of failing or creating a
/// second one.
#[tokio::test]
async fn a_first_handshake_adopts_a_user_another_instance_just_created() {
    let app = seeded().await;
    let gw = &app.gateway;
    let analysts = gw.policy.read().team_by_name("acme-analysts").unwrap().id;
    let fields = embedgate::store::UserFields {
        first_name: Some("Eve".into()),
        attributes: embedgate::domain::Attributes::from([(
            "company".to_owned(),
            "acme".to_owned(),
        )]),
        ..crate::store_suite::user_fields("eve@acme.example", &[analysts])
    };
    let id = gw
        .store
        .insert_user(&fields, NOW * 1000)
        .await
        .unwrap()
        .unwrap();
    assert!(gw.policy.read().user(id).is_none());

    let token = app
        .token()
        .email("eve@acme.example")
        .claim("first_name", json!("Evelyn"))
        .sign();
    let cookie = app.open(&token, "sales").await;
    let users = users_with_email(&app, "eve@acme.example").await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["id"], id);
    assert_eq!(users[0]["first_name"], "Evelyn");
    let res = app.get_with_cookie("/embed/workbooks/sales", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    gw.recorder.flush().await;
    assert!(
        app.admin()
            .audit("event=user_created&email=eve@acme.example")
            .await
            .is_empty()
    );
    assert_eq!(
        app.admin()
            .audit("event=user_updated&email=eve@acme.example")
            .await
            .len(),
        1
    );
}

// ---------------------------------------------------------------------------
// 9. last_seen_at
// ---------------------------------------------------------------------------

#[tokio::test]
async fn last_seen_at_is_set_after_a_successful_handshake() {
    let app = seeded().await;
    let created = app
        .admin()
        .post(
            "/users",
            json!({"email": "ana@acme.example", "kind": "embed", "teams": ["acme-analysts"]}),
        )
        .await;
    assert_eq!(created["last_seen_at"], Value::Null, "{created}");

    app.clock.advance_secs(120);
    let token = app.token().sign();
    app.open(&token, "sales").await;
    app.admin().audit("").await; // flushes the recorder
    let user = app.admin().user("ana@acme.example").await;
    assert_eq!(user["last_seen_at"], "2027-01-15T08:02:00Z", "{user}");

    // A later handshake moves it on.
    app.clock.advance_secs(3600);
    let token = app.token().sign();
    app.open(&token, "sales").await;
    app.admin().audit("").await;
    let user = app.admin().user("ana@acme.example").await;
    assert_eq!(user["last_seen_at"], "2027-01-15T09:02:00Z", "{user}");
}

#[tokio::test]
async fn a_failed_handshake_does_not_touch_last_seen_at() {
    let app = seeded().await;
    provision_ana(&app).await;
    app.admin().audit("").await;
    let before = app.admin().user("ana@acme.example").await["last_seen_at"].clone();
    assert!(before.is_string(), "set by the first handshake: {before}");

    app.clock.advance_secs(600);
    let token = app.token().sign();
    assert_error(app.handshake(&token, "orders").await, 403, "access_denied").await;
    app.admin().audit("").await;
    let after = app.admin().user("ana@acme.example").await["last_seen_at"].clone();
    assert_eq!(after, before);
}
