//! Upstream workbooks (SPEC §6): where a proxied request goes and which
//! headers may cross the gateway, as pure functions, plus the HTTP client.
//!
//! The destination is fixed by the workbook's source: the browser's `Host`,
//! `X-Forwarded-Host` or an absolute request line never change it, and
//! dot-segments that would climb out of the source's path are refused.

use std::borrow::Cow;
use std::thread::ThreadId;
use std::time::Duration;

use dashmap::DashMap;
use url::Url;

use crate::config::Config;

/// Above this many parsed source URLs, the cache of them starts over.
const MAX_CACHED_BASES: usize = 10_000;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the browser sends that never reach the upstream: its
/// credentials for the gateway, anything pretending to come from the
/// gateway, and forwarding headers the gateway sets itself.
fn is_private_request_header(name: &str) -> bool {
    matches!(
        name,
        "cookie" | "authorization" | "host" | "forwarded" | "content-length"
    ) || name.starts_with("x-embedgate-")
        || name.starts_with("x-forwarded-")
        || name == "x-real-ip"
}

/// The names listed in `Connection` headers (lower-case).
pub fn connection_listed<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// `name` in lower case, without a copy when it already is (header names
/// from actix and reqwest always are).
fn lower_case(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// Neither hop-by-hop nor named in the message's `Connection` header: a
/// header that may cross the gateway at all, in either direction.
fn end_to_end(name: &str, connection: &[String]) -> bool {
    !HOP_BY_HOP.contains(&name) && !connection.iter().any(|c| c == name)
}

/// May this request header be forwarded to the upstream?
pub fn forward_request_header(name: &str, connection: &[String]) -> bool {
    let name = lower_case(name);
    end_to_end(&name, connection) && !is_private_request_header(&name)
}

/// May this upstream response header be passed to the browser? Cookies are
/// dropped (the upstream never sets cookies in the customer's browser), and
/// the gateway sets its own caching and framing headers.
pub fn forward_response_header(name: &str, connection: &[String]) -> bool {
    let name = lower_case(name);
    end_to_end(&name, connection)
        && !matches!(
            name.as_ref(),
            "set-cookie" | "set-cookie2" | "cache-control" | "referrer-policy" | "content-length"
        )
}

/// Does a raw path hold a `.` or `..` segment once percent-decoded, with
/// `/` and `\\` in any encoding as separators? An upstream that decodes
/// `%2F` before resolving dot-segments must never see one.
fn has_dot_segment(raw: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    decoded
        .split(['/', '\\'])
        .any(|seg| seg == "." || seg == "..")
}

/// The upstream URL for `sub_path` (raw, as the browser sent it) and a
/// query (without the token): `base` itself, or `base` + `/` + `sub_path`.
pub fn target_url(base: &Url, sub_path: &str, query: &str) -> Result<Url, String> {
    if sub_path.contains('\\') || sub_path.to_ascii_lowercase().contains("%5c") {
        return Err("back-slashes are not allowed in workbook paths".into());
    }
    if has_dot_segment(sub_path) {
        return Err("'.' and '..' are not allowed in workbook paths".into());
    }
    let base_path = base.path().trim_end_matches('/');
    let mut path = base_path.to_owned();
    if !sub_path.is_empty() {
        path.push('/');
        path.push_str(sub_path);
    } else if base.path().ends_with('/') {
        path.push('/');
    }
    let mut url = base.clone();
    url.set_path(&path);
    url.set_query(Some(query).filter(|q| !q.is_empty()));
    // The result must still be under the base (setting the path resolves
    // any dot-segment we missed).
    if !url.path().starts_with(base_path) {
        return Err("the path leaves the workbook's upstream".into());
    }
    Ok(url)
}

/// Rewrites an upstream `Location` that points inside the workbook's source
/// URL to the same place under the gateway; other locations pass unchanged.
pub fn rewrite_location(location: &str, base: &str, workbook_path: &str) -> String {
    let base = base.trim_end_matches('/');
    match location.strip_prefix(base) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') => {
            format!("{workbook_path}{rest}")
        }
        _ => location.to_owned(),
    }
}

/// The HTTP client for upstreams: no system proxy, no redirects followed,
/// connect and read timeouts from configuration.
///
/// One `reqwest::Client` (and so one connection pool) per thread: a pooled
/// connection is driven by the runtime of the thread that opened it, and an
/// actix worker using another worker's connection would hand every read
/// and write across threads (a context switch each way).
#[derive(Debug)]
pub struct UpstreamClient {
    clients: DashMap<ThreadId, reqwest::Client>,
    /// Workbook source URLs, parsed once rather than on every request.
    bases: DashMap<String, Url>,
    /// `X-Forwarded-Proto` and `X-Forwarded-Host`: the gateway's public URL's.
    pub forwarded_proto: String,
    pub forwarded_host: String,
    connect_timeout: Duration,
    /// Until the response head arrives.
    pub timeout: Duration,
    pub max_request_body: u64,
}

