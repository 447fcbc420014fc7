//! The test harness: `spawn_app()` builds the gateway in-process exactly as
//! production does (port 0, its own SQLite file and keys folder, a manual
//! clock), with typed helpers for the admin API and a builder for signed
//! fixture tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use embedgate::app::Application;
use embedgate::clock::{Clock, ManualClock};
use embedgate::config::{Config, DatabaseUrl};
use embedgate::gateway::Gateway;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use tempfile::TempDir;

/// 2027-01-15T08:00:00Z: the frozen "now" of the tests.
pub const NOW: i64 = 1_800_000_000;

pub const ACME_CLIENT: &str = "acme-host";
pub const ACME_SECRET: &str = "acme-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
pub const GLOBEX_CLIENT: &str = "globex-host";
pub const GLOBEX_SECRET: &str = "globex-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
pub const ACME_ORIGIN: &str = "https://app.acme.example";

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub clock: Arc<ManualClock>,
    pub gateway: Arc<Gateway>,
    pub config: Config,
    pub dir: Arc<TempDir>,
    handle: actix_web::dev::ServerHandle,
}

pub fn repo_path(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A configuration for a test in `dir`.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".into();
    config.server.workers = 2;
    config.server.shutdown_timeout_secs = 1;
    config.database.url = DatabaseUrl(format!("sqlite://{}", dir.join("embedgate.db").display()));
    config.keys.dir = dir.join("keys");
    config.content.templates_dir = repo_path("templates");
    config.content.data_dir = repo_path("data");
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut config = test_config(dir.path());
    customize(&mut config);
    start(config, dir, ManualClock::at_unix(NOW), None).await
}

async fn start(
    config: Config,
    dir: Arc<TempDir>,
    clock: Arc<ManualClock>,
    admin_token: Option<String>,
) -> TestApp {
    let app = Application::build(config.clone(), clock.clone())
        .await
        .expect("app builds");
    let port = app.port();
    let gateway = app.gateway();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let admin_token = match admin_token {
        Some(t) => t,
        None => embedgate::commands::create_admin_token(&gateway.store, "tests", NOW * 1000)
            .await
            .expect("admin token"),
    };
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        admin_token,
        clock,
        gateway,
        config,
        dir,
        handle,
    }
}

impl TestApp {
    /// Stops the server and starts a new process-equivalent on the same
    /// database and keys (nothing in memory survives).
    pub async fn restart(self) -> TestApp {
        self.handle.stop(true).await;
        let TestApp {
            config,
            dir,
            clock,
            admin_token,
            gateway,
            ..
        } = self;
        gateway.recorder.flush().await;
        gateway.store.close().await;
        drop(gateway);
        start(config, dir, clock, Some(admin_token)).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> reqwest::Response {
        get_json_from(self.http.clone(), self.url(path)).await
    }

    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("Cookie", cookie)
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap()
    }

    /// A handshake: `GET /embed/workbooks/{workbook}?jwt={token}` asking for JSON errors.
    pub async fn handshake(&self, token: &str, workbook: &str) -> reqwest::Response {
        self.get_json(&format!("/embed/workbooks/{workbook}?jwt={token}"))
            .await
    }

    /// A handshake that must succeed; returns the session cookie (`name=value`).
    pub async fn open(&self, token: &str, workbook: &str) -> String {
        let res = self.handshake(token, workbook).await;
        let status = res.status();
        let cookie = session_cookie(&res);
        if status != StatusCode::SEE_OTHER {
            panic!(
                "handshake failed with {status}: {}",
                res.text().await.unwrap_or_default()
            );
        }
        cookie.expect("the handshake set a session cookie")
    }

    pub fn admin(&self) -> Admin<'_> {
        Admin { app: self }
    }

    pub fn token(&self) -> TokenBuilder {
        TokenBuilder::new(ACME_CLIENT, ACME_SECRET, self.clock.unix())
    }

    /// How many times the database was used so far.
    pub fn db_queries(&self) -> u64 {
        self.gateway.store.query_count()
    }
}

