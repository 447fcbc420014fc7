//! `/admin/api/teams`.

use serde::Deserialize;
use utoipa::ToSchema;

use super::views::TeamView;
use super::{Actor, AdminResult, check_text, db, record_change, store_error};
use crate::domain::{TeamId, TeamName};
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::policy::Change;
use crate::store::TeamRecord;

/// A new team.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `private` (the default) or `public`.
    #[schema(example = "private")]
    pub visibility: Option<String>,
}

/// Changes to a team: any subset of the fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTeam {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `private` or `public`.
    pub visibility: Option<String>,
}

const TAKEN: &str = "A team with this name exists already.";

fn check_visibility(v: &str) -> AdminResult<()> {
    if matches!(v, "private" | "public") {
        Ok(())
    } else {
        Err(Problem::validation(format!(
            "visibility {v:?} must be \"private\" or \"public\""
        )))
    }
}

fn check_name(name: &str) -> AdminResult<()> {
    TeamName::parse(name).map_err(|e| Problem::validation(format!("name: {e}")))?;
    Ok(())
}

pub async fn create(gw: &Gateway, actor: &Actor, input: CreateTeam) -> AdminResult<TeamView> {
    check_name(&input.name)?;
    check_text("description", &input.description, 1000, true)?;
    let visibility = input.visibility.unwrap_or_else(|| "private".into());
    check_visibility(&visibility)?;
    let guard = gw.policy.write_lock().await;
    let team = gw
        .store
        .insert_team(
            &input.name,
            &input.description,
            &visibility,
            gw.now_millis(),
        )
        .await
        .map_err(store_error(TAKEN))?;
    gw.changed(&guard, &[Change::Team(team.id)])
        .await
        .map_err(db)?;
    record_change(gw, actor, format!("team {:?} created", team.name));
    Ok(TeamView::from(&team))
}

pub async fn list(gw: &Gateway) -> AdminResult<Vec<TeamView>> {
    Ok(gw
        .store
        .list_teams()
        .await
        .map_err(db)?
        .iter()
        .map(TeamView::from)
        .collect())
}

async fn find(gw: &Gateway, id: TeamId) -> AdminResult<TeamRecord> {
    gw.store
        .get_team(id)
        .await
        .map_err(db)?
        .ok_or_else(|| Problem::not_found(format!("There is no team {id}.")))
}

pub async fn get(gw: &Gateway, id: TeamId) -> AdminResult<TeamView> {
    Ok(TeamView::from(&find(gw, id).await?))
}

pub async fn patch(
    gw: &Gateway,
    actor: &Actor,
    id: TeamId,
    input: PatchTeam,
) -> AdminResult<TeamView> {
    let mut team = find(gw, id).await?;
    if let Some(name) = input.name {
        check_name(&name)?;
        team.name = name;
    }
    if let Some(d) = input.description {
        check_text("description", &d, 1000, true)?;
        team.description = d;
    }
    if let Some(v) = input.visibility {
        check_visibility(&v)?;
        team.visibility = v;
    }
    let guard = gw.policy.write_lock().await;
    if !gw
        .store
        .update_team(&team)
        .await
        .map_err(store_error(TAKEN))?
    {
        return Err(Problem::not_found(format!("There is no team {id}.")));
    }
    gw.changed(&guard, &[Change::Team(id)]).await.map_err(db)?;
    record_change(gw, actor, format!("team {id} changed"));
    Ok(TeamView::from(&team))
}

/// Deletes the team with its memberships and grants.
pub async fn delete(gw: &Gateway, actor: &Actor, id: TeamId) -> AdminResult<()> {
    let team = find(gw, id).await?;
    let guard = gw.policy.write_lock().await;
    gw.store.delete_team(id).await.map_err(db)?;
    gw.changed(&guard, &[Change::Team(id)]).await.map_err(db)?;
    record_change(
        gw,
        actor,
        format!(
            "team {:?} deleted with its memberships and grants",
            team.name
        ),
    );
    Ok(())
}
