//! Small helpers of the admin, ops and CLI tests.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

/// A request to `/admin/api{path}` with no `Authorization` header, plus any
/// extra headers.
pub async fn admin_without_bearer(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = app
        .http
        .request(method, app.url(&format!("/admin/api{path}")));
    for (name, value) in headers {
        r = r.header(*name, *value);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

/// The values of `key` in a JSON array of objects, as strings.
pub fn strings(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("expected a JSON array, got {list}"))
        .iter()
        .map(|v| match &v[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The sorted values of a JSON array of strings.
pub fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON array, got {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

pub fn sorted_strs(v: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    out.sort();
    out
}

/// Asserts that `s` is an RFC 3339 UTC timestamp ending in `Z` and returns
/// its Unix seconds.
pub fn rfc3339_utc(s: &Value) -> i64 {
    let text = s
        .as_str()
        .unwrap_or_else(|| panic!("timestamp {s} is not a string"));
    assert!(text.ends_with('Z'), "{text} must be UTC with a Z");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
        .timestamp()
}

/// The JSON of one base64url segment of a JWT.
pub fn jwt_part(token: &str, index: usize) -> Value {
    let seg = token.split('.').nth(index).expect("a JWT segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).expect("base64url")).expect("JSON")
}

/// A handshake that must fail with `status` and `code`.
pub async fn handshake_fails(app: &TestApp, token: &str, workbook: &str, status: u16, code: &str) {
    let res = app.handshake(token, workbook).await;
    assert_error(res, status, code).await;
}

/// A session request (cookie, no token) to the workbook, asking for JSON.
pub async fn session_get(app: &TestApp, cookie: &str, workbook: &str) -> reqwest::Response {
    app.get_with_cookie(&format!("/embed/workbooks/{workbook}"), cookie)
        .await
}

/// Creates an internal user and returns its JSON.
pub async fn internal_user(app: &TestApp, email: &str, teams: &[&str]) -> Value {
    app.admin()
        .post(
            "/users",
            serde_json::json!({"email": email, "teams": teams}),
        )
        .await
}

/// The admin API's full state that an unauthorised request could change.
pub async fn snapshot(app: &TestApp) -> Value {
    let admin = app.admin();
    serde_json::json!({
        "settings": admin.get("/settings").await,
        "clients": admin.get("/clients").await,
        "teams": admin.get("/teams").await,
        "users": admin.get("/users").await,
        "account_types": admin.get("/account-types").await,
        "workspaces": admin.get("/workspaces").await,
        "workbooks": admin.get("/workbooks").await,
        "grants": admin.get("/grants").await,
    })
}
