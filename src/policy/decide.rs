//! The access decision (SPEC §5, and company separation of §6): the one
//! place that answers "may this user open this workbook, and with which
//! permissions". The handshake, every session request, the tenant directory
//! and the admin `explain` endpoint all call [`PolicyState::decide`].
//!
//! Reasons are only written when the caller asks for them ([`Reasons`]); the
//! hot path passes [`NoTrace`] and allocates nothing for them.

use std::sync::Arc;

use super::state::PolicyState;
use crate::domain::{
    Attributes, Level, Permission, PermissionSet, TeamId, UserStatus, WorkbookSource, WorkspaceId,
};
use crate::error::ErrorCode;
use crate::store::{GrantRecord, UserRecord, WorkbookRecord};

/// Nested workspaces deeper than this are not followed (and cannot be made
/// by the admin API); it bounds the walk if the data were ever cyclic.
pub const MAX_WORKSPACE_DEPTH: usize = 32;

/// Who is asking: a stored user, or the state a handshake would give one.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub status: UserStatus,
    pub account_type: &'a str,
    pub team_ids: &'a [TeamId],
    pub attributes: &'a Attributes,
}

impl<'a> From<&'a UserRecord> for Subject<'a> {
    fn from(u: &'a UserRecord) -> Self {
        Subject {
            status: u.status,
            account_type: &u.account_type,
            team_ids: &u.team_ids,
            attributes: &u.attributes,
        }
    }
}

/// Collects the reasons of a decision, or not.
pub trait Trace {
    fn note(&mut self, reason: impl FnOnce() -> String);
}

/// For the hot path: reasons are never built.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline]
    fn note(&mut self, _: impl FnOnce() -> String) {}
}

/// For `explain`: every step in words.
#[derive(Debug, Default)]
pub struct Reasons(pub Vec<String>);

impl Trace for Reasons {
    fn note(&mut self, reason: impl FnOnce() -> String) {
        self.0.push(reason());
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `None` when access is allowed.
    pub denied: Option<ErrorCode>,
    pub level: Option<Level>,
    pub permissions: PermissionSet,
    /// With company separation, the company whose rows the user may see;
    /// `None` when rows are not limited.
    pub company: Option<String>,
}

impl Decision {
    fn deny(code: ErrorCode) -> Decision {
        Decision {
            denied: Some(code),
            level: None,
            permissions: PermissionSet::EMPTY,
            company: None,
        }
    }

    pub fn is_allowed(&self) -> bool {
        self.denied.is_none()
    }
}

/// The source a version of a workbook is served from.
pub fn source_for<'a>(
    workbook: &'a WorkbookRecord,
    tag: Option<&str>,
) -> Option<&'a WorkbookSource> {
    match tag {
        None => Some(&workbook.source),
        Some(t) => workbook.tags.get(t),
    }
}

/// What a grant the decision looks at is on: borrowed, so the hot path
/// builds no [`GrantTarget`](crate::store::GrantTarget).
#[derive(Debug, Clone, Copy)]
enum On<'a> {
    Workbook(&'a str),
    Workspace(WorkspaceId),
}

fn describe(on: On<'_>, state: &PolicyState) -> String {
    match on {
        On::Workbook(id) => format!("workbook {id:?}"),
        On::Workspace(id) => match state.workspace(id) {
            Some(ws) => format!("workspace {:?} (id {id})", ws.name),
            None => format!("workspace {id}"),
        },
    }
}

fn version(tag: Option<&str>) -> String {
    tag.map_or_else(
        || "the published version".to_owned(),
        |t| format!("tag {t:?}"),
    )
}

impl PolicyState {
    /// The grants on the workbook and on each workspace containing it,
    /// innermost first; allocates nothing.
    fn grants_around<'s>(
        &'s self,
        workbook: &'s WorkbookRecord,
    ) -> impl Iterator<Item = (On<'s>, &'s [Arc<GrantRecord>])> {
        let own = (
            On::Workbook(&workbook.id),
            self.grants_on_workbook(&workbook.id),
        );
        let workspaces = std::iter::successors(workbook.workspace, |id| {
            self.workspace(*id).and_then(|ws| ws.parent)
        })
        .take(MAX_WORKSPACE_DEPTH)
        .map(|id| (On::Workspace(id), self.grants_on_workspace(id)));
        std::iter::once(own).chain(workspaces)
    }

    /// May `subject` open version `tag` of `workbook_id`, and with what?
    pub fn decide(
        &self,
        subject: Subject<'_>,
        workbook_id: &str,
        tag: Option<&str>,
        trace: &mut impl Trace,
    ) -> Decision {
        if subject.status == UserStatus::Deactivated {
            trace.note(|| "The user is deactivated.".into());
            return Decision::deny(ErrorCode::UserDeactivated);
        }
        let Some(workbook) = self.workbook(workbook_id) else {
            trace.note(|| format!("There is no workbook {workbook_id:?}."));
            return Decision::deny(ErrorCode::AccessDenied);
        };
        let Some(source) = source_for(workbook, tag) else {
            trace.note(|| format!("Workbook {workbook_id:?} has no {}.", version(tag)));
            return Decision::deny(ErrorCode::AccessDenied);
        };
        let Some(account_type) = self.account_type(subject.account_type) else {
            trace.note(|| {
                format!(
                    "The account type {:?} does not exist.",
                    subject.account_type
                )
            });
            return Decision::deny(ErrorCode::AccessDenied);
        };
        trace.note(|| {
            let teams = self.team_names(subject.team_ids);
            if teams.is_empty() {
                "The user is in no team.".into()
            } else {
                format!("The user's teams: {}.", teams.join(", "))
            }
        });

        let mut best: Option<Level> = None;
        for (on, grants) in self.grants_around(workbook) {
            for grant in grants {
                if grant.tag.as_deref() != tag || !subject.team_ids.contains(&grant.team_id) {
                    continue;
                }
                trace.note(|| {
                    let team = self
                        .team(grant.team_id)
                        .map_or_else(|| grant.team_id.to_string(), |t| format!("{:?}", t.name));
                    format!(
                        "Team {team} has {} on {} for {}.",
                        grant.level,
                        describe(on, self),
                        version(tag)
                    )
                });
                best = best.max(Some(grant.level));
            }
        }
        let Some(level) = best else {
            trace.note(|| {
                format!(
                    "No team of the user has a grant on workbook {workbook_id:?} or a workspace containing it for {}.",
                    version(tag)
                )
            });
            return Decision::deny(ErrorCode::AccessDenied);
        };

        let separation = &self.settings.company_separation;
        let mut row_company = None;
        if separation.enabled && source.company_field().is_some() {
            let company = subject
                .attributes
                .get(&separation.attribute)
                .filter(|c| !c.is_empty());
            if account_type.permissions.contains(Permission::AllCompanies) {
                trace.note(|| format!("Account type {:?} sees all companies.", account_type.name));
            } else if let Some(company) = company {
                trace.note(|| format!("Rows are limited to company {company:?}."));
                row_company = Some(company.clone());
            } else {
                trace.note(|| {
                    format!(
                        "Company separation is on and the user has no {:?} attribute.",
                        separation.attribute
                    )
                });
                return Decision::deny(ErrorCode::CompanyRequired);
            }
        }

        let permissions = account_type.permissions.effective(level);
        trace.note(|| {
            format!(
                "Effective level {level}; account type {:?} ({}) gives the permissions: {}.",
                account_type.name,
                account_type.permissions.names().join(", "),
                permissions.names().join(", ")
            )
        });
        Decision {
            denied: None,
            level: Some(level),
            permissions,
            company: row_company,
        }
    }
}
