//! The audit log.
//!
//! On SQLite the log's `email` index is kept apart and coarse
//! (`audit_email_chunks`, see `migrations/sqlite/0004_audit_email_chunks.sql`):
//! it says in which chunks of 2^[`EMAIL_CHUNK_BITS`] consecutive entries an
//! email appears, one row per email and chunk, written by a trigger. An
//! index of every entry (`audit(email)`) takes each new entry at its email's
//! place, so a ledger batch's entries land on as many pages as they have
//! emails and SQLite writes each changed page whole to its log at every
//! commit; here only an email's first entry in a chunk adds a row, and the
//! others read the page that holds it. A search by email reads that email's
//! chunks, newest first, and scans the entries of each by their ids until it
//! has enough. PostgreSQL keeps a plain index; its server does that work.

use sqlx::FromRow;

use super::{
    AuditFilter, AuditRecord, Backend, MAX_AUDIT_BATCH, MAX_SEEN_BATCH, Store, StoreResult,
};
use crate::domain::UserId;

/// SQLite: entry `id` is in chunk `id >> EMAIL_CHUNK_BITS` of the email
/// index. The trigger `audit_email_chunk` of
/// `migrations/sqlite/0004_audit_email_chunks.sql` writes the same shift.
pub const EMAIL_CHUNK_BITS: u32 = 16;

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

    /// Newest first. Given an email, the entries are found through an
    /// index (SQLite plans `$1 IS NULL OR email = $1` as a scan of the whole
    /// table): PostgreSQL's on `audit(email)`; on SQLite the email's chunks
    /// (see the module's documentation).
    pub async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        const FILTERS: &str = "($2 IS NULL OR event = $2) AND ($3 IS NULL OR outcome = $3)";
        let sql = match (&f.email, self.backend) {
            (Some(email), Backend::Sqlite) => return self.list_audit_by_chunks(email, f).await,
            (None, _) => format!(
                "SELECT {COLUMNS} FROM audit WHERE CAST($1 AS TEXT) IS NULL AND {FILTERS} \
                 ORDER BY id DESC LIMIT $4"
            ),
            (Some(_), Backend::Postgres) => format!(
                "SELECT {COLUMNS} FROM audit WHERE email = $1 AND {FILTERS} \
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

    /// SQLite, by email: the email's chunks newest first, the entries of
    /// each newest first, until `f.limit`; in one read transaction, so that
    /// the chunks and the entries are of the same moment.
    async fn list_audit_by_chunks(
        &self,
        email: &str,
        f: &AuditFilter,
    ) -> StoreResult<Vec<AuditRecord>> {
        let mut tx = self.db().begin().await?;
        let chunks: Vec<i64> = sqlx::query_scalar(
            "SELECT chunk FROM audit_email_chunks WHERE email = $1 ORDER BY chunk DESC",
        )
        .bind(email)
        .fetch_all(&mut *tx)
        .await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM audit WHERE id >= $1 AND id < $2 AND email = $3 \
             AND ($4 IS NULL OR event = $4) AND ($5 IS NULL OR outcome = $5) \
             ORDER BY id DESC LIMIT $6"
        );
        let mut found = Vec::new();
        for chunk in chunks {
            let wanted = f.limit - found.len() as i64;
            if wanted <= 0 {
                break;
            }
            let rows = sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(chunk << EMAIL_CHUNK_BITS)
                .bind((chunk + 1) << EMAIL_CHUNK_BITS)
                .bind(email)
                .bind(&f.event)
                .bind(&f.outcome)
                .bind(wanted)
                .fetch_all(&mut *tx)
                .await?;
            found.extend(rows.into_iter().map(AuditRecord::from));
        }
        tx.commit().await?;
        Ok(found)
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

    /// Deletes the entries older than `before` (Unix ms); on SQLite, then
    /// the email index's chunks older than the oldest entry left (a chunk
    /// whose entries of an email were all pruned, but not every entry, may
    /// stay: a search scans it and finds nothing).
    pub async fn prune_audit(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(before)
            .execute(self.db())
            .await?;
        if self.backend == Backend::Sqlite && done.rows_affected() > 0 {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM audit_email_chunks \
                 WHERE chunk < COALESCE((SELECT MIN(id) FROM audit) >> {EMAIL_CHUNK_BITS}, \
                                        (SELECT MAX(chunk) + 1 FROM audit_email_chunks))"
            )))
            .execute(self.db())
            .await?;
        }
        Ok(done.rows_affected())
    }
}
