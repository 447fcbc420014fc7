//! Attacks on the embed boundary (SPEC §2, §3, §4, §8): forged algorithms,
//! hostile `kid`s and key headers, deep JSON, hostile time claims, replays,
//! look-alike emails, session cookie tampering and fixation, path tricks in
//! workbook ids, and the admin API approached the wrong way. Every case
//! asserts the exact refusal and that nothing changed (no cookie, no user
//! created or changed). `tokens.rs` covers the plain §3 rules; this file
//! adds what an attacker would try next.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::hardening::{
    KeyHost, KeyPair, RawResponse, case, enc, expect_all, hmac_sign, outcome, raw_get, raw_request,
    seeded_app, try_on, users_snapshot,
};
use embedgate::clock::Clock;

use crate::helpers::*;

/// Marks the orders template's content (see `templates/workbooks/orders.html`).
const ORDERS_CONTENT: &str = "open orders.";

/// `builder` with the claim `name` set to the literal JSON text `raw`,
/// signed with its own secret: for numbers and values `serde_json` would
/// not write (`1e308`, `1.0`, integers past `i64`).
fn with_raw_claims(builder: TokenBuilder, raw: &[(&str, &str)]) -> String {
    let mut b = builder;
    for (i, (name, _)) in raw.iter().enumerate() {
        b = b.claim(name, json!(format!("__RAW_{i}__")));
    }
    let mut payload = serde_json::to_string(&b.claims).unwrap();
    for (i, (_, text)) in raw.iter().enumerate() {
        payload = payload.replace(&format!("\"__RAW_{i}__\""), text);
    }
    let header = serde_json::to_string(&b.header).unwrap();
    b.sign_raw(&header, &payload)
}

/// The `embedgate_session` cookie's value.
fn value_of(cookie: &str) -> &str {
    cookie.split_once('=').unwrap().1
}

/// The `/_api/me` email behind a session cookie on `workbook`.
async fn me_email(app: &TestApp, workbook: &str, cookie: &str) -> String {
    let res = app
        .get_with_cookie(&format!("/embed/workbooks/{workbook}/_api/me"), cookie)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    me["email"].as_str().unwrap().to_owned()
}

async fn session_outcome(app: &TestApp, path: &str, cookie: &str) -> String {
    let res = app.get_with_cookie(path, cookie).await;
    let status = res.status().as_u16();
    let set_cookie = res.headers().get("set-cookie").is_some();
    let text = res.text().await.unwrap_or_default();
    assert!(!set_cookie, "a session request set a cookie");
    if status == 200 {
        return "200".into();
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    format!(
        "{status} {}",
        body["error"]["code"].as_str().unwrap_or("<no code>")
    )
}

// ---------------------------------------------------------------------------
// alg: none, and algorithm confusion
// ---------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_in_any_other_spelling_or_shape_is_refused_and_changes_nothing() {
    let app = seeded_app().await;
    let before = users_snapshot(&app).await;
    let mut cases = Vec::new();
    for alg in [
        "nonE",
        "NoNe",
        " none",
        "none ",
        "none\u{0}",
        "\u{200B}none",
        "non\u{0435}",
        "none\r\n",
    ] {
        let b = app.token().header("alg", json!(alg));
        cases.push(case(
            format!("alg {alg:?} without a signature"),
            format!("{}.", b.signing_input()),
            "401 token_alg_mismatch",
        ));
        cases.push(case(
            format!("alg {alg:?} with an HS256 signature"),
            b.sign(),
            "401 token_alg_mismatch",
        ));
    }
    for alg in [
        json!(["none"]),
        json!(["HS256"]),
        json!(["none", "HS256"]),
        json!({"name": "none"}),
        json!(null),
        json!(false),
        json!(0),
    ] {
        let b = app.token().header("alg", alg.clone());
        cases.push(case(
            format!("alg {alg} without a signature"),
            format!("{}.", b.signing_input()),
            "401 token_malformed",
        ));
        cases.push(case(
            format!("alg {alg} with an HS256 signature"),
            b.sign(),
            "401 token_malformed",
        ));
    }
    expect_all(&app, cases).await;
    assert_eq!(
        users_snapshot(&app).await,
        before,
        "a refused token changed the users"
    );
}

#[tokio::test]
async fn an_hmac_keyed_with_an_rs256_clients_public_key_never_verifies() {
    let app = seeded_app().await;
    let rsa = KeyPair::rsa();
    app.admin()
        .post(
            "/clients",
            json!({"client_id": "acme-rsa", "name": "Acme RSA", "algorithm": "RS256", "public_key_pem": rsa.public_pem}),
        )
        .await;
    let before = users_snapshot(&app).await;
    let pem = rsa.public_pem.clone();
    let der = pem::parse(&pem).unwrap().into_contents();
    let t = || TokenBuilder::new("acme-rsa", &pem, app.clock.unix()).email("rsa@acme.example");
    let mut cases = Vec::new();
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        cases.push(case(
            format!("{alg:?} keyed with the PEM"),
            t().alg(alg).sign(),
            "401 token_alg_mismatch",
        ));
        cases.push(case(
            format!("{alg:?} keyed with the DER"),
            hmac_sign(&t().alg(alg), &der, alg),
            "401 token_alg_mismatch",
        ));
        cases.push(case(
            format!("an RS256 header over {alg:?} keyed with the PEM"),
            hmac_sign(&t().header("alg", json!("RS256")), pem.as_bytes(), alg),
            "401 token_bad_signature",
        ));
    }
    for alg in ["PS256", "RS384", "RS512", "rs256", "RS256 "] {
        cases.push(case(
            format!("alg {alg} over a genuine RS256 signature"),
            {
                let genuine = rsa.sign(&t());
                let sig = genuine.rsplit('.').next().unwrap().to_owned();
                format!("{}.{sig}", t().header("alg", json!(alg)).signing_input())
            },
            "401 token_alg_mismatch",
        ));
    }
    expect_all(&app, cases).await;
    assert_eq!(users_snapshot(&app).await, before);
    // The control: the registered key works.
    expect_all(&app, vec![case("RS256", rsa.sign(&t()), "303")]).await;
}

