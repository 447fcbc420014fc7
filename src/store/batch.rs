//! The batch writers' statements, on their own connection
//! ([`Store::on_batch_conn`]): a batch of the `jti` ledger with the audit
//! entries and the sign-ins (`last_seen_at`) recorded since the last batch,
//! written all or nothing with **one round trip** to the database; and a
//! batch of new users with their memberships ([`Store::insert_users`]), on
//! a connection of its own on PostgreSQL.
//!
//! Under load a handshake waits for its ledger batch, and each trip to the
//! database is a hand-off to another thread (SQLite's connection thread, or
//! PostgreSQL's server) that waits for a free core on a busy machine: a
//! transaction of five statements cost five such waits (measured 1.5–2 ms a
//! batch). So the whole batch is one piece of SQL, built for each backend:
//!
//! - SQLite runs several statements from one string: `BEGIN IMMEDIATE;
//!   SELECT` (which ids are taken already, one row) `; INSERT …; INSERT …;
//!   UPDATE …; COMMIT` (when any part fails, the connection is closed,
//!   which rolls back);
//! - PostgreSQL runs one statement whose data-modifying `WITH` parts insert
//!   the audit entries and update the users, and whose `SELECT` returns the
//!   ids the ledger's `INSERT … RETURNING` consumed: one implicit
//!   transaction.
//!
//! The values are always bound, in the order they appear in the text.
//!
//! **One text per size class.** The database prepares a text the first time
//! it sees it and keeps it prepared per connection (sqlx's statement cache),
//! so a batch's text must repeat: each part is written for a size class of
//! [`size_class`] rows, and the rows beyond the batch's own are bound NULL
//! and filtered out (`WHERE column1 IS NOT NULL`). Texts that varied with
//! every batch size cost SQLite a parse of the whole batch (with the audit
//! trigger's program) on every commit: 26 % of its writer thread's time
//! under handshake load (bench/README.md).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use sqlx::Arguments;
use sqlx::any::AnyArguments;

use super::feed::announce_created_users;
use super::jti::JtiPlan;
use super::users::{FIELD_COLUMNS, add, add_fields};
use super::{
    AuditRecord, Backend, BatchConn, CONNECT_TIMEOUT, IDLE_BEFORE_PING, JtiUse, NO_NUMBER, NO_TEXT,
    REAL_ROWS, Store, StoreError, StoreResult, UserFields, padded, placeholders, placeholders_from,
    size_class, to_json,
};
use crate::domain::{TeamId, UserId};

/// The most ids one batch consumes. With [`MAX_AUDIT_BATCH`] entries and
/// [`MAX_SEEN_BATCH`] sign-ins, a batch binds at most 20,996 values, each
/// part padded to its size class: 2 × 1,024 for SQLite's check of taken
/// ids, 3 × 1,536 for the ids split between the log and the index,
/// 10 × 1,024 for the entries and 4 × 1,025 for the sign-ins. That is below
/// both SQLite's (32,766) and PostgreSQL's (65,535) limits.
pub const MAX_JTI_BATCH: usize = 1024;
/// The most audit entries one batch writes.
pub const MAX_AUDIT_BATCH: usize = 1000;
/// The most sign-ins one batch writes.
pub const MAX_SEEN_BATCH: usize = 4000;
/// Sign-ins per `UPDATE`.
const SEEN_PER_UPDATE: usize = 1000;

/// The most users one [`Store::insert_users`] creates: 11 values each
/// (2,817 at most with their memberships, one JSON value whatever their
/// number; 256 is a size class, so a full batch has no padding).
pub const MAX_USER_BATCH: usize = 256;

