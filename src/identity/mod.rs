//! Who is this user (SPEC §4): find the user a verified token names, or
//! plan the embed user it would create, and what its claims would change.
//!
//! Planning is pure and reads only the in-memory policy. Nothing is written
//! here: the handshake first decides access against the *planned* user and
//! only writes the plan when the whole handshake succeeds, so a denied
//! handshake changes no user, membership or attribute.

use std::sync::Arc;

use crate::domain::{Attributes, TeamId, UserKind, UserStatus};
use crate::error::{ErrorCode, Problem};
use crate::policy::{Client, PolicyState, Subject};
use crate::store::{UserFields, UserRecord};
use crate::token::Claims;

pub const NOT_PROVISIONED_MESSAGE: &str =
    "You don't have permission to access this page. Automatic updating of users is disabled.";

/// What a handshake would do to the user.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Use the stored user unchanged. `note` says why claims were ignored.
    Existing {
        user: Arc<UserRecord>,
        note: Option<String>,
    },
    /// Create a new embed user.
    Create { fields: UserFields },
    /// Update an embed user; `changes` lists what changes, for the audit log.
    Update {
        user: Arc<UserRecord>,
        fields: UserFields,
        changes: Vec<String>,
    },
}

impl Plan {
    /// The user as it would be after the plan, for the access decision.
    pub fn subject(&self) -> Subject<'_> {
        match self {
            Plan::Existing { user, .. } => Subject::from(&**user),
            Plan::Create { fields } | Plan::Update { fields, .. } => Subject {
                status: fields.status,
                account_type: &fields.account_type,
                team_ids: &fields.team_ids,
                attributes: &fields.attributes,
            },
        }
    }

    pub fn writes(&self) -> bool {
        !matches!(self, Plan::Existing { .. })
    }
}

fn denied(code: ErrorCode, message: impl Into<String>) -> Problem {
    Problem::new(code, message)
}

