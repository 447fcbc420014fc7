//! The identity assertion sent to upstream workbooks (SPEC §6): an ES256
//! JWT signed with the gateway's key from `keys/`, saying who the user is
//! and what the user may do. Upstreams verify it with
//! `GET /.well-known/jwks.json`.
//!
//! Signing ES256 on every proxied request would dominate the proxy's cost,
//! so an assertion is reused for [`REUSE_SECS`] for the same user state,
//! workbook, version and permissions; it stays valid for [`LIFETIME_SECS`].

use std::sync::Arc;

use dashmap::DashMap;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;

use crate::domain::{Attributes, PermissionSet};
use crate::keys::AssertionKey;
use crate::store::UserRecord;

/// `exp - iat` of every assertion.
pub const LIFETIME_SECS: i64 = 60;
/// How long one signed assertion is reused.
pub const REUSE_SECS: i64 = 10;
/// Above this many cached assertions, stale ones are swept.
const SWEEP_ABOVE: usize = 50_000;

#[derive(Debug, Serialize)]
pub struct AssertionClaims<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub sub: &'a str,
    pub user_id: String,
    pub teams: &'a [String],
    pub account_type: &'a str,
    pub permissions: PermissionSet,
    pub attributes: &'a Attributes,
    pub tag: Option<&'a str>,
    pub iat: i64,
    pub exp: i64,
}

/// Everything an assertion says: a change to any of it signs anew.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    user_id: i64,
    /// A fingerprint of the user's email, team names, account type and
    /// attributes as they are now (not a timestamp: two changes in one
    /// millisecond, or a team renamed, must still show).
    user_state: u64,
    workbook: String,
    tag: Option<String>,
    permissions: PermissionSet,
}

fn fingerprint(input: &AssertionInput<'_>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    input.user.email.hash(&mut h);
    input.team_names.hash(&mut h);
    input.user.account_type.hash(&mut h);
    input.user.attributes.hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone)]
struct Cached {
    token: Arc<str>,
    issued_at: i64,
}

/// The upstream's view of one request.
#[derive(Debug)]
pub struct AssertionInput<'a> {
    pub user: &'a UserRecord,
    pub team_names: &'a [String],
    pub workbook: &'a str,
    pub tag: Option<&'a str>,
    pub permissions: PermissionSet,
}

pub struct AssertionSigner {
    issuer: String,
    cache: DashMap<CacheKey, Cached>,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl AssertionSigner {
    pub fn new(issuer: &str) -> Self {
        AssertionSigner {
            issuer: issuer.trim_end_matches('/').to_owned(),
            cache: DashMap::new(),
        }
    }

    /// A signed assertion for `input` at `now` (Unix seconds), reused while fresh.
    pub fn assertion(
        &self,
        key: &AssertionKey,
        input: &AssertionInput<'_>,
        now: i64,
    ) -> anyhow::Result<Arc<str>> {
        let cache_key = CacheKey {
            user_id: input.user.id,
            user_state: fingerprint(input),
            workbook: input.workbook.to_owned(),
            tag: input.tag.map(str::to_owned),
            permissions: input.permissions,
        };
        if let Some(hit) = self.cache.get(&cache_key)
            && (0..REUSE_SECS).contains(&(now - hit.issued_at))
        {
            return Ok(Arc::clone(&hit.token));
        }
        let token: Arc<str> = self.sign(key, input, now)?.into();
        if self.cache.len() > SWEEP_ABOVE {
            self.cache.retain(|_, c| now - c.issued_at < REUSE_SECS);
        }
        self.cache.insert(
            cache_key,
            Cached {
                token: Arc::clone(&token),
                issued_at: now,
            },
        );
        Ok(token)
    }

    fn sign(
        &self,
        key: &AssertionKey,
        input: &AssertionInput<'_>,
        now: i64,
    ) -> anyhow::Result<String> {
        let claims = AssertionClaims {
            iss: &self.issuer,
            aud: input.workbook,
            sub: input.user.email.as_str(),
            user_id: input.user.id.to_string(),
            teams: input.team_names,
            account_type: &input.user.account_type,
            permissions: input.permissions,
            attributes: &input.user.attributes,
            tag: input.tag,
            iat: now,
            exp: now + LIFETIME_SECS,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".into());
        Ok(jsonwebtoken::encode(&header, &claims, &key.encoding)?)
    }
}
