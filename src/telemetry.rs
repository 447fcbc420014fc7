//! Logging through `tracing`: human-readable by default, JSON with
//! `--log-format json`. `RUST_LOG` filters (default `info`).
//!
//! Lines go to standard error through a background thread
//! (`tracing-appender`), so a request never waits on a `write` system call;
//! the thread writes every line queued since its last write at once, then
//! rests for [`LOG_PACE`] while the next lines queue up. No line is dropped
//! (when the thread falls behind, callers wait). Colours only when standard
//! error is a terminal.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber once; later calls are ignored. Keep the
/// guard until the process ends: dropping it flushes the lines still queued.
pub fn init(format: LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    // Buffered: the thread writes what it has received since it last
    // woke in one system call (it flushes whenever its queue is empty).
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("embedgate-log")
        .finish(Paced(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        )));
    let builder = fmt()
        .with_timer(Timestamp)
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    guard
}

/// How long the log thread rests after each write.
pub const LOG_PACE: Duration = Duration::from_millis(1);

/// The log thread's writer: each flush (the thread flushes when its queue is
/// empty) writes, then rests for [`LOG_PACE`]. Without the rest, under load
/// the thread woke for nearly every line, and each line cost a `write` and
/// a wake-up of the thread (0.6 `write` per request, measured with `strace`
/// on template sessions); with it, lines are written at most a thousand
/// times a second, at most a millisecond late. At rest, a line is still
/// written at once.
struct Paced<W: Write>(W);

impl<W: Write> Write for Paced<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let written = self.0.flush();
        std::thread::sleep(LOG_PACE);
        written
    }
}

/// Log timestamps in the default layout (`2026-12-06T22:08:34.955819Z`, UTC),
/// with the part up to the second formatted once a second on each thread
/// instead of for every line: every request writes a line.
struct Timestamp;

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        thread_local! {
            static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
        }
        // The wall clock of the log, not a time any decision is taken on.
        #[allow(clippy::disallowed_methods)]
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        SECOND.with_borrow_mut(|(secs, text)| {
            if *secs != now.as_secs() {
                *secs = now.as_secs();
                *text = i64::try_from(*secs)
                    .ok()
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
                    .unwrap_or_default();
            }
            write!(w, "{text}.{:06}Z", now.subsec_micros())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_thread_writes_everything_buffered_at_each_flush() {
        let mut out = Paced(std::io::BufWriter::with_capacity(1024, Vec::new()));
        out.write_all(b"one\n").unwrap();
        out.write_all(b"two\n").unwrap();
        assert!(out.0.get_ref().is_empty(), "buffered until the flush");
        out.flush().unwrap();
        assert_eq!(out.0.get_ref().as_slice(), b"one\ntwo\n");
    }

    fn stamp() -> String {
        let mut s = String::new();
        Timestamp.format_time(&mut Writer::new(&mut s)).unwrap();
        s
    }

    #[test]
    fn timestamps_have_the_default_layout_and_follow_the_clock() {
        let first = stamp();
        assert_eq!(first.len(), "2026-12-06T22:08:34.955819Z".len(), "{first}");
        let parsed = chrono::DateTime::parse_from_rfc3339(&first).unwrap();
        #[allow(clippy::disallowed_methods)]
        let now = chrono::Utc::now();
        assert!(
            (now - parsed.to_utc()).num_seconds().abs() <= 1,
            "{first} vs {now}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let later = stamp();
        assert!(later > first, "{later} after {first}");
        assert_ne!(later[..19], first[..19], "a new second is formatted anew");
    }
}
