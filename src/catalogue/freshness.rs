//! [`ListCache`]: which snapshot is served, when the store is asked whether it is still
//! the catalogue, and how it is brought up to date (see the module doc of
//! [`crate::catalogue`] for the rules and why).

use super::snapshot::Snapshot;
use crate::store::{ChangeRecord, Changes, DynStore, ShowStore, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The fraction of the TTL after which a request starts a check in the background.
pub const REFRESH_AT: (u32, u32) = (3, 4);

/// The fewest changed shows a snapshot re-reads one by one rather than reading the index.
const DELTA_MIN_SHOWS: usize = 64;

/// After a failed check, no new check is started for this long.
const RETRY_CHECK_AFTER: Duration = Duration::from_secs(1);

/// How far two tasks' wall clocks may disagree: a record's `unsettled_until` is written
/// by one task and compared with another's clock (ECS tasks keep time with the Amazon
/// Time Sync Service, normally within a millisecond; one second is a wide allowance).
pub const CLOCK_MARGIN: Duration = Duration::from_secs(1);

/// How the cache follows the store (from the service's `cache` settings).
#[derive(Debug, Clone)]
pub struct Policy {
    pub ttl: Duration,
    pub safety_net: Option<Duration>,
    pub stale_if_error: Duration,
    /// While a check or refill runs, the last snapshot is served up to this long past its
    /// TTL (the service passes its request timeout, see the module doc); after that a
    /// request waits for the refill.
    pub max_stale: Duration,
}

/// Why a snapshot was (re)filled: the `reason` label of `catalogue_refills_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Cold,
    /// The record changed, is missing, or the snapshot settles (same version, re-read).
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

/// Wall-clock time, for comparing with a record's `unsettled_until`. Tests anchor it to
/// tokio's clock so `tokio::time::pause` moves it too.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WallClock {
    anchor: Option<(SystemTime, Instant)>,
}

impl WallClock {
    pub(crate) fn now(&self) -> SystemTime {
        match self.anchor {
            None => SystemTime::now(),
            Some((at, since)) => at + since.elapsed(),
        }
    }

    #[cfg(test)]
    pub(crate) fn following_tokio() -> WallClock {
        WallClock {
            anchor: Some((SystemTime::now(), Instant::now())),
        }
    }
}

/// The snapshot in use and what is known of its freshness.
#[derive(Debug, Clone)]
struct Held {
    snapshot: Arc<Snapshot>,
    /// The change record read before the index; `None` when it was missing or invalid.
    version: Option<u64>,
    /// The local-write generation it was filled at.
    generation: u64,
    /// When the store last confirmed it (the TTL counts from here).
    checked_at: Instant,
    /// When the last full read of the index started (for the safety net).
    filled_at: Instant,
    /// Read units of the last full read of the index (0 on stores that report none).
    full_read_units: f64,
    /// Some writes it counts may still have been landing when it was read: re-read once
    /// after this time ("settle").
    settle_after: Option<SystemTime>,
    /// The last version whose every write was visible when read, the base a settle
    /// re-reads the change log from; `None`: none known (a settle reads the index).
    settled: Option<u64>,
}

/// How many changed shows a snapshot re-reads one by one before the index is the cheaper
/// read: a strongly consistent read of a show costs one unit, so as many as the last full
/// read of the index cost; on a store that reports no units, a tenth of the catalogue.
fn delta_budget(p: &Held) -> usize {
    let by_units = if p.full_read_units > 0.0 {
        p.full_read_units.ceil() as usize
    } else {
        p.snapshot.len() / 10
    };
    DELTA_MIN_SHOWS.max(by_units)
}

/// One check's decision to (re)fill, and what it read first.
struct Fill {
    reason: Reason,
    /// A settle: the same version read again because its writes may have been landing.
    settling: bool,
    /// The change record's version and `unsettled_until`, read before anything else.
    version: Option<u64>,
    unsettled_until: Option<SystemTime>,
    /// Wall-clock time just before the record was read.
    read_at: SystemTime,
    generation: u64,
    checked_at: Instant,
    /// The snapshot held when the check started, whatever its generation.
    previous: Option<Held>,
}