/// Resolves the claimed team names to ids: every name must be allowed for
/// the client (checked first, so a client never learns which of another
/// customer's teams exist), then exist.
fn resolve_teams(
    state: &PolicyState,
    client: &Client,
    names: &[crate::domain::TeamName],
) -> Result<Vec<TeamId>, Problem> {
    check_allowed_teams(client, names)?;
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let team = state.team_by_name(name.as_str()).ok_or_else(|| {
            denied(
                ErrorCode::UnknownTeam,
                format!("The team {:?} named in the token does not exist. Create it first, or remove it from the teams claim.", name.as_str()),
            )
        })?;
        ids.push(team.id);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn check_allowed_teams(client: &Client, names: &[crate::domain::TeamName]) -> Result<(), Problem> {
    let allowed = &client.record.allowed_teams;
    if allowed.is_empty() {
        return Ok(());
    }
    match names
        .iter()
        .find(|n| !allowed.iter().any(|a| a == n.as_str()))
    {
        Some(name) => Err(denied(
            ErrorCode::TeamNotAllowed,
            format!(
                "Embed client {:?} may not name the team {:?}. Its allowed teams are set by an administrator.",
                client.id(),
                name.as_str()
            ),
        )),
        None => Ok(()),
    }
}

fn check_account_type(state: &PolicyState, name: &str) -> Result<(), Problem> {
    if state.account_type(name).is_none() {
        return Err(denied(
            ErrorCode::UnknownAccountType,
            format!(
                "The account type {name:?} does not exist. Use one of the gateway's account types."
            ),
        ));
    }
    Ok(())
}

fn teams_required(email: &str, empty: bool) -> Problem {
    let what = if empty { "an empty" } else { "no" };
    denied(
        ErrorCode::TeamsClaimRequired,
        format!(
            "The token has {what} \"teams\" claim for {email}; embed users need at least one team. Add the user's teams to the token."
        ),
    )
}

/// Plans the handshake's effect on the user named by `claims`.
pub fn plan(state: &PolicyState, client: &Client, claims: &Claims) -> Result<Plan, Problem> {
    let email = claims.email.as_str();
    let Some(user) = state.user_by_email(email) else {
        return plan_new_user(state, client, claims);
    };
    let user = Arc::clone(user);
    if user.status == UserStatus::Deactivated {
        return Err(denied(
            ErrorCode::UserDeactivated,
            format!(
                "The user {email} is deactivated. Ask an administrator of the gateway to reactivate it."
            ),
        ));
    }
    match user.kind {
        UserKind::Internal => {
            if !client.record.allow_internal_users {
                return Err(denied(
                    ErrorCode::InternalUserNotAllowed,
                    format!(
                        "{email} is an internal user, and embed client {:?} is not allowed to sign for internal users.",
                        client.id()
                    ),
                ));
            }
            let ignored: Vec<&str> = [
                ("teams", claims.teams.is_some()),
                ("account_type", claims.account_type.is_some()),
                ("user_attributes", claims.user_attributes.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, present)| present.then_some(name))
            .collect();
            let note = (!ignored.is_empty()).then(|| {
                format!(
                    "internal user: the {} claim(s) were ignored; stored values used",
                    ignored.join(", ")
                )
            });
            Ok(Plan::Existing { user, note })
        }
        UserKind::Embed => plan_embed_update(state, client, claims, user),
    }
}

fn plan_new_user(state: &PolicyState, client: &Client, claims: &Claims) -> Result<Plan, Problem> {
    if !state.settings.auto_provisioning {
        return Err(denied(
            ErrorCode::UserNotProvisioned,
            NOT_PROVISIONED_MESSAGE,
        ));
    }
    let email = claims.email.as_str();
    let names = match &claims.teams {
        Some(names) if !names.is_empty() => names,
        Some(_) => return Err(teams_required(email, true)),
        None => return Err(teams_required(email, false)),
    };
    let team_ids = resolve_teams(state, client, names)?;
    let account_type = claims
        .account_type
        .clone()
        .unwrap_or_else(|| state.settings.default_account_type.clone());
    check_account_type(state, &account_type)?;
    Ok(Plan::Create {
        fields: UserFields {
            email: claims.email.clone(),
            kind: UserKind::Embed,
            status: UserStatus::Active,
            first_name: claims.first_name.clone(),
            last_name: claims.last_name.clone(),
            account_type,
            attributes: claims.user_attributes.clone().unwrap_or_default(),
            client_id: Some(client.id().to_owned()),
            team_ids,
        },
    })
}

fn plan_embed_update(
    state: &PolicyState,
    client: &Client,
    claims: &Claims,
    user: Arc<UserRecord>,
) -> Result<Plan, Problem> {
    let email = claims.email.as_str();
    if let Some(owner) = user
        .client_id
        .as_deref()
        .filter(|owner| *owner != client.id())
    {
        let _ = owner;
        return Err(denied(
            ErrorCode::UserBelongsToOtherClient,
            format!(
                "The user {email} belongs to another embed client. Sign its tokens with the client that created it."
            ),
        ));
    }
    if let Some(names) = &claims.teams {
        check_allowed_teams(client, names)?;
    }
    let mut fields = user.fields();
    fields.client_id = Some(client.id().to_owned());
    let mut changes = Vec::new();
    if user.client_id.is_none() {
        changes.push(format!("bound to embed client {}", client.id()));
    }
    if state.settings.auto_provisioning {
        if let Some(names) = &claims.teams {
            if names.is_empty() {
                return Err(teams_required(email, true));
            }
            fields.team_ids = resolve_teams(state, client, names)?;
        }
        if let Some(account_type) = &claims.account_type {
            check_account_type(state, account_type)?;
            fields.account_type = account_type.clone();
        }
        if let Some(attributes) = &claims.user_attributes {
            fields.attributes = attributes.clone();
        }
        if let Some(first) = &claims.first_name {
            fields.first_name = Some(first.clone());
        }
        if let Some(last) = &claims.last_name {
            fields.last_name = Some(last.clone());
        }
        changes.extend(describe_changes(state, &user, &fields));
    }
    if changes.is_empty() {
        Ok(Plan::Existing { user, note: None })
    } else {
        Ok(Plan::Update {
            user,
            fields,
            changes,
        })
    }
}

/// What differs between a stored user and the planned fields, in words.
pub fn describe_changes(state: &PolicyState, old: &UserRecord, new: &UserFields) -> Vec<String> {
    let mut out = Vec::new();
    let added: Vec<TeamId> = new
        .team_ids
        .iter()
        .filter(|t| !old.team_ids.contains(t))
        .copied()
        .collect();
    let removed: Vec<TeamId> = old
        .team_ids
        .iter()
        .filter(|t| !new.team_ids.contains(t))
        .copied()
        .collect();
    if !added.is_empty() {
        out.push(format!(
            "teams added: {}",
            state.team_names(&added).join(", ")
        ));
    }
    if !removed.is_empty() {
        out.push(format!(
            "teams removed: {}",
            state.team_names(&removed).join(", ")
        ));
    }
    if old.account_type != new.account_type {
        out.push(format!(
            "account_type: {} -> {}",
            old.account_type, new.account_type
        ));
    }
    if old.attributes != new.attributes {
        out.push(format!(
            "attributes: {}",
            describe_attributes(&old.attributes, &new.attributes)
        ));
    }
    if old.first_name != new.first_name {
        out.push("first_name changed".into());
    }
    if old.last_name != new.last_name {
        out.push("last_name changed".into());
    }
    if old.status != new.status {
        out.push(format!(
            "status: {} -> {}",
            old.status.as_str(),
            new.status.as_str()
        ));
    }
    out
}

fn describe_attributes(old: &Attributes, new: &Attributes) -> String {
    let mut parts = Vec::new();
    for (k, v) in new {
        match old.get(k) {
            None => parts.push(format!("{k} set to {v:?}")),
            Some(o) if o != v => parts.push(format!("{k} {o:?} -> {v:?}")),
            _ => {}
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(k)) {
        parts.push(format!("{k} removed"));
    }
    parts.join(", ")
}
