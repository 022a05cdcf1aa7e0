//! Writing a feed: `BatchWriteItem` in chunks of 25 puts, a bounded number of chunks in
//! flight, `UnprocessedItems` retried with exponential backoff and full jitter, all under
//! one deadline for the whole feed.
//!
//! Outcome, never a silent success:
//! - every show written → `Ok(n)`;
//! - some written, some not → [`StoreError::Partial`] naming each slug not confirmed
//!   (still unprocessed at the deadline, in a call that failed or was cut off by the
//!   deadline, or in a chunk not started because an earlier call failed);
//! - none written → the failure itself (`Unavailable` when DynamoDB throttled us or could
//!   not be reached).
//!
//! A call that fails (after the SDK's own retries) stops the feed: chunks not yet started
//! are not sent, since they would most likely fail the same way, one call timeout each.
//! Puts are idempotent, so posting the feed again is the remedy for any of these.

use super::errors::{self, CallContext};
use super::item::{Item, slug_of};
use crate::store::StoreError;
use crate::store::usage::{self, Call};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{PutRequest, ReturnConsumedCapacity, WriteRequest};
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// DynamoDB's limit of requests per `BatchWriteItem` call.
pub const BATCH_SIZE: usize = 25;

/// How a feed is written.
#[derive(Debug, Clone)]
pub struct WritePolicy {
    /// `BatchWriteItem` calls in flight at once.
    pub concurrency: usize,
    /// The whole feed, retries included, ends within this.
    pub deadline: Duration,
    /// First backoff before retrying `UnprocessedItems`; doubles per retry.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_cap: Duration,
}

impl WritePolicy {
    /// The backoff before retry `attempt` (1-based): uniformly random in
    /// `[0, min(cap, base * 2^(attempt-1))]` ("full jitter").
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let ceiling = exp.min(self.backoff_cap);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Where the feed is written.
pub struct Target<'a> {
    pub client: &'a Client,
    pub table: &'a str,
}

/// The result of one chunk.
#[derive(Default)]
struct ChunkOutcome {
    written: usize,
    not_written: Vec<String>,
    /// Why some were not written, when a call failed.
    error: Option<StoreError>,
    /// Why some were not written, when the deadline passed.
    deadline: bool,
}

/// Writes `items` (distinct slugs) as described in the module doc, ending by `deadline`
/// (the caller's: the feed's change-record bump before it counts against the same one).
pub async fn write_all(
    target: &Target<'_>,
    items: Vec<Item>,
    policy: &WritePolicy,
    deadline: Instant,
) -> Result<usize, StoreError> {
    let total = items.len();
    // Only a missing item fails this builder, and every request has one.
    let requests = items
        .into_iter()
        .map(|item| {
            let put = PutRequest::builder().set_item(Some(item)).build()?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect::<Result<Vec<_>, aws_sdk_dynamodb::error::BuildError>>()
        .map_err(|e| StoreError::Internal(e.into()))?;
    let failed = AtomicBool::new(false);
    let mut chunks = Vec::with_capacity(total.div_ceil(BATCH_SIZE));
    let mut items = requests.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(BATCH_SIZE).collect::<Vec<_>>());
    }
    let outcomes: Vec<ChunkOutcome> = futures::stream::iter(chunks)
        .map(|chunk| write_chunk(target, chunk, policy, deadline, &failed))
        .buffer_unordered(policy.concurrency.max(1))
        .collect()
        .await;

    let mut written = 0;
    let mut not_written = Vec::new();
    let mut first_error = None;
    let mut deadline_hit = false;
    for o in outcomes {
        written += o.written;
        not_written.extend(o.not_written);
        deadline_hit |= o.deadline;
        if first_error.is_none() {
            first_error = o.error;
        }
    }
    if not_written.is_empty() {
        return Ok(written);
    }
    not_written.sort();
    let reason = match &first_error {
        Some(e) => e.to_string(),
        None => format!(
            "DynamoDB left items unprocessed (throttled) until the write deadline of {:?}",
            policy.deadline
        ),
    };
    tracing::warn!(
        table = target.table,
        written,
        not_written = not_written.len(),
        deadline_hit,
        %reason,
        "feed not completely written"
    );
    if written == 0 {
        return Err(first_error.unwrap_or(StoreError::Unavailable {
            reason,
            retry_after: errors::RETRY_AFTER_THROTTLED,
        }));
    }
    Err(StoreError::Partial {
        written,
        not_written,
        reason,
    })
}

