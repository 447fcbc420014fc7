//! `/admin/api/users`: internal users, and embed users seen from the admin
//! side. Changes are recorded as `user_created` / `user_updated` with what
//! changed.

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::views::UserView;
use super::{Actor, AdminResult, check_text, db, double_option, record_change, store_error};
use crate::audit::{self, Entry};
use crate::domain::{
    AttributeName, Email, TeamId, UserId, UserKind, UserStatus, check_attribute_value,
    parse_attributes,
};
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::identity::describe_changes;
use crate::policy::{Change, PolicyState};
use crate::store::{UserFields, UserFilter, UserRecord};

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    /// `internal` (the default) or `embed`.
    #[schema(example = "internal")]
    pub kind: Option<String>,
    /// Team names.
    pub teams: Option<Vec<String>>,
    /// Defaults to the settings' `default_account_type`.
    pub account_type: Option<String>,
    /// Attribute names (`[A-Za-z0-9_]{1,64}`) to string values.
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    pub attributes: Option<Map<String, Value>>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `active` (the default) or `deactivated`.
    pub status: Option<String>,
}

/// Changes to a user: any subset of the fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    /// Replaces the user's teams (names).
    pub teams: Option<Vec<String>>,
    pub account_type: Option<String>,
    /// Merged into the stored attributes; `null` removes one.
    #[schema(value_type = Option<std::collections::BTreeMap<String, Option<String>>>)]
    pub attributes: Option<Map<String, Value>>,
    /// `active` or `deactivated`.
    pub status: Option<String>,
    /// `null` clears the name.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub first_name: Option<Option<String>>,
    /// `null` clears the name.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub last_name: Option<Option<String>>,
}

/// The filters of `GET /admin/api/users`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Only the user with this email.
    pub email: Option<String>,
    /// `embed` or `internal`.
    pub kind: Option<String>,
    /// Only members of this team (name).
    pub team: Option<String>,
}

fn team_ids(state: &PolicyState, names: &[String]) -> AdminResult<Vec<TeamId>> {
    let mut ids = names
        .iter()
        .map(|n| {
            state
                .team_by_name(n)
                .map(|t| t.id)
                .ok_or_else(|| Problem::validation(format!("teams: there is no team {n:?}")))
        })
        .collect::<AdminResult<Vec<_>>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn account_type(state: &PolicyState, name: &str) -> AdminResult<()> {
    if state.account_type(name).is_none() {
        return Err(Problem::validation(format!(
            "account_type: there is no account type {name:?}"
        )));
    }
    Ok(())
}

fn status(s: &str) -> AdminResult<UserStatus> {
    UserStatus::parse(s).ok_or_else(|| {
        Problem::validation(format!(
            "status {s:?} must be \"active\" or \"deactivated\""
        ))
    })
}

fn name(field: &str, value: &Option<String>) -> AdminResult<()> {
    if let Some(v) = value {
        check_text(field, v, 255, true)?;
    }
    Ok(())
}

fn record_user(gw: &Gateway, actor: &Actor, event: &'static str, email: &str, note: String) {
    gw.recorder.record(
        &actor.origin,
        Entry {
            event,
            allowed: true,
            email: Some(email.to_owned()),
            note: Some(format!("{note} (by admin token {:?})", actor.admin)),
            ..Entry::default()
        },
    );
}

pub async fn list(gw: &Gateway, q: UserQuery) -> AdminResult<Vec<UserView>> {
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(UserKind::parse(k).ok_or_else(|| {
            Problem::validation(format!("kind {k:?} must be \"embed\" or \"internal\""))
        })?),
    };
    let team_id = match q.team.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(name) => match gw.policy.read().team_by_name(name) {
            Some(t) => Some(t.id),
            None => return Ok(Vec::new()),
        },
    };
    let filter = UserFilter {
        email: q.email.filter(|e| !e.is_empty()),
        kind,
        team_id,
    };
    // last_seen_at is written in the background: include what is pending.
    gw.recorder.flush().await;
    let users = gw.store.list_users(&filter).await.map_err(db)?;
    let state = gw.policy.read();
    Ok(users.iter().map(|u| UserView::new(u, &state)).collect())
}

async fn find(gw: &Gateway, id: UserId) -> AdminResult<UserRecord> {
    gw.store
        .get_user(id)
        .await
        .map_err(db)?
        .ok_or_else(|| Problem::not_found(format!("There is no user {id}.")))
}

pub async fn get(gw: &Gateway, id: UserId) -> AdminResult<UserView> {
    gw.recorder.flush().await;
    let user = find(gw, id).await?;
    Ok(UserView::new(&user, &gw.policy.read()))
}

