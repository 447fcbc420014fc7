//! Session requests (SPEC §2): the cookie a handshake sets, its scope,
//! lifetime and check on every request, the headers of every embed
//! response, and the slowing down of failed handshakes (§3).

use reqwest::StatusCode;
use serde_json::json;

use embedgate::clock::Clock;

use super::support::*;
use crate::helpers::*;

#[tokio::test]
async fn a_session_request_without_a_token_is_served_with_the_cookie() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    let html = ok_page(&app, "/embed/workbooks/sales", &cookie).await;
    assert_eq!(sales_rows(&html), 9);
    // And again: a session is not used up by a request.
    ok_page(&app, "/embed/workbooks/sales", &cookie).await;
}

#[tokio::test]
async fn a_request_with_neither_token_nor_cookie_is_token_missing() {
    let app = spawn_app().await;
    seed(&app).await;
    assert_error(
        app.get_json("/embed/workbooks/sales").await,
        401,
        "token_missing",
    )
    .await;
    assert_error(
        app.get_json("/embed/workbooks/sales/pages/by-region?theme=dark")
            .await,
        401,
        "token_missing",
    )
    .await;
    // Other cookies are not a session either.
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales", "other=1")
            .await,
        401,
        "token_missing",
    )
    .await;
}

#[tokio::test]
async fn a_tampered_cookie_is_session_invalid() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    ok_page(&app, "/embed/workbooks/sales", &cookie).await;
    let tampered = tamper(&cookie);
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales", &tampered)
            .await,
        401,
        "session_invalid",
    )
    .await;
    // A session cookie with nothing in it is a bad session, not a missing one.
    for empty in ["embedgate_session=", "other=1; embedgate_session=x"] {
        assert_error(
            app.get_with_cookie("/embed/workbooks/sales", empty).await,
            401,
            "session_invalid",
        )
        .await;
    }
    // The last character too.
    let mut last = cookie.clone();
    let c = last.pop().unwrap();
    last.push(if c == 'x' { 'y' } else { 'x' });
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales", &last).await,
        401,
        "session_invalid",
    )
    .await;
}

#[tokio::test]
async fn a_garbage_cookie_is_session_invalid() {
    let app = spawn_app().await;
    seed(&app).await;
    for value in [
        "embedgate_session=garbage",
        "embedgate_session=",
        "embedgate_session=eyJzaWQiOiJ4In0",
    ] {
        let res = app.get_with_cookie("/embed/workbooks/sales", value).await;
        assert_error(res, 401, "session_invalid").await;
    }
}

#[tokio::test]
async fn a_cookie_issued_for_another_workbook_is_session_invalid() {
    let app = spawn_app().await;
    seed(&app).await;
    // A manager may open both workbooks, so only the cookie's scope refuses.
    let token = app
        .token()
        .email("mo@acme.example")
        .claim("teams", json!(["acme-managers"]));
    let orders = app.open(&token.sign(), "orders").await;
    ok_page(&app, "/embed/workbooks/orders", &orders).await;
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales", &orders).await,
        401,
        "session_invalid",
    )
    .await;
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales/pages/by-region", &orders)
            .await,
        401,
        "session_invalid",
    )
    .await;
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales/_api/me", &orders)
            .await,
        401,
        "session_invalid",
    )
    .await;
}

#[tokio::test]
async fn a_session_expires_after_session_ttl_secs() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    app.clock.advance_secs(3599);
    ok_page(&app, "/embed/workbooks/sales", &cookie).await;
    app.clock.advance_secs(2);
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales", &cookie).await,
        401,
        "session_invalid",
    )
    .await;
}

#[tokio::test]
async fn the_session_length_claim_shortens_the_session_and_its_max_age() {
    let app = spawn_app().await;
    seed(&app).await;
    let token = app.token().claim("session_length", json!(600)).sign();
    let res = app.handshake(&token, "sales").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("Max-Age=600"), "{set_cookie}");
    let cookie = session_cookie(&res).unwrap();
    app.clock.advance_secs(599);
    ok_page(&app, "/embed/workbooks/sales", &cookie).await;
    app.clock.advance_secs(2);
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales", &cookie).await,
        401,
        "session_invalid",
    )
    .await;
}

#[tokio::test]
async fn the_session_length_claim_never_lengthens_the_session() {
    let app = spawn_app().await;
    seed(&app).await;
    let token = app.token().claim("session_length", json!(7200)).sign();
    let res = app.handshake(&token, "sales").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("Max-Age=3600"), "{set_cookie}");
    assert!(!set_cookie.contains("Max-Age=7200"), "{set_cookie}");
    let cookie = session_cookie(&res).unwrap();
    app.clock.advance_secs(3599);
    ok_page(&app, "/embed/workbooks/sales", &cookie).await;
    app.clock.advance_secs(2);
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales", &cookie).await,
        401,
        "session_invalid",
    )
    .await;
}

