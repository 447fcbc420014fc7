//! Embed sessions: the cookie a successful handshake sets, and its check on
//! every later request.
//!
//! The cookie is self-contained and signed (HMAC-SHA256 with the session
//! key of `keys/`), so any instance sharing `keys/` accepts it without a
//! database read. Its value has the layout of the `cookie` crate's signed
//! jar (the Base64 MAC, then the signed value), so either can read what the
//! other wrote; the MAC is keyed once here rather than for every request,
//! and a request's cookies are read without copying them into a jar. It
//! names the user, client and workbook it was issued for, its expiry, and
//! the user's session epoch: `revoke-sessions` bumps the epoch, which ends
//! every older session at once. Deactivation, a deleted client or a deleted
//! user end it too, because every request re-reads them from the in-memory
//! policy.
//!
//! A session's requests after its first skip the MAC and the decoding: each
//! codec remembers the cookie values whose MAC held, with their claims
//! ([`VERIFIED_CAP`] of them at most), as API gateways cache verified
//! tokens. Only what the cookie itself says is remembered; its expiry, its
//! workbook, its user and its client are checked on every request.

use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cookie::{Cookie, SameSite};
use dashmap::{DashMap, DashSet};
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

/// The claims in a cookie's verified JSON: the one place it is decoded.
fn read_claims(json: &[u8]) -> Option<SessionClaims> {
    serde_json::from_slice(json).ok()
}

/// A valid session with the current state of its user and client.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: Arc<UserRecord>,
    pub client: Arc<Client>,
}

pub struct SessionCodec {
    /// HMAC-SHA256 with the session key (its padded key blocks computed once).
    key: hmac::Key,
    /// Cookie values whose MAC held, and their claims.
    verified: DashMap<Box<str>, Arc<SessionClaims>, crate::HashState>,
    /// Sessions (by `sid`) whose user or client a reload from the database
    /// found gone ([`SessionCodec::mark_gone`]): refused from then on
    /// without reading the database again.
    gone: DashSet<Box<str>, crate::HashState>,
}

/// The most cookie values a codec remembers as verified (about 10 MiB for
/// cookies of the usual size; only values whose MAC held get in, so only
/// sessions this gateway issued). When it is full, it forgets them all:
/// each is then verified once more.
pub const VERIFIED_CAP: usize = 16_384;

/// The most sessions a codec remembers as gone; when full, it forgets them
/// all (each then costs one more reload).
const GONE_CAP: usize = 16_384;

/// Why a session whose user or client no longer exists is refused.
const GONE: &str = "belongs to a user or an embed client that no longer exists";

