//! Account types.

use sqlx::FromRow;

use super::{AccountTypeRecord, Store, StoreError, StoreResult, flag, from_json};
use crate::domain::PermissionSet;

#[derive(FromRow)]
struct AccountTypeRow {
    name: String,
    permissions: String,
    builtin: i64,
}

impl TryFrom<AccountTypeRow> for AccountTypeRecord {
    type Error = StoreError;

    fn try_from(r: AccountTypeRow) -> StoreResult<Self> {
        let names: Vec<String> = from_json("permissions", &r.permissions)?;
        Ok(AccountTypeRecord {
            permissions: PermissionSet::parse(names.iter().map(String::as_str))
                .map_err(StoreError::Corrupt)?,
            name: r.name,
            builtin: r.builtin != 0,
        })
    }
}

fn permissions_json(p: PermissionSet) -> StoreResult<String> {
    super::to_json(&p.names())
}

impl Store {
    pub async fn list_account_types(&self) -> StoreResult<Vec<AccountTypeRecord>> {
        sqlx::query_as::<_, AccountTypeRow>(
            "SELECT name, permissions, builtin FROM account_types ORDER BY builtin DESC, name",
        )
        .fetch_all(self.db())
        .await?
        .into_iter()
        .map(AccountTypeRecord::try_from)
        .collect()
    }

    pub async fn get_account_type(&self, name: &str) -> StoreResult<Option<AccountTypeRecord>> {
        sqlx::query_as::<_, AccountTypeRow>(
            "SELECT name, permissions, builtin FROM account_types WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.db())
        .await?
        .map(AccountTypeRecord::try_from)
        .transpose()
    }

    pub async fn insert_account_type(&self, a: &AccountTypeRecord) -> StoreResult<()> {
        sqlx::query("INSERT INTO account_types (name, permissions, builtin) VALUES ($1, $2, $3)")
            .bind(&a.name)
            .bind(permissions_json(a.permissions)?)
            .bind(flag(a.builtin))
            .execute(self.db())
            .await?;
        Ok(())
    }

    pub async fn update_account_type(&self, name: &str, p: PermissionSet) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE account_types SET permissions = $2 WHERE name = $1")
            .bind(name)
            .bind(permissions_json(p)?)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a custom account type that no user has.
    pub async fn delete_account_type(&self, name: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM account_types WHERE name = $1 AND builtin = 0 \
             AND NOT EXISTS (SELECT 1 FROM users WHERE account_type = $1)",
        )
        .bind(name)
        .execute(self.db())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn count_users_with_account_type(&self, name: &str) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE account_type = $1")
                .bind(name)
                .fetch_one(self.db())
                .await?,
        )
    }
}
