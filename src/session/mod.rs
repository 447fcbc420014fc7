//! Embed sessions: the cookie a successful handshake sets, and its check on
//! every later request.
//!
//! The cookie is self-contained and signed (HMAC-SHA256 with the session
//! key of `keys/`, through the `cookie` crate's signed jar), so any instance
//! sharing `keys/` accepts it without a database read. It names the user,
//! client and workbook it was issued for, its expiry, and the user's session
//! epoch: `revoke-sessions` bumps the epoch, which ends every older session
//! at once. Deactivation, a deleted client or a deleted user end it too,
//! because every request re-reads them from the in-memory policy.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, Problem};
use crate::policy::{Client, PolicyState};
use crate::store::UserRecord;

pub const COOKIE_NAME: &str = "embedgate_session";

/// What a session cookie says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Session id: for logs and the audit, never a credential by itself.
    pub sid: String,
    pub uid: i64,
    /// The user's email: ids are never reused, and this makes sure of it.
    pub em: String,
    /// The user's version (`updated_at`, Unix ms) when issued: an instance
    /// holding an older version reloads the user before deciding.
    pub uv: i64,
    pub cid: String,
    pub wb: String,
    /// The user's session epoch when issued.
    pub ep: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// A valid session with the current state of its user and client.
#[derive(Debug, Clone)]
pub struct Session {
    pub claims: SessionClaims,
    pub user: Arc<UserRecord>,
    pub client: Arc<Client>,
}

pub struct SessionCodec {
    key: cookie::Key,
}

impl std::fmt::Debug for SessionCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCodec")
    }
}

fn invalid(why: &str) -> Problem {
    Problem::new(
        ErrorCode::SessionInvalid,
        format!("The embed session {why}. Reload the host page to sign a fresh embed URL."),
    )
}

/// The path a workbook's session cookie is scoped to.
pub fn cookie_path(workbook: &str) -> String {
    format!("/embed/workbooks/{workbook}")
}

impl SessionCodec {
    pub fn new(key: cookie::Key) -> Self {
        SessionCodec { key }
    }

    /// The signed cookie value for `claims`.
    pub fn seal(&self, claims: &SessionClaims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key)
            .add(Cookie::new(COOKIE_NAME, payload));
        jar.get(COOKIE_NAME)
            .map(|c| c.value().to_owned())
            .unwrap_or_default()
    }

    /// The claims of a cookie value, if its signature holds.
    pub fn open(&self, value: &str) -> Option<SessionClaims> {
        let mut jar = CookieJar::new();
        jar.add_original(Cookie::new(COOKIE_NAME, value.to_owned()));
        let verified = jar.signed(&self.key).get(COOKIE_NAME)?;
        let json = URL_SAFE_NO_PAD.decode(verified.value()).ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// The `Set-Cookie` header value for a new session.
    pub fn set_cookie(&self, claims: &SessionClaims, max_age_secs: i64) -> String {
        Cookie::build((COOKIE_NAME, self.seal(claims)))
            .path(cookie_path(&claims.wb))
            .http_only(true)
            .secure(true)
            .same_site(SameSite::None)
            .partitioned(true)
            .max_age(cookie::time::Duration::seconds(max_age_secs))
            .build()
            .to_string()
    }

    /// Finds a valid session for `workbook` among the request's cookies.
    ///
    /// `cookie_headers` are the raw `Cookie` header values. Among several
    /// `embedgate_session` cookies, the first valid one for this workbook
    /// wins. A cookie newer than this instance's view of its user or client
    /// (issued by another instance whose change has not arrived yet) is
    /// [`SessionCheck::Stale`]: reload them and check again.
    pub fn validate<'a>(
        &self,
        state: &PolicyState,
        cookie_headers: impl Iterator<Item = &'a str>,
        workbook: &str,
        now: i64,
    ) -> Result<Session, SessionCheck> {
        let mut last_error = SessionCheck::Invalid(invalid("cookie is missing"));
        for header in cookie_headers {
            for cookie in Cookie::split_parse(header).flatten() {
                if cookie.name() != COOKIE_NAME {
                    continue;
                }
                match self.check(state, cookie.value(), workbook, now) {
                    Ok(session) => return Ok(session),
                    Err(e @ SessionCheck::Stale(_)) => return Err(e),
                    Err(e) => last_error = e,
                }
            }
        }
        Err(last_error)
    }

    fn check(
        &self,
        state: &PolicyState,
        value: &str,
        workbook: &str,
        now: i64,
    ) -> Result<Session, SessionCheck> {
        let bad = |why| SessionCheck::Invalid(invalid(why));
        let claims = self
            .open(value)
            .ok_or_else(|| bad("cookie is not valid (tampered or from another gateway)"))?;
        if claims.wb != workbook {
            return Err(bad("belongs to another workbook"));
        }
        if now >= claims.exp {
            return Err(bad("has expired"));
        }
        let (Some(client), Some(user)) = (state.client(&claims.cid), state.user(claims.uid)) else {
            return Err(SessionCheck::Stale(Box::new(claims)));
        };
        if !client.is_active() {
            return Err(bad(
                "was issued for an embed client that is no longer active",
            ));
        }
        if user.email.as_str() != claims.em || user.session_epoch > claims.ep {
            return Err(bad("was revoked"));
        }
        if user.session_epoch < claims.ep || user.updated_at < claims.uv {
            return Err(SessionCheck::Stale(Box::new(claims)));
        }
        Ok(Session {
            claims,
            user: Arc::clone(user),
            client: Arc::clone(client),
        })
    }
}

