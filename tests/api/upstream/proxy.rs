//! Upstream workbooks end to end (SPEC §6, with §2): where proxied requests
//! go, which headers cross the gateway in each direction, methods and
//! bodies, the signed identity assertion and its reuse, upstream failures,
//! paths that try to climb out of the source, streaming, tags with their own
//! source, company separation and the tenant directory.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use embedgate::clock::Clock;
use embedgate::config::Config;
use futures_util::StreamExt;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::recorder::{RawUpstream, Recorded, Recorder};
use crate::helpers::*;

const LIVE: &str = "/embed/workbooks/live";
const ASSERTION: &str = "x-embedgate-assertion";

// ---------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------

/// Creates an upstream workbook.
async fn upstream_workbook(app: &TestApp, id: &str, name: &str, url: &str) {
    app.admin()
        .post(
            "/workbooks",
            json!({"id": id, "name": name, "source": {"type": "upstream", "url": url}}),
        )
        .await;
}

/// Grants `team` `level` on `workbook` (published version, or `tag`).
async fn grant(app: &TestApp, team: &str, workbook: &str, level: &str, tag: Option<&str>) {
    app.admin()
        .post(
            "/grants",
            json!({"team": team, "workbook": workbook, "level": level, "tag": tag}),
        )
        .await;
}

/// Sets the source of tag `tag` of `workbook`.
async fn put_tag(app: &TestApp, workbook: &str, tag: &str, source: Value) {
    app.admin()
        .expect(
            Method::PUT,
            &format!("/workbooks/{workbook}/tags/{tag}"),
            Some(json!({ "source": source })),
            200,
        )
        .await;
}

/// A seeded gateway (customised), a recording upstream and the upstream
/// workbook `live` (source `{upstream}/app`) that acme-analysts may view.
async fn live_with(customize: impl FnOnce(&mut Config)) -> (TestApp, Recorder) {
    let app = spawn_app_with(customize).await;
    seed(&app).await;
    let up = Recorder::start().await;
    upstream_workbook(&app, "live", "Live", &up.url("/app")).await;
    grant(&app, "acme-analysts", "live", "view", None).await;
    (app, up)
}

async fn live() -> (TestApp, Recorder) {
    live_with(|_| {}).await
}

/// A handshake at `path` (which may carry a query) that must succeed:
/// returns the session cookie and the `Location`.
async fn open_at(app: &TestApp, token: &str, path: &str) -> (String, String) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let res = app.get_json(&format!("{path}{sep}jwt={token}")).await;
    let status = res.status();
    let cookie = session_cookie(&res);
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "handshake at {path}: {}",
        res.text().await.unwrap_or_default()
    );
    (cookie.unwrap(), location.unwrap())
}

/// ana's session on `live`.
async fn ana_live(app: &TestApp) -> String {
    app.open(&app.token().sign(), "live").await
}

/// A request to the gateway with the session cookie.
fn req(app: &TestApp, method: Method, path: &str, cookie: &str) -> reqwest::RequestBuilder {
    app.http
        .request(method, app.url(path))
        .header("Cookie", cookie)
}

/// `GET path` with the cookie; asserts 200 and returns the body.
async fn ok(app: &TestApp, path: &str, cookie: &str) -> String {
    let res = app.get_with_cookie(path, cookie).await;
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
    text
}

/// `GET path` with the cookie; asserts 200 and returns the JSON.
async fn ok_json(app: &TestApp, path: &str, cookie: &str) -> Value {
    let text = ok(app, path, cookie).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
}

/// The one assertion the upstream got with `rec`.
fn assertion(rec: &Recorded) -> String {
    rec.header(ASSERTION).to_owned()
}

/// The assertion of the upstream's last request after `GET path`.
async fn assertion_after(app: &TestApp, up: &Recorder, path: &str, cookie: &str) -> String {
    ok(app, path, cookie).await;
    assertion(&up.last())
}

/// The claims of a JWT, without verifying it.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three segments");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The gateway's public keys.
async fn jwks(app: &TestApp) -> JwkSet {
    let res = app.get("/.well-known/jwks.json").await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// Verifies an assertion the way an upstream does: the key of its `kid`
/// from the JWKS, ES256, `aud` = the workbook, `iss` = public_url.
/// `check_exp` is off when the gateway's clock is frozen at [`NOW`] (the
/// validator reads the real clock); the caller then checks `exp` itself.
async fn verify(
    app: &TestApp,
    token: &str,
    workbook: &str,
    check_exp: bool,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let set = jwks(app).await;
    let header = jsonwebtoken::decode_header(token)?;
    assert_eq!(header.alg, Algorithm::ES256);
    let kid = header.kid.expect("the assertion names its key");
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    let key = DecodingKey::from_jwk(jwk)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[workbook]);
    validation.set_issuer(&[app.config.server.public_url.trim_end_matches('/')]);
    validation.validate_exp = check_exp;
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &validation).map(|d| d.claims)
}

/// The real time, for a test that verifies with a validator that reads it.
#[allow(clippy::disallowed_methods)]
fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sorted_strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn strings(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

async fn admin_user_id(app: &TestApp, email: &str) -> i64 {
    let user = app.admin().user(email).await;
    user["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no user {email}: {user}"))
}

/// Sends `request` (a whole HTTP/1.1 request head) over plain TCP, so that
/// no client normalises the path; returns the status and the whole answer.
async fn raw(port: u16, request: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        // A safety net against a hung test, not a timed assertion.
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, text)
    })
    .await
    .unwrap()
}

/// A raw `GET target` with the session cookie, asking for JSON errors.
fn raw_get(target: &str, host: &str, cookie: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
}

/// The error code in a raw JSON error answer.
fn raw_code(answer: &str) -> Option<String> {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    serde_json::from_str::<Value>(&body[start..end])
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
}

