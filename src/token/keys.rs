//! Steps 2–4 of §3: which client signed, with which algorithm, and does the
//! signature hold.
//!
//! A client's algorithm is part of its record; the header's `alg` must equal
//! it exactly or the token is refused before any key is touched. Signatures
//! are checked by `jsonwebtoken`'s crypto backend (aws-lc-rs), whose HMAC
//! comparison is constant-time.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};

use super::error::TokenError;
use super::shape::RawToken;
use crate::domain::ClientId;
use crate::error::ErrorCode;

/// The algorithms an embed client may be registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    ES256,
    EdDSA,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 6] = [
        SigningAlgorithm::HS256,
        SigningAlgorithm::HS384,
        SigningAlgorithm::HS512,
        SigningAlgorithm::RS256,
        SigningAlgorithm::ES256,
        SigningAlgorithm::EdDSA,
    ];

    /// Exact, case-sensitive: `hs256` is not `HS256`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::HS256 => "HS256",
            SigningAlgorithm::HS384 => "HS384",
            SigningAlgorithm::HS512 => "HS512",
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }

    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            SigningAlgorithm::HS256 | SigningAlgorithm::HS384 | SigningAlgorithm::HS512
        )
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::HS256 => Algorithm::HS256,
            SigningAlgorithm::HS384 => Algorithm::HS384,
            SigningAlgorithm::HS512 => Algorithm::HS512,
            SigningAlgorithm::RS256 => Algorithm::RS256,
            SigningAlgorithm::ES256 => Algorithm::ES256,
            SigningAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }

    /// A verification key from a client's secret or PEM public key.
    pub fn decoding_key(self, material: &[u8]) -> Result<DecodingKey, String> {
        let key = match self {
            SigningAlgorithm::HS256 | SigningAlgorithm::HS384 | SigningAlgorithm::HS512 => {
                Ok(DecodingKey::from_secret(material))
            }
            SigningAlgorithm::RS256 => DecodingKey::from_rsa_pem(material),
            SigningAlgorithm::ES256 => DecodingKey::from_ec_pem(material),
            SigningAlgorithm::EdDSA => DecodingKey::from_ed_pem(material),
        };
        key.map_err(|e| format!("not a valid {} key: {e}", self.as_str()))
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key that may verify a client's tokens, until (excluded) `valid_until`
/// (Unix seconds) when it is a rotated-out secret in its grace period.
#[derive(Clone)]
pub struct VerificationKey {
    pub key: DecodingKey,
    pub valid_until: Option<i64>,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("key", &"<redacted>")
            .field("valid_until", &self.valid_until)
            .finish()
    }
}

/// What token verification needs to know about an active embed client.
#[derive(Debug, Clone)]
pub struct ClientKeys {
    pub client_id: ClientId,
    pub algorithm: SigningAlgorithm,
    pub keys: Vec<VerificationKey>,
}

impl ClientKeys {
    pub fn check_algorithm(&self, alg: &str) -> Result<(), TokenError> {
        if alg == self.algorithm.as_str() {
            return Ok(());
        }
        let shown: String = alg.chars().filter(|c| !c.is_control()).take(32).collect();
        Err(TokenError::new(
            ErrorCode::TokenAlgMismatch,
            format!(
                "The token's alg {shown:?} is not the algorithm of embed client {:?}, which is {}. Sign with {}.",
                self.client_id.as_str(),
                self.algorithm,
                self.algorithm
            ),
        ))
    }

    pub fn check_signature(&self, raw: &RawToken<'_>, now: i64) -> Result<(), TokenError> {
        let input = raw.signing_input.as_bytes();
        let alg = self.algorithm.jwt();
        let verified = self
            .keys
            .iter()
            .filter(|k| k.valid_until.is_none_or(|until| now < until))
            .any(|k| {
                jsonwebtoken::crypto::verify(raw.signature, input, &k.key, alg).unwrap_or(false)
            });
        if verified {
            Ok(())
        } else {
            Err(TokenError::new(
                ErrorCode::TokenBadSignature,
                format!(
                    "The token's signature does not verify with the key of embed client {:?}. Sign with the client's current secret.",
                    self.client_id.as_str()
                ),
            ))
        }
    }
}

/// Finds the keys of an *active* embed client by `kid`.
pub trait KeyLookup {
    fn client_keys(&self, kid: &str) -> Option<Arc<ClientKeys>>;
}
