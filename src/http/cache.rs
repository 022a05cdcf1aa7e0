//! The catalogue snapshot (`GET /v1/shows`, whole or paged), kept in memory: the JSON
//! bytes in page order, a gzip variant made once per fill, a content ETag, and each item's
//! position and byte range so pages are cut from the same bytes.
//!
//! Why: the catalogue is read far more often than it changes, and re-reading it from the
//! store costs what the catalogue holds (at 10,000 shows, thousands of DynamoDB read units
//! a minute per task). So the snapshot is kept until the store's change record
//! ([`crate::store::ShowStore::change_record`], bumped by every writer) says otherwise:
//!
//! - A snapshot is served for the TTL after its last check. After that, while requests
//!   come, one request reads the change record (one small read) and the index is read
//!   again only when the record changed; no traffic, no reads. The record is read
//!   *before* the index and kept with the snapshot, so a write that lands while a refill
//!   runs is seen by the next check.
//! - Under steady traffic the check is made ahead of expiry: the first request past
//!   [`REFRESH_AT`] of the TTL checks (and refills) while the others keep being served.
//!   So checks run at most every 3/4 TTL per task.
//! - DynamoDB's index is eventually consistent: a refill right after a change can still
//!   read the old index, and the record would then say "unchanged" for good. A snapshot
//!   filled because something changed (a new record, a local write, a cold start) is
//!   therefore refilled once more at the next check ("settle").
//! - A change is applied, not re-read, when the store's change log can say what it was
//!   ([`crate::store::ShowStore::changes_since`]): the shows the writes since the held
//!   version named are re-read and spliced into the snapshot's bytes (unchanged items
//!   are copied, not serialized again), so a task follows a one-show write at 100,000
//!   shows in milliseconds, for one read unit a show. The index is read again only when
//!   the log cannot tell, or when the changes are more shows than [`delta_budget`]
//!   allows (then the index is the cheaper read). A snapshot that has to settle after
//!   such a read settles from the log too when it can: the shows changed since the
//!   version held before are the ones a lagging index may have missed.
//! - Writes through this task invalidate the snapshot when they end (a generation counter
//!   bumped after each write, so a fill that raced a write is never kept). While a write
//!   runs, the snapshot from before it is still a right answer: the write has not
//!   returned; re-reading then would race the write and not see it.
//! - Safety net: at least every `safety_net` the index is read again anyway, for writers
//!   that do not bump the record (the Go service during a migration, a console edit).
//! - A missing or unreadable record means "changed" at every check (the behaviour before
//!   the record existed), with one WARN line when that starts.
//! - Stale-if-error: when the check or refill fails, the last snapshot is served up to
//!   `stale_if_error` past its TTL (checks retried at most once a second meanwhile); after
//!   that the error is the caller's (503 + Retry-After).
//!
//! The JSON is sorted by `(episodeCount, slug)` here, whatever order the store returned,
//! so two tasks holding the same catalogue hold the same bytes and send the same ETag
//! (a hash of the bytes only), and a cursor (a position, not an offset) continues any
//! task's walk on any other task and across refills.

use crate::store::cursor::Position;
use crate::store::{ChangeRecord, Changes, ListItem, ShowStore, StoreError};
use bytes::Bytes;
use std::io::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bodies smaller than this are not worth compressing.
const GZIP_MIN_BYTES: usize = 1024;

/// The fraction of the TTL after which a request checks ahead of the expiry.
pub const REFRESH_AT: (u32, u32) = (3, 4);

/// The fewest changed shows a snapshot re-reads one by one rather than reading the index.
const DELTA_MIN_SHOWS: usize = 64;

/// After a failed check, requests within the stale window are served without another
/// check for this long.
const RETRY_CHECK_AFTER: Duration = Duration::from_secs(1);

/// How the cache follows the store (from [`crate::config::CacheSettings`]).
#[derive(Debug, Clone)]
pub struct Policy {
    pub ttl: Duration,
    pub safety_net: Option<Duration>,
    pub stale_if_error: Duration,
}

/// Where one item sits in the snapshot.
#[derive(Debug)]
struct Slot {
    episode_count: u32,
    slug: Box<str>,
    /// Its JSON object's byte range in [`Snapshot::json`].
    start: usize,
    end: usize,
}

/// One filled catalogue.
#[derive(Debug)]
pub struct Snapshot {
    /// `{"response":[…]}`, items in `(episodeCount, slug)` order.
    pub json: Bytes,
    /// The gzip variant, when the body is large enough to gain from it.
    pub gzip: Option<Bytes>,
    /// A strong ETag of the JSON bytes, quoted.
    pub etag: String,
    /// `etag` as a header value, made once per fill.
    pub etag_header: axum::http::HeaderValue,
    slots: Vec<Slot>,
    /// The change record read before the index; `None` when it was missing or invalid.
    version: Option<u64>,
    /// When the fill started (for the safety net).
    filled_at: Instant,
    /// Refill once more at the next check (see the module doc).
    settle: bool,
    generation: u64,
    /// Read units of the last full read of the index (0 on stores that report none).
    full_read_units: f64,
    /// When it has to settle: the version held before the change it was filled for. The
    /// shows changed since are the ones a lagging index may have missed, and re-reading
    /// them from the change log settles it as well as reading the index again.
    settle_from: Option<u64>,
}

/// Why a snapshot was (re)filled: the `reason` label of `catalogue_refills_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Cold,
    Changed,
    SafetyNet,
    LocalWrite,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Cold => "cold",
            Reason::Changed => "changed",
            Reason::SafetyNet => "safety_net",
            Reason::LocalWrite => "local_write",
        }
    }
}