/// Why a session cookie was not accepted.
#[derive(Debug, Clone)]
pub enum SessionCheck {
    /// Refused: expired, tampered, revoked, for another workbook…
    Invalid(Problem),
    /// Issued with a newer view of its user or client than this instance
    /// has: reload them from the database and check again.
    Stale(Box<SessionClaims>),
}

impl SessionCheck {
    /// After a reload, a session that is still stale names a user or client
    /// that no longer exists.
    pub fn into_problem(self) -> Problem {
        match self {
            SessionCheck::Invalid(p) => p,
            SessionCheck::Stale(_) => {
                invalid("belongs to a user or an embed client that no longer exists")
            }
        }
    }
}

/// Does a request carry a session cookie at all (valid or not)?
pub fn has_session_cookie<'a>(mut cookie_headers: impl Iterator<Item = &'a str>) -> bool {
    cookie_headers.any(|h| {
        Cookie::split_parse(h)
            .flatten()
            .any(|c| c.name() == COOKIE_NAME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> SessionCodec {
        SessionCodec::new(cookie::Key::generate())
    }

    fn claims() -> SessionClaims {
        SessionClaims {
            sid: "s1".into(),
            uid: 7,
            em: "ana@acme.example".into(),
            uv: 0,
            cid: "acme".into(),
            wb: "sales".into(),
            ep: 0,
            exp: 2_000_000_000,
        }
    }

    #[test]
    fn sealed_claims_open_with_the_same_key_only() {
        let c = codec();
        let value = c.seal(&claims());
        assert_eq!(c.open(&value), Some(claims()));
        assert_eq!(codec().open(&value), None);
    }

    #[test]
    fn tampered_values_do_not_open() {
        let c = codec();
        let value = c.seal(&claims());
        let mut bytes = value.into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(c.open(&String::from_utf8(bytes).unwrap()), None);
        assert_eq!(c.open(""), None);
        assert_eq!(c.open("garbage"), None);
    }

    #[test]
    fn the_set_cookie_header_has_every_attribute_of_the_contract() {
        let header = codec().set_cookie(&claims(), 600);
        for part in [
            "embedgate_session=",
            "Path=/embed/workbooks/sales",
            "HttpOnly",
            "Secure",
            "SameSite=None",
            "Partitioned",
            "Max-Age=600",
        ] {
            assert!(header.contains(part), "{part} missing from {header}");
        }
    }
}
