//! Validated values of the domain: parsed once at the edge, trusted after.
//!
//! An [`Email`] is always lower-case and well-formed, a [`WorkbookId`] always
//! safe in a URL path, and so on. Parsing fails with a message that says what
//! is wrong, and the caller decides which error code that becomes.

mod access;
mod attributes;
mod email;
mod names;
mod source;

pub use access::{Level, Permission, PermissionSet};
pub use attributes::Attributes;
pub use email::Email;
pub use names::{
    AttributeName, ClientId, MAX_ATTRIBUTE_VALUE_LEN, MAX_ATTRIBUTES, TagName, TeamName,
    WorkbookId, check_attribute_value, parse_attributes,
};
pub use source::WorkbookSource;

/// Ids the gateway generates (users, teams, workspaces, grants).
pub type UserId = i64;
pub type TeamId = i64;
pub type WorkspaceId = i64;
pub type GrantId = i64;

/// Who created a user, which decides whether token claims may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserKind {
    /// Created (or adopted) from token claims; kept in sync with them.
    Embed,
    /// Created by an admin; token claims never change it.
    Internal,
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Embed => "embed",
            UserKind::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "embed" => Some(UserKind::Embed),
            "internal" => Some(UserKind::Internal),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Deactivated,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Deactivated => "deactivated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(UserStatus::Active),
            "deactivated" => Some(UserStatus::Deactivated),
            _ => None,
        }
    }
}

/// Visible as a hint in the admin API; access never depends on it.
pub fn is_printable_text(s: &str) -> bool {
    !s.chars().any(char::is_control)
}
