//! `POST /admin/api/tokens/inspect` (SPEC §3, §4, §8): every rule checked
//! and reported with its code, without consuming the `jti` or changing
//! anything.

use embedgate::clock::Clock;
use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::{Value, json};

use super::support::*;
use crate::helpers::*;

/// Every rule, in the order of the contract.
const RULES: [&str; 14] = [
    "size",
    "shape",
    "client",
    "algorithm",
    "signature",
    "required_claims",
    "claim_types",
    "issuer",
    "audience",
    "expiry",
    "not_before",
    "lifetime",
    "replay",
    "user",
];

const MAX_LIFETIME: i64 = 2_592_000;

async fn seeded() -> TestApp {
    let app = spawn_app().await;
    seed(&app).await;
    app
}

async fn inspect(app: &TestApp, token: &str) -> Value {
    let ins = app
        .admin()
        .expect(
            Method::POST,
            "/tokens/inspect",
            Some(json!({"token": token})),
            200,
        )
        .await;
    assert_checks_well_formed(&ins);
    ins
}

/// The checks list every rule once, in order, each as
/// `{"rule", "ok", "detail", "code"}` (+ `"skipped": true`).
fn assert_checks_well_formed(ins: &Value) {
    let checks = ins["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("checks must be a list: {ins:#}"));
    let rules: Vec<&str> = checks.iter().map(|c| c["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, RULES, "{ins:#}");
    for c in checks {
        assert!(c["ok"].is_boolean(), "{c}");
        assert!(
            c["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "a check explains itself: {c}"
        );
        assert!(c.get("code").is_some(), "{c}");
        match c.get("skipped") {
            None => {}
            Some(s) => {
                assert_eq!(s, true, "{c}");
                assert_eq!(c["ok"], false, "a skipped check did not pass: {c}");
                assert_eq!(c["code"], Value::Null, "a skipped check has no code: {c}");
            }
        }
        if c["ok"] == true {
            assert_eq!(c["code"], Value::Null, "{c}");
        }
    }
    assert_eq!(
        ins["valid"],
        checks.iter().all(|c| c["ok"] == true),
        "{ins:#}"
    );
}

fn check<'a>(ins: &'a Value, rule: &str) -> &'a Value {
    ins["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == rule)
        .unwrap_or_else(|| panic!("no check {rule:?}: {ins:#}"))
}

fn detail(ins: &Value, rule: &str) -> String {
    check(ins, rule)["detail"].as_str().unwrap().to_owned()
}

fn assert_passes(ins: &Value, rule: &str) {
    let c = check(ins, rule);
    assert_eq!(c["ok"], true, "{rule} should pass: {ins:#}");
    assert!(c.get("skipped").is_none(), "{ins:#}");
}

fn assert_skipped(ins: &Value, rule: &str) {
    let c = check(ins, rule);
    assert_eq!(c["skipped"], true, "{rule} should be skipped: {ins:#}");
    assert_eq!(c["ok"], false, "{ins:#}");
    assert_eq!(c["code"], Value::Null, "{ins:#}");
}

/// `rule` failed with `code`, every rule before it passed, and the token as
/// a whole is invalid with that code.
fn assert_fails(ins: &Value, rule: &str, code: &str) {
    let c = check(ins, rule);
    assert_eq!(c["ok"], false, "{rule} should fail: {ins:#}");
    assert_eq!(c["code"], code, "{rule}: {ins:#}");
    assert!(c.get("skipped").is_none(), "{ins:#}");
    for earlier in RULES.iter().take_while(|r| **r != rule) {
        assert_passes(ins, earlier);
    }
    assert_eq!(ins["valid"], false, "{ins:#}");
    assert_eq!(ins["code"], code, "{ins:#}");
}

/// What an inspection could have written: users and the audit log (the
/// audit is read first: it flushes pending writes, `last_seen_at` too).
async fn written(app: &TestApp) -> Value {
    let audit = app.admin().audit("limit=1000").await;
    let users = app.admin().users().await;
    json!({"audit": audit, "users": users})
}

#[tokio::test]
async fn a_valid_token_passes_every_check_and_is_still_usable_afterwards() {
    let app = seeded().await;
    let builder = app.token();
    let token = builder.sign();
    let before = written(&app).await;

    let ins = inspect(&app, &token).await;
    assert_eq!(ins["valid"], true, "{ins:#}");
    assert_eq!(ins["code"], Value::Null, "{ins:#}");
    for rule in RULES {
        assert_passes(&ins, rule);
    }
    assert_eq!(ins["header"], Value::Object(builder.header.clone()));
    assert_eq!(ins["claims"], Value::Object(builder.claims.clone()));
    let user = detail(&ins, "user");
    assert!(
        user.contains("create") && user.contains("ana@acme.example"),
        "{user}"
    );
    // Inspecting twice changes nothing either.
    let again = inspect(&app, &token).await;
    assert_eq!(again, ins);
    assert_eq!(written(&app).await, before, "the inspector wrote something");
    assert_eq!(app.admin().user("ana@acme.example").await, Value::Null);

    // The jti was not consumed: the token still opens the workbook.
    app.open(&token, "sales").await;
    let after = inspect(&app, &token).await;
    assert_fails(&after, "replay", "token_replayed");
}

#[tokio::test]
async fn the_size_rule_reports_token_too_large_and_skips_the_rest() {
    let app = seeded().await;
    let before = written(&app).await;
    let token = app
        .token()
        .claim("first_name", json!("x".repeat(9000)))
        .sign();
    assert!(token.len() > 8 * 1024);

    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "size", "token_too_large");
    assert!(detail(&ins, "size").contains("8192"), "{ins:#}");
    for rule in &RULES[1..] {
        assert_skipped(&ins, rule);
    }
    assert_eq!(ins["header"], Value::Null);
    assert_eq!(ins["claims"], Value::Null);
    assert_eq!(written(&app).await, before);
}

#[tokio::test]
async fn the_shape_rule_reports_two_segments_and_duplicate_keys_as_malformed() {
    let app = seeded().await;
    let before = written(&app).await;

    let valid = app.token().sign();
    let two: String = valid.rsplit_once('.').unwrap().0.to_owned();
    let ins = inspect(&app, &two).await;
    assert_fails(&ins, "shape", "token_malformed");
    for rule in &RULES[2..] {
        assert_skipped(&ins, rule);
    }

    let builder = app.token();
    let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{ACME_CLIENT}"}}"#);
    let payload = format!(
        r#"{{"sub":"ana@acme.example","sub":"eve@acme.example","jti":"{}","iat":{NOW},"exp":{}}}"#,
        fresh_jti(),
        NOW + 300
    );
    let duplicate_claim = builder.sign_raw(&header, &payload);
    let ins = inspect(&app, &duplicate_claim).await;
    assert_fails(&ins, "shape", "token_malformed");
    assert_skipped(&ins, "client");
    assert_skipped(&ins, "replay");

    let header = format!(r#"{{"alg":"HS256","kid":"{ACME_CLIENT}","kid":"{GLOBEX_CLIENT}"}}"#);
    let payload = serde_json::to_string(&builder.claims).unwrap();
    let duplicate_header = builder.sign_raw(&header, &payload);
    let ins = inspect(&app, &duplicate_header).await;
    assert_fails(&ins, "shape", "token_malformed");

    assert_eq!(written(&app).await, before);
    // The handshake agrees.
    handshake_fails(&app, &duplicate_claim, "sales", 401, "token_malformed").await;
}

#[tokio::test]
async fn the_client_rule_reports_an_unknown_or_revoked_kid_and_skips_algorithm_and_signature() {
    let app = seeded().await;
    let before = written(&app).await;

    let token = app.token().kid("nobody-host").sign();
    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "client", "token_unknown_client");
    assert!(detail(&ins, "client").contains("nobody-host"), "{ins:#}");
    assert_skipped(&ins, "algorithm");
    assert_skipped(&ins, "signature");
    // The claims are still checked and reported.
    for rule in [
        "required_claims",
        "claim_types",
        "issuer",
        "audience",
        "expiry",
        "not_before",
        "lifetime",
    ] {
        assert_passes(&ins, rule);
    }
    assert_skipped(&ins, "replay");
    assert_skipped(&ins, "user");
    assert_eq!(
        ins["header"]["kid"], "nobody-host",
        "the header is echoed: {ins:#}"
    );
    assert_eq!(written(&app).await, before);

    app.admin()
        .delete(&format!("/clients/{GLOBEX_CLIENT}"))
        .await;
    let before = written(&app).await;
    let token = TokenBuilder::globex(app.clock.unix()).sign();
    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "client", "token_unknown_client");
    assert_skipped(&ins, "signature");
    assert_eq!(written(&app).await, before);
}

#[tokio::test]
async fn the_algorithm_rule_reports_alg_none_and_another_hmac_size_and_skips_the_signature() {
    let app = seeded().await;
    let before = written(&app).await;
    let none = app.token().header("alg", json!("none")).sign();
    let lower = app.token().header("alg", json!("hs256")).sign();
    let hs512 = app.token().alg(Algorithm::HS512).sign();
    for token in [&none, &lower, &hs512] {
        let ins = inspect(&app, token).await;
        assert_fails(&ins, "algorithm", "token_alg_mismatch");
        assert_skipped(&ins, "signature");
        // Not consumed.
        assert_passes(&ins, "replay");
    }
    assert_eq!(written(&app).await, before);
    handshake_fails(&app, &hs512, "sales", 401, "token_alg_mismatch").await;
}

#[tokio::test]
async fn the_signature_rule_reports_a_wrong_secret() {
    let app = seeded().await;
    let before = written(&app).await;
    let token = app
        .token()
        .secret("not-the-secret-0123456789-abcdefghijklmnop")
        .sign();
    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "signature", "token_bad_signature");
    for rule in ["required_claims", "claim_types", "expiry", "replay"] {
        assert_passes(&ins, rule);
    }
    assert_eq!(written(&app).await, before);
    handshake_fails(&app, &token, "sales", 401, "token_bad_signature").await;
}

#[tokio::test]
async fn the_required_claims_rule_reports_a_missing_claim_and_skips_the_type_rules() {
    let app = seeded().await;
    let before = written(&app).await;
    for missing in ["jti", "iat", "exp"] {
        let token = app.token().without(missing).sign();
        let ins = inspect(&app, &token).await;
        assert_fails(&ins, "required_claims", "token_missing_claim");
        assert!(detail(&ins, "required_claims").contains(missing), "{ins:#}");
        for rule in [
            "claim_types",
            "issuer",
            "audience",
            "expiry",
            "not_before",
            "lifetime",
            "replay",
            "user",
        ] {
            assert_skipped(&ins, rule);
        }
    }
    let no_email = app.token().without("sub").sign();
    let ins = inspect(&app, &no_email).await;
    assert_fails(&ins, "required_claims", "token_missing_claim");
    assert_eq!(written(&app).await, before);
}

#[tokio::test]
async fn the_claim_types_rule_reports_an_invalid_claim_and_skips_the_later_claim_rules() {
    let app = seeded().await;
    let before = written(&app).await;
    for (name, value) in [
        ("exp", json!("soon")),
        ("teams", json!("acme-analysts")),
        ("email", json!("eve@acme.example")),
        ("sub", json!("not an email")),
    ] {
        let token = app.token().claim(name, value).sign();
        let ins = inspect(&app, &token).await;
        assert_fails(&ins, "claim_types", "token_invalid_claim");
        assert!(
            detail(&ins, "claim_types").contains(name),
            "the detail names {name}: {ins:#}"
        );
        for rule in [
            "issuer",
            "audience",
            "expiry",
            "not_before",
            "lifetime",
            "replay",
            "user",
        ] {
            assert_skipped(&ins, rule);
        }
    }
    assert_eq!(written(&app).await, before);
}

#[tokio::test]
async fn the_issuer_rule_reports_another_clients_iss() {
    let app = seeded().await;
    let before = written(&app).await;
    let token = app.token().claim("iss", json!(GLOBEX_CLIENT)).sign();
    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "issuer", "token_issuer_mismatch");
    for rule in ["audience", "expiry", "not_before", "lifetime", "replay"] {
        assert_passes(&ins, rule);
    }
    // iss equal to the client id passes.
    let ok = inspect(&app, &app.token().claim("iss", json!(ACME_CLIENT)).sign()).await;
    assert_eq!(ok["valid"], true, "{ok:#}");
    assert_eq!(written(&app).await, before);
    handshake_fails(&app, &token, "sales", 401, "token_issuer_mismatch").await;
}

#[tokio::test]
async fn the_audience_rule_reports_a_missing_or_wrong_aud_when_one_is_configured() {
    let app = spawn_app_with(|c| c.embed.audience = "eg".into()).await;
    seed(&app).await;
    let before = written(&app).await;

    let missing = app.token().sign();
    let ins = inspect(&app, &missing).await;
    assert_fails(&ins, "audience", "token_audience_mismatch");
    for rule in ["expiry", "not_before", "lifetime", "replay"] {
        assert_passes(&ins, rule);
    }
    let wrong = app.token().claim("aud", json!(["other", "nope"])).sign();
    let ins = inspect(&app, &wrong).await;
    assert_fails(&ins, "audience", "token_audience_mismatch");
    assert_eq!(written(&app).await, before);

    let right = app.token().claim("aud", json!(["other", "eg"])).sign();
    let ins = inspect(&app, &right).await;
    assert_eq!(ins["valid"], true, "{ins:#}");
    app.open(&right, "sales").await;
}

#[tokio::test]
async fn the_expiry_rule_reports_token_expired_and_does_not_consume_the_token() {
    let app = seeded().await;
    let token = app.token().sign(); // iat NOW, exp NOW + 300
    let before = written(&app).await;
    app.clock.advance_secs(300 + 60 + 1);

    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "expiry", "token_expired");
    let why = detail(&ins, "expiry");
    assert!(
        why.contains("2027-01-15T08:05:00Z"),
        "the token's exp: {why}"
    );
    assert!(
        why.contains("2027-01-15T08:06:01Z"),
        "the server time: {why}"
    );
    for rule in ["not_before", "lifetime", "replay"] {
        assert_passes(&ins, rule);
    }
    assert_eq!(written(&app).await, before);

    // Back in time the same token is valid and was not consumed.
    app.clock.set_unix(NOW);
    app.open(&token, "sales").await;
}