/// The catalogue's JSON for `items` in page order, and where each item is in it.
fn serialize(mut items: Vec<ListItem>) -> Result<(Vec<u8>, Vec<Slot>), serde_json::Error> {
    items.sort_unstable_by(|a, b| (a.episode_count, &a.slug).cmp(&(b.episode_count, &b.slug)));
    items.dedup_by(|a, b| a.slug == b.slug && a.episode_count == b.episode_count);
    let mut json = Vec::with_capacity(16 + items.len() * 128);
    let mut slots = Vec::with_capacity(items.len());
    json.extend_from_slice(b"{\"response\":[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        let start = json.len();
        serde_json::to_writer(&mut json, &item)?;
        slots.push(Slot {
            episode_count: item.episode_count,
            slug: item.slug.into_boxed_str(),
            start,
            end: json.len(),
        });
    }
    json.extend_from_slice(b"]}");
    Ok((json, slots))
}

/// How many changed shows a snapshot re-reads one by one before the index is the cheaper
/// read: a strongly consistent read of a show costs one unit, so as many as the last full
/// read of the index cost; on a store that reports no units, a tenth of the catalogue.
fn delta_budget(p: &Snapshot) -> usize {
    let by_units = if p.full_read_units > 0.0 {
        p.full_read_units.ceil() as usize
    } else {
        p.len() / 10
    };
    DELTA_MIN_SHOWS.max(by_units)
}

impl Snapshot {
    /// The snapshot of `items`: `previous`'s gzip variant and ETag when the JSON is the
    /// same bytes, else compressed and hashed anew.
    fn build(
        items: Vec<ListItem>,
        version: Option<u64>,
        filled_at: Instant,
        settle: bool,
        generation: u64,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, serde_json::Error> {
        let (json, slots) = serialize(items)?;
        Ok(Snapshot::assemble(
            json, slots, version, filled_at, settle, generation, previous,
        ))
    }

    /// This snapshot with the shows named in `slugs` replaced by `items` (those of them in
    /// the catalogue now): the same bytes a full build of the result would make, so the
    /// same ETag. The safety net's clock and the full read's units carry over.
    fn apply(
        &self,
        slugs: &[String],
        mut items: Vec<ListItem>,
        version: u64,
        generation: u64,
    ) -> Result<Snapshot, serde_json::Error> {
        let changed: std::collections::HashSet<&str> = slugs.iter().map(String::as_str).collect();
        items.retain(|i| changed.contains(i.slug.as_str()));
        let (fresh, fresh_slots) = serialize(items)?;
        let mut json = Vec::with_capacity(self.json.len() + fresh.len());
        let mut slots = Vec::with_capacity(self.slots.len() + fresh_slots.len());
        json.extend_from_slice(b"{\"response\":[");
        let mut push = |json: &mut Vec<u8>, ec: u32, slug: &str, bytes: &[u8]| {
            if !slots.is_empty() {
                json.push(b',');
            }
            let start = json.len();
            json.extend_from_slice(bytes);
            slots.push(Slot {
                episode_count: ec,
                slug: slug.into(),
                start,
                end: json.len(),
            });
        };
        let mut added = fresh_slots.iter().peekable();
        for old in self.slots.iter().filter(|s| !changed.contains(&*s.slug)) {
            while let Some(n) =
                added.next_if(|n| (n.episode_count, &*n.slug) < (old.episode_count, &*old.slug))
            {
                push(&mut json, n.episode_count, &n.slug, &fresh[n.start..n.end]);
            }
            push(
                &mut json,
                old.episode_count,
                &old.slug,
                &self.json[old.start..old.end],
            );
        }
        for n in added {
            push(&mut json, n.episode_count, &n.slug, &fresh[n.start..n.end]);
        }
        json.extend_from_slice(b"]}");
        let mut next = Snapshot::assemble(
            json,
            slots,
            Some(version),
            self.filled_at,
            false,
            generation,
            Some(self),
        );
        next.full_read_units = self.full_read_units;
        Ok(next)
    }

    fn assemble(
        json: Vec<u8>,
        slots: Vec<Slot>,
        version: Option<u64>,
        filled_at: Instant,
        settle: bool,
        generation: u64,
        previous: Option<&Snapshot>,
    ) -> Snapshot {
        let json = Bytes::from(json);
        let (gzip, etag, etag_header) = match previous {
            Some(p) if p.json == json => (p.gzip.clone(), p.etag.clone(), p.etag_header.clone()),
            _ => {
                let etag = etag_of(&json);
                let header = axum::http::HeaderValue::from_str(&etag)
                    .unwrap_or(axum::http::HeaderValue::from_static("\"0\""));
                (gzip_of(&json), etag, header)
            }
        };
        Snapshot {
            json,
            gzip,
            etag,
            etag_header,
            slots,
            version,
            filled_at,
            settle,
            generation,
            full_read_units: 0.0,
            settle_from: None,
        }
    }

    /// How many items the catalogue holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// One page: at most `limit` items after `after` (from the start when `None`), as
    /// the `GET /v1/shows` JSON with `next` when more remain.
    pub fn page(&self, after: Option<&Position>, limit: usize) -> Bytes {
        let start = after.map_or(0, |p| {
            self.slots.partition_point(|s| {
                (s.episode_count, &*s.slug) <= (p.episode_count, p.slug.as_str())
            })
        });
        let end = start.saturating_add(limit.max(1)).min(self.slots.len());
        let mut out = Vec::with_capacity(
            64 + self.slots.get(start..end).map_or(0, |s| {
                s.last().map_or(0, |l| l.end) - s.first().map_or(0, |f| f.start)
            }),
        );
        out.extend_from_slice(b"{\"response\":[");
        if let (Some(first), Some(last)) =
            (self.slots.get(start), self.slots.get(end.wrapping_sub(1)))
            && start < end
        {
            out.extend_from_slice(&self.json[first.start..last.end]);
        }
        out.push(b']');
        if end < self.slots.len()
            && let Some(last) = self.slots.get(end - 1)
            && let Ok(slug) = crate::domain::Slug::parse(&*last.slug)
        {
            let next = Position {
                episode_count: last.episode_count,
                slug,
            }
            .encode();
            out.extend_from_slice(b",\"next\":\"");
            out.extend_from_slice(next.as_bytes());
            out.push(b'"');
        }
        out.push(b'}');
        Bytes::from(out)
    }
}

/// The gzip variant of `json`, when it is large enough to gain from one.
pub fn gzip_of(json: &[u8]) -> Option<Bytes> {
    if json.len() < GZIP_MIN_BYTES {
        return None;
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(json).ok()?;
    enc.finish().ok().map(Bytes::from)
}

/// A strong ETag: FNV-1a 64 of the bytes and their length. Content only, so every task
/// holding the same catalogue sends the same one.
pub fn etag_of(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}-{:x}\"", bytes.len())
}

