//! Signing embed URLs as a host app would (SPEC §9): the `embedgate sign`
//! command and the demo host page use this. The gateway itself never signs
//! embed tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

use crate::domain::Attributes;
use crate::token::SigningAlgorithm;

#[derive(Debug, Clone)]
pub struct SignRequest {
    pub client_id: String,
    pub secret: String,
    pub algorithm: SigningAlgorithm,
    pub email: String,
    pub workbook: String,
    pub teams: Option<Vec<String>>,
    pub account_type: Option<String>,
    pub attributes: Attributes,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub ttl_secs: i64,
    pub tag: Option<String>,
    pub base_url: String,
    /// Unix seconds.
    pub now: i64,
}

#[derive(Serialize)]
struct EmbedClaims<'a> {
    sub: &'a str,
    jti: String,
    iat: i64,
    exp: i64,
    ver: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    teams: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Attributes::is_empty")]
    user_attributes: &'a Attributes,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
}

/// A signed token for `req`, with a fresh random `jti`.
pub fn sign_token(req: &SignRequest) -> anyhow::Result<String> {
    if !req.algorithm.is_hmac() {
        anyhow::bail!("embedgate sign signs with a shared secret (HS256, HS384, HS512) only");
    }
    let jti = URL_SAFE_NO_PAD.encode(crate::crypto::random_bytes(16)?);
    let claims = EmbedClaims {
        sub: &req.email,
        jti,
        iat: req.now,
        exp: req.now + req.ttl_secs,
        ver: "1.1",
        teams: req.teams.as_deref(),
        account_type: req.account_type.as_deref(),
        user_attributes: &req.attributes,
        first_name: req.first_name.as_deref(),
        last_name: req.last_name.as_deref(),
    };
    let mut header = Header::new(req.algorithm.jwt());
    header.kid = Some(req.client_id.clone());
    header.typ = Some("JWT".into());
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(req.secret.as_bytes()),
    )?)
}

/// A ready embed URL for `req`.
pub fn sign_url(req: &SignRequest) -> anyhow::Result<String> {
    let token = sign_token(req)?;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("jwt", &token);
    if let Some(tag) = &req.tag {
        query.append_pair("tag", tag);
    }
    Ok(format!(
        "{}/embed/workbooks/{}?{}",
        req.base_url.trim_end_matches('/'),
        url::form_urlencoded::byte_serialize(req.workbook.as_bytes()).collect::<String>(),
        query.finish()
    ))
}