/// The ledger's insert; on PostgreSQL its `RETURNING` names the ids it
/// consumed (on SQLite, see [`taken_jtis_sqlite`]). On
/// SQLite `OR IGNORE` rather than `ON CONFLICT … DO NOTHING`: a statement
/// that may abort half-way inside a transaction keeps a statement journal,
/// a copy of every page it changes (a random page of the primary key for
/// each id); one that ignores every conflict cannot abort, so it keeps none.
fn insert_jtis(backend: Backend, values: &str) -> String {
    const INTO: &str = "INTO used_jtis (client_id, jti, expires_at) SELECT * FROM";
    match backend {
        Backend::Sqlite => format!("INSERT OR IGNORE {INTO} (VALUES {values}) AS v {REAL_ROWS}"),
        Backend::Postgres => format!(
            "INSERT {INTO} (VALUES {values}) AS v {REAL_ROWS} \
             ON CONFLICT (client_id, jti) DO NOTHING RETURNING client_id, jti"
        ),
    }
}
/// SQLite: which of a batch's ids `used_jtis` holds already, as one JSON
/// array of `[client_id, jti]` pairs. The inserts that follow skip exactly
/// these (the batch holds the write lock from `BEGIN IMMEDIATE`), so they
/// need no `RETURNING`: a row returned is a message from SQLite's thread,
/// and each woke the batch writer (one wake per handshake, measured
/// 3.8 % of the gateway's CPU under handshake load).
fn taken_jtis_sqlite(values: &str) -> String {
    format!(
        "SELECT json_group_array(json_array(column1, column2)) FROM (VALUES {values}) \
         {REAL_ROWS} AND EXISTS (SELECT 1 FROM used_jtis u \
                                 WHERE u.client_id = column1 AND u.jti = column2)"
    )
}
/// SQLite: ids not remembered go to the log unless `used_jtis` holds them
/// (the rows of an older version, or ids consumed while the memory was
/// full). `OR IGNORE` for the statement journal, as above; the log has no
/// unique index, so nothing is ignored.
fn log_jtis_sqlite(values: &str) -> String {
    format!(
        "INSERT OR IGNORE INTO used_jtis_log (client_id, jti, expires_at) \
         SELECT column1, column2, column3 FROM (VALUES {values}) \
         {REAL_ROWS} AND NOT EXISTS (SELECT 1 FROM used_jtis u \
                           WHERE u.client_id = column1 AND u.jti = column2)"
    )
}
/// The values of one audit entry.
const AUDIT_COLUMNS: usize = 10;
const INSERT_AUDIT: &str = "INSERT INTO audit (at, event, request_id, client_id, email, \
                            workbook, outcome, code, remote_addr, note) SELECT * FROM";

impl Store {
    /// Runs `work` on the batch writers' own connection (opened on first
    /// use). When `work` fails, or is dropped half-way, the connection is
    /// closed, which rolls back whatever it left open, and the next use
    /// opens a new one.
    pub(super) async fn on_batch_conn<T>(
        &self,
        work: impl AsyncFnOnce(&mut sqlx::AnyConnection) -> Result<T, sqlx::Error>,
    ) -> StoreResult<T> {
        self.on_conn(&self.batch_conn, work).await
    }

    /// [`Store::on_batch_conn`] on the connection of the batches of new
    /// users (the same one on SQLite).
    async fn on_users_conn<T>(
        &self,
        work: impl AsyncFnOnce(&mut sqlx::AnyConnection) -> Result<T, sqlx::Error>,
    ) -> StoreResult<T> {
        self.on_conn(&self.users_conn, work).await
    }

    async fn on_conn<T>(
        &self,
        slot: &BatchConn,
        work: impl AsyncFnOnce(&mut sqlx::AnyConnection) -> Result<T, sqlx::Error>,
    ) -> StoreResult<T> {
        let mut slot = slot.lock().await;
        let used = async |taken: Option<(sqlx::AnyConnection, Instant)>| {
            let mut conn = match taken {
                Some((conn, used))
                    if self.backend == Backend::Postgres && used.elapsed() > IDLE_BEFORE_PING =>
                {
                    self.alive_or_new(conn).await?
                }
                Some((conn, _)) => conn,
                None => self.connect_one().await?,
            };
            self.queries.fetch_add(1, Ordering::Relaxed);
            let done = work(&mut conn).await?;
            Ok::<_, StoreError>((conn, done))
        };
        match used(slot.take()).await {
            Ok((conn, done)) => {
                *slot = Some((conn, Instant::now()));
                Ok(done)
            }
            Err(e) => {
                if e.is_unavailable() {
                    self.forget_idle_batch_conns();
                }
                Err(e)
            }
        }
    }

