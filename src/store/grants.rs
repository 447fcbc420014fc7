//! Grants of a level on a workbook or a workspace to a team.

use sqlx::FromRow;

use super::{GrantFilter, GrantRecord, GrantTarget, Store, StoreError, StoreResult};
use crate::domain::{GrantId, Level, TeamId};

#[derive(FromRow)]
struct GrantRow {
    id: i64,
    team_id: i64,
    workbook_id: Option<String>,
    workspace_id: Option<i64>,
    level: String,
    tag: Option<String>,
    created_at: i64,
}

const COLUMNS: &str = "id, team_id, workbook_id, workspace_id, level, tag, created_at";

impl TryFrom<GrantRow> for GrantRecord {
    type Error = StoreError;

    fn try_from(r: GrantRow) -> Result<Self, StoreError> {
        let target = match (r.workbook_id, r.workspace_id) {
            (Some(wb), None) => GrantTarget::Workbook(wb),
            (None, Some(ws)) => GrantTarget::Workspace(ws),
            _ => return Err(StoreError::Corrupt(format!("grant {} target", r.id))),
        };
        Ok(GrantRecord {
            id: r.id,
            team_id: r.team_id,
            target,
            level: Level::parse(&r.level)
                .ok_or_else(|| StoreError::Corrupt(format!("grant level {:?}", r.level)))?,
            tag: r.tag,
            created_at: r.created_at,
        })
    }
}

/// Unique per team, target and version: one grant says one thing.
fn target_key(target: &GrantTarget, tag: Option<&str>) -> String {
    let target = match target {
        GrantTarget::Workbook(id) => format!("wb:{id}"),
        GrantTarget::Workspace(id) => format!("ws:{id}"),
    };
    match tag {
        Some(tag) => format!("{target}#{tag}"),
        None => target,
    }
}

impl Store {
    pub async fn list_grants(&self, f: &GrantFilter) -> StoreResult<Vec<GrantRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM grants WHERE ($1 IS NULL OR team_id = $1) \
             AND ($2 IS NULL OR workbook_id = $2) AND ($3 IS NULL OR workspace_id = $3) \
             ORDER BY id"
        );
        sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(sql))
            .bind(f.team_id)
            .bind(&f.workbook)
            .bind(f.workspace)
            .fetch_all(self.db())
            .await?
            .into_iter()
            .map(GrantRecord::try_from)
            .collect()
    }

    pub async fn get_grant(&self, id: GrantId) -> StoreResult<Option<GrantRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM grants WHERE id = $1");
        sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db())
            .await?
            .map(GrantRecord::try_from)
            .transpose()
    }

    pub async fn insert_grant(
        &self,
        team: TeamId,
        target: &GrantTarget,
        level: Level,
        tag: Option<&str>,
        now: i64,
    ) -> StoreResult<GrantRecord> {
        let (workbook, workspace) = match target {
            GrantTarget::Workbook(id) => (Some(id.as_str()), None),
            GrantTarget::Workspace(id) => (None, Some(*id)),
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO grants (team_id, workbook_id, workspace_id, level, tag, target_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(team)
        .bind(workbook)
        .bind(workspace)
        .bind(level.as_str())
        .bind(tag)
        .bind(target_key(target, tag))
        .bind(now)
        .fetch_one(self.db())
        .await?;
        Ok(GrantRecord {
            id,
            team_id: team,
            target: target.clone(),
            level,
            tag: tag.map(str::to_owned),
            created_at: now,
        })
    }

    pub async fn delete_grant(&self, id: GrantId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM grants WHERE id = $1")
            .bind(id)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