/// Every value of a response header.
fn values(res: &reqwest::Response, name: &str) -> Vec<String> {
    res.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Routing
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_workbook_url_goes_to_the_source_url_and_sub_paths_and_queries_are_appended() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    assert_eq!(up.count(), 0, "a handshake does not reach the upstream");

    let page = ok(&app, LIVE, &cookie).await;
    assert!(page.contains("upstream page /app"), "{page}");
    assert_eq!(up.last().path, "/app");
    assert_eq!(up.last().method, "GET");

    let page = ok(&app, &format!("{LIVE}/a/b?x=1&y=2"), &cookie).await;
    assert!(page.contains("upstream page /app/a/b"), "{page}");
    assert_eq!(up.last().path, "/app/a/b?x=1&y=2");

    ok(&app, &format!("{LIVE}?x=1&y=2"), &cookie).await;
    assert_eq!(up.last().path, "/app?x=1&y=2");
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn a_source_url_ending_with_a_slash_gets_no_double_slash() {
    let (app, up) = live().await;
    upstream_workbook(&app, "slash", "Slash", &up.url("/app/")).await;
    grant(&app, "acme-analysts", "slash", "view", None).await;
    let cookie = app.open(&app.token().sign(), "slash").await;

    ok(&app, "/embed/workbooks/slash", &cookie).await;
    assert_eq!(up.last().path, "/app/");
    ok(&app, "/embed/workbooks/slash/a/b?x=1&y=2", &cookie).await;
    assert_eq!(up.last().path, "/app/a/b?x=1&y=2");
    for r in up.requests() {
        assert!(!r.path.contains("//"), "double slash in {}", r.path);
    }
}

#[tokio::test]
async fn the_token_never_reaches_the_upstream() {
    let (app, up) = live().await;
    let token = app.token().sign();
    let signature = token.rsplit('.').next().unwrap().to_owned();
    let res = app.get(&format!("{LIVE}/a/b?x=1&jwt={token}&y=2")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("{LIVE}/a/b?x=1&y=2"));
    let cookie = session_cookie(&res).unwrap();
    assert_eq!(up.count(), 0, "the handshake redirects before any proxying");

    ok(&app, &location, &cookie).await;
    // The alias too.
    let token2 = app.token().sign();
    let res = app.get(&format!("{LIVE}?:jwt={token2}&z=1")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie2 = session_cookie(&res).unwrap();
    ok(&app, res.headers()["location"].to_str().unwrap(), &cookie2).await;

    let requests = up.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/app/a/b?x=1&y=2");
    assert_eq!(requests[1].path, "/app?z=1");
    for r in &requests {
        let text = r.all_text();
        for needle in [token.as_str(), token2.as_str(), signature.as_str(), "jwt"] {
            assert!(
                !text.contains(needle),
                "{needle:?} reached the upstream: {text}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Request headers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn browser_credentials_and_forged_gateway_headers_are_not_forwarded() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    let res = req(
        &app,
        Method::GET,
        &format!("{LIVE}/h"),
        &format!("{cookie}; other=1; theme=dark"),
    )
    .header("Authorization", "Bearer host-app-secret")
    .header("X-Embedgate-Assertion", "forged")
    .header("X-Embedgate-User", "admin@acme.example")
    .header("Accept", "text/html")
    .header("X-Custom", "kept")
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let r = up.last();
    assert_eq!(r.path, "/app/h");
    for name in ["cookie", "authorization", "x-embedgate-user"] {
        assert!(!r.has_header(name), "{name} reached the upstream: {r:?}");
    }
    assert!(!r.all_text().contains("host-app-secret"));
    assert!(!r.all_text().contains("embedgate_session"));
    // Exactly one assertion, the gateway's.
    let a = r.header(ASSERTION);
    assert_ne!(a, "forged");
    verify(&app, a, "live", false).await.unwrap();
    assert_eq!(r.header("accept"), "text/html");
    assert_eq!(r.header("x-custom"), "kept");
}

#[tokio::test]
async fn hop_by_hop_and_connection_listed_request_headers_are_removed() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    let res = req(&app, Method::GET, &format!("{LIVE}/h"), &cookie)
        .header("Connection", "X-Secret")
        .header("X-Secret", "1")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Authorization", "Basic cHJveHk6cHc=")
        .header("TE", "trailers")
        .header("Trailer", "X-Checksum")
        .header("X-Custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let r = up.last();
    for name in [
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
    ] {
        assert!(!r.has_header(name), "{name} reached the upstream: {r:?}");
    }
    for v in r.header_values("connection") {
        assert!(
            !v.to_ascii_lowercase().contains("x-secret"),
            "the browser's Connection reached the upstream: {v}"
        );
    }
    assert_eq!(r.header("x-custom"), "kept");
}

#[tokio::test]
async fn host_and_forwarded_host_do_not_change_where_the_request_goes() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    let res = req(&app, Method::GET, &format!("{LIVE}/where"), &cookie)
        .header("Host", "evil.example")
        .header("X-Forwarded-Host", "evil.example")
        .header("Forwarded", "host=evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let r = up.last();
    assert_eq!(r.path, "/app/where");
    assert_eq!(r.header("host"), format!("127.0.0.1:{}", up.port));
    assert!(
        !r.all_text().contains("evil.example"),
        "the browser's host reached the upstream: {r:?}"
    );

    // An absolute request line does not choose the destination either.
    let (status, answer) = raw(
        app.port,
        raw_get(
            &format!("http://evil.example{LIVE}/absolute"),
            "evil.example",
            &cookie,
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let r = up.last();
    assert_eq!(r.path, "/app/absolute");
    assert_eq!(r.header("host"), format!("127.0.0.1:{}", up.port));
    assert!(!r.all_text().contains("evil.example"), "{r:?}");
}

#[tokio::test]
async fn the_upstream_gets_x_forwarded_for() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    ok(&app, LIVE, &cookie).await;
    assert_eq!(up.last().header("x-forwarded-for"), "127.0.0.1");
}

// ---------------------------------------------------------------------------
// 3. Responses
// ---------------------------------------------------------------------------

#[tokio::test]
async fn upstream_cookies_are_dropped_and_the_gateway_sets_caching_referrer_and_framing() {
    let (app, _up) = live().await;
    let cookie = ana_live(&app).await;
    let res = app
        .get_with_cookie(&format!("{LIVE}/cookie"), &cookie)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        values(&res, "set-cookie").is_empty(),
        "an upstream cookie reached the browser: {:?}",
        res.headers()
    );
    assert_eq!(values(&res, "cache-control"), ["no-store"]);
    assert_eq!(values(&res, "referrer-policy"), ["no-referrer"]);
    let csp = values(&res, "content-security-policy").join(", ");
    assert!(
        csp.contains(&format!("frame-ancestors {ACME_ORIGIN}")),
        "no frame-ancestors: {csp:?}"
    );
    assert_eq!(res.text().await.unwrap(), "cookie page");

    // An ordinary page has them too.
    let res = app.get_with_cookie(LIVE, &cookie).await;
    assert_eq!(values(&res, "cache-control"), ["no-store"]);
    assert_eq!(values(&res, "referrer-policy"), ["no-referrer"]);
    assert!(
        values(&res, "content-security-policy")
            .join(", ")
            .contains(&format!("frame-ancestors {ACME_ORIGIN}"))
    );
}

#[tokio::test]
async fn hop_by_hop_and_connection_listed_response_headers_are_removed() {
    let app = spawn_app().await;
    seed(&app).await;
    let body = "hop page";
    let up = RawUpstream::start(format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close, X-Up-Private\r\nX-Up-Private: 1\r\nKeep-Alive: timeout=5\r\nX-Up-Public: 1\r\n\r\n{body}",
        body.len()
    ));
    upstream_workbook(&app, "hop", "Hop", &up.url("/app")).await;
    grant(&app, "acme-analysts", "hop", "view", None).await;
    let cookie = app.open(&app.token().sign(), "hop").await;
    let res = app
        .get_with_cookie("/embed/workbooks/hop/hop", &cookie)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        up.heads()
            .last()
            .unwrap()
            .starts_with("GET /app/hop HTTP/1.1")
    );
    for name in ["x-up-private", "keep-alive"] {
        assert!(
            values(&res, name).is_empty(),
            "{name} reached the browser: {:?}",
            res.headers()
        );
    }
    for v in values(&res, "connection") {
        assert!(!v.to_ascii_lowercase().contains("x-up-private"), "{v}");
    }
    assert_eq!(values(&res, "x-up-public"), ["1"]);
    assert_eq!(res.text().await.unwrap(), body);
}

#[tokio::test]
async fn redirects_are_passed_back_and_locations_inside_the_source_are_rewritten() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    let res = app
        .get_with_cookie(&format!("{LIVE}/redirect"), &cookie)
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["location"], "/embed/workbooks/live/next");
    assert_eq!(values(&res, "cache-control"), ["no-store"]);
    // Not followed: the upstream saw the redirect request only.
    assert_eq!(up.count(), 1);
    assert_eq!(up.last().path, "/app/redirect");

    let res = app.get_with_cookie(&format!("{LIVE}/away"), &cookie).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["location"], "https://elsewhere.example/");
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn upstream_error_statuses_pass_through() {
    let (app, _up) = live().await;
    let cookie = ana_live(&app).await;
    for code in [404u16, 500, 503] {
        let res = app
            .get_with_cookie(&format!("{LIVE}/status/{code}"), &cookie)
            .await;
        assert_eq!(res.status().as_u16(), code);
        assert_eq!(values(&res, "cache-control"), ["no-store"]);
        assert_eq!(res.text().await.unwrap(), format!("status {code}"));
    }
}

