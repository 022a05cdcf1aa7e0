//! Tracing setup: JSON lines in containers (stdout is not a terminal), readable text on a
//! terminal, or as `APP__LOG__FORMAT` says. The level comes from `APP__LOG__LEVEL`
//! (`RUST_LOG` overrides it when set).
//!
//! JSON lines are written by [`JsonLines`], which produces exactly what
//! tracing-subscriber's `json().flatten_event(true)` formatter does (a test compares them
//! byte for byte) at a fraction of its cost: every request logs a line, and that formatter
//! (serde through a `fmt::Write` adaptor that re-validates UTF-8 on every small write, and
//! a `Display`-based timestamp) was the largest single cost of a cached `GET /v1/shows`
//! (see docs/benchmarks.md). They reach stdout through [`BatchedStdout`]: one `write(2)`
//! per batch of lines (at most every [`LINGER`]) instead of one per request.

use crate::config::{LogFormat, LogSettings};
use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
/// Keep the returned guard until the process ends: dropping it writes out the JSON lines
/// still buffered.
#[must_use = "dropping the guard flushes and stops the log writer"]
pub fn init(settings: &LogSettings) -> LogGuard {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(&settings.level));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    // A filter on field values or spans (`request[status]=…`, `[span]`) needs each request
    // line to be a real event; a filter on targets and levels alone is checked just as well
    // by `tracing::enabled!` before a direct line.
    let direct = !filter.to_string().contains('[');
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        let (writer, guard) = BatchedStdout::start();
        let installed = builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_writer(writer.clone())
            .try_init();
        if installed.is_ok() {
            if direct {
                let _ = REQUEST_LINES.set(writer);
            }
            return guard;
        }
        drop(guard);
    } else {
        let _ = builder.compact().try_init();
    }
    LogGuard(None)
}

/// For tests: text to the test writer, quiet unless `RUST_LOG` says otherwise.
pub fn init_for_tests() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "off".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}

/// The fields of the request log line, which `http::middleware` logs once per request:
/// WARN for a server error, INFO otherwise, target `request`.
#[derive(Debug, Clone, Copy)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency_us: u64,
    pub request_id: &'a str,
    pub client_id: &'a str,
}

/// Where [`RequestLine::log`] writes JSON lines itself, once [`init`] has installed the
/// JSON format with a filter on targets and levels only.
static REQUEST_LINES: std::sync::OnceLock<BatchedStdout> = std::sync::OnceLock::new();

impl RequestLine<'_> {
    /// Logs the line. With the JSON format it is written straight to the log writer: the
    /// same bytes the tracing event gives through [`JsonLines`] (a test compares them),
    /// after the same filter check, without recording the event field by field (the
    /// line is written on every request; the event's dispatch and visitors cost about as
    /// much as formatting it). Otherwise it is an ordinary tracing event.
    pub fn log(&self) {
        let Some(out) = REQUEST_LINES.get() else {
            return self.event();
        };
        let level = self.level();
        let enabled = if level == Level::WARN {
            tracing::enabled!(target: "request", Level::WARN)
        } else {
            tracing::enabled!(target: "request", Level::INFO)
        };
        if !enabled {
            return;
        }
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                if self.write_json(&mut line, &level).is_ok() {
                    let _ = out.push(line.as_bytes());
                }
            }
            // Only while this thread formats another line, which never logs a request.
            Err(_) => self.event(),
        });
    }

    /// WARN for a server error, INFO otherwise.
    fn level(&self) -> Level {
        if self.status >= 500 {
            Level::WARN
        } else {
            Level::INFO
        }
    }

    /// The line as a tracing event.
    fn event(&self) {
        let RequestLine {
            method,
            route,
            status,
            latency_us,
            request_id,
            client_id,
        } = *self;
        if self.level() == Level::WARN {
            tracing::warn!(target: "request", method, route, status, latency_us, request_id, client_id, "request");
        } else {
            tracing::info!(target: "request", method, route, status, latency_us, request_id, client_id, "request");
        }
    }

    /// The line as [`JsonLines`] formats the event.
    fn write_json(&self, out: &mut String, level: &Level) -> fmt::Result {
        out.push_str("{\"timestamp\":\"");
        write_timestamp(out, std::time::SystemTime::now())?;
        out.push_str("\",\"level\":\"");
        out.push_str(level_name(level));
        out.push_str("\",\"message\":\"request\",\"method\":");
        write_json_str(out, self.method)?;
        out.push_str(",\"route\":");
        write_json_str(out, self.route)?;
        out.push_str(",\"status\":");
        write_u64(out, u64::from(self.status))?;
        out.push_str(",\"latency_us\":");
        write_u64(out, self.latency_us)?;
        out.push_str(",\"request_id\":");
        write_json_str(out, self.request_id)?;
        out.push_str(",\"client_id\":");
        write_json_str(out, self.client_id)?;
        out.push_str(",\"target\":\"request\"}\n");
        Ok(())
    }
}

