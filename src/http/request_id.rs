//! `X-Request-Id`: taken from the request when it is a sane value, else
//! generated; kept in the request's extensions for logs and the audit, and
//! returned on the response. Also times every request for the metrics, and
//! says `X-Content-Type-Options: nosniff` on every response (here rather
//! than in a `DefaultHeaders` layer of its own: one layer fewer for every
//! request to pass through).

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};

use crate::gateway::Gateway;
use crate::metrics::RequestKind;

pub const HEADER: &str = "x-request-id";

/// The request's id.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// When the request arrived, and what kind of request it is for metrics.
#[derive(Debug, Clone, Copy)]
pub struct Started(pub Instant);

fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh id without a random draw (a system call) per request, and
/// without showing a counter: clients would read the gateway's traffic off
/// consecutive ids. The counter goes through SipHash with keys drawn once
/// per process (`RandomState`): 64 bits that practically never repeat and
/// look random to everyone else.
fn generate() -> String {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", KEYS.get_or_init(RandomState::new).hash_one(n))
}

/// The kind of request by its path, a low-cardinality label for latency
/// metrics. Whether an embed request is a handshake is the embed handler's
/// to say, from the query it parses (it marks the request with
/// [`RequestKind::Handshake`]); until it does, an embed request is a session
/// request.
fn kind(path: &str) -> RequestKind {
    if path.starts_with("/embed/") {
        RequestKind::Session
    } else if path.starts_with("/admin/") {
        RequestKind::Admin
    } else {
        RequestKind::Other
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map_or_else(generate, str::to_owned);
    let started = Instant::now();
    let kind = kind(req.path());
    // Sane ids are valid header values; the check is the header type's own.
    let header = HeaderValue::from_str(&id).ok();
    {
        let mut extensions = req.extensions_mut();
        extensions.insert(RequestId(id));
        extensions.insert(Started(started));
    }
    let gw = req.app_data::<web::Data<Gateway>>().cloned();
    let mut res = next.call(req).await?;
    let kind = res
        .request()
        .extensions()
        .get::<RequestKind>()
        .copied()
        .unwrap_or(kind);
    let headers = res.headers_mut();
    if let Some(value) = header {
        headers.insert(HeaderName::from_static(HEADER), value);
    }
    if !headers.contains_key(X_CONTENT_TYPE_OPTIONS) {
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    }
    if let Some(gw) = gw {
        gw.metrics.observe(kind, started.elapsed().as_secs_f64());
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_ids_are_taken_from_the_request() {
        assert!(is_sane("abc-123_x.y:z"));
        assert!(!is_sane(""));
        assert!(!is_sane("has space"));
        assert!(!is_sane("new\nline"));
        assert!(!is_sane(&"x".repeat(129)));
    }

    #[test]
    fn generated_ids_are_sane_distinct_and_show_no_counter() {
        let ids: Vec<String> = (0..10_000).map(|_| generate()).collect();
        assert!(ids.iter().all(|id| id.len() == 16 && is_sane(id)));
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // Consecutive ids share no long prefix, as counter-based ids would.
        let similar = ids
            .windows(2)
            .filter(|w| w[0].as_bytes()[..8] == w[1].as_bytes()[..8])
            .count();
        assert_eq!(similar, 0);
    }
}
