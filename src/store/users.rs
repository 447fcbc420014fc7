//! Users and their team memberships, written together in one transaction.

use std::collections::HashMap;

use sqlx::any::AnyArguments;
use sqlx::{Arguments, FromRow};

use super::{
    Backend, Store, StoreError, StoreResult, UserFields, UserFilter, UserRecord, from_json,
    placeholders, to_json,
};
use crate::domain::{Email, TeamId, UserId, UserKind, UserStatus};

#[derive(FromRow)]
struct UserRow {
    id: i64,
    email: String,
    kind: String,
    status: String,
    first_name: Option<String>,
    last_name: Option<String>,
    account_type: String,
    attributes: String,
    client_id: Option<String>,
    session_epoch: i64,
    created_at: i64,
    updated_at: i64,
    last_seen_at: Option<i64>,
}

const COLUMNS: &str = "id, email, kind, status, first_name, last_name, account_type, attributes, \
     client_id, session_epoch, created_at, updated_at, last_seen_at";

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(r: UserRow) -> StoreResult<Self> {
        Ok(UserRecord {
            kind: UserKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("user kind {:?}", r.kind)))?,
            status: UserStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("user status {:?}", r.status)))?,
            attributes: from_json("attributes", &r.attributes)?,
            id: r.id,
            email: Email::from_trusted(r.email),
            first_name: r.first_name,
            last_name: r.last_name,
            account_type: r.account_type,
            client_id: r.client_id,
            session_epoch: r.session_epoch,
            team_ids: Vec::new(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_seen_at: r.last_seen_at,
        })
    }
}

/// The columns of a user's fields, in the order [`add_fields`] adds their
/// values: the one place both writes (insert and update) take them from.
pub(super) const FIELD_COLUMNS: [&str; 8] = [
    "email",
    "kind",
    "status",
    "first_name",
    "last_name",
    "account_type",
    "attributes",
    "client_id",
];

/// Adds `value` to `args`. Encoding fails only for a value the database
/// types cannot hold, which none of the gateway's can be.
pub(super) fn add<'t, T>(args: &mut AnyArguments, value: T) -> StoreResult<()>
where
    T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    args.add(value)
        .map_err(|e| StoreError::Corrupt(format!("a value could not be encoded: {e}")))
}

/// Adds a user's fields to `args`, in the order of [`FIELD_COLUMNS`].
pub(super) fn add_fields(args: &mut AnyArguments, u: &UserFields) -> StoreResult<()> {
    add(args, u.email.as_str())?;
    add(args, u.kind.as_str())?;
    add(args, u.status.as_str())?;
    add(args, u.first_name.as_deref())?;
    add(args, u.last_name.as_deref())?;
    add(args, u.account_type.as_str())?;
    add(args, to_json(&u.attributes)?)?;
    add(args, u.client_id.as_deref())
}

/// Memberships per `INSERT` (two values each).
const MEMBERSHIPS_PER_INSERT: usize = 1000;

