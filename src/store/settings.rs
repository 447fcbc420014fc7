//! The runtime settings document and the admin API tokens.

use super::{Store, StoreResult};

impl Store {
    /// The settings as stored (JSON), `None` before the first change.
    pub async fn load_settings(&self) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT document FROM settings WHERE id = 1")
                .fetch_optional(self.db())
                .await?,
        )
    }

    pub async fn save_settings(&self, document: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO settings (id, document) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET document = excluded.document",
        )
        .bind(document)
        .execute(self.db())
        .await?;
        Ok(())
    }

    /// Stores the SHA-256 of a new admin token.
    pub async fn insert_admin_token(
        &self,
        name: &str,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO admin_tokens (name, token_hash, created_at) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(token_hash)
            .bind(now)
            .execute(self.db())
            .await?;
        Ok(())
    }

    /// The name of the admin token with this SHA-256, if any.
    pub async fn admin_token_name(&self, token_hash: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT name FROM admin_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(self.db())
                .await?,
        )
    }
}