/// An HMAC of `builder` with `alg`, cut to `bytes` bytes.
fn truncated_hmac(builder: &TokenBuilder, secret: &str, alg: Algorithm, bytes: usize) -> String {
    let input = builder.signing_input();
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        alg,
    )
    .unwrap();
    let raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(&raw[..bytes]))
}

#[tokio::test]
async fn hmac_size_downgrades_and_upgrades_never_verify() {
    let app = seeded_app().await;
    let secret = "acme-hs384-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
    app.admin()
        .post(
            "/clients",
            json!({"client_id": "acme-hs384", "name": "Acme 384", "algorithm": "HS384", "secret": secret}),
        )
        .await;
    let before = users_snapshot(&app).await;
    let t = || {
        TokenBuilder::new("acme-hs384", secret, app.clock.unix())
            .email("h384@acme.example")
            .alg(Algorithm::HS384)
    };
    let acme = || app.token();
    expect_all(
        &app,
        vec![
            case(
                "HS384 client, downgraded to HS256",
                t().alg(Algorithm::HS256).sign(),
                "401 token_alg_mismatch",
            ),
            case(
                "HS384 client, upgraded to HS512",
                t().alg(Algorithm::HS512).sign(),
                "401 token_alg_mismatch",
            ),
            case(
                "HS384 header over an HS256 signature",
                truncated_hmac(&t(), secret, Algorithm::HS256, 32),
                "401 token_bad_signature",
            ),
            case(
                "HS384 header over an HS512 signature cut to 48 bytes",
                truncated_hmac(&t(), secret, Algorithm::HS512, 48),
                "401 token_bad_signature",
            ),
            case(
                "HS384 header over an HS384 signature cut to 32 bytes",
                truncated_hmac(&t(), secret, Algorithm::HS384, 32),
                "401 token_bad_signature",
            ),
            case(
                "HS256 client, upgraded to HS384",
                acme().alg(Algorithm::HS384).sign(),
                "401 token_alg_mismatch",
            ),
            case(
                "HS256 header over an HS512 signature cut to 32 bytes",
                truncated_hmac(&acme(), ACME_SECRET, Algorithm::HS512, 32),
                "401 token_bad_signature",
            ),
            case(
                "HS256 header over an HS384 signature cut to 32 bytes",
                truncated_hmac(&acme(), ACME_SECRET, Algorithm::HS384, 32),
                "401 token_bad_signature",
            ),
            case(
                "HS256 signature cut to 16 bytes",
                truncated_hmac(&acme(), ACME_SECRET, Algorithm::HS256, 16),
                "401 token_bad_signature",
            ),
        ],
    )
    .await;
    assert_eq!(users_snapshot(&app).await, before);
    expect_all(&app, vec![case("HS384 as registered", t().sign(), "303")]).await;
}

// ---------------------------------------------------------------------------
// Hostile kid values
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hostile_kid_values_name_no_client_and_inject_nothing() {
    let app = seeded_app().await;
    let before = users_snapshot(&app).await;
    let long = "k".repeat(4096);
    let kids = [
        "../../etc/passwd",
        "acme-host/../globex-host",
        "globex-host/../acme-host",
        "' OR '1'='1",
        "acme-host' --",
        "acme-host\" OR \"1\"=\"1",
        "acme-host'; DROP TABLE clients; --",
        long.as_str(),
        "acme-host\r\nX-Injected: 1",
        "acme-host\nSet-Cookie: embedgate_session=x",
        "acme-host\u{0}",
        "acme-host\u{0}globex-host",
        "\u{0430}cme-host",
        "acme-h\u{043E}st",
        "acme-host\u{200B}",
        "acme-host ",
        " acme-host",
        "acme-host%00",
        "%61cme-host",
        "acme-%",
        "*",
        "%",
        "_",
        "",
    ];
    for kid in kids {
        // Signed with the real secret: a kid that resolved to acme-host
        // after any normalisation would pass.
        let token = app.token().kid(kid).sign();
        let res = app
            .http
            .get(app.url(&format!("/embed/workbooks/sales?jwt={}", enc(&token))))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        let shown: String = kid.chars().take(40).collect();
        assert!(
            res.headers().get("x-injected").is_none(),
            "kid {shown:?} injected a header"
        );
        let cookies = res.headers().get_all("set-cookie").iter().count();
        assert_eq!(cookies, 0, "kid {shown:?} set a cookie");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert!(
            !text.contains('\r') && !text.contains('\n'),
            "kid {shown:?}: the body echoes a raw line break: {text}"
        );
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (status, body["error"]["code"].as_str().unwrap_or_default()),
            (401, "token_unknown_client"),
            "kid {shown:?}: {text}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.len() < 600,
            "kid {shown:?}: the message echoes the whole kid"
        );
    }
    assert_eq!(users_snapshot(&app).await, before);
}

// ---------------------------------------------------------------------------
// Keys carried by the token: jku, x5u, x5c, jwk
// ---------------------------------------------------------------------------

