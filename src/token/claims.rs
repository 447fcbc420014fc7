//! Step 5 of §3: the payload's claims (Sigma-compatible names).
//!
//! First every required claim must be present (`token_missing_claim`), then
//! every claim must have its type and follow its rule (`token_invalid_claim`),
//! then `iss`, `aud`, `exp`, `nbf`/`iat` and the lifetime are checked in that
//! order, each with its own code.

use serde_json::{Map, Value};

use super::error::TokenError;
use crate::clock::{from_unix, rfc3339};
use crate::domain::{Attributes, Email, TeamName, parse_attributes};
use crate::error::ErrorCode;

pub const MAX_TEAMS: usize = 100;
pub const MAX_NAME_LEN: usize = 255;
pub const MAX_JTI_LEN: usize = 255;

/// The time and audience rules of `[embed]` configuration.
#[derive(Debug, Clone)]
pub struct TimeRules {
    pub max_lifetime_secs: i64,
    pub clock_skew_secs: i64,
    /// When set, every token's `aud` must contain it.
    pub audience: Option<String>,
}

/// The claims of a verified token, typed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub email: Email,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub nbf: Option<i64>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub teams: Option<Vec<TeamName>>,
    pub account_type: Option<String>,
    pub user_attributes: Option<Attributes>,
    pub session_length: Option<i64>,
}

fn integer(name: &str, v: &Value) -> Result<i64, TokenError> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            TokenError::invalid_claim(name, "it must be an integer number of seconds")
        }),
        _ => Err(TokenError::invalid_claim(
            name,
            "it must be an integer number of seconds",
        )),
    }
}

fn string<'a>(name: &str, v: &'a Value) -> Result<&'a str, TokenError> {
    v.as_str()
        .ok_or_else(|| TokenError::invalid_claim(name, "it must be a string"))
}

fn short_text(name: &str, v: &Value) -> Result<String, TokenError> {
    let s = string(name, v)?;
    if s.chars().count() > MAX_NAME_LEN {
        return Err(TokenError::invalid_claim(
            name,
            format_args!("it is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(TokenError::invalid_claim(
            name,
            "it contains control characters",
        ));
    }
    Ok(s.to_owned())
}

fn email(name: &str, v: &Value) -> Result<Email, TokenError> {
    Email::parse(string(name, v)?).map_err(|why| TokenError::invalid_claim(name, why))
}

fn teams(v: &Value) -> Result<Vec<TeamName>, TokenError> {
    let Value::Array(items) = v else {
        return Err(TokenError::invalid_claim(
            "teams",
            "it must be an array of team names",
        ));
    };
    if items.len() > MAX_TEAMS {
        return Err(TokenError::invalid_claim(
            "teams",
            format_args!(
                "it names {} teams; at most {MAX_TEAMS} are allowed",
                items.len()
            ),
        ));
    }
    let mut out: Vec<TeamName> = Vec::with_capacity(items.len());
    for item in items {
        let name = item
            .as_str()
            .ok_or_else(|| TokenError::invalid_claim("teams", "every team must be a string"))?;
        let team = TeamName::parse(name).map_err(|why| TokenError::invalid_claim("teams", why))?;
        if !out.contains(&team) {
            out.push(team);
        }
    }
    Ok(out)
}

fn audience(v: &Value) -> Result<Vec<&str>, TokenError> {
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str().ok_or_else(|| {
                    TokenError::invalid_claim("aud", "it must be a string or an array of strings")
                })
            })
            .collect(),
        _ => Err(TokenError::invalid_claim(
            "aud",
            "it must be a string or an array of strings",
        )),
    }
}

fn when(secs: i64) -> String {
    rfc3339(from_unix(secs))
}

/// The claims after the type rules, with the raw `iss` and `aud` still to
/// be compared.
#[derive(Debug, Clone)]
pub struct TypedClaims {
    pub claims: Claims,
    pub iss: Option<String>,
    pub aud: Option<Vec<String>>,
}

/// Step 5a: every required claim is present.
pub fn check_required(payload: &Map<String, Value>) -> Result<(), TokenError> {
    if !payload.contains_key("sub") && !payload.contains_key("email") {
        return Err(TokenError::missing_claim("sub"));
    }
    for required in ["jti", "iat", "exp"] {
        if !payload.contains_key(required) {
            return Err(TokenError::missing_claim(required));
        }
    }
    Ok(())
}

