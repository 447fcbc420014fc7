//! The `embedgate` binary's commands (SPEC §1, §9).

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use embedgate::config::DatabaseUrl;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use super::support::*;
use crate::helpers::*;

/// The binary, run in `dir` with no `EMBEDGATE__*` variables inherited.
fn embedgate(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_embedgate"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("EMBEDGATE") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}", dir.join(file).display())
}

/// The wall clock: `embedgate sign` signs with the real time.
#[allow(clippy::disallowed_methods)]
fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign_args(base_url: &str) -> Vec<&str> {
    vec![
        "sign",
        "--client-id",
        ACME_CLIENT,
        "--secret",
        ACME_SECRET,
        "--email",
        "a@b.co",
        "--workbook",
        "sales",
        "--teams",
        "acme-analysts,acme-managers",
        "--attr",
        "company=acme",
        "--ttl-secs",
        "120",
        "--tag",
        "v2",
        "--base-url",
        base_url,
    ]
}

/// The `jwt` query parameter of a URL.
fn jwt_of(url: &str) -> String {
    let parsed = url::Url::parse(url).expect("an absolute URL");
    let tokens: Vec<String> = parsed
        .query_pairs()
        .filter(|(k, _)| k == "jwt")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(tokens.len(), 1, "one token in {url}");
    tokens[0].clone()
}

#[test]
fn sign_prints_one_url_with_the_right_claims() {
    let dir = tempfile::tempdir().unwrap();
    let before = real_now();
    let out = run(embedgate(dir.path()).args(sign_args("http://x")));
    let after = real_now();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one URL alone: {stdout:?}");
    let url = lines[0].trim();
    assert!(
        url.starts_with("http://x/embed/workbooks/sales?jwt="),
        "{url}"
    );
    assert!(url.contains("&tag=v2"), "{url}");

    let token = jwt_of(url);
    let header = jwt_part(&token, 0);
    assert_eq!(header["kid"], ACME_CLIENT, "{header}");
    assert_eq!(header["alg"], "HS256", "{header}");
    let claims = jwt_part(&token, 1);
    assert_eq!(claims["sub"], "a@b.co", "{claims}");
    assert_eq!(
        claims["teams"],
        json!(["acme-analysts", "acme-managers"]),
        "{claims}"
    );
    assert_eq!(
        claims["user_attributes"],
        json!({"company": "acme"}),
        "{claims}"
    );
    let iat = claims["iat"].as_i64().expect("integer iat");
    let exp = claims["exp"].as_i64().expect("integer exp");
    assert_eq!(exp - iat, 120, "{claims}");
    assert!(
        (before - 5..=after + 5).contains(&iat),
        "iat {iat} is the real time ({before}..{after})"
    );
    assert!(
        claims["jti"].as_str().is_some_and(|j| !j.is_empty()),
        "{claims}"
    );
    assert!(claims.get("tag").is_none(), "the tag is a URL parameter");

    // The signature is HMAC-SHA256 with the secret.
    let (input, signature) = token.rsplit_once('.').unwrap();
    let expected = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(ACME_SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    assert_eq!(signature, expected);
    assert!(URL_SAFE_NO_PAD.decode(signature).is_ok());

    // Two runs give two different jti.
    let out2 = run(embedgate(dir.path()).args(sign_args("http://x")));
    let token2 = jwt_of(text(&out2.stdout).trim());
    assert_ne!(jwt_part(&token2, 1)["jti"], claims["jti"]);
}

#[tokio::test]
async fn a_signed_url_opens_the_workbook_on_a_running_gateway() {
    let app = spawn_app().await;
    seed(&app).await;
    app.clock.set_unix(real_now());
    let dir = tempfile::tempdir().unwrap();
    let out = run(embedgate(dir.path()).args(sign_args(&app.address)));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let url = text(&out.stdout).trim().to_owned();
    assert!(url.starts_with(&app.address), "{url}");
    let res = app.http.get(&url).send().await.unwrap();
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    assert_eq!(status, 303, "{}", res.text().await.unwrap_or_default());
    assert_eq!(location.as_deref(), Some("/embed/workbooks/sales?tag=v2"));
    let user = app.admin().user("a@b.co").await;
    assert_eq!(
        sorted(&user["teams"]),
        sorted_strs(&["acme-analysts", "acme-managers"])
    );
    assert_eq!(user["attributes"], json!({"company": "acme"}));
    // The printed URL works once.
    let again = app
        .http
        .get(&url)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_error(again, 401, "token_replayed").await;
}

#[tokio::test]
async fn admin_token_create_prints_a_working_token_on_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path(), "x.db");
    let out = run(embedgate(dir.path())
        .args(["admin-token", "create", "--name", "ci"])
        .env("EMBEDGATE__DATABASE__URL", &db));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().expect("a line of output").to_owned();
    assert!(!last.is_empty());
    assert_eq!(last.trim(), last, "the token alone on the line: {last:?}");
    assert!(!last.contains(' '), "the token alone on the line: {last:?}");

    let url = db.clone();
    let app = spawn_app_with(move |c| c.database.url = DatabaseUrl(url)).await;
    let res = app
        .http
        .get(app.url("/admin/api/settings"))
        .bearer_auth(&last)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .get(app.url("/admin/api/settings"))
        .bearer_auth(format!("{last}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // A second token is different, and the first keeps working.
    let out = run(embedgate(dir.path())
        .args(["admin-token", "create", "--name", "ci-2"])
        .env("EMBEDGATE__DATABASE__URL", &db));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let second = text(&out.stdout).lines().last().unwrap().to_owned();
    assert_ne!(second, last);
    for token in [&last, &second] {
        let res = app
            .http
            .get(app.url("/admin/api/teams"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
}

#[test]
fn migrate_succeeds_on_a_fresh_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path(), "fresh.db");
    let out = run(embedgate(dir.path())
        .arg("migrate")
        .env("EMBEDGATE__DATABASE__URL", &db));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(dir.path().join("fresh.db").exists());
    // Again: nothing to do, still a success; also with JSON logs.
    let out = run(embedgate(dir.path())
        .args(["--log-format", "json", "migrate"])
        .env("EMBEDGATE__DATABASE__URL", &db));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
}

#[test]
fn migrate_reads_the_database_url_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path(), "from-file.db");
    let file = dir.path().join("custom.toml");
    std::fs::write(&file, format!("[database]\nurl = \"{db}\"\n")).unwrap();
    let out = run(embedgate(dir.path()).args(["--config", file.to_str().unwrap(), "migrate"]));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(dir.path().join("from-file.db").exists());
}

