//! Embed token verification (SPEC §3): the only code that reads a host app's
//! JWT.
//!
//! The checks run in the contract's order and the first that fails gives the
//! code: [`shape`] (size, segments, JSON, header), client lookup by `kid`,
//! the algorithm pinned by the client record (never chosen by the header),
//! the signature (computed by `jsonwebtoken`'s crypto backend), then the
//! [`claims`]. Replay (the one-time `jti`) needs storage and is checked by the
//! caller once everything here has passed.
//!
//! Nothing here reads the wall clock: `now` is a parameter.

pub mod claims;
mod error;
pub mod inspect;
mod keys;
pub mod shape;
mod strict_json;

pub use claims::{Claims, TimeRules};
pub use error::TokenError;
pub use keys::{ClientKeys, KeyLookup, SigningAlgorithm, VerificationKey};
pub use shape::{MAX_TOKEN_BYTES, RawToken};

use crate::domain::ClientId;

/// A token that passed every check of §3 but replay.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub client_id: ClientId,
    pub claims: Claims,
}

/// Verifies `token` for the client its `kid` names, at `now` (Unix seconds).
pub fn verify(
    token: &str,
    keys: &dyn KeyLookup,
    rules: &TimeRules,
    now: i64,
) -> Result<VerifiedToken, TokenError> {
    let raw = RawToken::parse(token)?;
    let client = keys
        .client_keys(&raw.header.kid)
        .ok_or_else(|| TokenError::unknown_client(&raw.header.kid))?;
    let id = client.client_id.as_str();
    client
        .check_algorithm(&raw.header.alg)
        .and_then(|()| client.check_signature(&raw, now))
        .map_err(|e| e.for_client(id))?;
    let claims =
        Claims::from_payload(&raw.payload, id, rules, now).map_err(|e| e.for_client(id))?;
    Ok(VerifiedToken {
        client_id: client.client_id.clone(),
        claims,
    })
}
