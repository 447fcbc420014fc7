//! `POST /admin/api/tokens/inspect`: every rule of §3 and §4 checked
//! against a token, with the same functions the handshake runs, without
//! consuming its `jti` or changing anything.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{AdminResult, db};
use crate::gateway::Gateway;
use crate::identity::{self, Plan};
use crate::token::inspect::{Check, inspect as inspect_token};

/// A token to inspect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectRequest {
    pub token: String,
}

/// Every rule checked against the token.
#[derive(Debug, Serialize, ToSchema)]
pub struct InspectResponse {
    /// Every check passed.
    pub valid: bool,
    /// The code of the first failed check.
    #[schema(value_type = Option<String>)]
    pub code: Option<&'static str>,
    /// The decoded JOSE header, when it could be read.
    #[schema(value_type = Option<Object>)]
    pub header: Option<Map<String, Value>>,
    /// The decoded claims, when they could be read.
    #[schema(value_type = Option<Object>)]
    pub claims: Option<Map<String, Value>>,
    pub checks: Vec<Check>,
}

fn describe(plan: &Plan) -> String {
    match plan {
        Plan::Existing { user, note } => match note {
            Some(note) => format!(
                "existing {} user {}; {note}",
                user.kind.as_str(),
                user.email
            ),
            None => format!(
                "existing {} user {}, unchanged",
                user.kind.as_str(),
                user.email
            ),
        },
        Plan::Create { fields } => format!(
            "a handshake would create the embed user {} (account type {})",
            fields.email, fields.account_type
        ),
        Plan::Update { user, changes, .. } => {
            format!(
                "a handshake would update {}: {}",
                user.email,
                changes.join("; ")
            )
        }
    }
}

pub async fn inspect(gw: &Gateway, request: InspectRequest) -> AdminResult<InspectResponse> {
    let now = gw.now();
    let mut ins = {
        let state = gw.policy.read();
        let keys = crate::jwks::GatewayKeys {
            state: &state,
            jwks: &gw.jwks,
        };
        inspect_token(&request.token, &keys, &gw.rules, now)
    };
    let target = ins.client_id.clone().zip(ins.typed.clone());
    match &target {
        Some((client, claims)) => {
            let used = gw.store.jti_used(client, &claims.jti).await.map_err(db)?;
            ins.checks.push(if used {
                Check::failed_with(
                    "replay",
                    crate::error::ErrorCode::TokenReplayed,
                    format!("the jti {:?} was already used", claims.jti),
                )
            } else {
                Check::passed(
                    "replay",
                    "the jti has not been used (inspecting does not use it)",
                )
            });
        }
        None => ins
            .checks
            .push(Check::skipped("replay", "no client or no valid jti")),
    }
    match &target {
        Some((client_id, claims)) => {
            let state = gw.policy.read();
            let check = match state.active_client(client_id) {
                Some(client) => match identity::plan(&state, client, claims) {
                    Ok(plan) => Check::passed("user", describe(&plan)),
                    Err(p) => Check::failed_with("user", p.code, p.message),
                },
                None => Check::skipped("user", "no active client"),
            };
            ins.checks.push(check);
        }
        None => ins.checks.push(Check::skipped(
            "user",
            "no client or the claims are invalid",
        )),
    }
    Ok(InspectResponse {
        valid: ins.all_ok(),
        code: ins.first_code().map(|c| c.as_str()),
        header: ins.header,
        claims: ins.claims,
        checks: ins.checks,
    })
}