#[tokio::test]
async fn sub_paths_of_the_workbook_work_with_the_same_cookie() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    let summary = ok_page(&app, "/embed/workbooks/sales", &cookie).await;
    assert!(!summary.contains("<th>Region</th><th class=\"num\">Sales</th>"));
    let by_region = ok_page(&app, "/embed/workbooks/sales/pages/by-region", &cookie).await;
    assert!(
        by_region.contains("<th>Region</th><th class=\"num\">Sales</th>"),
        "the page is rendered with page set: {by_region}"
    );
    assert_eq!(sales_rows(&by_region), 9);
    let me = me(&app, "sales", &cookie).await;
    assert_eq!(me["email"], "ana@acme.example");
}

#[tokio::test]
async fn an_unknown_sub_path_is_not_found() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    for path in [
        "/embed/workbooks/sales/nope",
        "/embed/workbooks/sales/pages/",
        "/embed/workbooks/sales/pages/a/b",
        "/embed/workbooks/sales/_api/secrets",
    ] {
        assert_error(app.get_with_cookie(path, &cookie).await, 404, "not_found").await;
    }
}

/// Addresses under `/embed/workbooks` without a workbook id are split by
/// the gateway itself (not by a route pattern): they are `404 not_found`,
/// and a token in their query is neither checked nor consumed.
#[tokio::test]
async fn an_embed_address_without_a_workbook_id_is_not_found_and_consumes_no_token() {
    let app = spawn_app().await;
    seed(&app).await;
    let token = app.token().sign();
    for path in [
        "/embed/workbooks".to_owned(),
        "/embed/workbooks/".to_owned(),
        "/embed/workbooks//sales".to_owned(),
        format!("/embed/workbooks/?jwt={token}"),
        format!("/embed/workbooks//sales?jwt={token}"),
        "/embed/elsewhere".to_owned(),
    ] {
        let res = app.get_json(&path).await;
        assert!(res.headers().get("set-cookie").is_none(), "{path}");
        assert_error(res, 404, "not_found").await;
    }
    // The token was not consumed: it still opens the workbook, once.
    app.open(&token, "sales").await;
    assert_error(app.handshake(&token, "sales").await, 401, "token_replayed").await;
}

#[tokio::test]
async fn sessions_and_keys_survive_a_restart() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    ok_page(&app, "/embed/workbooks/sales", &cookie).await;
    let app = app.restart().await;
    let html = ok_page(&app, "/embed/workbooks/sales", &cookie).await;
    assert_eq!(sales_rows(&html), 9);
    assert_eq!(
        me(&app, "sales", &cookie).await["email"],
        "ana@acme.example"
    );
    // A tampered cookie is still refused after the restart.
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales", &tamper(&cookie))
            .await,
        401,
        "session_invalid",
    )
    .await;
}

#[tokio::test]
async fn a_deleted_users_session_reads_the_database_once_then_never() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    let ana = app.admin().user("ana@acme.example").await["id"].clone();
    app.admin().delete(&format!("/users/{ana}")).await;
    app.gateway.recorder.flush().await;
    // The first request reloads the user (it could be one another instance
    // created a moment ago) and finds it gone.
    let before = app.db_queries();
    assert_error(
        app.get_with_cookie("/embed/workbooks/sales", &cookie).await,
        401,
        "session_invalid",
    )
    .await;
    assert!(app.db_queries() > before, "the first request reloads");
    // Every later one is refused from memory.
    let after_reload = app.db_queries();
    for _ in 0..20 {
        assert_error(
            app.get_with_cookie("/embed/workbooks/sales", &cookie).await,
            401,
            "session_invalid",
        )
        .await;
    }
    app.gateway.recorder.flush().await;
    assert_eq!(
        app.db_queries(),
        after_reload,
        "a gone session's requests used the database"
    );
}

#[tokio::test]
async fn session_requests_never_touch_the_database() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    // Whatever the handshake queued for the background writers is written now.
    app.gateway.recorder.flush().await;
    let before = app.db_queries();
    let paths = [
        "/embed/workbooks/sales",
        "/embed/workbooks/sales?theme=dark",
        "/embed/workbooks/sales?tag=v2",
        "/embed/workbooks/sales/pages/by-region",
        "/embed/workbooks/sales/_api/me",
        "/embed/workbooks/sales/_api/workbooks",
        "/embed/workbooks/sales/_api/workbooks?q=sal",
        "/embed/workbooks/sales/_api/users",
        "/embed/workbooks/sales/_api/users?q=ana",
        "/embed/workbooks/sales/_api/teams",
    ];
    for i in 0..50 {
        let path = paths[i % paths.len()];
        ok_page(&app, path, &cookie).await;
    }
    app.gateway.recorder.flush().await;
    assert_eq!(
        app.db_queries(),
        before,
        "50 session requests used the database"
    );
    // The counter is live: a handshake does use the database.
    app.open(&app.token().sign(), "sales").await;
    app.gateway.recorder.flush().await;
    assert!(app.db_queries() > before, "a handshake was not counted");
}