pub(crate) fn slugs(requests: &[WriteRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            r.put_request()
                .and_then(|p| slug_of(p.item()))
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

async fn write_chunk(
    target: &Target<'_>,
    chunk: Vec<WriteRequest>,
    policy: &WritePolicy,
    deadline: Instant,
    failed: &AtomicBool,
) -> ChunkOutcome {
    let mut pending = chunk;
    if failed.load(Ordering::Acquire) || Instant::now() >= deadline {
        return ChunkOutcome {
            not_written: slugs(&pending),
            deadline: !failed.load(Ordering::Acquire),
            ..ChunkOutcome::default()
        };
    }

    let cx = CallContext {
        operation: "BatchWriteItem",
        table: target.table,
        index: None,
    };
    let mut written = 0;
    let mut attempt = 0u32;
    loop {
        let timer = Call::start("dynamodb", "BatchWriteItem");
        let call = target
            .client
            .batch_write_item()
            .request_items(target.table, pending.clone())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let res = tokio::time::timeout_at(deadline, call)
            .await
            .map(|r| r.map_err(|e| errors::from_sdk(e, cx)));
        match &res {
            Ok(r) => timer.finish(r),
            Err(_) => timer.finish(&Err::<(), _>(StoreError::unavailable("deadline"))),
        }
        let out = match res {
            Err(_) => {
                return ChunkOutcome {
                    written,
                    not_written: slugs(&pending),
                    deadline: true,
                    ..ChunkOutcome::default()
                };
            }
            Ok(Err(e)) => {
                failed.store(true, Ordering::Release);
                return ChunkOutcome {
                    written,
                    not_written: slugs(&pending),
                    error: Some(e),
                    ..ChunkOutcome::default()
                };
            }
            Ok(Ok(out)) => out,
        };
        let write_units: f64 = out
            .consumed_capacity()
            .iter()
            .map(|c| super::units(Some(c)))
            .sum();
        let unprocessed = out
            .unprocessed_items
            .and_then(|mut by_table| by_table.remove(target.table))
            .unwrap_or_default();
        let done = pending.len().saturating_sub(unprocessed.len());
        usage::consumed("BatchWriteItem", 0.0, write_units, done);
        written += done;
        if unprocessed.is_empty() {
            return ChunkOutcome {
                written,
                ..ChunkOutcome::default()
            };
        }
        pending = unprocessed;
        attempt += 1;
        let pause = policy.backoff(attempt);
        if Instant::now() + pause >= deadline {
            return ChunkOutcome {
                written,
                not_written: slugs(&pending),
                deadline: true,
                ..ChunkOutcome::default()
            };
        }
        tracing::debug!(
            table = target.table,
            unprocessed = pending.len(),
            attempt,
            ?pause,
            "retrying UnprocessedItems"
        );
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_below_an_exponential_ceiling() {
        let p = WritePolicy {
            concurrency: 1,
            deadline: Duration::from_secs(1),
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(100),
        };
        for attempt in 1..40 {
            let ceiling = Duration::from_millis(10)
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(Duration::from_millis(100));
            for _ in 0..50 {
                assert!(p.backoff(attempt) <= ceiling, "attempt {attempt}");
            }
        }
        let spread: std::collections::BTreeSet<_> = (0..50).map(|_| p.backoff(5)).collect();
        assert!(spread.len() > 10, "jittered: {spread:?}");
    }
}
