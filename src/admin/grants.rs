//! `/admin/api/grants`: a level on a workbook or a workspace, for a team.

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::views::GrantView;
use super::{Actor, AdminResult, db, record_change, store_error};
use crate::domain::{GrantId, Level, TagName, WorkspaceId};
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::policy::Change;
use crate::store::{GrantFilter, GrantTarget};

/// A new grant: a team gets a level on one workbook or on a workspace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    /// The team's name.
    pub team: String,
    /// A workbook id (exactly one of `workbook` and `workspace`).
    pub workbook: Option<String>,
    /// A workspace id (exactly one of `workbook` and `workspace`).
    #[schema(value_type = Option<i64>)]
    pub workspace: Option<WorkspaceId>,
    /// `view`, `explore` or `edit`.
    #[schema(example = "view")]
    pub level: String,
    /// Limits the grant to one tagged version.
    pub tag: Option<String>,
}

/// The filters of `GET /admin/api/grants`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GrantQuery {
    /// Only grants to this team (name).
    pub team: Option<String>,
    /// Only grants on this workbook (id).
    pub workbook: Option<String>,
}

pub async fn list(gw: &Gateway, q: GrantQuery) -> AdminResult<Vec<GrantView>> {
    let team_id = match q.team.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(name) => match gw.policy.read().team_by_name(name) {
            Some(t) => Some(t.id),
            None => return Ok(Vec::new()),
        },
    };
    let filter = GrantFilter {
        team_id,
        workbook: q.workbook.filter(|w| !w.is_empty()),
        workspace: None,
    };
    let grants = gw.store.list_grants(&filter).await.map_err(db)?;
    let state = gw.policy.read();
    Ok(grants.iter().map(|g| GrantView::new(g, &state)).collect())
}

pub async fn create(gw: &Gateway, actor: &Actor, input: CreateGrant) -> AdminResult<GrantView> {
    let level = Level::parse(&input.level).ok_or_else(|| {
        Problem::validation(format!(
            "level {:?} must be view, explore or edit",
            input.level
        ))
    })?;
    if let Some(tag) = &input.tag {
        TagName::parse(tag).map_err(|e| Problem::validation(format!("tag: {e}")))?;
    }
    let guard = gw.policy.write_lock().await;
    let (team_id, target) = {
        let state = gw.policy.read();
        let team = state.team_by_name(&input.team).ok_or_else(|| {
            Problem::validation(format!("team: there is no team {:?}", input.team))
        })?;
        let target = match (&input.workbook, input.workspace) {
            (Some(wb), None) => {
                let workbook = state.workbook(wb).ok_or_else(|| {
                    Problem::validation(format!("workbook: there is no workbook {wb:?}"))
                })?;
                if let Some(tag) = input
                    .tag
                    .as_deref()
                    .filter(|t| !workbook.tags.contains_key(*t))
                {
                    return Err(Problem::validation(format!(
                        "tag: workbook {wb:?} has no tag {tag:?}"
                    )));
                }
                GrantTarget::Workbook(wb.clone())
            }
            (None, Some(ws)) => {
                state.workspace(ws).ok_or_else(|| {
                    Problem::validation(format!("workspace: there is no workspace {ws}"))
                })?;
                GrantTarget::Workspace(ws)
            }
            _ => {
                return Err(Problem::validation(
                    "give exactly one of workbook or workspace",
                ));
            }
        };
        (team.id, target)
    };
    let grant = gw
        .store
        .insert_grant(
            team_id,
            &target,
            level,
            input.tag.as_deref(),
            gw.now_millis(),
        )
        .await
        .map_err(store_error(
            "This team already has a grant on this target for this version; delete it first.",
        ))?;
    gw.changed(&guard, &[Change::Grant(grant.id)])
        .await
        .map_err(db)?;
    record_change(
        gw,
        actor,
        format!("grant {} created: team {:?} {level}", grant.id, input.team),
    );
    Ok(GrantView::new(&grant, &gw.policy.read()))
}

pub async fn get(gw: &Gateway, id: GrantId) -> AdminResult<GrantView> {
    let grant = gw
        .store
        .get_grant(id)
        .await
        .map_err(db)?
        .ok_or_else(|| Problem::not_found(format!("There is no grant {id}.")))?;
    Ok(GrantView::new(&grant, &gw.policy.read()))
}

pub async fn delete(gw: &Gateway, actor: &Actor, id: GrantId) -> AdminResult<()> {
    let guard = gw.policy.write_lock().await;
    if !gw.store.delete_grant(id).await.map_err(db)? {
        return Err(Problem::not_found(format!("There is no grant {id}.")));
    }
    gw.changed(&guard, &[Change::Grant(id)]).await.map_err(db)?;
    record_change(gw, actor, format!("grant {id} deleted"));
    Ok(())
}