    /// Drops the batch writers' connections that are not in use: one of
    /// them found the database unreachable, and the others lead to the same
    /// server (a connection cut with this one would fail its next batch).
    fn forget_idle_batch_conns(&self) {
        for slot in [&self.batch_conn, &self.users_conn] {
            if let Ok(mut idle) = slot.try_lock() {
                idle.take();
            }
        }
    }

    /// `conn` when it answers a ping, a new connection when it was cut.
    /// A server that does not answer the ping within [`CONNECT_TIMEOUT`]
    /// is unavailable at once: connecting to it would wait as long again,
    /// and a handshake waits at most that long for the database.
    async fn alive_or_new(
        &self,
        mut conn: sqlx::AnyConnection,
    ) -> StoreResult<sqlx::AnyConnection> {
        use sqlx::Connection;
        match tokio::time::timeout(CONNECT_TIMEOUT, conn.ping()).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "a batch writer's idle connection was lost; connecting again");
                self.connect_one().await
            }
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
        }
    }

    /// Creates `users` with their memberships, all or nothing, on the batch
    /// writers' connection: one statement on PostgreSQL (its data-modifying
    /// `WITH` inserts the memberships of the users its `INSERT` created);
    /// one round trip on SQLite (`BEGIN IMMEDIATE`, the users, their
    /// memberships, one row naming the users created, `COMMIT`). Returns,
    /// for each of `users`, its new id, or `None` when its email was taken,
    /// by a stored user or by an earlier one of `users`.
    ///
    /// With `announce` (PostgreSQL, the change feed's instance name: see
    /// [`ChangeFeed::instance_if_shared`]) the same statement announces the
    /// users it created to the other instances.
    ///
    /// [`ChangeFeed::instance_if_shared`]: super::feed::ChangeFeed::instance_if_shared
    pub async fn insert_users(
        &self,
        users: &[&UserFields],
        now: i64,
        announce: Option<&str>,
    ) -> StoreResult<Vec<Option<UserId>>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        debug_assert!(users.len() <= MAX_USER_BATCH);
        // The teams of each email's first occurrence: only that one can be created.
        let mut teams: HashMap<&str, &[TeamId]> = HashMap::with_capacity(users.len());
        for u in users {
            teams.entry(u.email.as_str()).or_insert(&u.team_ids);
        }
        let backend = self.backend;
        let mut args = AnyArguments::default();
        for u in padded(users) {
            if let Some(u) = u {
                add_fields(&mut args, u)?;
                add(&mut args, 0_i64)?; // session_epoch
                add(&mut args, now)?; // created_at
                add(&mut args, now)?; // updated_at
            } else {
                for _ in FIELD_COLUMNS {
                    add(&mut args, NO_TEXT)?;
                }
                for _ in 0..3 {
                    add(&mut args, NO_NUMBER)?;
                }
            }
        }
        let insert = format!(
            "INSERT INTO users ({}, session_epoch, created_at, updated_at) \
             SELECT * FROM (VALUES {}) AS v {REAL_ROWS} \
             ON CONFLICT (email) DO NOTHING",
            FIELD_COLUMNS.join(", "),
            placeholders(backend, size_class(users.len()), FIELD_COLUMNS.len() + 3)
        );
        // The memberships of the users created: one JSON value, whatever
        // their number.
        let memberships: Vec<serde_json::Value> = teams
            .iter()
            .flat_map(|(email, ids)| {
                ids.iter()
                    .map(move |id| serde_json::json!({"email": email, "team_id": id}))
            })
            .collect();
        add(&mut args, to_json(&memberships)?)?;
        let created: Vec<(UserId, String)> = match backend {
            Backend::Postgres => {
                let memberships = args.len();
                let told = match announce {
                    Some(instance) => {
                        add(&mut args, instance)?;
                        format!(", {}", announce_created_users(args.len()))
                    }
                    None => String::new(),
                };
                let sql = format!(
                    "WITH created AS ({insert} RETURNING id, email), \
                     joined AS (INSERT INTO memberships (user_id, team_id) \
                     SELECT created.id, m.team_id FROM created \
                     JOIN json_to_recordset(${memberships}::json) AS m (email text, team_id bigint) \
                     ON m.email = created.email){told} \
                     SELECT id, email FROM created{}",
                    if announce.is_some() { ", told" } else { "" }
                );
                let q = sqlx::query_as_with(sqlx::AssertSqlSafe(sql), args);
                self.on_users_conn(async |conn| q.fetch_all(conn).await)
                    .await?
            }
            Backend::Sqlite => {
                // Under the write lock the users created are those above
                // the highest id before the insert (kept in a temporary
                // table for the statements after it), so one round trip
                // writes them, their memberships and returns them as one
                // row (a row per user was a message and a wake each).
                let sql = format!(
                    "BEGIN IMMEDIATE; \
                     CREATE TEMP TABLE IF NOT EXISTS users_mark (id INTEGER NOT NULL); \
                     DELETE FROM temp.users_mark; \
                     INSERT INTO temp.users_mark SELECT COALESCE(MAX(id), 0) FROM users; \
                     {insert}; \
                     INSERT INTO memberships (user_id, team_id) \
                     SELECT u.id, json_extract(m.value, '$.team_id') FROM json_each(?) AS m \
                     JOIN users u ON u.email = json_extract(m.value, '$.email') \
                     WHERE u.id > (SELECT id FROM temp.users_mark); \
                     SELECT json_group_array(json_array(id, email)) FROM users \
                     WHERE id > (SELECT id FROM temp.users_mark); \
                     COMMIT;"
                );
                let q = sqlx::query_scalar_with::<_, String, _>(sqlx::AssertSqlSafe(sql), args);
                let rows = self
                    .on_users_conn(async |conn| q.fetch_all(conn).await)
                    .await?;
                json_row(&rows)?.ok_or_else(|| {
                    StoreError::Corrupt("the batch of new users returned no row".into())
                })?
            }
        };
        let mut ids: HashMap<String, UserId> = created.into_iter().map(|(id, e)| (e, id)).collect();
        Ok(users.iter().map(|u| ids.remove(u.email.as_str())).collect())
    }

    /// Consumes `jtis` (see [`Store::consume_jtis`]) and writes audit
    /// `entries` and `last_seen_at = now` of the `seen` users, all or
    /// nothing, with one round trip and one commit. Returns, for each of
    /// `jtis`, whether this call consumed it.
    pub async fn write_batch(
        &self,
        jtis: &[JtiUse],
        entries: &[AuditRecord],
        seen: &[UserId],
        now: i64,
    ) -> StoreResult<Vec<bool>> {
        if jtis.is_empty() && entries.is_empty() && seen.is_empty() {
            return Ok(Vec::new());
        }
        debug_assert!(jtis.len() <= MAX_JTI_BATCH);
        debug_assert!(entries.len() <= MAX_AUDIT_BATCH);
        debug_assert!(seen.len() <= MAX_SEEN_BATCH);
        // A batch may hold the same id twice (concurrent replays): insert
        // each once; only its first occurrence may win.
        let mut distinct = HashSet::with_capacity(jtis.len());
        let unique: Vec<&JtiUse> = jtis
            .iter()
            .filter(|u| distinct.insert((u.client_id.as_str(), u.jti.as_str())))
            .collect();

        let rows = self
            .on_batch_conn(async |conn| {
                let plan = self.plan_jtis(conn, &unique).await?;
                let ids: Vec<&JtiUse> = plan.logged.iter().chain(&plan.indexed).copied().collect();
                let sql =
                    self.batch_sql(plan.logged.len(), plan.indexed.len(), entries.len(), seen);
                let args = batch_args(self.backend, &plan, &ids, entries, seen, now)
                    .map_err(|e| sqlx::Error::Encode(e.to_string().into()))?;
                let rows = match self.backend {
                    Backend::Postgres => {
                        sqlx::query_as_with::<_, (String, String), _>(
                            sqlx::AssertSqlSafe(sql),
                            args,
                        )
                        .fetch_all(&mut *conn)
                        .await
                    }
                    Backend::Sqlite => {
                        sqlx::query_scalar_with::<_, String, _>(sqlx::AssertSqlSafe(sql), args)
                            // All of them: the statements after a row run
                            // only while the rows are read.
                            .fetch_all(&mut *conn)
                            .await
                            .and_then(|rows| consumed_but(&ids, &rows))
                    }
                };
                self.settle_jtis(&plan.logged, rows.as_deref().ok());
                rows
            })
            .await?;
        let consumed: HashSet<(&str, &str)> =
            rows.iter().map(|(c, j)| (c.as_str(), j.as_str())).collect();
        let mut granted = HashSet::with_capacity(consumed.len());
        Ok(jtis
            .iter()
            .map(|u| {
                let key = (u.client_id.as_str(), u.jti.as_str());
                consumed.contains(&key) && granted.insert(key)
            })
            .collect())
    }

    /// The text of a batch of `logged` ids for SQLite's log (see
    /// [`super::jti`]), `indexed` ids for `used_jtis`, `entries` audit
    /// entries and the `seen` users, whose values are bound in that order.
    fn batch_sql(&self, logged: usize, indexed: usize, entries: usize, seen: &[UserId]) -> String {
        let backend = self.backend;
        let mut next = 1;
        // The placeholders of the next `rows` × `cols` values.
        let mut values = |rows: usize, cols: usize| {
            let text = placeholders_from(backend, next, rows, cols);
            next += rows * cols;
            text
        };
        let mut parts: Vec<String> = Vec::new();
        if backend == Backend::Sqlite && logged + indexed > 0 {
            parts.push(taken_jtis_sqlite(&values(size_class(logged + indexed), 2)));
        }
        if logged > 0 {
            parts.push(log_jtis_sqlite(&values(size_class(logged), 3)));
        }
        if indexed > 0 {
            parts.push(insert_jtis(backend, &values(size_class(indexed), 3)));
        }
        if entries > 0 {
            parts.push(format!(
                "{INSERT_AUDIT} (VALUES {}) AS v {REAL_ROWS}",
                values(size_class(entries), AUDIT_COLUMNS)
            ));
        }
        for chunk in seen.chunks(SEEN_PER_UPDATE) {
            // `(?)`: one value in parentheses; `(?, ?, …)`: the ids.
            let now = values(1, 1);
            let ids = values(1, size_class(chunk.len()));
            parts.push(format!(
                "UPDATE users SET last_seen_at = {now} WHERE id IN {ids}"
            ));
        }
        match backend {
            Backend::Sqlite => format!("BEGIN IMMEDIATE; {}; COMMIT;", parts.join("; ")),
            Backend::Postgres => {
                debug_assert_eq!(logged, 0, "the log is SQLite's");
                let returns_ids = indexed > 0;
                let mut sql = String::from("WITH ");
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("w{i} AS ({part})"));
                }
                if returns_ids {
                    sql.push_str(" SELECT client_id, jti FROM w0");
                } else {
                    sql.push_str(" SELECT ''::text, ''::text WHERE false");
                }
                sql
            }
        }
    }
}

