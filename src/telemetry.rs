//! Logging through `tracing`: human-readable by default, JSON with
//! `--log-format json`. `RUST_LOG` filters (default `info`).
//!
//! The request lines, one per request, are the log's bulk: in text format
//! without colours they are written by `TextLines` in the layout of
//! `tracing-subscriber`'s default format, by a shorter path.
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

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{self, FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

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
    let ansi = std::io::stderr().is_terminal();
    let builder = fmt::fmt()
        .with_timer(Timestamp)
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text if ansi => builder.try_init(),
        LogFormat::Text => builder
            .fmt_fields(TextFields)
            .event_format(TextLines::new(Timestamp))
            .try_init(),
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

/// The text format without colours: `tracing-subscriber`'s default
/// (`Full`) layout, byte for byte, written directly for the request lines
/// (target [`crate::http::telemetry::TARGET`]) and by `Full` itself for
/// every other line. `Full` paints every part with a style, empty here, and
/// formats every field through three nested `format_args!`: half the cost of
/// a session request's log line.
struct TextLines<T> {
    timer: T,
    full: Format<Full, T>,
}

impl<T: FormatTime + Clone> TextLines<T> {
    fn new(timer: T) -> Self {
        TextLines {
            full: Format::default().with_timer(timer.clone()).with_ansi(false),
            timer,
        }
    }
}

impl<S, N, T> FormatEvent<S, N> for TextLines<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        if w.has_ansi_escapes() || meta.target() != crate::http::telemetry::TARGET {
            return self.full.format_event(ctx, w, event);
        }
        self.timer.format_time(&mut w)?;
        w.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                w.write_str(span.metadata().name())?;
                seen = true;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    w.write_char('{')?;
                    w.write_str(fields)?;
                    w.write_char('}')?;
                }
                w.write_char(':')?;
            }
            if seen {
                w.write_char(' ')?;
            }
        }
        w.write_str(meta.target())?;
        w.write_str(": ")?;
        let mut fields = Fields {
            w: &mut w,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_char('\n')
    }
}

/// Fields (of spans and events) as `tracing-subscriber`'s default
/// `DefaultFields` writes them without colours, by a shorter path: see
/// [`Fields`].
struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut w: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = Fields {
            w: &mut w,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Fields as `DefaultFields` writes them: the message as it is, then
/// `name=value` with values in their `Debug` form, one space apart; the
/// `log.*` fields of `log` records left out (their target and level are the
/// line's).
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl Fields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> std::fmt::Result) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let w = &mut *self.w;
        let pad = if std::mem::take(&mut self.first) {
            Ok(())
        } else {
            w.write_char(' ')
        };
        self.result = pad.and_then(|()| match field.name() {
            "message" => value(w),
            name => {
                w.write_str(name.strip_prefix("r#").unwrap_or(name))?;
                w.write_char('=')?;
                value(w)
            }
        });
    }
}

impl Visit for Fields<'_, '_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, |w| w.write_str(value));
        } else {
            self.field(field, |w| write!(w, "{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.field(field, |w| write!(w, "{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let Some(source) = value.source() else {
            return self.field(field, |w| write!(w, "{value}"));
        };
        let sources = std::iter::successors(Some(source), |e| e.source());
        let list = Sources(std::cell::Cell::new(Some(sources)));
        let name = field.name();
        self.field(field, |w| write!(w, "{value} {name}.sources={list:?}"));
    }
}

/// An error's sources as `DefaultFields` lists them: `[first, second]`.
struct Sources<I>(std::cell::Cell<Option<I>>);

impl<'e, I: Iterator<Item = &'e (dyn std::error::Error + 'static)>> std::fmt::Debug for Sources<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for e in self.0.take().into_iter().flatten() {
            list.entry(&format_args!("{e}"));
        }
        list.finish()
    }
}

/// Log timestamps in the default layout (`2026-12-06T22:08:34.955819Z`, UTC),
/// with the part up to the second formatted once a second on each thread
/// instead of for every line: every request writes a line.
#[derive(Clone, Copy)]
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

    /// A clock that always says the same, so that two formats can be compared.
    #[derive(Clone, Copy)]
    struct Fixed;

    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
            w.write_str("2026-12-07T05:33:41.123456Z")
        }
    }

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `lines` logs with `tracing-subscriber`'s default text format
    /// (`lean` false) or with [`TextLines`].
    fn logged(lean: bool, lines: impl Fn()) -> String {
        let out = Shared::default();
        let sink = out.clone();
        let builder = fmt::fmt()
            .with_timer(Fixed)
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_writer(move || sink.clone());
        if lean {
            let subscriber = builder
                .fmt_fields(TextFields)
                .event_format(TextLines::new(Fixed))
                .finish();
            tracing::subscriber::with_default(subscriber, lines);
        } else {
            tracing::subscriber::with_default(builder.finish(), lines);
        }
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    /// Request lines at every level, in nested spans, with fields recorded
    /// later, of every type, with quotes and line breaks; and other lines.
    fn all_kinds_of_lines() {
        use crate::http::telemetry::TARGET;
        use tracing::field::Empty;
        let outer = tracing::info_span!("outer", n = 1);
        let _outer = outer.enter();
        let span = tracing::info_span!(
            "request",
            method = %"GET",
            path = %"/embed/workbooks/sales",
            request_id = "a\"b",
            client_id = Empty,
        );
        span.record("client_id", "acme-host");
        let latency: Option<u64> = Some(45);
        tracing::info!(target: TARGET, parent: &span, status = 200_u16, latency_us = latency, "request");
        tracing::warn!(target: TARGET, parent: &span, status = 503_u16, latency_us = None::<u64>, "request failed");
        tracing::error!(target: TARGET, parent: &span, status = 500_u16, error = %"line\nbreak", "request failed");
        tracing::debug!(target: TARGET, flag = true, delta = -3_i64, r#type = "x", note = ?Some("q\"uote"), "no span {}", 7);
        tracing::trace!(target: TARGET, "message only");
        tracing::info!(target: TARGET, message = "a \"message\" field", extra = 1.5);
        tracing::info!(answer = 42, "another module's line");
        tracing::info!(
            log.target = "x",
            log.line = 3,
            kept = "y",
            "from a log record"
        );
        let io = std::io::Error::other("the disk is full");
        let outer_error = Wrapped(io);
        let error: &(dyn std::error::Error + 'static) = &outer_error;
        tracing::warn!(error, "with sources");
        tracing::warn!(target: TARGET, error, "with sources, here too");
        let alone: &(dyn std::error::Error + 'static) = &outer_error.0;
        tracing::warn!(target: TARGET, error = alone, "without sources");
        let empty = tracing::info_span!("empty");
        tracing::info!(target: TARGET, parent: &empty, "in a span without fields");
    }

    /// An error with a source.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("saving failed")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn request_lines_are_written_exactly_as_the_default_format_writes_them() {
        let full = logged(false, all_kinds_of_lines);
        let lean = logged(true, all_kinds_of_lines);
        assert_eq!(full.lines().count(), 13, "{full}");
        assert!(
            full.contains("request{method=GET path=/embed/workbooks/sales"),
            "{full}"
        );
        assert_eq!(lean, full);
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
