//! The audit log.

use sqlx::FromRow;

use super::{AuditFilter, AuditRecord, Store, StoreResult, placeholders};
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
    /// What the audit writer batches: new audit entries, and the users seen
    /// since the last batch (`last_seen_at = now`), in one transaction.
    pub async fn record_activity(
        &self,
        entries: &[AuditRecord],
        seen: &[UserId],
        now: i64,
    ) -> StoreResult<()> {
        if entries.is_empty() && seen.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        self.insert_audit_rows(&mut tx, entries).await?;
        self.touch_user_rows(&mut tx, seen, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_audit(&self, entries: &[AuditRecord]) -> StoreResult<()> {
        self.record_activity(entries, &[], 0).await
    }

    async fn insert_audit_rows(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        entries: &[AuditRecord],
    ) -> StoreResult<()> {
        for chunk in entries.chunks(100) {
            let sql = format!(
                "INSERT INTO audit (at, event, request_id, client_id, email, workbook, outcome, \
                 code, remote_addr, note) VALUES {}",
                placeholders(self.backend, chunk.len(), 10)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
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
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Newest first.
    pub async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        Ok(sqlx::query_as::<_, AuditRow>(
            "SELECT id, at, event, request_id, client_id, email, workbook, outcome, code, \
             remote_addr, note FROM audit WHERE ($1 IS NULL OR email = $1) \
             AND ($2 IS NULL OR event = $2) AND ($3 IS NULL OR outcome = $3) \
             ORDER BY id DESC LIMIT $4",
        )
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