/// One JSON object per event: `timestamp` (RFC 3339, UTC, microseconds), `level`, the
/// event's fields in order (`message` first), `target`; as tracing-subscriber's JSON
/// format with `flatten_event(true)` and no span fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The line is built in this thread's scratch `String` (a concrete type: every small
        // write inlines to a copy) and handed to the writer in one piece.
        LINE.with(|cell| {
            // Busy only for an event logged while this thread formats one (a `Debug` impl
            // that logs): that one gets a fresh `String`.
            let mut fresh = String::new();
            let mut scratch = cell.try_borrow_mut();
            let line = match scratch {
                Ok(ref mut line) => {
                    line.clear();
                    &mut **line
                }
                Err(_) => &mut fresh,
            };
            format_line(line, event)?;
            writer.write_str(line)
        })
    }
}

thread_local! {
    /// The line being formatted on this thread; keeps its capacity between lines.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

fn format_line(out: &mut String, event: &Event<'_>) -> fmt::Result {
    // Events from the `log` crate carry their real target in a field.
    let normalized = event.normalized_metadata();
    let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
    out.push_str("{\"timestamp\":\"");
    write_timestamp(out, std::time::SystemTime::now())?;
    out.push_str("\",\"level\":\"");
    out.push_str(level_name(meta.level()));
    out.push('"');
    let mut fields = Fields {
        out: &mut *out,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    out.push_str(",\"target\":");
    write_json_str(out, meta.target())?;
    out.push_str("}\n");
    Ok(())
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Writes each field as `,"name":value`, typed as serde_json writes it (the types
/// tracing-serde records natively; anything else through `Debug`, as a string).
struct Fields<'a, W: fmt::Write> {
    out: &'a mut W,
    result: fmt::Result,
}

impl<W: fmt::Write> Fields<'_, W> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.out.write_char(',')?;
        write_json_str(self.out, field.name())?;
        self.out.write_char(':')
    }

    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(self.out));
        }
    }
}