/// The values of a ledger batch, in the order of [`Store::batch_sql`]'s
/// text: on SQLite the `ids` (client and `jti`) for the check of taken
/// ones, then the ids of `plan` (logged, then indexed), the audit
/// `entries` and the `seen` users, each part padded to its size class.
fn batch_args<'q>(
    backend: Backend,
    plan: &JtiPlan<'q>,
    ids: &[&'q JtiUse],
    entries: &'q [AuditRecord],
    seen: &[UserId],
    now: i64,
) -> StoreResult<AnyArguments> {
    let mut args = AnyArguments::default();
    if backend == Backend::Sqlite {
        for u in padded(ids) {
            add(&mut args, u.map(|u| u.client_id.as_str()))?;
            add(&mut args, u.map(|u| u.jti.as_str()))?;
        }
    }
    for part in [&plan.logged, &plan.indexed] {
        for u in padded(part) {
            add(&mut args, u.map(|u| u.client_id.as_str()))?;
            add(&mut args, u.map(|u| u.jti.as_str()))?;
            add(&mut args, u.map(|u| u.expires_at))?;
        }
    }
    for e in padded(entries) {
        add(&mut args, e.map(|e| e.at))?;
        add(&mut args, e.map(|e| e.event.as_str()))?;
        add(&mut args, e.and_then(|e| e.request_id.as_deref()))?;
        add(&mut args, e.and_then(|e| e.client_id.as_deref()))?;
        add(&mut args, e.and_then(|e| e.email.as_deref()))?;
        add(&mut args, e.and_then(|e| e.workbook.as_deref()))?;
        add(&mut args, e.map(|e| e.outcome.as_str()))?;
        add(&mut args, e.and_then(|e| e.code.as_deref()))?;
        add(&mut args, e.and_then(|e| e.remote_addr.as_deref()))?;
        add(&mut args, e.and_then(|e| e.note.as_deref()))?;
    }
    for chunk in seen.chunks(SEEN_PER_UPDATE) {
        add(&mut args, now)?;
        for id in padded(chunk) {
            add(&mut args, id.copied())?;
        }
    }
    Ok(args)
}

