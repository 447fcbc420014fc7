//! Storage: every SQL statement of the gateway lives under this module.
//!
//! One dialect-neutral SQL layer over `sqlx::Any` serves both backends: the
//! statements use `$N` placeholders, `ON CONFLICT` and `RETURNING`, which
//! SQLite and PostgreSQL both understand, so there is no `if backend`
//! branch in the queries. What differs lives in one place each: the schema
//! (`migrations/sqlite`, `migrations/postgres`), the connection set-up below,
//! the statements of the batch writers (`batch`: the `jti` ledger's one
//! round trip, new users in another), the `jti` ledger's memory of
//! consumed ids on SQLite (see `jti`; one serving instance per file, see
//! [`Store::claim_instance`]), the audit log's search by email (SQLite keeps
//! that index apart, see `audit`), and the change feed of cluster mode.
//!
//! Flags are stored as integers and timestamps as Unix milliseconds, the
//! types both backends decode alike through `Any`.

mod account_types;
mod audit;
mod batch;
mod clients;
pub mod feed;
mod grants;
mod jti;
pub mod records;
mod settings;
mod teams;
mod users;
mod workbooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use crate::config::DatabaseUrl;

pub use audit::EMAIL_CHUNK_BITS;
pub use batch::{MAX_AUDIT_BATCH, MAX_JTI_BATCH, MAX_SEEN_BATCH, MAX_USER_BATCH};
pub use jti::{JTI_MEMORY_LIMIT, JTI_MEMORY_MAX, JtiUse};
pub use records::*;

/// How long getting a connection may take (from the pool, or the batch
/// writers' own) before the database counts as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often [`Store::start_checkpoints`] checkpoints SQLite's log.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("a stored value could not be read: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &e {
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation => {
                    StoreError::Conflict(db.message().to_owned())
                }
                _ => StoreError::Database(e),
            },
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            _ => StoreError::Database(e),
        }
    }
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A connection of a batch writer (see [`Store::batch_conn`]), outside
/// the pool, with the end of its last use: `None` until first used, and
/// again after a failure.
type BatchConn = Arc<tokio::sync::Mutex<Option<(sqlx::AnyConnection, Instant)>>>;

/// PostgreSQL: a batch writer's connection idle for longer than this is
/// pinged before it is used, and replaced when the ping fails. A server
/// restart (or a proxy's idle timeout) cuts idle connections; without the
/// ping the first batch after it failed (its handshakes answered `503`)
/// though the database was back. Under load a connection is never idle
/// that long, so this costs nothing there.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// The database, shared by every part of the gateway that persists state.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    queries: Arc<AtomicU64>,
    options: sqlx::any::AnyConnectOptions,
    /// The batch writers' own connection (see [`batch`]), outside the pool,
    /// opened on first use and again after a failure. A pooled connection
    /// would cost a ping to the server before each use (PostgreSQL) and one
    /// after each (both backends), and a cold page cache whenever the pool
    /// handed out another one. The lock also makes the batch writers (jti
    /// ledger, audit log, and on SQLite new users) take turns in-process:
    /// SQLite has one writer at a time, and a connection that finds the
    /// write lock taken sleeps in SQLite's busy handler (1, 2, 5, 10… ms).
    batch_conn: BatchConn,
    /// The connection of the batches of new users ([`Store::insert_users`]):
    /// on PostgreSQL one of their own, so that a batch of new users and a
    /// ledger batch run side by side on two server processes (one server
    /// process serving both was the bottleneck of provisioning handshakes:
    /// bench/README.md); on SQLite `batch_conn` itself, one writer at a time.
    users_conn: BatchConn,
    /// SQLite: the consumed ids this instance remembers (see [`jti`]).
    jti_memory: Arc<std::sync::Mutex<jti::JtiMemory>>,
    /// SQLite: the database file (`None` in memory).
    sqlite_file: Option<std::path::PathBuf>,
    /// SQLite: the lock that makes this the file's one serving instance
    /// ([`Store::claim_instance`]), held until [`Store::close`].
    instance: Arc<std::sync::Mutex<Option<std::fs::File>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// A lock of the store's in-memory state, which no panic leaves half-changed
/// (each is one assignment or one map operation).
fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The database file of a SQLite URL as [`sqlite_url`] wrote it.
fn sqlite_file(backend: Backend, url: &str) -> Option<std::path::PathBuf> {
    if backend != Backend::Sqlite {
        return None;
    }
    let rest = url.trim_start_matches("sqlite://");
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    (path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// SQLite: a file path under `sqlite://`, created with its folder when missing.
fn sqlite_url(url: &str) -> StoreResult<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:"
        && let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", parent.display())))?;
    }
    let mode = if query.contains("mode=") {
        ""
    } else {
        "mode=rwc"
    };
    let sep = if query.is_empty() || mode.is_empty() {
        ""
    } else {
        "&"
    };
    Ok(format!("sqlite://{path}?{query}{sep}{mode}"))
}