// ---------------------------------------------------------------------------
// 4. Methods and bodies
// ---------------------------------------------------------------------------

#[tokio::test]
async fn get_head_and_options_work_with_a_view_grant() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
        let res = req(&app, method.clone(), &format!("{LIVE}/m"), &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{method}");
        let r = up.last();
        assert_eq!(r.method, method.as_str());
        assert_eq!(r.path, "/app/m");
        let body = res.text().await.unwrap();
        if method == Method::HEAD {
            assert!(body.is_empty());
        } else {
            assert!(body.contains("upstream page /app/m"), "{method}: {body}");
        }
    }
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn writes_need_explore_and_a_view_only_grant_gets_access_denied_upstream_untouched() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let res = req(&app, method.clone(), &format!("{LIVE}/echo"), &cookie)
            .header("Accept", "application/json")
            .body("change something")
            .send()
            .await
            .unwrap();
        assert_error(res, 403, "access_denied").await;
    }
    // Without a body too.
    let res = req(&app, Method::DELETE, LIVE, &cookie)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "access_denied").await;
    assert_eq!(up.count(), 0, "{:?}", up.requests());

    // An Explorer on a view grant is still view-only.
    let token = app
        .token()
        .email("erin@acme.example")
        .claim("account_type", json!("Explorer"))
        .sign();
    let explorer = app.open(&token, "live").await;
    let res = req(&app, Method::POST, &format!("{LIVE}/echo"), &explorer)
        .header("Accept", "application/json")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "access_denied").await;
    assert_eq!(up.count(), 0);
}

