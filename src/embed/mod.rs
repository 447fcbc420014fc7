//! The embed flow (SPEC §2), free of HTTP: the handshake (token → user →
//! decision → session) and the authorisation of every session request.

mod handshake;
mod provision;
mod query;

pub use handshake::{HandshakeRequest, HandshakeSuccess, handshake};
pub use provision::{Provisioner, Write, Written};
pub use query::{EmbedQuery, TokenParam};

use std::sync::Arc;

use crate::domain::WorkbookSource;
use crate::error::{ErrorCode, Problem};
use crate::gateway::Gateway;
use crate::policy::Change;
use crate::policy::{Decision, NoTrace, Subject, source_for};
use crate::session::{Session, SessionCheck};
use crate::store::WorkbookRecord;

/// What a denial says, by code: the same words for an unknown workbook and
/// a workbook the user may not see, so ids cannot be probed.
pub fn denial(code: ErrorCode) -> Problem {
    let message = match code {
        ErrorCode::AccessDenied => {
            "You do not have access to this workbook, or it does not exist. Ask the host app's administrator for access."
        }
        ErrorCode::CompanyRequired => {
            "Company separation requires that you are assigned to a company."
        }
        ErrorCode::UserDeactivated => {
            "This user is deactivated. Ask an administrator of the gateway to reactivate it."
        }
        _ => "Access denied.",
    };
    Problem::new(code, message)
}

/// A session request that may proceed, with everything content needs.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub session: Session,
    pub workbook: Arc<WorkbookRecord>,
    /// The version asked for; [`Authorized::source`] is its source.
    tag: Option<String>,
    pub decision: Decision,
    pub team_names: Vec<String>,
}

impl Authorized {
    /// Where the workbook (at the tag asked for) comes from: borrowed from
    /// the record rather than copied for every request.
    pub fn source(&self) -> &WorkbookSource {
        // The record is immutable and the tag was found in it before this
        // was built, so the fallback is never taken.
        source_for(&self.workbook, self.tag.as_deref()).unwrap_or(&self.workbook.source)
    }
}

/// Checks a session request against the current in-memory policy. The
/// database is read only when the cookie is newer than this instance's view
/// of its user or client (another instance issued it a moment ago, before
/// its change arrived here); then those two are reloaded and checked again,
/// once per session: when they are still missing (the user was deleted),
/// the session is refused from then on without reading the database.
pub async fn authorize_session(
    gw: &Gateway,
    cookie_headers: &[&str],
    workbook: &str,
    tag: Option<&str>,
) -> Result<Authorized, Problem> {
    match decide_session(gw, cookie_headers, workbook, tag) {
        Err(SessionCheck::Stale(claims)) => {
            let guard = gw.policy.write_lock().await;
            let changes = [Change::Client(claims.cid.clone()), Change::User(claims.uid)];
            for change in &changes {
                gw.policy
                    .refresh(&gw.store, &guard, change)
                    .await
                    .map_err(|_| Problem::unavailable())?;
            }
            drop(guard);
            let again = decide_session(gw, cookie_headers, workbook, tag);
            if let Err(SessionCheck::Stale(gone)) = &again {
                // Its next requests are refused without another reload.
                gw.sessions.mark_gone(gone);
            }
            again.map_err(SessionCheck::into_problem)
        }
        other => other.map_err(SessionCheck::into_problem),
    }
}

fn decide_session(
    gw: &Gateway,
    cookie_headers: &[&str],
    workbook: &str,
    tag: Option<&str>,
) -> Result<Authorized, SessionCheck> {
    let now = gw.now();
    let state = gw.policy.read();
    let session = gw
        .sessions
        .validate(&state, cookie_headers.iter().copied(), workbook, now)?;
    let decision = state.decide(Subject::from(&*session.user), workbook, tag, &mut NoTrace);
    if let Some(code) = decision.denied {
        return Err(SessionCheck::Invalid(denial(code)));
    }
    let wb = state
        .workbook(workbook)
        .ok_or_else(|| SessionCheck::Invalid(denial(ErrorCode::AccessDenied)))?;
    if source_for(wb, tag).is_none() {
        return Err(SessionCheck::Invalid(denial(ErrorCode::AccessDenied)));
    }
    Ok(Authorized {
        team_names: state.team_names(&session.user.team_ids),
        workbook: Arc::clone(wb),
        tag: tag.map(str::to_owned),
        decision,
        session,
    })
}
