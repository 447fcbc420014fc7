//! The handshake end to end (SPEC §2).

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn a_valid_token_redirects_without_the_token_and_sets_a_scoped_session_cookie() {
    let app = spawn_app().await;
    seed(&app).await;
    let token = app.token().sign();
    let res = app
        .get(&format!(
            "/embed/workbooks/sales?theme=dark&jwt={token}&x=1"
        ))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"],
        "/embed/workbooks/sales?theme=dark&x=1"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in [
        "embedgate_session=",
        "Path=/embed/workbooks/sales",
        "HttpOnly",
        "Secure",
        "SameSite=None",
        "Partitioned",
        "Max-Age=3600",
    ] {
        assert!(set_cookie.contains(part), "{part} missing in {set_cookie}");
    }
    assert!(!set_cookie.contains(&token));
    let cookie = session_cookie(&res).unwrap();
    let page = app
        .get_with_cookie("/embed/workbooks/sales?theme=dark&x=1", &cookie)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()["content-security-policy"],
        format!("frame-ancestors {ACME_ORIGIN}")
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("9 sales"),
        "without company separation every row shows: {html}"
    );
}
