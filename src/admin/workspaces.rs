//! `/admin/api/workspaces`: folders of workbooks, which may nest.

use serde::Deserialize;
use utoipa::ToSchema;

use super::views::WorkspaceView;
use super::{Actor, AdminResult, check_text, db, record_change};
use crate::domain::WorkspaceId;
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::policy::{Change, MAX_WORKSPACE_DEPTH};

/// A new workspace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    pub name: String,
    /// The id of the parent workspace.
    #[schema(value_type = Option<i64>)]
    pub parent: Option<WorkspaceId>,
}

pub async fn list(gw: &Gateway) -> AdminResult<Vec<WorkspaceView>> {
    Ok(gw
        .store
        .list_workspaces()
        .await
        .map_err(db)?
        .iter()
        .map(WorkspaceView::from)
        .collect())
}

pub async fn get(gw: &Gateway, id: WorkspaceId) -> AdminResult<WorkspaceView> {
    gw.store
        .get_workspace(id)
        .await
        .map_err(db)?
        .map(|w| WorkspaceView::from(&w))
        .ok_or_else(|| Problem::not_found(format!("There is no workspace {id}.")))
}

/// How deep a workspace sits (1 for a top-level one).
fn depth(gw: &Gateway, mut id: Option<WorkspaceId>) -> usize {
    let state = gw.policy.read();
    let mut depth = 0;
    while let Some(current) = id {
        depth += 1;
        if depth > MAX_WORKSPACE_DEPTH {
            break;
        }
        id = state.workspace(current).and_then(|w| w.parent);
    }
    depth
}

pub async fn create(
    gw: &Gateway,
    actor: &Actor,
    input: CreateWorkspace,
) -> AdminResult<WorkspaceView> {
    check_text("name", &input.name, 255, false)?;
    let guard = gw.policy.write_lock().await;
    if let Some(parent) = input.parent {
        if gw.policy.read().workspace(parent).is_none() {
            return Err(Problem::validation(format!(
                "parent: there is no workspace {parent}"
            )));
        }
        if depth(gw, Some(parent)) >= MAX_WORKSPACE_DEPTH {
            return Err(Problem::validation(format!(
                "parent: workspaces nest at most {MAX_WORKSPACE_DEPTH} deep"
            )));
        }
    }
    let ws = gw
        .store
        .insert_workspace(&input.name, input.parent, gw.now_millis())
        .await
        .map_err(db)?;
    gw.changed(&guard, &[Change::Workspace(ws.id)])
        .await
        .map_err(db)?;
    record_change(
        gw,
        actor,
        format!("workspace {:?} ({}) created", ws.name, ws.id),
    );
    Ok(WorkspaceView::from(&ws))
}

/// Deletes an empty workspace with the grants on it.
pub async fn delete(gw: &Gateway, actor: &Actor, id: WorkspaceId) -> AdminResult<()> {
    get(gw, id).await?;
    let guard = gw.policy.write_lock().await;
    if !gw.store.delete_workspace(id).await.map_err(db)? {
        return Err(Problem::conflict(
            "The workspace still holds workspaces or workbooks; move or delete them first.",
        ));
    }
    gw.changed(&guard, &[Change::Workspace(id)])
        .await
        .map_err(db)?;
    record_change(gw, actor, format!("workspace {id} deleted"));
    Ok(())
}