impl Store {
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> StoreResult<Store> {
        install_default_drivers();
        let (backend, url) = if url.is_postgres() {
            (Backend::Postgres, url.expose().to_owned())
        } else {
            (Backend::Sqlite, sqlite_url(url.expose())?)
        };
        let sqlite_file = sqlite_file(backend, &url);
        let options = sqlx::any::AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            // A ping before every use is a round trip to the connection's
            // thread (SQLite) or the server (PostgreSQL). A SQLite file
            // cannot hang up; a PostgreSQL server can, so there it stays.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move { configure(conn, backend).await })
            })
            .connect_with(options.clone())
            .await?;
        let batch_conn = BatchConn::default();
        let users_conn = match backend {
            Backend::Postgres => BatchConn::default(),
            Backend::Sqlite => Arc::clone(&batch_conn),
        };
        Ok(Store {
            pool,
            backend,
            queries: Arc::new(AtomicU64::new(0)),
            options,
            batch_conn,
            users_conn,
            jti_memory: Arc::new(std::sync::Mutex::new(jti::JtiMemory::new())),
            sqlite_file,
            instance: Arc::new(std::sync::Mutex::new(None)),
        })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, counted: every statement the gateway runs goes through here,
    /// which is how tests prove that session requests never touch the
    /// database.
    pub(crate) fn db(&self) -> &AnyPool {
        self.queries.fetch_add(1, Ordering::Relaxed);
        &self.pool
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(self.db().begin().await?)
    }

    /// A batch writer's connection: set up like the pool's, and on
    /// SQLite with 16 MiB of page cache (the default is 2) to keep the
    /// indexes every handshake writes in memory. Gives up after
    /// [`CONNECT_TIMEOUT`], as the pool's acquire does: a server that
    /// accepts and never answers must give handshakes a `503`, not a hang.
    async fn connect_one(&self) -> StoreResult<sqlx::AnyConnection> {
        use sqlx::ConnectOptions;
        let connect = async {
            let mut conn = self.options.connect().await?;
            configure(&mut conn, self.backend).await?;
            if self.backend == Backend::Sqlite {
                conn.execute("PRAGMA cache_size = -16384").await?;
            }
            Ok::<_, sqlx::Error>(conn)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
        }
    }

    /// On SQLite, copies the write-ahead log into the database file every
    /// 100 ms (`CHECKPOINT_EVERY`) after writes, on a connection of its own (a
    /// passive checkpoint waits for no writer and no writer waits for it):
    /// otherwise the commit that fills the log past SQLite's threshold does
    /// it, and the handshakes waiting for that commit wait for the copy too.
    /// Stops when the pool is closed.
    pub fn start_checkpoints(&self) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seen = store.query_count();
            while !store.pool.is_closed() {
                tick.tick().await;
                let now = store.query_count();
                if now == seen {
                    continue;
                }
                seen = now;
                // Not through `db()`: housekeeping, not a statement of a request.
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&store.pool)
                    .await
                {
                    tracing::debug!(error = %e, "a background WAL checkpoint failed");
                }
            }
        });
    }

    /// How many times the database was used since start.
    pub fn query_count(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Is the database reachable right now?
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(self.db()).await?;
        Ok(())
    }

    pub async fn close(&self) {
        for slot in [&self.batch_conn, &self.users_conn] {
            if let Some((conn, _)) = slot.lock().await.take() {
                let _ = sqlx::Connection::close(conn).await;
            }
        }
        self.pool.close().await;
        locked(&self.instance).take();
    }

    /// SQLite: makes this process the database file's one serving instance,
    /// or says which file another one serves. The `jti` ledger remembers
    /// consumed ids in memory (see the `jti` module), so two processes serving one
    /// file would each accept the other's tokens again; the lock (an
    /// advisory lock on `FILE.instance.lock`, released with [`Store::close`]
    /// or the process) refuses the second. Commands such as `admin-token`
    /// do not claim the file and run beside a serving instance. Nothing to
    /// do on PostgreSQL or in memory.
    pub fn claim_instance(&self) -> StoreResult<()> {
        let Some(file) = &self.sqlite_file else {
            return Ok(());
        };
        let mut path = file.clone().into_os_string();
        path.push(".instance.lock");
        let path = std::path::PathBuf::from(path);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Corrupt(format!("cannot open {}: {e}", path.display())))?;
        match lock.try_lock() {
            Ok(()) => {
                *locked(&self.instance) = Some(lock);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Conflict(format!(
                "another embedgate serves {} (it holds {}); SQLite is for one instance, \
                 several instances share PostgreSQL",
                file.display(),
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Corrupt(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

/// Every connection's set-up.
async fn configure(conn: &mut sqlx::AnyConnection, backend: Backend) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        // WAL lets readers run beside the one writer; FULL keeps a consumed
        // jti through a power cut. Checkpoints run in the background
        // (`start_checkpoints`); the commit that fills the log past 10,000
        // pages (40 MB) runs one itself only when the background falls
        // behind. Statement journals (a copy of each page a statement of a
        // batch changes, in case it must be undone alone) are kept in
        // memory, not written to a temporary file.
        conn.execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
             PRAGMA wal_autocheckpoint = 10000; PRAGMA temp_store = MEMORY;",
        )
        .await?;
    }
    Ok(())
}

/// The size classes of a batch's parts (see [`batch`]): each at most 1.5 times the one
/// before, so padding adds at most half a part's rows (a sixth on average).
/// An empty part stays empty.
const SIZE_CLASSES: [usize; 21] = [
    0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024,
];

/// How many rows a part of `rows` rows is written for: the smallest size
/// class that holds them (`rows` itself beyond the largest, which no batch
/// reaches).
fn size_class(rows: usize) -> usize {
    SIZE_CLASSES
        .iter()
        .copied()
        .find(|&class| class >= rows)
        .unwrap_or(rows)
}

/// The rows of `values`, padding included, less the padding.
const REAL_ROWS: &str = "WHERE column1 IS NOT NULL";
/// The values of padding rows.
const NO_TEXT: Option<&str> = None;
const NO_NUMBER: Option<i64> = None;

/// `rows`, then `None`s up to their [`size_class`].
fn padded<T>(rows: &[T]) -> impl Iterator<Item = Option<&T>> {
    let padding = size_class(rows.len()) - rows.len();
    rows.iter()
        .map(Some)
        .chain(std::iter::repeat_n(None, padding))
}

/// The `VALUES` list of a multi-row insert of `rows` rows of `cols` columns
/// (the values are always bound, never written into the SQL): `($1, $2),
/// ($3, $4)` for PostgreSQL; anonymous `(?, ?), (?, ?)` for SQLite, whose
/// `sqlite3_bind_parameter_name` scans every named parameter on each call:
/// with numbered names, binding a batch of n values costs n² (it was a
/// tenth of a handshake's CPU time under load), with anonymous ones n.
fn placeholders(backend: Backend, rows: usize, cols: usize) -> String {
    placeholders_from(backend, 1, rows, cols)
}

/// [`placeholders`] for values bound after `first - 1` others.
fn placeholders_from(backend: Backend, first: usize, rows: usize, cols: usize) -> String {
    let mut out = String::new();
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&placeholder(backend, first + r * cols + c));
        }
        out.push(')');
    }
    out
}

