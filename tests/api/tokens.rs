//! Token verification (SPEC §3), end to end over HTTP with real signed
//! tokens: every rule, every `token_*` code, the order of the checks, replay,
//! literal fixture tokens, and that a refusal changes nothing.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use embedgate::clock::Clock;
use embedgate::config::Config;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

// ---------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------

/// The header every harness token carries, as text.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT","kid":"acme-host"}"#;

/// A seeded gateway whose failed-handshake limiter is off, so that one test
/// may try many bad tokens from the same address without `429`s.
async fn app() -> TestApp {
    app_with(|_| {}).await
}

async fn app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    let app = spawn_app_with(|c| {
        c.limits.failed_handshakes_per_minute = 0;
        customize(c);
    })
    .await;
    seed(&app).await;
    app
}

/// Percent-encodes a query value (so that `=`, `+`, spaces, newlines and
/// non-ASCII reach the gateway as they are).
fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Signs arbitrary header and payload bytes (for non-UTF-8 and odd JSON).
fn sign_bytes(header: &[u8], payload: &[u8], secret: &str, alg: Algorithm) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        alg,
    )
    .unwrap();
    format!("{input}.{sig}")
}

/// `header.payload.` — no signature at all.
fn unsigned(builder: &TokenBuilder) -> String {
    format!("{}.", builder.signing_input())
}

fn payload_text(builder: &TokenBuilder) -> String {
    serde_json::to_string(&builder.claims).unwrap()
}

/// Sends a raw query string to the `sales` workbook, asking for JSON.
async fn get_query(app: &TestApp, query: &str) -> Result<reqwest::Response, reqwest::Error> {
    app.http
        .get(app.url(&format!("/embed/workbooks/sales?{query}")))
        .header("Accept", "application/json")
        .send()
        .await
}

