//! Workspaces, workbooks and their tagged versions.

use std::collections::BTreeMap;

use sqlx::FromRow;

use super::{Store, StoreResult, WorkbookRecord, WorkspaceRecord, from_json, to_json};
use crate::domain::{WorkbookSource, WorkspaceId};

#[derive(FromRow)]
struct WorkbookRow {
    id: String,
    name: String,
    workspace_id: Option<i64>,
    source: String,
    created_at: i64,
    updated_at: i64,
}

impl Store {
    pub async fn list_workspaces(&self) -> StoreResult<Vec<WorkspaceRecord>> {
        let rows: Vec<(i64, String, Option<i64>)> =
            sqlx::query_as("SELECT id, name, parent_id FROM workspaces ORDER BY id")
                .fetch_all(self.db())
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, parent)| WorkspaceRecord { id, name, parent })
            .collect())
    }

    pub async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Option<WorkspaceRecord>> {
        let row: Option<(i64, String, Option<i64>)> =
            sqlx::query_as("SELECT id, name, parent_id FROM workspaces WHERE id = $1")
                .bind(id)
                .fetch_optional(self.db())
                .await?;
        Ok(row.map(|(id, name, parent)| WorkspaceRecord { id, name, parent }))
    }

    pub async fn insert_workspace(
        &self,
        name: &str,
        parent: Option<WorkspaceId>,
        now: i64,
    ) -> StoreResult<WorkspaceRecord> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO workspaces (name, parent_id, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(parent)
        .bind(now)
        .fetch_one(self.db())
        .await?;
        Ok(WorkspaceRecord {
            id,
            name: name.to_owned(),
            parent,
        })
    }

    /// Deletes an empty workspace (no child workspace, no workbook); its
    /// grants go with it (`ON DELETE CASCADE`). `false` when it is missing
    /// or not empty. One statement, so SQLite takes the write lock at once.
    pub async fn delete_workspace(&self, id: WorkspaceId) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM workspaces WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM workspaces AS child WHERE child.parent_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM workbooks WHERE workspace_id = $1)",
        )
        .bind(id)
        .execute(self.db())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_workbooks(&self, rows: Vec<WorkbookRow>) -> StoreResult<Vec<WorkbookRecord>> {
        let mut tags: BTreeMap<String, BTreeMap<String, WorkbookSource>> = BTreeMap::new();
        if !rows.is_empty() {
            let all: Vec<(String, String, String)> = if rows.len() == 1 {
                sqlx::query_as(
                    "SELECT workbook_id, tag, source FROM workbook_tags WHERE workbook_id = $1",
                )
                .bind(&rows[0].id)
                .fetch_all(self.db())
                .await?
            } else {
                sqlx::query_as("SELECT workbook_id, tag, source FROM workbook_tags")
                    .fetch_all(self.db())
                    .await?
            };
            for (wb, tag, source) in all {
                tags.entry(wb)
                    .or_default()
                    .insert(tag, from_json("tag source", &source)?);
            }
        }
        rows.into_iter()
            .map(|r| {
                Ok(WorkbookRecord {
                    source: from_json("source", &r.source)?,
                    tags: tags.remove(&r.id).unwrap_or_default(),
                    id: r.id,
                    name: r.name,
                    workspace: r.workspace_id,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                })
            })
            .collect()
    }

    pub async fn list_workbooks(&self) -> StoreResult<Vec<WorkbookRecord>> {
        let rows = sqlx::query_as::<_, WorkbookRow>(
            "SELECT id, name, workspace_id, source, created_at, updated_at FROM workbooks ORDER BY id",
        )
        .fetch_all(self.db())
        .await?;
        self.finish_workbooks(rows).await
    }

    pub async fn get_workbook(&self, id: &str) -> StoreResult<Option<WorkbookRecord>> {
        let rows = sqlx::query_as::<_, WorkbookRow>(
            "SELECT id, name, workspace_id, source, created_at, updated_at FROM workbooks WHERE id = $1",
        )
        .bind(id)
        .fetch_all(self.db())
        .await?;
        Ok(self.finish_workbooks(rows).await?.pop())
    }

    pub async fn insert_workbook(&self, w: &WorkbookRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO workbooks (id, name, workspace_id, source, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&w.id)
        .bind(&w.name)
        .bind(w.workspace)
        .bind(to_json(&w.source)?)
        .bind(w.created_at)
        .bind(w.updated_at)
        .execute(self.db())
        .await?;
        Ok(())
    }

    pub async fn update_workbook(&self, w: &WorkbookRecord) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE workbooks SET name = $2, workspace_id = $3, source = $4, updated_at = $5 \
             WHERE id = $1",
        )
        .bind(&w.id)
        .bind(&w.name)
        .bind(w.workspace)
        .bind(to_json(&w.source)?)
        .bind(w.updated_at)
        .execute(self.db())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the workbook with its tags and grants.
    pub async fn delete_workbook(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        for sql in [
            "DELETE FROM grants WHERE workbook_id = $1",
            "DELETE FROM workbook_tags WHERE workbook_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM workbooks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn put_workbook_tag(
        &self,
        workbook: &str,
        tag: &str,
        source: &WorkbookSource,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO workbook_tags (workbook_id, tag, source) VALUES ($1, $2, $3) \
             ON CONFLICT (workbook_id, tag) DO UPDATE SET source = excluded.source",
        )
        .bind(workbook)
        .bind(tag)
        .bind(to_json(source)?)
        .execute(self.db())
        .await?;
        Ok(())
    }

    /// Deletes a tag and the grants given for it.
    pub async fn delete_workbook_tag(&self, workbook: &str, tag: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM grants WHERE workbook_id = $1 AND tag = $2")
            .bind(workbook)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM workbook_tags WHERE workbook_id = $1 AND tag = $2")
            .bind(workbook)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