/// The snapshot in use and when the store last confirmed it.
struct Current {
    snapshot: Arc<Snapshot>,
    checked_at: Instant,
}

pub struct ListCache {
    current: RwLock<Option<Current>>,
    generation: AtomicU64,
    policy: Policy,
    /// Serializes checks and fills so a burst of requests makes one store call.
    fill: tokio::sync::Mutex<()>,
    /// When the last check failed (stale-if-error retries at most once a second).
    failed_at: Mutex<Option<Instant>>,
    /// The record is missing or invalid and that was logged.
    warned: AtomicBool,
    /// `catalogue_cache_hits_total`, registered once: it counts nearly every GET.
    hits: metrics::Counter,
}

impl ListCache {
    pub fn new(policy: Policy) -> ListCache {
        ListCache {
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
            policy,
            fill: tokio::sync::Mutex::new(()),
            failed_at: Mutex::new(None),
            warned: AtomicBool::new(false),
            hits: metrics::counter!("catalogue_cache_hits_total"),
        }
    }

    /// A cache that only holds a snapshot for `ttl` (no safety net, no stale window).
    pub fn with_ttl(ttl: Duration) -> ListCache {
        ListCache::new(Policy {
            ttl,
            safety_net: None,
            stale_if_error: Duration::ZERO,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.policy.ttl
    }

    /// The snapshot and the time since its last check, when no local write happened
    /// since it was filled.
    fn valid(&self) -> Option<(Arc<Snapshot>, Duration)> {
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        let c = guard.as_ref()?;
        (c.snapshot.generation == self.generation.load(Ordering::Acquire))
            .then(|| (c.snapshot.clone(), c.checked_at.elapsed()))
    }

    /// The snapshot, when it is within its TTL and no local write happened since.
    pub fn get(&self) -> Option<Arc<Snapshot>> {
        self.valid()
            .filter(|(_, age)| *age < self.policy.ttl)
            .map(|(s, _)| s)
    }

    /// Marks every snapshot filled before now as stale. Call when a write through this
    /// task ends (whatever its outcome).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The current catalogue: the snapshot when it is fresh, else checked against the
    /// store's change record and refilled when that changed (see the module doc).
    pub async fn current(&self, store: &dyn ShowStore) -> Result<Arc<Snapshot>, StoreError> {
        let ttl = self.policy.ttl;
        if let Some((hit, age)) = self.valid() {
            if age < ttl * REFRESH_AT.0 / REFRESH_AT.1 {
                self.hits.increment(1);
                return Ok(hit);
            }
            if age < ttl {
                self.hits.increment(1);
                let Ok(_checking) = self.fill.try_lock() else {
                    return Ok(hit); // being checked; still fresh
                };
                match self.valid() {
                    Some((now, age)) if age < ttl * REFRESH_AT.0 / REFRESH_AT.1 => {
                        return Ok(now); // checked just now by another request
                    }
                    _ => {}
                }
                // Fresh: if the check fails, keep serving it until it expires.
                return Ok(self.check_locked(store).await.unwrap_or(hit));
            }
        }
        if let Some(stale) = self.stale_while_failing() {
            // The store failed less than a second ago: no new check per request.
            return Ok(stale);
        }
        let _checking = self.fill.lock().await;
        if let Some(hit) = self.get() {
            self.hits.increment(1);
            return Ok(hit);
        }
        match self.check_locked(store).await {
            Ok(s) => Ok(s),
            Err(e) => match self.within_stale_window() {
                Some(stale) => {
                    tracing::warn!(
                        error = %e,
                        stale_if_error_seconds = self.policy.stale_if_error.as_secs(),
                        "the store could not be checked; serving the last catalogue"
                    );
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    /// The last snapshot, when it was last confirmed within TTL + the stale window.
    fn within_stale_window(&self) -> Option<Arc<Snapshot>> {
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        let c = guard.as_ref()?;
        (c.checked_at.elapsed() < self.policy.ttl + self.policy.stale_if_error)
            .then(|| c.snapshot.clone())
    }

    /// The stale snapshot while a check failed less than [`RETRY_CHECK_AFTER`] ago.
    fn stale_while_failing(&self) -> Option<Arc<Snapshot>> {
        let failed = *self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        failed
            .filter(|t| t.elapsed() < RETRY_CHECK_AFTER)
            .and_then(|_| self.within_stale_window())
    }

    /// Reads the change record and refills when needed; the caller holds the fill lock.
    async fn check_locked(&self, store: &dyn ShowStore) -> Result<Arc<Snapshot>, StoreError> {
        let res = self.check_and_fill(store).await;
        *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = res.is_err().then(Instant::now);
        res
    }

    async fn check_and_fill(&self, store: &dyn ShowStore) -> Result<Arc<Snapshot>, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let checked_at = Instant::now();
        let previous = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.snapshot.clone());
        let same_generation = previous.as_ref().filter(|p| p.generation == generation);
        // TTL 0 keeps nothing: the record would be read for nothing.
        let version = if self.policy.ttl.is_zero() {
            None
        } else {
            match store.change_record().await {
                Ok(record) => self.note(record, same_generation.map(|p| p.version)),
                Err(e) => {
                    metrics::counter!("catalogue_change_checks_total", "outcome" => "error")
                        .increment(1);
                    return Err(e);
                }
            }
        };
        let reason = match same_generation {
            None if previous.is_some() => Reason::LocalWrite,
            None => Reason::Cold,
            Some(p) if version.is_none() || version != p.version || p.settle => Reason::Changed,
            Some(p)
                if self
                    .policy
                    .safety_net
                    .is_some_and(|net| p.filled_at.elapsed() >= net) =>
            {
                Reason::SafetyNet
            }
            Some(p) => {
                // Unchanged: the snapshot is confirmed for another TTL.
                let snapshot = p.clone();
                let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = guard.as_mut()
                    && Arc::ptr_eq(&c.snapshot, &snapshot)
                {
                    c.checked_at = checked_at;
                }
                return Ok(snapshot);
            }
        };
        // Applied from the log: the changes since the held version, or, to settle, those
        // since the version held before the change the snapshot was filled for.
        let since = |p: &Snapshot| if p.settle { p.settle_from } else { p.version };
        if let Some(p) = previous.as_ref()
            && let (Some(held), Some(now)) = (since(p), version)
            && now > held
            && matches!(reason, Reason::Changed | Reason::LocalWrite)
            && let Some(applied) = self
                .apply_changes(store, p, reason, held, now, generation, checked_at)
                .await?
        {
            return Ok(applied);
        }
        // One more refill after this one when it follows a change (the index may lag);
        // a settling refill (same version) or a safety-net one settles.
        let settle = match reason {
            Reason::SafetyNet => false,
            Reason::Changed => same_generation.is_none_or(|p| p.version != version || !p.settle),
            Reason::Cold | Reason::LocalWrite => true,
        } && version.is_some();
        // What may lag after this read: the changes after the held version, when that one
        // had settled or this read is a TTL (a check) after its fill, which settles it too.
        let settle_from = previous.as_deref().filter(|_| settle).and_then(|p| {
            if !p.settle || p.filled_at.elapsed() >= self.policy.ttl {
                p.version
            } else {
                p.settle_from
            }
        });
        self.fill(
            store,
            reason,
            (version, settle_from),
            settle,
            generation,
            checked_at,
            previous,
        )
        .await
    }

    /// Counts and logs what the record says; the version to keep with the next snapshot.
    fn note(&self, record: ChangeRecord, held: Option<Option<u64>>) -> Option<u64> {
        let outcome = match record {
            ChangeRecord::Version { version: v, .. } if held == Some(Some(v)) => "unchanged",
            ChangeRecord::Version { .. } => "changed",
            ChangeRecord::Missing => "missing",
            ChangeRecord::Invalid => "invalid",
        };
        metrics::counter!("catalogue_change_checks_total", "outcome" => outcome).increment(1);
        tracing::debug!(outcome, "catalogue change record checked");
        match record {
            ChangeRecord::Version { version: v, .. } => {
                self.warned.store(false, Ordering::Relaxed);
                Some(v)
            }
            ChangeRecord::Missing | ChangeRecord::Invalid => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        record = outcome,
                        "the catalogue's change record is {outcome}: re-reading the whole \
                         catalogue at every check until a write through this service \
                         creates it"
                    );
                }
                None
            }
        }
    }

    /// Applies the changes of versions `held + 1 ..= now` to `p` when the store's change
    /// log can say what they were; `None` when the index must be read instead.
    #[allow(clippy::too_many_arguments)]
    async fn apply_changes(
        &self,
        store: &dyn ShowStore,
        p: &Snapshot,
        reason: Reason,
        held: u64,
        now: u64,
        generation: u64,
        checked_at: Instant,
    ) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let started = Instant::now();
        let budget = delta_budget(p);
        let Changes::Shows { slugs, items } = store.changes_since(held, now, budget).await? else {
            tracing::debug!(
                held,
                now,
                budget,
                "the change log cannot tell: reading the index"
            );
            return Ok(None);
        };
        let listed = items.len();
        let snapshot = Arc::new(
            p.apply(&slugs, items, now, generation)
                .map_err(|e| StoreError::Internal(e.into()))?,
        );
        let took = started.elapsed();
        count_refill(reason, "delta", took, &snapshot);
        tracing::info!(
            reason = reason.label(),
            kind = "delta",
            versions = now - held,
            changed = slugs.len(),
            listed,
            items = snapshot.len(),
            bytes = snapshot.json.len(),
            duration_ms = took.as_secs_f64() * 1000.0,
            "catalogue refilled"
        );
        self.keep(&snapshot, checked_at);
        Ok(Some(snapshot))
    }