/// ana as an Explorer in acme-analysts (view on `live`) and acme-managers
/// (explore on `live`): may write.
async fn explorer_session(app: &TestApp) -> String {
    grant(app, "acme-managers", "live", "explore", None).await;
    let token = app
        .token()
        .claim("teams", json!(["acme-analysts", "acme-managers"]))
        .claim("account_type", json!("Explorer"))
        .sign();
    app.open(&token, "live").await
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn with_explore_a_post_body_streams_to_the_upstream_and_back_unchanged() {
    let (app, up) = live().await;
    let cookie = explorer_session(&app).await;
    let body = pattern(3 * 1024 * 1024 + 17);
    let res = req(&app, Method::POST, &format!("{LIVE}/echo?x=1"), &cookie)
        .header("Content-Type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let echoed = res.bytes().await.unwrap();
    assert_eq!(echoed.len(), body.len());
    assert!(echoed == body, "the echo differs from the body");
    let r = up.last();
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/app/echo?x=1");
    assert!(r.body == body, "the upstream got another body");

    // A body without a length (chunked) streams too, and other methods pass.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..32).map(|i| Ok(vec![i as u8; 64 * 1024])).collect();
    let expected: Vec<u8> = chunks
        .iter()
        .flat_map(|c| c.as_ref().unwrap().clone())
        .collect();
    let res = req(&app, Method::PUT, &format!("{LIVE}/echo"), &cookie)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap() == expected);
    assert_eq!(up.last().method, "PUT");
    for method in [Method::DELETE, Method::PATCH] {
        let res = req(&app, method.clone(), &format!("{LIVE}/echo"), &cookie)
            .body("small")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{method}");
        assert_eq!(res.text().await.unwrap(), "small");
        assert_eq!(up.last().method, method.as_str());
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_payload_too_large_and_never_reaches_the_upstream() {
    let (app, up) = live_with(|c| c.content.max_request_body_bytes = 1024).await;
    let cookie = explorer_session(&app).await;
    let res = req(&app, Method::POST, &format!("{LIVE}/echo"), &cookie)
        .header("Accept", "application/json")
        .body(pattern(4096))
        .send()
        .await
        .unwrap();
    assert_error(res, 413, "payload_too_large").await;
    assert_eq!(up.count(), 0, "{:?}", up.requests());
    // At the limit it passes.
    let res = req(&app, Method::POST, &format!("{LIVE}/echo"), &cookie)
        .body(pattern(1024))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().len(), 1024);
}

// ---------------------------------------------------------------------------
// 5. The identity assertion
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_assertion_verifies_with_the_jwks_and_carries_the_contract_claims() {
    let app = spawn_app().await;
    // The validator reads the real clock: let the gateway's agree.
    let now = real_now();
    app.clock.set_unix(now);
    seed(&app).await;
    let up = Recorder::start().await;
    upstream_workbook(&app, "live", "Live", &up.url("/app")).await;
    grant(&app, "acme-analysts", "live", "view", None).await;
    let cookie = ana_live(&app).await;

    let token = assertion_after(&app, &up, LIVE, &cookie).await;
    let claims = verify(&app, &token, "live", true)
        .await
        .expect("the assertion verifies");
    let id = admin_user_id(&app, "ana@acme.example").await;
    assert_eq!(claims["iss"], app.config.server.public_url.as_str());
    assert_eq!(claims["aud"], "live");
    assert_eq!(claims["sub"], "ana@acme.example");
    assert_eq!(claims["user_id"], json!(id.to_string()));
    assert_eq!(sorted_strings(&claims["teams"]), ["acme-analysts"]);
    assert_eq!(claims["account_type"], "Viewer");
    assert_eq!(sorted_strings(&claims["permissions"]), ["view"]);
    assert_eq!(claims["attributes"], json!({"company": "acme"}));
    assert!(claims["tag"].is_null(), "{claims}");
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(iat, now);
    assert!(exp > iat && exp - iat <= 60, "iat {iat} exp {exp}");

    // The JWKS holds public keys only.
    let raw: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    for key in raw["keys"].as_array().unwrap() {
        assert!(key.get("d").is_none(), "a private key in the JWKS: {key}");
    }
    // Another workbook's audience does not accept it.
    assert!(verify(&app, &token, "sales", true).await.is_err());
}

#[tokio::test]
async fn the_assertion_of_an_explorer_on_an_explore_grant_lists_its_permissions() {
    let (app, up) = live().await;
    let cookie = explorer_session(&app).await;
    let token = assertion_after(&app, &up, &format!("{LIVE}/x"), &cookie).await;
    let claims = verify(&app, &token, "live", false).await.unwrap();
    assert_eq!(claims["account_type"], "Explorer");
    assert_eq!(
        sorted_strings(&claims["permissions"]),
        strings(&["view", "explore", "export"])
    );
    assert_eq!(claims["iat"], NOW);
    let exp = claims["exp"].as_i64().unwrap();
    assert!(exp > NOW && exp - NOW <= 60);
}

#[tokio::test]
async fn the_assertion_of_a_tag_names_the_tag() {
    let (app, up) = live().await;
    put_tag(
        &app,
        "live",
        "v2",
        json!({"type": "upstream", "url": up.url("/v2app")}),
    )
    .await;
    grant(&app, "acme-analysts", "live", "view", Some("v2")).await;
    let (cookie, location) = open_at(&app, &app.token().sign(), &format!("{LIVE}?tag=v2")).await;
    assert_eq!(location, format!("{LIVE}?tag=v2"));
    let token = assertion_after(&app, &up, &location, &cookie).await;
    assert!(up.last().path.starts_with("/v2app"), "{:?}", up.last());
    let claims = verify(&app, &token, "live", false).await.unwrap();
    assert_eq!(claims["tag"], "v2");
    // The published version says null.
    let token = assertion_after(&app, &up, LIVE, &cookie).await;
    assert!(verify(&app, &token, "live", false).await.unwrap()["tag"].is_null());
}

#[tokio::test]
async fn a_tampered_assertion_fails_verification() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    let token = assertion_after(&app, &up, LIVE, &cookie).await;
    verify(&app, &token, "live", false).await.unwrap();

    // Another payload under the same signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = claims_of(&token);
    claims["permissions"] = json!(["view", "explore", "export", "edit"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert!(verify(&app, &forged, "live", false).await.is_err());
    // One character of the signature changed.
    let mut sig: Vec<char> = parts[2].chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    let bad = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        sig.into_iter().collect::<String>()
    );
    assert!(verify(&app, &bad, "live", false).await.is_err());
}

#[tokio::test]
async fn user_attributes_travel_only_inside_the_assertion() {
    let (app, up) = live().await;
    let token = app
        .token()
        .claim(
            "user_attributes",
            json!({"company": "acme", "region": "emea-north"}),
        )
        .sign();
    let cookie = app.open(&token, "live").await;
    ok(&app, LIVE, &cookie).await;
    ok(&app, &format!("{LIVE}/a?b=c"), &cookie).await;
    for r in up.requests() {
        assert!(
            claims_of(&assertion(&r))["attributes"]["region"] == "emea-north",
            "{r:?}"
        );
        for (name, value) in &r.headers {
            if name == ASSERTION {
                continue;
            }
            let v = value.to_ascii_lowercase();
            assert!(
                !v.contains("acme") && !v.contains("emea-north"),
                "a user attribute travelled as header {name}: {value}"
            );
        }
        assert!(!r.path.contains("acme") && !r.path.contains("emea"));
    }
}

// ---------------------------------------------------------------------------
// 6. Assertion reuse
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_assertion_is_reused_within_ten_seconds_and_renewed_after() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    let first = assertion_after(&app, &up, LIVE, &cookie).await;
    let second = assertion_after(&app, &up, &format!("{LIVE}/other?q=1"), &cookie).await;
    assert_eq!(first, second, "reused for the same user state");
    app.clock.advance_secs(9);
    let third = assertion_after(&app, &up, LIVE, &cookie).await;
    assert_eq!(first, third, "still reused after 9 s");
    app.clock.advance_secs(1);
    let fourth = assertion_after(&app, &up, LIVE, &cookie).await;
    assert_ne!(first, fourth, "renewed after 10 s");
    let claims = verify(&app, &fourth, "live", false).await.unwrap();
    assert_eq!(claims["iat"], NOW + 10);
    assert!(claims["exp"].as_i64().unwrap() <= NOW + 10 + 60);
    // The renewed one is reused in its turn.
    let fifth = assertion_after(&app, &up, LIVE, &cookie).await;
    assert_eq!(fourth, fifth);
}

#[tokio::test]
async fn a_user_change_gives_a_new_assertion_reflecting_it_at_once() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    let id = admin_user_id(&app, "ana@acme.example").await;
    let first = assertion_after(&app, &up, LIVE, &cookie).await;
    assert_eq!(
        sorted_strings(&claims_of(&first)["teams"]),
        ["acme-analysts"]
    );

    // The clock does not move: the change must show on the very next request.
    app.admin()
        .patch(
            &format!("/users/{id}"),
            json!({"teams": ["acme-analysts", "acme-managers"]}),
        )
        .await;
    let second = assertion_after(&app, &up, LIVE, &cookie).await;
    assert_ne!(first, second, "a team change must sign a new assertion");
    assert_eq!(
        sorted_strings(&claims_of(&second)["teams"]),
        strings(&["acme-analysts", "acme-managers"])
    );

    app.admin()
        .patch(
            &format!("/users/{id}"),
            json!({"attributes": {"company": "acme-east"}}),
        )
        .await;
    let third = assertion_after(&app, &up, LIVE, &cookie).await;
    assert_ne!(
        second, third,
        "an attribute change must sign a new assertion"
    );
    assert_eq!(
        claims_of(&third)["attributes"],
        json!({"company": "acme-east"})
    );
    verify(&app, &third, "live", false).await.unwrap();
}

