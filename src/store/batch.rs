//! The batch writers' one statement: a batch of the `jti` ledger, the audit
//! entries and the sign-ins (`last_seen_at`) recorded since the last batch,
//! written all or nothing with **one round trip** to the database.
//!
//! Under load a handshake waits for its ledger batch, and each trip to the
//! database is a hand-off to another thread (SQLite's connection thread, or
//! PostgreSQL's server) that waits for a free core on a busy machine: a
//! transaction of five statements cost five such waits (measured 1.5–2 ms a
//! batch). So the whole batch is one piece of SQL, built for each backend:
//!
//! - SQLite runs several statements from one string: `BEGIN IMMEDIATE;
//!   INSERT … RETURNING; INSERT …; UPDATE …; COMMIT` (when any part fails,
//!   the connection is closed, which rolls back);
//! - PostgreSQL runs one statement whose data-modifying `WITH` parts insert
//!   the audit entries and update the users, and whose `SELECT` returns the
//!   ids the ledger's `INSERT … RETURNING` consumed: one implicit
//!   transaction.
//!
//! The values are always bound, in the order they appear in the text.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use super::{AuditRecord, Backend, JtiUse, Store, StoreResult, placeholders_from};
use crate::domain::UserId;

/// The most ids one batch consumes. With [`MAX_AUDIT_BATCH`] entries and
/// [`MAX_SEEN_BATCH`] sign-ins, a batch binds at most 17,076 values
/// (3 × 1,024, 10 × 1,000 and 4 × 1,001), below both SQLite's (32,766) and
/// PostgreSQL's (65,535) limits.
pub const MAX_JTI_BATCH: usize = 1024;
/// The most audit entries one batch writes.
pub const MAX_AUDIT_BATCH: usize = 1000;
/// The most sign-ins one batch writes.
pub const MAX_SEEN_BATCH: usize = 4000;
/// Sign-ins per `UPDATE`.
const SEEN_PER_UPDATE: usize = 1000;

const INSERT_JTIS: &str = "INSERT INTO used_jtis (client_id, jti, expires_at) VALUES";
const JTIS_CONSUMED: &str = "ON CONFLICT (client_id, jti) DO NOTHING RETURNING client_id, jti";
const INSERT_AUDIT: &str = "INSERT INTO audit (at, event, request_id, client_id, email, \
                            workbook, outcome, code, remote_addr, note) VALUES";

impl Store {
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

        let sql = self.batch_sql(unique.len(), entries.len(), seen);
        let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
        for u in &unique {
            q = q.bind(&u.client_id).bind(&u.jti).bind(u.expires_at);
        }
        for e in entries {
            q = q
                .bind(e.at)
                .bind(&e.event)
                .bind(&e.request_id)
                .bind(&e.client_id)
                .bind(&e.email)
                .bind(&e.workbook)
                .bind(&e.outcome)
                .bind(&e.code)
                .bind(&e.remote_addr)
                .bind(&e.note);
        }
        for chunk in seen.chunks(SEEN_PER_UPDATE) {
            q = q.bind(now);
            for id in chunk {
                q = q.bind(*id);
            }
        }

        let rows = {
            let mut slot = self.batch_conn.lock().await;
            let conn = match &mut *slot {
                Some(conn) => conn,
                None => slot.insert(self.connect_one().await?),
            };
            self.queries.fetch_add(1, Ordering::Relaxed);
            match q.fetch_all(&mut *conn).await {
                Ok(rows) => rows,
                Err(e) => {
                    // The script may have stopped inside its transaction (SQLite),
                    // or the connection may be broken: closing it rolls back,
                    // and the next batch opens a new one.
                    *slot = None;
                    return Err(e.into());
                }
            }
        };
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

    /// The text of a batch of `jtis` ids, `entries` audit entries and the
    /// `seen` users, whose values are bound in that order.
    fn batch_sql(&self, jtis: usize, entries: usize, seen: &[UserId]) -> String {
        let backend = self.backend;
        let mut next = 1;
        // The placeholders of the next `rows` × `cols` values.
        let mut values = |rows: usize, cols: usize| {
            let text = placeholders_from(backend, next, rows, cols);
            next += rows * cols;
            text
        };
        let mut parts: Vec<String> = Vec::new();
        if jtis > 0 {
            parts.push(format!("{INSERT_JTIS} {} {JTIS_CONSUMED}", values(jtis, 3)));
        }
        if entries > 0 {
            parts.push(format!("{INSERT_AUDIT} {}", values(entries, 10)));
        }
        for chunk in seen.chunks(SEEN_PER_UPDATE) {
            // `(?)`: one value in parentheses; `(?, ?, …)`: the ids.
            let now = values(1, 1);
            let ids = values(1, chunk.len());
            parts.push(format!(
                "UPDATE users SET last_seen_at = {now} WHERE id IN {ids}"
            ));
        }
        match backend {
            Backend::Sqlite => format!("BEGIN IMMEDIATE; {}; COMMIT;", parts.join("; ")),
            Backend::Postgres => {
                let returns_ids = jtis > 0;
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