/// Step 5b: every claim present has its type and follows its rule.
pub fn check_types(payload: &Map<String, Value>) -> Result<TypedClaims, TokenError> {
    check_required(payload)?;
    let get = |name: &str| payload.get(name);
    let user_email = match (get("sub"), get("email")) {
        (Some(sub), Some(mail)) => {
            let (sub, mail) = (email("sub", sub)?, email("email", mail)?);
            if sub != mail {
                return Err(TokenError::invalid_claim(
                    "email",
                    "it differs from \"sub\"; send one of them, or the same address in both",
                ));
            }
            sub
        }
        (Some(sub), None) => email("sub", sub)?,
        (None, Some(mail)) => email("email", mail)?,
        (None, None) => return Err(TokenError::missing_claim("sub")),
    };
    let jti = string("jti", &payload["jti"])?;
    if jti.is_empty() || jti.chars().count() > MAX_JTI_LEN {
        return Err(TokenError::invalid_claim(
            "jti",
            format_args!("it must be 1 to {MAX_JTI_LEN} characters long"),
        ));
    }
    let iat = integer("iat", &payload["iat"])?;
    let exp = integer("exp", &payload["exp"])?;
    let nbf = get("nbf").map(|v| integer("nbf", v)).transpose()?;
    let iss = get("iss").map(|v| string("iss", v)).transpose()?;
    let aud = get("aud").map(audience).transpose()?;
    if let Some(ver) = get("ver")
        && !matches!(ver.as_str(), Some("1.0" | "1.1"))
    {
        return Err(TokenError::invalid_claim(
            "ver",
            "it must be \"1.0\" or \"1.1\"",
        ));
    }
    let first_name = get("first_name")
        .map(|v| short_text("first_name", v))
        .transpose()?;
    let last_name = get("last_name")
        .map(|v| short_text("last_name", v))
        .transpose()?;
    let teams = get("teams").map(teams).transpose()?;
    let account_type = get("account_type")
        .map(|v| short_text("account_type", v))
        .transpose()?;
    let user_attributes = get("user_attributes")
        .map(|v| match v {
            Value::Object(map) => parse_attributes(map)
                .map_err(|why| TokenError::invalid_claim("user_attributes", why)),
            _ => Err(TokenError::invalid_claim(
                "user_attributes",
                "it must be an object of string values",
            )),
        })
        .transpose()?;
    let session_length = get("session_length")
        .map(|v| integer("session_length", v))
        .transpose()?;
    if session_length.is_some_and(|s| s <= 0) {
        return Err(TokenError::invalid_claim(
            "session_length",
            "it must be a positive number of seconds",
        ));
    }
    if exp < iat {
        return Err(TokenError::invalid_claim(
            "exp",
            "it is earlier than \"iat\"",
        ));
    }
    Ok(TypedClaims {
        claims: Claims {
            email: user_email,
            jti: jti.to_owned(),
            iat,
            exp,
            nbf,
            first_name,
            last_name,
            teams,
            account_type,
            user_attributes,
            session_length,
        },
        iss: iss.map(str::to_owned),
        aud: aud.map(|list| list.into_iter().map(str::to_owned).collect()),
    })
}

/// Step 5c: `iss`, when present, is the client id.
pub fn check_issuer(typed: &TypedClaims, client_id: &str) -> Result<(), TokenError> {
    match &typed.iss {
        Some(iss) if iss != client_id => Err(TokenError::new(
            ErrorCode::TokenIssuerMismatch,
            format!(
                "The token's iss is not the embed client id {client_id:?}. Set iss to the client id, or leave it out."
            ),
        )),
        _ => Ok(()),
    }
}

/// Step 5d: `aud` contains the configured audience, when one is configured.
pub fn check_audience(typed: &TypedClaims, rules: &TimeRules) -> Result<(), TokenError> {
    let Some(expected) = &rules.audience else {
        return Ok(());
    };
    if typed
        .aud
        .as_ref()
        .is_some_and(|list| list.contains(expected))
    {
        return Ok(());
    }
    Err(TokenError::new(
        ErrorCode::TokenAudienceMismatch,
        format!(
            "The token's aud must contain {expected:?}, as this gateway is configured to require."
        ),
    ))
}

fn times(c: &Claims, now: i64) -> String {
    format!(
        "server time {}, token iat {}{}, exp {}",
        when(now),
        when(c.iat),
        c.nbf
            .map(|n| format!(", nbf {}", when(n)))
            .unwrap_or_default(),
        when(c.exp)
    )
}

