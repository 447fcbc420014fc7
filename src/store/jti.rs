//! The one-time `jti` ledger.
//!
//! A token's id is consumed by inserting it: the primary key makes the
//! first insert win, in one process or across many sharing PostgreSQL. Rows
//! are kept until the token could no longer pass the `exp` check anyway.

use super::{Store, StoreResult, placeholders};

/// One `jti` to consume.
#[derive(Debug, Clone)]
pub struct JtiUse {
    pub client_id: String,
    pub jti: String,
    /// Unix seconds after which the row may be purged.
    pub expires_at: i64,
}

impl Store {
    /// Consumes a batch of ids in one transaction; for each, `true` when this
    /// call consumed it, `false` when it had been used before. Duplicates
    /// within the batch: only the first wins.
    pub async fn consume_jtis(&self, uses: &[JtiUse]) -> StoreResult<Vec<bool>> {
        let mut results = Vec::with_capacity(uses.len());
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        for chunk in uses.chunks(200) {
            // A batch may hold the same id twice (concurrent replays): insert
            // each once; only its first occurrence may win.
            let mut seen = std::collections::HashSet::new();
            let unique: Vec<&JtiUse> = chunk
                .iter()
                .filter(|u| seen.insert((u.client_id.as_str(), u.jti.as_str())))
                .collect();
            let sql = format!(
                "INSERT INTO used_jtis (client_id, jti, expires_at) VALUES {} \
                 ON CONFLICT (client_id, jti) DO NOTHING RETURNING client_id, jti",
                placeholders(self.backend, unique.len(), 3)
            );
            let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
            for u in &unique {
                q = q.bind(&u.client_id).bind(&u.jti).bind(u.expires_at);
            }
            let inserted: std::collections::HashSet<(String, String)> =
                q.fetch_all(&mut *tx).await?.into_iter().collect();
            let mut granted = std::collections::HashSet::new();
            for u in chunk {
                let key = (u.client_id.clone(), u.jti.clone());
                results.push(inserted.contains(&key) && granted.insert(key));
            }
        }
        tx.commit().await?;
        Ok(results)
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
