//! Operations endpoints (SPEC §10) and the gateway's public keys.

use reqwest::Method;
use serde_json::Value;

use super::support::*;
use crate::helpers::*;

#[tokio::test]
async fn healthz_and_readyz_answer_200_without_a_token() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
    }
}

/// The value of the sample line `name{labels}` (labels in any order).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, r)) => (m, r.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            if all { value.parse().ok() } else { None }
        })
        .next()
}

#[tokio::test]
async fn metrics_count_handshakes_by_outcome_and_code() {
    let app = spawn_app().await;
    seed(&app).await;
    app.open(&app.token().sign(), "sales").await;
    for _ in 0..2 {
        let bad = app
            .token()
            .secret("nope-nope-nope-nope-nope-nope-nope")
            .sign();
        handshake_fails(&app, &bad, "sales", 401, "token_bad_signature").await;
    }
    handshake_fails(
        &app,
        &app.token().email("zed@acme.example").sign(),
        "inventory",
        403,
        "access_denied",
    )
    .await;

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = res.text().await.unwrap();
    assert_eq!(
        sample(
            &text,
            "embedgate_handshakes_total",
            &[("outcome", "denied"), ("code", "token_bad_signature")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "embedgate_handshakes_total",
            &[("outcome", "denied"), ("code", "access_denied")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "embedgate_handshakes_total",
            &[("outcome", "allowed")]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("embedgate_request_duration_seconds"),
        "latency histogram in {text}"
    );
    assert!(
        text.contains("# TYPE embedgate_request_duration_seconds histogram"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "embedgate_active_sessions", &[]),
        Some(1.0),
        "{text}"
    );
    // The session expires with the clock.
    app.clock.advance_secs(3600 + 120);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        sample(&text, "embedgate_active_sessions", &[]),
        Some(0.0),
        "{text}"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_a_sent_one() {
    let app = spawn_app().await;
    seed(&app).await;
    let mut generated = Vec::new();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/jwks.json",
        "/admin/api/settings",
        "/embed/workbooks/sales",
        "/no/such/page",
    ] {
        let res = app.get(path).await;
        let id = res
            .headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{path} has no X-Request-Id"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!id.is_empty(), "{path}");
        generated.push(id);

        let res = app
            .http
            .get(app.url(path))
            .header("X-Request-Id", "trace-abc-123")
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["x-request-id"], "trace-abc-123", "{path}");
    }
    let mut unique = generated.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        generated.len(),
        "ids are unique: {generated:?}"
    );
    // Also on the admin API with a token, and on a handshake.
    let res = app.admin().send(Method::GET, "/teams", None).await;
    assert!(res.headers().get("x-request-id").is_some());
    let res = app.handshake(&app.token().sign(), "sales").await;
    assert_eq!(res.status(), 303);
    assert!(res.headers().get("x-request-id").is_some());
}

#[tokio::test]
async fn the_request_id_of_a_handshake_is_in_its_audit_entry() {
    let app = spawn_app().await;
    seed(&app).await;
    let res = app
        .http
        .get(app.url(&format!(
            "/embed/workbooks/sales?jwt={}",
            app.token().sign()
        )))
        .header("X-Request-Id", "handshake-req-7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let entries = app.admin().audit("event=handshake").await;
    assert_eq!(entries[0]["request_id"], "handshake-req-7", "{entries:?}");
}

#[tokio::test]
async fn the_jwks_has_one_public_p256_key_and_no_private_part() {
    let app = spawn_app().await;
    let res = app.get("/.well-known/jwks.json").await;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let jwks: Value = res.json().await.unwrap();
    let keys = jwks["keys"].as_array().expect("a keys array");
    assert!(!keys.is_empty(), "{jwks}");
    for key in keys {
        assert_eq!(key["kty"], "EC", "{key}");
        assert_eq!(key["crv"], "P-256", "{key}");
        assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()), "{key}");
        assert!(key["x"].as_str().is_some_and(|k| !k.is_empty()), "{key}");
        assert!(key["y"].as_str().is_some_and(|k| !k.is_empty()), "{key}");
        assert!(key.get("d").is_none(), "no private part: {key}");
        if let Some(alg) = key.get("alg") {
            assert_eq!(alg, "ES256");
        }
    }
    // The key survives a restart.
    let app = app.restart().await;
    let again: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, jwks);
}

#[tokio::test]
async fn the_openapi_document_is_public_and_describes_every_admin_route() {
    let app = spawn_app().await;
    let res = admin_without_bearer(&app, Method::GET, "/openapi.json", &[], None).await;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let doc: Value = res.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert!(
        doc["paths"]["/admin/api/clients/{client_id}/rotate"]["post"].is_object(),
        "rotate is documented"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // Every documented operation is routed: with the admin token and
    // parameters naming nothing, each answers one of its documented
    // statuses (never the admin API's "no such endpoint" 404 or a 405).
    // Nothing exists, so nothing changes.
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let mut concrete = path.strip_prefix("/admin/api").unwrap().to_owned();
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] != "path" {
                    continue;
                }
                let name = p["name"].as_str().unwrap();
                let value = if p["schema"]["type"] == "integer" {
                    "999999".to_owned()
                } else {
                    format!("no-such-{name}")
                };
                concrete = concrete.replace(&format!("{{{name}}}"), &value);
            }
            let body = op.get("requestBody").map(|_| serde_json::json!({}));
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = app.admin().send(method.clone(), &concrete, body).await;
            let status = res.status().as_u16().to_string();
            let text = res.text().await.unwrap();
            assert!(
                op["responses"].get(&status).is_some(),
                "{method} {concrete}: {status} is not documented; {text}"
            );
            assert!(
                !text.contains("There is no such admin API endpoint"),
                "{method} {concrete} is not routed"
            );
        }
    }
    assert_eq!(operations, 42);
}

/// Whether an embed request is a handshake is decided once, where the query
/// is parsed: the `:jwt` alias is one, a parameter that merely ends in `jwt`
/// is not.
#[tokio::test]
async fn latency_is_counted_by_the_kind_the_embed_handler_decides() {
    let app = spawn_app().await;
    seed(&app).await;
    let count = |text: &str, kind: &str| {
        sample(
            text,
            "embedgate_request_duration_seconds_count",
            &[("kind", kind)],
        )
        .unwrap_or(0.0)
    };
    let before = app.get("/metrics").await.text().await.unwrap();

    let token = app.token().sign();
    let res = app
        .get_json(&format!("/embed/workbooks/sales?:jwt={token}"))
        .await;
    assert_eq!(res.status(), 303);
    let cookie = session_cookie(&res).expect("a session cookie");
    let page = app
        .get_with_cookie("/embed/workbooks/sales?xjwt=1", &cookie)
        .await;
    assert_eq!(page.status(), 200);

    let after = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        count(&after, "handshake") - count(&before, "handshake"),
        1.0,
        "{after}"
    );
    assert_eq!(
        count(&after, "session") - count(&before, "session"),
        1.0,
        "{after}"
    );
}
