//! The audit log.

use sqlx::FromRow;

use super::{AuditFilter, AuditRecord, MAX_AUDIT_BATCH, MAX_SEEN_BATCH, Store, StoreResult};
use crate::domain::UserId;

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

    /// Newest first. Given an email, the entries are found through the
    /// `email` index: SQLite plans `$1 IS NULL OR email = $1` as a scan of
    /// the whole table.
    pub async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        let by_email = if f.email.is_some() {
            "email = $1"
        } else {
            "CAST($1 AS TEXT) IS NULL"
        };
        let sql = format!(
            "SELECT id, at, event, request_id, client_id, email, workbook, outcome, code, \
             remote_addr, note FROM audit WHERE {by_email} \
             AND ($2 IS NULL OR event = $2) AND ($3 IS NULL OR outcome = $3) \
             ORDER BY id DESC LIMIT $4"
        );
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

    pub async fn prune_audit(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(before)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected())
    }
}