impl UpstreamClient {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let public = Url::parse(&config.server.public_url).ok();
        let content = &config.content;
        let upstream = UpstreamClient {
            clients: DashMap::new(),
            bases: DashMap::new(),
            forwarded_proto: public.as_ref().map_or("http", |u| u.scheme()).to_owned(),
            forwarded_host: public
                .as_ref()
                .and_then(|u| u.host_str())
                .unwrap_or("")
                .to_owned(),
            connect_timeout: Duration::from_secs(content.upstream_connect_timeout_secs),
            timeout: Duration::from_secs(content.upstream_timeout_secs),
            max_request_body: content.max_request_body_bytes,
        };
        // Fails at start, not on the first request, if it cannot be built.
        upstream.client()?;
        Ok(upstream)
    }

    /// [`target_url`] under the source URL `base`, parsed once per source.
    pub fn target(&self, base: &str, sub_path: &str, query: &str) -> Result<Url, String> {
        if let Some(parsed) = self.bases.get(base) {
            return target_url(&parsed, sub_path, query);
        }
        let parsed = Url::parse(base).map_err(|e| format!("the source URL is invalid: {e}"))?;
        let target = target_url(&parsed, sub_path, query);
        if self.bases.len() >= MAX_CACHED_BASES {
            self.bases.clear();
        }
        self.bases.insert(base.to_owned(), parsed);
        target
    }

    /// This thread's client.
    pub fn client(&self) -> reqwest::Result<reqwest::Client> {
        let thread = std::thread::current().id();
        if let Some(client) = self.clients.get(&thread) {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.timeout)
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()?;
        self.clients.insert(thread, client.clone());
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(base: &str, sub_path: &str, query: &str) -> Result<String, String> {
        target_url(&Url::parse(base).unwrap(), sub_path, query).map(String::from)
    }

    #[test]
    fn sub_paths_join_without_double_slashes_and_stay_paths() {
        for (base, sub_path, query, expected) in [
            ("http://u:9/app", "", "", "http://u:9/app"),
            ("http://u:9/app/", "", "", "http://u:9/app/"),
            ("http://u:9/app", "a/b", "x=1", "http://u:9/app/a/b?x=1"),
            ("http://u:9/app/", "a", "", "http://u:9/app/a"),
            ("http://u:9/app", "a%2Fb", "", "http://u:9/app/a%2Fb"),
            // Query and fragment characters in a sub-path stay in the path.
            (
                "http://u:9/app",
                "a%3Fb%23c",
                "x=1",
                "http://u:9/app/a%3Fb%23c?x=1",
            ),
            ("http://u:9/app", "a?b#c", "", "http://u:9/app/a%3Fb%23c"),
        ] {
            assert_eq!(
                target(base, sub_path, query).unwrap(),
                expected,
                "{sub_path}"
            );
        }
    }

    #[test]
    fn each_source_url_is_parsed_on_its_own_and_invalid_ones_are_refused() {
        let mut config = Config::default();
        config.server.public_url = "https://embed.example.com/".into();
        let upstream = UpstreamClient::new(&config).unwrap();
        assert_eq!(upstream.forwarded_proto, "https");
        assert_eq!(upstream.forwarded_host, "embed.example.com");
        for _ in 0..2 {
            let a = upstream.target("http://a:1/x", "p", "q=1").unwrap();
            let b = upstream.target("http://b:2/y/", "", "").unwrap();
            assert_eq!(a.as_str(), "http://a:1/x/p?q=1");
            assert_eq!(b.as_str(), "http://b:2/y/");
            assert!(upstream.target("not a url", "p", "").is_err());
            assert!(upstream.target("http://a:1/x", "..", "").is_err());
        }
    }

    #[test]
    fn paths_cannot_climb_out_of_the_source() {
        for bad in [
            "..",
            "../admin",
            "a/../../x",
            "%2e%2e/x",
            "%2E%2e",
            ".",
            "a\\..\\b",
            "a%5c..%5cb",
        ] {
            assert!(target("http://u:9/app", bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn private_and_hop_by_hop_headers_are_not_forwarded() {
        let conn = connection_listed(["close, X-Secret"].into_iter());
        for h in [
            "Cookie",
            "Authorization",
            "Host",
            "X-Embedgate-Assertion",
            "x-embedgate-user",
            "Connection",
            "Transfer-Encoding",
            "Upgrade",
            "X-Secret",
            "X-Forwarded-Host",
            "Forwarded",
        ] {
            assert!(!forward_request_header(h, &conn), "{h}");
        }
        for h in ["Accept", "Content-Type", "If-None-Match", "X-Custom"] {
            assert!(forward_request_header(h, &conn), "{h}");
        }
        assert!(!forward_response_header("Set-Cookie", &[]));
        assert!(!forward_response_header("Keep-Alive", &[]));
        assert!(forward_response_header("Content-Type", &[]));
        assert!(forward_response_header("Location", &[]));
    }

    #[test]
    fn locations_inside_the_source_are_rewritten_to_the_gateway() {
        let wb = "/embed/workbooks/sales";
        assert_eq!(
            rewrite_location("http://u:9/app/next?x=1", "http://u:9/app", wb),
            "/embed/workbooks/sales/next?x=1"
        );
        assert_eq!(
            rewrite_location("http://u:9/app", "http://u:9/app/", wb),
            "/embed/workbooks/sales"
        );
        assert_eq!(
            rewrite_location("http://u:9/apple", "http://u:9/app", wb),
            "http://u:9/apple"
        );
        assert_eq!(
            rewrite_location("/relative", "http://u:9/app", wb),
            "/relative"
        );
        assert_eq!(
            rewrite_location("https://elsewhere.example/", "http://u:9/app", wb),
            "https://elsewhere.example/"
        );
    }
}
