//! `GET /admin/api/explain`: the decision a handshake would make now for a
//! stored user, and why, from the same decision function.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AdminResult;
use crate::domain::Email;
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::identity::NOT_PROVISIONED_MESSAGE;
use crate::policy::{Reasons, Subject};

/// The question of `GET /admin/api/explain`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// A stored user's email.
    pub email: String,
    /// A workbook id.
    pub workbook: String,
    /// A tag of the workbook; the published version when absent.
    pub tag: Option<String>,
}

/// The decision a handshake would make now, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    pub allowed: bool,
    /// `view`, `explore` or `edit` when allowed.
    #[schema(value_type = Option<String>)]
    pub level: Option<&'static str>,
    #[schema(value_type = Vec<String>)]
    pub permissions: Vec<&'static str>,
    /// The error code a handshake would answer with when denied.
    #[schema(value_type = Option<String>)]
    pub code: Option<&'static str>,
    /// Which teams, grants, workspaces and account type decided.
    pub reasons: Vec<String>,
}

pub fn explain(gw: &Gateway, q: ExplainQuery) -> AdminResult<Explanation> {
    let email = Email::parse(&q.email).map_err(|e| Problem::validation(format!("email: {e}")))?;
    let tag = q.tag.as_deref().filter(|t| !t.is_empty());
    let state = gw.policy.read();
    let Some(user) = state.user_by_email(email.as_str()) else {
        let (code, reason) = if state.settings.auto_provisioning {
            (
                "teams_claim_required",
                format!(
                    "There is no user {email}; a handshake would create one from the token's teams claim, so the outcome depends on the token."
                ),
            )
        } else {
            (
                "user_not_provisioned",
                format!(
                    "There is no user {email}, and auto-provisioning is off: {NOT_PROVISIONED_MESSAGE}"
                ),
            )
        };
        return Ok(Explanation {
            allowed: false,
            level: None,
            permissions: Vec::new(),
            code: Some(code),
            reasons: vec![reason],
        });
    };
    let mut reasons = Reasons::default();
    reasons.0.push(format!(
        "User {email} is an {} user with account type {:?}.",
        user.kind.as_str(),
        user.account_type
    ));
    let decision = state.decide(Subject::from(&**user), &q.workbook, tag, &mut reasons);
    Ok(Explanation {
        allowed: decision.is_allowed(),
        level: decision.level.map(|l| l.as_str()),
        permissions: decision.permissions.names(),
        code: decision.denied.map(|c| c.as_str()),
        reasons: reasons.0,
    })
}
