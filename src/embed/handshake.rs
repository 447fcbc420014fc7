//! The handshake: a request that carries an embed token.
//!
//! 1. verify the token (§3) and consume its `jti`;
//! 2. plan the user (§4) and decide access (§5) against the planned user;
//! 3. only then write the plan (create or update the user, by the batch
//!    writer of [`super::provision`], which plans and decides again under
//!    the policy's write lock) and issue the session.
//!
//! Any failure leaves users, memberships and sessions as they were, and is
//! recorded in the audit log.

use std::net::IpAddr;

use crate::audit::{self, Entry, Origin};
use crate::domain::UserId;
use crate::error::{ErrorCode, Problem};
use crate::gateway::Gateway;
use crate::identity::Plan;
use crate::jwks::GatewayKeys;
use crate::session::SessionClaims;
use crate::store::JtiUse;
use crate::token::{self, VerifiedToken};

use super::TokenParam;
use super::provision::{Write, Written, check_access, plan_user};

pub struct HandshakeRequest<'a> {
    pub token: &'a TokenParam,
    pub workbook: &'a str,
    pub tag: Option<&'a str>,
    pub remote: IpAddr,
    pub origin: Origin,
}

#[derive(Debug)]
pub struct HandshakeSuccess {
    /// The `Set-Cookie` header value.
    pub set_cookie: String,
    pub client_id: String,
    pub user_id: i64,
    pub session_id: String,
}

/// What is known about the attempt, for the audit log.
#[derive(Default)]
struct Attempt {
    client_id: Option<String>,
    email: Option<String>,
    note: Option<String>,
}

pub async fn handshake(
    gw: &Gateway,
    req: HandshakeRequest<'_>,
) -> Result<HandshakeSuccess, Problem> {
    let now = gw.now();
    if let Err(wait) = gw.limiter.check(req.remote, now) {
        gw.metrics.handshake(Some(ErrorCode::RateLimited.as_str()));
        let mut p = Problem::new(
            ErrorCode::RateLimited,
            format!(
                "Too many failed embed attempts from this address. Try again in {wait} seconds."
            ),
        );
        p.retry_after = Some(wait);
        return Err(p);
    }
    let mut attempt = Attempt::default();
    let result = run(gw, &req, now, &mut attempt).await;
    let code = result.as_ref().err().map(|p| p.code);
    if let Some(code) = code
        && matches!(code.status(), 401 | 403)
    {
        gw.limiter.record_failure(req.remote, now);
    }
    gw.metrics.handshake(code.map(ErrorCode::as_str));
    gw.recorder.record(
        &req.origin,
        Entry {
            event: audit::HANDSHAKE,
            allowed: result.is_ok(),
            code: code.map(|c| c.as_str().to_owned()),
            client_id: attempt.client_id,
            email: attempt.email,
            workbook: Some(req.workbook.chars().take(128).collect()),
            note: attempt.note,
        },
    );
    result
}

