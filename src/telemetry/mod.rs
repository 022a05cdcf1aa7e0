//! Telemetry: logs here; metrics in [`metrics`] (exporters [`prometheus`], [`emf`]; [`table`]).
//!
//! Tracing setup: JSON lines in containers (stdout is not a terminal), readable text on a terminal,
//! or as `APP__LOG__FORMAT` says. The level comes from `APP__LOG__LEVEL` (`RUST_LOG` overrides it
//! when set). JSON lines are tracing-subscriber's JSON format (event fields at the top level, the
//! current span's fields — a request's `trace_id` — under `span`), written to stdout by
//! tracing-appender's non-blocking writer: a logging request never waits for stdout, and none of
//! its lines is dropped (`lossy(false)`: a full queue makes loggers wait instead). The writer's
//! worker flushes whenever its queue runs dry, so a buffer in front of stdout makes one `write` per
//! batch of lines under load instead of one per line.

pub mod emf;
pub mod metrics;
pub mod prometheus;
pub mod table;

use crate::config::{LogFormat, LogSettings};
use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines the log writer holds before loggers wait for stdout: seconds of a busy task's info
/// lines (successful reads log none). Allocated and touched at start, 32 bytes a line: the
/// crate's default, 128,000, would be 4 MB of the idle RSS.
const BUFFERED_LINES: usize = 4 * 1024;

/// Keeps the log writer running; dropping it writes out every buffered line.
pub type LogGuard = Option<WorkerGuard>;

/// Where whole lines go to stdout when the JSON format is on: the log writer, so that
/// other line producers (the EMF metrics documents) never interleave with a log line.
static STDOUT_LINES: OnceLock<NonBlocking> = OnceLock::new();

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
/// Keep the returned guard until the process ends.
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if !json {
        let _ = builder.compact().try_init();
        return None;
    }
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    let installed = builder
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(writer.clone())
        .try_init();
    installed.ok()?;
    let _ = STDOUT_LINES.set(writer);
    Some(guard)
}

/// Writes one whole line (ending in `\n`) to stdout, through the log writer when there
/// is one.
pub fn write_stdout_line(line: &[u8]) {
    use std::io::Write as _;
    match STDOUT_LINES.get() {
        Some(w) => {
            let _ = w.clone().write_all(line);
        }
        None => {
            let _ = std::io::stdout().lock().write_all(line);
        }
    }
}

/// For tests: text to the test writer, quiet unless `RUST_LOG` says otherwise.
pub fn init_for_tests() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "off".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}