/// SQLite: the value of a batch's one JSON row (its `SELECT
/// json_group_array(…)`), `None` when the batch had no such statement.
fn json_row<T: serde::de::DeserializeOwned>(rows: &[String]) -> Result<Option<T>, sqlx::Error> {
    match rows {
        [] => Ok(None),
        [json] => serde_json::from_str(json)
            .map(Some)
            .map_err(|e| sqlx::Error::Decode(e.into())),
        _ => Err(sqlx::Error::Protocol(format!(
            "a batch returned {} rows where it returns one",
            rows.len()
        ))),
    }
}

/// SQLite: the pairs of `ids` the batch consumed, all but those `taken`
/// (the rows of the batch: one JSON array from [`taken_jtis_sqlite`], none
/// when `ids` is empty). Without that row no id counts as consumed.
fn consumed_but(ids: &[&JtiUse], rows: &[String]) -> Result<Vec<(String, String)>, sqlx::Error> {
    let taken: Vec<(String, String)> = match json_row(rows)? {
        Some(taken) => taken,
        None if ids.is_empty() => Vec::new(),
        None => {
            return Err(sqlx::Error::Protocol(
                "the batch did not say which ids were taken".into(),
            ));
        }
    };
    let taken: HashSet<(&str, &str)> = taken
        .iter()
        .map(|(c, j)| (c.as_str(), j.as_str()))
        .collect();
    Ok(ids
        .iter()
        .filter(|u| !taken.contains(&(u.client_id.as_str(), u.jti.as_str())))
        .map(|u| (u.client_id.clone(), u.jti.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(client: &str, jti: &str) -> JtiUse {
        JtiUse {
            client_id: client.into(),
            jti: jti.into(),
            expires_at: 0,
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(c, j)| ((*c).into(), (*j).into())).collect()
    }

    #[test]
    fn the_ids_consumed_are_those_not_taken_by_the_same_client() {
        let (a, b, c) = (id("acme", "1"), id("acme", "2"), id("globex", "1"));
        let ids = [&a, &b, &c];
        let taken = [r#"[["acme","1"]]"#.to_owned()];
        assert_eq!(
            consumed_but(&ids, &taken).unwrap(),
            pairs(&[("acme", "2"), ("globex", "1")])
        );
        let none = ["[]".to_owned()];
        assert_eq!(consumed_but(&ids, &none).unwrap().len(), 3);
        assert_eq!(consumed_but(&[], &[]).unwrap(), pairs(&[]));
    }

    /// Fail closed: a batch that does not say which ids were taken
    /// consumes none of them as far as the handshakes know.
    #[test]
    fn without_its_one_row_a_batch_consumes_no_id() {
        let a = id("acme", "1");
        assert!(consumed_but(&[&a], &[]).is_err(), "no row");
        assert!(consumed_but(&[&a], &["not json".into()]).is_err());
        assert!(consumed_but(&[&a], &["[]".into(), "[]".into()]).is_err());
    }
}
