//! What the store reads and writes: one record type per table (or per
//! aggregate, such as a user with its memberships or a workbook with its
//! tags). Timestamps are Unix milliseconds.

use std::collections::BTreeMap;

use crate::domain::{
    Attributes, Email, GrantId, Level, PermissionSet, TeamId, UserId, UserKind, UserStatus,
    WorkbookSource, WorkspaceId,
};
use crate::token::SigningAlgorithm;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStatus {
    Active,
    Revoked,
}

impl ClientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Active => "active",
            ClientStatus::Revoked => "revoked",
        }
    }
}

#[derive(Clone)]
pub struct ClientRecord {
    pub client_id: String,
    pub name: String,
    pub algorithm: SigningAlgorithm,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_valid_until: Option<i64>,
    pub public_key_pem: Option<String>,
    pub jwks_url: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_teams: Vec<String>,
    pub allow_internal_users: bool,
    pub status: ClientStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("algorithm", &self.algorithm)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountTypeRecord {
    pub name: String,
    pub permissions: PermissionSet,
    pub builtin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRecord {
    pub id: TeamId,
    pub name: String,
    pub description: String,
    pub visibility: String,
    pub created_at: i64,
}

/// A user with the ids of its teams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub email: Email,
    pub kind: UserKind,
    pub status: UserStatus,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub account_type: String,
    pub attributes: Attributes,
    /// The embed client the user belongs to (embed users), once bound.
    pub client_id: Option<String>,
    /// Sessions issued before the last `revoke-sessions` carry a smaller epoch.
    pub session_epoch: i64,
    pub team_ids: Vec<TeamId>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_seen_at: Option<i64>,
}

/// The fields of a user that a write sets (everything but ids and times).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFields {
    pub email: Email,
    pub kind: UserKind,
    pub status: UserStatus,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub account_type: String,
    pub attributes: Attributes,
    pub client_id: Option<String>,
    pub team_ids: Vec<TeamId>,
}

impl UserFields {
    /// The user [`Store::insert_user`](super::Store::insert_user) writes
    /// with these fields as `id` at `now`, as reading it back would give it
    /// (the store suite checks that on both backends): what a first
    /// handshake puts into the policy without a read.
    pub fn into_new_record(self, id: UserId, now: i64) -> UserRecord {
        let mut team_ids = self.team_ids;
        team_ids.sort_unstable();
        UserRecord {
            id,
            email: self.email,
            kind: self.kind,
            status: self.status,
            first_name: self.first_name,
            last_name: self.last_name,
            account_type: self.account_type,
            attributes: self.attributes,
            client_id: self.client_id,
            session_epoch: 0,
            team_ids,
            created_at: now,
            updated_at: now,
            last_seen_at: None,
        }
    }
}

impl UserRecord {
    pub fn fields(&self) -> UserFields {
        UserFields {
            email: self.email.clone(),
            kind: self.kind,
            status: self.status,
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            account_type: self.account_type.clone(),
            attributes: self.attributes.clone(),
            client_id: self.client_id.clone(),
            team_ids: self.team_ids.clone(),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    pub email: Option<String>,
    pub kind: Option<UserKind>,
    pub team_id: Option<TeamId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRecord {
    pub id: WorkspaceId,
    pub name: String,
    pub parent: Option<WorkspaceId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkbookRecord {
    pub id: String,
    pub name: String,
    pub workspace: Option<WorkspaceId>,
    pub source: WorkbookSource,
    pub tags: BTreeMap<String, WorkbookSource>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantTarget {
    Workbook(String),
    Workspace(WorkspaceId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: GrantId,
    pub team_id: TeamId,
    pub target: GrantTarget,
    pub level: Level,
    pub tag: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Default, Clone)]
pub struct GrantFilter {
    pub team_id: Option<TeamId>,
    pub workbook: Option<String>,
    pub workspace: Option<WorkspaceId>,
}

/// One line of the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub request_id: Option<String>,
    pub client_id: Option<String>,
    pub email: Option<String>,
    pub workbook: Option<String>,
    pub outcome: String,
    pub code: Option<String>,
    pub remote_addr: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub email: Option<String>,
    pub event: Option<String>,
    pub outcome: Option<String>,
    pub limit: i64,
}