/// The Base64 (padded) MAC that starts a cookie value.
const MAC_B64_LEN: usize = 44;

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
    pub fn new(key: &cookie::Key) -> Self {
        SessionCodec {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.signing()),
            verified: DashMap::default(),
            gone: DashSet::default(),
        }
    }

    /// Remembers that a reload from the database left this session stale:
    /// its user or client is gone. Only ever makes a refusal stick (a
    /// deleted user's id, or a revoked client's, never comes back to life
    /// for its old cookies).
    pub fn mark_gone(&self, claims: &SessionClaims) {
        if self.gone.len() >= GONE_CAP {
            self.gone.clear();
        }
        self.gone.insert(claims.sid.as_str().into());
    }

    /// A session newer than this instance's view of its user or client:
    /// to be reloaded, unless a reload already found them gone.
    fn stale(&self, claims: &SessionClaims) -> SessionCheck {
        if self.gone.contains(claims.sid.as_str()) {
            SessionCheck::Invalid(invalid(GONE))
        } else {
            SessionCheck::Stale(Box::new(claims.clone()))
        }
    }

    /// The signed cookie value for `claims`: the Base64 MAC of the payload,
    /// then the payload (the Base64url JSON of the claims).
    pub fn seal(&self, claims: &SessionClaims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut value = STANDARD.encode(hmac::sign(&self.key, payload.as_bytes()));
        value.push_str(&payload);
        value
    }

    /// The claims of a cookie value, if its MAC holds: verified and decoded
    /// as a session's first request does (later ones find them remembered).
    pub fn open(&self, value: &str) -> Option<SessionClaims> {
        let json = self.verified_payload(value)?;
        read_claims(&json)
    }

    /// The claims of a cookie value whose MAC holds: remembered, or
    /// verified, decoded and remembered while they are not expired at `now`.
    fn claims(&self, value: &str, now: i64) -> Option<Arc<SessionClaims>> {
        if let Some(known) = self.verified.get(value) {
            return Some(Arc::clone(known.value()));
        }
        let claims = Arc::new(self.open(value)?);
        if now < claims.exp {
            if self.verified.len() >= VERIFIED_CAP {
                self.verified.clear();
            }
            self.verified.insert(value.into(), Arc::clone(&claims));
        }
        Some(claims)
    }

    /// The JSON a cookie value carries, if its MAC holds (compared in
    /// constant time by `aws-lc-rs`).
    fn verified_payload(&self, value: &str) -> Option<Vec<u8>> {
        if !value.is_char_boundary(MAC_B64_LEN) {
            return None;
        }
        let (mac_b64, payload) = value.split_at(MAC_B64_LEN);
        let mut tag = [0u8; 33];
        let len = STANDARD.decode_slice(mac_b64, &mut tag).ok()?;
        hmac::verify(&self.key, payload.as_bytes(), &tag[..len]).ok()?;
        URL_SAFE_NO_PAD.decode(payload).ok()
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
    /// wins; without any, [`SessionCheck::Missing`]. A cookie newer than
    /// this instance's view of its user or client (issued by another
    /// instance whose change has not arrived yet) is [`SessionCheck::Stale`]:
    /// reload them and check again.
    pub fn validate<'a>(
        &self,
        state: &PolicyState,
        cookie_headers: impl Iterator<Item = &'a str>,
        workbook: &str,
        now: i64,
    ) -> Result<Session, SessionCheck> {
        let mut last_error = SessionCheck::Missing;
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
            .claims(value, now)
            .ok_or_else(|| bad("cookie is not valid (tampered or from another gateway)"))?;
        if claims.wb != workbook {
            return Err(bad("belongs to another workbook"));
        }
        if now >= claims.exp {
            return Err(bad("has expired"));
        }
        let (Some(client), Some(user)) = (state.client(&claims.cid), state.user(claims.uid)) else {
            return Err(self.stale(&claims));
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
            return Err(self.stale(&claims));
        }
        Ok(Session {
            user: Arc::clone(user),
            client: Arc::clone(client),
        })
    }
}

