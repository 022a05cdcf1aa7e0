//! What the stores count about their calls, through the `metrics` facade (the exporters
//! belong to `telemetry`): calls by outcome and their durations, DynamoDB's consumed
//! read and write units, and items, per operation. The store owns these because only it
//! sees each backend call; they are what the service's storage bill is made of.

use super::StoreError;
use std::sync::Mutex;
use std::time::Instant;

/// One backend call being timed.
pub struct Call {
    store: &'static str,
    operation: &'static str,
    started: Instant,
}

impl Call {
    pub fn start(store: &'static str, operation: &'static str) -> Call {
        Call {
            store,
            operation,
            started: Instant::now(),
        }
    }

    /// Counts the call under its outcome and records its duration.
    pub fn finish<T>(self, result: &Result<T, StoreError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(StoreError::Unavailable { reason, .. }) if reason.contains("throttled") => {
                "throttled"
            }
            Err(StoreError::Unavailable { .. } | StoreError::Partial { .. }) => "unavailable",
            Err(StoreError::Forbidden { .. }) => "refused",
            Err(StoreError::BadCursor | StoreError::Internal(_)) => "error",
        };
        metrics::counter!("store_calls_total", "store" => self.store,
            "operation" => self.operation, "outcome" => outcome)
        .increment(1);
        metrics::histogram!("store_call_duration_seconds", "store" => self.store,
            "operation" => self.operation)
        .record(self.started.elapsed().as_secs_f64());
    }
}

/// Counts consumed capacity and items of one call.
///
/// The facade's counters are whole numbers and DynamoDB reports units in halves (an
/// eventually consistent read of a small item is 0.5): the exact sum is kept here and
/// the counters advance by its whole part, so they never drift from what was billed by
/// more than one unit.
pub fn consumed(operation: &'static str, read_units: f64, write_units: f64, items: usize) {
    if read_units > 0.0 {
        let whole = accumulate(operation, false, read_units);
        if whole > 0 {
            metrics::counter!("store_consumed_read_units_total", "operation" => operation)
                .increment(whole);
        }
    }
    if write_units > 0.0 {
        let whole = accumulate(operation, true, write_units);
        if whole > 0 {
            metrics::counter!("store_consumed_write_units_total", "operation" => operation)
                .increment(whole);
        }
    }
    if items > 0 {
        metrics::counter!("store_items_total", "operation" => operation).increment(items as u64);
    }
}

/// Adds `units` to the running sum of (`operation`, read or write); the whole units the
/// counter has not been given yet.
fn accumulate(operation: &'static str, write: bool, units: f64) -> u64 {
    static SUMS: Mutex<Vec<(&str, bool, f64)>> = Mutex::new(Vec::new());
    let mut sums = SUMS.lock().unwrap_or_else(|e| e.into_inner());
    let i = match sums
        .iter()
        .position(|(o, w, _)| *o == operation && *w == write)
    {
        Some(i) => i,
        None => {
            sums.push((operation, write, 0.0));
            sums.len() - 1
        }
    };
    let before = sums[i].2;
    sums[i].2 += units;
    (sums[i].2.floor() - before.floor()) as u64
}