#[test]
fn an_unknown_config_key_fails_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path(), "unused.db");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nbindd = \"x\"\n").unwrap();
    let out = run(embedgate(dir.path())
        .args(["--config", file.to_str().unwrap(), "migrate"])
        .env("EMBEDGATE__DATABASE__URL", &db));
    assert!(!out.status.success(), "stdout: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bindd"), "{stderr}");
    assert!(
        !dir.path().join("unused.db").exists(),
        "nothing was migrated"
    );

    // An unknown section, and an unknown key in the environment.
    std::fs::write(&file, "[nonsense]\nx = 1\n").unwrap();
    let out = run(embedgate(dir.path())
        .args(["--config", file.to_str().unwrap(), "migrate"])
        .env("EMBEDGATE__DATABASE__URL", &db));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nonsense"),
        "{}",
        text(&out.stderr)
    );

    let out = run(embedgate(dir.path())
        .arg("migrate")
        .env("EMBEDGATE__DATABASE__URL", &db)
        .env("EMBEDGATE__SERVER__BINDD", "127.0.0.1:1"));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("bindd"), "{}", text(&out.stderr));

    // A missing explicit file is an error too.
    let out = run(embedgate(dir.path())
        .args(["--config", "does-not-exist.toml", "migrate"])
        .env("EMBEDGATE__DATABASE__URL", &db));
    assert!(!out.status.success());
}

#[test]
fn an_invalid_environment_value_fails_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path(), "unused.db");
    let out = run(embedgate(dir.path())
        .arg("migrate")
        .env("EMBEDGATE__DATABASE__URL", &db)
        .env("EMBEDGATE__SERVER__BIND", "nonsense"));
    assert!(!out.status.success(), "stdout: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("server.bind"), "{stderr}");
    assert!(
        !dir.path().join("unused.db").exists(),
        "nothing was migrated"
    );

    // The environment overrides the file.
    let file = dir.path().join("ok.toml");
    std::fs::write(&file, "[server]\nbind = \"127.0.0.1:9999\"\n").unwrap();
    let out = run(embedgate(dir.path())
        .args(["--config", file.to_str().unwrap(), "migrate"])
        .env("EMBEDGATE__DATABASE__URL", &db)
        .env("EMBEDGATE__SERVER__BIND", "nonsense"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("server.bind"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_embedgate_toml_in_the_working_directory_is_the_default_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("embedgate.toml"),
        "[server]\nbindd = \"x\"\n",
    )
    .unwrap();
    let out = run(embedgate(dir.path())
        .arg("migrate")
        .env("EMBEDGATE__DATABASE__URL", sqlite_url(dir.path(), "x.db")));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("bindd"), "{}", text(&out.stderr));
}