#[tokio::test]
async fn the_not_before_rule_reports_a_future_iat_or_nbf_and_does_not_consume_the_token() {
    let app = seeded().await;
    let early_iat = TokenBuilder::new(ACME_CLIENT, ACME_SECRET, NOW + 600).sign();
    let early_nbf = app
        .token()
        .claim("nbf", json!(NOW + 600))
        .claim("exp", json!(NOW + 900))
        .sign();
    let before = written(&app).await;
    for token in [&early_iat, &early_nbf] {
        let ins = inspect(&app, token).await;
        assert_fails(&ins, "not_before", "token_not_yet_valid");
        assert!(
            detail(&ins, "not_before").contains("2027-01-15T08:10:00Z"),
            "{ins:#}"
        );
        assert_passes(&ins, "lifetime");
        assert_passes(&ins, "replay");
    }
    assert_eq!(written(&app).await, before);

    app.clock.advance_secs(600);
    app.open(&early_iat, "sales").await;
    app.open(&early_nbf, "sales").await;
}

#[tokio::test]
async fn the_lifetime_rule_reports_a_token_that_lives_too_long() {
    let app = seeded().await;
    let before = written(&app).await;
    let token = app
        .token()
        .claim("exp", json!(NOW + MAX_LIFETIME + 1))
        .sign();
    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "lifetime", "token_lifetime_too_long");
    assert_passes(&ins, "replay");
    assert_passes(&ins, "user");
    assert_eq!(written(&app).await, before);

    // Exactly the maximum is fine.
    let longest = app.token().claim("exp", json!(NOW + MAX_LIFETIME)).sign();
    assert_eq!(inspect(&app, &longest).await["valid"], true);
    handshake_fails(&app, &token, "sales", 401, "token_lifetime_too_long").await;
    // A refused handshake did not consume it either.
    assert_passes(&inspect(&app, &token).await, "replay");
}

