//! The one place that reads the wall clock.
//!
//! Every rule that depends on time (token `exp`/`nbf`/`iat`, session expiry,
//! rate-limit windows, rotation grace periods) takes `now` from a [`Clock`], so
//! tests can freeze or move time without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeZone, Utc};

/// A source of "now".
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Seconds since the Unix epoch.
    fn unix(&self) -> i64 {
        self.now().timestamp()
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to: for tests and fixture tokens.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    pub fn at_unix(secs: i64) -> Arc<Self> {
        Arc::new(Self {
            millis: AtomicI64::new(secs.saturating_mul(1000)),
        })
    }

    pub fn set_unix(&self, secs: i64) {
        self.millis
            .store(secs.saturating_mul(1000), Ordering::SeqCst);
    }

    pub fn advance_secs(&self, secs: i64) {
        self.millis
            .fetch_add(secs.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.millis.load(Ordering::SeqCst))
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// RFC 3339 in UTC with a `Z`, the one timestamp format of the API.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Milliseconds since the epoch (the storage format) to a timestamp.
pub fn from_millis(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Seconds since the epoch to a timestamp.
pub fn from_unix(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_unix(1_800_000_000);
        assert_eq!(clock.unix(), 1_800_000_000);
        clock.advance_secs(61);
        assert_eq!(clock.unix(), 1_800_000_061);
        assert_eq!(rfc3339(clock.now()), "2027-01-15T08:01:01Z");
    }
}