/// Why a session cookie was not accepted.
#[derive(Debug, Clone)]
pub enum SessionCheck {
    /// The request carries no session cookie at all.
    Missing,
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
            SessionCheck::Missing => Problem::new(
                ErrorCode::TokenMissing,
                "This embed URL has no token and there is no session. Open the workbook through a freshly signed embed URL.",
            ),
            SessionCheck::Invalid(p) => p,
            SessionCheck::Stale(_) => invalid(GONE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> SessionCodec {
        SessionCodec::new(&cookie::Key::generate())
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

    /// The value layout is the `cookie` crate's signed jar's, so instances
    /// on either side of this change (a rolling upgrade) read each other's
    /// cookies.
    #[test]
    fn values_are_interchangeable_with_the_cookie_crates_signed_jar() {
        use cookie::CookieJar;
        let key = cookie::Key::generate();
        let c = SessionCodec::new(&key);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());

        let mut jar = CookieJar::new();
        jar.signed_mut(&key)
            .add(Cookie::new(COOKIE_NAME, payload.clone()));
        let from_jar = jar.get(COOKIE_NAME).unwrap().value().to_owned();
        assert_eq!(c.open(&from_jar), Some(claims()));
        assert_eq!(c.seal(&claims()), from_jar, "the same MAC and layout");

        let mut jar = CookieJar::new();
        jar.add_original(Cookie::new(COOKIE_NAME, c.seal(&claims())));
        let verified = jar.signed(&key).get(COOKIE_NAME).unwrap();
        assert_eq!(verified.value(), payload);
    }

    #[test]
    fn a_value_is_refused_when_its_mac_is_cut_padded_or_not_base64() {
        let c = codec();
        let value = c.seal(&claims());
        let (mac, payload) = value.split_at(MAC_B64_LEN);
        for bad in [
            // The MAC of nothing, then the payload: the lengths differ.
            format!("{}{payload}", &mac[..MAC_B64_LEN - 4]),
            format!("{mac}={payload}"),
            format!("{}!{payload}", &mac[..MAC_B64_LEN - 1]),
            // A multi-byte character across the MAC's end.
            format!("{}é{payload}", &mac[..MAC_B64_LEN - 1]),
            mac.to_owned(),
        ] {
            assert_eq!(c.open(&bad), None, "{bad}");
        }
    }

    #[test]
    fn claims_read_equal_the_sealed_ones_escapes_included() {
        let c = codec();
        for em in [
            "ana@acme.example",
            "an\"a\\@acme.example",
            "zoë@acme.example",
        ] {
            let sealed = SessionClaims {
                em: em.to_owned(),
                ..claims()
            };
            assert_eq!(c.open(&c.seal(&sealed)), Some(sealed));
        }
    }

    #[test]
    fn a_verified_value_is_remembered_and_nothing_else_is() {
        let c = codec();
        let now = 1_000;
        let value = c.seal(&claims());
        let first = c.claims(&value, now).unwrap();
        assert_eq!(c.verified.len(), 1);
        let again = c.claims(&value, now).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second read is the remembered one"
        );

        // A tampered value is refused, remembered value or not.
        let mut tampered = value.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(c.claims(&tampered, now).is_none());
        // Another key does not accept it because this codec remembers it.
        assert!(codec().claims(&value, now).is_none());
        assert_eq!(c.verified.len(), 1, "what failed is not remembered");

        // An expired value is read (the check says it has expired) but not kept.
        let old = c.seal(&SessionClaims {
            exp: now,
            ..claims()
        });
        assert_eq!(c.claims(&old, now).unwrap().exp, now);
        assert_eq!(c.verified.len(), 1);
    }

    #[test]
    fn a_session_a_reload_found_gone_is_refused_without_another() {
        let c = codec();
        let empty = PolicyState::default();
        let check = |claims: &SessionClaims| {
            let header = format!("{COOKIE_NAME}={}", c.seal(claims));
            c.validate(&empty, std::iter::once(header.as_str()), "sales", 1_000)
        };
        // Its user is unknown here: reload, as for a session another
        // instance just issued.
        assert!(matches!(check(&claims()), Err(SessionCheck::Stale(_))));
        c.mark_gone(&claims());
        match check(&claims()) {
            Err(SessionCheck::Invalid(p)) => {
                assert_eq!(p.code, ErrorCode::SessionInvalid);
                assert!(p.message.contains(GONE), "{}", p.message);
            }
            _ => panic!("a session found gone must be refused, not reloaded"),
        }
        // Only that session: another one of the same user is reloaded.
        let other = SessionClaims {
            sid: "s2".into(),
            ..claims()
        };
        assert!(matches!(check(&other), Err(SessionCheck::Stale(_))));
    }

    #[test]
    fn the_remembered_values_stay_bounded() {
        let c = codec();
        for uid in 0..=VERIFIED_CAP as i64 {
            let value = c.seal(&SessionClaims { uid, ..claims() });
            assert_eq!(c.claims(&value, 0).unwrap().uid, uid);
            assert!(c.verified.len() <= VERIFIED_CAP);
        }
        assert_eq!(
            c.verified.len(),
            1,
            "full, it forgot them all, then kept the last"
        );
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
