//! Teams.

use sqlx::FromRow;

use super::{Store, StoreResult, TeamRecord};
use crate::domain::TeamId;

#[derive(FromRow)]
struct TeamRow {
    id: i64,
    name: String,
    description: String,
    visibility: String,
    created_at: i64,
}

impl From<TeamRow> for TeamRecord {
    fn from(r: TeamRow) -> Self {
        TeamRecord {
            id: r.id,
            name: r.name,
            description: r.description,
            visibility: r.visibility,
            created_at: r.created_at,
        }
    }
}

impl Store {
    pub async fn list_teams(&self) -> StoreResult<Vec<TeamRecord>> {
        Ok(sqlx::query_as::<_, TeamRow>(
            "SELECT id, name, description, visibility, created_at FROM teams ORDER BY name",
        )
        .fetch_all(self.db())
        .await?
        .into_iter()
        .map(TeamRecord::from)
        .collect())
    }

    pub async fn get_team(&self, id: TeamId) -> StoreResult<Option<TeamRecord>> {
        Ok(sqlx::query_as::<_, TeamRow>(
            "SELECT id, name, description, visibility, created_at FROM teams WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db())
        .await?
        .map(TeamRecord::from))
    }

    pub async fn insert_team(
        &self,
        name: &str,
        description: &str,
        visibility: &str,
        now: i64,
    ) -> StoreResult<TeamRecord> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO teams (name, description, visibility, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(description)
        .bind(visibility)
        .bind(now)
        .fetch_one(self.db())
        .await?;
        Ok(TeamRecord {
            id,
            name: name.to_owned(),
            description: description.to_owned(),
            visibility: visibility.to_owned(),
            created_at: now,
        })
    }

    pub async fn update_team(&self, t: &TeamRecord) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE teams SET name = $2, description = $3, visibility = $4 WHERE id = $1",
        )
        .bind(t.id)
        .bind(&t.name)
        .bind(&t.description)
        .bind(&t.visibility)
        .execute(self.db())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the team with its memberships and grants.
    pub async fn delete_team(&self, id: TeamId) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM memberships WHERE team_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM grants WHERE team_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM teams WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The ids of the users in a team.
    pub async fn team_member_ids(&self, id: TeamId) -> StoreResult<Vec<i64>> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM memberships WHERE team_id = $1")
                .bind(id)
                .fetch_all(self.db())
                .await?,
        )
    }
}
