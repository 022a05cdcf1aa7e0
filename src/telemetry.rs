//! Tracing setup: JSON lines in containers (stdout is not a terminal), readable text on a
//! terminal, or as `APP__LOG__FORMAT` says. The level comes from `APP__LOG__LEVEL`
//! (`RUST_LOG` overrides it when set).
//!
//! JSON lines are written by [`JsonLines`], which produces exactly what
//! tracing-subscriber's `json().flatten_event(true)` formatter does (a test compares them
//! byte for byte) at a fraction of its cost: every request logs a line, and that formatter
//! (serde through a `fmt::Write` adaptor that re-validates UTF-8 on every small write, and
//! a `Display`-based timestamp) was the largest single cost of a cached `GET /v1/shows`
//! (see docs/benchmarks.md).

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
pub fn init(settings: &LogSettings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(&settings.level));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}

/// For tests: text to the test writer, quiet unless `RUST_LOG` says otherwise.
pub fn init_for_tests() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "off".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
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
        // Events from the `log` crate carry their real target in a field.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, std::time::SystemTime::now())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(level_name(meta.level()))?;
        writer.write_char('"')?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_json_str(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
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
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's own float format (shortest round trip; null when not finite).
        self.entry(field, |out| match serde_json::to_string(&value) {
            Ok(s) => out.write_str(&s),
            Err(_) => out.write_str("null"),
        });
    }
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
        assert_eq!(ours.lines().count(), 7, "{ours}");
        assert_eq!(mask(&ours), mask(&theirs));
        assert!(ours.ends_with('\n'));
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
}
