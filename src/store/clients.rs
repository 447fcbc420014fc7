//! Embed clients.

use sqlx::FromRow;

use super::{ClientRecord, ClientStatus, Store, StoreError, StoreResult, flag, from_json, to_json};
use crate::token::SigningAlgorithm;

#[derive(FromRow)]
struct ClientRow {
    client_id: String,
    name: String,
    algorithm: String,
    secret: Option<String>,
    previous_secret: Option<String>,
    previous_valid_until: Option<i64>,
    public_key_pem: Option<String>,
    jwks_url: Option<String>,
    allowed_origins: String,
    allowed_teams: String,
    allow_internal_users: i64,
    status: String,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "client_id, name, algorithm, secret, previous_secret, previous_valid_until, \
     public_key_pem, jwks_url, allowed_origins, allowed_teams, allow_internal_users, status, \
     created_at, updated_at";

impl TryFrom<ClientRow> for ClientRecord {
    type Error = StoreError;

    fn try_from(r: ClientRow) -> StoreResult<Self> {
        Ok(ClientRecord {
            algorithm: SigningAlgorithm::parse(&r.algorithm)
                .ok_or_else(|| StoreError::Corrupt(format!("algorithm {:?}", r.algorithm)))?,
            allowed_origins: from_json("allowed_origins", &r.allowed_origins)?,
            allowed_teams: from_json("allowed_teams", &r.allowed_teams)?,
            allow_internal_users: r.allow_internal_users != 0,
            status: if r.status == "active" {
                ClientStatus::Active
            } else {
                ClientStatus::Revoked
            },
            client_id: r.client_id,
            name: r.name,
            secret: r.secret,
            previous_secret: r.previous_secret,
            previous_valid_until: r.previous_valid_until,
            public_key_pem: r.public_key_pem,
            jwks_url: r.jwks_url,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl Store {
    pub async fn insert_client(&self, c: &ClientRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO clients (client_id, name, algorithm, secret, previous_secret, \
             previous_valid_until, public_key_pem, jwks_url, allowed_origins, allowed_teams, \
             allow_internal_users, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(c.algorithm.as_str())
        .bind(&c.secret)
        .bind(&c.previous_secret)
        .bind(c.previous_valid_until)
        .bind(&c.public_key_pem)
        .bind(&c.jwks_url)
        .bind(to_json(&c.allowed_origins)?)
        .bind(to_json(&c.allowed_teams)?)
        .bind(flag(c.allow_internal_users))
        .bind(c.status.as_str())
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(self.db())
        .await?;
        Ok(())
    }

    pub async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM clients ORDER BY client_id");
        sqlx::query_as::<_, ClientRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.db())
            .await?
            .into_iter()
            .map(ClientRecord::try_from)
            .collect()
    }

    pub async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM clients WHERE client_id = $1");
        sqlx::query_as::<_, ClientRow>(sqlx::AssertSqlSafe(sql))
            .bind(client_id)
            .fetch_optional(self.db())
            .await?
            .map(ClientRecord::try_from)
            .transpose()
    }

    /// Replaces the secret; the old one stays valid until `previous_valid_until`.
    pub async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret: &str,
        previous_valid_until: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE clients SET previous_secret = secret, previous_valid_until = $2, \
             secret = $3, updated_at = $4 WHERE client_id = $1 AND status = 'active'",
        )
        .bind(client_id)
        .bind(previous_valid_until)
        .bind(secret)
        .bind(now)
        .execute(self.db())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn revoke_client(&self, client_id: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE clients SET status = 'revoked', secret = NULL, previous_secret = NULL, \
             updated_at = $2 WHERE client_id = $1",
        )
        .bind(client_id)
        .bind(now)
        .execute(self.db())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
