//! The token inspector's view of §3: every rule checked and reported, with
//! the same functions [`super::verify`] runs, instead of stopping at the
//! first failure. Nothing is consumed or written.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::claims::{
    TimeRules, check_audience, check_expiry, check_issuer, check_lifetime, check_not_before,
    check_required, check_types,
};
use super::error::TokenError;
use super::keys::KeyLookup;
use super::shape::{MAX_TOKEN_BYTES, RawToken};
use crate::error::ErrorCode;

/// The outcome of one rule.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct Check {
    #[schema(value_type = String)]
    pub rule: &'static str,
    pub ok: bool,
    pub detail: String,
    /// The error code when the rule failed.
    #[schema(value_type = Option<String>)]
    pub code: Option<ErrorCode>,
    /// The rule could not be checked because an earlier one failed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

impl Check {
    pub fn passed(rule: &'static str, detail: impl Into<String>) -> Check {
        Check {
            rule,
            ok: true,
            detail: detail.into(),
            code: None,
            skipped: false,
        }
    }

    pub fn failed(rule: &'static str, e: &TokenError) -> Check {
        Check::failed_with(rule, e.code, e.message.clone())
    }

    pub fn failed_with(rule: &'static str, code: ErrorCode, detail: String) -> Check {
        Check {
            rule,
            ok: false,
            detail,
            code: Some(code),
            skipped: false,
        }
    }

    pub fn skipped(rule: &'static str, why: &str) -> Check {
        Check {
            rule,
            ok: false,
            detail: format!("not checked: {why}"),
            code: None,
            skipped: true,
        }
    }

    fn from(rule: &'static str, result: Result<(), TokenError>, ok_detail: &str) -> Check {
        match result {
            Ok(()) => Check::passed(rule, ok_detail),
            Err(e) => Check::failed(rule, &e),
        }
    }
}

/// What the inspector learned about a token.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub header: Option<Map<String, Value>>,
    pub claims: Option<Map<String, Value>>,
    pub checks: Vec<Check>,
    /// The client id, when `kid` names an active client.
    pub client_id: Option<String>,
    /// The typed claims, when they passed the type rules.
    pub typed: Option<super::Claims>,
}

impl Inspection {
    /// Did every rule checked so far pass?
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The code of the first failing rule, in the contract's order.
    pub fn first_code(&self) -> Option<ErrorCode> {
        self.checks.iter().find_map(|c| c.code)
    }
}

/// Checks every rule of §3 but replay (which needs storage) on `token`.
pub fn inspect(token: &str, keys: &dyn KeyLookup, rules: &TimeRules, now: i64) -> Inspection {
    let mut checks = Vec::new();
    let mut out = Inspection {
        header: None,
        claims: None,
        checks: Vec::new(),
        client_id: None,
        typed: None,
    };
    let later = [
        "client",
        "algorithm",
        "signature",
        "required_claims",
        "claim_types",
        "issuer",
        "audience",
        "expiry",
        "not_before",
        "lifetime",
    ];
    if token.len() > MAX_TOKEN_BYTES {
        checks.push(Check::failed_with(
            "size",
            ErrorCode::TokenTooLarge,
            format!("{} bytes; the limit is {MAX_TOKEN_BYTES}", token.len()),
        ));
        checks.push(Check::skipped("shape", "the token is too large"));
        checks.extend(
            later
                .iter()
                .map(|r| Check::skipped(r, "the token is too large")),
        );
        out.checks = checks;
        return out;
    }
    checks.push(Check::passed("size", format!("{} bytes", token.len())));
    let raw = match RawToken::parse(token) {
        Ok(raw) => raw,
        Err(e) => {
            checks.push(Check::failed("shape", &e));
            checks.extend(
                later
                    .iter()
                    .map(|r| Check::skipped(r, "the token is malformed")),
            );
            out.checks = checks;
            return out;
        }
    };
    checks.push(Check::passed(
        "shape",
        "three base64url segments; header and payload are JSON objects",
    ));
    out.header = Some(raw.header.json.clone());
    out.claims = Some(raw.payload.clone());

    match keys.client_keys(&raw.header.kid) {
        None => {
            checks.push(Check::failed(
                "client",
                &TokenError::unknown_client(&raw.header.kid),
            ));
            checks.push(Check::skipped("algorithm", "no active client"));
            checks.push(Check::skipped("signature", "no active client"));
        }
        Some(client) => {
            out.client_id = Some(client.client_id.to_string());
            checks.push(Check::passed(
                "client",
                format!(
                    "kid names the active embed client {:?}",
                    client.client_id.as_str()
                ),
            ));
            match client.check_algorithm(&raw.header.alg) {
                Ok(()) => {
                    checks.push(Check::passed(
                        "algorithm",
                        format!("{} as registered", client.algorithm),
                    ));
                    checks.push(Check::from(
                        "signature",
                        client.check_signature(&raw, now),
                        "the signature verifies",
                    ));
                }
                Err(e) => {
                    checks.push(Check::failed("algorithm", &e));
                    checks.push(Check::skipped("signature", "the algorithm does not match"));
                }
            }
        }
    }

    checks.push(Check::from(
        "required_claims",
        check_required(&raw.payload),
        "sub (or email), jti, iat and exp are present",
    ));
    let issuer = out
        .client_id
        .clone()
        .unwrap_or_else(|| raw.header.kid.clone());
    match check_types(&raw.payload) {
        Err(e) if e.code == ErrorCode::TokenMissingClaim => {
            checks.push(Check::skipped("claim_types", "a required claim is missing"));
            checks.extend(
                ["issuer", "audience", "expiry", "not_before", "lifetime"]
                    .iter()
                    .map(|r| Check::skipped(r, "a required claim is missing")),
            );
        }
        Err(e) => {
            checks.push(Check::failed("claim_types", &e));
            checks.extend(
                ["issuer", "audience", "expiry", "not_before", "lifetime"]
                    .iter()
                    .map(|r| Check::skipped(r, "a claim has the wrong type")),
            );
        }
        Ok(typed) => {
            checks.push(Check::passed(
                "claim_types",
                "every claim has its type and follows its rule",
            ));
            checks.push(Check::from(
                "issuer",
                check_issuer(&typed, &issuer),
                "iss is absent or the client id",
            ));
            checks.push(Check::from(
                "audience",
                check_audience(&typed, rules),
                if rules.audience.is_some() {
                    "aud contains the configured audience"
                } else {
                    "no audience is configured"
                },
            ));
            let c = &typed.claims;
            checks.push(Check::from(
                "expiry",
                check_expiry(c, rules, now),
                "not expired",
            ));
            checks.push(Check::from(
                "not_before",
                check_not_before(c, rules, now),
                "iat and nbf are not in the future",
            ));
            checks.push(Check::from(
                "lifetime",
                check_lifetime(c, rules),
                "exp - iat is within the maximum",
            ));
            out.typed = Some(typed.claims);
        }
    }
    out.checks = checks;
    out
}
