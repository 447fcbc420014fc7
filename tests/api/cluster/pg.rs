//! Shared helpers of the PostgreSQL tests: a fresh database per test, gateway
//! instances ("nodes") on it that share one keys folder, a TCP proxy in front
//! of PostgreSQL that can be switched off, and the deadlines of polling
//! (`helpers::eventually`).
//!
//! Without `EMBEDGATE_TEST_POSTGRES_URL` every helper that needs PostgreSQL
//! prints why the test is skipped and returns `None`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use embedgate::config::DatabaseUrl;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{TestApp, seed, spawn_app_with};

pub const ENV: &str = "EMBEDGATE_TEST_POSTGRES_URL";

/// The server URL of the tests, or `None` (and a line saying the test was
/// skipped) when the variable is not set.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            eprintln!("skipped {test}: set {ENV} to run the PostgreSQL tests");
            None
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A database of its own for one test, dropped (best effort) at the end.
pub struct TestDb {
    pub name: String,
    /// The URL of this database.
    pub url: String,
    server_url: String,
    /// A direct connection pool, for checks and writes in plain SQL.
    pub pool: PgPool,
}

fn with_database(server_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(server_url).expect("a valid EMBEDGATE_TEST_POSTGRES_URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl TestDb {
    pub async fn create(test: &str) -> Option<TestDb> {
        let server_url = server_url(test)?;
        let random: String = embedgate::crypto::random_bytes(5)
            .expect("random bytes")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let name = format!(
            "eg_{}_{}_{random}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect(&server_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {ENV}: {e}"));
        // CREATE DATABASE fails while another session uses template1: retry.
        let mut attempt = 0;
        loop {
            let sql = format!("CREATE DATABASE \"{name}\"");
            match sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
            {
                Ok(_) => break,
                Err(e) if attempt < 10 => {
                    attempt += 1;
                    eprintln!("CREATE DATABASE {name} failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("CREATE DATABASE {name}: {e}"),
            }
        }
        let _ = conn.close().await;
        let url = with_database(&server_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(3)
            .connect(&url)
            .await
            .expect("connecting to the test database");
        Some(TestDb {
            name,
            url,
            server_url,
            pool,
        })
    }

    /// `host:port` of the PostgreSQL server.
    pub fn server_addr(&self) -> String {
        let url = url::Url::parse(&self.server_url).expect("valid url");
        format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(5432)
        )
    }

    /// The URL of this database through a local port (the proxy).
    pub fn url_through(&self, port: u16) -> String {
        let mut url = url::Url::parse(&self.url).expect("valid url");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(port)).expect("port");
        url.to_string()
    }

    /// `SELECT COUNT(*)`-like query with one text parameter.
    pub async fn count(&self, sql: &'static str, param: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(param)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[allow(dead_code)] // kept for ad-hoc SQL in new cluster tests
    pub async fn execute(&self, sql: &'static str) -> u64 {
        sqlx::query(sql)
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .rows_affected()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let server = self.server_url.clone();
        let name = self.name.clone();
        // Best effort, on a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&server).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// One gateway instance on `database_url` with the keys in `keys`.
/// The failed-handshake limiter is off so that polling never meets a `429`.
pub async fn node(database_url: &str, keys: &std::path::Path) -> TestApp {
    let url = database_url.to_owned();
    let keys = keys.to_path_buf();
    spawn_app_with(move |c| {
        c.database.url = DatabaseUrl(url);
        c.database.max_connections = 4;
        c.keys.dir = keys;
        c.limits.failed_handshakes_per_minute = 0;
    })
    .await
}

/// Two instances on one fresh database, sharing `keys/`. The standard
/// fixture is seeded through `a`, and the embed user `ana@acme.example`
/// (team acme-analysts) is created by a handshake on `a`, before `b` starts:
/// `b` loads all of it at start, so both instances know the same state.
pub struct Cluster {
    pub a: TestApp,
    pub b: TestApp,
    /// The shared `keys/` folder, kept alive as long as the instances.
    _keys: TempDir,
    pub db: TestDb,
}

pub async fn cluster(test: &str) -> Option<Cluster> {
    let db = TestDb::create(test).await?;
    let keys = tempfile::tempdir().expect("keys dir");
    let a = node(&db.url, keys.path()).await;
    seed(&a).await;
    a.open(&a.token().sign(), "sales").await;
    let b = node(&db.url, keys.path()).await;
    Some(Cluster {
        a,
        b,
        _keys: keys,
        db,
    })
}

/// Status and error code (empty when the body has none) of a response.
pub async fn answer(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code)
}

pub const PROPAGATION_DEADLINE: Duration = Duration::from_secs(5);
pub const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

/// `Ok` when `(status, code)` is the expected answer.
pub fn expect_answer(got: (u16, String), status: u16, code: &str) -> Result<(), String> {
    if got.0 == status && got.1 == code {
        Ok(())
    } else {
        Err(format!("{} {}", got.0, got.1))
    }
}

// ---------------------------------------------------------------------------
// A TCP proxy in front of PostgreSQL that can be switched off
// ---------------------------------------------------------------------------

struct ProxyInner {
    on: AtomicBool,
    /// Accept new connections and never answer on them.
    stalled: AtomicBool,
    target: String,
    conns: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

/// Forwards every connection to PostgreSQL while on. Off: every forwarded
/// connection is cut and new connections are closed at once. Stalled: every
/// forwarded connection is cut and new ones are accepted and never answered
/// (a server that hangs, or packets dropped on the way).
pub struct PgProxy {
    pub port: u16,
    inner: Arc<ProxyInner>,
    accept: tokio::task::JoinHandle<()>,
}

impl PgProxy {
    pub async fn start(target: String) -> PgProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let inner = Arc::new(ProxyInner {
            on: AtomicBool::new(true),
            stalled: AtomicBool::new(false),
            target,
            conns: std::sync::Mutex::new(Vec::new()),
        });
        let shared = Arc::clone(&inner);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !shared.on.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = shared.target.clone();
                let stalled = shared.stalled.load(Ordering::SeqCst);
                let task = tokio::spawn(async move {
                    if stalled {
                        // Hold the socket open, say nothing (until aborted).
                        std::future::pending::<()>().await;
                        drop(inbound);
                    } else if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut conns = shared.conns.lock().unwrap_or_else(|p| p.into_inner());
                conns.retain(|h| !h.is_finished());
                conns.push(task.abort_handle());
                // Switched off while this one was being set up: cut it too.
                if !shared.on.load(Ordering::SeqCst) {
                    for h in conns.drain(..) {
                        h.abort();
                    }
                }
            }
        });
        PgProxy {
            port,
            inner,
            accept,
        }
    }

    pub fn off(&self) {
        self.inner.on.store(false, Ordering::SeqCst);
        let mut conns = self.inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        for h in conns.drain(..) {
            h.abort();
        }
    }

    pub fn on(&self) {
        self.inner.stalled.store(false, Ordering::SeqCst);
        self.inner.on.store(true, Ordering::SeqCst);
    }

    pub fn stall(&self) {
        self.inner.stalled.store(true, Ordering::SeqCst);
        let mut conns = self.inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        for h in conns.drain(..) {
            h.abort();
        }
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.off();
    }
}