#[tokio::test]
async fn the_replay_rule_reports_a_token_already_used_in_a_handshake() {
    let app = seeded().await;
    let token = app.token().sign();
    app.open(&token, "sales").await;
    let before = written(&app).await;

    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "replay", "token_replayed");
    assert!(
        detail(&ins, "replay").contains(ins["claims"]["jti"].as_str().unwrap()),
        "{ins:#}"
    );
    assert_passes(&ins, "user");
    assert_eq!(written(&app).await, before);
    handshake_fails(&app, &token, "sales", 401, "token_replayed").await;
}

#[tokio::test]
async fn the_user_rule_reports_user_not_provisioned_when_auto_provisioning_is_off() {
    let app = seeded().await;
    app.admin()
        .settings(json!({"auto_provisioning": false}))
        .await;
    let before = written(&app).await;
    let token = app.token().email("newbie@acme.example").sign();
    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "user", "user_not_provisioned");
    assert!(
        detail(&ins, "user").contains("Automatic updating of users is disabled"),
        "{ins:#}"
    );
    assert_eq!(written(&app).await, before);
    handshake_fails(&app, &token, "sales", 403, "user_not_provisioned").await;
}

#[tokio::test]
async fn the_user_rule_reports_a_user_of_another_client() {
    let app = seeded().await;
    app.open(&app.token().sign(), "sales").await;
    let before = written(&app).await;
    let token = TokenBuilder::globex(app.clock.unix())
        .email("ana@acme.example")
        .sign();
    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "user", "user_belongs_to_other_client");
    assert_eq!(written(&app).await, before);
    handshake_fails(
        &app,
        &token,
        "inventory",
        403,
        "user_belongs_to_other_client",
    )
    .await;
}