/// The `n`th bound value (from 1): `$n` for PostgreSQL, an anonymous `?`
/// for SQLite (see [`placeholders`]); SQLite binds `?`s in the order they
/// appear, so the values must be bound in that order.
fn placeholder(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Postgres => format!("${n}"),
        Backend::Sqlite => "?".to_owned(),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn flag(value: bool) -> i64 {
    i64::from(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_size_pads_to_a_class_at_most_half_again_as_large() {
        assert_eq!(size_class(0), 0, "an empty part stays empty");
        for rows in 1..=MAX_JTI_BATCH.max(MAX_AUDIT_BATCH) {
            let class = size_class(rows);
            assert!(class >= rows, "{rows} rows fit their class {class}");
            assert!(2 * class <= 3 * rows + 1, "{rows} rows pad to {class}");
            assert_eq!(padded(&vec![(); rows]).count(), class);
        }
        let distinct: std::collections::HashSet<usize> = (1..=1024).map(size_class).collect();
        assert_eq!(distinct.len(), SIZE_CLASSES.len() - 1, "a text per class");
    }

    #[test]
    fn padding_rows_follow_the_real_ones_as_none() {
        let rows = [1, 2, 3, 4, 5];
        let out: Vec<Option<&i32>> = padded(&rows).collect();
        assert_eq!(
            out,
            [Some(&1), Some(&2), Some(&3), Some(&4), Some(&5), None]
        );
    }

    #[test]
    fn placeholders_number_every_value() {
        assert_eq!(placeholders(Backend::Postgres, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(placeholders(Backend::Postgres, 1, 3), "($1, $2, $3)");
        assert_eq!(placeholders(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(placeholders_from(Backend::Postgres, 4, 1, 2), "($4, $5)");
    }

    #[test]
    fn sqlite_urls_gain_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.db");
        let url = sqlite_url(&format!("sqlite://{}", path.display())).unwrap();
        assert!(url.ends_with("x.db?mode=rwc"), "{url}");
        assert!(path.parent().unwrap().exists());
    }
}