async fn run(
    gw: &Gateway,
    req: &HandshakeRequest<'_>,
    now: i64,
    attempt: &mut Attempt,
) -> Result<HandshakeSuccess, Problem> {
    let raw_token = match req.token {
        TokenParam::One(t) => t.as_str(),
        TokenParam::Several => {
            return Err(token::TokenError::malformed(
                "the request carries more than one token (jwt twice, or jwt and :jwt)",
            )
            .into());
        }
        TokenParam::None => return Err(Problem::internal()),
    };
    let verified: VerifiedToken = verify_token(gw, raw_token, now).await.map_err(|e| {
        attempt.client_id = e.client_id.clone();
        Problem::from(e)
    })?;
    let client_id = verified.client_id.to_string();
    attempt.client_id = Some(client_id.clone());
    attempt.email = Some(verified.claims.email.to_string());
    tracing::Span::current().record("client_id", client_id.as_str());
    tracing::Span::current().record("jti", verified.claims.jti.as_str());

    let fresh = gw
        .jti
        .consume(JtiUse {
            client_id: client_id.clone(),
            jti: verified.claims.jti.clone(),
            expires_at: verified.claims.exp.saturating_add(gw.rules.clock_skew_secs),
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the jti ledger failed");
            Problem::unavailable()
        })?;
    if !fresh {
        return Err(Problem::new(
            ErrorCode::TokenReplayed,
            "This embed token was already used. Sign a fresh token (with a new jti) for every page load.",
        ));
    }

    // Plan and decide against the current policy; write nothing yet.
    let plan = {
        let state = gw.policy.read();
        let plan = plan_user(&state, &client_id, &verified.claims)?;
        if let Plan::Existing { note, .. } = &plan {
            attempt.note.clone_from(note);
        }
        check_access(&state, &plan, req.workbook, req.tag)?;
        plan
    };
    let session_length = verified.claims.session_length;
    let user_id = match plan {
        Plan::Existing { user, .. } => user.id,
        Plan::Create { .. } | Plan::Update { .. } => {
            let write = Write {
                client_id: client_id.clone(),
                claims: verified.claims,
                workbook: req.workbook.to_owned(),
                tag: req.tag.map(str::to_owned),
                now,
            };
            written(gw, req, attempt, gw.provisioner.write(write).await?)
        }
    };

    let (epoch, email, version) = {
        let state = gw.policy.read();
        let user = state.user(user_id).ok_or_else(Problem::internal)?;
        (user.session_epoch, user.email.to_string(), user.updated_at)
    };
    let ttl = session_length.map_or(gw.config.embed.session_ttl_secs, |s| {
        s.min(gw.config.embed.session_ttl_secs)
    });
    let claims = SessionClaims {
        sid: crate::crypto::random_token("", 16).map_err(|_| Problem::internal())?,
        uid: user_id,
        em: email,
        uv: version,
        cid: client_id.clone(),
        wb: req.workbook.to_owned(),
        ep: epoch,
        exp: now + ttl,
    };
    gw.recorder.seen(user_id);
    gw.metrics.session_issued(claims.exp);
    Ok(HandshakeSuccess {
        set_cookie: gw.sessions.set_cookie(&claims, ttl),
        client_id,
        user_id,
        session_id: claims.sid,
    })
}

/// Verifies a token (§3 but replay). For a client registered with a JWKS
/// URL whose cached keys do not verify the signature, fetches the keys again
/// (at most once a minute) and retries once.
pub async fn verify_token(
    gw: &Gateway,
    raw: &str,
    now: i64,
) -> Result<VerifiedToken, token::TokenError> {
    let verify_now = || {
        let state = gw.policy.read();
        let keys = GatewayKeys {
            state: &state,
            jwks: &gw.jwks,
        };
        token::verify(raw, &keys, &gw.rules, now)
    };
    let first = verify_now();
    let retry = match &first {
        Err(e) if e.code == ErrorCode::TokenBadSignature => e
            .client_id
            .as_deref()
            .and_then(|id| gw.policy.read().active_client(id).cloned())
            .filter(|c| c.record.jwks_url.is_some() && gw.jwks.may_refresh(c.id(), now)),
        _ => None,
    };
    let Some(client) = retry else { return first };
    if let Err(e) = gw.jwks.refresh(&client, now).await {
        tracing::warn!(client_id = client.id(), error = %e, "refreshing a client's JWKS failed");
        return first;
    }
    verify_now()
}

/// Records what the writer did for the handshake; returns the user's id.
fn written(
    gw: &Gateway,
    req: &HandshakeRequest<'_>,
    attempt: &mut Attempt,
    written: Written,
) -> UserId {
    let (event, user_id, note) = match written {
        Written::Nothing { user_id, note } => {
            attempt.note = note;
            return user_id;
        }
        Written::Created { user_id, note } => (audit::USER_CREATED, user_id, note),
        Written::Updated { user_id, note } => (audit::USER_UPDATED, user_id, note),
    };
    record_user_event(gw, req, event, attempt, note);
    user_id
}

fn record_user_event(
    gw: &Gateway,
    req: &HandshakeRequest<'_>,
    event: &'static str,
    attempt: &Attempt,
    note: String,
) {
    gw.recorder.record(
        &req.origin,
        Entry {
            event,
            allowed: true,
            code: None,
            client_id: attempt.client_id.clone(),
            email: attempt.email.clone(),
            workbook: Some(req.workbook.to_owned()),
            note: Some(note),
        },
    );
}
