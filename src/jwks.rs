//! Public keys of embed clients registered with a `jwks_url`.
//!
//! The URL is fixed when the client is registered; a token never chooses
//! where keys come from (`jku`, `x5u`, `x5c` and `jwk` headers are ignored).
//! Keys are fetched with a bounded request (no proxy, no redirects, a
//! timeout and a size cap), kept in memory, and fetched again when a
//! signature does not verify with the cached ones, at most once a minute
//! per client, so a host app can rotate its keys without a restart and a
//! stream of bad tokens cannot make the gateway hammer the URL.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures_util::StreamExt;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};

use crate::policy::{Client, PolicyState};
use crate::token::{ClientKeys, KeyLookup, SigningAlgorithm, VerificationKey};

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Fetch again at most this often per client.
pub const REFRESH_EVERY_SECS: i64 = 60;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Entry {
    keys: Arc<ClientKeys>,
    /// The URL these keys came from (a client's URL never changes, but a
    /// deleted and re-created client might point elsewhere).
    url: String,
}

pub struct JwksCache {
    http: reqwest::Client,
    entries: DashMap<String, Entry>,
    /// Last fetch attempt per client (Unix seconds).
    attempts: DashMap<String, i64>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("clients", &self.entries.len())
            .finish()
    }
}

fn family_matches(alg: SigningAlgorithm, params: &AlgorithmParameters) -> bool {
    matches!(
        (alg, params),
        (SigningAlgorithm::RS256, AlgorithmParameters::RSA(_))
            | (
                SigningAlgorithm::ES256,
                AlgorithmParameters::EllipticCurve(_)
            )
            | (
                SigningAlgorithm::EdDSA,
                AlgorithmParameters::OctetKeyPair(_)
            )
    )
}

/// The keys of `set` usable with `alg`.
pub fn usable_keys(set: &JwkSet, alg: SigningAlgorithm) -> Vec<VerificationKey> {
    set.keys
        .iter()
        .filter(|jwk| family_matches(alg, &jwk.algorithm))
        .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok())
        .map(|key| VerificationKey {
            key,
            valid_until: None,
        })
        .collect()
}

impl JwksCache {
    pub fn new() -> anyhow::Result<JwksCache> {
        Ok(JwksCache {
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(FETCH_TIMEOUT)
                .connect_timeout(FETCH_TIMEOUT)
                .build()?,
            entries: DashMap::new(),
            attempts: DashMap::new(),
        })
    }

    /// The cached keys of a JWKS client (none yet: an empty key list, so
    /// the signature check fails and the caller may refresh).
    fn keys_of(&self, client: &Client) -> Arc<ClientKeys> {
        let url = client.record.jwks_url.as_deref().unwrap_or_default();
        match self.entries.get(client.id()) {
            Some(e) if e.url == url => Arc::clone(&e.keys),
            _ => Arc::new(ClientKeys {
                client_id: client.keys.client_id.clone(),
                algorithm: client.keys.algorithm,
                keys: Vec::new(),
            }),
        }
    }

    /// May the keys of `client_id` be fetched now?
    pub fn may_refresh(&self, client_id: &str, now: i64) -> bool {
        self.attempts
            .get(client_id)
            .is_none_or(|last| now - *last >= REFRESH_EVERY_SECS)
    }

    /// Fetches the client's JWKS and caches its usable keys.
    pub async fn refresh(&self, client: &Client, now: i64) -> Result<usize, String> {
        let Some(url) = client.record.jwks_url.clone() else {
            return Err("the client has no jwks_url".into());
        };
        self.attempts.insert(client.id().to_owned(), now);
        let set = self.fetch(&url).await?;
        let keys = usable_keys(&set, client.record.algorithm);
        let count = keys.len();
        self.entries.insert(
            client.id().to_owned(),
            Entry {
                keys: Arc::new(ClientKeys {
                    client_id: client.keys.client_id.clone(),
                    algorithm: client.record.algorithm,
                    keys,
                }),
                url,
            },
        );
        Ok(count)
    }

    async fn fetch(&self, url: &str) -> Result<JwkSet, String> {
        let res = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("fetching the JWKS failed: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("the JWKS URL answered {}", res.status()));
        }
        if res
            .content_length()
            .is_some_and(|l| l > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("reading the JWKS failed: {e}"))?;
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("the JWKS is not a JWK set: {e}"))
    }
}

/// Token keys from the policy, with JWKS clients' keys from the cache.
pub struct GatewayKeys<'a> {
    pub state: &'a PolicyState,
    pub jwks: &'a JwksCache,
}

impl KeyLookup for GatewayKeys<'_> {
    fn client_keys(&self, kid: &str) -> Option<Arc<ClientKeys>> {
        let client = self.state.active_client(kid)?;
        if client.record.jwks_url.is_some() {
            Some(self.jwks.keys_of(client))
        } else {
            Some(Arc::clone(&client.keys))
        }
    }
}
