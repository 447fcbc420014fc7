//! The query string of an embed URL: the token (`jwt`, or its alias
//! `:jwt`), the `tag`, and every other parameter, which is passed on
//! unchanged. The redirect after a handshake keeps the other parameters
//! byte for byte and drops only the token.

use url::form_urlencoded;

/// The token part of the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenParam {
    None,
    One(String),
    /// `jwt` twice, or `jwt` and `:jwt`: refused as malformed.
    Several,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedQuery {
    pub token: TokenParam,
    pub tag: Option<String>,
    /// The query without the token, as sent.
    pub without_token: String,
    /// The decoded parameters other than the token.
    pub params: Vec<(String, String)>,
}

/// A `key=value` pair, decoded. Without `%` or `+` decoding changes
/// nothing, so such a pair (a token always is one: Base64url and dots) is
/// split at its first `=` as `form_urlencoded` splits it, without its
/// byte-by-byte decoding pass (a tenth of a handshake's instructions).
fn decode_pair(raw: &str) -> (String, String) {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        let (key, value) = raw.split_once('=').unwrap_or((raw, ""));
        return (key.to_owned(), value.to_owned());
    }
    form_urlencoded::parse(raw.as_bytes())
        .next()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .unwrap_or_default()
}

impl EmbedQuery {
    pub fn parse(raw: &str) -> EmbedQuery {
        let mut tokens = Vec::new();
        let mut kept = Vec::new();
        let mut params = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = decode_pair(pair);
            if key == "jwt" || key == ":jwt" {
                tokens.push(value);
            } else {
                kept.push(pair);
                params.push((key, value));
            }
        }
        let token = match tokens.len() {
            0 => TokenParam::None,
            1 => TokenParam::One(tokens.swap_remove(0)),
            _ => TokenParam::Several,
        };
        let tag = params
            .iter()
            .find(|(k, _)| k == "tag")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty());
        EmbedQuery {
            token,
            tag,
            without_token: kept.join("&"),
            params,
        }
    }

    /// `path` with the query minus the token: where a handshake redirects.
    pub fn location(&self, path: &str) -> String {
        if self.without_token.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", self.without_token)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_taken_out_and_the_rest_kept_as_sent() {
        let q = EmbedQuery::parse("theme=dark%20blue&jwt=a.b.c&tag=v2&x=1+2");
        assert_eq!(q.token, TokenParam::One("a.b.c".into()));
        assert_eq!(q.tag.as_deref(), Some("v2"));
        assert_eq!(q.without_token, "theme=dark%20blue&tag=v2&x=1+2");
        assert_eq!(
            q.location("/embed/workbooks/w"),
            "/embed/workbooks/w?theme=dark%20blue&tag=v2&x=1+2"
        );
        assert_eq!(q.params[0], ("theme".into(), "dark blue".into()));
    }

    #[test]
    fn the_alias_is_accepted_and_two_tokens_are_refused() {
        assert_eq!(
            EmbedQuery::parse("%3Ajwt=t").token,
            TokenParam::One("t".into())
        );
        assert_eq!(
            EmbedQuery::parse(":jwt=t").token,
            TokenParam::One("t".into())
        );
        assert_eq!(EmbedQuery::parse("jwt=a&jwt=b").token, TokenParam::Several);
        assert_eq!(EmbedQuery::parse("jwt=a&:jwt=b").token, TokenParam::Several);
        assert_eq!(
            EmbedQuery::parse("jwt=").token,
            TokenParam::One(String::new())
        );
        assert_eq!(EmbedQuery::parse("").token, TokenParam::None);
    }

    #[test]
    fn a_pair_is_split_and_decoded_as_form_urlencoded_does() {
        for raw in [
            "jwt=a.b.c",
            "k=v=w",
            "novalue",
            "=v",
            "k=",
            "=",
            "t\u{e9}=\u{fc}",
            "a%3D=b",
            "x=1+2",
            "x=%zz",
            "%E2%82%AC=%ff",
        ] {
            let expected = form_urlencoded::parse(raw.as_bytes())
                .next()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .unwrap_or_default();
            assert_eq!(decode_pair(raw), expected, "{raw}");
        }
    }

    #[test]
    fn without_a_query_the_location_is_the_path() {
        assert_eq!(EmbedQuery::parse("jwt=x").location("/p"), "/p");
    }
}
