//! The JSON shapes of admin resources (SPEC §8). Timestamps are RFC 3339
//! UTC; secrets never appear here.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::{from_millis, rfc3339};
use crate::domain::{Attributes, WorkbookSource};
use crate::policy::PolicyState;
use crate::store::{
    AccountTypeRecord, AuditRecord, ClientRecord, GrantRecord, GrantTarget, TeamRecord, UserRecord,
    WorkbookRecord, WorkspaceRecord,
};

fn time(millis: i64) -> String {
    rfc3339(from_millis(millis))
}

/// An embed client.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    #[schema(value_type = String, example = "HS256")]
    pub algorithm: &'static str,
    pub allowed_origins: Vec<String>,
    pub allowed_teams: Vec<String>,
    pub allow_internal_users: bool,
    /// `active` or `revoked`.
    #[schema(value_type = String, example = "active")]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Until when the previous secret still verifies, after a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Only in the answers that create a secret (create, rotate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl ClientView {
    pub fn new(c: &ClientRecord, now_millis: i64) -> Self {
        ClientView {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            algorithm: c.algorithm.as_str(),
            allowed_origins: c.allowed_origins.clone(),
            allowed_teams: c.allowed_teams.clone(),
            allow_internal_users: c.allow_internal_users,
            status: c.status.as_str(),
            jwks_url: c.jwks_url.clone(),
            previous_valid_until: c
                .previous_valid_until
                .filter(|until| *until > now_millis && c.previous_secret.is_some())
                .map(time),
            created_at: time(c.created_at),
            updated_at: time(c.updated_at),
            secret: None,
        }
    }
}

/// A team.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// `private` or `public`.
    pub visibility: String,
    pub created_at: String,
}

impl From<&TeamRecord> for TeamView {
    fn from(t: &TeamRecord) -> Self {
        TeamView {
            id: t.id,
            name: t.name.clone(),
            description: t.description.clone(),
            visibility: t.visibility.clone(),
            created_at: time(t.created_at),
        }
    }
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    /// `embed` or `internal`.
    #[schema(value_type = String, example = "embed")]
    pub kind: &'static str,
    /// `active` or `deactivated`.
    #[schema(value_type = String, example = "active")]
    pub status: &'static str,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub account_type: String,
    /// Team names.
    pub teams: Vec<String>,
    #[schema(value_type = BTreeMap<String, String>)]
    pub attributes: Attributes,
    /// The embed client that provisioned an embed user.
    pub client_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_seen_at: Option<String>,
}

impl UserView {
    pub fn new(u: &UserRecord, state: &PolicyState) -> Self {
        UserView {
            id: u.id,
            email: u.email.to_string(),
            kind: u.kind.as_str(),
            status: u.status.as_str(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            account_type: u.account_type.clone(),
            teams: state.team_names(&u.team_ids),
            attributes: u.attributes.clone(),
            client_id: u.client_id.clone(),
            created_at: time(u.created_at),
            updated_at: time(u.updated_at),
            last_seen_at: u.last_seen_at.map(time),
        }
    }
}

/// An account type: the permissions its users get.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountTypeView {
    pub name: String,
    #[schema(value_type = Vec<String>, example = json!(["view", "explore"]))]
    pub permissions: Vec<&'static str>,
    /// Built-in account types cannot be deleted.
    pub builtin: bool,
}

impl From<&AccountTypeRecord> for AccountTypeView {
    fn from(a: &AccountTypeRecord) -> Self {
        AccountTypeView {
            name: a.name.clone(),
            permissions: a.permissions.names(),
            builtin: a.builtin,
        }
    }
}

/// A workspace (folder of workbooks).
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceView {
    pub id: i64,
    pub name: String,
    pub parent: Option<i64>,
}

impl From<&WorkspaceRecord> for WorkspaceView {
    fn from(w: &WorkspaceRecord) -> Self {
        WorkspaceView {
            id: w.id,
            name: w.name.clone(),
            parent: w.parent,
        }
    }
}

/// A workbook, with its tagged versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkbookView {
    pub id: String,
    pub name: String,
    pub workspace: Option<i64>,
    /// The published version.
    pub source: WorkbookSource,
    /// Tagged versions by tag name.
    pub tags: BTreeMap<String, WorkbookSource>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&WorkbookRecord> for WorkbookView {
    fn from(w: &WorkbookRecord) -> Self {
        WorkbookView {
            id: w.id.clone(),
            name: w.name.clone(),
            workspace: w.workspace,
            source: w.source.clone(),
            tags: w.tags.clone(),
            created_at: time(w.created_at),
            updated_at: time(w.updated_at),
        }
    }
}

/// A grant: a team's level on a workbook or a workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    pub id: i64,
    /// The team's name.
    pub team: String,
    pub workbook: Option<String>,
    pub workspace: Option<i64>,
    /// `view`, `explore` or `edit`.
    #[schema(value_type = String, example = "view")]
    pub level: &'static str,
    pub tag: Option<String>,
    pub created_at: String,
}

impl GrantView {
    pub fn new(g: &GrantRecord, state: &PolicyState) -> Self {
        let (workbook, workspace) = match &g.target {
            GrantTarget::Workbook(id) => (Some(id.clone()), None),
            GrantTarget::Workspace(id) => (None, Some(*id)),
        };
        GrantView {
            id: g.id,
            team: state
                .team(g.team_id)
                .map_or_else(|| g.team_id.to_string(), |t| t.name.clone()),
            workbook,
            workspace,
            level: g.level.as_str(),
            tag: g.tag.clone(),
            created_at: time(g.created_at),
        }
    }
}

/// An audit log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub at: String,
    pub event: String,
    pub request_id: Option<String>,
    pub client_id: Option<String>,
    pub email: Option<String>,
    pub workbook: Option<String>,
    /// `allowed` or `denied`.
    pub outcome: String,
    /// The error code of a denied request.
    pub code: Option<String>,
    pub remote_addr: Option<String>,
    pub note: Option<String>,
}

impl From<AuditRecord> for AuditView {
    fn from(a: AuditRecord) -> Self {
        AuditView {
            id: a.id,
            at: rfc3339(from_millis(a.at)),
            event: a.event,
            request_id: a.request_id,
            client_id: a.client_id,
            email: a.email,
            workbook: a.workbook,
            outcome: a.outcome,
            code: a.code,
            remote_addr: a.remote_addr,
            note: a.note,
        }
    }
}
