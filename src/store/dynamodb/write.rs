//! Writing a feed: `TransactWriteItems` of at most 100 puts (and 4 MB), each put
//! conditioned on the ownership read before the feed ([`super::owners`]), a bounded number
//! of transactions in flight, all under one deadline for the whole feed. A transaction is
//! all or nothing, so each chunk is written whole or not at all.
//!
//! A cancelled transaction:
//! - a condition failed (another writer changed one of its shows since the read): its
//!   shows are read again; when one now belongs to someone the actor may not change, the
//!   feed stops with [`StoreError::Forbidden`] counting the shows already stored;
//!   otherwise the chunk is sent again with conditions on what was read (at most
//!   [`MAX_RACES`] times);
//! - throttled or in conflict with another transaction: sent again after an exponential
//!   backoff with full jitter, until the deadline.
//!
//! Outcome, never a silent success:
//! - every show written → `Ok(n)`;
//! - some written, some not → [`StoreError::Partial`] naming each slug not confirmed
//!   (still cancelled at the deadline, in a call that failed or was cut off by the
//!   deadline, or in a chunk not started because an earlier call failed);
//! - none written → the failure itself (`Unavailable` when DynamoDB throttled us or could
//!   not be reached).
//!
//! A call that fails (after the SDK's own retries) stops the feed: chunks not yet started
//! are not sent, since they would most likely fail the same way, one call timeout each.
//! Puts are idempotent, so posting the feed again is the remedy for any of these.

use super::errors::{self, CallContext};
use super::item::{self, Item};
use super::owners::{self, Cancelled, Held, MAX_RACES, TRANSACTION_BYTES, TRANSACTION_ITEMS};
use crate::domain::{Actor, Timestamp};
use crate::store::StoreError;
use crate::store::usage::{self, Call};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How a feed is written.
#[derive(Debug, Clone)]
pub struct WritePolicy {
    /// Transactions in flight at once.
    pub concurrency: usize,
    /// The whole feed, retries included, ends within this.
    pub deadline: Duration,
    /// First backoff before sending a throttled transaction again; doubles per retry.
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

/// Where the feed is written, and by whom.
pub struct Target<'a> {
    pub client: &'a Client,
    pub table: &'a str,
    pub actor: &'a Actor,
    /// The time the feed's shows are stamped with.
    pub now: Timestamp,
}

/// One show of the feed: its place in the feed, its item, and its ownership as read.
struct Planned {
    position: usize,
    content: Item,
    held: Option<Held>,
}

impl Planned {
    fn slug(&self) -> String {
        item::slug_of(&self.content).unwrap_or("?").to_string()
    }
}

/// The result of one chunk.
#[derive(Default)]
struct ChunkOutcome {
    written: usize,
    not_written: Vec<String>,
    /// Shows another partner took meanwhile, with their place in the feed.
    refused: Vec<(usize, String)>,
    /// Why some were not written, when a call failed.
    error: Option<StoreError>,
    /// Why some were not written, when the deadline passed.
    deadline: bool,
}