/// Inserts `user`'s memberships of `teams` (admin writes; the batch of new
/// users has its own, see `batch`).
async fn insert_memberships(
    backend: Backend,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user: UserId,
    teams: &[TeamId],
) -> StoreResult<()> {
    for chunk in teams.chunks(MEMBERSHIPS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO memberships (user_id, team_id) VALUES {}",
            placeholders(backend, chunk.len(), 2)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for team in chunk {
            q = q.bind(user).bind(*team);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    async fn finish_users(&self, rows: Vec<UserRow>) -> StoreResult<Vec<UserRecord>> {
        let mut users = rows
            .into_iter()
            .map(UserRecord::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        self.attach_teams(&mut users).await?;
        Ok(users)
    }

    async fn attach_teams(&self, users: &mut [UserRecord]) -> StoreResult<()> {
        if users.is_empty() {
            return Ok(());
        }
        let mut by_user: HashMap<UserId, Vec<TeamId>> = HashMap::new();
        let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
        for chunk in ids.chunks(500) {
            let list = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT user_id, team_id FROM memberships WHERE user_id IN ({list}) ORDER BY team_id"
            );
            let mut q = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for (user, team) in q.fetch_all(self.db()).await? {
                by_user.entry(user).or_default().push(team);
            }
        }
        for u in users {
            u.team_ids = by_user.remove(&u.id).unwrap_or_default();
        }
        Ok(())
    }

    pub async fn list_users(&self, f: &UserFilter) -> StoreResult<Vec<UserRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE ($1 IS NULL OR email = $1) \
             AND ($2 IS NULL OR kind = $2) \
             AND ($3 IS NULL OR id IN (SELECT user_id FROM memberships WHERE team_id = $3)) \
             ORDER BY id"
        );
        let rows = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(f.email.as_ref().map(|e| e.to_ascii_lowercase()))
            .bind(f.kind.map(UserKind::as_str))
            .bind(f.team_id)
            .fetch_all(self.db())
            .await?;
        self.finish_users(rows).await
    }

    /// Users whose email contains `q` (case-insensitive), at most `limit`.
    pub async fn search_users(&self, q: &str, limit: i64) -> StoreResult<Vec<UserRecord>> {
        let escaped: String = q
            .to_ascii_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE email LIKE $1 ESCAPE '\\' ORDER BY email LIMIT $2"
        );
        let rows = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(format!("%{escaped}%"))
            .bind(limit)
            .fetch_all(self.db())
            .await?;
        self.finish_users(rows).await
    }

    pub async fn get_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let rows = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(self.db())
            .await?;
        Ok(self.finish_users(rows).await?.pop())
    }

    pub async fn get_user_by_email(&self, email: &Email) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
        let rows = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(email.as_str())
            .fetch_all(self.db())
            .await?;
        Ok(self.finish_users(rows).await?.pop())
    }

    /// Every user with its teams, for loading the policy at start.
    pub async fn all_users(&self) -> StoreResult<Vec<UserRecord>> {
        let mut users = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM users ORDER BY id"
        )))
        .fetch_all(self.db())
        .await?
        .into_iter()
        .map(UserRecord::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
        let mut by_user: HashMap<UserId, Vec<TeamId>> = HashMap::new();
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT user_id, team_id FROM memberships ORDER BY user_id, team_id")
                .fetch_all(self.db())
                .await?;
        for (user, team) in rows {
            by_user.entry(user).or_default().push(team);
        }
        for u in &mut users {
            u.team_ids = by_user.remove(&u.id).unwrap_or_default();
        }
        Ok(users)
    }

    /// Creates a user with its memberships. `None` when the email is taken
    /// (for instance by a concurrent first handshake), so the caller can
    /// adopt the existing user instead. See [`Store::insert_users`]; the
    /// caller announces the change.
    pub async fn insert_user(&self, u: &UserFields, now: i64) -> StoreResult<Option<UserId>> {
        Ok(self.insert_users(&[u], now, None).await?.pop().flatten())
    }

    /// Replaces every field and membership of a user. `updated_at` always
    /// grows, even under a frozen or skewed clock: it is the user's version,
    /// which session cookies carry between instances.
    pub async fn update_user(&self, id: UserId, u: &UserFields, now: i64) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let set: String = FIELD_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, column)| format!("{column} = ${}, ", i + 1))
            .collect();
        let sql = format!(
            "UPDATE users SET {set}\
             updated_at = CASE WHEN $9 > updated_at THEN $9 ELSE updated_at + 1 END \
             WHERE id = $10 RETURNING id"
        );
        let mut args = AnyArguments::default();
        add_fields(&mut args, u)?;
        add(&mut args, now)?;
        add(&mut args, id)?;
        let updated: Option<i64> = sqlx::query_scalar_with(sqlx::AssertSqlSafe(sql), args)
            .fetch_optional(&mut *tx)
            .await?;
        if updated.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM memberships WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_memberships(self.backend, &mut tx, id, &u.team_ids).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn delete_user(&self, id: UserId) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM memberships WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends every session of the user: sessions carry the epoch they were
    /// issued under, and only the current one is accepted.
    pub async fn bump_session_epoch(&self, id: UserId, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET session_epoch = session_epoch + 1, \
             updated_at = CASE WHEN $2 > updated_at THEN $2 ELSE updated_at + 1 END WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(self.db())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn touch_users(&self, ids: &[UserId], now: i64) -> StoreResult<()> {
        self.record_activity(&[], ids, now).await
    }
}