    /// Makes `snapshot` the one served, confirmed at `checked_at`.
    fn keep(&self, snapshot: &Arc<Snapshot>, checked_at: Instant) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Current {
            snapshot: snapshot.clone(),
            checked_at,
        });
    }

    #[allow(clippy::too_many_arguments)]
    async fn fill(
        &self,
        store: &dyn ShowStore,
        reason: Reason,
        (version, settle_from): (Option<u64>, Option<u64>),
        settle: bool,
        generation: u64,
        checked_at: Instant,
        previous: Option<Arc<Snapshot>>,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let started = Instant::now();
        let page = store.list_eligible(Default::default()).await?;
        let (calls, read_units) = (page.calls, page.read_units);
        let mut built = Snapshot::build(
            page.items,
            version,
            checked_at,
            settle,
            generation,
            previous.as_deref(),
        )
        .map_err(|e| StoreError::Internal(e.into()))?;
        built.full_read_units = read_units;
        built.settle_from = settle_from;
        let snapshot = Arc::new(built);
        let took = started.elapsed();
        count_refill(reason, "full", took, &snapshot);
        tracing::info!(
            reason = reason.label(),
            kind = "full",
            items = snapshot.len(),
            bytes = snapshot.json.len(),
            store_calls = calls,
            read_units,
            duration_ms = took.as_secs_f64() * 1000.0,
            "catalogue refilled"
        );
        if !self.policy.ttl.is_zero() {
            self.keep(&snapshot, checked_at);
        }
        Ok(snapshot)
    }
}

