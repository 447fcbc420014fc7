//! The audit log.
//!
//! On SQLite the log's `email` index is kept apart (`audit_emails`, see
//! `migrations/sqlite/0002_audit_emails.sql`): an index on `audit(email)`
//! takes every entry at its email's place, so the entries of one ledger
//! batch land on as many pages as they have emails, and SQLite writes each
//! changed page whole to its log at every commit: about one 4 KiB page per
//! handshake. Instead, at most once every [`EMAIL_INDEX_EVERY`], a ledger
//! batch also indexes, in bulk and in the same transaction, every entry
//! after `audit_emails_mark`, and moves the mark. A search by email reads
//! the index and scans the entries after the mark (a second's worth at
//! most while handshakes come in): exact either way. PostgreSQL keeps a
//! plain index; its server does that work, and cluster instances write
//! entries whose ids commit out of order, which a mark cannot follow.

use std::time::{Duration, Instant};

use sqlx::FromRow;

use super::{
    AuditFilter, AuditRecord, Backend, MAX_AUDIT_BATCH, MAX_SEEN_BATCH, Store, StoreResult,
};
use crate::domain::UserId;

/// How often a ledger batch brings SQLite's email index of the audit log
/// up to date, unless [`Store::set_email_index_every`] says otherwise.
pub(super) const EMAIL_INDEX_EVERY: Duration = Duration::from_secs(1);

/// When a batch last indexed the audit log's emails, and how often one may.
#[derive(Debug)]
pub(super) struct EmailIndexClock {
    pub(super) last: Option<Instant>,
    pub(super) every: Duration,
}

/// Indexes the entries after the mark and moves it (SQLite). No value is
/// bound. `OR IGNORE`, although no entry is indexed twice: a statement that
/// cannot abort keeps no statement journal.
pub(super) const INDEX_EMAILS_SQLITE: &str = "INSERT OR IGNORE INTO audit_emails (email, id) \
     SELECT email, id FROM audit \
     WHERE id > (SELECT id FROM audit_emails_mark) AND email IS NOT NULL ORDER BY email, id; \
     UPDATE audit_emails_mark SET id = MAX(id, COALESCE((SELECT MAX(id) FROM audit), 0))";

const COLUMNS: &str =
    "id, at, event, request_id, client_id, email, workbook, outcome, code, remote_addr, note";

#[derive(FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    event: String,
    request_id: Option<String>,
    client_id: Option<String>,
    email: Option<String>,
    workbook: Option<String>,
    outcome: String,
    code: Option<String>,
    remote_addr: Option<String>,
    note: Option<String>,
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> Self {
        AuditRecord {
            id: r.id,
            at: r.at,
            event: r.event,
            request_id: r.request_id,
            client_id: r.client_id,
            email: r.email,
            workbook: r.workbook,
            outcome: r.outcome,
            code: r.code,
            remote_addr: r.remote_addr,
            note: r.note,
        }
    }
}

impl Store {
    /// Writes audit entries, and `last_seen_at = now` of the `seen` users:
    /// in one transaction when they fit one batch ([`super::MAX_AUDIT_BATCH`]
    /// entries, [`super::MAX_SEEN_BATCH`] users), else in several.
    pub async fn record_activity(
        &self,
        entries: &[AuditRecord],
        seen: &[UserId],
        now: i64,
    ) -> StoreResult<()> {
        let mut entries = entries.chunks(MAX_AUDIT_BATCH);
        let mut seen = seen.chunks(MAX_SEEN_BATCH);
        loop {
            match (entries.next(), seen.next()) {
                (None, None) => return Ok(()),
                (e, s) => {
                    self.write_batch(&[], e.unwrap_or_default(), s.unwrap_or_default(), now)
                        .await?;
                }
            }
        }
    }

    pub async fn insert_audit(&self, entries: &[AuditRecord]) -> StoreResult<()> {
        self.record_activity(entries, &[], 0).await
    }

