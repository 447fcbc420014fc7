//! `GET /admin/api/audit`: the audit log, newest first, filterable.

use serde::Deserialize;
use utoipa::IntoParams;

use super::views::AuditView;
use super::{AdminResult, db};
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::store::AuditFilter;

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// The filters of `GET /admin/api/audit`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this email.
    pub email: Option<String>,
    /// `handshake`, `user_created`, `user_updated`, `settings_changed` or `admin_change`.
    pub event: Option<String>,
    /// `allowed` or `denied`.
    pub outcome: Option<String>,
    /// At most this many entries (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

pub async fn list(gw: &Gateway, q: AuditQuery) -> AdminResult<Vec<AuditView>> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::validation(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    if let Some(o) = q
        .outcome
        .as_deref()
        .filter(|o| !matches!(*o, "" | "allowed" | "denied"))
    {
        return Err(Problem::validation(format!(
            "outcome {o:?} must be \"allowed\" or \"denied\""
        )));
    }
    // Entries are written in the background: include everything recorded so far.
    gw.recorder.flush().await;
    let filter = AuditFilter {
        email: q
            .email
            .filter(|e| !e.is_empty())
            .map(|e| e.to_ascii_lowercase()),
        event: q.event.filter(|e| !e.is_empty()),
        outcome: q.outcome.filter(|o| !o.is_empty()),
        limit,
    };
    Ok(gw
        .store
        .list_audit(&filter)
        .await
        .map_err(db)?
        .into_iter()
        .map(AuditView::from)
        .collect())
}