#[tokio::test]
async fn x5c_jwk_jku_and_x5u_headers_carrying_the_attackers_key_are_never_used() {
    let app = seeded_app().await;
    let canary = KeyHost::start("").await;
    // The attacker's key and a self-signed certificate for it.
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["acme.example".to_owned()])
        .unwrap()
        .self_signed(&kp)
        .unwrap();
    let attacker = KeyPair {
        alg: Algorithm::ES256,
        private_pem: kp.serialize_pem(),
        public_pem: kp.public_key_pem(),
    };
    canary.serve_keys(&[attacker.jwk("acme-ec")]);
    let x5c = json!([STANDARD.encode(cert.der())]);
    let registered = KeyPair::es256();
    app.admin()
        .post(
            "/clients",
            json!({"client_id": "acme-ec", "name": "Acme EC", "algorithm": "ES256", "public_key_pem": registered.public_pem}),
        )
        .await;
    let before = users_snapshot(&app).await;
    let ec = || {
        TokenBuilder::new("acme-ec", "", app.clock.unix())
            .email("ec@acme.example")
            .kid("acme-ec")
    };
    let hs = || app.token();
    let attacker_secret = "attacker-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
    let oct = json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(attacker_secret), "alg": "HS256"});
    let cases = vec![
        case(
            "ES256: x5c with the attacker's self-signed certificate",
            attacker.sign(&ec().header("x5c", x5c.clone())),
            "401 token_bad_signature",
        ),
        case(
            "ES256: jwk with the attacker's key",
            attacker.sign(&ec().header("jwk", attacker.jwk("acme-ec"))),
            "401 token_bad_signature",
        ),
        case(
            "ES256: jku naming the attacker's set",
            attacker.sign(&ec().header("jku", json!(canary.url("/jwks.json")))),
            "401 token_bad_signature",
        ),
        case(
            "ES256: x5u naming the attacker's certificate",
            attacker.sign(&ec().header("x5u", json!(canary.url("/cert.pem")))),
            "401 token_bad_signature",
        ),
        case(
            "ES256: all four at once",
            attacker.sign(
                &ec()
                    .header("x5c", x5c.clone())
                    .header("jwk", attacker.jwk("acme-ec"))
                    .header("jku", json!(canary.url("/jwks.json")))
                    .header("x5u", json!(canary.url("/cert.pem"))),
            ),
            "401 token_bad_signature",
        ),
        case(
            "HS256: x5c with a certificate, HMAC keyed with the certificate",
            hmac_sign(
                &hs().header("x5c", x5c.clone()),
                cert.der(),
                Algorithm::HS256,
            ),
            "401 token_bad_signature",
        ),
        case(
            "HS256: an oct jwk with the attacker's secret and a jku",
            hs().secret(attacker_secret)
                .header("jwk", oct)
                .header("jku", json!(canary.url("/jwks.json")))
                .sign(),
            "401 token_bad_signature",
        ),
        case(
            "HS256: jku naming the attacker's set, alg ES256",
            attacker.sign(&hs().header("jku", json!(canary.url("/jwks.json")))),
            "401 token_alg_mismatch",
        ),
    ];
    expect_all(&app, cases).await;
    assert_eq!(
        canary.total_hits(),
        0,
        "the gateway fetched a key URL from a token"
    );
    assert_eq!(users_snapshot(&app).await, before);
    // The control: the registered key, with the same headers, works.
    expect_all(
        &app,
        vec![case(
            "the registered key with every header",
            registered.sign(
                &ec()
                    .header("x5c", x5c)
                    .header("jku", json!(canary.url("/jwks.json"))),
            ),
            "303",
        )],
    )
    .await;
    assert_eq!(canary.total_hits(), 0);
}

// ---------------------------------------------------------------------------
// Deep nesting
// ---------------------------------------------------------------------------