/// The outcome of a response as one comparable string: `"303"` for a
/// handshake that set a session cookie, else `"{status} {code}"`. Checks on
/// the way that a refusal sets no cookie, carries the `no-store` and
/// `no-referrer` headers, and never echoes `token` or a client secret.
async fn outcome_of(res: Result<reqwest::Response, reqwest::Error>, token: &str) -> String {
    let res = match res {
        Ok(res) => res,
        Err(e) => return format!("request failed: {e}"),
    };
    let status = res.status();
    let headers = res.headers().clone();
    let cookie = session_cookie(&res);
    let text = res.text().await.unwrap_or_default();
    if status == StatusCode::SEE_OTHER {
        assert!(cookie.is_some(), "a 303 handshake must set the session");
        return "303".into();
    }
    assert!(
        headers.get("set-cookie").is_none(),
        "a refusal ({status}) must not set a cookie: {text}"
    );
    if status.as_u16() == 401 || status.as_u16() == 403 {
        assert_eq!(headers["cache-control"], "no-store", "{text}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{text}");
    }
    if token.len() > 40 {
        assert!(!text.contains(token), "the error echoes the token: {text}");
    }
    for secret in [ACME_SECRET, GLOBEX_SECRET] {
        assert!(!text.contains(secret), "the error echoes a secret: {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    format!(
        "{} {}",
        status.as_u16(),
        body["error"]["code"].as_str().unwrap_or("<no code>")
    )
}

/// A handshake with `token` (percent-encoded) on `workbook`.
async fn try_on(app: &TestApp, token: &str, workbook: &str) -> String {
    let res = app
        .http
        .get(app.url(&format!("/embed/workbooks/{workbook}?jwt={}", enc(token))))
        .header("Accept", "application/json")
        .send()
        .await;
    outcome_of(res, token).await
}

/// A handshake with `token` on `sales` (which acme-analysts may view).
async fn try_token(app: &TestApp, token: &str) -> String {
    try_on(app, token, "sales").await
}

/// Asserts the outcome of every `(label, token, expected)` case.
async fn expect_all(app: &TestApp, cases: Vec<(String, String, &str)>) {
    let mut wrong = Vec::new();
    for (label, token, expected) in cases {
        let got = try_token(app, &token).await;
        if got != expected {
            wrong.push(format!("{label}: expected {expected}, got {got}"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

fn case(label: &str, token: String, expected: &'static str) -> (String, String, &'static str) {
    (label.to_owned(), token, expected)
}

/// The message of a JSON token error (asserting its status and code).
async fn message_of(app: &TestApp, token: &str, code: &str) -> String {
    assert_error(app.handshake(token, "sales").await, 401, code).await
}

/// Makes everything recorded in the background (audit, last_seen_at)
/// visible, so that two snapshots of the users compare only real changes.
async fn settle(app: &TestApp) {
    app.admin().audit("limit=1").await;
}

/// Creates an HMAC embed client with `algorithm` and returns its secret.
async fn hmac_client(app: &TestApp, client_id: &str, algorithm: &str) -> String {
    let secret = format!("{client_id}-secret-0123456789-abcdefghijklmnopqrstuvwxyz");
    let created = app
        .admin()
        .post(
            "/clients",
            json!({"client_id": client_id, "name": client_id, "algorithm": algorithm, "secret": secret}),
        )
        .await;
    assert_eq!(created["algorithm"], algorithm, "{created}");
    secret
}

// ---------------------------------------------------------------------------
// 1. Shape → token_malformed / token_too_large
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_well_formed_harness_token_is_accepted() {
    let app = app().await;
    assert_eq!(try_token(&app, &app.token().sign()).await, "303");
}

#[tokio::test]
async fn tokens_without_exactly_three_segments_are_malformed() {
    let app = app().await;
    let token = app.token().sign();
    let p: Vec<&str> = token.split('.').collect();
    expect_all(
        &app,
        vec![
            case("one segment", p[0].to_owned(), "401 token_malformed"),
            case(
                "two segments",
                format!("{}.{}", p[0], p[1]),
                "401 token_malformed",
            ),
            case(
                "four segments",
                format!("{token}.{}", p[2]),
                "401 token_malformed",
            ),
            case("a trailing dot", format!("{token}."), "401 token_malformed"),
            case("a leading dot", format!(".{token}"), "401 token_malformed"),
            case(
                "an empty payload segment",
                format!("{}..{}", p[0], p[2]),
                "401 token_malformed",
            ),
            case("only dots", "..".into(), "401 token_malformed"),
            case("no dots", token.replace('.', ""), "401 token_malformed"),
        ],
    )
    .await;
    // None of these consumed the jti of the intact token.
    assert_eq!(try_token(&app, &token).await, "303");
}

#[tokio::test]
async fn padding_and_characters_outside_base64url_are_malformed() {
    let app = app().await;
    let token = app.token().sign();
    let p: Vec<&str> = token.split('.').collect();
    let (h, pl, s) = (p[0], p[1], p[2]);
    expect_all(
        &app,
        vec![
            case(
                "padding at the end",
                format!("{token}="),
                "401 token_malformed",
            ),
            case(
                "double padding at the end",
                format!("{token}=="),
                "401 token_malformed",
            ),
            case(
                "padding on the header",
                format!("{h}=.{pl}.{s}"),
                "401 token_malformed",
            ),
            case(
                "padding on the payload",
                format!("{h}.{pl}=.{s}"),
                "401 token_malformed",
            ),
            case(
                "a '+' (standard base64)",
                format!("{h}.{pl}.+{}", &s[1..]),
                "401 token_malformed",
            ),
            case(
                "a '/' (standard base64)",
                format!("{h}.{pl}./{}", &s[1..]),
                "401 token_malformed",
            ),
            case(
                "a space inside",
                format!("{h}.{pl} .{s}"),
                "401 token_malformed",
            ),
            case(
                "a leading space",
                format!(" {token}"),
                "401 token_malformed",
            ),
            case(
                "a trailing newline",
                format!("{token}\n"),
                "401 token_malformed",
            ),
            case("a '*'", format!("{h}*.{pl}.{s}"), "401 token_malformed"),
            case(
                "a non-ASCII letter",
                format!("{token}é"),
                "401 token_malformed",
            ),
            case(
                "a percent sign",
                format!("{h}.{pl}%.{s}"),
                "401 token_malformed",
            ),
        ],
    )
    .await;
    assert_eq!(try_token(&app, &token).await, "303");
}

#[tokio::test]
async fn a_header_or_payload_that_is_not_a_json_object_is_malformed() {
    let app = app().await;
    let b = app.token();
    let p = payload_text(&b);
    let raw = |h: &str, pl: &str| b.sign_raw(h, pl);
    expect_all(
        &app,
        vec![
            case(
                "header not JSON",
                raw("not json", &p),
                "401 token_malformed",
            ),
            case(
                "payload not JSON",
                raw(HEADER, "not json"),
                "401 token_malformed",
            ),
            case(
                "header is an array",
                raw(&format!("[{HEADER}]"), &p),
                "401 token_malformed",
            ),
            case(
                "payload is an array",
                raw(HEADER, &format!("[{p}]")),
                "401 token_malformed",
            ),
            case(
                "header is a string",
                raw(r#""HS256""#, &p),
                "401 token_malformed",
            ),
            case(
                "payload is a number",
                raw(HEADER, "42"),
                "401 token_malformed",
            ),
            case(
                "payload is null",
                raw(HEADER, "null"),
                "401 token_malformed",
            ),
            case("empty header", raw("", &p), "401 token_malformed"),
            case("empty payload", raw(HEADER, ""), "401 token_malformed"),
            case(
                "trailing text after the payload",
                raw(HEADER, &format!("{p} x")),
                "401 token_malformed",
            ),
            case(
                "two objects in the payload",
                raw(HEADER, &format!("{p}{p}")),
                "401 token_malformed",
            ),
            case(
                "truncated payload JSON",
                raw(HEADER, &p[..p.len() - 1]),
                "401 token_malformed",
            ),
        ],
    )
    .await;
    // Control: the same text, well-formed, is accepted.
    assert_eq!(try_token(&app, &raw(HEADER, &p)).await, "303");
}

#[tokio::test]
async fn a_header_or_payload_that_is_not_utf8_is_malformed() {
    let app = app().await;
    let p = payload_text(&app.token());
    let bad_header: &[u8] =
        b"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"acme-host\",\"x\":\"\xff\"}";
    let mut bad_payload = p.as_bytes()[..p.len() - 1].to_vec();
    bad_payload.extend_from_slice(b",\"first_name\":\"Ana\xe9\"}");
    let mut bad_sequence = p.as_bytes()[..p.len() - 1].to_vec();
    bad_sequence.extend_from_slice(b",\"last_name\":\"\xc3\x28\"}");
    expect_all(
        &app,
        vec![
            case(
                "a 0xff byte in the header",
                sign_bytes(bad_header, p.as_bytes(), ACME_SECRET, Algorithm::HS256),
                "401 token_malformed",
            ),
            case(
                "a Latin-1 byte in the payload",
                sign_bytes(
                    HEADER.as_bytes(),
                    &bad_payload,
                    ACME_SECRET,
                    Algorithm::HS256,
                ),
                "401 token_malformed",
            ),
            case(
                "an invalid UTF-8 sequence in the payload",
                sign_bytes(
                    HEADER.as_bytes(),
                    &bad_sequence,
                    ACME_SECRET,
                    Algorithm::HS256,
                ),
                "401 token_malformed",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn duplicate_keys_in_the_header_are_malformed() {
    let app = app().await;
    let b = app.token();
    let p = payload_text(&b);
    expect_all(
        &app,
        vec![
            case(
                "alg twice, same value",
                b.sign_raw(
                    r#"{"alg":"HS256","alg":"HS256","typ":"JWT","kid":"acme-host"}"#,
                    &p,
                ),
                "401 token_malformed",
            ),
            case(
                "alg twice, none then HS256",
                b.sign_raw(
                    r#"{"alg":"none","alg":"HS256","typ":"JWT","kid":"acme-host"}"#,
                    &p,
                ),
                "401 token_malformed",
            ),
            case(
                "kid twice",
                b.sign_raw(
                    r#"{"alg":"HS256","typ":"JWT","kid":"globex-host","kid":"acme-host"}"#,
                    &p,
                ),
                "401 token_malformed",
            ),
            case(
                "typ twice",
                b.sign_raw(
                    r#"{"alg":"HS256","typ":"JWT","typ":"JWT","kid":"acme-host"}"#,
                    &p,
                ),
                "401 token_malformed",
            ),
        ],
    )
    .await;
    assert_eq!(try_token(&app, &b.sign_raw(HEADER, &p)).await, "303");
}

#[tokio::test]
async fn duplicate_keys_in_the_payload_are_malformed() {
    let app = app().await;
    let b = app.token();
    let (jti, iat, exp) = (
        b.claims["jti"].as_str().unwrap().to_owned(),
        b.claims["iat"].clone(),
        b.claims["exp"].clone(),
    );
    let payload = |dup: &str| {
        format!(
            r#"{{"sub":"ana@acme.example","jti":"{jti}","iat":{iat},"exp":{exp},"teams":["acme-analysts"],{dup}}}"#
        )
    };
    expect_all(
        &app,
        vec![
            case(
                "sub twice, another user second",
                b.sign_raw(HEADER, &payload(r#""sub":"boss@acme.example""#)),
                "401 token_malformed",
            ),
            case(
                "sub twice, same value",
                b.sign_raw(HEADER, &payload(r#""sub":"ana@acme.example""#)),
                "401 token_malformed",
            ),
            case(
                "exp twice",
                b.sign_raw(HEADER, &payload(r#""exp":4000000000"#)),
                "401 token_malformed",
            ),
            case(
                "teams twice",
                b.sign_raw(HEADER, &payload(r#""teams":["acme-managers"]"#)),
                "401 token_malformed",
            ),
            case(
                "jti twice",
                b.sign_raw(HEADER, &payload(r#""jti":"other""#)),
                "401 token_malformed",
            ),
            case(
                "a key twice inside user_attributes",
                b.sign_raw(
                    HEADER,
                    &payload(r#""user_attributes":{"company":"acme","company":"globex"}"#),
                ),
                "401 token_malformed",
            ),
        ],
    )
    .await;
    // Nothing was created for either address, and the jti is still unused.
    assert!(app.admin().users().await.as_array().unwrap().is_empty());
    assert_eq!(
        try_token(&app, &b.sign_raw(HEADER, &payload(r#""first_name":"Ana""#))).await,
        "303"
    );
    assert_eq!(app.admin().user("boss@acme.example").await, Value::Null);
}

#[tokio::test]
async fn alg_and_kid_must_be_present_and_strings() {
    let app = app().await;
    let t = || app.token();
    expect_all(
        &app,
        vec![
            case(
                "no alg",
                t().without_header("alg").sign(),
                "401 token_malformed",
            ),
            case(
                "alg a number",
                t().header("alg", json!(256)).sign(),
                "401 token_malformed",
            ),
            case(
                "alg null",
                t().header("alg", Value::Null).sign(),
                "401 token_malformed",
            ),
            case(
                "alg an array",
                t().header("alg", json!(["HS256"])).sign(),
                "401 token_malformed",
            ),
            case(
                "no kid",
                t().without_header("kid").sign(),
                "401 token_malformed",
            ),
            case(
                "kid a number",
                t().header("kid", json!(7)).sign(),
                "401 token_malformed",
            ),
            case(
                "kid null",
                t().header("kid", Value::Null).sign(),
                "401 token_malformed",
            ),
            case(
                "kid an array",
                t().header("kid", json!([ACME_CLIENT])).sign(),
                "401 token_malformed",
            ),
            case(
                "kid an object",
                t().header("kid", json!({"id": ACME_CLIENT})).sign(),
                "401 token_malformed",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_header_with_crit_is_malformed() {
    let app = app().await;
    let t = || app.token();
    expect_all(
        &app,
        vec![
            case(
                "crit naming a claim",
                t().header("crit", json!(["exp"])).sign(),
                "401 token_malformed",
            ),
            case(
                "crit empty",
                t().header("crit", json!([])).sign(),
                "401 token_malformed",
            ),
            case(
                "crit b64, RFC 7797",
                t().header("crit", json!(["b64"]))
                    .header("b64", json!(false))
                    .sign(),
                "401 token_malformed",
            ),
            case(
                "crit null",
                t().header("crit", Value::Null).sign(),
                "401 token_malformed",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_typ_other_than_jwt_is_malformed() {
    let app = app().await;
    let t = || app.token();
    expect_all(
        &app,
        vec![
            case(
                "typ JWS",
                t().header("typ", json!("JWS")).sign(),
                "401 token_malformed",
            ),
            case(
                "typ at+jwt",
                t().header("typ", json!("at+jwt")).sign(),
                "401 token_malformed",
            ),
            case(
                "typ empty",
                t().header("typ", json!("")).sign(),
                "401 token_malformed",
            ),
            case(
                "typ with a trailing space",
                t().header("typ", json!("JWT ")).sign(),
                "401 token_malformed",
            ),
            case(
                "typ a number",
                t().header("typ", json!(1)).sign(),
                "401 token_malformed",
            ),
            case(
                "typ an array",
                t().header("typ", json!(["JWT"])).sign(),
                "401 token_malformed",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn typ_jwt_in_any_case_or_absent_is_accepted() {
    let app = app().await;
    let t = || app.token();
    expect_all(
        &app,
        vec![
            case("typ jwt", t().header("typ", json!("jwt")).sign(), "303"),
            case("typ Jwt", t().header("typ", json!("Jwt")).sign(), "303"),
            case("typ JWT", t().sign(), "303"),
            case("no typ", t().without_header("typ").sign(), "303"),
        ],
    )
    .await;
}

#[tokio::test]
async fn keys_named_in_the_header_are_never_trusted_or_fetched() {
    let app = app().await;
    // A listener that would see any attempt to fetch jku / x5u.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/keys.json", listener.local_addr().unwrap());
    let attacker = "attacker-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
    let jwk = json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(attacker), "alg": "HS256"});
    let t = || app.token().secret(attacker);
    expect_all(
        &app,
        vec![
            case(
                "jwk in the header",
                t().header("jwk", jwk.clone()).sign(),
                "401 token_bad_signature",
            ),
            case(
                "jku in the header",
                t().header("jku", json!(url)).sign(),
                "401 token_bad_signature",
            ),
            case(
                "x5u in the header",
                t().header("x5u", json!(url)).sign(),
                "401 token_bad_signature",
            ),
            case(
                "x5c in the header",
                t().header("x5c", json!([URL_SAFE_NO_PAD.encode(attacker)]))
                    .sign(),
                "401 token_bad_signature",
            ),
        ],
    )
    .await;
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the gateway connected to a URL named in a token header"
    );
}

#[tokio::test]
async fn an_empty_jwt_parameter_is_malformed() {
    let app = app().await;
    for query in ["jwt=", "jwt", "theme=dark&jwt=&x=1", ":jwt=", "%3Ajwt="] {
        let got = outcome_of(get_query(&app, query).await, "").await;
        assert_eq!(got, "401 token_malformed", "?{query}");
    }
}

#[tokio::test]
async fn two_tokens_in_one_request_are_malformed() {
    let app = app().await;
    let (t1, t2) = (app.token().sign(), app.token().sign());
    for query in [
        format!("jwt={t1}&jwt={t2}"),
        format!("jwt={t1}&jwt={t1}"),
        format!("jwt={t1}&jwt="),
        format!("jwt={t1}&:jwt={t2}"),
        format!(":jwt={t1}&jwt={t2}"),
        format!("jwt={t1}&%3Ajwt={t2}"),
        format!("%3Ajwt={t1}&jwt={t1}"),
        format!(":jwt={t1}&%3Ajwt={t2}"),
        format!("jwt={t1}&theme=dark&:jwt={t1}"),
    ] {
        let got = outcome_of(get_query(&app, &query).await, &t1).await;
        assert_eq!(got, "401 token_malformed", "?{query}");
    }
    // Neither token was consumed by the refusals.
    assert_eq!(try_token(&app, &t1).await, "303");
    assert_eq!(try_token(&app, &t2).await, "303");
}

#[tokio::test]
async fn the_colon_jwt_alias_works_alone_literally_or_percent_encoded() {
    let app = app().await;
    for query in [
        ":jwt={t}&theme=dark",
        "%3Ajwt={t}&theme=dark",
        "theme=dark&%3ajwt={t}",
    ] {
        let token = app.token().sign();
        let res = get_query(&app, &query.replace("{t}", &token))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "?{query}");
        assert!(session_cookie(&res).is_some(), "?{query}");
        let location = res.headers()["location"].to_str().unwrap();
        assert_eq!(location, "/embed/workbooks/sales?theme=dark", "?{query}");
        // And it is a token like any other: a second use is a replay.
        let again = get_query(&app, &query.replace("{t}", &token)).await;
        assert_eq!(
            outcome_of(again, &token).await,
            "401 token_replayed",
            "?{query}"
        );
    }
}

/// A token of exactly `len` bytes that passes every check (padded with an
/// unknown header parameter and an unknown claim, both ignored). The length
/// is computed, not searched by signing, so that building a big token takes
/// no time (an idle pooled connection must not hit the server's keep-alive).
fn token_of_length(app: &TestApp, len: usize) -> String {
    let base = app
        .token()
        .header("x-pad", json!(""))
        .claim("x_pad", json!(""));
    let header_len = serde_json::to_vec(&base.header).unwrap().len();
    let payload_len = serde_json::to_vec(&base.claims).unwrap().len();
    let b64 = |n: usize| (4 * n).div_ceil(3);
    for header_pad in 0..4 {
        for claim_pad in 0..len {
            // header.payload.signature, 43 characters of HS256 signature
            let total = b64(header_len + header_pad) + 1 + b64(payload_len + claim_pad) + 1 + 43;
            if total == len {
                let token = base
                    .header("x-pad", json!("h".repeat(header_pad)))
                    .claim("x_pad", json!("c".repeat(claim_pad)))
                    .sign();
                assert_eq!(token.len(), len);
                return token;
            }
            if total > len {
                break;
            }
        }
    }
    panic!("no token of {len} bytes");
}

#[tokio::test]
async fn a_token_over_8_kib_is_too_large_and_one_of_exactly_8_kib_is_not() {
    let app = app().await;
    let exact = token_of_length(&app, 8192);
    let over = token_of_length(&app, 8193);
    assert_eq!(try_token(&app, &over).await, "401 token_too_large");
    let message = message_of(&app, &token_of_length(&app, 9000), "token_too_large").await;
    assert!(
        message.contains("8192") || message.contains("8 KiB"),
        "the message should say the limit: {message}"
    );
    assert_eq!(try_token(&app, &exact).await, "303");
}

#[tokio::test]
async fn tokens_between_8_kib_and_the_head_limit_are_too_large() {
    let app = app().await;
    for len in [12_000, 30_000, 60_000] {
        let token = token_of_length(&app, len);
        assert_eq!(
            try_token(&app, &token).await,
            "401 token_too_large",
            "{len} bytes"
        );
    }
}

#[tokio::test]
async fn a_token_too_large_for_the_request_head_gets_a_client_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = app().await;
    // Over every head and URI limit: no HTTP client would even build this URL,
    // so it goes over a raw connection.
    let huge = app
        .token()
        .claim("x_pad", json!("c".repeat(150 * 1024)))
        .sign();
    let request = format!(
        "GET /embed/workbooks/sales?jwt={huge} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n"
    );
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    // Write while reading: the server may answer and close before taking it all.
    let writer = tokio::spawn(async move {
        let _ = write.write_all(request.as_bytes()).await;
        write
    });
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    drop(writer.await);
    let head = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 4"),
        "expected a 4xx, got {head:?}"
    );
    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    // The gateway still serves the next request.
    assert_eq!(try_token(&app, &app.token().sign()).await, "303");
}

// ---------------------------------------------------------------------------
// 2. Client → token_unknown_client
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_kid_naming_no_client_is_an_unknown_client() {
    let app = app().await;
    let t = || app.token();
    expect_all(
        &app,
        vec![
            case(
                "an unknown kid",
                t().kid("nobody-host").sign(),
                "401 token_unknown_client",
            ),
            case(
                "an empty kid",
                t().kid("").sign(),
                "401 token_unknown_client",
            ),
            case(
                "a kid with a trailing space",
                t().kid("acme-host ").sign(),
                "401 token_unknown_client",
            ),
            case(
                "a kid with a path",
                t().kid("../acme-host").sign(),
                "401 token_unknown_client",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_revoked_client_is_an_unknown_client() {
    let app = app().await;
    let signed_before = app.token().sign();
    app.admin().delete(&format!("/clients/{ACME_CLIENT}")).await;
    assert_eq!(
        try_token(&app, &signed_before).await,
        "401 token_unknown_client"
    );
    assert_eq!(
        try_token(&app, &app.token().sign()).await,
        "401 token_unknown_client"
    );
    // The other client is unaffected.
    let globex = TokenBuilder::globex(app.clock.unix()).sign();
    assert_eq!(try_on(&app, &globex, "inventory").await, "303");
}

// ---------------------------------------------------------------------------
// 3. Algorithm → token_alg_mismatch
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_token_signed_with_none_is_an_algorithm_mismatch() {
    let app = app().await;
    let mut cases = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let b = app.token().header("alg", json!(alg));
        cases.push(case(
            &format!("alg {alg}, empty signature"),
            unsigned(&b),
            "401 token_alg_mismatch",
        ));
        cases.push(case(
            &format!("alg {alg}, with an HS256 signature"),
            b.sign(),
            "401 token_alg_mismatch",
        ));
    }
    expect_all(&app, cases).await;
    assert!(app.admin().users().await.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn hs256_spelled_differently_is_an_algorithm_mismatch() {
    let app = app().await;
    let mut cases = Vec::new();
    for alg in ["hs256", "Hs256", "HS256 ", " HS256", "HS-256", ""] {
        cases.push(case(
            &format!("alg {alg:?}"),
            app.token().header("alg", json!(alg)).sign(),
            "401 token_alg_mismatch",
        ));
    }
    expect_all(&app, cases).await;
}

#[tokio::test]
async fn another_hmac_size_is_an_algorithm_mismatch_for_an_hs256_client() {
    let app = app().await;
    expect_all(
        &app,
        vec![
            case(
                "HS384",
                app.token().alg(Algorithm::HS384).sign(),
                "401 token_alg_mismatch",
            ),
            case(
                "HS512",
                app.token().alg(Algorithm::HS512).sign(),
                "401 token_alg_mismatch",
            ),
            // The header says HS384 but the signature is HS256: still the header's fault.
            case(
                "HS384 header over an HS256 signature",
                app.token().header("alg", json!("HS384")).sign(),
                "401 token_alg_mismatch",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_asymmetric_alg_header_is_an_algorithm_mismatch_for_an_hmac_client() {
    let app = app().await;
    let mut cases = Vec::new();
    // The key-confusion attack: an RS256 header with an HMAC of the secret.
    for alg in ["RS256", "ES256", "EdDSA", "PS256", "RS512"] {
        cases.push(case(
            &format!("alg {alg}"),
            app.token().header("alg", json!(alg)).sign(),
            "401 token_alg_mismatch",
        ));
    }
    expect_all(&app, cases).await;
}

async fn a_client_accepts_only_its_own_hmac_size(algorithm: &str, alg: Algorithm) {
    let app = app().await;
    let client = format!("acme-{}", algorithm.to_lowercase());
    let secret = hmac_client(&app, &client, algorithm).await;
    let t = || {
        TokenBuilder::new(&client, &secret, app.clock.unix())
            .email(&format!("{client}@acme.example"))
    };
    let mut cases = vec![
        case(
            "HS256",
            t().alg(Algorithm::HS256).sign(),
            "401 token_alg_mismatch",
        ),
        case(
            "none",
            unsigned(&t().header("alg", json!("none"))),
            "401 token_alg_mismatch",
        ),
        case(
            "lower case",
            t().alg(alg)
                .header("alg", json!(algorithm.to_lowercase()))
                .sign(),
            "401 token_alg_mismatch",
        ),
        case(
            "right alg, wrong secret",
            t().alg(alg).secret(ACME_SECRET).sign(),
            "401 token_bad_signature",
        ),
    ];
    for other in [Algorithm::HS384, Algorithm::HS512] {
        if other != alg {
            cases.push(case(
                &format!("{other:?}"),
                t().alg(other).sign(),
                "401 token_alg_mismatch",
            ));
        }
    }
    cases.push(case(algorithm, t().alg(alg).sign(), "303"));
    expect_all(&app, cases).await;
}

#[tokio::test]
async fn a_client_created_with_hs384_accepts_hs384_and_refuses_hs256() {
    a_client_accepts_only_its_own_hmac_size("HS384", Algorithm::HS384).await;
}

#[tokio::test]
async fn a_client_created_with_hs512_accepts_hs512_and_refuses_hs256() {
    a_client_accepts_only_its_own_hmac_size("HS512", Algorithm::HS512).await;
}

/// Signs `builder`'s header and claims with an RSA private key (RS256).
fn sign_rs256(builder: &TokenBuilder, private_pem: &str) -> String {
    let input = builder.signing_input();
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::RS256).unwrap();
    format!("{input}.{sig}")
}

#[tokio::test]
async fn an_rs256_client_accepts_rs256_only_and_never_uses_its_public_key_as_an_hmac_secret() {
    let app = app().await;
    let read =
        |name: &str| std::fs::read_to_string(repo_path(&format!("tests/fixtures/{name}"))).unwrap();
    let (private, public, other) = (
        read("rsa_private.pem"),
        read("rsa_public.pem"),
        read("rsa_other_private.pem"),
    );
    let created = app
        .admin()
        .post(
            "/clients",
            json!({"client_id": "acme-rsa", "name": "Acme RSA", "algorithm": "RS256", "public_key_pem": public}),
        )
        .await;
    assert_eq!(created["algorithm"], "RS256", "{created}");
    let t = || {
        TokenBuilder::new("acme-rsa", &public, app.clock.unix())
            .email("rsa@acme.example")
            .header("alg", json!("RS256"))
    };
    expect_all(
        &app,
        vec![
            // The classic key confusion: HS256 keyed with the public key.
            case(
                "HS256 keyed with the public key",
                t().header("alg", json!("HS256")).sign(),
                "401 token_alg_mismatch",
            ),
            case(
                "an RS256 header over an HMAC keyed with the public key",
                t().sign(),
                "401 token_bad_signature",
            ),
            case(
                "alg none",
                unsigned(&t().header("alg", json!("none"))),
                "401 token_alg_mismatch",
            ),
            case(
                "RS512 spelled in the header",
                t().header("alg", json!("RS512")).sign(),
                "401 token_alg_mismatch",
            ),
            case(
                "signed by another RSA key",
                sign_rs256(&t(), &other),
                "401 token_bad_signature",
            ),
            case(
                "signed by the registered key",
                sign_rs256(&t(), &private),
                "303",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_generated_client_secret_is_long_random_and_signs_tokens() {
    let app = app().await;
    let mut secrets = BTreeSet::new();
    for id in ["gen-one", "gen-two"] {
        let created = app
            .admin()
            .post("/clients", json!({"client_id": id, "name": id}))
            .await;
        assert_eq!(created["algorithm"], "HS256", "{created}");
        let secret = created["secret"].as_str().unwrap().to_owned();
        // 32 random bytes are at least 43 characters in base64url (64 in hex).
        assert!(
            secret.len() >= 43,
            "{secret:?} is too short for 32 random bytes"
        );
        let token = TokenBuilder::new(id, &secret, app.clock.unix())
            .email(&format!("{id}@acme.example"))
            .sign();
        assert_eq!(try_token(&app, &token).await, "303", "{id}");
        secrets.insert(secret);
    }
    assert_eq!(secrets.len(), 2, "two clients got the same secret");
}

// ---------------------------------------------------------------------------
// 4. Signature → token_bad_signature
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_token_signed_with_the_wrong_secret_has_a_bad_signature() {
    let app = app().await;
    expect_all(
        &app,
        vec![
            case(
                "a made-up secret",
                app.token()
                    .secret("wrong-secret-0123456789-abcdefghijklmnopqrstuvwxyz")
                    .sign(),
                "401 token_bad_signature",
            ),
            case(
                "another client's secret",
                app.token().secret(GLOBEX_SECRET).sign(),
                "401 token_bad_signature",
            ),
            case(
                "the secret with one character changed",
                app.token().secret(&ACME_SECRET.replace('0', "1")).sign(),
                "401 token_bad_signature",
            ),
            case(
                "an empty secret",
                app.token().secret("").sign(),
                "401 token_bad_signature",
            ),
        ],
    )
    .await;
    // A Globex token relabelled with Acme's kid does not verify either.
    let globex = TokenBuilder::globex(app.clock.unix())
        .kid(ACME_CLIENT)
        .sign();
    assert_eq!(try_token(&app, &globex).await, "401 token_bad_signature");
    let message = message_of(
        &app,
        &app.token().secret(GLOBEX_SECRET).sign(),
        "token_bad_signature",
    )
    .await;
    assert!(!message.contains(ACME_SECRET) && !message.contains(GLOBEX_SECRET));
}

/// `token` with the first character of its signature changed.
fn flip_signature(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let first = sig.chars().next().unwrap();
    let replacement = if first == 'A' { 'B' } else { 'A' };
    format!("{input}.{replacement}{}", &sig[1..])
}

#[tokio::test]
async fn a_changed_signature_header_or_payload_is_a_bad_signature() {
    let app = app().await;
    let b = app.token();
    let token = b.sign();
    let (h, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let other = app.token().sign();
    let other_sig = other.rsplit_once('.').unwrap().1;
    let forged_payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&b.clone().email("boss@acme.example").claims).unwrap());
    let forged_header = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&json!({"alg": "HS256", "typ": "JWT", "kid": ACME_CLIENT, "x": 1}))
            .unwrap(),
    );
    let input = b.signing_input();
    let hs512_sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(ACME_SECRET.as_bytes()),
        Algorithm::HS512,
    )
    .unwrap();
    expect_all(
        &app,
        vec![
            case(
                "one signature character flipped",
                flip_signature(&token),
                "401 token_bad_signature",
            ),
            case(
                "an empty signature segment",
                format!("{input}."),
                "401 token_bad_signature",
            ),
            case(
                "another token's signature",
                format!("{input}.{other_sig}"),
                "401 token_bad_signature",
            ),
            case(
                "the payload changed after signing",
                format!("{h}.{forged_payload}.{sig}"),
                "401 token_bad_signature",
            ),
            case(
                "the header changed after signing",
                format!("{forged_header}.{}", &token[h.len() + 1..]),
                "401 token_bad_signature",
            ),
            case(
                "an HS512 signature under an HS256 header",
                format!("{input}.{hs512_sig}"),
                "401 token_bad_signature",
            ),
        ],
    )
    .await;
    assert_eq!(app.admin().user("boss@acme.example").await, Value::Null);
    // The genuine token (same jti) is still usable.
    assert_eq!(try_token(&app, &token).await, "303");
}

// ---------------------------------------------------------------------------
// 5. Claims
// ---------------------------------------------------------------------------

#[tokio::test]
async fn each_required_claim_missing_is_a_missing_claim() {
    let app = app().await;
    for (claim, builder) in [
        ("sub", app.token().without("sub")),
        ("jti", app.token().without("jti")),
        ("iat", app.token().without("iat")),
        ("exp", app.token().without("exp")),
    ] {
        let message = message_of(&app, &builder.sign(), "token_missing_claim").await;
        assert!(message.contains(claim), "{claim}: {message}");
    }
}

#[tokio::test]
async fn email_is_accepted_instead_of_sub() {
    let app = app().await;
    let token = app
        .token()
        .without("sub")
        .claim("email", json!("eve@acme.example"))
        .sign();
    assert_eq!(try_token(&app, &token).await, "303");
    assert_eq!(
        app.admin().user("eve@acme.example").await["email"],
        "eve@acme.example"
    );
}

#[tokio::test]
async fn sub_and_email_that_differ_are_an_invalid_claim() {
    let app = app().await;
    let both = |sub: &str, email: &str| app.token().email(sub).claim("email", json!(email)).sign();
    expect_all(
        &app,
        vec![
            case(
                "two different users",
                both("ana@acme.example", "bob@acme.example"),
                "401 token_invalid_claim",
            ),
            case(
                "the same address",
                both("ana@acme.example", "ana@acme.example"),
                "303",
            ),
            case(
                "the same address in another case",
                both("ana@acme.example", "Ana@ACME.example"),
                "303",
            ),
        ],
    )
    .await;
    assert_eq!(app.admin().user("bob@acme.example").await, Value::Null);
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_invalid_claims() {
    let app = app().await;
    let now = app.clock.unix();
    let mut cases = Vec::new();
    for (label, name, value) in [
        ("exp as a string", "exp", json!((now + 300).to_string())),
        ("exp as a float", "exp", json!(now as f64 + 300.5)),
        ("exp null", "exp", Value::Null),
        ("exp a boolean", "exp", json!(true)),
        ("exp an array", "exp", json!([now + 300])),
        ("iat as a string", "iat", json!(now.to_string())),
        ("iat as a float", "iat", json!(now as f64 + 0.5)),
        ("iat null", "iat", Value::Null),
        ("nbf as a string", "nbf", json!("soon")),
        ("nbf as a float", "nbf", json!(now as f64 - 0.5)),
        ("sub a number", "sub", json!(42)),
        ("sub an array", "sub", json!(["ana@acme.example"])),
        ("jti a number", "jti", json!(42)),
        ("jti an object", "jti", json!({"id": "x"})),
        ("teams as a string", "teams", json!("acme-analysts")),
        ("teams an object", "teams", json!({"acme-analysts": true})),
        ("teams with a number", "teams", json!(["acme-analysts", 1])),
        ("teams with null", "teams", json!([null])),
        (
            "user_attributes as an array",
            "user_attributes",
            json!(["company", "acme"]),
        ),
        (
            "user_attributes as a string",
            "user_attributes",
            json!("company=acme"),
        ),
        (
            "an attribute value a number",
            "user_attributes",
            json!({"company": 1}),
        ),
        (
            "an attribute value null",
            "user_attributes",
            json!({"company": null}),
        ),
        (
            "an attribute value an array",
            "user_attributes",
            json!({"company": ["acme"]}),
        ),
        ("account_type a number", "account_type", json!(5)),
        ("first_name a number", "first_name", json!(5)),
        ("last_name a boolean", "last_name", json!(true)),
        ("iss a number", "iss", json!(5)),
        ("aud a number", "aud", json!(5)),
        ("aud an array with a number", "aud", json!(["embedgate", 5])),
        ("ver a number", "ver", json!(1.0)),
        ("session_length as a string", "session_length", json!("60")),
        ("session_length as a float", "session_length", json!(1.5)),
    ] {
        cases.push(case(
            label,
            app.token().claim(name, value).sign(),
            "401 token_invalid_claim",
        ));
    }
    cases.push(case(
        "email a number (no sub)",
        app.token().without("sub").claim("email", json!(42)).sign(),
        "401 token_invalid_claim",
    ));
    expect_all(&app, cases).await;
    assert!(app.admin().users().await.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn jti_must_be_1_to_255_characters() {
    let app = app().await;
    let with_jti = |jti: String| app.token().claim("jti", json!(jti)).sign();
    expect_all(
        &app,
        vec![
            case("empty", with_jti(String::new()), "401 token_invalid_claim"),
            case(
                "256 characters",
                with_jti("j".repeat(256)),
                "401 token_invalid_claim",
            ),
            case("255 characters", with_jti("j".repeat(255)), "303"),
            case("1 character", with_jti("j".into()), "303"),
        ],
    )
    .await;
}

#[tokio::test]
async fn malformed_emails_are_invalid_claims() {
    let app = app().await;
    let bad = [
        ("a space", "ana smith@acme.example"),
        ("a leading space", " ana@acme.example"),
        ("a trailing space", "ana@acme.example "),
        ("a tab", "ana\t@acme.example"),
        ("a newline", "ana@acme.example\n"),
        ("a NUL", "ana\u{0}@acme.example"),
        ("a bell", "ana\u{7}@acme.example"),
        ("a non-ASCII letter", "anä@acme.example"),
        ("a Cyrillic look-alike", "\u{430}na@acme.example"),
        ("a zero-width space", "ana\u{200b}@acme.example"),
        ("no @", "ana.acme.example"),
        ("two @", "ana@@acme.example"),
        ("two @ apart", "ana@acme@acme.example"),
        ("no dotted domain", "ana@localhost"),
        ("empty", ""),
    ];
    let mut cases = Vec::new();
    for (label, email) in bad {
        cases.push(case(
            &format!("sub with {label}"),
            app.token().email(email).sign(),
            "401 token_invalid_claim",
        ));
        cases.push(case(
            &format!("email with {label}"),
            app.token()
                .without("sub")
                .claim("email", json!(email))
                .sign(),
            "401 token_invalid_claim",
        ));
    }
    expect_all(&app, cases).await;
    assert!(app.admin().users().await.as_array().unwrap().is_empty());
    // An upper-case address is fine and stored in lower case.
    assert_eq!(
        try_token(&app, &app.token().email("Zoe.Smith@ACME.example").sign()).await,
        "303"
    );
    assert_eq!(
        app.admin().user("zoe.smith@acme.example").await["email"],
        "zoe.smith@acme.example"
    );
}

#[tokio::test]
async fn more_than_100_teams_is_an_invalid_claim() {
    let app = app().await;
    let teams = |n: usize| json!((0..n).map(|i| format!("t{i}")).collect::<Vec<_>>());
    assert_eq!(
        try_token(&app, &app.token().claim("teams", teams(101)).sign()).await,
        "401 token_invalid_claim"
    );
    // 100 passes §3: what refuses it is §4 (these teams do not exist), a 403.
    let got = try_token(&app, &app.token().claim("teams", teams(100)).sign()).await;
    assert!(got.starts_with("403 "), "100 teams: {got}");
}

#[tokio::test]
async fn more_than_50_user_attributes_is_an_invalid_claim() {
    let app = app().await;
    let attributes = |n: usize| {
        let mut map = serde_json::Map::new();
        map.insert("company".into(), json!("acme"));
        for i in 1..n {
            map.insert(format!("a{i}"), json!("v"));
        }
        Value::Object(map)
    };
    expect_all(
        &app,
        vec![
            case(
                "51 attributes",
                app.token().claim("user_attributes", attributes(51)).sign(),
                "401 token_invalid_claim",
            ),
            case(
                "50 attributes",
                app.token().claim("user_attributes", attributes(50)).sign(),
                "303",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn attribute_names_outside_a_z_0_9_underscore_1_to_64_are_invalid() {
    let app = app().await;
    let attr = |name: &str| {
        app.token()
            .claim("user_attributes", json!({"company": "acme", name: "x"}))
            .sign()
    };
    let mut cases = Vec::new();
    for (label, name) in [
        ("a dash", "bad-name".to_owned()),
        ("a space", "bad name".to_owned()),
        ("a dot", "a.b".to_owned()),
        ("empty", String::new()),
        ("65 characters", "n".repeat(65)),
        ("a non-ASCII letter", "näme".to_owned()),
        ("a dollar", "$where".to_owned()),
    ] {
        cases.push(case(
            &format!("name with {label}"),
            attr(&name),
            "401 token_invalid_claim",
        ));
    }
    cases.push(case("64 characters", attr(&"n".repeat(64)), "303"));
    cases.push(case("letters, digits and _", attr("Region_2"), "303"));
    expect_all(&app, cases).await;
}

#[tokio::test]
async fn attribute_values_over_1024_characters_or_with_control_characters_are_invalid() {
    let app = app().await;
    let value = |v: String| {
        app.token()
            .claim("user_attributes", json!({"company": "acme", "note": v}))
            .sign()
    };
    expect_all(
        &app,
        vec![
            case(
                "1025 characters",
                value("v".repeat(1025)),
                "401 token_invalid_claim",
            ),
            case("a bell", value("a\u{7}b".into()), "401 token_invalid_claim"),
            case(
                "a newline",
                value("line\nbreak".into()),
                "401 token_invalid_claim",
            ),
            case("a tab", value("a\tb".into()), "401 token_invalid_claim"),
            case("a NUL", value("a\u{0}b".into()), "401 token_invalid_claim"),
            case("a DEL", value("a\u{7f}b".into()), "401 token_invalid_claim"),
            case("1024 characters", value("v".repeat(1024)), "303"),
            // Characters, not bytes: 1024 two-byte characters are allowed.
            case("1024 non-ASCII characters", value("é".repeat(1024)), "303"),
            case("empty", value(String::new()), "303"),
        ],
    )
    .await;
}

#[tokio::test]
async fn ver_must_be_1_0_or_1_1() {
    let app = app().await;
    let ver = |v: Value| app.token().claim("ver", v).sign();
    expect_all(
        &app,
        vec![
            case("\"1.0\"", ver(json!("1.0")), "303"),
            case("\"1.1\"", ver(json!("1.1")), "303"),
            case("\"2.0\"", ver(json!("2.0")), "401 token_invalid_claim"),
            case("\"1\"", ver(json!("1")), "401 token_invalid_claim"),
            case("\"1.2\"", ver(json!("1.2")), "401 token_invalid_claim"),
            case("empty", ver(json!("")), "401 token_invalid_claim"),
            case("the number 1.1", ver(json!(1.1)), "401 token_invalid_claim"),
        ],
    )
    .await;
}

#[tokio::test]
async fn session_length_must_be_a_positive_integer() {
    let app = app().await;
    let length = |v: Value| app.token().claim("session_length", v).sign();
    expect_all(
        &app,
        vec![
            case("0", length(json!(0)), "401 token_invalid_claim"),
            case("-60", length(json!(-60)), "401 token_invalid_claim"),
        ],
    )
    .await;
    let res = app.handshake(&length(json!(60)), "sales").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("Max-Age=60"), "{set_cookie}");
}

#[tokio::test]
async fn name_claims_must_be_strings_of_at_most_255_characters() {
    let app = app().await;
    expect_all(
        &app,
        vec![
            case(
                "first_name of 256",
                app.token()
                    .claim("first_name", json!("f".repeat(256)))
                    .sign(),
                "401 token_invalid_claim",
            ),
            case(
                "last_name of 256",
                app.token()
                    .claim("last_name", json!("l".repeat(256)))
                    .sign(),
                "401 token_invalid_claim",
            ),
            case(
                "names of 255",
                app.token()
                    .claim("first_name", json!("f".repeat(255)))
                    .claim("last_name", json!("l".repeat(255)))
                    .sign(),
                "303",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn iss_equal_to_the_client_id_is_accepted_and_any_other_is_an_issuer_mismatch() {
    let app = app().await;
    let iss = |v: &str| app.token().claim("iss", json!(v)).sign();
    expect_all(
        &app,
        vec![
            case("the client id", iss(ACME_CLIENT), "303"),
            case(
                "another client's id",
                iss(GLOBEX_CLIENT),
                "401 token_issuer_mismatch",
            ),
            case(
                "the client id in upper case",
                iss("ACME-HOST"),
                "401 token_issuer_mismatch",
            ),
            case(
                "a URL",
                iss("https://app.acme.example"),
                "401 token_issuer_mismatch",
            ),
            case("empty", iss(""), "401 token_issuer_mismatch"),
            case("absent", app.token().without("iss").sign(), "303"),
        ],
    )
    .await;
}

#[tokio::test]
async fn with_an_audience_configured_aud_must_contain_it() {
    let app = app_with(|c| c.embed.audience = "embedgate".into()).await;
    let aud = |v: Value| app.token().claim("aud", v).sign();
    expect_all(
        &app,
        vec![
            case("missing", app.token().sign(), "401 token_audience_mismatch"),
            case(
                "another audience",
                aud(json!("other")),
                "401 token_audience_mismatch",
            ),
            case(
                "an array without it",
                aud(json!(["other", "embedgate-x"])),
                "401 token_audience_mismatch",
            ),
            case(
                "an empty array",
                aud(json!([])),
                "401 token_audience_mismatch",
            ),
            case(
                "a prefix of it",
                aud(json!("embed")),
                "401 token_audience_mismatch",
            ),
            case("the string", aud(json!("embedgate")), "303"),
            case(
                "an array containing it",
                aud(json!(["other", "embedgate"])),
                "303",
            ),
            case("an array of only it", aud(json!(["embedgate"])), "303"),
        ],
    )
    .await;
}

#[tokio::test]
async fn without_an_audience_configured_aud_is_optional() {
    let app = app().await;
    expect_all(
        &app,
        vec![
            case("no aud", app.token().sign(), "303"),
            case(
                "any aud",
                app.token().claim("aud", json!("anything")).sign(),
                "303",
            ),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------
// 6. Time (the injected clock)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_token_is_refused_and_the_skew_boundary_is_exact() {
    let app = app().await;
    let now = app.clock.unix();
    let times = |iat: i64, exp: i64| {
        app.token()
            .claim("iat", json!(iat))
            .claim("exp", json!(exp))
            .sign()
    };
    expect_all(
        &app,
        vec![
            case(
                "exp = now - 61",
                times(now - 400, now - 61),
                "401 token_expired",
            ),
            case(
                "exp = now - 3600",
                times(now - 4000, now - 3600),
                "401 token_expired",
            ),
            case("exp = now - 60", times(now - 400, now - 60), "303"),
            case("exp = now", times(now - 400, now), "303"),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_token_expires_when_the_clock_passes_exp_plus_the_skew() {
    let app = app().await;
    // Both signed at NOW with exp = NOW + 300.
    let (first, second) = (app.token().sign(), app.token().sign());
    app.clock.set_unix(NOW + 360);
    assert_eq!(try_token(&app, &first).await, "303");
    app.clock.set_unix(NOW + 361);
    assert_eq!(try_token(&app, &second).await, "401 token_expired");
}

#[tokio::test]
async fn iat_or_nbf_beyond_the_skew_in_the_future_is_not_yet_valid() {
    let app = app().await;
    let now = app.clock.unix();
    let t = || app.token().claim("exp", json!(now + 600));
    expect_all(
        &app,
        vec![
            case(
                "iat = now + 61",
                t().claim("iat", json!(now + 61)).sign(),
                "401 token_not_yet_valid",
            ),
            case(
                "iat = now + 3600",
                t().claim("iat", json!(now + 3600))
                    .claim("exp", json!(now + 4000))
                    .sign(),
                "401 token_not_yet_valid",
            ),
            case(
                "nbf = now + 61",
                t().claim("nbf", json!(now + 61)).sign(),
                "401 token_not_yet_valid",
            ),
            case(
                "iat = now + 60",
                t().claim("iat", json!(now + 60)).sign(),
                "303",
            ),
            case(
                "nbf = now + 60",
                t().claim("nbf", json!(now + 60)).sign(),
                "303",
            ),
            case(
                "nbf in the past",
                t().claim("nbf", json!(now - 600)).sign(),
                "303",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_not_yet_valid_token_works_once_the_clock_reaches_it() {
    let app = app().await;
    let token = app
        .token()
        .claim("nbf", json!(NOW + 600))
        .claim("exp", json!(NOW + 900))
        .sign();
    assert_eq!(try_token(&app, &token).await, "401 token_not_yet_valid");
    app.clock.set_unix(NOW + 540);
    assert_eq!(try_token(&app, &token).await, "303");
}

#[tokio::test]
async fn exp_minus_iat_over_the_maximum_lifetime_is_too_long() {
    let app = app().await;
    let now = app.clock.unix();
    let max = app.config.embed.max_token_lifetime_secs;
    assert_eq!(max, 2_592_000);
    let life = |iat: i64, exp: i64| {
        app.token()
            .claim("iat", json!(iat))
            .claim("exp", json!(exp))
            .sign()
    };
    expect_all(
        &app,
        vec![
            case("exactly the maximum", life(now, now + max), "303"),
            case(
                "one second more",
                life(now, now + max + 1),
                "401 token_lifetime_too_long",
            ),
            case(
                "issued long ago, still unexpired",
                life(now - max, now + 60),
                "401 token_lifetime_too_long",
            ),
        ],
    )
    .await;
    let message = message_of(&app, &life(now, now + max + 1), "token_lifetime_too_long").await;
    assert!(message.contains(&max.to_string()), "{message}");
}

#[tokio::test]
async fn the_maximum_lifetime_follows_the_configuration() {
    let app = app_with(|c| c.embed.max_token_lifetime_secs = 600).await;
    let now = app.clock.unix();
    let life = |secs: i64| app.token().claim("exp", json!(now + secs)).sign();
    expect_all(
        &app,
        vec![
            case("600 s", life(600), "303"),
            case("601 s", life(601), "401 token_lifetime_too_long"),
        ],
    )
    .await;
}

#[tokio::test]
async fn extreme_iat_values_cannot_overflow_the_lifetime_check() {
    let app = app().await;
    let now = app.clock.unix();
    // exp - iat is astronomically large: it must not wrap around.
    let token = app
        .token()
        .claim("iat", json!(i64::MIN))
        .claim("exp", json!(now + 10 * 365 * 86_400))
        .sign();
    assert_eq!(try_token(&app, &token).await, "401 token_lifetime_too_long");
    // The gateway is still up.
    assert_eq!(try_token(&app, &app.token().sign()).await, "303");
}

#[tokio::test]
async fn time_errors_name_the_server_time_and_the_token_times() {
    let app = app().await;
    let expired = app
        .token()
        .claim("iat", json!(NOW - 900))
        .claim("exp", json!(NOW - 600))
        .sign();
    let message = message_of(&app, &expired, "token_expired").await;
    for stamp in [
        "2027-01-15T08:00:00Z",
        "2027-01-15T07:45:00Z",
        "2027-01-15T07:50:00Z",
    ] {
        assert!(message.contains(stamp), "{stamp} missing in {message}");
    }

    let early = app
        .token()
        .claim("iat", json!(NOW + 120))
        .claim("exp", json!(NOW + 600))
        .sign();
    let message = message_of(&app, &early, "token_not_yet_valid").await;
    for stamp in ["2027-01-15T08:00:00Z", "2027-01-15T08:02:00Z"] {
        assert!(message.contains(stamp), "{stamp} missing in {message}");
    }

    let nbf = app
        .token()
        .claim("nbf", json!(NOW + 300))
        .claim("exp", json!(NOW + 600))
        .sign();
    let message = message_of(&app, &nbf, "token_not_yet_valid").await;
    for stamp in ["2027-01-15T08:00:00Z", "2027-01-15T08:05:00Z"] {
        assert!(message.contains(stamp), "{stamp} missing in {message}");
    }

    // The server time is the injected clock's.
    let signed_at_now = app.token().sign();
    app.clock.set_unix(NOW + 3600);
    let message = message_of(&app, &signed_at_now, "token_expired").await;
    for stamp in ["2027-01-15T09:00:00Z", "2027-01-15T08:05:00Z"] {
        assert!(message.contains(stamp), "{stamp} missing in {message}");
    }
}

// ---------------------------------------------------------------------------
// 7. Order of the checks
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_first_failing_rule_in_the_spec_order_gives_the_code() {
    let app = app().await;
    let now = app.clock.unix();
    let wrong = "wrong-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
    let t = || app.token();
    let expired = || {
        t().claim("iat", json!(now - 1000))
            .claim("exp", json!(now - 500))
    };
    let big = "c".repeat(9000);
    expect_all(
        &app,
        vec![
            case(
                "too large beats an unknown kid",
                t().kid("nobody-host").claim("x_pad", json!(big)).sign(),
                "401 token_too_large",
            ),
            case(
                "a crit header beats an unknown kid",
                t().kid("nobody-host").header("crit", json!(["exp"])).sign(),
                "401 token_malformed",
            ),
            case(
                "a duplicate key beats an unknown kid",
                t().sign_raw(
                    r#"{"alg":"none","typ":"JWT","kid":"nobody-host","kid":"nobody-host"}"#,
                    &payload_text(&t()),
                ),
                "401 token_malformed",
            ),
            case(
                "an unknown kid beats alg none",
                unsigned(&t().kid("nobody-host").header("alg", json!("none"))),
                "401 token_unknown_client",
            ),
            case(
                "an unknown kid beats a bad signature",
                t().kid("nobody-host").secret(wrong).sign(),
                "401 token_unknown_client",
            ),
            case(
                "an unknown kid beats expiry",
                expired().kid("nobody-host").sign(),
                "401 token_unknown_client",
            ),
            case(
                "alg mismatch beats a bad signature",
                t().alg(Algorithm::HS512).secret(wrong).sign(),
                "401 token_alg_mismatch",
            ),
            case(
                "alg mismatch beats a missing claim",
                t().header("alg", json!("hs256")).without("jti").sign(),
                "401 token_alg_mismatch",
            ),
            case(
                "a bad signature beats expiry",
                expired().secret(wrong).sign(),
                "401 token_bad_signature",
            ),
            case(
                "a bad signature beats a missing claim",
                t().without("sub").secret(wrong).sign(),
                "401 token_bad_signature",
            ),
            case(
                "a bad signature beats an invalid claim",
                t().claim("teams", json!("x")).secret(wrong).sign(),
                "401 token_bad_signature",
            ),
            case(
                "a missing claim beats an invalid claim",
                t().without("jti").claim("teams", json!("x")).sign(),
                "401 token_missing_claim",
            ),
            case(
                "a missing claim beats an issuer mismatch",
                t().without("iat").claim("iss", json!(GLOBEX_CLIENT)).sign(),
                "401 token_missing_claim",
            ),
            case(
                "a missing claim beats expiry",
                expired().without("jti").sign(),
                "401 token_missing_claim",
            ),
            case(
                "an invalid claim beats an issuer mismatch",
                t().claim("iss", json!(GLOBEX_CLIENT))
                    .claim("teams", json!("x"))
                    .sign(),
                "401 token_invalid_claim",
            ),
            case(
                "an invalid claim beats expiry",
                expired().claim("session_length", json!(0)).sign(),
                "401 token_invalid_claim",
            ),
            case(
                "an issuer mismatch beats expiry",
                expired().claim("iss", json!(GLOBEX_CLIENT)).sign(),
                "401 token_issuer_mismatch",
            ),
            case(
                "an issuer mismatch beats not-yet-valid",
                t().claim("iss", json!(GLOBEX_CLIENT))
                    .claim("iat", json!(now + 600))
                    .claim("exp", json!(now + 900))
                    .sign(),
                "401 token_issuer_mismatch",
            ),
            case(
                "expiry beats not-yet-valid (nbf)",
                expired().claim("nbf", json!(now + 600)).sign(),
                "401 token_expired",
            ),
            case(
                "expiry beats a too long lifetime",
                t().claim("iat", json!(now - 3_000_000))
                    .claim("exp", json!(now - 100))
                    .sign(),
                "401 token_expired",
            ),
            case(
                "not-yet-valid beats a too long lifetime",
                t().claim("iat", json!(now + 600))
                    .claim("exp", json!(now + 600 + 2_592_001))
                    .sign(),
                "401 token_not_yet_valid",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_audience_check_comes_after_the_issuer_and_before_the_time() {
    let app = app_with(|c| c.embed.audience = "embedgate".into()).await;
    let now = app.clock.unix();
    let t = || app.token();
    expect_all(
        &app,
        vec![
            case(
                "an invalid claim beats a missing aud",
                t().claim("teams", json!("x")).sign(),
                "401 token_invalid_claim",
            ),
            case(
                "an issuer mismatch beats a missing aud",
                t().claim("iss", json!(GLOBEX_CLIENT)).sign(),
                "401 token_issuer_mismatch",
            ),
            case(
                "a wrong aud beats expiry",
                t().claim("aud", json!("other"))
                    .claim("iat", json!(now - 1000))
                    .claim("exp", json!(now - 500))
                    .sign(),
                "401 token_audience_mismatch",
            ),
            case(
                "a missing aud beats not-yet-valid",
                t().claim("iat", json!(now + 600))
                    .claim("exp", json!(now + 900))
                    .sign(),
                "401 token_audience_mismatch",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_used_token_that_has_since_expired_is_expired_not_replayed() {
    let app = app().await;
    let token = app.token().sign();
    assert_eq!(try_token(&app, &token).await, "303");
    assert_eq!(try_token(&app, &token).await, "401 token_replayed");
    app.clock.advance_secs(3600);
    assert_eq!(try_token(&app, &token).await, "401 token_expired");
}

// ---------------------------------------------------------------------------
// 8. Replay
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_second_use_of_a_token_is_replayed() {
    let app = app().await;
    let token = app.token().sign();
    app.open(&token, "sales").await;
    let message = message_of(&app, &token, "token_replayed").await;
    assert!(!message.is_empty());
    // On another workbook, or through the alias, it is still the same token.
    assert_eq!(try_on(&app, &token, "orders").await, "401 token_replayed");
    let alias = outcome_of(get_query(&app, &format!(":jwt={token}")).await, &token).await;
    assert_eq!(alias, "401 token_replayed");
}

#[tokio::test]
async fn a_token_refused_with_a_token_code_does_not_consume_its_jti() {
    let app = app().await;
    let now = app.clock.unix();
    let b = app.token();
    let wrong = "wrong-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
    expect_all(
        &app,
        vec![
            case(
                "bad signature",
                b.clone().secret(wrong).sign(),
                "401 token_bad_signature",
            ),
            case(
                "alg",
                b.clone().alg(Algorithm::HS512).sign(),
                "401 token_alg_mismatch",
            ),
            case(
                "duplicate key",
                b.sign_raw(
                    r#"{"alg":"HS256","alg":"HS256","typ":"JWT","kid":"acme-host"}"#,
                    &payload_text(&b),
                ),
                "401 token_malformed",
            ),
            case(
                "invalid claim",
                b.clone().claim("teams", json!("x")).sign(),
                "401 token_invalid_claim",
            ),
            case(
                "issuer",
                b.clone().claim("iss", json!(GLOBEX_CLIENT)).sign(),
                "401 token_issuer_mismatch",
            ),
            case(
                "expired",
                b.clone()
                    .claim("iat", json!(now - 900))
                    .claim("exp", json!(now - 600))
                    .sign(),
                "401 token_expired",
            ),
            case(
                "not yet valid",
                b.clone().claim("nbf", json!(now + 600)).sign(),
                "401 token_not_yet_valid",
            ),
            case(
                "lifetime",
                b.clone().claim("exp", json!(now + 2_592_001)).sign(),
                "401 token_lifetime_too_long",
            ),
            // The same claims, correctly signed: the jti is still fresh.
            case("valid, same jti", b.sign(), "303"),
            case("valid, same jti, again", b.sign(), "401 token_replayed"),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_token_that_passed_verification_but_got_a_403_is_consumed() {
    let app = app().await;
    // acme-analysts has no grant on inventory: 403 access_denied (§5).
    let denied = app.token().sign();
    assert_eq!(
        try_on(&app, &denied, "inventory").await,
        "403 access_denied"
    );
    assert_eq!(
        try_on(&app, &denied, "inventory").await,
        "401 token_replayed"
    );
    assert_eq!(try_on(&app, &denied, "sales").await, "401 token_replayed");
    // A §4 refusal (a team the client may not name) consumes it too.
    let not_allowed = app
        .token()
        .email("gus@acme.example")
        .claim("teams", json!(["globex-analysts"]))
        .sign();
    assert_eq!(try_token(&app, &not_allowed).await, "403 team_not_allowed");
    assert_eq!(try_token(&app, &not_allowed).await, "401 token_replayed");
}

#[tokio::test]
async fn a_used_token_stays_replayed_after_a_restart() {
    let app = app().await;
    let token = app.token().sign();
    let unused = app.token().sign();
    app.open(&token, "sales").await;
    let app = app.restart().await;
    assert_eq!(try_token(&app, &token).await, "401 token_replayed");
    assert_eq!(try_token(&app, &unused).await, "303");
}

/// SQLite remembers consumed ids in memory, so a second process serving the
/// same file would accept the first one's tokens again: it is refused at
/// start, and the first keeps refusing replays.
#[tokio::test]
async fn a_second_instance_on_one_sqlite_file_is_refused_at_start() {
    let app = app().await;
    let token = app.token().sign();
    app.open(&token, "sales").await;
    let second = embedgate::app::Application::build(app.config.clone(), app.clock.clone()).await;
    let err = format!(
        "{:#}",
        second.err().expect("the second instance is refused")
    );
    assert!(err.contains("another embedgate serves"), "{err}");
    assert!(err.contains("PostgreSQL"), "{err}");
    assert_eq!(try_token(&app, &token).await, "401 token_replayed");
    // Closed (as on exit), the file can be served again.
    let app = app.restart().await;
    assert_eq!(try_token(&app, &token).await, "401 token_replayed");
}

/// A lock file that cannot be opened (here a folder stands in its place)
/// stops the start with the path and the reason, before the file is
/// migrated or anything served.
#[tokio::test]
async fn a_sqlite_file_whose_instance_lock_cannot_be_opened_is_refused_at_start() {
    let app = app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("other.db");
    let lock = dir.path().join("other.db.instance.lock");
    std::fs::create_dir(&lock).unwrap();
    let mut config = app.config.clone();
    config.database.url = embedgate::config::DatabaseUrl(format!("sqlite://{}", file.display()));
    let refused = embedgate::app::Application::build(config, app.clock.clone()).await;
    let err = format!("{:#}", refused.err().expect("the start is refused"));
    assert!(err.contains("cannot open"), "{err}");
    assert!(err.contains(&lock.display().to_string()), "{err}");
    assert!(lock.is_dir(), "the folder is left as it was");
    let mut conn =
        <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tables, 0, "not migrated");
}

/// `database.jti_memory_max`: by default SQLite logs a consumed id (and
/// remembers it); at 0 it consumes every id in the unique index. Either
/// way a replay is refused, also after a restart.
#[tokio::test]
async fn database_jti_memory_max_zero_consumes_ids_in_the_unique_index() {
    for (max, logged, indexed) in [(embedgate::store::JTI_MEMORY_MAX, 1, 0), (0, 0, 1)] {
        let app = app_with(|c| c.database.jti_memory_max = max).await;
        let (log, index) = jti_rows(app.config.database.url.expose()).await;
        let token = app.token().sign();
        app.open(&token, "sales").await;
        assert_eq!(
            jti_rows(app.config.database.url.expose()).await,
            (log + logged, index + indexed),
            "jti_memory_max = {max}"
        );
        assert_eq!(try_token(&app, &token).await, "401 token_replayed");
        let app = app.restart().await;
        assert_eq!(try_token(&app, &token).await, "401 token_replayed");
        assert_eq!(
            jti_rows(app.config.database.url.expose()).await,
            (log + logged, index + indexed)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_uses_of_one_token_give_exactly_one_session() {
    let app = app().await;
    let token = app.token().sign();
    let url = app.url(&format!("/embed/workbooks/sales?jwt={token}"));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (http, url) = (app.http.clone(), url.clone());
        tasks.spawn(async move {
            let res = get_json_from(http, url).await;
            let status = res.status().as_u16();
            let cookie = session_cookie(&res).is_some();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (
                status,
                cookie,
                body["error"]["code"].as_str().unwrap_or("").to_owned(),
            )
        });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        outcomes.push(done.unwrap());
    }
    let sessions = outcomes.iter().filter(|(s, c, _)| *s == 303 && *c).count();
    let replays = outcomes
        .iter()
        .filter(|(s, c, code)| *s == 401 && !*c && code == "token_replayed")
        .count();
    assert_eq!(sessions, 1, "{outcomes:?}");
    assert_eq!(replays, 19, "{outcomes:?}");
}

#[tokio::test]
async fn the_same_jti_from_two_clients_is_not_a_replay() {
    let app = app().await;
    let acme = app.token().claim("jti", json!("shared-jti-1")).sign();
    let globex = TokenBuilder::globex(app.clock.unix())
        .claim("jti", json!("shared-jti-1"))
        .sign();
    assert_eq!(try_token(&app, &acme).await, "303");
    assert_eq!(try_on(&app, &globex, "inventory").await, "303");
    assert_eq!(try_token(&app, &acme).await, "401 token_replayed");
    assert_eq!(
        try_on(&app, &globex, "inventory").await,
        "401 token_replayed"
    );
}

// ---------------------------------------------------------------------------
// 9. Literal fixture tokens (tests/fixtures/make_fixtures.py)
// ---------------------------------------------------------------------------

fn fixture(name: &str) -> String {
    let path = repo_path(&format!("tests/fixtures/{name}"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn literal_fixture_tokens_get_their_expected_outcomes() {
    let app = app().await;
    assert_eq!(app.clock.unix(), NOW, "the fixtures are signed around NOW");
    let expected = [
        ("valid.jwt", "303"),
        ("valid_email_claim.jwt", "303"),
        ("exp_within_skew.jwt", "303"),
        ("expired.jwt", "401 token_expired"),
        ("not_yet_valid.jwt", "401 token_not_yet_valid"),
        ("nbf_in_the_future.jwt", "401 token_not_yet_valid"),
        ("lifetime_too_long.jwt", "401 token_lifetime_too_long"),
        ("bad_signature.jwt", "401 token_bad_signature"),
        ("tampered_payload.jwt", "401 token_bad_signature"),
        ("alg_none.jwt", "401 token_alg_mismatch"),
        ("alg_none_upper.jwt", "401 token_alg_mismatch"),
        ("alg_hs512.jwt", "401 token_alg_mismatch"),
        ("alg_lowercase.jwt", "401 token_alg_mismatch"),
        ("unknown_client.jwt", "401 token_unknown_client"),
        ("missing_jti.jwt", "401 token_missing_claim"),
        ("missing_sub.jwt", "401 token_missing_claim"),
        ("exp_as_string.jwt", "401 token_invalid_claim"),
        ("sub_email_mismatch.jwt", "401 token_invalid_claim"),
        ("issuer_mismatch.jwt", "401 token_issuer_mismatch"),
        ("duplicate_payload_key.jwt", "401 token_malformed"),
        ("duplicate_header_key.jwt", "401 token_malformed"),
        ("crit_header.jwt", "401 token_malformed"),
        ("typ_not_jwt.jwt", "401 token_malformed"),
        ("padded.jwt", "401 token_malformed"),
        ("two_segments.jwt", "401 token_malformed"),
        ("too_large.jwt", "401 token_too_large"),
        // A second use of the valid one.
        ("valid.jwt", "401 token_replayed"),
    ];
    let cases = expected
        .iter()
        .map(|(name, outcome)| case(name, fixture(name), outcome))
        .collect();
    expect_all(&app, cases).await;
    // The tampered token did not create the user its forged payload names.
    assert_eq!(app.admin().user("boss@acme.example").await, Value::Null);
    assert_eq!(app.admin().user("bob@acme.example").await, Value::Null);
}

#[tokio::test]
async fn every_fixture_file_is_covered_by_the_fixture_test() {
    // Guards against a fixture added to make_fixtures.py but never asserted.
    let source = std::fs::read_to_string(repo_path("tests/api/tokens.rs")).unwrap();
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(repo_path("tests/fixtures")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".jwt") {
            names.insert(name);
        }
    }
    assert!(names.len() >= 20, "{names:?}");
    for name in names {
        assert!(
            source.contains(&format!("(\"{name}\", \"")),
            "{name} is not asserted"
        );
    }
}

// ---------------------------------------------------------------------------
// 10. A refusal changes nothing, and is audited without the token
// ---------------------------------------------------------------------------

#[tokio::test]
async fn refused_tokens_for_a_new_email_create_no_user() {
    let app = app().await;
    let now = app.clock.unix();
    let before = app.admin().users().await;
    let t = || app.token().email("newbie@acme.example");
    expect_all(
        &app,
        vec![
            case(
                "bad signature",
                t().secret(GLOBEX_SECRET).sign(),
                "401 token_bad_signature",
            ),
            case(
                "alg none",
                unsigned(&t().header("alg", json!("none"))),
                "401 token_alg_mismatch",
            ),
            case(
                "expired",
                t().claim("iat", json!(now - 900))
                    .claim("exp", json!(now - 600))
                    .sign(),
                "401 token_expired",
            ),
            case(
                "invalid claim",
                t().claim("ver", json!("9")).sign(),
                "401 token_invalid_claim",
            ),
            case(
                "issuer",
                t().claim("iss", json!("x")).sign(),
                "401 token_issuer_mismatch",
            ),
            case(
                "unknown kid",
                t().kid("nobody").sign(),
                "401 token_unknown_client",
            ),
        ],
    )
    .await;
    settle(&app).await;
    assert_eq!(app.admin().users().await, before);
    assert_eq!(app.admin().user("newbie@acme.example").await, Value::Null);
    let created = app.admin().audit("event=user_created").await;
    assert!(created.is_empty(), "{created:?}");
}

#[tokio::test]
async fn refused_tokens_for_an_existing_user_change_nothing() {
    let app = app().await;
    let now = app.clock.unix();
    let first = app.token().claim("first_name", json!("Ana")).sign();
    app.open(&first, "sales").await;
    settle(&app).await;
    let before = app.admin().users().await;
    assert_eq!(before.as_array().unwrap().len(), 1);
    assert_eq!(before[0]["teams"], json!(["acme-analysts"]));
    // Every refused token asks for other teams, names and attributes.
    let t = || {
        app.token()
            .claim("teams", json!(["acme-managers"]))
            .claim("first_name", json!("Changed"))
            .claim("user_attributes", json!({"company": "globex"}))
    };
    expect_all(
        &app,
        vec![
            case(
                "expired",
                t().claim("iat", json!(now - 900))
                    .claim("exp", json!(now - 600))
                    .sign(),
                "401 token_expired",
            ),
            case(
                "not yet valid",
                t().claim("iat", json!(now + 600))
                    .claim("exp", json!(now + 900))
                    .sign(),
                "401 token_not_yet_valid",
            ),
            case(
                "bad signature",
                t().secret(GLOBEX_SECRET).sign(),
                "401 token_bad_signature",
            ),
            case(
                "issuer",
                t().claim("iss", json!(GLOBEX_CLIENT)).sign(),
                "401 token_issuer_mismatch",
            ),
            case(
                "invalid claim",
                t().claim("session_length", json!(0)).sign(),
                "401 token_invalid_claim",
            ),
            case("replayed", first.clone(), "401 token_replayed"),
        ],
    )
    .await;
    settle(&app).await;
    assert_eq!(app.admin().users().await, before);
    let updated = app.admin().audit("event=user_updated").await;
    assert!(updated.is_empty(), "{updated:?}");
}

#[tokio::test]
async fn refusals_are_audited_with_their_code_and_without_the_token() {
    let app = app().await;
    let now = app.clock.unix();
    let used = app.token().sign();
    app.open(&used, "sales").await;
    let refused = vec![
        (
            "token_bad_signature",
            app.token().secret(GLOBEX_SECRET).sign(),
        ),
        (
            "token_expired",
            app.token()
                .claim("iat", json!(now - 900))
                .claim("exp", json!(now - 600))
                .sign(),
        ),
        (
            "token_malformed",
            app.token().header("crit", json!(["exp"])).sign(),
        ),
        (
            "token_unknown_client",
            app.token().kid("nobody-host").sign(),
        ),
        (
            "token_alg_mismatch",
            app.token().alg(Algorithm::HS512).sign(),
        ),
        (
            "token_invalid_claim",
            app.token().claim("teams", json!("x")).sign(),
        ),
        ("token_missing_claim", app.token().without("jti").sign()),
        ("token_replayed", used.clone()),
    ];
    for (code, token) in &refused {
        assert_error(app.handshake(token, "sales").await, 401, code).await;
    }
    let denied = app.admin().audit("event=handshake&outcome=denied").await;
    for (code, _) in &refused {
        let entry = denied
            .iter()
            .find(|e| e["code"] == *code)
            .unwrap_or_else(|| panic!("no denied handshake with {code} in {denied:?}"));
        assert_eq!(entry["event"], "handshake");
        assert_eq!(entry["outcome"], "denied");
        assert_eq!(entry["workbook"], "sales", "{entry}");
    }
    assert_eq!(denied.len(), refused.len(), "{denied:?}");
    // No token, nor any of its payload or signature segments, anywhere in the log.
    let everything = app.admin().get("/audit?limit=1000").await.to_string();
    for (code, token) in refused.iter().chain([("used", used.clone())].iter()) {
        assert!(
            !everything.contains(token.as_str()),
            "{code}: the token is in the audit log"
        );
        for segment in token.split('.').skip(1) {
            if segment.len() > 16 {
                assert!(
                    !everything.contains(segment),
                    "{code}: a token segment is in the audit log"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 11. Error responses: HTML by default, JSON on request
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_errors_are_html_by_default_and_json_when_asked() {
    let app = app().await;
    let now = app.clock.unix();
    let tokens = [
        (
            "token_expired",
            app.token()
                .claim("iat", json!(now - 900))
                .claim("exp", json!(now - 600))
                .sign(),
        ),
        (
            "token_bad_signature",
            app.token().secret(GLOBEX_SECRET).sign(),
        ),
        ("token_malformed", "not-a-token".to_owned()),
    ];
    for (code, token) in &tokens {
        let path = format!("/embed/workbooks/sales?jwt={token}");
        for accept in [
            None,
            Some("text/html"),
            Some("text/html,application/xhtml+xml,*/*;q=0.8"),
        ] {
            let mut req = app.http.get(app.url(&path));
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{code} {accept:?}");
            assert_eq!(res.headers()["cache-control"], "no-store");
            assert_eq!(res.headers()["referrer-policy"], "no-referrer");
            assert!(res.headers().get("set-cookie").is_none());
            assert!(res.headers().get("location").is_none());
            let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(
                content_type.starts_with("text/html"),
                "{code} {accept:?}: {content_type}"
            );
            let html = res.text().await.unwrap();
            assert!(html.contains(code), "{code} missing in {html}");
            assert!(
                !html.contains(token.as_str()) || token.len() < 20,
                "the page echoes the token"
            );
        }
        let res = app.handshake(token, "sales").await;
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert_eq!(res.headers()["referrer-policy"], "no-referrer");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert_error(res, 401, code).await;
    }
}

#[tokio::test]
async fn a_request_without_a_token_or_a_session_is_token_missing() {
    let app = app().await;
    let res = app.get_json("/embed/workbooks/sales?theme=dark").await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    assert_error(res, 401, "token_missing").await;
    let html = app.get("/embed/workbooks/sales").await;
    assert_eq!(html.status(), StatusCode::UNAUTHORIZED);
    assert!(html.text().await.unwrap().contains("token_missing"));
}