#[tokio::test]
async fn a_user_change_a_second_later_gives_a_new_assertion_reflecting_it() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    let id = admin_user_id(&app, "ana@acme.example").await;
    let first = assertion_after(&app, &up, LIVE, &cookie).await;
    app.clock.advance_secs(1);
    app.admin()
        .patch(
            &format!("/users/{id}"),
            json!({"teams": ["acme-analysts", "acme-managers"], "attributes": {"company": "acme-east"}}),
        )
        .await;
    let second = assertion_after(&app, &up, LIVE, &cookie).await;
    assert_ne!(first, second);
    let claims = claims_of(&second);
    assert_eq!(
        sorted_strings(&claims["teams"]),
        strings(&["acme-analysts", "acme-managers"])
    );
    assert_eq!(claims["attributes"], json!({"company": "acme-east"}));
}

#[tokio::test]
async fn a_permission_change_gives_a_new_assertion_at_once() {
    let (app, up) = live().await;
    let cookie = explorer_session(&app).await;
    let first = assertion_after(&app, &up, LIVE, &cookie).await;
    assert_eq!(
        sorted_strings(&claims_of(&first)["permissions"]),
        strings(&["view", "explore", "export"])
    );
    let grants = app
        .admin()
        .get("/grants?team=acme-managers&workbook=live")
        .await;
    let explore = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["level"] == "explore")
        .and_then(|g| g["id"].as_i64())
        .unwrap();
    app.admin().delete(&format!("/grants/{explore}")).await;
    let second = assertion_after(&app, &up, LIVE, &cookie).await;
    assert_eq!(
        sorted_strings(&claims_of(&second)["permissions"]),
        strings(&["view", "export"])
    );
}

#[tokio::test]
async fn renaming_a_team_shows_in_the_very_next_assertion() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    let first = assertion_after(&app, &up, LIVE, &cookie).await;
    assert_eq!(
        sorted_strings(&claims_of(&first)["teams"]),
        ["acme-analysts"]
    );
    let teams = app.admin().get("/teams").await;
    let team = teams
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme-analysts")
        .and_then(|t| t["id"].as_i64())
        .unwrap();
    app.admin()
        .patch(&format!("/teams/{team}"), json!({"name": "acme-research"}))
        .await;
    let second = assertion_after(&app, &up, LIVE, &cookie).await;
    assert_eq!(
        sorted_strings(&claims_of(&second)["teams"]),
        ["acme-research"],
        "the assertion names a team that no longer exists"
    );
}

// ---------------------------------------------------------------------------
// 7. Upstream failures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_upstream_that_refuses_connections_is_upstream_unavailable() {
    let app = spawn_app().await;
    seed(&app).await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    upstream_workbook(
        &app,
        "down",
        "Down",
        &format!("http://127.0.0.1:{port}/app"),
    )
    .await;
    grant(&app, "acme-analysts", "down", "view", None).await;
    let cookie = app.open(&app.token().sign(), "down").await;
    let res = app
        .get_with_cookie("/embed/workbooks/down/page", &cookie)
        .await;
    assert_eq!(values(&res, "cache-control"), ["no-store"]);
    assert_error(res, 502, "upstream_unavailable").await;

    // Without Accept: application/json, an HTML page with the same status.
    let res = req(&app, Method::GET, "/embed/workbooks/down", &cookie)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 502);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
}