impl Fill {
    /// The settle state of what this fill makes: `(settle_after, settled)`. `full`: the
    /// index was read (not only the shows the change log named).
    fn settle_state(&self, full: bool) -> (Option<SystemTime>, Option<u64>) {
        // The writes this record counts may still be landing.
        let own = self
            .unsettled_until
            .map(|t| t + CLOCK_MARGIN)
            .filter(|t| *t > self.read_at);
        // A settle still owed by the previous snapshot: a read of the index after its
        // time, or the settle itself, pays it; a delta does not.
        let owed = self.previous.as_ref().and_then(|p| p.settle_after);
        let paid = self.settling || (full && owed.is_some_and(|t| t <= self.read_at));
        let owed = owed.filter(|_| !paid);
        let settle_after = own.max(owed);
        let settled = match (&self.previous, settle_after) {
            (_, None) => self.version,
            (None, Some(_)) => None,
            (Some(p), Some(_)) if paid && !self.settling => p.version,
            (Some(p), Some(_)) => p.settled,
        };
        (settle_after, settled)
    }
}

pub struct ListCache {
    held: RwLock<Option<Held>>,
    generation: AtomicU64,
    policy: Policy,
    /// Serializes checks and full refills so a burst of requests makes one store call.
    fill: Arc<tokio::sync::Mutex<()>>,
    /// Serializes the catch-up after a local write (not behind a running refill).
    catch_up: tokio::sync::Mutex<()>,
    /// The check running in the background, if any.
    background: Mutex<Option<JoinHandle<()>>>,
    /// When the last check failed (checks retried at most once a second).
    failed_at: Mutex<Option<Instant>>,
    /// The record is missing or invalid and that was logged.
    warned: AtomicBool,
    /// `catalogue_cache_hits_total`, registered once: it counts nearly every GET.
    hits: metrics::Counter,
    clock: WallClock,
    /// The change log's id, as the change record last said.
    log: Mutex<Option<u64>>,
}

impl ListCache {
    pub fn new(policy: Policy) -> ListCache {
        ListCache {
            held: RwLock::new(None),
            generation: AtomicU64::new(0),
            policy,
            fill: Arc::new(tokio::sync::Mutex::new(())),
            catch_up: tokio::sync::Mutex::new(()),
            background: Mutex::new(None),
            failed_at: Mutex::new(None),
            warned: AtomicBool::new(false),
            hits: metrics::counter!("catalogue_cache_hits_total"),
            clock: WallClock::default(),
            log: Mutex::new(None),
        }
    }

    /// A cache whose wall clock is `clock` (tests: one that follows tokio's).
    #[cfg(test)]
    pub(crate) fn with_clock(policy: Policy, clock: WallClock) -> ListCache {
        ListCache {
            clock,
            ..ListCache::new(policy)
        }
    }

    pub fn ttl(&self) -> Duration {
        self.policy.ttl
    }

    fn read_held(&self) -> std::sync::RwLockReadGuard<'_, Option<Held>> {
        self.held.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The snapshot and the time since its last check, when no local write happened
    /// since it was filled.
    fn valid(&self) -> Option<(Arc<Snapshot>, Duration)> {
        let guard = self.read_held();
        let c = guard.as_ref()?;
        (c.generation == self.generation.load(Ordering::Acquire))
            .then(|| (c.snapshot.clone(), c.checked_at.elapsed()))
    }

    /// The snapshot, when it is within its TTL and no local write happened since.
    pub fn get(&self) -> Option<Arc<Snapshot>> {
        self.valid()
            .filter(|(_, age)| *age < self.policy.ttl)
            .map(|(s, _)| s)
    }

    /// Where `snapshot` stands in the change log, when it is the one held: the log's id
    /// and the last version whose every write it reflects (`settled`: 0 when none is
    /// known, a position every change is after). `None`: not the held snapshot, or the
    /// log's id unknown.
    pub fn position_of(&self, snapshot: &Arc<Snapshot>) -> Option<(u64, u64)> {
        let log = (*self.log.lock().unwrap_or_else(|e| e.into_inner()))?;
        let guard = self.read_held();
        let held = guard.as_ref()?;
        Arc::ptr_eq(&held.snapshot, snapshot).then(|| (log, held.settled.unwrap_or(0)))
    }

