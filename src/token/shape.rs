//! Step 1 of §3: is this a well-formed compact JWT at all?
//!
//! Exactly three base64url segments without padding, a header and payload
//! that are UTF-8 JSON objects without duplicate keys, `alg` and `kid`
//! strings, no `crit`, and `typ` (when present) equal to `JWT` in any case.
//! `jku`, `x5u`, `x5c` and `jwk` are parsed as plain JSON and never used.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::error::TokenError;
use super::strict_json::parse_object;
use crate::error::ErrorCode;

/// Tokens longer than this are `token_too_large`.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone)]
pub struct Header {
    pub alg: String,
    pub kid: String,
    /// The whole header, for the token inspector.
    pub json: Map<String, Value>,
}

/// A token split and decoded, not yet trusted.
#[derive(Debug, Clone)]
pub struct RawToken<'a> {
    pub header: Header,
    pub payload: Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    /// The third segment, still base64url.
    pub signature: &'a str,
}

fn is_base64url(segment: &str) -> bool {
    segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Decodes one segment. The decoder refuses any byte outside the base64url
/// alphabet, padding included, so the alphabet is looked at again only to
/// say why a segment was refused.
fn decode_segment(name: &str, segment: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| {
        if is_base64url(segment) {
            TokenError::malformed(format_args!("the {name} is not valid base64url"))
        } else {
            TokenError::malformed(format_args!("the {name} is not base64url without padding"))
        }
    })
}

impl<'a> RawToken<'a> {
    pub fn parse(token: &'a str) -> Result<Self, TokenError> {
        if token.is_empty() {
            return Err(TokenError::malformed("the token is empty"));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::new(
                ErrorCode::TokenTooLarge,
                format!(
                    "The embed token is {} bytes; the limit is {MAX_TOKEN_BYTES}. Put fewer teams or attributes in it.",
                    token.len()
                ),
            ));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::malformed(
                "it must have exactly three dot-separated segments",
            ));
        };
        let header_json = parse_object(&decode_segment("header", h)?)
            .map_err(|why| TokenError::malformed(format_args!("the header: {why}")))?;
        decode_segment("signature", s)?;
        let payload = parse_object(&decode_segment("payload", p)?)
            .map_err(|why| TokenError::malformed(format_args!("the payload: {why}")))?;
        let header = check_header(header_json)?;
        Ok(RawToken {
            header,
            payload,
            signing_input: &token[..h.len() + 1 + p.len()],
            signature: s,
        })
    }
}

fn check_header(json: Map<String, Value>) -> Result<Header, TokenError> {
    let string = |name: &str| match json.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(TokenError::malformed(format_args!(
            "the header's {name:?} is not a string"
        ))),
        None => Err(TokenError::malformed(format_args!(
            "the header has no {name:?}"
        ))),
    };
    let alg = string("alg")?;
    let kid = string("kid")?;
    if json.contains_key("crit") {
        return Err(TokenError::malformed(
            "the header has \"crit\", which the gateway does not accept",
        ));
    }
    match json.get("typ") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
        Some(_) => {
            return Err(TokenError::malformed(
                "the header's \"typ\" must be \"JWT\" when present",
            ));
        }
    }
    Ok(Header { alg, kid, json })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    fn code(t: &str) -> ErrorCode {
        RawToken::parse(t).unwrap_err().code
    }

    const H: &str = r#"{"alg":"HS256","kid":"c1","typ":"JWT"}"#;
    const P: &str = r#"{"sub":"a@b.co"}"#;

    #[test]
    fn a_well_formed_token_parses() {
        let t = token(H, P);
        let raw = RawToken::parse(&t).unwrap();
        assert_eq!(raw.header.alg, "HS256");
        assert_eq!(raw.header.kid, "c1");
        assert_eq!(raw.payload["sub"], "a@b.co");
        assert_eq!(raw.signing_input.matches('.').count(), 1);
    }

    #[test]
    fn segment_count_and_alphabet_are_checked() {
        assert_eq!(code(""), ErrorCode::TokenMalformed);
        assert_eq!(code("a.b"), ErrorCode::TokenMalformed);
        assert_eq!(code("a.b.c.d"), ErrorCode::TokenMalformed);
        let t = token(H, P);
        assert_eq!(code(&format!("{t}=")), ErrorCode::TokenMalformed);
        assert_eq!(code(&t.replacen('.', "+.", 1)), ErrorCode::TokenMalformed);
        assert_eq!(code(&format!(" {t}")), ErrorCode::TokenMalformed);
        // standard base64 with padding in the header
        let padded = format!("{}=.{}.{}", b64(H), b64(P), b64("sig"));
        assert_eq!(code(&padded), ErrorCode::TokenMalformed);
    }

    #[test]
    fn a_refused_segment_says_whether_its_alphabet_or_its_bits_are_wrong() {
        let message = |t: &str| RawToken::parse(t).unwrap_err().message;
        let padded = format!("{}=.{}.{}", b64(H), b64(P), b64("sig"));
        assert!(message(&padded).contains("the header is not base64url without padding"));
        // "QR" has bits left over after its byte; "Q" is too short for one.
        for sig in ["QR", "Q"] {
            let t = format!("{}.{}.{sig}", b64(H), b64(P));
            assert!(
                message(&t).contains("the signature is not valid base64url"),
                "{sig}"
            );
        }
    }

    #[test]
    fn header_rules_are_checked() {
        for header in [
            r#"{"kid":"c1"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{"alg":256,"kid":"c1"}"#,
            r#"{"alg":"HS256","kid":["c1"]}"#,
            r#"{"alg":"HS256","kid":"c1","crit":["exp"]}"#,
            r#"{"alg":"HS256","kid":"c1","typ":"JWS"}"#,
            r#"{"alg":"HS256","kid":"c1","typ":1}"#,
            r#"{"alg":"HS256","kid":"c1","alg":"none"}"#,
            r#"[1]"#,
            "not json",
        ] {
            assert_eq!(
                code(&token(header, P)),
                ErrorCode::TokenMalformed,
                "{header}"
            );
        }
        assert!(RawToken::parse(&token(r#"{"alg":"HS256","kid":"c1","typ":"jwt"}"#, P)).is_ok());
    }

    #[test]
    fn payload_must_be_an_object_without_duplicates() {
        assert_eq!(code(&token(H, "[]")), ErrorCode::TokenMalformed);
        assert_eq!(
            code(&token(H, r#"{"sub":"a@b.co","sub":"c@d.co"}"#)),
            ErrorCode::TokenMalformed
        );
    }

    #[test]
    fn oversized_tokens_are_too_large() {
        let big = token(H, &format!(r#"{{"x":"{}"}}"#, "a".repeat(9000)));
        assert_eq!(code(&big), ErrorCode::TokenTooLarge);
    }

    #[test]
    fn an_empty_signature_segment_is_well_formed() {
        let t = format!("{}.{}.", b64(H), b64(P));
        assert!(RawToken::parse(&t).is_ok());
    }
}