pub async fn create(gw: &Gateway, actor: &Actor, input: CreateUser) -> AdminResult<UserView> {
    let email =
        Email::parse(&input.email).map_err(|e| Problem::validation(format!("email: {e}")))?;
    let kind = match input.kind.as_deref() {
        None => UserKind::Internal,
        Some(k) => UserKind::parse(k).ok_or_else(|| {
            Problem::validation(format!("kind {k:?} must be \"embed\" or \"internal\""))
        })?,
    };
    let status = input
        .status
        .as_deref()
        .map(status)
        .transpose()?
        .unwrap_or(UserStatus::Active);
    let attributes = match &input.attributes {
        Some(a) => {
            parse_attributes(a).map_err(|e| Problem::validation(format!("attributes: {e}")))?
        }
        None => Default::default(),
    };
    name("first_name", &input.first_name)?;
    name("last_name", &input.last_name)?;
    let guard = gw.policy.write_lock().await;
    let fields = {
        let state = gw.policy.read();
        let account_type_name = input
            .account_type
            .clone()
            .unwrap_or_else(|| state.settings.default_account_type.clone());
        account_type(&state, &account_type_name)?;
        UserFields {
            team_ids: team_ids(&state, input.teams.as_deref().unwrap_or_default())?,
            email,
            kind,
            status,
            first_name: input.first_name,
            last_name: input.last_name,
            account_type: account_type_name,
            attributes,
            client_id: None,
        }
    };
    let conflict = "A user with this email exists already.";
    let id = gw
        .store
        .insert_user(&fields, gw.now_millis())
        .await
        .map_err(store_error(conflict))?
        .ok_or_else(|| Problem::conflict(conflict))?;
    gw.changed(&guard, &[Change::User(id)]).await.map_err(db)?;
    let user = find(gw, id).await?;
    let state = gw.policy.read();
    record_user(
        gw,
        actor,
        audit::USER_CREATED,
        user.email.as_str(),
        format!(
            "{} user created; teams: {}; account_type: {}",
            kind.as_str(),
            state.team_names(&user.team_ids).join(", "),
            user.account_type
        ),
    );
    Ok(UserView::new(&user, &state))
}

fn merge_attributes(fields: &mut UserFields, patch: &Map<String, Value>) -> AdminResult<()> {
    let err = |e: String| Problem::validation(format!("attributes: {e}"));
    for (key, value) in patch {
        AttributeName::parse(key).map_err(err)?;
        match value {
            Value::Null => {
                fields.attributes.remove(key);
            }
            Value::String(v) => {
                check_attribute_value(key, v).map_err(err)?;
                fields.attributes.insert(key.clone(), v.clone());
            }
            _ => {
                return Err(err(format!(
                    "the attribute {key:?} must be a string, or null to remove it"
                )));
            }
        }
    }
    if fields.attributes.len() > crate::domain::MAX_ATTRIBUTES {
        return Err(err(format!(
            "at most {} attributes are allowed",
            crate::domain::MAX_ATTRIBUTES
        )));
    }
    Ok(())
}

pub async fn patch(
    gw: &Gateway,
    actor: &Actor,
    id: UserId,
    input: PatchUser,
) -> AdminResult<UserView> {
    let guard = gw.policy.write_lock().await;
    let user = find(gw, id).await?;
    let mut fields = user.fields();
    {
        let state = gw.policy.read();
        if let Some(teams) = &input.teams {
            fields.team_ids = team_ids(&state, teams)?;
        }
        if let Some(a) = &input.account_type {
            account_type(&state, a)?;
            fields.account_type = a.clone();
        }
    }
    if let Some(attrs) = &input.attributes {
        merge_attributes(&mut fields, attrs)?;
    }
    if let Some(s) = &input.status {
        fields.status = status(s)?;
    }
    if let Some(first) = input.first_name {
        name("first_name", &first)?;
        fields.first_name = first;
    }
    if let Some(last) = input.last_name {
        name("last_name", &last)?;
        fields.last_name = last;
    }
    let changes = describe_changes(&gw.policy.read(), &user, &fields);
    if !changes.is_empty() {
        gw.store
            .update_user(id, &fields, gw.now_millis())
            .await
            .map_err(db)?;
        gw.changed(&guard, &[Change::User(id)]).await.map_err(db)?;
        record_user(
            gw,
            actor,
            audit::USER_UPDATED,
            user.email.as_str(),
            changes.join("; "),
        );
    }
    let updated = find(gw, id).await?;
    Ok(UserView::new(&updated, &gw.policy.read()))
}

pub async fn delete(gw: &Gateway, actor: &Actor, id: UserId) -> AdminResult<()> {
    let user = find(gw, id).await?;
    let guard = gw.policy.write_lock().await;
    gw.store.delete_user(id).await.map_err(db)?;
    gw.changed(&guard, &[Change::User(id)]).await.map_err(db)?;
    record_change(gw, actor, format!("user {} deleted", user.email));
    Ok(())
}

/// Ends every session of the user at once.
pub async fn revoke_sessions(gw: &Gateway, actor: &Actor, id: UserId) -> AdminResult<()> {
    let user = find(gw, id).await?;
    let guard = gw.policy.write_lock().await;
    gw.store
        .bump_session_epoch(id, gw.now_millis())
        .await
        .map_err(db)?;
    gw.changed(&guard, &[Change::User(id)]).await.map_err(db)?;
    record_change(gw, actor, format!("sessions of {} revoked", user.email));
    Ok(())
}