#[tokio::test]
async fn an_upstream_that_resets_the_connection_is_upstream_unavailable() {
    let app = spawn_app().await;
    seed(&app).await;
    // Reads the request and closes without an answer.
    let up = RawUpstream::start(String::new());
    upstream_workbook(&app, "reset", "Reset", &up.url("/app")).await;
    grant(&app, "acme-analysts", "reset", "view", None).await;
    let cookie = app.open(&app.token().sign(), "reset").await;
    let res = app.get_with_cookie("/embed/workbooks/reset", &cookie).await;
    assert_error(res, 502, "upstream_unavailable").await;
    assert!(!up.heads().is_empty());
}

#[tokio::test]
async fn a_slow_upstream_is_upstream_timeout() {
    let (app, up) = live_with(|c| c.content.upstream_timeout_secs = 1).await;
    let cookie = ana_live(&app).await;
    let res = app.get_with_cookie(&format!("{LIVE}/slow"), &cookie).await;
    assert_error(res, 504, "upstream_timeout").await;
    assert_eq!(up.last().path, "/app/slow");
}

// ---------------------------------------------------------------------------
// 8. Paths that climb out of the source
// ---------------------------------------------------------------------------

#[tokio::test]
async fn paths_that_climb_out_of_the_source_are_refused_before_the_upstream() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    // The session works on an ordinary path first.
    let (status, answer) = raw(
        app.port,
        raw_get(&format!("{LIVE}/ok"), "127.0.0.1", &cookie),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(up.last().path, "/app/ok");
    up.clear();

    // Every attempt is tried; the failures are listed together at the end.
    let mut wrong = Vec::new();
    for path in [
        "..%2Fsecret",
        "..%2fsecret",
        "%2e%2e/x",
        "%2E%2E/x",
        ".%2e/x",
        "a/../../x",
        "a/%2e%2e/%2e%2e/x",
        "..",
        "a/..%2F..%2Fx",
        "a%5C..%5C..%5Cx",
        "..%5Cx",
        // A raw back-slash in the request line: refused one way or another
        // (400 from the HTTP parser is fine too), never proxied.
        "a\\..\\..\\x",
        "..\\x",
    ] {
        let target = format!("{LIVE}/{path}");
        let before = up.count();
        let (status, answer) = raw(app.port, raw_get(&target, "127.0.0.1", &cookie)).await;
        let refused = match status {
            403 | 404 => matches!(
                raw_code(&answer).as_deref(),
                Some("not_found" | "access_denied")
            ),
            400 => path.contains('\\'),
            _ => false,
        };
        let reached: Vec<String> = up.requests()[before..]
            .iter()
            .map(|r| r.path.clone())
            .collect();
        if !refused || !reached.is_empty() {
            wrong.push(format!(
                "{target}: status {status}, upstream got {reached:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "paths that climb out were not refused:\n{}",
        wrong.join("\n")
    );
    for r in up.requests() {
        assert!(
            r.path == "/app" || r.path.starts_with("/app/"),
            "{}",
            r.path
        );
    }
}

// ---------------------------------------------------------------------------
// 9. Streaming
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_100_mib_download_streams_through_complete() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    let res = app
        .get_with_cookie(&format!("{LIVE}/big?mb=100"), &cookie)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut total: u64 = 0;
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.iter().all(|b| *b == b'x'));
        total += chunk.len() as u64;
    }
    assert_eq!(total, 100 * 1024 * 1024);
    assert_eq!(up.last().path, "/app/big?mb=100");
}

// ---------------------------------------------------------------------------
// 10. Tags with their own source
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_tag_with_its_own_upstream_source_is_proxied_there() {
    let (app, up) = live().await;
    put_tag(
        &app,
        "live",
        "v2",
        json!({"type": "upstream", "url": up.url("/v2app")}),
    )
    .await;
    grant(&app, "acme-analysts", "live", "view", Some("v2")).await;
    let (cookie, location) = open_at(&app, &app.token().sign(), &format!("{LIVE}?tag=v2")).await;
    let page = ok(&app, &location, &cookie).await;
    assert!(page.contains("v2 /v2app"), "{page}");
    assert_eq!(up.last().path, "/v2app?tag=v2");
    ok(&app, &format!("{LIVE}/p/q?tag=v2&x=1"), &cookie).await;
    assert_eq!(up.last().path, "/v2app/p/q?tag=v2&x=1");
    // The published version still goes to the workbook's source.
    ok(&app, &format!("{LIVE}/p"), &cookie).await;
    assert_eq!(up.last().path, "/app/p");

    // Without a grant for the tag, no access to it.
    let other = app
        .admin()
        .post("/teams", json!({"name": "acme-interns"}))
        .await;
    assert_eq!(other["name"], "acme-interns");
    grant(&app, "acme-managers", "live", "view", None).await;
    let token = app
        .token()
        .email("max@acme.example")
        .claim("teams", json!(["acme-managers"]))
        .sign();
    let max = app.open(&token, "live").await;
    let before = up.count();
    let res = app.get_with_cookie(&format!("{LIVE}?tag=v2"), &max).await;
    assert_error(res, 403, "access_denied").await;
    assert_eq!(up.count(), before);
}

