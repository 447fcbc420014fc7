//! `/admin/api/clients`: embed clients, their secrets and their rotation.

use serde::Deserialize;
use utoipa::ToSchema;

use super::views::ClientView;
use super::{Actor, AdminResult, check_text, db, record_change, store_error};
use crate::crypto::random_token;
use crate::domain::{ClientId, TeamName};
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::policy::Change;
use crate::store::{ClientRecord, ClientStatus};
use crate::token::SigningAlgorithm;

/// Secrets the gateway generates: 32 random bytes (43 base64url characters
/// after the prefix).
pub const SECRET_BYTES: usize = 32;
pub const MIN_SECRET_LEN: usize = 32;
pub const DEFAULT_GRACE_SECS: i64 = 3600;
const MAX_GRACE_SECS: i64 = 30 * 24 * 3600;

/// A new embed client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    /// Generated when absent.
    pub client_id: Option<String>,
    pub name: String,
    /// `HS256` (the default), `HS384`, `HS512`, `RS256`, `ES256` or `EdDSA`.
    #[schema(example = "HS256")]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub allowed_teams: Vec<String>,
    #[serde(default)]
    pub allow_internal_users: bool,
    pub public_key_pem: Option<String>,
    pub jwks_url: Option<String>,
    /// An existing secret to keep (for example when moving host apps from
    /// another gateway); at least 32 characters. Generated when absent.
    pub secret: Option<String>,
}

/// A secret rotation; the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// How long the previous secret keeps verifying (default 3600).
    #[schema(example = 3600, minimum = 0, maximum = 2592000)]
    pub grace_secs: Option<i64>,
}

fn new_secret() -> AdminResult<String> {
    random_token("egs_", SECRET_BYTES).map_err(|_| Problem::internal())
}

/// An origin as CSP `frame-ancestors` wants it: `scheme://host[:port]`.
pub fn normalize_origin(raw: &str) -> AdminResult<String> {
    let bad = || {
        Problem::validation(format!(
            "allowed_origins: {raw:?} must be an origin such as https://app.example.com (scheme, host and optional port, nothing else)"
        ))
    };
    let url = url::Url::parse(raw).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || raw.ends_with("/?")
    {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

/// A JWKS URL: absolute http(s), no credentials; fixed at registration.
fn check_jwks_url(raw: &str) -> AdminResult<()> {
    match url::Url::parse(raw) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            Ok(())
        }
        _ => Err(Problem::validation(format!(
            "jwks_url {raw:?} must be an absolute http(s) URL without credentials"
        ))),
    }
}

fn validate(input: &CreateClient) -> AdminResult<(String, SigningAlgorithm)> {
    let client_id = match &input.client_id {
        Some(id) => ClientId::parse(id)
            .map_err(|e| Problem::validation(format!("client_id: {e}")))?
            .to_string(),
        None => random_token("client_", 9).map_err(|_| Problem::internal())?,
    };
    check_text("name", &input.name, 255, false)?;
    let algorithm = match &input.algorithm {
        None => SigningAlgorithm::HS256,
        Some(a) => SigningAlgorithm::parse(a).ok_or_else(|| {
            Problem::validation(format!(
                "algorithm {a:?} is not supported; use HS256, HS384, HS512, RS256, ES256 or EdDSA"
            ))
        })?,
    };
    for team in &input.allowed_teams {
        TeamName::parse(team).map_err(|e| Problem::validation(format!("allowed_teams: {e}")))?;
    }
    if algorithm.is_hmac() {
        if input.public_key_pem.is_some() || input.jwks_url.is_some() {
            return Err(Problem::validation(format!(
                "{algorithm} clients sign with a shared secret; public_key_pem and jwks_url are for RS256, ES256 and EdDSA"
            )));
        }
        if input
            .secret
            .as_ref()
            .is_some_and(|s| s.len() < MIN_SECRET_LEN)
        {
            return Err(Problem::validation(format!(
                "secret must be at least {MIN_SECRET_LEN} characters"
            )));
        }
    } else {
        if input.secret.is_some() {
            return Err(Problem::validation(format!(
                "{algorithm} clients have no secret; register public_key_pem or jwks_url"
            )));
        }
        match (&input.public_key_pem, &input.jwks_url) {
            (Some(pem), None) => {
                algorithm
                    .decoding_key(pem.as_bytes())
                    .map_err(|e| Problem::validation(format!("public_key_pem: {e}")))?;
            }
            (None, Some(url)) => check_jwks_url(url)?,
            _ => {
                return Err(Problem::validation(format!(
                    "{algorithm} clients need exactly one of public_key_pem or jwks_url"
                )));
            }
        }
    }
    Ok((client_id, algorithm))
}

