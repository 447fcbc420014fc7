//! Small helpers shared by the session, access and content tests.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// `GET path` with the session cookie; asserts 200 and returns the body.
pub async fn ok_page(app: &TestApp, path: &str, cookie: &str) -> String {
    let res = app.get_with_cookie(path, cookie).await;
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
    text
}

/// `GET path` with the session cookie; asserts 200 and returns the JSON.
pub async fn ok_json(app: &TestApp, path: &str, cookie: &str) -> Value {
    let text = ok_page(app, path, cookie).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
}

/// The directory's `me` for a session on `workbook`.
pub async fn me(app: &TestApp, workbook: &str, cookie: &str) -> Value {
    ok_json(app, &format!("/embed/workbooks/{workbook}/_api/me"), cookie).await
}

/// The sorted permission names of a `me` answer.
pub fn permissions(me: &Value) -> Vec<String> {
    let mut p: Vec<String> = me["permissions"]
        .as_array()
        .unwrap_or_else(|| panic!("permissions missing in {me}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    p.sort();
    p
}

pub fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// The number N of the sales template's "N sales".
pub fn sales_rows(html: &str) -> usize {
    let at = html
        .find(" sales, total")
        .unwrap_or_else(|| panic!("no sales count in {html}"));
    let digits: String = html[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().unwrap()
}

/// The rows the sales page shows with this session.
pub async fn sales_seen(app: &TestApp, cookie: &str) -> usize {
    sales_rows(&ok_page(app, "/embed/workbooks/sales", cookie).await)
}

/// A cookie (`name=value`) with one character of its value changed.
pub fn tamper(cookie: &str) -> String {
    let (name, value) = cookie.split_once('=').unwrap();
    let mut chars: Vec<char> = value.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    assert_ne!(tampered, value);
    format!("{name}={tampered}")
}

pub async fn user_id(app: &TestApp, email: &str) -> i64 {
    let user = app.admin().user(email).await;
    user["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no user {email}: {user}"))
}

pub async fn team_id(app: &TestApp, name: &str) -> i64 {
    let teams = app.admin().get("/teams").await;
    teams
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .and_then(|t| t["id"].as_i64())
        .unwrap_or_else(|| panic!("no team {name} in {teams}"))
}

/// The id of `team`'s grant on workbook `workbook` for `tag` (None = published).
pub async fn grant_id(app: &TestApp, team: &str, workbook: &str, tag: Option<&str>) -> i64 {
    let grants = app
        .admin()
        .get(&format!("/grants?team={team}&workbook={workbook}"))
        .await;
    let tag = tag.map_or(Value::Null, |t| json!(t));
    grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["team"] == team && g["workbook"] == workbook && g["tag"] == tag)
        .and_then(|g| g["id"].as_i64())
        .unwrap_or_else(|| panic!("no grant of {team} on {workbook} ({tag}) in {grants}"))
}

pub async fn separation(app: &TestApp, enabled: bool) {
    let settings = app
        .admin()
        .settings(json!({"company_separation": {"enabled": enabled}}))
        .await;
    assert_eq!(settings["company_separation"]["enabled"], enabled);
}

/// The JSON error body of a response, after checking its status.
pub async fn error_body(res: reqwest::Response, status: u16) -> Value {
    let actual = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(actual, status, "unexpected status; body {body}");
    body
}