fn nested_objects(depth: usize) -> String {
    format!("{}\"x\"{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

fn nested_arrays(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn deeply_nested_claims_are_refused_and_the_gateway_keeps_serving() {
    let app = seeded_app().await;
    let before = users_snapshot(&app).await;
    let attrs = |raw: String| with_raw_claims(app.token(), &[("user_attributes", raw.as_str())]);
    let unknown = |raw: String| with_raw_claims(app.token(), &[("x_extra", raw.as_str())]);
    let deep_header = {
        let b = app.token();
        let mut header = serde_json::to_string(&b.header).unwrap();
        header.insert_str(header.len() - 1, &format!(",\"x\":{}", nested_arrays(2000)));
        b.sign_raw(&header, &serde_json::to_string(&b.claims).unwrap())
    };
    let cases = vec![
        case(
            "user_attributes nested 10 000 deep",
            attrs(format!("{{\"a\":{}}}", nested_arrays(10_000))),
            "401 token_too_large",
        ),
        case(
            "an unknown claim nested 10 000 deep",
            unknown(nested_arrays(10_000)),
            "401 token_too_large",
        ),
        case(
            "user_attributes nested 600 deep",
            attrs(nested_objects(600)),
            "401 token_malformed",
        ),
        case(
            "an unknown claim nested 2 000 deep",
            unknown(nested_arrays(2000)),
            "401 token_malformed",
        ),
        case(
            "a header parameter nested 2 000 deep",
            deep_header,
            "401 token_malformed",
        ),
        case(
            "user_attributes with an object value",
            attrs(nested_objects(3)),
            "401 token_invalid_claim",
        ),
        case(
            "user_attributes with an array value",
            attrs("{\"company\":[\"acme\"]}".into()),
            "401 token_invalid_claim",
        ),
    ];
    for (_, token, _) in &cases {
        assert!(
            token.len() < 80_000,
            "the token does not fit a request head"
        );
    }
    expect_all(&app, cases).await;
    // The inspector reads such tokens without crashing either.
    for token in [attrs(nested_objects(600)), unknown(nested_arrays(2000))] {
        let res = app
            .admin()
            .expect(
                reqwest::Method::POST,
                "/tokens/inspect",
                Some(json!({ "token": token })),
                200,
            )
            .await;
        assert_eq!(res["valid"], false, "{res}");
        assert_eq!(res["code"], "token_malformed", "{res}");
    }
    assert_eq!(users_snapshot(&app).await, before);
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(try_on(&app, &app.token().sign(), "sales").await, "303");
}

// ---------------------------------------------------------------------------
// Time claims of every type and size, at the skew boundary
// ---------------------------------------------------------------------------

/// A label, the claims to set as literal JSON text, the expected outcome.
type TimeCase<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);

#[tokio::test]
async fn time_claims_of_the_wrong_type_or_extreme_size_are_refused_exactly() {
    let app = seeded_app().await;
    let now = app.clock.unix();
    let n = |d: i64| (now + d).to_string();
    let invalid = "401 token_invalid_claim";
    let too_long = "401 token_lifetime_too_long";
    let not_yet = "401 token_not_yet_valid";
    let i64_max = i64::MAX.to_string();
    let i64_min = i64::MIN.to_string();
    let u64_max = u64::MAX.to_string();
    let past_i64 = (i64::MAX as u64 + 1).to_string();
    let exp_past = n(-60);
    let cases: Vec<TimeCase> = vec![
        // exp
        (
            "exp as a string",
            vec![("exp", format!("\"{}\"", n(300)))],
            invalid,
        ),
        (
            "exp as a float",
            vec![("exp", format!("{}.0", n(300)))],
            invalid,
        ),
        (
            "exp in exponent form",
            vec![("exp", "1.8000003e9".into())],
            invalid,
        ),
        ("exp null", vec![("exp", "null".into())], invalid),
        ("exp true", vec![("exp", "true".into())], invalid),
        (
            "exp as an array",
            vec![("exp", format!("[{}]", n(300)))],
            invalid,
        ),
        (
            "exp as an object",
            vec![("exp", format!("{{\"t\":{}}}", n(300)))],
            invalid,
        ),
        ("exp 1e308", vec![("exp", "1e308".into())], invalid),
        // Out of range for every JSON number type: the payload is not JSON
        // the gateway can read.
        (
            "exp 1e999",
            vec![("exp", "1e999".into())],
            "401 token_malformed",
        ),
        ("exp i64::MAX", vec![("exp", i64_max.clone())], too_long),
        ("exp i64::MAX + 1", vec![("exp", past_i64.clone())], invalid),
        ("exp u64::MAX", vec![("exp", u64_max.clone())], invalid),
        ("exp -1", vec![("exp", "-1".into())], invalid),
        ("exp i64::MIN", vec![("exp", i64_min.clone())], invalid),
        // exp at the skew boundary, in every type
        (
            "exp = now - skew",
            vec![("iat", n(-400)), ("exp", exp_past.clone())],
            "303",
        ),
        (
            "exp = now - skew - 1",
            vec![("iat", n(-400)), ("exp", n(-61))],
            "401 token_expired",
        ),
        (
            "exp = now - skew as a float",
            vec![("iat", n(-400)), ("exp", format!("{exp_past}.0"))],
            invalid,
        ),
        (
            "exp = now - skew as a string",
            vec![("iat", n(-400)), ("exp", format!("\"{exp_past}\""))],
            invalid,
        ),
        // iat
        (
            "iat as a string",
            vec![("iat", format!("\"{}\"", n(0)))],
            invalid,
        ),
        (
            "iat as a float",
            vec![("iat", format!("{}.5", n(0)))],
            invalid,
        ),
        ("iat null", vec![("iat", "null".into())], invalid),
        ("iat false", vec![("iat", "false".into())], invalid),
        ("iat as an array", vec![("iat", "[]".into())], invalid),
        ("iat 1e308", vec![("iat", "1e308".into())], invalid),
        ("iat i64::MAX", vec![("iat", i64_max.clone())], invalid),
        ("iat u64::MAX", vec![("iat", u64_max.clone())], invalid),
        ("iat -1", vec![("iat", "-1".into())], too_long),
        ("iat i64::MIN", vec![("iat", i64_min.clone())], too_long),
        ("iat = now + skew", vec![("iat", n(60))], "303"),
        ("iat = now + skew + 1", vec![("iat", n(61))], not_yet),
        (
            "iat = now + skew as a float",
            vec![("iat", format!("{}.0", n(60)))],
            invalid,
        ),
        // nbf
        (
            "nbf as a string",
            vec![("nbf", format!("\"{}\"", n(0)))],
            invalid,
        ),
        (
            "nbf as a float",
            vec![("nbf", format!("{}.0", n(0)))],
            invalid,
        ),
        ("nbf null", vec![("nbf", "null".into())], invalid),
        ("nbf true", vec![("nbf", "true".into())], invalid),
        (
            "nbf as an array",
            vec![("nbf", format!("[{}]", n(0)))],
            invalid,
        ),
        ("nbf 1e308", vec![("nbf", "1e308".into())], invalid),
        ("nbf i64::MAX", vec![("nbf", i64_max.clone())], not_yet),
        ("nbf u64::MAX", vec![("nbf", u64_max.clone())], invalid),
        ("nbf -1", vec![("nbf", "-1".into())], "303"),
        ("nbf i64::MIN", vec![("nbf", i64_min.clone())], "303"),
        ("nbf = now + skew", vec![("nbf", n(60))], "303"),
        ("nbf = now + skew + 1", vec![("nbf", n(61))], not_yet),
        // session_length
        (
            "session_length i64::MAX",
            vec![("session_length", i64_max.clone())],
            "303",
        ),
        (
            "session_length u64::MAX",
            vec![("session_length", u64_max.clone())],
            invalid,
        ),
        (
            "session_length -1",
            vec![("session_length", "-1".into())],
            invalid,
        ),
        (
            "session_length 0",
            vec![("session_length", "0".into())],
            invalid,
        ),
        (
            "session_length 1e308",
            vec![("session_length", "1e308".into())],
            invalid,
        ),
        (
            "session_length 1.5",
            vec![("session_length", "1.5".into())],
            invalid,
        ),
        (
            "session_length null",
            vec![("session_length", "null".into())],
            invalid,
        ),
    ];
    let mut wrong = Vec::new();
    for (label, raw, expected) in &cases {
        let raw: Vec<(&str, &str)> = raw.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let got = try_on(&app, &with_raw_claims(app.token(), &raw), "sales").await;
        if got != *expected {
            wrong.push(format!("{label}: expected {expected}, got {got}"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    // A huge session_length never lengthens the session.
    let token = with_raw_claims(app.token(), &[("session_length", i64_max.as_str())]);
    let res = app.handshake(&token, "sales").await;
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("Max-Age=3600"), "{set_cookie}");
    let users = users_snapshot(&app).await;
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
}

// ---------------------------------------------------------------------------
// Replay across workbooks and spellings
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_used_token_is_replayed_on_every_workbook_path_and_spelling() {
    let app = seeded_app().await;
    let manager = || {
        app.token()
            .email("max@acme.example")
            .claim("teams", json!(["acme-managers"]))
    };
    let token = manager().sign();
    assert_eq!(try_on(&app, &token, "sales").await, "303");
    let replays = [
        format!("/embed/workbooks/orders?jwt={token}"),
        format!("/embed/workbooks/sales?%3Ajwt={token}"),
        format!("/embed/workbooks/sales?:jwt={token}"),
        format!("/embed/workbooks/orders?:jwt={token}"),
        format!("/embed/workbooks/sales/pages/summary?jwt={token}"),
        format!("/embed/workbooks/sales?jwt={token}&tag=v2"),
        format!("/embed/workbooks/sales?theme=dark&jwt={token}"),
        format!("/embed/workbooks/inventory?jwt={token}"),
    ];
    for path in &replays {
        let res = app
            .http
            .get(app.url(path))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(outcome(res).await, "401 token_replayed", "{path}");
    }
    // First used with :jwt, then replayed with jwt.
    let token = manager().sign();
    let res = app
        .http
        .get(app.url(&format!("/embed/workbooks/orders?:jwt={token}")))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(res).await, "303");
    assert_eq!(try_on(&app, &token, "orders").await, "401 token_replayed");
    assert_eq!(try_on(&app, &token, "sales").await, "401 token_replayed");
    // Consumed by a 403 on one workbook, then replayed on a granted one.
    let token = manager().sign();
    assert_eq!(try_on(&app, &token, "inventory").await, "403 access_denied");
    assert_eq!(try_on(&app, &token, "sales").await, "401 token_replayed");
    // The same jti re-signed with other claims is still the same token.
    let jti = fresh_jti();
    let first = manager().claim("jti", json!(jti)).sign();
    let again = manager()
        .claim("jti", json!(jti))
        .claim("first_name", json!("Max"))
        .claim("exp", json!(app.clock.unix() + 200))
        .sign();
    assert_ne!(first, again);
    assert_eq!(try_on(&app, &first, "sales").await, "303");
    assert_eq!(try_on(&app, &again, "orders").await, "401 token_replayed");
}

// ---------------------------------------------------------------------------
// Look-alike emails
// ---------------------------------------------------------------------------

#[tokio::test]
async fn look_alike_emails_never_reach_create_or_change_another_account() {
    let app = seeded_app().await;
    let kim = app
        .open(&app.token().email("kim@acme.example").sign(), "sales")
        .await;
    let ana = app.open(&app.token().sign(), "sales").await;
    let before = users_snapshot(&app).await;
    assert_eq!(before.as_array().unwrap().len(), 2, "{before}");
    // Claims that would change the account they reached.
    let hostile = |b: TokenBuilder| {
        b.claim("teams", json!(["acme-managers"]))
            .claim("first_name", json!("Mallory"))
            .claim("user_attributes", json!({"company": "globex"}))
    };
    let mut cases = Vec::new();
    for email in [
        "\u{212A}im@acme.example",
        "ana@acme.examp\u{131}e",
        "\u{FF41}na@acme.example",
        "ana\u{200B}@acme.example",
        "\u{0430}na@acme.example",
        "ana@acme.example.",
        "ana@acme.example\u{0}",
        "ana@acme.example\u{200D}",
        "an\u{0061}\u{0301}@acme.example",
        "ana@acme.exampl\u{0435}",
        " ana@acme.example",
        "ana@acme.example\n",
        "ana@acme.example@evil.example",
        "ana%40acme.example",
        "ana@acme..example",
        "kim@acme.example\u{00A0}",
    ] {
        cases.push(case(
            format!("sub {email:?}"),
            hostile(app.token().email(email)).sign(),
            "401 token_invalid_claim",
        ));
        cases.push(case(
            format!("email {email:?}"),
            hostile(app.token().without("sub").claim("email", json!(email))).sign(),
            "401 token_invalid_claim",
        ));
    }
    cases.push(case(
        "sub ana, email a Cyrillic look-alike",
        hostile(app.token().claim("email", json!("\u{0430}na@acme.example"))).sign(),
        "401 token_invalid_claim",
    ));
    expect_all(&app, cases).await;
    assert_eq!(
        users_snapshot(&app).await,
        before,
        "a look-alike email created or changed a user"
    );
    assert_eq!(me_email(&app, "sales", &kim).await, "kim@acme.example");

    // Case is not a look-alike: ANA@ACME.EXAMPLE is ana.
    let upper = app
        .open(&app.token().email("ANA@ACME.EXAMPLE").sign(), "sales")
        .await;
    assert_eq!(me_email(&app, "sales", &upper).await, "ana@acme.example");
    assert_eq!(me_email(&app, "sales", &ana).await, "ana@acme.example");
    let after = users_snapshot(&app).await;
    let ids = |v: &Value| -> Vec<(i64, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["id"].as_i64().unwrap(),
                    u["email"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        ids(&after),
        ids(&before),
        "the upper-case email made a new user"
    );
}

// ---------------------------------------------------------------------------
// Session cookies: tampering, fixation, other gateways
// ---------------------------------------------------------------------------

/// The cookie crate's signed value: a 44-character base64 MAC, then the
/// payload.
const MAC_LEN: usize = 44;

fn flip_at(value: &str, at: usize) -> String {
    let mut bytes = value.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn tampered_truncated_extended_or_spliced_session_cookies_are_refused() {
    let app = seeded_app().await;
    let ana = app.open(&app.token().sign(), "sales").await;
    let kim = app
        .open(&app.token().email("kim@acme.example").sign(), "sales")
        .await;
    let manager = app
        .open(
            &app.token()
                .email("max@acme.example")
                .claim("teams", json!(["acme-managers"]))
                .sign(),
            "orders",
        )
        .await;
    let before = users_snapshot(&app).await;
    let (a, k) = (value_of(&ana).to_owned(), value_of(&kim).to_owned());
    assert!(a.len() > MAC_LEN + 10, "unexpected cookie shape: {a}");
    // The payload with the email and user id changed to kim's, ana's MAC kept.
    let forged_payload = {
        let claims = URL_SAFE_NO_PAD.decode(&k[MAC_LEN..]).ok();
        let ana_claims: Option<Value> = URL_SAFE_NO_PAD
            .decode(&a[MAC_LEN..])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match (claims, ana_claims) {
            (Some(kim_claims), Some(mut ana_claims)) => {
                let kim_claims: Value = serde_json::from_slice(&kim_claims).unwrap();
                ana_claims["uid"] = kim_claims["uid"].clone();
                ana_claims["em"] = kim_claims["em"].clone();
                format!(
                    "{}{}",
                    &a[..MAC_LEN],
                    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&ana_claims).unwrap())
                )
            }
            _ => flip_at(&a, MAC_LEN + 1),
        }
    };
    let extended_exp = {
        let ana_claims: Option<Value> = URL_SAFE_NO_PAD
            .decode(&a[MAC_LEN..])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match ana_claims {
            Some(mut c) => {
                c["exp"] = json!(i64::MAX);
                format!(
                    "{}{}",
                    &a[..MAC_LEN],
                    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap())
                )
            }
            None => flip_at(&a, a.len() - 2),
        }
    };
    let len = a.len();
    let variants: Vec<(String, String)> = vec![
        ("first character flipped".into(), flip_at(&a, 0)),
        ("a MAC character flipped".into(), flip_at(&a, 10)),
        ("the MAC's padding changed".into(), flip_at(&a, MAC_LEN - 1)),
        (
            "the first payload character flipped".into(),
            flip_at(&a, MAC_LEN),
        ),
        ("a middle character flipped".into(), flip_at(&a, len / 2)),
        ("the last character flipped".into(), flip_at(&a, len - 1)),
        ("the last character dropped".into(), a[..len - 1].to_owned()),
        ("cut in half".into(), a[..len / 2].to_owned()),
        ("the MAC alone".into(), a[..MAC_LEN].to_owned()),
        ("the payload alone".into(), a[MAC_LEN..].to_owned()),
        ("a character appended".into(), format!("{a}A")),
        ("padding appended".into(), format!("{a}==")),
        ("the value twice".into(), format!("{a}{a}")),
        (
            "kim's MAC on ana's payload".into(),
            format!("{}{}", &k[..MAC_LEN], &a[MAC_LEN..]),
        ),
        (
            "ana's MAC on kim's payload".into(),
            format!("{}{}", &a[..MAC_LEN], &k[MAC_LEN..]),
        ),
        ("ana's MAC on a payload naming kim".into(), forged_payload),
        (
            "ana's MAC on a payload that never expires".into(),
            extended_exp,
        ),
        ("upper-cased".into(), a.to_uppercase()),
        ("empty".into(), String::new()),
    ];
    for (label, value) in variants {
        assert_ne!(value, a, "{label}");
        let got = session_outcome(
            &app,
            "/embed/workbooks/sales/_api/me",
            &format!("embedgate_session={value}"),
        )
        .await;
        assert_eq!(got, "401 session_invalid", "{label}");
    }
    // Another workbook's cookie, though its user may open this workbook.
    for (cookie, path) in [
        (&manager, "/embed/workbooks/sales"),
        (&ana, "/embed/workbooks/orders"),
        (&ana, "/embed/workbooks/inventory"),
    ] {
        let got = session_outcome(&app, path, cookie).await;
        assert_eq!(got, "401 session_invalid", "{path}");
    }
    assert_eq!(users_snapshot(&app).await, before);
    // The genuine cookies still work.
    assert_eq!(me_email(&app, "sales", &ana).await, "ana@acme.example");
    assert_eq!(me_email(&app, "orders", &manager).await, "max@acme.example");
}

#[tokio::test]
async fn a_handshake_never_keeps_the_session_cookie_the_request_brought() {
    let app = seeded_app().await;
    // The attacker holds a valid session of their own.
    let attacker = app
        .open(&app.token().email("kim@acme.example").sign(), "sales")
        .await;
    // The victim's browser is made to carry it along with a valid token.
    let res = app
        .http
        .get(app.url(&format!(
            "/embed/workbooks/sales?jwt={}",
            app.token().sign()
        )))
        .header("Accept", "application/json")
        .header("Cookie", &attacker)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let issued = session_cookie(&res).expect("the handshake set a new session");
    assert_ne!(
        value_of(&issued),
        value_of(&attacker),
        "the attacker's session was kept"
    );
    assert_eq!(me_email(&app, "sales", &issued).await, "ana@acme.example");
    assert_eq!(
        me_email(&app, "sales", &attacker).await,
        "kim@acme.example",
        "the attacker's cookie now opens the victim's session"
    );
    // A failed handshake with the attacker's cookie sets nothing.
    let res = app
        .http
        .get(app.url(&format!(
            "/embed/workbooks/sales?jwt={}",
            app.token().secret(GLOBEX_SECRET).sign()
        )))
        .header("Accept", "application/json")
        .header("Cookie", &attacker)
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(res).await, "401 token_bad_signature");
    // A handshake for the attacker's own email with a victim's cookie
    // likewise issues the attacker's own session, nothing more.
    let res = app
        .http
        .get(app.url(&format!(
            "/embed/workbooks/sales?jwt={}",
            app.token().email("kim@acme.example").sign()
        )))
        .header("Cookie", &issued)
        .send()
        .await
        .unwrap();
    let again = session_cookie(&res).unwrap();
    assert_ne!(value_of(&again), value_of(&issued));
    assert_eq!(me_email(&app, "sales", &again).await, "kim@acme.example");
    assert_eq!(me_email(&app, "sales", &issued).await, "ana@acme.example");
}

#[tokio::test]
async fn a_session_cookie_from_another_gateway_is_refused() {
    let (a, b) = tokio::join!(seeded_app(), seeded_app());
    let from_a = a.open(&a.token().sign(), "sales").await;
    let from_b = b.open(&b.token().sign(), "sales").await;
    // Same user id, same client, same workbook: only the keys differ.
    assert_eq!(me_email(&a, "sales", &from_a).await, "ana@acme.example");
    let before = users_snapshot(&b).await;
    assert_eq!(
        session_outcome(&b, "/embed/workbooks/sales", &from_a).await,
        "401 session_invalid"
    );
    assert_eq!(
        session_outcome(&a, "/embed/workbooks/sales", &from_b).await,
        "401 session_invalid"
    );
    assert_eq!(users_snapshot(&b).await, before);
    assert_eq!(me_email(&b, "sales", &from_b).await, "ana@acme.example");
}

// ---------------------------------------------------------------------------
// Workbook ids with path tricks
// ---------------------------------------------------------------------------

/// A handshake over a raw connection: the path goes out byte for byte.
async fn raw_handshake(app: &TestApp, raw_id: &str, token: &str) -> RawResponse {
    raw_get(
        app.port,
        &format!("/embed/workbooks/{raw_id}?jwt={token}"),
        "",
    )
    .await
}

#[tokio::test]
async fn odd_workbook_ids_are_denied_like_unknown_ones_and_never_serve_another_workbook() {
    let app = seeded_app().await;
    let token = || app.token().sign();
    let ana = app.open(&token(), "sales").await;
    let before = users_snapshot(&app).await;
    let unknown = raw_handshake(&app, "no-such-workbook", &token()).await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (403, "access_denied")
    );
    let denial = unknown.message();
    // The control: the orders content marker is what a granted user sees.
    let manager = app
        .open(
            &app.token()
                .email("max@acme.example")
                .claim("teams", json!(["acme-managers"]))
                .sign(),
            "orders",
        )
        .await;
    let orders = app
        .get_with_cookie("/embed/workbooks/orders", &manager)
        .await;
    assert!(orders.text().await.unwrap().contains(ORDERS_CONTENT));

    let long_x = "x".repeat(10_000);
    let long_orders = format!("orders{}", "a".repeat(5000));
    let ids = [
        "..",
        "../orders",
        "%2e%2e",
        "%2e%2e/orders",
        "%2E%2E%2Forders",
        ".%2e/orders",
        "%2e%2e%2forders",
        "%252e%252e%252forders",
        "%C0%AE%C0%AE/orders",
        "%u002e%u002e/orders",
        "./orders",
        "%2e/orders",
        "orders%2F",
        "orders%2f..",
        "sales%2F..%2Forders",
        "sales%5C..%5Corders",
        "orders%5C",
        "orders;",
        "orders;x=1",
        "orders%3B",
        "sales;/../orders",
        "orders%00",
        "orders%20",
        "%20orders",
        "orders%09",
        "orders%0D%0AX-Injected:%201",
        "orders%23",
        "orders%3F",
        "orders.",
        "orders%2e",
        "ORDERS",
        "Orders",
        "%D0%BErders",
        "orders%E2%80%8B",
        "%FF",
        long_x.as_str(),
        long_orders.as_str(),
    ];
    let mut wrong = Vec::new();
    for id in ids {
        let shown: String = id.chars().take(40).collect();
        let res = raw_handshake(&app, id, &token()).await;
        let same_as_unknown =
            res.status == 403 && res.code() == "access_denied" && res.message() == denial;
        if !(same_as_unknown || res.status == 404) {
            wrong.push(format!(
                "handshake on {shown:?}: {} {} {:?}",
                res.status,
                res.code(),
                res.message()
            ));
        }
        if res.body.contains(ORDERS_CONTENT) || res.header("x-injected").is_some() {
            wrong.push(format!(
                "handshake on {shown:?} leaked or injected: {}",
                res.head
            ));
        }
        if res.header("set-cookie").is_some() {
            wrong.push(format!("handshake on {shown:?} set a cookie"));
        }
        // With ana's (valid, sales) session instead of a token.
        let res = raw_get(
            app.port,
            &format!("/embed/workbooks/{id}"),
            &format!("Cookie: {ana}\r\n"),
        )
        .await;
        if ![401, 403, 404].contains(&res.status) || res.body.contains(ORDERS_CONTENT) {
            wrong.push(format!(
                "session on {shown:?}: {} {}",
                res.status,
                res.code()
            ));
        }
    }
    // Dot segments after a granted workbook: at most a session for that
    // workbook itself, never the orders content.
    for id in [
        "sales/../orders",
        "sales/%2e%2e/orders",
        "sales/..%2Forders",
        "sales/./../orders",
        "sales/pages/../../orders",
    ] {
        let res = raw_handshake(&app, id, &token()).await;
        match res.status {
            303 => {
                let set_cookie = res.header("set-cookie").unwrap_or_default();
                if !set_cookie.contains("Path=/embed/workbooks/sales;") {
                    wrong.push(format!("{id}: a session scoped elsewhere: {set_cookie}"));
                }
                let location = res.header("location").unwrap_or_default();
                if location.contains("jwt") {
                    wrong.push(format!("{id}: the token in the Location: {location}"));
                }
            }
            403 | 404 => {}
            other => wrong.push(format!("{id}: handshake {other} {}", res.code())),
        }
        let res = raw_get(
            app.port,
            &format!("/embed/workbooks/{id}"),
            &format!("Cookie: {ana}\r\n"),
        )
        .await;
        if res.status == 200 || res.body.contains(ORDERS_CONTENT) {
            wrong.push(format!(
                "{id}: the session request got {}: {}",
                res.status,
                res.body.chars().take(200).collect::<String>()
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    // Ana still has no access to orders, and no user changed.
    assert_eq!(try_on(&app, &token(), "orders").await, "403 access_denied");
    let after = users_snapshot(&app).await;
    let strip = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|u| u["email"] == "ana@acme.example")
            .map(|u| {
                json!([
                    u["id"],
                    u["teams"],
                    u["attributes"],
                    u["account_type"],
                    u["status"]
                ])
            })
            .collect()
    };
    assert_eq!(strip(&after), strip(&before));
}

// ---------------------------------------------------------------------------
// The admin API approached the wrong way
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_admin_api_refuses_sessions_query_tokens_and_mangled_authorization() {
    let app = seeded_app().await;
    let session = app.open(&app.token().sign(), "sales").await;
    let res = app
        .http
        .post(app.url("/admin/login"))
        .form(&[("token", app.admin_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "console sign-in");
    let console = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("embedgate_admin="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let teams_before = app.admin().get("/teams").await;
    let t = app.admin_token.clone();
    let new_team = json!({"name": "pwned"});
    let c = &app.http;
    let u = |p: &str| app.url(p);
    let requests: Vec<(String, reqwest::RequestBuilder)> = vec![
        (
            "an embed session".into(),
            c.get(u("/admin/api/users")).header("Cookie", &session),
        ),
        (
            "an embed session, POST".into(),
            c.post(u("/admin/api/teams"))
                .header("Cookie", &session)
                .json(&new_team),
        ),
        (
            "the console cookie".into(),
            c.get(u("/admin/api/users")).header("Cookie", &console),
        ),
        (
            "the console cookie, POST".into(),
            c.post(u("/admin/api/teams"))
                .header("Cookie", &console)
                .json(&new_team),
        ),
        (
            "the admin token as a cookie".into(),
            c.get(u("/admin/api/users"))
                .header("Cookie", format!("admin_token={t}")),
        ),
        (
            "?access_token=".into(),
            c.get(u(&format!("/admin/api/users?access_token={t}"))),
        ),
        (
            "?token=".into(),
            c.get(u(&format!("/admin/api/users?token={t}"))),
        ),
        (
            "?admin_token=".into(),
            c.get(u(&format!("/admin/api/users?admin_token={t}"))),
        ),
        (
            "?authorization=Bearer".into(),
            c.get(u(&format!("/admin/api/users?authorization=Bearer%20{t}"))),
        ),
        (
            "?access_token= on a POST".into(),
            c.post(u(&format!("/admin/api/teams?access_token={t}")))
                .json(&new_team),
        ),
        (
            "X-Api-Key".into(),
            c.get(u("/admin/api/users")).header("X-Api-Key", &t),
        ),
        (
            "X-Admin-Token".into(),
            c.get(u("/admin/api/users")).header("X-Admin-Token", &t),
        ),
        (
            "Bearer without a token".into(),
            c.get(u("/admin/api/users"))
                .header("Authorization", "Bearer"),
        ),
        (
            "Bearer and a space".into(),
            c.get(u("/admin/api/users"))
                .header("Authorization", "Bearer "),
        ),
        (
            "the token without a scheme".into(),
            c.get(u("/admin/api/users")).header("Authorization", &t),
        ),
        (
            "Basic".into(),
            c.get(u("/admin/api/users")).header(
                "Authorization",
                format!("Basic {}", STANDARD.encode(format!("{t}:"))),
            ),
        ),
        (
            "Token scheme".into(),
            c.get(u("/admin/api/users"))
                .header("Authorization", format!("Token {t}")),
        ),
        (
            "Bearer%20".into(),
            c.get(u("/admin/api/users"))
                .header("Authorization", format!("Bearer%20{t}")),
        ),
        (
            "encoded CRLF after the token".into(),
            c.get(u("/admin/api/users"))
                .header("Authorization", format!("Bearer {t}%0D%0A")),
        ),
        (
            "a second word after the token".into(),
            c.get(u("/admin/api/users"))
                .header("Authorization", format!("Bearer {t} x")),
        ),
        (
            "the token with a character dropped".into(),
            c.get(u("/admin/api/users"))
                .header("Authorization", format!("Bearer {}", &t[..t.len() - 1])),
        ),
        (
            "an embed session as the bearer".into(),
            c.get(u("/admin/api/users"))
                .header("Authorization", format!("Bearer {}", value_of(&session))),
        ),
        (
            "the console cookie as the bearer".into(),
            c.get(u("/admin/api/users"))
                .header("Authorization", format!("Bearer {}", value_of(&console))),
        ),
    ];
    for (label, request) in requests {
        let res = request.send().await.unwrap();
        let status = res.status().as_u16();
        let www = res.headers().get("www-authenticate").cloned();
        let text = res.text().await.unwrap();
        assert_eq!(status, 401, "{label}: {text}");
        assert!(text.contains("\"unauthorized\""), "{label}: {text}");
        assert_eq!(
            www.as_ref().map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{label}"
        );
        assert!(!text.contains("ana@acme.example"), "{label}: {text}");
    }
    // Line breaks around the bearer, over a raw connection.
    let raw_cases = [
        (
            "obs-fold: Bearer, CRLF, then the token",
            format!("Authorization: Bearer\r\n {t}\r\n"),
            false,
        ),
        (
            "Bearer alone, then a second Authorization with the token",
            format!("Authorization: Bearer\r\nAuthorization: {t}\r\n"),
            true,
        ),
        (
            "a bare CR and a header after the token",
            format!("Authorization: Bearer {t}\rX-Injected: 1\r\n"),
            false,
        ),
        (
            "a NUL before the token",
            format!("Authorization: Bearer \u{0}{t}\r\n"),
            false,
        ),
        (
            "a bare LF inside the token",
            format!("Authorization: Bearer {}\n{}\r\n", &t[..8], &t[8..]),
            false,
        ),
    ];
    for (label, header, parseable) in raw_cases {
        let request = format!(
            "POST /admin/api/teams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16\r\n{header}Connection: close\r\n\r\n{{\"name\":\"pwned\"}}"
        );
        let res = raw_request(app.port, request.as_bytes()).await;
        let Some(res) = res else { continue };
        if parseable {
            assert_eq!(res.status, 401, "{label}: {}", res.head);
        } else {
            assert!(
                res.status == 400 || res.status == 401,
                "{label}: {}",
                res.head
            );
        }
        assert!(res.header("x-injected").is_none(), "{label}");
    }
    // The control: the same raw request with a proper header is allowed,
    // so the refusals above are about the header.
    let request = format!(
        "GET /admin/api/teams HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n"
    );
    let res = raw_request(app.port, request.as_bytes()).await.unwrap();
    assert_eq!(res.status, 200, "{}", res.head);
    assert_eq!(
        app.admin().get("/teams").await,
        teams_before,
        "a team was created"
    );
}
