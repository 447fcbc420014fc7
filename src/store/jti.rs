//! The one-time `jti` ledger.
//!
//! A token's id is consumed by inserting it: the primary key makes the
//! first insert win, in one process or across many sharing PostgreSQL. Rows
//! are kept until the token could no longer pass the `exp` check anyway.

use super::{Store, StoreResult};

/// One `jti` to consume.
#[derive(Debug, Clone)]
pub struct JtiUse {
    pub client_id: String,
    pub jti: String,
    /// Unix seconds after which the row may be purged.
    pub expires_at: i64,
}

impl Store {
    /// Consumes a batch of at most [`super::MAX_JTI_BATCH`] ids with one statement;
    /// for each, `true` when this call consumed it, `false` when it had been
    /// used before. Duplicates within the batch: only the first wins.
    pub async fn consume_jtis(&self, uses: &[JtiUse]) -> StoreResult<Vec<bool>> {
        self.write_batch(uses, &[], &[], 0).await
    }

    /// Was this id consumed already? Reads only (for the token inspector).
    pub async fn jti_used(&self, client_id: &str, jti: &str) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM used_jtis WHERE client_id = $1 AND jti = $2")
                .bind(client_id)
                .bind(jti)
                .fetch_optional(self.db())
                .await?;
        Ok(found.is_some())
    }

    /// Forgets ids whose tokens have expired (plus skew) before `now`.
    pub async fn purge_jtis(&self, now: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM used_jtis WHERE expires_at < $1")
            .bind(now)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected())
    }
}