#[tokio::test]
async fn a_template_workbook_may_have_an_upstream_tag_and_an_upstream_workbook_a_template_tag() {
    let (app, up) = live().await;
    // sales (template) with an upstream tag.
    put_tag(
        &app,
        "sales",
        "up",
        json!({"type": "upstream", "url": up.url("/app/from-sales")}),
    )
    .await;
    grant(&app, "acme-analysts", "sales", "view", Some("up")).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    let html = ok(&app, "/embed/workbooks/sales", &cookie).await;
    assert!(
        html.contains("sales, total"),
        "the published sales is the template: {html}"
    );
    assert_eq!(up.count(), 0);
    let page = ok(&app, "/embed/workbooks/sales/x?tag=up", &cookie).await;
    assert!(page.contains("upstream page /app/from-sales/x"), "{page}");
    let r = up.last();
    assert_eq!(r.path, "/app/from-sales/x?tag=up");
    let claims = verify(&app, &assertion(&r), "sales", false).await.unwrap();
    assert_eq!(claims["aud"], "sales");
    assert_eq!(claims["tag"], "up");

    // live (upstream) with a template tag.
    put_tag(
        &app,
        "live",
        "tpl",
        json!({"type": "template", "template": "sales_v2.html", "dataset": "sales.csv", "company_field": "company"}),
    )
    .await;
    grant(&app, "acme-analysts", "live", "view", Some("tpl")).await;
    let live_cookie = ana_live(&app).await;
    up.clear();
    let html = ok(&app, &format!("{LIVE}?tag=tpl"), &live_cookie).await;
    assert!(!html.contains("upstream page"), "{html}");
    assert!(html.contains("tag tpl"), "the template of the tag: {html}");
    assert_eq!(up.count(), 0, "a template tag is rendered by the gateway");
    ok(&app, LIVE, &live_cookie).await;
    assert_eq!(up.last().path, "/app");
}

// ---------------------------------------------------------------------------
// 11. Company separation and the directory
// ---------------------------------------------------------------------------

#[tokio::test]
async fn with_company_separation_the_assertion_carries_the_company() {
    let (app, up) = live().await;
    let settings = app
        .admin()
        .settings(json!({"company_separation": {"enabled": true}}))
        .await;
    assert_eq!(settings["company_separation"]["enabled"], true);
    let cookie = ana_live(&app).await;
    let token = assertion_after(&app, &up, LIVE, &cookie).await;
    let claims = verify(&app, &token, "live", false).await.unwrap();
    assert_eq!(claims["attributes"]["company"], "acme");

    // With another attribute name, that attribute is the company.
    app.admin()
        .settings(json!({"company_separation": {"attribute": "tenant"}}))
        .await;
    let token = app
        .token()
        .email("tom@acme.example")
        .claim("user_attributes", json!({"tenant": "acme-t"}))
        .sign();
    let tom = app.open(&token, "live").await;
    let token = assertion_after(&app, &up, LIVE, &tom).await;
    assert_eq!(claims_of(&token)["attributes"]["tenant"], "acme-t");
}

#[tokio::test]
async fn the_directory_of_an_upstream_workbook_is_answered_by_the_gateway() {
    let (app, up) = live().await;
    let cookie = ana_live(&app).await;
    let me = ok_json(&app, &format!("{LIVE}/_api/me"), &cookie).await;
    assert_eq!(me["email"], "ana@acme.example");
    assert_eq!(me["teams"], json!(["acme-analysts"]));
    assert_eq!(me["level"], "view");
    assert_eq!(sorted_strings(&me["permissions"]), ["view"]);
    let users = ok_json(&app, &format!("{LIVE}/_api/users"), &cookie).await;
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["email"], "ana@acme.example");
    let teams = ok_json(&app, &format!("{LIVE}/_api/teams"), &cookie).await;
    assert_eq!(
        teams,
        json!([{"name": "acme-analysts", "description": "acme-analysts team"}])
    );
    let workbooks = ok_json(&app, &format!("{LIVE}/_api/workbooks"), &cookie).await;
    let ids: Vec<&str> = workbooks
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["live", "sales"]);
    let found = ok_json(&app, &format!("{LIVE}/_api/workbooks?q=liv"), &cookie).await;
    assert_eq!(found, json!([{"id": "live", "name": "Live"}]));
    let res = app
        .get_with_cookie(&format!("{LIVE}/_api/nothing"), &cookie)
        .await;
    assert_error(res, 404, "not_found").await;
    assert_eq!(
        up.count(),
        0,
        "the upstream got a directory request: {:?}",
        up.requests()
    );
    // Ordinary paths still go upstream.
    ok(&app, &format!("{LIVE}/api/me"), &cookie).await;
    assert_eq!(up.last().path, "/app/api/me");
}

/// One user of the two-tenant test.
struct Person {
    email: &'static str,
    tenant: &'static str,
    workbooks: &'static [&'static str],
}