    /// The last change record read: the log's id and the version a change feed may
    /// answer up to at once (`None` before any record was read).
    pub fn log_id(&self) -> Option<u64> {
        *self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks every snapshot filled before now as stale. Call when a write through this
    /// task ends (whatever its outcome).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The current catalogue (see the module doc): the snapshot when fresh; while a check
    /// or refill runs in the background, the last snapshot up to `max_stale` past its TTL;
    /// after a local write, the snapshot brought up to date with it; a cold start (or a
    /// snapshot too old to serve) waits for the store.
    pub async fn current(self: &Arc<Self>, store: &DynStore) -> Result<Arc<Snapshot>, StoreError> {
        let ttl = self.policy.ttl;
        match self.valid() {
            Some((hit, age)) if age < ttl * REFRESH_AT.0 / REFRESH_AT.1 => {
                self.hits.increment(1);
                return Ok(hit);
            }
            Some((hit, age)) if age < ttl + self.policy.max_stale => {
                self.hits.increment(1);
                self.revalidate(store);
                return Ok(hit);
            }
            Some(_) => {}
            None if self.read_held().is_some() => return self.catch_up(store).await,
            None => {}
        }
        self.check_under(&self.fill, store).await
    }

    /// A check under `lock`, unless the store failed less than a second ago (no new check
    /// per request then) or a check that held the lock before us made the snapshot fresh.
    async fn check_under(
        &self,
        lock: &tokio::sync::Mutex<()>,
        store: &DynStore,
    ) -> Result<Arc<Snapshot>, StoreError> {
        if let Some(stale) = self.stale_while_failing() {
            return Ok(stale);
        }
        let _checking = lock.lock().await;
        if let Some(hit) = self.get() {
            self.hits.increment(1);
            return Ok(hit);
        }
        self.check_or_stale(store).await
    }

    /// Starts a check in the background unless one runs or failed less than a second ago.
    fn revalidate(self: &Arc<Self>, store: &DynStore) {
        if self.failed_recently() {
            return;
        }
        let Ok(guard) = self.fill.clone().try_lock_owned() else {
            return; // a check runs
        };
        let (cache, store) = (self.clone(), store.clone());
        let task = tokio::spawn(async move {
            let _checking = guard;
            if let Err(e) = cache.check_locked(&store).await {
                tracing::warn!(
                    error = %e,
                    "the store could not be checked; serving the last catalogue"
                );
            }
        });
        *self.background.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// After a local write: the held snapshot brought up to date (the change log's delta
    /// in the common case). Not behind a background refill: it has a lock of its own.
    async fn catch_up(&self, store: &DynStore) -> Result<Arc<Snapshot>, StoreError> {
        self.check_under(&self.catch_up, store).await
    }

    /// A check now; when it fails, the last snapshot within the stale window.
    async fn check_or_stale(&self, store: &DynStore) -> Result<Arc<Snapshot>, StoreError> {
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
        let guard = self.read_held();
        let c = guard.as_ref()?;
        (c.checked_at.elapsed() < self.policy.ttl + self.policy.stale_if_error)
            .then(|| c.snapshot.clone())
    }

    fn failed_recently(&self) -> bool {
        self.failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < RETRY_CHECK_AFTER)
    }

    /// The stale snapshot while a check failed less than [`RETRY_CHECK_AFTER`] ago.
    fn stale_while_failing(&self) -> Option<Arc<Snapshot>> {
        self.failed_recently()
            .then(|| self.within_stale_window())
            .flatten()
    }

    /// Reads the change record and refills when needed; the caller holds a fill lock.
    async fn check_locked(&self, store: &DynStore) -> Result<Arc<Snapshot>, StoreError> {
        let res = self.check_and_fill(store).await;
        *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = res.is_err().then(Instant::now);
        res
    }

    async fn check_and_fill(&self, store: &DynStore) -> Result<Arc<Snapshot>, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let checked_at = Instant::now();
        let read_at = self.clock.now();
        let previous = self.read_held().clone();
        let same_generation = previous.as_ref().filter(|p| p.generation == generation);
        // TTL 0 keeps nothing: the record would be read for nothing.
        let (version, unsettled_until, outcome) = if self.policy.ttl.is_zero() {
            (None, None, "skipped")
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
        // Whether the snapshot checked still owes a settle (tests wait for `false`).
        let settle_pending = same_generation.is_some_and(|p| p.settle_after.is_some());
        if !self.policy.ttl.is_zero() {
            tracing::debug!(outcome, settle_pending, "catalogue change record checked");
        }
        let unchanged = |p: &Held| version.is_some() && version == p.version;
        let mut settling = false;
        let reason = match (same_generation, &previous) {
            (None, Some(p)) if unchanged(p) => {
                // A local write that stored nothing (every write that stores bumps the
                // record): the snapshot is still the catalogue.
                return Ok(self.confirm(p, checked_at, Some(generation)));
            }
            (None, Some(_)) => Reason::LocalWrite,
            (None, None) => Reason::Cold,
            (Some(p), _) if !unchanged(p) => Reason::Changed,
            (Some(p), _) if p.settle_after.is_some_and(|t| t <= read_at) => {
                settling = true;
                Reason::Changed
            }
            (Some(p), _)
                if self
                    .policy
                    .safety_net
                    .is_some_and(|net| p.filled_at.elapsed() >= net) =>
            {
                Reason::SafetyNet
            }
            (Some(p), _) => return Ok(self.confirm(p, checked_at, None)),
        };
        if let Some(p) = same_generation.filter(|_| settling || reason == Reason::SafetyNet) {
            // The record is unchanged: the snapshot is confirmed while it is read again.
            self.confirm(p, checked_at, None);
        }
        let fill = Fill {
            reason,
            settling,
            version,
            unsettled_until,
            read_at,
            generation,
            checked_at,
            previous,
        };
        // Applied from the log: the changes since the held version, or, to settle, those
        // since the last settled one.
        if let Some(p) = fill.previous.as_ref()
            && let (Some(held), Some(now)) = (if settling { p.settled } else { p.version }, version)
            && now > held
            && matches!(reason, Reason::Changed | Reason::LocalWrite)
            && let Some(applied) = self
                .apply_changes(store.as_ref(), p, held, now, &fill)
                .await?
        {
            return Ok(applied);
        }
        self.fill(store, fill).await
    }

    /// `p`, confirmed at `checked_at` (and moved to `generation`), when it is still the
    /// one held.
    fn confirm(&self, p: &Held, checked_at: Instant, generation: Option<u64>) -> Arc<Snapshot> {
        let mut guard = self.held.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = guard.as_mut()
            && Arc::ptr_eq(&c.snapshot, &p.snapshot)
        {
            c.checked_at = checked_at;
            if let Some(g) = generation {
                c.generation = g;
            }
        }
        p.snapshot.clone()
    }

    /// Counts what the record says; the version to keep with the next snapshot, until
    /// when its writes may still be landing, and the outcome (the metric's label).
    fn note(
        &self,
        record: ChangeRecord,
        held: Option<Option<u64>>,
    ) -> (Option<u64>, Option<SystemTime>, &'static str) {
        let outcome = match record {
            ChangeRecord::Version { version, .. } if held == Some(Some(version)) => "unchanged",
            ChangeRecord::Version { .. } => "changed",
            ChangeRecord::Missing => "missing",
            ChangeRecord::Invalid => "invalid",
        };
        metrics::counter!("catalogue_change_checks_total", "outcome" => outcome).increment(1);
        match record {
            ChangeRecord::Version {
                version,
                unsettled_until,
                log,
            } => {
                self.warned.store(false, Ordering::Relaxed);
                *self.log.lock().unwrap_or_else(|e| e.into_inner()) = log;
                (Some(version), unsettled_until, outcome)
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
                (None, None, outcome)
            }
        }
    }

    /// Applies the changes of versions `held + 1 ..= now` to `p` when the store's change
    /// log can say what they were; `None` when the index must be read instead.
    async fn apply_changes(
        &self,
        store: &dyn ShowStore,
        p: &Held,
        held: u64,
        now: u64,
        fill: &Fill,
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
        let (listed, changed) = (items.len(), slugs.len());
        let base = p.snapshot.clone();
        let snapshot = off_the_runtime(move || base.apply(&slugs, items)).await?;
        let took = started.elapsed();
        count_refill(fill.reason, "delta", took, &snapshot);
        tracing::info!(
            reason = fill.reason.label(),
            kind = "delta",
            versions = now - held,
            changed,
            listed,
            items = snapshot.len(),
            bytes = snapshot.json.len(),
            duration_ms = took.as_secs_f64() * 1000.0,
            "catalogue refilled"
        );
        let (settle_after, settled) = fill.settle_state(false);
        self.keep(Held {
            snapshot: snapshot.clone(),
            version: Some(now),
            generation: fill.generation,
            checked_at: fill.checked_at,
            filled_at: p.filled_at,
            full_read_units: p.full_read_units,
            settle_after,
            settled,
        });
        Ok(Some(snapshot))
    }

    /// Makes `held` the one served.
    fn keep(&self, held: Held) {
        if !self.policy.ttl.is_zero() {
            *self.held.write().unwrap_or_else(|e| e.into_inner()) = Some(held);
        }
    }

    /// Reads the whole index.
    async fn fill(&self, store: &DynStore, fill: Fill) -> Result<Arc<Snapshot>, StoreError> {
        let started = Instant::now();
        let page = read_index(store).await?;
        let (calls, read_units) = (page.calls, page.read_units);
        let previous = fill.previous.as_ref().map(|p| p.snapshot.clone());
        let items = page.items;
        let snapshot = off_the_runtime(move || Snapshot::build(items, previous.as_deref())).await?;
        let took = started.elapsed();
        count_refill(fill.reason, "full", took, &snapshot);
        tracing::info!(
            reason = fill.reason.label(),
            kind = "full",
            items = snapshot.len(),
            bytes = snapshot.json.len(),
            store_calls = calls,
            read_units,
            duration_ms = took.as_secs_f64() * 1000.0,
            "catalogue refilled"
        );
        let (settle_after, settled) = fill.settle_state(true);
        self.keep(Held {
            snapshot: snapshot.clone(),
            version: fill.version,
            generation: fill.generation,
            checked_at: fill.checked_at,
            filled_at: fill.checked_at,
            full_read_units: read_units,
            settle_after,
            settled,
        });
        Ok(snapshot)
    }
}

/// Reads the whole index on the blocking pool, the future driven there through the
/// runtime's handle (its I/O and timers stay the runtime's): the SDK parses each page of
/// the answer (about 1 MB, several ms of CPU) inside one poll, and on a runtime worker
/// those polls would hold up the requests queued on it while a background refill runs.
/// A current-thread runtime (the tests', the one-shot commands') has no worker to spare:
/// there the read is awaited in place.
async fn read_index(store: &DynStore) -> Result<crate::store::Page, StoreError> {
    let runtime = tokio::runtime::Handle::current();
    if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread {
        return store.list_eligible(Default::default()).await;
    }
    let store = store.clone();
    tokio::task::spawn_blocking(move || runtime.block_on(store.list_eligible(Default::default())))
        .await
        .map_err(|e| StoreError::Internal(e.into()))?
}

/// Makes a snapshot on the blocking pool: sorting, serializing, gzip and the ETag take
/// tens of milliseconds at 100,000 shows, and on a runtime worker they would hold up the
/// requests queued on it while a background refill runs.
async fn off_the_runtime(
    make: impl FnOnce() -> Result<Snapshot, serde_json::Error> + Send + 'static,
) -> Result<Arc<Snapshot>, StoreError> {
    match tokio::task::spawn_blocking(make).await {
        Ok(Ok(snapshot)) => Ok(Arc::new(snapshot)),
        Ok(Err(e)) => Err(StoreError::Internal(e.into())),
        Err(e) => Err(StoreError::Internal(e.into())),
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
mod tests;