#[tokio::test]
async fn the_user_rule_reports_a_team_the_client_may_not_name() {
    let app = seeded().await;
    let before = written(&app).await;
    let token = app
        .token()
        .claim("teams", json!(["globex-analysts"]))
        .sign();
    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "user", "team_not_allowed");
    assert!(detail(&ins, "user").contains("globex-analysts"), "{ins:#}");
    assert_eq!(written(&app).await, before);
    handshake_fails(&app, &token, "sales", 403, "team_not_allowed").await;
}

#[tokio::test]
async fn the_user_rule_reports_an_unknown_team() {
    let app = seeded().await;
    let before = written(&app).await;
    let token = TokenBuilder::globex(app.clock.unix())
        .claim("teams", json!(["globex-analysts", "ghosts"]))
        .sign();
    let ins = inspect(&app, &token).await;
    assert_fails(&ins, "user", "unknown_team");
    assert!(detail(&ins, "user").contains("ghosts"), "{ins:#}");
    assert_eq!(written(&app).await, before);
    assert_eq!(app.admin().user("gina@globex.example").await, Value::Null);
}

#[tokio::test]
async fn the_user_rule_says_what_a_handshake_would_update_without_updating_it() {
    let app = seeded().await;
    app.open(&app.token().sign(), "sales").await;
    let before = written(&app).await;
    let token = app
        .token()
        .claim("teams", json!(["acme-analysts", "acme-managers"]))
        .sign();
    let ins = inspect(&app, &token).await;
    assert_eq!(ins["valid"], true, "{ins:#}");
    let user = detail(&ins, "user");
    assert!(
        user.contains("update") && user.contains("acme-managers"),
        "{user}"
    );
    assert_eq!(written(&app).await, before);
    assert_eq!(
        sorted(&app.admin().user("ana@acme.example").await["teams"]),
        ["acme-analysts"]
    );

    // The handshake does what the inspector said.
    app.open(&token, "orders").await;
    assert_eq!(
        sorted(&app.admin().user("ana@acme.example").await["teams"]),
        ["acme-analysts", "acme-managers"]
    );
}