#[tokio::test]
async fn two_tenants_on_upstream_and_template_workbooks_see_nothing_of_each_other() {
    let app = spawn_app().await;
    seed(&app).await;
    let up = Recorder::start().await;
    let admin = app.admin();
    admin
        .post(
            "/teams",
            json!({"name": "globex-execs", "description": "globex-execs team"}),
        )
        .await;
    upstream_workbook(&app, "acme-live", "Acme Live", &up.url("/app/acme")).await;
    upstream_workbook(&app, "glive", "Globex Live", &up.url("/app/glx")).await;
    upstream_workbook(&app, "shared", "Shared board", &up.url("/app/shared")).await;
    grant(&app, "acme-analysts", "acme-live", "view", None).await;
    grant(&app, "acme-managers", "shared", "view", None).await;
    grant(&app, "globex-analysts", "glive", "view", None).await;
    grant(&app, "globex-execs", "shared", "explore", None).await;
    app.admin()
        .settings(json!({"company_separation": {"enabled": true}}))
        .await;

    let people = [
        Person {
            email: "ana@acme.example",
            tenant: "acme",
            workbooks: &["acme-live", "shared", "sales", "orders"],
        },
        Person {
            email: "bob@acme.example",
            tenant: "acme",
            workbooks: &["acme-live", "sales"],
        },
        Person {
            email: "gina@globex.example",
            tenant: "globex",
            workbooks: &["glive", "shared", "inventory"],
        },
        Person {
            email: "gus@globex.example",
            tenant: "globex",
            workbooks: &["shared"],
        },
    ];
    let token_for = |p: &Person| -> String {
        let now = app.clock.unix();
        match p.email {
            "ana@acme.example" => TokenBuilder::new(ACME_CLIENT, ACME_SECRET, now)
                .claim("first_name", json!("Ana"))
                .claim("last_name", json!("Acmeson"))
                .claim("teams", json!(["acme-analysts", "acme-managers"])),
            "bob@acme.example" => TokenBuilder::new(ACME_CLIENT, ACME_SECRET, now)
                .email(p.email)
                .claim("first_name", json!("Bob"))
                .claim("last_name", json!("Acmeson"))
                .claim("teams", json!(["acme-analysts"])),
            "gina@globex.example" => TokenBuilder::globex(now)
                .claim("first_name", json!("Gina"))
                .claim("last_name", json!("Globexova"))
                .claim("teams", json!(["globex-analysts", "globex-execs"])),
            _ => TokenBuilder::globex(now)
                .email(p.email)
                .claim("first_name", json!("Gus"))
                .claim("last_name", json!("Globexov"))
                .claim("teams", json!(["globex-execs"])),
        }
        .sign()
    };
    // Everything a tenant's user must never see of the other tenant.
    let foreign = |tenant: &str| -> &'static [&'static str] {
        if tenant == "acme" {
            &["globex", "gina", "gus", "glive", "inventory"]
        } else {
            &["acme", "ana@", "\"ana\"", "bob", "sales", "orders"]
        }
    };
    let check = |tenant: &str, what: &str, text: &str| {
        let lower = text.to_ascii_lowercase();
        for word in foreign(tenant) {
            assert!(
                !lower.contains(word),
                "{tenant} saw {word:?} in {what}: {text}"
            );
        }
    };

    // Every user signs in to every workbook first, so that everybody exists.
    let mut sessions = Vec::new();
    for p in &people {
        for wb in p.workbooks {
            sessions.push((p, *wb, app.open(&token_for(p), wb).await));
        }
    }
    for (p, wb, cookie) in &sessions {
        let base = format!("/embed/workbooks/{wb}");
        let mut answers = Vec::new();
        for api in [
            "me",
            "users",
            "users?q=a",
            "users?q=g",
            "users?q=globex",
            "users?q=acme",
            "teams",
            "workbooks",
            "workbooks?q=l",
            "workbooks?q=glive",
            "workbooks?q=sales",
        ] {
            let v = ok_json(&app, &format!("{base}/_api/{api}"), cookie).await;
            check(p.tenant, &format!("{wb}/_api/{api}"), &v.to_string());
            answers.push(v);
        }
        assert_eq!(answers[0]["email"], p.email);
        // Exact answers: nothing listed or counted beyond the user's teams.
        let ids = |v: &Value, field: &str| -> Vec<String> {
            let mut out: Vec<String> = v
                .as_array()
                .unwrap_or_else(|| panic!("not a list: {v}"))
                .iter()
                .map(|e| e[field].as_str().unwrap().to_owned())
                .collect();
            out.sort();
            out
        };
        let (want_emails, want_teams, want_books): (&[&str], &[&str], &[&str]) = match p.email {
            "ana@acme.example" => (
                &["ana@acme.example", "bob@acme.example"],
                &["acme-analysts", "acme-managers"],
                &["acme-live", "orders", "sales", "shared"],
            ),
            "bob@acme.example" => (
                &["ana@acme.example", "bob@acme.example"],
                &["acme-analysts"],
                &["acme-live", "sales"],
            ),
            "gina@globex.example" => (
                &["gina@globex.example", "gus@globex.example"],
                &["globex-analysts", "globex-execs"],
                &["glive", "inventory", "shared"],
            ),
            _ => (
                &["gina@globex.example", "gus@globex.example"],
                &["globex-execs"],
                &["shared"],
            ),
        };
        assert_eq!(
            ids(&answers[1], "email"),
            strings(want_emails),
            "{} users on {wb}",
            p.email
        );
        assert_eq!(
            ids(&answers[6], "name"),
            strings(want_teams),
            "{} teams on {wb}",
            p.email
        );
        assert_eq!(
            ids(&answers[7], "id"),
            strings(want_books),
            "{} workbooks on {wb}",
            p.email
        );
        assert_eq!(ids(&answers[4], "email").is_empty(), p.tenant == "acme");
        assert_eq!(ids(&answers[5], "email").is_empty(), p.tenant == "globex");
        // Content: an upstream page gets an assertion, a template renders.
        let res = app.get_with_cookie(&base, cookie).await;
        assert_eq!(res.status(), StatusCode::OK, "{} on {wb}", p.email);
        check(p.tenant, &format!("{wb} page"), &res.text().await.unwrap());
    }

    // Every proxied request: its assertion and everything else it carried.
    let requests = up.requests();
    assert_eq!(requests.len(), 6, "one page per upstream session");
    for r in &requests {
        assert!(!r.path.contains("_api"), "{}", r.path);
        let claims = claims_of(&assertion(r));
        let tenant = if claims["sub"].as_str().unwrap().ends_with("@acme.example") {
            "acme"
        } else {
            "globex"
        };
        check(tenant, "an assertion", &claims.to_string());
        let mut rest = format!("{}\n", r.path);
        for (n, v) in &r.headers {
            if n != ASSERTION {
                rest.push_str(&format!("{n}: {v}\n"));
            }
        }
        check(tenant, "a proxied request", &rest);
        assert_eq!(claims["attributes"]["company"], tenant);
    }
    // Ana's and Gus's assertions on the shared workbook list their own teams only.
    let on_shared: Vec<Value> = requests
        .iter()
        .filter(|r| r.path.starts_with("/app/shared"))
        .map(|r| claims_of(&assertion(r)))
        .collect();
    assert_eq!(on_shared.len(), 3);
    for c in on_shared {
        let teams = sorted_strings(&c["teams"]);
        match c["sub"].as_str().unwrap() {
            "ana@acme.example" => assert_eq!(teams, strings(&["acme-analysts", "acme-managers"])),
            "gina@globex.example" => {
                assert_eq!(teams, strings(&["globex-analysts", "globex-execs"]));
            }
            "gus@globex.example" => assert_eq!(teams, ["globex-execs"]),
            other => panic!("unexpected user {other}"),
        }
    }
}
