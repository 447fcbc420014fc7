//! [`TokenError`]: why a token was refused, as a contract code and a message
//! that helps the host-app developer fix it. Messages never echo the token or
//! any secret.

use crate::error::{ErrorCode, Problem};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct TokenError {
    pub code: ErrorCode,
    pub message: String,
    /// The embed client, once the token's `kid` named an active one.
    pub client_id: Option<String>,
}

impl TokenError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            client_id: None,
        }
    }

    pub fn malformed(why: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::TokenMalformed,
            format!(
                "The embed token is malformed: {why}. Sign a standard compact JWT (header.payload.signature)."
            ),
        )
    }

    pub fn unknown_client(kid: &str) -> Self {
        let shown: String = kid.chars().filter(|c| !c.is_control()).take(64).collect();
        Self::new(
            ErrorCode::TokenUnknownClient,
            format!(
                "The token's kid {shown:?} names no active embed client. Use the client id of an active embed client as kid."
            ),
        )
    }

    pub fn missing_claim(name: &str) -> Self {
        Self::new(
            ErrorCode::TokenMissingClaim,
            format!("The embed token has no {name:?} claim, which is required."),
        )
    }

    pub fn invalid_claim(name: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::TokenInvalidClaim,
            format!("The token's {name:?} claim is invalid: {why}."),
        )
    }
}

impl TokenError {
    pub fn for_client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self
    }
}

impl From<TokenError> for Problem {
    fn from(e: TokenError) -> Self {
        Problem::new(e.code, e.message)
    }
}
