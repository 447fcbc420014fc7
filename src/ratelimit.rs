//! Slowing down repeated failed handshakes (SPEC §3): past
//! `failed_handshakes_per_minute` failures from one address, every handshake
//! from it is refused with `429` until its minute has passed. Other
//! addresses are not affected.
//!
//! A fixed one-minute window per address, counted in memory; the clock is
//! injected so tests can move past the window.

use std::net::IpAddr;

use dashmap::DashMap;

const WINDOW_SECS: i64 = 60;
/// Above this many tracked addresses, expired windows are swept.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    failures: u32,
}

#[derive(Debug)]
pub struct FailureLimiter {
    limit: u32,
    windows: DashMap<IpAddr, Window>,
}

impl FailureLimiter {
    /// `limit` 0 turns the limiter off.
    pub fn new(limit: u32) -> Self {
        FailureLimiter {
            limit,
            windows: DashMap::new(),
        }
    }

    /// `Err(seconds)` to wait when `addr` is over its limit.
    pub fn check(&self, addr: IpAddr, now: i64) -> Result<(), i64> {
        if self.limit == 0 {
            return Ok(());
        }
        match self.windows.get(&addr) {
            Some(w) if now - w.start < WINDOW_SECS && w.failures >= self.limit => {
                Err((w.start + WINDOW_SECS - now).max(1))
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, addr: IpAddr, now: i64) {
        if self.limit == 0 {
            return;
        }
        if self.windows.len() > SWEEP_ABOVE {
            self.windows.retain(|_, w| now - w.start < WINDOW_SECS);
        }
        let mut w = self.windows.entry(addr).or_insert(Window {
            start: now,
            failures: 0,
        });
        if now - w.start >= WINDOW_SECS {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_limited_after_its_failures_until_the_minute_ends() {
        let l = FailureLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(a, 100).is_ok());
            l.record_failure(a, 100);
        }
        assert_eq!(l.check(a, 110), Err(50));
        assert!(l.check(b, 110).is_ok(), "other addresses are not affected");
        assert!(l.check(a, 160).is_ok(), "the window has passed");
        l.record_failure(a, 160);
        assert!(l.check(a, 161).is_ok());
    }

    #[test]
    fn a_zero_limit_never_limits() {
        let l = FailureLimiter::new(0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..100 {
            l.record_failure(a, 0);
        }
        assert!(l.check(a, 0).is_ok());
    }
}