/// Step 5e: not expired (with the skew).
pub fn check_expiry(c: &Claims, rules: &TimeRules, now: i64) -> Result<(), TokenError> {
    if now > c.exp.saturating_add(rules.clock_skew_secs) {
        return Err(TokenError::new(
            ErrorCode::TokenExpired,
            format!(
                "The embed token expired at {} ({}). Sign a fresh token for each page load, and check the host app's clock.",
                when(c.exp),
                times(c, now)
            ),
        ));
    }
    Ok(())
}

/// Step 5f: `iat` and `nbf` not in the future (with the skew).
pub fn check_not_before(c: &Claims, rules: &TimeRules, now: i64) -> Result<(), TokenError> {
    let skew = rules.clock_skew_secs;
    let future = |t: i64| t > now.saturating_add(skew);
    if future(c.iat) || c.nbf.is_some_and(future) {
        return Err(TokenError::new(
            ErrorCode::TokenNotYetValid,
            format!(
                "The embed token is not valid yet ({}; allowed clock skew {skew}s). Check the host app's clock.",
                times(c, now)
            ),
        ));
    }
    Ok(())
}

/// Step 5g: `exp - iat` within the configured maximum.
pub fn check_lifetime(c: &Claims, rules: &TimeRules) -> Result<(), TokenError> {
    let lifetime = c.exp.saturating_sub(c.iat);
    if lifetime > rules.max_lifetime_secs {
        return Err(TokenError::new(
            ErrorCode::TokenLifetimeTooLong,
            format!(
                "The token lives {}s (exp - iat); this gateway allows at most {}s. Sign shorter-lived tokens.",
                lifetime, rules.max_lifetime_secs
            ),
        ));
    }
    Ok(())
}

impl Claims {
    /// Checks `payload` for a token of `client_id` at `now` (Unix seconds):
    /// steps 5a to 5g in order, the first failure wins.
    pub fn from_payload(
        payload: &Map<String, Value>,
        client_id: &str,
        rules: &TimeRules,
        now: i64,
    ) -> Result<Claims, TokenError> {
        let typed = check_types(payload)?;
        check_issuer(&typed, client_id)?;
        check_audience(&typed, rules)?;
        check_expiry(&typed.claims, rules, now)?;
        check_not_before(&typed.claims, rules, now)?;
        check_lifetime(&typed.claims, rules)?;
        Ok(typed.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn rules() -> TimeRules {
        TimeRules {
            max_lifetime_secs: 3600,
            clock_skew_secs: 60,
            audience: None,
        }
    }

    fn base() -> Value {
        json!({"sub": "Ana@Acme.com", "jti": "j1", "iat": NOW, "exp": NOW + 300})
    }

    fn with(patch: Value) -> Map<String, Value> {
        let mut v = base();
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = val.clone();
            }
        }
        v.as_object().unwrap().clone()
    }

    fn check(payload: Map<String, Value>) -> Result<Claims, ErrorCode> {
        Claims::from_payload(&payload, "c1", &rules(), NOW).map_err(|e| e.code)
    }

    #[test]
    fn a_minimal_token_passes_and_lower_cases_the_email() {
        let c = check(with(json!({}))).unwrap();
        assert_eq!(c.email.as_str(), "ana@acme.com");
        assert_eq!(c.teams, None);
    }

    #[test]
    fn required_claims_must_be_present() {
        for name in ["jti", "iat", "exp", "sub"] {
            assert_eq!(
                check(with(json!({ name: null }))),
                Err(ErrorCode::TokenMissingClaim),
                "{name}"
            );
        }
        let mut only_email = with(json!({"sub": null}));
        only_email.insert("email".into(), json!("ana@acme.com"));
        assert!(check(only_email).is_ok());
    }

