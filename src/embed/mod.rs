//! The embed flow (SPEC §2), free of HTTP: the handshake (token → user →
//! decision → session) and the authorisation of every session request.

mod handshake;
mod query;

pub use handshake::{HandshakeRequest, HandshakeSuccess, handshake};
pub use query::{EmbedQuery, TokenParam};

use std::sync::Arc;

use crate::domain::WorkbookSource;
use crate::error::{ErrorCode, Problem};
use crate::gateway::Gateway;
use crate::policy::{Decision, NoTrace, Subject, source_for};
use crate::session::Session;
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
    pub source: WorkbookSource,
    pub decision: Decision,
    pub team_names: Vec<String>,
}

/// Checks a session request against the current in-memory policy: no
/// database access.
pub fn authorize_session<'a>(
    gw: &Gateway,
    cookie_headers: impl Iterator<Item = &'a str>,
    workbook: &str,
    tag: Option<&str>,
) -> Result<Authorized, Problem> {
    let now = gw.now();
    let state = gw.policy.read();
    let session = gw
        .sessions
        .validate(&state, cookie_headers, workbook, now)?;
    let decision = state.decide(Subject::from(&*session.user), workbook, tag, &mut NoTrace);
    if let Some(code) = decision.denied {
        return Err(denial(code));
    }
    let wb = state
        .workbook(workbook)
        .ok_or_else(|| denial(ErrorCode::AccessDenied))?;
    let source = source_for(wb, tag)
        .cloned()
        .ok_or_else(|| denial(ErrorCode::AccessDenied))?;
    Ok(Authorized {
        team_names: state.team_names(&session.user.team_ids),
        workbook: Arc::clone(wb),
        source,
        decision,
        session,
    })
}
