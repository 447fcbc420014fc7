//! Cluster mode (SPEC §7): several gateway instances on one PostgreSQL
//! database. A `jti` used on one is replayed on every other, sessions issued
//! by one are accepted by all, and a change made through any instance
//! reaches the in-memory policy of the others (LISTEN/NOTIFY, with a full
//! reload after the listening connection was lost).
//!
//! Each test creates its own database; without `EMBEDGATE_TEST_POSTGRES_URL`
//! each test says it was skipped and returns.

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::pg::*;
use crate::helpers::*;

const SALES: &str = "/embed/workbooks/sales";

/// A session request on `app` for `path`: `(status, code)`.
async fn session_answer(app: &TestApp, path: &str, cookie: &str) -> (u16, String) {
    answer(app.get_with_cookie(path, cookie).await).await
}

async fn user_id(app: &TestApp, email: &str) -> i64 {
    app.admin().user(email).await["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no user {email}"))
}

/// Sends the same handshake URL `per_instance` times to each of `a` and `b`
/// at the same moment; returns `(instance, status, code, cookie)` per request.
async fn concurrent_handshakes(
    a: &TestApp,
    b: &TestApp,
    paths: Vec<(usize, String)>,
) -> Vec<(usize, u16, String)> {
    let barrier = Arc::new(Barrier::new(paths.len()));
    let mut set = JoinSet::new();
    for (instance, path) in paths {
        let url = if instance == 0 {
            a.url(&path)
        } else {
            b.url(&path)
        };
        let http = if instance == 0 {
            a.http.clone()
        } else {
            b.http.clone()
        };
        let barrier = Arc::clone(&barrier);
        set.spawn(async move {
            barrier.wait().await;
            let res = get_json_from(http, url).await;
            let (status, code) = answer(res).await;
            (instance, status, code)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

// ---------------------------------------------------------------------------
// One-time tokens and sessions across instances
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_jti_used_on_one_instance_is_replayed_on_the_other() {
    let Some(c) = cluster("a_jti_used_on_one_instance_is_replayed_on_the_other").await else {
        return;
    };
    let token = c.a.token().sign();
    c.a.open(&token, "sales").await;
    assert_error(c.b.handshake(&token, "sales").await, 401, "token_replayed").await;

    // The other way round.
    let token = c.b.token().sign();
    c.b.open(&token, "sales").await;
    assert_error(c.a.handshake(&token, "sales").await, 401, "token_replayed").await;

    // Whatever the first use's outcome: a refused (403) first use on A
    // consumed the jti for B too.
    let token = c.a.token().sign();
    assert_error(
        c.a.handshake(&token, "inventory").await,
        403,
        "access_denied",
    )
    .await;
    assert_error(c.b.handshake(&token, "sales").await, 401, "token_replayed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_uses_spread_over_two_instances_give_exactly_one_303() {
    let Some(c) =
        cluster("twenty_concurrent_uses_spread_over_two_instances_give_exactly_one_303").await
    else {
        return;
    };
    let builder = c.a.token();
    let jti = builder.claims["jti"].as_str().unwrap().to_owned();
    let token = builder.sign();
    let path = format!("{SALES}?jwt={token}");
    let paths = (0..20).map(|i| (i % 2, path.clone())).collect();
    let results = concurrent_handshakes(&c.a, &c.b, paths).await;
    let winners: Vec<_> = results.iter().filter(|r| r.1 == 303).collect();
    assert_eq!(winners.len(), 1, "exactly one use succeeds: {results:?}");
    eprintln!(
        "the one 303 came from instance {}",
        ["A", "B"][winners[0].0]
    );
    for r in results.iter().filter(|r| r.1 != 303) {
        assert_eq!(
            (r.1, r.2.as_str()),
            (401, "token_replayed"),
            "every other use is a replay: {results:?}"
        );
    }
    assert_eq!(
        c.db.count("SELECT COUNT(*) FROM used_jtis WHERE jti = $1", &jti)
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_issued_by_one_instance_is_accepted_by_the_other() {
    let Some(c) = cluster("a_session_issued_by_one_instance_is_accepted_by_the_other").await else {
        return;
    };
    for (issuer, other) in [(&c.a, &c.b), (&c.b, &c.a)] {
        let cookie = issuer.open(&issuer.token().sign(), "sales").await;
        let page = other.get_with_cookie(SALES, &cookie).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("9 sales"), "{html}");
        let me: serde_json::Value = other
            .get_with_cookie(&format!("{SALES}/_api/me"), &cookie)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["email"], "ana@acme.example");
        assert_eq!(me["teams"], json!(["acme-analysts"]));
    }

    // Control: an instance with other keys refuses the same cookie, so the
    // acceptance above comes from the shared keys folder.
    let cookie = c.a.open(&c.a.token().sign(), "sales").await;
    let other_keys = tempfile::tempdir().unwrap();
    let stranger = node(&c.db.url, other_keys.path()).await;
    assert_error(
        stranger.get_with_cookie(SALES, &cookie).await,
        401,
        "session_invalid",
    )
    .await;
}

/// The browser follows A's `303` at once, and a load balancer may send that
/// request to B before B has applied A's announcement. To make that moment
/// certain, the test holds B's policy write lock (which B's change feed
/// needs to apply anything) from before `issue` runs on A until B answered
/// (or for 2 s at most, then releases it and waits for the answer, so that
/// a gateway that refreshes under that lock is not mistaken for a broken
/// one). Returns B's answer to the session request.
async fn first_request_on_b_before_it_applied_the_change(
    c: &Cluster,
    issue: impl AsyncFnOnce() -> (String, String),
) -> (u16, String) {
    let guard = c.b.gateway.policy.write_lock().await;
    let (path, cookie) = issue().await;
    let http = c.b.http.clone();
    let url = c.b.url(&path);
    let mut request = tokio::spawn(async move {
        let res = http
            .get(url)
            .header("Cookie", cookie)
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.text().await.unwrap_or_default())
    });
    let (status, body) =
        match tokio::time::timeout(std::time::Duration::from_secs(2), &mut request).await {
            Ok(done) => {
                drop(guard);
                done.unwrap()
            }
            Err(_) => {
                drop(guard);
                request.await.unwrap()
            }
        };
    eprintln!("B's first answer to A's fresh session: {status} {body}");
    let code = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_for_a_user_its_handshake_created_is_accepted_by_the_other_instance_at_once() {
    let Some(c) = cluster(
        "a_session_for_a_user_its_handshake_created_is_accepted_by_the_other_instance_at_once",
    )
    .await
    else {
        return;
    };
    let got = first_request_on_b_before_it_applied_the_change(&c, async || {
        let token = c.a.token().email("nina@acme.example").sign();
        (SALES.to_owned(), c.a.open(&token, "sales").await)
    })
    .await;
    assert_eq!(
        got,
        (200, String::new()),
        "SPEC §7: a session issued by one instance is accepted by all"
    );
}

/// The users a batch of first handshakes created on A reach B's policy by
/// the change feed alone, with their teams: B serves no request meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_created_by_first_handshakes_on_one_instance_reach_the_others_policy() {
    let Some(c) =
        cluster("users_created_by_first_handshakes_on_one_instance_reach_the_others_policy").await
    else {
        return;
    };
    let emails: Vec<String> = (0..20).map(|i| format!("new{i}@acme.example")).collect();
    let paths = emails
        .iter()
        .map(|e| {
            let token = c.a.token().email(e).sign();
            (0, format!("/embed/workbooks/sales?jwt={token}"))
        })
        .collect();
    // At once, so that A's writer creates them in batches of several.
    let answers = concurrent_handshakes(&c.a, &c.b, paths).await;
    assert!(answers.iter().all(|(_, s, _)| *s == 303), "{answers:?}");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let missing = loop {
        let missing: Vec<&String> = emails
            .iter()
            .filter(|e| c.b.gateway.policy.read().user_by_email(e).is_none())
            .collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(missing.is_empty(), "B never heard of {missing:?}");
    for e in &emails {
        let on_a = c.a.gateway.policy.read().user_by_email(e).cloned().unwrap();
        let on_b = c.b.gateway.policy.read().user_by_email(e).cloned().unwrap();
        assert_eq!(on_b.id, on_a.id, "{e}");
        assert_eq!(on_b.team_ids, on_a.team_ids, "{e}: the memberships");
        assert!(!on_b.team_ids.is_empty(), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_issued_after_revoke_sessions_is_accepted_by_the_other_instance_at_once() {
    let Some(c) =
        cluster("a_session_issued_after_revoke_sessions_is_accepted_by_the_other_instance_at_once")
            .await
    else {
        return;
    };
    let id = user_id(&c.a, "ana@acme.example").await;
    let got = first_request_on_b_before_it_applied_the_change(&c, async || {
        c.a.admin()
            .expect(
                Method::POST,
                &format!("/users/{id}/revoke-sessions"),
                None,
                204,
            )
            .await;
        (
            SALES.to_owned(),
            c.a.open(&c.a.token().sign(), "sales").await,
        )
    })
    .await;
    assert_eq!(
        got,
        (200, String::new()),
        "SPEC §7: a session issued by one instance is accepted by all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_whose_handshake_added_a_team_is_accepted_by_the_other_instance_at_once() {
    let Some(c) =
        cluster("a_session_whose_handshake_added_a_team_is_accepted_by_the_other_instance_at_once")
            .await
    else {
        return;
    };
    // ana (acme-analysts) gains acme-managers, which may see `orders`.
    let got = first_request_on_b_before_it_applied_the_change(&c, async || {
        let token =
            c.a.token()
                .claim("teams", json!(["acme-analysts", "acme-managers"]))
                .sign();
        (
            "/embed/workbooks/orders".to_owned(),
            c.a.open(&token, "orders").await,
        )
    })
    .await;
    assert_eq!(
        got,
        (200, String::new()),
        "SPEC §7: a session issued by one instance is accepted by all"
    );
}

// ---------------------------------------------------------------------------
// Revocation reaches every instance
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoking_a_users_sessions_on_one_instance_ends_them_on_the_other() {
    let Some(c) = cluster("revoking_a_users_sessions_on_one_instance_ends_them_on_the_other").await
    else {
        return;
    };
    let cookie = c.b.open(&c.b.token().sign(), "sales").await;
    assert_eq!(session_answer(&c.b, SALES, &cookie).await.0, 200);
    assert_eq!(session_answer(&c.a, SALES, &cookie).await.0, 200);
    let id = user_id(&c.a, "ana@acme.example").await;

    c.a.admin()
        .expect(
            Method::POST,
            &format!("/users/{id}/revoke-sessions"),
            None,
            204,
        )
        .await;
    // At once on the instance that made the change…
    assert_error(
        c.a.get_with_cookie(SALES, &cookie).await,
        401,
        "session_invalid",
    )
    .await;
    // …and within the deadline on the other.
    eventually(
        "revoke-sessions on A reaches B",
        PROPAGATION_DEADLINE,
        async || {
            expect_answer(
                session_answer(&c.b, SALES, &cookie).await,
                401,
                "session_invalid",
            )
        },
    )
    .await;
    // A new session still works on B.
    let fresh = c.b.open(&c.b.token().sign(), "sales").await;
    assert_eq!(session_answer(&c.b, SALES, &fresh).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deactivating_a_user_on_one_instance_refuses_its_session_on_the_other() {
    let Some(c) =
        cluster("deactivating_a_user_on_one_instance_refuses_its_session_on_the_other").await
    else {
        return;
    };
    let cookie = c.b.open(&c.b.token().sign(), "sales").await;
    assert_eq!(session_answer(&c.b, SALES, &cookie).await.0, 200);
    let id = user_id(&c.a, "ana@acme.example").await;

    c.a.admin()
        .patch(&format!("/users/{id}"), json!({"status": "deactivated"}))
        .await;
    assert_error(
        c.a.get_with_cookie(SALES, &cookie).await,
        403,
        "user_deactivated",
    )
    .await;
    eventually(
        "deactivation on A reaches B",
        PROPAGATION_DEADLINE,
        async || {
            expect_answer(
                session_answer(&c.b, SALES, &cookie).await,
                403,
                "user_deactivated",
            )
        },
    )
    .await;
    assert_error(
        c.b.handshake(&c.b.token().sign(), "sales").await,
        403,
        "user_deactivated",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_client_on_one_instance_ends_its_sessions_on_the_other() {
    let Some(c) = cluster("deleting_a_client_on_one_instance_ends_its_sessions_on_the_other").await
    else {
        return;
    };
    let cookie = c.b.open(&c.b.token().sign(), "sales").await;
    assert_eq!(session_answer(&c.b, SALES, &cookie).await.0, 200);

    c.a.admin().delete(&format!("/clients/{ACME_CLIENT}")).await;
    assert_error(
        c.a.get_with_cookie(SALES, &cookie).await,
        401,
        "session_invalid",
    )
    .await;
    eventually(
        "client deletion on A reaches B",
        PROPAGATION_DEADLINE,
        async || {
            expect_answer(
                session_answer(&c.b, SALES, &cookie).await,
                401,
                "session_invalid",
            )
        },
    )
    .await;
    assert_error(
        c.b.handshake(&c.b.token().sign(), "sales").await,
        401,
        "token_unknown_client",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Changes through any instance reach the other's policy
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settings_change_on_one_instance_applies_on_the_other() {
    let Some(c) = cluster("a_settings_change_on_one_instance_applies_on_the_other").await else {
        return;
    };
    c.a.admin()
        .settings(json!({"auto_provisioning": false}))
        .await;
    let mut n = 0;
    eventually(
        "auto_provisioning off on A reaches B",
        PROPAGATION_DEADLINE,
        async || {
            n += 1;
            let token = c.b.token().email(&format!("new{n}@acme.example")).sign();
            expect_answer(
                answer(c.b.handshake(&token, "sales").await).await,
                403,
                "user_not_provisioned",
            )
        },
    )
    .await;

    // And back on, through B this time.
    c.b.admin()
        .settings(json!({"auto_provisioning": true}))
        .await;
    eventually(
        "auto_provisioning on through B reaches A",
        PROPAGATION_DEADLINE,
        async || {
            n += 1;
            let token = c.a.token().email(&format!("new{n}@acme.example")).sign();
            expect_answer(answer(c.a.handshake(&token, "sales").await).await, 303, "")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grant_created_or_deleted_on_one_instance_applies_on_the_other() {
    let Some(c) = cluster("a_grant_created_or_deleted_on_one_instance_applies_on_the_other").await
    else {
        return;
    };
    let orders = "/embed/workbooks/orders";
    assert_error(
        c.b.handshake(&c.b.token().sign(), "orders").await,
        403,
        "access_denied",
    )
    .await;

    let grant =
        c.a.admin()
            .post(
                "/grants",
                json!({"team": "acme-analysts", "workbook": "orders", "level": "view"}),
            )
            .await;
    let mut cookie = None;
    eventually(
        "a grant created on A reaches B",
        PROPAGATION_DEADLINE,
        async || {
            let res = c.b.handshake(&c.b.token().sign(), "orders").await;
            if res.status() == 303 {
                cookie = session_cookie(&res);
                Ok(())
            } else {
                Err(format!("{:?}", answer(res).await))
            }
        },
    )
    .await;
    let cookie = cookie.expect("a session cookie");
    assert_eq!(session_answer(&c.b, orders, &cookie).await.0, 200);

    c.a.admin()
        .delete(&format!("/grants/{}", grant["id"]))
        .await;
    eventually(
        "a grant deleted on A reaches B",
        PROPAGATION_DEADLINE,
        async || {
            expect_answer(
                session_answer(&c.b, orders, &cookie).await,
                403,
                "access_denied",
            )
        },
    )
    .await;
    assert_error(
        c.b.handshake(&c.b.token().sign(), "orders").await,
        403,
        "access_denied",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_membership_change_on_one_instance_applies_on_the_other() {
    let Some(c) = cluster("a_membership_change_on_one_instance_applies_on_the_other").await else {
        return;
    };
    let cookie = c.b.open(&c.b.token().sign(), "sales").await;
    let id = user_id(&c.a, "ana@acme.example").await;

    c.a.admin()
        .patch(&format!("/users/{id}"), json!({"teams": ["staff"]}))
        .await;
    eventually(
        "a user's teams changed on A reach B (removed)",
        PROPAGATION_DEADLINE,
        async || {
            expect_answer(
                session_answer(&c.b, SALES, &cookie).await,
                403,
                "access_denied",
            )
        },
    )
    .await;

    c.a.admin()
        .patch(&format!("/users/{id}"), json!({"teams": ["acme-analysts"]}))
        .await;
    eventually(
        "a user's teams changed on A reach B (added back)",
        PROPAGATION_DEADLINE,
        async || expect_answer(session_answer(&c.b, SALES, &cookie).await, 200, ""),
    )
    .await;
    let me: serde_json::Value =
        c.b.get_with_cookie(&format!("{SALES}/_api/me"), &cookie)
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(me["teams"], json!(["acme-analysts"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workbook_created_on_one_instance_is_served_by_the_other() {
    let Some(c) = cluster("a_workbook_created_on_one_instance_is_served_by_the_other").await else {
        return;
    };
    assert_error(
        c.b.handshake(&c.b.token().sign(), "forecast").await,
        403,
        "access_denied",
    )
    .await;
    c.a.admin()
        .post(
            "/workbooks",
            json!({"id": "forecast", "name": "Forecast",
                   "source": {"type": "template", "template": "inventory.html", "dataset": "inventory.csv"}}),
        )
        .await;
    c.a.admin()
        .post(
            "/grants",
            json!({"team": "acme-analysts", "workbook": "forecast", "level": "view"}),
        )
        .await;
    let mut cookie = None;
    eventually(
        "a workbook (and its grant) created on A reach B",
        PROPAGATION_DEADLINE,
        async || {
            let res = c.b.handshake(&c.b.token().sign(), "forecast").await;
            if res.status() == 303 {
                cookie = session_cookie(&res);
                Ok(())
            } else {
                Err(format!("{:?}", answer(res).await))
            }
        },
    )
    .await;
    let page =
        c.b.get_with_cookie("/embed/workbooks/forecast", &cookie.unwrap())
            .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Widgets"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_created_on_one_instance_is_accepted_by_the_other() {
    let Some(c) = cluster("a_client_created_on_one_instance_is_accepted_by_the_other").await else {
        return;
    };
    const INITECH: &str = "initech-host";
    const SECRET: &str = "initech-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
    let token = |app: &TestApp| {
        TokenBuilder::new(INITECH, SECRET, app.clock.unix())
            .email("ivan@initech.example")
            .claim("teams", json!(["staff"]))
            .sign()
    };
    c.a.admin()
        .post(
            "/grants",
            json!({"team": "staff", "workbook": "inventory", "level": "view"}),
        )
        .await;
    assert_error(
        c.b.handshake(&token(&c.b), "inventory").await,
        401,
        "token_unknown_client",
    )
    .await;

    c.a.admin()
        .post(
            "/clients",
            json!({"client_id": INITECH, "name": "Initech host", "secret": SECRET}),
        )
        .await;
    eventually(
        "a client created on A reaches B",
        PROPAGATION_DEADLINE,
        async || {
            expect_answer(
                answer(c.b.handshake(&token(&c.b), "inventory").await).await,
                303,
                "",
            )
        },
    )
    .await;
}

use embedgate::clock::Clock;

// ---------------------------------------------------------------------------
// A lost listening connection: reconnect, then reload everything
// ---------------------------------------------------------------------------

/// The id of acme-analysts' grant on the published `sales`, read in SQL.
async fn sales_grant_id(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT g.id FROM grants g JOIN teams t ON t.id = g.team_id \
         WHERE t.name = 'acme-analysts' AND g.workbook_id = 'sales' AND g.tag IS NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Writes straight into the database, as no instance would: no NOTIFY.
async fn revoke_sales_grant_in_sql(db: &TestDb) {
    let id = sales_grant_id(db).await;
    let done = sqlx::query("DELETE FROM grants WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    sqlx::query(
        "INSERT INTO settings (id, document) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET document = excluded.document",
    )
    .bind(
        json!({"auto_provisioning": false, "default_account_type": "Viewer",
               "company_separation": {"enabled": false, "attribute": "company"}})
        .to_string(),
    )
    .execute(&db.pool)
    .await
    .unwrap();
}

async fn assert_direct_changes_applied(b: &TestApp, cookie: &str, what: &str) {
    eventually(what, RELOAD_DEADLINE, async || {
        expect_answer(session_answer(b, SALES, cookie).await, 403, "access_denied")
    })
    .await;
    // The same reload brought the settings written in SQL.
    let token = b.token().email("late@acme.example").sign();
    assert_error(
        b.handshake(&token, "sales").await,
        403,
        "user_not_provisioned",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missed_notification_is_repaired_after_the_listening_connection_is_lost() {
    let Some(c) =
        cluster("a_missed_notification_is_repaired_after_the_listening_connection_is_lost").await
    else {
        return;
    };
    let cookie = c.b.open(&c.b.token().sign(), "sales").await;

    // Changes written directly in SQL: nobody announces them. Written just
    // before the listeners are cut (they reconnect within milliseconds, so
    // a write "while down" would race with the reload).
    revoke_sales_grant_in_sql(&c.db).await;
    // B was not told: it still serves the session from its stale policy.
    assert_eq!(session_answer(&c.b, SALES, &cookie).await.0, 200);

    // Cut the listening connections on this database (A's and B's: both
    // listen on the same channel of the same database).
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query ILIKE 'LISTEN%'",
    )
    .bind(&c.db.name)
    .fetch_all(&c.db.pool)
    .await
    .unwrap();
    eprintln!("terminated {} listening backend(s)", terminated.len());
    assert!(
        terminated.iter().any(|t| *t),
        "no listening backend was found for {}",
        c.db.name
    );

    assert_direct_changes_applied(
        &c.b,
        &cookie,
        "B reloads after its listening connection was terminated",
    )
    .await;
    // A (whose listener was cut too) reloads as well.
    eventually(
        "A reloads after its listening connection was terminated",
        RELOAD_DEADLINE,
        async || {
            expect_answer(
                session_answer(&c.a, SALES, &cookie).await,
                403,
                "access_denied",
            )
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_written_while_the_listener_cannot_reconnect_is_applied_once_it_does() {
    let Some(db) = TestDb::create(
        "a_change_written_while_the_listener_cannot_reconnect_is_applied_once_it_does",
    )
    .await
    else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let a = node(&db.url, keys.path()).await;
    seed(&a).await;
    let proxy = PgProxy::start(db.server_addr()).await;
    let b = node(&db.url_through(proxy.port), keys.path()).await;
    let cookie = b.open(&b.token().sign(), "sales").await;

    // B's database connections (its listener included) are cut and cannot
    // come back; the change is written meanwhile, without a notification.
    proxy.off();
    revoke_sales_grant_in_sql(&db).await;
    // Sessions are served from memory: B still has the old grant.
    assert_eq!(session_answer(&b, SALES, &cookie).await.0, 200);
    proxy.on();

    assert_direct_changes_applied(&b, &cookie, "B reloads after its listener could reconnect")
        .await;
}

// ---------------------------------------------------------------------------
// Races between instances
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_handshakes_for_one_new_email_on_two_instances_create_one_user() {
    let Some(c) =
        cluster("concurrent_first_handshakes_for_one_new_email_on_two_instances_create_one_user")
            .await
    else {
        return;
    };
    let email = "newcomer@acme.example";
    let paths = (0..10)
        .map(|i| {
            let token =
                c.a.token()
                    .email(email)
                    .claim("teams", json!(["acme-managers"]))
                    .claim("first_name", json!("Nova"))
                    .sign();
            (i % 2, format!("{SALES}?jwt={token}"))
        })
        .collect();
    let results = concurrent_handshakes(&c.a, &c.b, paths).await;
    for r in &results {
        assert_eq!(
            (r.1, r.2.as_str()),
            (303, ""),
            "every handshake succeeds: {results:?}"
        );
    }
    assert_eq!(
        c.db.count("SELECT COUNT(*) FROM users WHERE email = $1", email)
            .await,
        1
    );
    c.a.gateway.recorder.flush().await;
    c.b.gateway.recorder.flush().await;
    assert_eq!(
        c.db.count(
            "SELECT COUNT(*) FROM audit WHERE email = $1 AND event = 'user_created'",
            email
        )
        .await,
        1,
        "one user_created entry"
    );
    for app in [&c.a, &c.b] {
        let user = app.admin().user(email).await;
        assert_eq!(user["teams"], json!(["acme-managers"]), "{user}");
        assert_eq!(user["first_name"], "Nova");
    }
}

// ---------------------------------------------------------------------------
// Database outage
// ---------------------------------------------------------------------------

/// One seeded instance whose database connections go through a proxy the
/// test can cut or stall (`None` without PostgreSQL). Keep every part alive
/// for the test's length.
async fn seeded_node_behind_a_proxy(
    test: &str,
) -> Option<(TestDb, PgProxy, TestApp, tempfile::TempDir)> {
    let db = TestDb::create(test).await?;
    let keys = tempfile::tempdir().unwrap();
    let proxy = PgProxy::start(db.server_addr()).await;
    let app = node(&db.url_through(proxy.port), keys.path()).await;
    seed(&app).await;
    Some((db, proxy, app, keys))
}

/// A server that accepts connections and never answers (hung, or packets
/// dropped on the way): the `jti` ledger's own connection is cut, and a new
/// one cannot be made. Handshakes must get `503` after the connect timeout
/// (5 s), not wait forever. The 30 s bound only tells a hang from an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_database_stops_answering_handshakes_get_503_not_a_hang() {
    let Some((_db, proxy, app, _keys)) = seeded_node_behind_a_proxy(
        "when_the_database_stops_answering_handshakes_get_503_not_a_hang",
    )
    .await
    else {
        return;
    };
    // The batch writers now hold their connection.
    app.open(&app.token().email("before@acme.example").sign(), "sales")
        .await;

    proxy.stall();
    // The first finds its connection cut; the second must open a new one.
    for email in ["first@acme.example", "second@acme.example"] {
        let token = app.token().email(email).sign();
        let res = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            app.handshake(&token, "sales"),
        )
        .await
        .unwrap_or_else(|_| panic!("the handshake of {email} hung"));
        assert!(res.headers().get("set-cookie").is_none());
        assert_eq!(
            answer(res).await,
            (503, "service_unavailable".to_owned()),
            "{email}"
        );
    }

    // Back: the ledger connects again.
    proxy.on();
    app.open(&app.token().email("after@acme.example").sign(), "sales")
        .await;
}

/// A server restart cuts the batch writers' idle connections; the first
/// handshake after it (a new user: the ledger's connection and the new
/// users') must not be the one that finds out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_handshake_after_a_database_restart_while_idle_succeeds() {
    let Some((_db, proxy, app, _keys)) = seeded_node_behind_a_proxy(
        "the_first_handshake_after_a_database_restart_while_idle_succeeds",
    )
    .await
    else {
        return;
    };
    app.open(&app.token().email("before@acme.example").sign(), "sales")
        .await;
    // Its audit entries and sign-in written (they follow within a second).
    app.gateway.recorder.flush().await;
    proxy.off();
    proxy.on();
    // Idle for longer than the gateway lets a batch connection go unchecked.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.open(&app.token().email("after@acme.example").sign(), "sales")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_the_database_is_unreachable_readyz_and_handshakes_answer_503_and_nothing_is_half_written()
 {
    let Some((db, proxy, app, _keys)) = seeded_node_behind_a_proxy(
        "while_the_database_is_unreachable_readyz_and_handshakes_answer_503_and_nothing_is_half_written",
    )
    .await
    else {
        return;
    };
    assert_eq!(app.get("/readyz").await.status(), 200);

    let email = "outage@acme.example";
    let builder = app.token().email(email);
    let jti = builder.claims["jti"].as_str().unwrap().to_owned();
    let token = builder.sign();

    proxy.off();
    let res = app.get_json("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.expect("a JSON error body");
    assert!(body["error"]["code"].is_string(), "{body}");
    eprintln!("readyz while down: {body}");

    let res = app.handshake(&token, "sales").await;
    assert!(res.headers().get("set-cookie").is_none());
    let (status, code) = answer(res).await;
    assert_eq!(status, 503, "handshake while the database is down: {code}");

    proxy.on();
    eventually(
        "readyz is 200 again after the database came back",
        std::time::Duration::from_secs(15),
        async || {
            let status = app.get("/readyz").await.status().as_u16();
            if status == 200 {
                Ok(())
            } else {
                Err(status.to_string())
            }
        },
    )
    .await;

    // Nothing was half-written.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM users WHERE email = $1", email)
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM used_jtis WHERE jti = $1", &jti)
            .await,
        0,
        "the jti was not consumed"
    );
    app.gateway.recorder.flush().await;
    assert!(
        app.admin()
            .audit(&format!("event=user_created&email={email}"))
            .await
            .is_empty()
    );

    // The same token works now (it has not expired), once.
    let cookie = app.open(&token, "sales").await;
    assert_eq!(session_answer(&app, SALES, &cookie).await.0, 200);
    assert_error(app.handshake(&token, "sales").await, 401, "token_replayed").await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM users WHERE email = $1", email)
            .await,
        1
    );
    app.gateway.recorder.flush().await;
    assert_eq!(
        app.admin()
            .audit(&format!("event=user_created&email={email}"))
            .await
            .len(),
        1
    );
    // And other handshakes too.
    app.open(&app.token().sign(), "sales").await;
}

/// The database goes away after a first handshake consumed its `jti` and
/// while its user waits to be written: the handshake gets `503` without a
/// session, no user is written, and once the database is back
/// the person's next handshake creates the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_handshake_whose_user_cannot_be_written_gets_503_and_writes_nothing() {
    let Some((db, proxy, app, _keys)) = seeded_node_behind_a_proxy(
        "a_first_handshake_whose_user_cannot_be_written_gets_503_and_writes_nothing",
    )
    .await
    else {
        return;
    };
    let gw = app.gateway.clone();
    let email = "cut@acme.example";
    let builder = app.token().email(email);
    let jti = builder.claims["jti"].as_str().unwrap().to_owned();
    let url = app.url(&format!("/embed/workbooks/sales?jwt={}", builder.sign()));

    // Hold the user writer off until the jti is consumed, then cut the database.
    let guard = gw.policy.write_lock().await;
    let pending = tokio::spawn(get_json_from(app.http.clone(), url));
    while db
        .count("SELECT COUNT(*) FROM used_jtis WHERE jti = $1", &jti)
        .await
        == 0
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    proxy.off();
    drop(guard);
    let res = pending.await.unwrap();
    assert!(res.headers().get("set-cookie").is_none());
    assert_eq!(answer(res).await, (503, "service_unavailable".to_owned()));

    proxy.on();
    assert_eq!(
        db.count("SELECT COUNT(*) FROM users WHERE email = $1", email)
            .await,
        0
    );
    assert!(gw.policy.read().user_by_email(email).is_none());
    app.open(&app.token().email(email).sign(), "sales").await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM users WHERE email = $1", email)
            .await,
        1
    );
}

// ---------------------------------------------------------------------------
// Housekeeping
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_jti_rows_are_purged_and_unexpired_ones_kept() {
    let Some(db) = TestDb::create("expired_jti_rows_are_purged_and_unexpired_ones_kept").await
    else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let app = node(&db.url, keys.path()).await;
    seed(&app).await;
    let skew = app.config.embed.clock_skew_secs;

    let mut expired = Vec::new();
    for _ in 0..3 {
        let builder = app.token(); // exp = NOW + 300
        expired.push((
            builder.claims["jti"].as_str().unwrap().to_owned(),
            builder.sign(),
        ));
    }
    let long = app.token().claim("exp", json!(NOW + 3000));
    let long_jti = long.claims["jti"].as_str().unwrap().to_owned();
    let long = long.sign();
    for (_, token) in &expired {
        app.open(token, "sales").await;
    }
    app.open(&long, "sales").await;
    for (jti, _) in &expired {
        assert_eq!(
            db.count("SELECT COUNT(*) FROM used_jtis WHERE jti = $1", jti)
                .await,
            1
        );
    }

    // Still within exp + skew: nothing goes.
    let now = NOW + 300 + skew;
    assert_eq!(app.gateway.store.purge_jtis(now).await.unwrap(), 0);

    app.clock.set_unix(NOW + 300 + skew + 1);
    let purged = app
        .gateway
        .store
        .purge_jtis(app.clock.unix())
        .await
        .unwrap();
    assert_eq!(purged, 3);
    for (jti, _) in &expired {
        assert_eq!(
            db.count("SELECT COUNT(*) FROM used_jtis WHERE jti = $1", jti)
                .await,
            0
        );
    }
    assert_eq!(
        db.count("SELECT COUNT(*) FROM used_jtis WHERE jti = $1", &long_jti)
            .await,
        1
    );
    // The unexpired token is still a replay; a purged one cannot come back.
    assert_error(app.handshake(&long, "sales").await, 401, "token_replayed").await;
    assert_error(
        app.handshake(&expired[0].1, "sales").await,
        401,
        "token_expired",
    )
    .await;
}
