//! The catalogue (`GET /v1/shows`, whole or paged), kept in memory and kept fresh: the
//! bytes ([`snapshot`]: JSON in page order, gzip, ETag, pages cut from it), the rules
//! that decide when the store is asked again and what is read ([`ListCache`]), and the
//! change feed a client follows from a list's position ([`changes`]).
//!
//! Why a module of its own: the catalogue is read far more often than it changes, and
//! re-reading it from the store costs what the catalogue holds (at 10,000 shows, thousands
//! of DynamoDB read units a minute per task). What to serve, when to ask the store, and
//! what a change costs to follow are catalogue decisions, not HTTP ones: this module
//! imports [`crate::store`] and [`crate::domain`] only (and the `http` crate's
//! `HeaderValue`, so the ETag header is made once per fill); the HTTP layer serves it.
//!
//! # When the store is asked
//! - A snapshot is served for the TTL after its last check. Under traffic, the first
//!   request past [`REFRESH_AT`] of the TTL starts a check in the background: one small
//!   read of the store's change record ([`crate::store::ShowStore::change_record`], bumped
//!   by every writer); the index is read again only when the record says so. No traffic,
//!   no reads. The record is read *before* the index and kept with the snapshot, so a
//!   write that lands while a refill runs is seen by the next check.
//! - A change is applied, not re-read, when the store's change log can say what it was
//!   ([`crate::store::ShowStore::changes_since`]): the shows the writes since the held
//!   version named are re-read and spliced into the snapshot's bytes, so a task follows a
//!   one-show write at 100,000 shows in milliseconds, for one read unit a show. The index
//!   is read again only when the log cannot tell, or when the changes are more shows than
//!   the last full read cost in units (then the index is the cheaper read).
//! - Safety net: at least every `safety_net` the index is read again anyway, for writers
//!   that do not bump the record (the Go service during a migration, a console edit).
//! - A missing or unreadable record means "changed" at every check (the behaviour before
//!   the record existed), with one WARN line when that starts.
//!
//! # Settling: how "its writes may still be landing" is known
//! DynamoDB's index is eventually consistent, and a write of many shows takes a while: a
//! read right after a change can miss part of it, and the record would then say
//! "unchanged" for good. The record says until when that can happen: its
//! `unsettled_until` ([`crate::store::ChangeRecord::Version`]) is set by the writer at
//! each bump to the end of the write's deadline (before the write) or to the index's lag
//! margin after it (after the write); `None` on SQLite, where write and bump are one
//! transaction. A snapshot read at wall-clock time `f` from a record whose
//! `unsettled_until + CLOCK_MARGIN` is after `f` is not final: once that time has passed,
//! the next check re-reads once more ("settles"), even when the version did not change,
//! from the change log (the shows the versions since the last settled one named) when it
//! can tell, else the index. So a cold fill from a settled record is the only full read a
//! task start makes, and a process killed mid-feed (its record bumped, its slugs logged,
//! before the first batch) is caught by every task once the write's deadline has passed.
//! The time is another task's wall clock: [`CLOCK_MARGIN`] allows for the difference.
//!
//! # Stale while revalidating; only a cold start waits
//! Checks and refills run in the background, one at a time: while one reads the whole
//! index (seconds at 100,000 shows), requests are answered at once from the last
//! snapshot. That is bounded: a snapshot is served at most `max_stale` past its TTL since
//! the store last confirmed it (the service passes its request timeout: a request that
//! waited for the refill instead would have got no fresher answer before it timed out);
//! past that, requests wait for the refill, as a cold start does. A check that finds the
//! record unchanged confirms the snapshot at once, even when it goes on to read the index
//! (safety net, settle), so those refills never age it. A failed check is retried at most
//! once a second; meanwhile the last snapshot is served for `stale_if_error` past its TTL
//! (or `max_stale`, the longer), then the error is the caller's (503 + Retry-After).
//!
//! # Read-your-writes
//! A write through this task invalidates the snapshot when it ends (a generation counter
//! bumped after each write, so a fill that raced a write is never served). The writer's
//! next read on this task, and every other read on it after the write returned, then
//! waits for the snapshot to be brought up to date — the change log's delta of that write
//! (milliseconds), under a lock of its own, so it does not queue behind a background
//! refill. Serving the old snapshot instead would break what clients see today (a feed
//! is listed by the next GET on the same task); making the write apply its change itself
//! would put the catalogue inside the write path. Only a write the log cannot describe
//! (more shows than the budget) makes those reads wait for an index read.
//! While a write runs, the snapshot from before it is still a right answer: the write
//! has not returned.

pub mod changes;
mod freshness;
pub mod snapshot;

pub use freshness::{CLOCK_MARGIN, ListCache, Policy, REFRESH_AT, Reason};
pub use snapshot::{Snapshot, etag_of, gzip_of};