impl<W: fmt::Write> Visit for Fields<'_, W> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |out| {
            out.write_char('"')?;
            write!(JsonEscape(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |out| write_json_str(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |out| write_u64(out, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |out| {
            if value < 0 {
                out.write_char('-')?;
            }
            write_u64(out, value.unsigned_abs())
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's own float format (shortest round trip; null when not finite).
        self.entry(field, |out| match serde_json::to_string(&value) {
            Ok(s) => out.write_str(&s),
            Err(_) => out.write_str("null"),
        });
    }
}

/// A whole number in decimal, without `core::fmt`'s machinery (every request line has two).
fn write_u64(out: &mut impl fmt::Write, mut v: u64) -> fmt::Result {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.write_str(std::str::from_utf8(&buf[i..]).map_err(|_| fmt::Error)?)
}

/// A JSON string, quoted, escaped as serde_json escapes it.
fn write_json_str(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    JsonEscape(out).write_str(s)?;
    out.write_char('"')
}

/// Escapes what passes through it as the inside of a JSON string, exactly as serde_json
/// does: `"` and `\`, control characters as `\b \t \n \f \r` or `\u00XX`; nothing else.
struct JsonEscape<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for JsonEscape<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        // Most text needs no escape: one pass that the compiler can vectorize, one copy.
        if !bytes.iter().fold(false, |any, &b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        }) {
            return self.0.write_str(s);
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &str = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                0x08 => "\\b",
                b'\t' => "\\t",
                b'\n' => "\\n",
                0x0c => "\\f",
                b'\r' => "\\r",
                0x00..=0x1f => "",
                _ => continue,
            };
            // Only ASCII bytes are matched: `i` is always a char boundary.
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.0.write_str("\\u00")?;
                self.0.write_char(char::from(HEX[usize::from(b >> 4)]))?;
                self.0.write_char(char::from(HEX[usize::from(b & 0xf)]))?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

thread_local! {
    /// The last second formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS` text.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `2026-11-29T05:35:54.886122Z`: what tracing-subscriber's `SystemTime` timer writes.
/// The date and time of day are formatted once per second per thread.
fn write_timestamp(out: &mut impl fmt::Write, now: std::time::SystemTime) -> fmt::Result {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            cached.1.clear();
            let (y, m, d) = civil_from_days(secs / 86_400);
            let s = secs % 86_400;
            write!(
                cached.1,
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
                s / 3600,
                s / 60 % 60,
                s % 60
            )?;
            cached.0 = secs;
        }
        out.write_str(&cached.1)
    })?;
    let micros = since.subsec_micros();
    let mut frac = *b".000000Z";
    let mut v = micros;
    for slot in frac[1..7].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.write_str(std::str::from_utf8(&frac).map_err(|_| fmt::Error)?)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// How long the log writer lets lines gather after writing a batch: the most a line waits
/// under steady logging (an idle writer wakes for the first line at once).
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(2);
/// Buffered log bytes past which loggers wait for the writer (stdout blocked, or the writer
/// thread starved of CPU): about 0.4 s of lines at 40,000 requests/s. Memory stays bounded
/// and no line is dropped, as with a blocking stdout.
const MAX_BUFFERED: usize = 4 << 20;

/// JSON log lines to stdout through one buffer that a background thread writes out, so a
/// busy service makes one `write(2)` per batch, not one per request line. Lines keep their
/// order and are never dropped; a line waits at most [`LINGER`] plus a write under load.
/// [`LogGuard`] writes out what is left when the process ends normally (on SIGKILL or an
/// abort, at most the last [`LINGER`] of lines is lost).
#[derive(Clone)]
pub struct BatchedStdout(std::sync::Arc<Batch>);

struct Batch {
    state: std::sync::Mutex<BatchState>,
    /// The writer thread waits here for lines (or the end).
    lines: std::sync::Condvar,
    /// Loggers wait here while the buffer is full.
    room: std::sync::Condvar,
}

#[derive(Default)]
struct BatchState {
    buf: Vec<u8>,
    writer_idle: bool,
    loggers_waiting: bool,
    closed: bool,
}

impl BatchedStdout {
    fn start() -> (BatchedStdout, LogGuard) {
        let batch = std::sync::Arc::new(Batch {
            state: std::sync::Mutex::new(BatchState::default()),
            lines: std::sync::Condvar::new(),
            room: std::sync::Condvar::new(),
        });
        let b = batch.clone();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || b.run(&mut std::io::stdout()));
        match thread {
            Ok(handle) => (
                BatchedStdout(batch.clone()),
                LogGuard(Some((batch, handle))),
            ),
            Err(_) => {
                // No thread: write each line directly, as before.
                batch.lock().closed = true;
                (BatchedStdout(batch), LogGuard(None))
            }
        }
    }
}