/// Asserts the two headers every `/embed/` response carries.
fn assert_embed_headers(res: &reqwest::Response, what: &str) {
    let h = res.headers();
    assert_eq!(
        h.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{what}: Cache-Control"
    );
    assert_eq!(
        h.get("referrer-policy").map(|v| v.to_str().unwrap()),
        Some("no-referrer"),
        "{what}: Referrer-Policy"
    );
    assert!(h.get("x-request-id").is_some(), "{what}: X-Request-Id");
}

#[tokio::test]
async fn every_embed_response_is_no_store_and_no_referrer() {
    let app = spawn_app().await;
    seed(&app).await;
    let token = app.token().sign();
    let res = app.handshake(&token, "sales").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_embed_headers(&res, "303");
    let cookie = session_cookie(&res).unwrap();

    let cases: Vec<(&str, reqwest::Response, u16)> = vec![
        (
            "200 page",
            app.get_with_cookie("/embed/workbooks/sales", &cookie).await,
            200,
        ),
        (
            "200 directory",
            app.get_with_cookie("/embed/workbooks/sales/_api/me", &cookie)
                .await,
            200,
        ),
        (
            "401 missing",
            app.get_json("/embed/workbooks/sales").await,
            401,
        ),
        ("401 html", app.get("/embed/workbooks/sales").await, 401),
        (
            "401 malformed",
            app.handshake("garbage", "sales").await,
            401,
        ),
        (
            "401 session",
            app.get_with_cookie("/embed/workbooks/sales", &tamper(&cookie))
                .await,
            401,
        ),
        (
            "403 handshake",
            app.handshake(&app.token().sign(), "inventory").await,
            403,
        ),
        (
            "404 sub-path",
            app.get_with_cookie("/embed/workbooks/sales/nope", &cookie)
                .await,
            404,
        ),
        ("404 outside", app.get_json("/embed/elsewhere").await, 404),
    ];
    for (what, res, status) in cases {
        assert_eq!(res.status().as_u16(), status, "{what}");
        assert_embed_headers(&res, what);
    }
}

#[tokio::test]
async fn content_may_be_framed_only_by_the_clients_allowed_origins() {
    let app = spawn_app().await;
    seed(&app).await;
    let acme = app.open(&app.token().sign(), "sales").await;
    for path in [
        "/embed/workbooks/sales",
        "/embed/workbooks/sales/pages/by-region",
    ] {
        let res = app.get_with_cookie(path, &acme).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()["content-security-policy"],
            format!("frame-ancestors {ACME_ORIGIN}")
        );
    }
    let globex = app
        .open(&TokenBuilder::globex(app.clock.unix()).sign(), "inventory")
        .await;
    let res = app
        .get_with_cookie("/embed/workbooks/inventory", &globex)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );
}

#[tokio::test]
async fn every_response_has_a_request_id_and_only_sane_ones_are_echoed() {
    let app = spawn_app().await;
    seed(&app).await;
    for path in ["/healthz", "/embed/workbooks/sales", "/nowhere"] {
        let res = app.get(path).await;
        let id = res.headers().get("x-request-id");
        assert!(
            id.is_some_and(|v| !v.is_empty()),
            "{path} has no X-Request-Id"
        );
    }
    let admin = app
        .http
        .get(app.url("/admin/api/settings"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert!(admin.headers().get("x-request-id").is_some());

    let sane = "req-42_abc.def:7";
    let res = app
        .http
        .get(app.url("/embed/workbooks/sales"))
        .header("X-Request-Id", sane)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], sane);

    for bad in [
        &b"evil id; rm -rf /"[..],
        &b"a\tb"[..],
        &b"<script>alert(1)</script>"[..],
        &b"caf\xc3\xa9"[..],
    ] {
        let res = app
            .http
            .get(app.url("/embed/workbooks/sales"))
            .header(
                "X-Request-Id",
                reqwest::header::HeaderValue::from_bytes(bad).unwrap(),
            )
            .send()
            .await
            .unwrap();
        let got = res.headers()["x-request-id"].as_bytes().to_vec();
        assert_ne!(got, bad.to_vec(), "a malicious id was echoed");
        assert!(!got.is_empty());
        assert!(
            got.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b)),
            "the replacement id is not sane: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    let long = "x".repeat(500);
    let res = app
        .http
        .get(app.url("/embed/workbooks/sales"))
        .header("X-Request-Id", &long)
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], long.as_str());
}