#[tokio::test]
async fn inspect_needs_the_admin_token() {
    let app = seeded().await;
    let token = app.token().sign();
    let res = admin_without_bearer(
        &app,
        Method::POST,
        "/tokens/inspect",
        &[],
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_error(res, 401, "unauthorized").await;
    let res = admin_without_bearer(
        &app,
        Method::POST,
        "/tokens/inspect",
        &[("Authorization", "Bearer not-an-admin-token")],
        Some(json!({"token": token})),
    )
    .await;
    assert_error(res, 401, "unauthorized").await;
    app.open(&token, "sales").await;
}

#[tokio::test]
async fn inspect_needs_a_json_object_body_with_a_token() {
    let app = seeded().await;
    let token = app.token().sign();
    for body in [
        json!([token]),
        json!(token),
        json!({}),
        json!({"token": 5}),
        json!({"token": null}),
        json!({"jwt": token}),
    ] {
        let res = app
            .admin()
            .send(Method::POST, "/tokens/inspect", Some(body.clone()))
            .await;
        let message = assert_error(res, 400, "validation_failed").await;
        assert!(!message.is_empty(), "{body}");
    }
    for raw in ["", "token=abc", "{\"token\":"] {
        let res = app
            .http
            .post(app.url("/admin/api/tokens/inspect"))
            .bearer_auth(&app.admin_token)
            .header("Content-Type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_error(res, 400, "validation_failed").await;
    }
    app.open(&token, "sales").await;
}
