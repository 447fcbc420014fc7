//! The error codes of the contract (SPEC §11) and their HTTP statuses.
//!
//! Every layer has its own error enum; each converts into a [`Problem`]: one
//! [`ErrorCode`] and a message for the person reading it. The status of each
//! code is decided here and nowhere else. The HTTP layer renders a `Problem`
//! as JSON or as the HTML error page.

use std::fmt;

use serde::{Serialize, Serializer};

/// Every error code the gateway answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ValidationFailed,
    TokenMissing,
    TokenMalformed,
    TokenTooLarge,
    TokenUnknownClient,
    TokenAlgMismatch,
    TokenBadSignature,
    TokenExpired,
    TokenNotYetValid,
    TokenLifetimeTooLong,
    TokenMissingClaim,
    TokenInvalidClaim,
    TokenIssuerMismatch,
    TokenAudienceMismatch,
    TokenReplayed,
    SessionInvalid,
    Unauthorized,
    UserNotProvisioned,
    UserDeactivated,
    UserBelongsToOtherClient,
    InternalUserNotAllowed,
    TeamsClaimRequired,
    UnknownTeam,
    TeamNotAllowed,
    UnknownAccountType,
    AccessDenied,
    CompanyRequired,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    UpstreamUnavailable,
    UpstreamTimeout,
    ServiceUnavailable,
    Internal,
}

impl ErrorCode {
    /// The HTTP status of the code: the single mapping of SPEC §11.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            ValidationFailed => 400,
            TokenMissing
            | TokenMalformed
            | TokenTooLarge
            | TokenUnknownClient
            | TokenAlgMismatch
            | TokenBadSignature
            | TokenExpired
            | TokenNotYetValid
            | TokenLifetimeTooLong
            | TokenMissingClaim
            | TokenInvalidClaim
            | TokenIssuerMismatch
            | TokenAudienceMismatch
            | TokenReplayed
            | SessionInvalid
            | Unauthorized => 401,
            UserNotProvisioned
            | UserDeactivated
            | UserBelongsToOtherClient
            | InternalUserNotAllowed
            | TeamsClaimRequired
            | UnknownTeam
            | TeamNotAllowed
            | UnknownAccountType
            | AccessDenied
            | CompanyRequired => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            Conflict => 409,
            PayloadTooLarge => 413,
            RateLimited => 429,
            Internal => 500,
            UpstreamUnavailable => 502,
            ServiceUnavailable => 503,
            UpstreamTimeout => 504,
        }
    }

    /// The code as written in the contract, e.g. `token_expired`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            ValidationFailed => "validation_failed",
            TokenMissing => "token_missing",
            TokenMalformed => "token_malformed",
            TokenTooLarge => "token_too_large",
            TokenUnknownClient => "token_unknown_client",
            TokenAlgMismatch => "token_alg_mismatch",
            TokenBadSignature => "token_bad_signature",
            TokenExpired => "token_expired",
            TokenNotYetValid => "token_not_yet_valid",
            TokenLifetimeTooLong => "token_lifetime_too_long",
            TokenMissingClaim => "token_missing_claim",
            TokenInvalidClaim => "token_invalid_claim",
            TokenIssuerMismatch => "token_issuer_mismatch",
            TokenAudienceMismatch => "token_audience_mismatch",
            TokenReplayed => "token_replayed",
            SessionInvalid => "session_invalid",
            Unauthorized => "unauthorized",
            UserNotProvisioned => "user_not_provisioned",
            UserDeactivated => "user_deactivated",
            UserBelongsToOtherClient => "user_belongs_to_other_client",
            InternalUserNotAllowed => "internal_user_not_allowed",
            TeamsClaimRequired => "teams_claim_required",
            UnknownTeam => "unknown_team",
            TeamNotAllowed => "team_not_allowed",
            UnknownAccountType => "unknown_account_type",
            AccessDenied => "access_denied",
            CompanyRequired => "company_required",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            Conflict => "conflict",
            PayloadTooLarge => "payload_too_large",
            RateLimited => "rate_limited",
            UpstreamUnavailable => "upstream_unavailable",
            UpstreamTimeout => "upstream_timeout",
            ServiceUnavailable => "service_unavailable",
            Internal => "internal_error",
        }
    }

    /// A short title for the HTML error page.
    pub fn title(self) -> &'static str {
        match self.status() {
            400 => "The request is not valid",
            401 => "This embed link cannot be used",
            403 => "Access denied",
            404 => "Not found",
            409 => "Conflict",
            429 => "Too many attempts",
            502 | 504 => "The content server did not answer",
            503 => "Temporarily unavailable",
            _ => "Something went wrong",
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user-facing error: a code of the contract and a message saying what is
/// wrong and what to do. Never carries a secret or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds to wait before retrying (`Retry-After`), for `429`.
    pub retry_after: Option<i64>,
}

impl Problem {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorCode::Internal,
            "The gateway hit an internal error. It has been logged; try again in a moment.",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::ServiceUnavailable,
            "The gateway cannot reach its database right now. Nothing was changed; try again in a moment.",
        )
    }

    /// A database failure while `doing` something: `503` when the
    /// database cannot be reached, else `500`, logged with `doing`. The one
    /// place that maps a store error that is not a conflict.
    pub fn from_store(e: &crate::store::StoreError, doing: &str) -> Self {
        if e.is_unavailable() {
            Self::unavailable()
        } else {
            tracing::error!(error = %e, "database error while {doing}");
            Self::internal()
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_is_503_when_the_database_is_unreachable_else_500() {
        use crate::store::StoreError;
        let unreachable = StoreError::Unavailable(sqlx::Error::PoolTimedOut);
        assert_eq!(Problem::from_store(&unreachable, "testing").status(), 503);
        let refused = StoreError::Corrupt("a bad row".into());
        let problem = Problem::from_store(&refused, "testing");
        assert_eq!((problem.status(), problem.code), (500, ErrorCode::Internal));
    }

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(ErrorCode::ValidationFailed.status(), 400);
        assert_eq!(ErrorCode::TokenReplayed.status(), 401);
        assert_eq!(ErrorCode::SessionInvalid.status(), 401);
        assert_eq!(ErrorCode::Unauthorized.status(), 401);
        assert_eq!(ErrorCode::CompanyRequired.status(), 403);
        assert_eq!(ErrorCode::TeamNotAllowed.status(), 403);
        assert_eq!(ErrorCode::NotFound.status(), 404);
        assert_eq!(ErrorCode::Conflict.status(), 409);
        assert_eq!(ErrorCode::RateLimited.status(), 429);
        assert_eq!(ErrorCode::UpstreamUnavailable.status(), 502);
        assert_eq!(ErrorCode::UpstreamTimeout.status(), 504);
    }

    #[test]
    fn codes_serialize_as_the_contract_spells_them() {
        let json = serde_json::to_string(&ErrorCode::TokenLifetimeTooLong).unwrap();
        assert_eq!(json, "\"token_lifetime_too_long\"");
        assert_eq!(
            ErrorCode::UserBelongsToOtherClient.as_str(),
            "user_belongs_to_other_client"
        );
    }
}
