//! Prometheus metrics (`GET /metrics`): handshakes by outcome and code,
//! request latency by kind, upstream errors, active sessions and database
//! use.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    outcome: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// What a request is, for the latency histogram's `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Handshake,
    Session,
    Admin,
    Other,
}

impl RequestKind {
    const ALL: [RequestKind; 4] = [
        RequestKind::Handshake,
        RequestKind::Session,
        RequestKind::Admin,
        RequestKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Handshake => "handshake",
            RequestKind::Session => "session",
            RequestKind::Admin => "admin",
            RequestKind::Other => "other",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    handshakes: Family<HandshakeLabels, Counter>,
    /// The latency histogram of each [`RequestKind`], in `ALL` order, taken
    /// out of their family once: observing skips the family's lock and the
    /// hashing of its label.
    latency: [Histogram; 4],
    upstream_errors: Family<KindLabels, Counter>,
    active_sessions: Gauge,
    db_queries: Counter,
    db_queries_seen: AtomicU64,
    /// Sessions issued by this instance, counted per minute of expiry.
    sessions_by_expiry: Mutex<BTreeMap<i64, i64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("embedgate");
        let handshakes = Family::<HandshakeLabels, Counter>::default();
        let latency = Family::<KindLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let upstream_errors = Family::<KindLabels, Counter>::default();
        let active_sessions = Gauge::default();
        let db_queries = Counter::default();
        registry.register(
            "handshakes",
            "Handshakes by outcome and error code",
            handshakes.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Request latency by kind of request",
            latency.clone(),
        );
        registry.register(
            "upstream_errors",
            "Failed upstream requests by kind",
            upstream_errors.clone(),
        );
        registry.register(
            "active_sessions",
            "Unexpired sessions issued by this instance",
            active_sessions.clone(),
        );
        registry.register("db_queries", "Database round trips", db_queries.clone());
        let latency = RequestKind::ALL.map(|kind| {
            latency
                .get_or_create(&KindLabels {
                    kind: kind.as_str(),
                })
                .clone()
        });
        Metrics {
            registry,
            handshakes,
            latency,
            upstream_errors,
            active_sessions,
            db_queries,
            db_queries_seen: AtomicU64::new(0),
            sessions_by_expiry: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Metrics {
    pub fn handshake(&self, code: Option<&'static str>) {
        let outcome = if code.is_some() { "denied" } else { "allowed" };
        self.handshakes
            .get_or_create(&HandshakeLabels {
                outcome,
                code: code.unwrap_or("none"),
            })
            .inc();
    }

    pub fn observe(&self, kind: RequestKind, seconds: f64) {
        self.latency[kind as usize].observe(seconds);
    }

    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    pub fn session_issued(&self, expires_at: i64) {
        let mut map = self
            .sessions_by_expiry
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *map.entry(expires_at.div_euclid(60) + 1).or_default() += 1;
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self, now: i64, db_queries: u64) -> String {
        {
            let mut map = self
                .sessions_by_expiry
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let current = now.div_euclid(60);
            *map = map.split_off(&(current + 1));
            self.active_sessions.set(map.values().sum());
        }
        let before = self.db_queries_seen.swap(db_queries, Ordering::Relaxed);
        self.db_queries.inc_by(db_queries.saturating_sub(before));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_and_sessions_appear_in_the_text_format() {
        let m = Metrics::default();
        m.handshake(None);
        m.handshake(Some("token_expired"));
        m.session_issued(1000);
        m.observe(RequestKind::Session, 0.002);
        let text = m.render(500, 7);
        assert!(
            text.contains(
                "embedgate_handshakes_total{outcome=\"denied\",code=\"token_expired\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("embedgate_active_sessions 1"), "{text}");
        assert!(
            text.contains("embedgate_request_duration_seconds_count{kind=\"session\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("embedgate_request_duration_seconds_count{kind=\"admin\"} 0"),
            "every kind is there from the start: {text}"
        );
        assert!(text.contains("embedgate_db_queries_total 7"), "{text}");
        let later = m.render(2000, 7);
        assert!(later.contains("embedgate_active_sessions 0"), "{later}");
    }
}