#[tokio::test]
async fn a_request_id_with_a_newline_is_not_echoed() {
    let app = spawn_app().await;
    let port = app.port;
    // An obs-folded header value: the id continues on a second line.
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: abc\r\n injected\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).to_lowercase()
    })
    .await
    .unwrap();
    assert!(!answer.is_empty(), "no answer at all");
    assert!(
        !answer.contains("injected"),
        "the folded id came back: {answer}"
    );
}

fn limited_app_config(c: &mut embedgate::config::Config) {
    c.limits.failed_handshakes_per_minute = 3;
    c.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
}

async fn handshake_from(app: &TestApp, token: &str, addr: &str) -> reqwest::Response {
    app.http
        .get(app.url(&format!("/embed/workbooks/sales?jwt={token}")))
        .header("Accept", "application/json")
        .header("X-Forwarded-For", addr)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn failed_handshakes_from_one_address_are_rate_limited_for_a_minute() {
    let app = spawn_app_with(limited_app_config).await;
    seed(&app).await;
    let a = "203.0.113.7";
    let b = "203.0.113.8";
    // Three failures (a 401 and two 403s).
    assert_error(
        handshake_from(&app, "garbage", a).await,
        401,
        "token_malformed",
    )
    .await;
    let outsider = app
        .token()
        .email("eve@acme.example")
        .claim("teams", json!([]));
    let res = handshake_from(&app, &outsider.sign(), a).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let no_grant = app
        .token()
        .email("mo@acme.example")
        .claim("teams", json!(["acme-analysts"]));
    let res = app
        .http
        .get(app.url(&format!(
            "/embed/workbooks/inventory?jwt={}",
            no_grant.sign()
        )))
        .header("Accept", "application/json")
        .header("X-Forwarded-For", a)
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "access_denied").await;

    // Now even a valid token from that address is refused.
    let res = handshake_from(&app, &app.token().sign(), a).await;
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_error(res, 429, "rate_limited").await;
    let retry: i64 = retry
        .expect("a 429 carries Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");

    // Another address is not affected.
    let res = handshake_from(&app, &app.token().sign(), b).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // Still limited 30 s later, free once the minute has passed.
    app.clock.advance_secs(30);
    assert_error(
        handshake_from(&app, &app.token().sign(), a).await,
        429,
        "rate_limited",
    )
    .await;
    app.clock.advance_secs(31);
    let res = handshake_from(&app, &app.token().sign(), a).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn session_requests_are_not_rate_limited() {
    let app = spawn_app_with(limited_app_config).await;
    seed(&app).await;
    let a = "203.0.113.7";
    let cookie = app.open(&app.token().sign(), "sales").await;
    for _ in 0..3 {
        assert_error(
            handshake_from(&app, "garbage", a).await,
            401,
            "token_malformed",
        )
        .await;
    }
    assert_error(
        handshake_from(&app, &app.token().sign(), a).await,
        429,
        "rate_limited",
    )
    .await;
    let res = app
        .http
        .get(app.url("/embed/workbooks/sales"))
        .header("Cookie", &cookie)
        .header("X-Forwarded-For", a)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let app = spawn_app_with(|c| c.limits.failed_handshakes_per_minute = 3).await;
    seed(&app).await;
    for addr in ["203.0.113.7", "203.0.113.9", "198.51.100.1"] {
        assert_error(
            handshake_from(&app, "garbage", addr).await,
            401,
            "token_malformed",
        )
        .await;
    }
    // Every request came from 127.0.0.1, whatever the header says.
    assert_error(
        handshake_from(&app, &app.token().sign(), "203.0.113.8").await,
        429,
        "rate_limited",
    )
    .await;
    assert_error(
        app.handshake(&app.token().sign(), "sales").await,
        429,
        "rate_limited",
    )
    .await;
    app.clock.advance_secs(61);
    app.open(&app.token().sign(), "sales").await;
}

#[tokio::test]
async fn addresses_prepended_to_x_forwarded_for_do_not_escape_the_limit() {
    let app = spawn_app_with(limited_app_config).await;
    seed(&app).await;
    // The trusted proxy appends the real client (203.0.113.7); whatever
    // the client wrote before it is not believed.
    for i in 1..=3 {
        let chain = format!("198.51.100.{i}, 203.0.113.7");
        assert_error(
            handshake_from(&app, "garbage", &chain).await,
            401,
            "token_malformed",
        )
        .await;
    }
    assert_error(
        handshake_from(&app, &app.token().sign(), "198.51.100.99, 203.0.113.7").await,
        429,
        "rate_limited",
    )
    .await;
    assert_error(
        handshake_from(&app, &app.token().sign(), "203.0.113.7").await,
        429,
        "rate_limited",
    )
    .await;
}