/// Counts a refill (`kind`: `full` or `delta`) and the catalogue it made.
fn count_refill(reason: Reason, kind: &'static str, took: Duration, snapshot: &Snapshot) {
    metrics::counter!("catalogue_refills_total", "reason" => reason.label(), "kind" => kind)
        .increment(1);
    metrics::histogram!("catalogue_refill_duration_seconds").record(took.as_secs_f64());
    metrics::gauge!("catalogue_items").set(snapshot.len() as f64);
    metrics::gauge!("catalogue_bytes").set(snapshot.json.len() as f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Show, Slug};
    use crate::store::{Page, PageRequest};
    use async_trait::async_trait;
    use std::sync::atomic::AtomicUsize;

    /// A store whose catalogue, change record and failures the test sets.
    #[derive(Default)]
    struct Fake {
        items: Mutex<Vec<ListItem>>,
        record: Mutex<Option<ChangeRecord>>,
        down: AtomicBool,
        /// The next index read is followed by a write (one that lands during a refill).
        write_during_list: Mutex<Option<Vec<ListItem>>>,
        checks: AtomicUsize,
        lists: AtomicUsize,
        /// The change log by version, when this store keeps one.
        log: Mutex<Option<std::collections::HashMap<u64, Vec<String>>>>,
        deltas: AtomicUsize,
    }

    fn item(count: u32, slug: &str) -> ListItem {
        ListItem {
            image: String::new(),
            slug: slug.into(),
            title: format!("T {slug}"),
            episode_count: count,
        }
    }

    impl Fake {
        fn with(items: Vec<ListItem>, record: Option<ChangeRecord>) -> Fake {
            let f = Fake::default();
            *f.items.lock().unwrap() = items;
            *f.record.lock().unwrap() = record;
            f
        }
        fn write(&self, items: Vec<ListItem>, bump: bool) {
            *self.items.lock().unwrap() = items;
            if bump {
                let mut r = self.record.lock().unwrap();
                *r = Some(match *r {
                    Some(ChangeRecord::Version { version: v, .. }) => ChangeRecord::Version {
                        version: v + 1,
                        unsettled_until: None,
                    },
                    _ => ChangeRecord::Version {
                        version: 1,
                        unsettled_until: None,
                    },
                });
            }
        }
        /// A write that bumps the record and logs `slugs` under the new version.
        fn write_logged(&self, items: Vec<ListItem>, slugs: &[&str]) {
            self.write(items, true);
            let Some(ChangeRecord::Version { version: v, .. }) = *self.record.lock().unwrap()
            else {
                unreachable!("write bumps")
            };
            self.log
                .lock()
                .unwrap()
                .get_or_insert_default()
                .insert(v, slugs.iter().map(|s| s.to_string()).collect());
        }
        fn counts(&self) -> (usize, usize) {
            (
                self.checks.load(Ordering::SeqCst),
                self.lists.load(Ordering::SeqCst),
            )
        }
    }

    #[async_trait]
    impl ShowStore for Fake {
        fn kind(&self) -> &'static str {
            "fake"
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn upsert(&self, _: Vec<Show>) -> Result<usize, StoreError> {
            unimplemented!()
        }
        async fn list_eligible(&self, _: PageRequest) -> Result<Page, StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::unavailable("down"));
            }
            self.lists.fetch_add(1, Ordering::SeqCst);
            let items = self.items.lock().unwrap().clone();
            if let Some(next) = self.write_during_list.lock().unwrap().take() {
                self.write(next, true);
            }
            Ok(Page {
                items,
                ..Page::default()
            })
        }
        async fn get(&self, _: &Slug) -> Result<Option<Show>, StoreError> {
            Ok(None)
        }
        async fn delete(&self, _: &Slug) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn change_record(&self) -> Result<ChangeRecord, StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::unavailable("down"));
            }
            self.checks.fetch_add(1, Ordering::SeqCst);
            Ok(self.record.lock().unwrap().unwrap_or(ChangeRecord::Missing))
        }
        async fn changes_since(
            &self,
            since: u64,
            upto: u64,
            max: usize,
        ) -> Result<Changes, StoreError> {
            let log = self.log.lock().unwrap();
            let Some(log) = log.as_ref() else {
                return Ok(Changes::Unknown);
            };
            let mut slugs = Vec::new();
            for v in since + 1..=upto {
                let Some(named) = log.get(&v) else {
                    return Ok(Changes::Unknown);
                };
                slugs.extend(named.iter().cloned());
            }
            slugs.sort();
            slugs.dedup();
            if slugs.len() > max {
                return Ok(Changes::Unknown);
            }
            self.deltas.fetch_add(1, Ordering::SeqCst);
            let items = self.items.lock().unwrap().clone();
            let items = items
                .into_iter()
                .filter(|i| slugs.contains(&i.slug))
                .collect();
            Ok(Changes::Shows { slugs, items })
        }
    }

    /// A cache whose TTL has passed for its snapshot: the last check is moved back.
    fn expire(cache: &ListCache) {
        let mut g = cache.current.write().unwrap();
        if let Some(c) = g.as_mut() {
            c.checked_at -= cache.policy.ttl;
        }
    }

    fn policy() -> Policy {
        Policy {
            ttl: Duration::from_secs(60),
            safety_net: None,
            stale_if_error: Duration::from_secs(120),
        }
    }

    #[tokio::test]
    async fn an_unchanged_record_costs_one_check_and_no_index_read() {
        let store = Fake::with(
            vec![item(1, "show/a")],
            Some(ChangeRecord::Version {
                version: 7,
                unsettled_until: None,
            }),
        );
        let cache = ListCache::new(policy());
        let first = cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (1, 1));
        // Within the TTL: nothing read at all.
        cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (1, 1));
        // The cold fill settles once (the index may lag a change), then checks only.
        expire(&cache);
        cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (2, 2));
        for n in 3..6 {
            expire(&cache);
            let again = cache.current(&store).await.unwrap();
            assert_eq!(store.counts(), (n, 2), "check {n}: no index read");
            assert_eq!(again.etag, first.etag);
        }
    }

    #[tokio::test]
    async fn a_change_is_read_at_the_next_check_and_read_again_once_to_settle() {
        let store = Fake::with(
            vec![item(1, "show/a")],
            Some(ChangeRecord::Version {
                version: 1,
                unsettled_until: None,
            }),
        );
        let cache = ListCache::new(policy());
        cache.current(&store).await.unwrap();
        expire(&cache);
        cache.current(&store).await.unwrap(); // settles the cold fill
        assert_eq!(store.counts(), (2, 2));

        // Another task bumps the record, but this task's index read still sees the old
        // catalogue (a lagging GSI): the refill right after the change is stale...
        store.record.lock().unwrap().replace(ChangeRecord::Version {
            version: 2,
            unsettled_until: None,
        });
        expire(&cache);
        let stale = cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (3, 3));
        assert_eq!(stale.len(), 1);
        // ...and the index catches up without another bump: the settling refill at the
        // next check picks it up, then the snapshot stays.
        store.write(vec![item(1, "show/a"), item(2, "show/b")], false);
        expire(&cache);
        let settled = cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (4, 4));
        assert_eq!(settled.len(), 2);
        expire(&cache);
        cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (5, 4), "settled: no more index reads");
    }

    #[tokio::test]
    async fn a_write_during_a_refill_is_seen_by_the_next_check() {
        // The record is read before the index: a write (and its bump) that lands after
        // the index was read is a new version at the next check.
        let store = Fake::with(
            vec![item(1, "show/a")],
            Some(ChangeRecord::Version {
                version: 1,
                unsettled_until: None,
            }),
        );
        let cache = ListCache::new(policy());
        cache.current(&store).await.unwrap();
        // The settling refill (the last one a version would allow) is the one raced.
        *store.write_during_list.lock().unwrap() = Some(vec![item(1, "show/a"), item(1, "show/b")]);
        expire(&cache);
        let raced = cache.current(&store).await.unwrap();
        assert_eq!(raced.len(), 1, "read before the write");
        expire(&cache);
        let next = cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (3, 3));
        assert_eq!(next.len(), 2);
    }

    #[tokio::test]
    async fn a_missing_or_invalid_record_means_a_full_read_at_every_check() {
        for record in [None, Some(ChangeRecord::Invalid)] {
            let store = Fake::with(vec![item(1, "show/a")], record);
            let cache = ListCache::new(policy());
            for n in 1..4 {
                let s = cache.current(&store).await.unwrap();
                assert_eq!(s.len(), 1);
                assert_eq!(store.counts(), (n, n), "{record:?}");
                expire(&cache);
            }
            assert!(cache.warned.load(Ordering::SeqCst));
        }
    }

    #[tokio::test]
    async fn the_safety_net_reads_the_index_when_nothing_says_it_changed() {
        let store = Fake::with(
            vec![item(1, "show/a")],
            Some(ChangeRecord::Version {
                version: 1,
                unsettled_until: None,
            }),
        );
        let cache = ListCache::new(Policy {
            safety_net: Some(Duration::from_millis(1)),
            ..policy()
        });
        cache.current(&store).await.unwrap();
        expire(&cache);
        cache.current(&store).await.unwrap(); // settle
        store.write(vec![item(5, "show/z")], false); // a writer that does not bump
        tokio::time::sleep(Duration::from_millis(5)).await;
        expire(&cache);
        let s = cache.current(&store).await.unwrap();
        assert_eq!(s.len(), 1);
        assert!(s.json.windows(6).any(|w| w == b"show/z"));
    }

    #[tokio::test]
    async fn a_failing_store_is_answered_from_the_last_snapshot_for_the_stale_window_only() {
        let store = Fake::with(
            vec![item(1, "show/a")],
            Some(ChangeRecord::Version {
                version: 1,
                unsettled_until: None,
            }),
        );
        let cache = ListCache::new(Policy {
            stale_if_error: Duration::from_secs(30),
            ..policy()
        });
        let first = cache.current(&store).await.unwrap();
        store.down.store(true, Ordering::SeqCst);
        expire(&cache);
        let served = cache.current(&store).await.unwrap();
        assert!(Arc::ptr_eq(&first, &served));
        // Past TTL + the stale window: the store's error.
        {
            let mut g = cache.current.write().unwrap();
            g.as_mut().unwrap().checked_at -= Duration::from_secs(31);
        }
        *cache.failed_at.lock().unwrap() = None;
        assert!(matches!(
            cache.current(&store).await,
            Err(StoreError::Unavailable { .. })
        ));
        // Back up: a normal check again.
        store.down.store(false, Ordering::SeqCst);
        assert!(cache.current(&store).await.is_ok());
    }

    #[tokio::test]
    async fn a_local_write_refills_at_once_and_a_fill_that_raced_one_is_not_kept() {
        let store = Fake::with(
            vec![item(1, "show/a")],
            Some(ChangeRecord::Version {
                version: 1,
                unsettled_until: None,
            }),
        );
        let cache = ListCache::new(policy());
        cache.current(&store).await.unwrap();
        cache.invalidate();
        assert!(cache.get().is_none());
        store.write(vec![item(1, "show/a"), item(1, "show/b")], true);
        assert_eq!(cache.current(&store).await.unwrap().len(), 2);
        assert!(cache.get().is_some());
    }

    #[tokio::test]
    async fn a_logged_change_is_applied_without_reading_the_index() {
        let start = vec![item(1, "show/a"), item(3, "show/c")];
        let store = Fake::with(
            start,
            Some(ChangeRecord::Version {
                version: 1,
                unsettled_until: None,
            }),
        );
        *store.log.lock().unwrap() = Some(Default::default());
        let cache = ListCache::new(policy());
        cache.current(&store).await.unwrap();
        expire(&cache);
        cache.current(&store).await.unwrap(); // settles the cold fill
        assert_eq!(store.counts(), (2, 2));

        // Another task adds show/b and moves show/a past show/c.
        store.write_logged(
            vec![item(2, "show/b"), item(3, "show/c"), item(4, "show/a")],
            &["show/a", "show/b"],
        );
        expire(&cache);
        let applied = cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (3, 2), "no index read");
        assert_eq!(store.deltas.load(Ordering::SeqCst), 1);
        let full = Snapshot::build(
            store.items.lock().unwrap().clone(),
            None,
            Instant::now(),
            false,
            0,
            None,
        )
        .unwrap();
        assert_eq!(applied.json, full.json);
        assert_eq!(applied.etag, full.etag);
        // A delta does not settle again: the next check only checks.
        expire(&cache);
        cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (4, 2));

        // A write through this task (and its delete of show/c): applied at the next request.
        cache.invalidate();
        store.write_logged(vec![item(2, "show/b"), item(4, "show/a")], &["show/c"]);
        cache.invalidate();
        assert_eq!(cache.current(&store).await.unwrap().len(), 2);
        assert_eq!(store.counts(), (5, 2));

        // A gap in the log (a writer that bumped but logged nothing): the index is read.
        store.write(vec![item(4, "show/a")], true);
        expire(&cache);
        assert_eq!(cache.current(&store).await.unwrap().len(), 1);
        assert_eq!(store.counts(), (6, 3));
    }

    #[tokio::test]
    async fn a_snapshot_read_from_the_index_after_a_change_settles_from_the_log() {
        let store = Fake::with(
            vec![item(1, "show/a")],
            Some(ChangeRecord::Version {
                version: 1,
                unsettled_until: None,
            }),
        );
        *store.log.lock().unwrap() = Some(Default::default());
        let cache = ListCache::new(policy());
        cache.current(&store).await.unwrap();
        expire(&cache);
        cache.current(&store).await.unwrap(); // settles the cold fill
        assert_eq!(store.counts(), (2, 2));
        // A write whose log entry is not there yet: the index is read (and may lag)...
        store.write(vec![item(1, "show/a"), item(2, "show/b")], true);
        expire(&cache);
        assert_eq!(cache.current(&store).await.unwrap().len(), 2);
        assert_eq!(store.counts(), (3, 3));
        // ...then the entry lands: the settle re-reads the shows it names, not the index.
        store
            .log
            .lock()
            .unwrap()
            .get_or_insert_default()
            .insert(2, vec!["show/b".into()]);
        expire(&cache);
        cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (4, 3), "settled from the log");
        assert_eq!(store.deltas.load(Ordering::SeqCst), 1);
        expire(&cache);
        cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (5, 3), "settled: checks only");
    }

    #[tokio::test]
    async fn a_read_of_the_index_a_ttl_after_the_cold_fill_settles_it() {
        // Writes through this task right after the cold fill, before any check settled it.
        let store = Fake::with(
            vec![item(1, "show/a")],
            Some(ChangeRecord::Version {
                version: 1,
                unsettled_until: None,
            }),
        );
        *store.log.lock().unwrap() = Some(Default::default());
        let cache = ListCache::new(Policy {
            ttl: Duration::from_millis(20),
            ..policy()
        });
        cache.current(&store).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        store.write_logged(vec![item(1, "show/a"), item(1, "show/b")], &["show/b"]);
        cache.invalidate();
        cache.current(&store).await.unwrap();
        assert_eq!(
            store.counts().1,
            2,
            "the cold fill had to settle: the index"
        );
        store.write_logged(
            vec![item(1, "show/a"), item(1, "show/b"), item(1, "show/c")],
            &["show/c"],
        );
        cache.invalidate();
        assert_eq!(cache.current(&store).await.unwrap().len(), 3);
        assert_eq!(
            store.counts().1,
            2,
            "then the log: that read settled the cold fill"
        );
        assert_eq!(store.deltas.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn more_changes_than_the_budget_read_the_index() {
        let items: Vec<ListItem> = (0..10).map(|i| item(1, &format!("show/s{i}"))).collect();
        let store = Fake::with(
            items.clone(),
            Some(ChangeRecord::Version {
                version: 1,
                unsettled_until: None,
            }),
        );
        *store.log.lock().unwrap() = Some(Default::default());
        let cache = ListCache::new(policy());
        cache.current(&store).await.unwrap();
        expire(&cache);
        cache.current(&store).await.unwrap();
        let many: Vec<String> = (0..=DELTA_MIN_SHOWS)
            .map(|i| format!("show/n{i}"))
            .collect();
        let named: Vec<&str> = many.iter().map(String::as_str).collect();
        store.write_logged(items, &named);
        expire(&cache);
        cache.current(&store).await.unwrap();
        assert_eq!(store.counts(), (3, 3), "over the budget: the index");
        assert_eq!(store.deltas.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn applied_changes_make_the_bytes_a_full_build_makes() {
        // Random catalogues and random changes (adds, removals, moves, new titles): the
        // spliced snapshot equals the one built from the result.
        fastrand::seed(12);
        for round in 0..200 {
            let n = fastrand::usize(0..40);
            let mut shows: std::collections::BTreeMap<String, ListItem> = (0..n)
                .map(|i| {
                    let slug = format!("show/s{i}");
                    (slug.clone(), item(fastrand::u32(1..6), &slug))
                })
                .collect();
            let now = Instant::now();
            let before = Snapshot::build(
                shows.values().cloned().collect(),
                Some(1),
                now,
                false,
                0,
                None,
            )
            .unwrap();
            let mut slugs = Vec::new();
            for _ in 0..fastrand::usize(0..8) {
                let slug = format!("show/s{}", fastrand::usize(0..50));
                match fastrand::u8(0..3) {
                    0 => {
                        shows.remove(&slug);
                    }
                    1 => {
                        shows.insert(slug.clone(), item(fastrand::u32(1..6), &slug));
                    }
                    _ => {
                        let mut it = item(fastrand::u32(1..6), &slug);
                        it.title = format!("New {round}");
                        shows.insert(slug.clone(), it);
                    }
                }
                slugs.push(slug);
            }
            let named: Vec<ListItem> = shows
                .values()
                .filter(|i| slugs.contains(&i.slug))
                .cloned()
                .collect();
            let applied = before.apply(&slugs, named, 2, 0).unwrap();
            let full = Snapshot::build(
                shows.values().cloned().collect(),
                Some(2),
                now,
                false,
                0,
                None,
            )
            .unwrap();
            assert_eq!(applied.json, full.json, "round {round}");
            assert_eq!(applied.etag, full.etag);
            assert_eq!(applied.len(), full.len());
            let page = |s: &Snapshot| s.page(None, 3);
            assert_eq!(page(&applied), page(&full), "pages cut from the same slots");
        }
    }

    #[test]
    fn snapshots_of_the_same_catalogue_agree_whatever_order_the_store_gave() {
        let a = vec![item(2, "show/b"), item(1, "show/z"), item(2, "show/a")];
        let mut b = a.clone();
        b.reverse();
        let now = Instant::now();
        let sa = Snapshot::build(a, None, now, false, 0, None).unwrap();
        let sb = Snapshot::build(b, None, now, false, 0, None).unwrap();
        assert_eq!(sa.json, sb.json);
        assert_eq!(sa.etag, sb.etag);
        let v: serde_json::Value = serde_json::from_slice(&sa.json).unwrap();
        let slugs: Vec<&str> = v["response"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["slug"].as_str().unwrap())
            .collect();
        assert_eq!(slugs, ["show/z", "show/a", "show/b"]);
    }

    #[test]
    fn pages_are_cut_from_the_snapshot_and_resume_by_position() {
        let items: Vec<ListItem> = (0..10)
            .map(|i| item(i / 3 + 1, &format!("show/s{i}")))
            .collect();
        let snap = Snapshot::build(items, None, Instant::now(), false, 0, None).unwrap();
        let mut seen = Vec::new();
        let mut after: Option<Position> = None;
        loop {
            let body = snap.page(after.as_ref(), 4);
            let v: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            let page = v["response"].as_array().unwrap();
            assert!(page.len() <= 4);
            seen.extend(page.iter().map(|i| i["slug"].as_str().unwrap().to_string()));
            match v.get("next").and_then(|n| n.as_str()) {
                Some(c) => after = Some(Position::decode(c).unwrap()),
                None => break,
            }
        }
        let want: Vec<String> = (0..10).map(|i| format!("show/s{i}")).collect();
        assert_eq!(seen, want);
        // A position whose show is gone still resumes after it.
        let gone = Position {
            episode_count: 2,
            slug: Slug::parse("show/s3x").unwrap(),
        };
        let v: serde_json::Value = serde_json::from_slice(&snap.page(Some(&gone), 1)).unwrap();
        assert_eq!(v["response"][0]["slug"], "show/s4");
        // Past the end: an empty last page.
        let end = Position {
            episode_count: 99,
            slug: Slug::parse("show/a").unwrap(),
        };
        let v: serde_json::Value = serde_json::from_slice(&snap.page(Some(&end), 5)).unwrap();
        assert_eq!(v, serde_json::json!({"response": []}));
        let empty = Snapshot::build(vec![], None, Instant::now(), false, 0, None).unwrap();
        assert_eq!(&empty.page(None, 3)[..], b"{\"response\":[]}");
        assert_eq!(&empty.json[..], b"{\"response\":[]}");
    }

    #[test]
    fn large_bodies_get_a_gzip_variant_and_etags_differ() {
        let big = vec![b'a'; 10_000];
        assert!(gzip_of(&big).unwrap().len() < big.len() / 10);
        assert!(gzip_of(b"{}").is_none());
        assert_ne!(etag_of(b"a"), etag_of(b"b"));
        let e = etag_of(&big);
        assert!(e.starts_with('"') && e.ends_with('"'));
    }
}
