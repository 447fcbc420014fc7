//! The tenant directory (SPEC §6): what an embedded page may look up about
//! the people and workbooks around its user. Everything is computed from
//! the user's own teams, so nothing outside them is ever listed, named or
//! counted: a customer cannot learn that other customers exist.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::policy::{Decision, NoTrace, PolicyState, Subject};
use crate::store::UserRecord;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Me {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub account_type: String,
    pub teams: Vec<String>,
    pub level: Option<&'static str>,
    pub permissions: Vec<&'static str>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct WorkbookEntry {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct UserEntry {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TeamEntry {
    pub name: String,
    pub description: String,
}

fn matches(q: Option<&str>, fields: &[&str]) -> bool {
    match q.map(str::trim).filter(|q| !q.is_empty()) {
        None => true,
        Some(q) => {
            let q = q.to_lowercase();
            fields.iter().any(|f| f.to_lowercase().contains(&q))
        }
    }
}

pub fn me(state: &PolicyState, user: &UserRecord, decision: &Decision) -> Me {
    Me {
        email: user.email.to_string(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        account_type: user.account_type.clone(),
        teams: state.team_names(&user.team_ids),
        level: decision.level.map(|l| l.as_str()),
        permissions: decision.permissions.names(),
    }
}

/// The workbooks (published versions) the user may open.
pub fn workbooks(state: &PolicyState, user: &UserRecord, q: Option<&str>) -> Vec<WorkbookEntry> {
    let mut out: Vec<WorkbookEntry> = state
        .workbooks()
        .filter(|wb| matches(q, &[&wb.id, &wb.name]))
        .filter(|wb| {
            state
                .decide(Subject::from(user), &wb.id, None, &mut NoTrace)
                .is_allowed()
        })
        .map(|wb| WorkbookEntry {
            id: wb.id.clone(),
            name: wb.name.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    out
}

/// Active users who share at least one team with the user (the user too).
pub fn users(state: &PolicyState, user: &UserRecord, q: Option<&str>) -> Vec<UserEntry> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for team in &user.team_ids {
        for member in state.members(*team) {
            if member.status != crate::domain::UserStatus::Active || !seen.insert(member.id) {
                continue;
            }
            let first = member.first_name.as_deref().unwrap_or("");
            let last = member.last_name.as_deref().unwrap_or("");
            if !matches(q, &[member.email.as_str(), first, last]) {
                continue;
            }
            out.push(UserEntry {
                email: member.email.to_string(),
                first_name: member.first_name.clone(),
                last_name: member.last_name.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.email.cmp(&b.email));
    out
}

/// The user's own teams.
pub fn teams(state: &PolicyState, user: &UserRecord) -> Vec<TeamEntry> {
    let mut out: Vec<TeamEntry> = user
        .team_ids
        .iter()
        .filter_map(|id| state.team(*id))
        .map(|t| TeamEntry {
            name: t.name.clone(),
            description: t.description.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