pub async fn create(gw: &Gateway, actor: &Actor, input: CreateClient) -> AdminResult<ClientView> {
    let (client_id, algorithm) = validate(&input)?;
    let allowed_origins = input
        .allowed_origins
        .iter()
        .map(|o| normalize_origin(o))
        .collect::<AdminResult<Vec<_>>>()?;
    let secret = match (algorithm.is_hmac(), input.secret) {
        (true, Some(s)) => Some(s),
        (true, None) => Some(new_secret()?),
        (false, _) => None,
    };
    let now = gw.now_millis();
    let record = ClientRecord {
        client_id: client_id.clone(),
        name: input.name,
        algorithm,
        secret: secret.clone(),
        previous_secret: None,
        previous_valid_until: None,
        public_key_pem: input.public_key_pem,
        jwks_url: input.jwks_url,
        allowed_origins,
        allowed_teams: input.allowed_teams,
        allow_internal_users: input.allow_internal_users,
        status: ClientStatus::Active,
        created_at: now,
        updated_at: now,
    };
    let guard = gw.policy.write_lock().await;
    gw.store.insert_client(&record).await.map_err(store_error(
        "An embed client with this client_id exists already.",
    ))?;
    gw.changed(&guard, &[Change::Client(client_id.clone())])
        .await
        .map_err(db)?;
    record_change(
        gw,
        actor,
        format!("embed client {client_id} created ({algorithm})"),
    );
    let mut view = ClientView::new(&record, now);
    view.secret = secret;
    Ok(view)
}

pub async fn list(gw: &Gateway) -> AdminResult<Vec<ClientView>> {
    let now = gw.now_millis();
    Ok(gw
        .store
        .list_clients()
        .await
        .map_err(db)?
        .iter()
        .map(|c| ClientView::new(c, now))
        .collect())
}

async fn find(gw: &Gateway, client_id: &str) -> AdminResult<ClientRecord> {
    gw.store
        .get_client(client_id)
        .await
        .map_err(db)?
        .ok_or_else(|| Problem::not_found(format!("There is no embed client {client_id:?}.")))
}

pub async fn get(gw: &Gateway, client_id: &str) -> AdminResult<ClientView> {
    Ok(ClientView::new(
        &find(gw, client_id).await?,
        gw.now_millis(),
    ))
}

pub async fn rotate(
    gw: &Gateway,
    actor: &Actor,
    client_id: &str,
    input: Rotate,
) -> AdminResult<ClientView> {
    let grace = input.grace_secs.unwrap_or(DEFAULT_GRACE_SECS);
    if !(0..=MAX_GRACE_SECS).contains(&grace) {
        return Err(Problem::validation(format!(
            "grace_secs must be between 0 and {MAX_GRACE_SECS}"
        )));
    }
    let client = find(gw, client_id).await?;
    if client.status != ClientStatus::Active {
        return Err(Problem::conflict(
            "A revoked embed client cannot be rotated.",
        ));
    }
    if !client.algorithm.is_hmac() {
        return Err(Problem::conflict(format!(
            "{} clients have no secret to rotate; register a new public key instead",
            client.algorithm
        )));
    }
    let secret = new_secret()?;
    let now = gw.now_millis();
    let until = now + grace * 1000;
    let guard = gw.policy.write_lock().await;
    if !gw
        .store
        .rotate_client_secret(client_id, &secret, until, now)
        .await
        .map_err(db)?
    {
        return Err(Problem::conflict(
            "The embed client changed meanwhile; try again.",
        ));
    }
    gw.changed(&guard, &[Change::Client(client_id.to_owned())])
        .await
        .map_err(db)?;
    record_change(
        gw,
        actor,
        format!("embed client {client_id} secret rotated (grace {grace}s)"),
    );
    let rotated = find(gw, client_id).await?;
    let mut view = ClientView::new(&rotated, now);
    view.secret = Some(secret);
    view.previous_valid_until = Some(crate::clock::rfc3339(crate::clock::from_millis(until)));
    Ok(view)
}

pub async fn revoke(gw: &Gateway, actor: &Actor, client_id: &str) -> AdminResult<()> {
    find(gw, client_id).await?;
    let guard = gw.policy.write_lock().await;
    gw.store
        .revoke_client(client_id, gw.now_millis())
        .await
        .map_err(db)?;
    gw.changed(&guard, &[Change::Client(client_id.to_owned())])
        .await
        .map_err(db)?;
    record_change(gw, actor, format!("embed client {client_id} revoked"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized_and_checked() {
        assert_eq!(
            normalize_origin("https://App.Example.com").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            normalize_origin("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        for bad in [
            "https://a.com/path",
            "ftp://a.com",
            "a.com",
            "https://a.com?x=1",
            "https://u@a.com",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }
}