    #[test]
    fn wrong_types_are_invalid_claims() {
        for patch in [
            json!({"exp": "1800000300"}),
            json!({"exp": 1800000300.5}),
            json!({"iat": true}),
            json!({"nbf": "soon"}),
            json!({"teams": "a,b"}),
            json!({"teams": [1]}),
            json!({"jti": 5}),
            json!({"jti": ""}),
            json!({"jti": "j".repeat(256)}),
            json!({"iss": 1}),
            json!({"aud": 1}),
            json!({"aud": ["a", 2]}),
            json!({"ver": "2.0"}),
            json!({"first_name": "x".repeat(256)}),
            json!({"user_attributes": ["a"]}),
            json!({"user_attributes": {"bad name": "x"}}),
            json!({"session_length": 0}),
            json!({"session_length": "60"}),
            json!({"sub": "not-an-email"}),
            json!({"sub": "ana@acme.com", "email": "bob@acme.com"}),
            json!({"exp": NOW - 10}),
        ] {
            assert_eq!(
                check(with(patch.clone())),
                Err(ErrorCode::TokenInvalidClaim),
                "{patch}"
            );
        }
        let too_many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
        assert_eq!(
            check(with(json!({ "teams": too_many }))),
            Err(ErrorCode::TokenInvalidClaim)
        );
    }

    #[test]
    fn sub_and_email_may_agree_in_any_case() {
        assert!(check(with(json!({"email": "ANA@acme.com"}))).is_ok());
    }

    #[test]
    fn issuer_must_be_the_client_id() {
        assert!(check(with(json!({"iss": "c1"}))).is_ok());
        assert_eq!(
            check(with(json!({"iss": "other"}))),
            Err(ErrorCode::TokenIssuerMismatch)
        );
    }

    #[test]
    fn audience_is_required_when_configured() {
        let r = TimeRules {
            audience: Some("embedgate".into()),
            ..rules()
        };
        let run = |p| Claims::from_payload(&p, "c1", &r, NOW).map_err(|e| e.code);
        assert_eq!(run(with(json!({}))), Err(ErrorCode::TokenAudienceMismatch));
        assert_eq!(
            run(with(json!({"aud": "other"}))),
            Err(ErrorCode::TokenAudienceMismatch)
        );
        assert!(run(with(json!({"aud": "embedgate"}))).is_ok());
        assert!(run(with(json!({"aud": ["x", "embedgate"]}))).is_ok());
    }

    #[test]
    fn time_rules_honour_the_skew_exactly() {
        // exp in the past by exactly the skew: still valid; one more second: expired.
        assert!(check(with(json!({"iat": NOW - 400, "exp": NOW - 60}))).is_ok());
        assert_eq!(
            check(with(json!({"iat": NOW - 400, "exp": NOW - 61}))),
            Err(ErrorCode::TokenExpired)
        );
        assert!(check(with(json!({"iat": NOW + 60, "exp": NOW + 300}))).is_ok());
        assert_eq!(
            check(with(json!({"iat": NOW + 61, "exp": NOW + 300}))),
            Err(ErrorCode::TokenNotYetValid)
        );
        assert!(check(with(json!({"nbf": NOW + 60}))).is_ok());
        assert_eq!(
            check(with(json!({"nbf": NOW + 61}))),
            Err(ErrorCode::TokenNotYetValid)
        );
        assert!(check(with(json!({"exp": NOW + 3600}))).is_ok());
        assert_eq!(
            check(with(json!({"exp": NOW + 3601}))),
            Err(ErrorCode::TokenLifetimeTooLong)
        );
    }

    #[test]
    fn time_errors_show_the_server_time_and_the_token_times() {
        let err = Claims::from_payload(
            &with(json!({"iat": NOW - 900, "exp": NOW - 600})),
            "c1",
            &rules(),
            NOW,
        )
        .unwrap_err();
        assert!(
            err.message.contains("2027-01-15T08:00:00Z"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("2027-01-15T07:50:00Z"),
            "{}",
            err.message
        );
    }

    #[test]
    fn extreme_times_cannot_overflow_the_lifetime_check() {
        assert_eq!(
            check(with(json!({"iat": i64::MIN, "exp": NOW + 10}))),
            Err(ErrorCode::TokenLifetimeTooLong)
        );
        assert_eq!(
            check(with(json!({"iat": NOW, "exp": i64::MAX}))),
            Err(ErrorCode::TokenLifetimeTooLong)
        );
    }

    #[test]
    fn the_first_failing_rule_wins() {
        // a type error comes before an issuer mismatch and an expiry
        assert_eq!(
            check(with(
                json!({"iss": "other", "exp": NOW - 1000, "teams": "x"})
            )),
            Err(ErrorCode::TokenInvalidClaim)
        );
        // issuer before audience-free expiry
        assert_eq!(
            check(with(
                json!({"iss": "other", "iat": NOW - 2000, "exp": NOW - 1000})
            )),
            Err(ErrorCode::TokenIssuerMismatch)
        );
    }
}