/// Writes `items` (distinct slugs, in feed order) as described in the module doc, each
/// conditioned on its entry in `held` (absent: a new slug), ending by `deadline` (the
/// caller's: the feed's change-record bump before it counts against the same one).
pub async fn write_all(
    target: &Target<'_>,
    items: Vec<Item>,
    mut held: HashMap<String, Held>,
    policy: &WritePolicy,
    deadline: Instant,
) -> Result<usize, StoreError> {
    let mut chunks: Vec<Vec<Planned>> = Vec::new();
    let mut bytes = 0;
    for (position, content) in items.into_iter().enumerate() {
        let size = item::size_of(&content);
        let full = chunks
            .last()
            .is_none_or(|c| c.len() >= TRANSACTION_ITEMS || bytes + size > TRANSACTION_BYTES);
        if full {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        let held = item::slug_of(&content).and_then(|s| held.remove(s));
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(Planned {
                position,
                content,
                held,
            });
        }
    }
    let failed = AtomicBool::new(false);
    let outcomes: Vec<ChunkOutcome> = futures::stream::iter(chunks)
        .map(|chunk| write_chunk(target, chunk, policy, deadline, &failed))
        .buffer_unordered(policy.concurrency.max(1))
        .collect()
        .await;

    let mut written = 0;
    let mut not_written = Vec::new();
    let mut refused = Vec::new();
    let mut first_error = None;
    let mut deadline_hit = false;
    for o in outcomes {
        written += o.written;
        not_written.extend(o.not_written);
        refused.extend(o.refused);
        deadline_hit |= o.deadline;
        if first_error.is_none() {
            first_error = o.error;
        }
    }
    if !refused.is_empty() {
        refused.sort();
        tracing::info!(
            table = target.table,
            written,
            refused = refused.len(),
            "feed stopped: another partner took some of its shows while it was written"
        );
        return Err(owners::forbidden(
            refused.into_iter().map(|(_, s)| s).collect(),
            written,
        ));
    }
    if not_written.is_empty() {
        return Ok(written);
    }
    not_written.sort();
    let reason = match &first_error {
        Some(e) => e.to_string(),
        None => format!(
            "DynamoDB cancelled transactions (throttled) until the write deadline of {:?}",
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

fn slugs(chunk: &[Planned]) -> Vec<String> {
    chunk.iter().map(Planned::slug).collect()
}

async fn write_chunk(
    target: &Target<'_>,
    mut chunk: Vec<Planned>,
    policy: &WritePolicy,
    deadline: Instant,
    failed: &AtomicBool,
) -> ChunkOutcome {
    if failed.load(Ordering::Acquire) || Instant::now() >= deadline {
        return ChunkOutcome {
            not_written: slugs(&chunk),
            deadline: !failed.load(Ordering::Acquire),
            ..ChunkOutcome::default()
        };
    }
    let cx = CallContext {
        operation: "TransactWriteItems",
        table: target.table,
        index: None,
    };
    let stop = |chunk: &[Planned], error: StoreError| {
        failed.store(true, Ordering::Release);
        ChunkOutcome {
            not_written: slugs(chunk),
            error: Some(error),
            ..ChunkOutcome::default()
        }
    };
    let (mut attempt, mut races) = (0u32, 0u32);
    loop {
        let actions = chunk
            .iter()
            .map(|p| {
                owners::put(
                    target.table,
                    &p.content,
                    p.held.as_ref(),
                    target.actor,
                    target.now,
                )
            })
            .collect::<Result<Vec<_>, _>>();
        let actions = match actions {
            Ok(a) => a,
            Err(e) => return stop(&chunk, e),
        };
        let timer = Call::start("dynamodb", "TransactWriteItems");
        let call = target
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let Ok(res) = tokio::time::timeout_at(deadline, call).await else {
            timer.finish(&Err::<(), _>(StoreError::unavailable("deadline")));
            return ChunkOutcome {
                not_written: slugs(&chunk),
                deadline: true,
                ..ChunkOutcome::default()
            };
        };
        let e = match res {
            Ok(out) => {
                timer.finish(&Ok::<(), StoreError>(()));
                let write_units = out
                    .consumed_capacity()
                    .iter()
                    .map(|c| super::units(Some(c)))
                    .sum();
                usage::consumed("TransactWriteItems", 0.0, write_units, chunk.len());
                return ChunkOutcome {
                    written: chunk.len(),
                    ..ChunkOutcome::default()
                };
            }
            Err(e) => e,
        };
        match owners::cancelled(&e) {
            Some(Cancelled::Conditions(_)) => {
                timer.finish(&Err::<(), _>(owners::forbidden(Vec::new(), 0)));
                races += 1;
                if races > MAX_RACES {
                    let e = StoreError::unavailable(
                        "other writers kept changing the feed's shows while it was written",
                    );
                    return stop(&chunk, e);
                }
                let fresh = match owners::read(target.client, target.table, &slugs(&chunk)).await {
                    Ok(f) => f,
                    Err(e) => return stop(&chunk, e),
                };
                let refused: Vec<(usize, String)> = chunk
                    .iter()
                    .filter(|p| {
                        fresh
                            .get(&p.slug())
                            .is_some_and(|h| !target.actor.may_change(h.owner()))
                    })
                    .map(|p| (p.position, p.slug()))
                    .collect();
                if !refused.is_empty() {
                    failed.store(true, Ordering::Release);
                    return ChunkOutcome {
                        not_written: slugs(&chunk),
                        refused,
                        ..ChunkOutcome::default()
                    };
                }
                for p in &mut chunk {
                    p.held = fresh.get(&p.slug()).cloned();
                }
            }
            Some(Cancelled::Transient(reasons)) => {
                timer.finish(&Err::<(), _>(StoreError::unavailable(format!(
                    "DynamoDB TransactWriteItems throttled: {reasons}"
                ))));
                attempt += 1;
                let pause = policy.backoff(attempt);
                if Instant::now() + pause >= deadline {
                    return ChunkOutcome {
                        not_written: slugs(&chunk),
                        deadline: true,
                        ..ChunkOutcome::default()
                    };
                }
                tracing::debug!(
                    table = target.table,
                    shows = chunk.len(),
                    attempt,
                    ?pause,
                    %reasons,
                    "transaction cancelled; sending it again"
                );
                tokio::time::sleep(pause).await;
            }
            None => {
                let res = Err::<(), _>(errors::from_sdk(e, cx));
                timer.finish(&res);
                if let Err(e) = res {
                    return stop(&chunk, e);
                }
            }
        }
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