    /// Whether the batch being written should also bring SQLite's email
    /// index up to date (see the module's documentation); when it says
    /// yes, the batches of the next interval do not.
    pub(super) fn email_index_due(&self) -> bool {
        if self.backend != Backend::Sqlite {
            return false;
        }
        let mut clock = self.email_index_clock();
        let now = Instant::now();
        if clock
            .last
            .is_some_and(|at| now.duration_since(at) < clock.every)
        {
            return false;
        }
        clock.last = Some(now);
        true
    }

    fn email_index_clock(&self) -> std::sync::MutexGuard<'_, EmailIndexClock> {
        super::locked(&self.email_index)
    }

    /// How often ledger batches bring SQLite's email index of the audit log
    /// up to date (default: every second). Searches are exact whatever it
    /// is; the tests lengthen it to keep entries in the scanned tail.
    pub fn set_email_index_every(&self, every: Duration) {
        self.email_index_clock().every = every;
    }

    /// Brings SQLite's email index of the audit log up to date now, rather
    /// than with the next ledger batch that is due (nothing to do on
    /// PostgreSQL). Searches are exact either way; this only moves entries
    /// from the scanned tail into the index.
    pub async fn index_audit_emails(&self) -> StoreResult<()> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        let sql = format!("BEGIN IMMEDIATE; {INDEX_EMAILS_SQLITE}; COMMIT;");
        self.on_batch_conn(async |conn| sqlx::query(sqlx::AssertSqlSafe(sql)).execute(conn).await)
            .await?;
        self.email_index_clock().last = Some(Instant::now());
        Ok(())
    }

    /// Newest first. Given an email, the entries are found through an
    /// index (SQLite plans `$1 IS NULL OR email = $1` as a scan of the whole
    /// table): PostgreSQL's on `audit(email)`; on SQLite `audit_emails` up to
    /// its mark, and the entries after the mark.
    pub async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        const FILTERS: &str = "($2 IS NULL OR event = $2) AND ($3 IS NULL OR outcome = $3)";
        let sql = match (&f.email, self.backend) {
            (None, _) => format!(
                "SELECT {COLUMNS} FROM audit WHERE CAST($1 AS TEXT) IS NULL AND {FILTERS} \
                 ORDER BY id DESC LIMIT $4"
            ),
            (Some(_), Backend::Postgres) => format!(
                "SELECT {COLUMNS} FROM audit WHERE email = $1 AND {FILTERS} \
                 ORDER BY id DESC LIMIT $4"
            ),
            (Some(_), Backend::Sqlite) => format!(
                "SELECT {COLUMNS} FROM (SELECT a.* FROM audit_emails e CROSS JOIN audit a \
                     ON a.id = e.id WHERE e.email = $1 AND {FILTERS} \
                     ORDER BY e.id DESC LIMIT $4) \
                 UNION ALL \
                 SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM audit \
                     WHERE id > (SELECT id FROM audit_emails_mark) AND email = $1 \
                     AND {FILTERS} ORDER BY id DESC LIMIT $4) \
                 ORDER BY id DESC LIMIT $4"
            ),
        };
        Ok(sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql))
            .bind(&f.email)
            .bind(&f.event)
            .bind(&f.outcome)
            .bind(f.limit)
            .fetch_all(self.db())
            .await?
            .into_iter()
            .map(AuditRecord::from)
            .collect())
    }

    /// Handshakes since `since` (Unix ms), counted by outcome and code.
    pub async fn handshake_counts(
        &self,
        since: i64,
    ) -> StoreResult<Vec<(String, Option<String>, i64)>> {
        Ok(sqlx::query_as(
            "SELECT outcome, code, COUNT(*) FROM audit WHERE event = 'handshake' AND at >= $1 \
             GROUP BY outcome, code ORDER BY COUNT(*) DESC",
        )
        .bind(since)
        .fetch_all(self.db())
        .await?)
    }

    /// Deletes the entries older than `before` (Unix ms); on SQLite a
    /// trigger takes them out of the email index too.
    pub async fn prune_audit(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(before)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected())
    }
}
