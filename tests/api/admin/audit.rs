//! Housekeeping (`Gateway::maintain`): audit retention (`[audit].retention_days`)
//! and the purge of used `jti`s whose tokens have expired.

use reqwest::Method;
use serde_json::{Value, json};

use super::support::*;
use crate::helpers::*;

const DAY: i64 = 86_400;

fn at(entry: &Value) -> i64 {
    rfc3339_utc(&entry["at"])
}

fn has_handshake_of(entries: &[Value], email: &str) -> bool {
    entries
        .iter()
        .any(|e| e["event"] == "handshake" && e["email"] == email)
}

/// A handshake and an admin write at the clock's current time.
async fn record_some(app: &TestApp, email: &str, team: &str) {
    app.open(&app.token().email(email).sign(), "sales").await;
    app.admin()
        .post(
            "/teams",
            json!({"name": team, "description": "made for the audit"}),
        )
        .await;
}

#[tokio::test]
async fn maintain_prunes_audit_entries_older_than_the_retention_and_keeps_newer_ones() {
    let app = spawn_app_with(|c| c.audit.retention_days = 1).await;
    seed(&app).await;
    record_some(&app, "early@acme.example", "early-team").await;
    let old = app.admin().audit("limit=1000").await;
    assert!(has_handshake_of(&old, "early@acme.example"), "{old:#?}");
    assert!(old.iter().any(|e| e["event"] == "admin_change"), "{old:#?}");
    assert!(old.iter().all(|e| at(e) == NOW), "{old:#?}");

    app.clock.advance_secs(2 * DAY);
    record_some(&app, "late@acme.example", "late-team").await;
    let (_, pruned) = app.gateway.maintain().await;
    assert_eq!(pruned, old.len() as u64, "every old entry went");

    let now = app.admin().audit("limit=1000").await;
    assert!(!now.is_empty());
    assert!(
        now.iter().all(|e| at(e) == NOW + 2 * DAY),
        "only the new entries stay: {now:#?}"
    );
    assert!(!has_handshake_of(&now, "early@acme.example"), "{now:#?}");
    assert!(has_handshake_of(&now, "late@acme.example"), "{now:#?}");
    assert!(
        now.iter().any(|e| e["event"] == "admin_change"),
        "the new admin write stays: {now:#?}"
    );
    assert!(
        now.iter()
            .any(|e| e["event"] == "user_created" && e["email"] == "late@acme.example"),
        "{now:#?}"
    );

    // Half a day later the new entries are still inside the window.
    app.clock.advance_secs(DAY / 2);
    app.gateway.maintain().await;
    assert_eq!(app.admin().audit("limit=1000").await, now);
}

#[tokio::test]
async fn maintain_prunes_no_audit_entry_when_retention_is_zero() {
    let app = spawn_app_with(|c| c.audit.retention_days = 0).await;
    seed(&app).await;
    record_some(&app, "early@acme.example", "early-team").await;
    app.clock.advance_secs(400 * DAY);
    record_some(&app, "late@acme.example", "late-team").await;
    let before = app.admin().audit("limit=1000").await;

    let (_, pruned) = app.gateway.maintain().await;
    assert_eq!(pruned, 0);
    let after = app.admin().audit("limit=1000").await;
    assert_eq!(before, after);
    assert!(has_handshake_of(&after, "early@acme.example"), "{after:#?}");
    assert!(has_handshake_of(&after, "late@acme.example"), "{after:#?}");
}

async fn inspect(app: &TestApp, token: &str) -> Value {
    app.admin()
        .expect(
            Method::POST,
            "/tokens/inspect",
            Some(json!({"token": token})),
            200,
        )
        .await
}

fn check<'a>(ins: &'a Value, rule: &str) -> &'a Value {
    ins["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("checks must be a list: {ins:#}"))
        .iter()
        .find(|c| c["rule"] == rule)
        .unwrap_or_else(|| panic!("no check {rule:?}: {ins:#}"))
}

#[tokio::test]
async fn maintain_purges_used_jtis_of_expired_tokens_which_stay_expired() {
    let app = spawn_app().await;
    seed(&app).await;
    let short = app.token().sign(); // exp = NOW + 300
    let long = app.token().claim("exp", json!(NOW + DAY)).sign();
    app.open(&short, "sales").await;
    app.open(&long, "sales").await;
    assert_eq!(check(&inspect(&app, &short).await, "replay")["ok"], false);

    // Before the tokens expire nothing may be forgotten.
    let (jtis, _) = app.gateway.maintain().await;
    assert_eq!(jtis, 0);
    handshake_fails(&app, &short, "sales", 401, "token_replayed").await;

    // An hour later the short token is expired (with skew): its jti goes.
    app.clock.advance_secs(3600);
    let ins = inspect(&app, &short).await;
    assert_eq!(check(&ins, "expiry")["code"], "token_expired", "{ins:#}");
    assert_eq!(check(&ins, "replay")["code"], "token_replayed", "{ins:#}");
    let (jtis, _) = app.gateway.maintain().await;
    assert_eq!(jtis, 1, "only the expired token's jti is purged");
    let ins = inspect(&app, &short).await;
    assert_eq!(check(&ins, "replay")["ok"], true, "forgotten: {ins:#}");
    assert_eq!(ins["code"], "token_expired", "{ins:#}");

    // The forgotten token is still refused, as expired: never a 303.
    handshake_fails(&app, &short, "sales", 401, "token_expired").await;
    // The long-lived token is still remembered.
    handshake_fails(&app, &long, "sales", 401, "token_replayed").await;
    let (jtis, _) = app.gateway.maintain().await;
    assert_eq!(jtis, 0);
}