impl Batch {
    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer thread: takes the whole buffer, writes it, lingers, until closed.
    fn run(&self, out: &mut impl std::io::Write) {
        let mut batch = Vec::with_capacity(64 * 1024);
        loop {
            let mut st = self.lock();
            while st.buf.is_empty() && !st.closed {
                st.writer_idle = true;
                st = self.lines.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.writer_idle = false;
            if st.buf.is_empty() && st.closed {
                return;
            }
            std::mem::swap(&mut st.buf, &mut batch);
            if std::mem::take(&mut st.loggers_waiting) {
                self.room.notify_all();
            }
            let closed = st.closed;
            drop(st);
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if batch.capacity() > MAX_BUFFERED {
                batch.shrink_to(64 * 1024);
            }
            if !closed {
                std::thread::sleep(LINGER);
            }
        }
    }
}

impl BatchedStdout {
    /// Adds `line` to the batch (waiting while the batch is full).
    fn push(&self, line: &[u8]) -> std::io::Result<usize> {
        let mut st = self.0.lock();
        while st.buf.len() >= MAX_BUFFERED && !st.closed {
            st.loggers_waiting = true;
            st = self.0.room.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.closed {
            // After the guard is gone (or without a writer thread): straight to stdout.
            drop(st);
            return std::io::Write::write_all(&mut std::io::stdout(), line).map(|()| line.len());
        }
        st.buf.extend_from_slice(line);
        if std::mem::take(&mut st.writer_idle) {
            self.0.lines.notify_one();
        }
        Ok(line.len())
    }
}

impl std::io::Write for BatchedStdout {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.push(line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedStdout {
    type Writer = BatchedStdout;

    fn make_writer(&'a self) -> BatchedStdout {
        self.clone()
    }
}

/// Keeps the log writer running; when dropped, writes out every buffered line and stops it.
pub struct LogGuard(Option<(std::sync::Arc<Batch>, std::thread::JoinHandle<()>)>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some((batch, thread)) = self.0.take() {
            batch.lock().closed = true;
            batch.lines.notify_one();
            batch.room.notify_all();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, UNIX_EPOCH};

    /// Captures what a subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Odd;
    impl fmt::Display for Odd {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("dis\"play\u{1b}[31m\u{7f}é\n")
        }
    }

    fn events() {
        let method = axum::http::Method::GET;
        tracing::info!(target: "request", %method, route = "/v1/shows", status = 200_u16,
            latency_us = 1234_u64, request_id = "abc-1", client_id = "-", "request");
        tracing::warn!(target: "request", %method, route = "unmatched", status = 503_u16,
            latency_us = 7_u64, request_id = "x", client_id = "partner-7", "request");
        tracing::error!(
            error = "a \"quoted\"\\ line\nwith\ttabs \u{0}\u{1f} and é ✓",
            "failed"
        );
        tracing::info!(
            shows = 1000,
            written = 1000_usize,
            store_write_calls = 1_u64,
            "feed stored"
        );
        tracing::info!(
            zero = 0_u64,
            max = u64::MAX,
            min = i64::MIN,
            ten = 10_i64,
            "extremes"
        );
        tracing::info!(neg = -5_i64, yes = true, no = false, f = 1.5_f64, big = 1e21_f64,
            nan = f64::NAN, wide = 170141183460469231731687303715884105727_i128,
            e = &std::io::Error::other("io failed") as &(dyn std::error::Error + 'static),
            d = ?Odd, s = %Odd, "all types: {} {:?}", 1, "two");
        tracing::debug!(addr = %"127.0.0.1:8080", "listening");
        tracing::info!("");
    }

    fn run(json_lines: bool) -> String {
        let out = Capture::default();
        let builder = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("debug"))
            .with_writer(out.clone());
        if json_lines {
            let s = builder
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines)
                .finish();
            tracing::subscriber::with_default(s, events);
        } else {
            let s = builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish();
            tracing::subscriber::with_default(s, events);
        }
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    /// Blanks the timestamps' digits (the two runs happen at different instants).
    fn mask(s: &str) -> String {
        s.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let ts = v["timestamp"].as_str().unwrap();
                assert_eq!(ts.len(), 27, "{ts}");
                l.replacen(ts, "TIMESTAMP", 1)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn json_lines_are_byte_for_byte_tracing_subscribers_json() {
        let ours = run(true);
        let theirs = run(false);
        assert_eq!(ours.lines().count(), 8, "{ours}");
        assert_eq!(mask(&ours), mask(&theirs));
        assert!(ours.ends_with('\n'));
    }

    #[test]
    fn direct_request_lines_are_the_events_bytes() {
        let lines = [
            RequestLine {
                method: "GET",
                route: "/v1/shows",
                status: 200,
                latency_us: 0,
                request_id: "0b7c-4",
                client_id: "partner-1",
            },
            RequestLine {
                method: "DELETE",
                route: "/v1/shows/{*slug}",
                status: 503,
                latency_us: u64::MAX,
                request_id: "Root=1-5e1b4151",
                client_id: "odd \"client\"\\\n\u{1}é",
            },
            RequestLine {
                method: "POST",
                route: "unmatched",
                status: 404,
                latency_us: 12_345,
                request_id: "-",
                client_id: "-",
            },
        ];
        let out = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("info"))
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_writer(out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || lines.iter().for_each(|l| l.event()));
        let events = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let mut direct = String::new();
        for l in &lines {
            l.write_json(&mut direct, &l.level()).unwrap();
        }
        assert_eq!(events.lines().count(), 3, "{events}");
        assert_eq!(mask(&direct), mask(&events));
        assert!(direct.contains(r#""level":"WARN","message":"request","method":"DELETE""#));
    }

    #[test]
    fn timestamps_match_rfc3339_with_microseconds() {
        let at = |secs: u64, micros: u32| {
            let mut s = String::new();
            write_timestamp(&mut s, UNIX_EPOCH + Duration::new(secs, micros * 1000)).unwrap();
            s
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(at(1_709_208_000, 999_999), "2024-02-29T12:00:00.999999Z");
        assert_eq!(at(4_102_444_799, 500_000), "2099-12-31T23:59:59.500000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(at(253_402_300_799, 7), "9999-12-31T23:59:59.000007Z");
        // The per-second cache follows the clock, backwards too.
        assert_eq!(at(1, 0), "1970-01-01T00:00:01.000000Z");
        assert_eq!(at(0, 5), "1970-01-01T00:00:00.000005Z");
    }

    #[test]
    fn timestamps_agree_with_tracing_subscriber_now() {
        use tracing_subscriber::fmt::time::FormatTime;
        // Compare at the same second (retry across a second boundary).
        for _ in 0..5 {
            let mut theirs = String::new();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            let mut ours = String::new();
            write_timestamp(&mut ours, std::time::SystemTime::now()).unwrap();
            if ours[..19] == theirs[..19] {
                assert_eq!(ours.len(), theirs.len());
                return;
            }
        }
        panic!("clock kept crossing seconds");
    }

    /// Collects what the writer thread writes, and how many writes it made.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut s = self.0.lock().unwrap();
            s.0.extend_from_slice(buf);
            s.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn batched_lines_keep_their_order_arrive_soon_and_share_writes() {
        use std::io::Write as _;
        let batch = Arc::new(Batch {
            state: Mutex::new(BatchState::default()),
            lines: std::sync::Condvar::new(),
            room: std::sync::Condvar::new(),
        });
        let sink = Sink::default();
        let (b, mut out) = (batch.clone(), sink.clone());
        let thread = std::thread::spawn(move || b.run(&mut out));
        let guard = LogGuard(Some((batch.clone(), thread)));
        let mut w = BatchedStdout(batch);

        // One line on an idle writer is written promptly.
        w.write_all(b"first\n").unwrap();
        let started = std::time::Instant::now();
        while sink.0.lock().unwrap().0.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(2), "not written");
            std::thread::sleep(Duration::from_millis(1));
        }

        // Many lines from several threads: all there, each thread's in order, in far fewer
        // writes than lines.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        w.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard); // flushes the rest
        let (bytes, writes) = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 4 * 5000);
        for t in 0..4 {
            let seq: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("{t} ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(seq, (0..5000).collect::<Vec<_>>());
        }
        assert!(
            writes < lines.len() / 10,
            "{writes} writes for {} lines",
            lines.len()
        );
    }
}