/// The `name=value` part of the response's session cookie, if any.
/// `GET url` asking for JSON errors, with a client a task can own
/// ([`TestApp::get_json`] borrows the app).
pub async fn get_json_from(http: reqwest::Client, url: String) -> reqwest::Response {
    http.get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
}

pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("embedgate_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// Asserts a JSON error of the contract and returns its message.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> String {
    let actual = res.status().as_u16();
    let headers = res.headers().clone();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(actual, status, "unexpected status; body {body}");
    assert_eq!(body["error"]["code"], code, "unexpected body {body}");
    assert!(
        headers.get("set-cookie").is_none(),
        "an error must not set a cookie"
    );
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub struct Admin<'a> {
    app: &'a TestApp,
}

impl Admin<'_> {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.app
            .http
            .request(method, self.app.url(&format!("/admin/api{path}")))
            .bearer_auth(&self.app.admin_token)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    /// Sends and expects `status`, returning the JSON body (or null).
    pub async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let res = self.send(method.clone(), path, body).await;
        let actual = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(actual, status, "{method} {path}: {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        self.expect(reqwest::Method::GET, path, None, 200).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.expect(reqwest::Method::POST, path, Some(body), 201)
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Value {
        self.expect(reqwest::Method::PATCH, path, Some(body), 200)
            .await
    }

    pub async fn delete(&self, path: &str) {
        self.expect(reqwest::Method::DELETE, path, None, 204).await;
    }

    pub async fn settings(&self, patch: Value) -> Value {
        self.patch("/settings", patch).await
    }

    pub async fn users(&self) -> Value {
        self.get("/users").await
    }

    /// The user with this email, or `Value::Null`.
    pub async fn user(&self, email: &str) -> Value {
        let list = self.get(&format!("/users?email={email}")).await;
        list.as_array()
            .and_then(|l| l.first().cloned())
            .unwrap_or(Value::Null)
    }

    pub async fn audit(&self, query: &str) -> Vec<Value> {
        self.get(&format!("/audit?{query}"))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// The standard fixture: two customers (Acme, Globex), their teams,
/// workbooks in nested workspaces, grants at both levels, a tag, and one
/// embed client per customer with a known secret.
///
/// - `sales` (template, company field) in workspace `finance` inside `reports`
/// - `orders` in `reports`; `inventory` at the top
/// - acme-analysts: view on `sales`; acme-managers: explore on workspace `reports`
/// - globex-analysts: view on `inventory`; tag `v2` of `sales` for acme-analysts
pub struct Fixture {
    /// Used by the suites that grant on workspaces (not every binary).
    #[allow(dead_code)]
    pub reports: i64,
    pub finance: i64,
}

pub async fn seed(app: &TestApp) -> Fixture {
    let admin = app.admin();
    for team in ["acme-analysts", "acme-managers", "globex-analysts", "staff"] {
        admin
            .post(
                "/teams",
                json!({"name": team, "description": format!("{team} team")}),
            )
            .await;
    }
    let reports = admin.post("/workspaces", json!({"name": "reports"})).await["id"]
        .as_i64()
        .unwrap();
    let finance = admin
        .post("/workspaces", json!({"name": "finance", "parent": reports}))
        .await["id"]
        .as_i64()
        .unwrap();
    let sales = json!({"type": "template", "template": "sales.html", "dataset": "sales.csv", "company_field": "company"});
    admin
        .post(
            "/workbooks",
            json!({"id": "sales", "name": "Sales", "workspace": finance, "source": sales}),
        )
        .await;
    admin.post("/workbooks", json!({"id": "orders", "name": "Orders", "workspace": reports,
        "source": {"type": "template", "template": "orders.html", "dataset": "orders.csv", "company_field": "company"}})).await;
    admin
        .post(
            "/workbooks",
            json!({"id": "inventory", "name": "Inventory",
        "source": {"type": "template", "template": "inventory.html", "dataset": "inventory.csv"}}),
        )
        .await;
    admin.expect(reqwest::Method::PUT, "/workbooks/sales/tags/v2",
        Some(json!({"source": {"type": "template", "template": "sales_v2.html", "dataset": "sales.csv", "company_field": "company"}})), 200).await;
    admin
        .post(
            "/grants",
            json!({"team": "acme-analysts", "workbook": "sales", "level": "view"}),
        )
        .await;
    admin
        .post(
            "/grants",
            json!({"team": "acme-analysts", "workbook": "sales", "level": "view", "tag": "v2"}),
        )
        .await;
    admin
        .post(
            "/grants",
            json!({"team": "acme-managers", "workspace": reports, "level": "explore"}),
        )
        .await;
    admin
        .post(
            "/grants",
            json!({"team": "globex-analysts", "workbook": "inventory", "level": "view"}),
        )
        .await;
    admin
        .post(
            "/clients",
            json!({"client_id": ACME_CLIENT, "name": "Acme host", "secret": ACME_SECRET,
        "allowed_origins": [ACME_ORIGIN], "allowed_teams": ["acme-analysts", "acme-managers"]}),
        )
        .await;
    admin
        .post(
            "/clients",
            json!({"client_id": GLOBEX_CLIENT, "name": "Globex host", "secret": GLOBEX_SECRET}),
        )
        .await;
    Fixture { reports, finance }
}

/// Builds and signs embed tokens, including malformed ones.
#[derive(Clone)]
pub struct TokenBuilder {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    secret: Vec<u8>,
    alg: Algorithm,
}

static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub fn fresh_jti() -> String {
    format!(
        "jti-{}-{}",
        std::process::id(),
        JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

impl TokenBuilder {
    pub fn new(client: &str, secret: &str, now: i64) -> Self {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": client});
        let claims = json!({
            "sub": "ana@acme.example",
            "jti": fresh_jti(),
            "iat": now,
            "exp": now + 300,
            "teams": ["acme-analysts"],
            "user_attributes": {"company": "acme"},
        });
        TokenBuilder {
            header: header.as_object().unwrap().clone(),
            claims: claims.as_object().unwrap().clone(),
            secret: secret.as_bytes().to_vec(),
            alg: Algorithm::HS256,
        }
    }

    pub fn globex(now: i64) -> Self {
        Self::new(GLOBEX_CLIENT, GLOBEX_SECRET, now)
            .email("gina@globex.example")
            .claim("teams", json!(["globex-analysts"]))
            .claim("user_attributes", json!({"company": "globex"}))
    }

    pub fn email(self, email: &str) -> Self {
        self.claim("sub", json!(email))
    }

    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.header.insert(name.into(), value);
        self
    }

    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// Signs with `alg` (and sets the header's `alg` to match).
    pub fn alg(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self.header.insert("alg".into(), json!(format!("{alg:?}")));
        self
    }

    pub fn secret(mut self, secret: &str) -> Self {
        self.secret = secret.as_bytes().to_vec();
        self
    }

    pub fn kid(self, kid: &str) -> Self {
        self.header("kid", json!(kid))
    }

    pub fn signing_input(&self) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&self.header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&self.claims).unwrap())
        )
    }

    pub fn sign(&self) -> String {
        let input = self.signing_input();
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(&self.secret),
            self.alg,
        )
        .unwrap();
        format!("{input}.{sig}")
    }

    /// Raw header and payload text, signed: for duplicate keys and odd JSON.
    pub fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(&self.secret),
            self.alg,
        )
        .unwrap();
        format!("{input}.{sig}")
    }
}

/// Rows of SQLite's `used_jtis_log` and `used_jtis` in the database at `url`.
pub async fn jti_rows(url: &str) -> (i64, i64) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let mut count = async |table: &str| -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    let rows = (count("used_jtis_log").await, count("used_jtis").await);
    conn.close().await.unwrap();
    rows
}

/// Calls `probe` every 50 ms until it answers `Ok`; panics with the last
/// observation when `deadline` passes. Returns how long it took.
pub async fn eventually(
    what: &str,
    deadline: Duration,
    mut probe: impl AsyncFnMut() -> Result<(), String>,
) -> Duration {
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(()) => {
                let took = start.elapsed();
                eprintln!("eventually: {what}: {took:?}");
                return took;
            }
            Err(last) => {
                if start.elapsed() > deadline {
                    panic!("{what}: not the case after {deadline:?}; last answer: {last}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
