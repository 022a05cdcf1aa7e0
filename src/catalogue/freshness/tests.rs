//! The freshness rules against a store whose catalogue, change record, log, failures and
//! speed the test sets; on tokio's paused clock (the wall clock the record is compared
//! with follows it).

use super::*;
use crate::catalogue::snapshot::tests::item;
use crate::domain::{Actor, Partner, Show, Slug};
use crate::store::{Assignment, ListItem, Page, PageRequest, StoredShow};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;

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
    log: Mutex<Option<HashMap<u64, Vec<String>>>>,
    deltas: AtomicUsize,
    /// How long an index read takes (tokio's clock).
    list_takes: Mutex<Duration>,
    /// A bump says its writes may land for this long after it (DynamoDB's index lag);
    /// `None`: settled at once (SQLite).
    lag: Mutex<Option<Duration>>,
    clock: WallClock,
}

fn v(version: u64) -> Option<ChangeRecord> {
    Some(ChangeRecord::Version {
        version,
        unsettled_until: None,
        log: Some(7),
    })
}

impl Fake {
    fn with(items: Vec<ListItem>, record: Option<ChangeRecord>, clock: WallClock) -> Arc<Fake> {
        let f = Fake {
            clock,
            ..Fake::default()
        };
        *f.items.lock().unwrap() = items;
        *f.record.lock().unwrap() = record;
        Arc::new(f)
    }
    fn version(&self) -> u64 {
        match *self.record.lock().unwrap() {
            Some(ChangeRecord::Version { version, .. }) => version,
            _ => 0,
        }
    }
    /// Bumps the record, as a writer does (with this store's lag).
    fn bump(&self) {
        let until = self.lag.lock().unwrap().map(|lag| self.clock.now() + lag);
        let version = self.version() + 1;
        *self.record.lock().unwrap() = Some(ChangeRecord::Version {
            version,
            unsettled_until: until,
            log: Some(7),
        });
    }
    fn write(&self, items: Vec<ListItem>, bump: bool) {
        *self.items.lock().unwrap() = items;
        if bump {
            self.bump();
        }
    }
    /// A write that bumps the record and logs `slugs` under the new version.
    fn write_logged(&self, items: Vec<ListItem>, slugs: &[&str]) {
        self.write(items, true);
        self.log.lock().unwrap().get_or_insert_default().insert(
            self.version(),
            slugs.iter().map(|s| s.to_string()).collect(),
        );
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
    async fn upsert(&self, _: Vec<Show>, _: &Actor) -> Result<usize, StoreError> {
        unimplemented!()
    }
    async fn list_eligible(&self, _: PageRequest) -> Result<Page, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("down"));
        }
        self.lists.fetch_add(1, Ordering::SeqCst);
        let items = self.items.lock().unwrap().clone();
        let takes = *self.list_takes.lock().unwrap();
        tokio::time::sleep(takes).await;
        if let Some(next) = self.write_during_list.lock().unwrap().take() {
            self.write(next, true);
        }
        Ok(Page {
            items,
            ..Page::default()
        })
    }
    async fn get(&self, _: &Slug) -> Result<Option<StoredShow>, StoreError> {
        Ok(None)
    }
    async fn catalogue_items(&self, slugs: &[String]) -> Result<Vec<ListItem>, StoreError> {
        let items = self.items.lock().unwrap();
        Ok(items
            .iter()
            .filter(|i| slugs.contains(&i.slug))
            .cloned()
            .collect())
    }
    async fn delete(&self, _: &Slug, _: &Actor) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn assign_owner(
        &self,
        _: &Partner,
        _: &[Slug],
        _: &Actor,
    ) -> Result<Assignment, StoreError> {
        unimplemented!()
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

/// [`policy`] with the safety net at 100 s.
fn with_safety_net() -> Policy {
    Policy {
        safety_net: Some(Duration::from_secs(100)),
        ..policy()
    }
}

fn policy() -> Policy {
    Policy {
        ttl: Duration::from_secs(60),
        safety_net: None,
        stale_if_error: Duration::from_secs(120),
        max_stale: Duration::from_secs(10),
    }
}

/// A fake store and a cache on it, sharing a wall clock that follows tokio's.
fn setup(
    items: Vec<ListItem>,
    record: Option<ChangeRecord>,
    policy: Policy,
) -> (Arc<Fake>, DynStore, Arc<ListCache>) {
    let clock = WallClock::following_tokio();
    let fake = Fake::with(items, record, clock);
    let store: DynStore = fake.clone();
    (fake, store, Arc::new(ListCache::with_clock(policy, clock)))
}

/// Moves time past the snapshot's TTL and the stale bound: the next request checks and
/// waits for the check.
async fn expire(cache: &ListCache) {
    tokio::time::advance(cache.policy.ttl + cache.policy.max_stale).await;
}

/// Waits for the check running in the background, if any.
async fn quiesce(cache: &ListCache) {
    let task = cache.background.lock().unwrap().take();
    if let Some(task) = task {
        task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_record_costs_one_check_and_no_index_read() {
    let (fake, store, cache) = setup(vec![item(1, "show/a")], v(7), policy());
    let first = cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (1, 1));
    // Within the TTL: nothing read at all.
    cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (1, 1));
    // The record was settled when the cold fill read it: no second read, checks only.
    for n in 2..6 {
        expire(&cache).await;
        let again = cache.current(&store).await.unwrap();
        assert_eq!(fake.counts(), (n, 1), "check {n}: no index read");
        assert_eq!(again.etag, first.etag);
    }
}

#[tokio::test(start_paused = true)]
async fn a_cold_fill_from_a_record_settled_in_the_past_reads_the_index_once() {
    let clock = WallClock::following_tokio();
    let record = Some(ChangeRecord::Version {
        version: 3,
        unsettled_until: Some(clock.now() - Duration::from_secs(5)),
        log: Some(7),
    });
    let (fake, store, cache) = setup(vec![item(1, "show/a")], record, policy());
    let snapshot = cache.current(&store).await.unwrap();
    // Settled: a changes cursor at the version it was filled from.
    assert_eq!(cache.position_of(&snapshot), Some((7, 3)));
    for n in 2..5 {
        expire(&cache).await;
        cache.current(&store).await.unwrap();
        assert_eq!(fake.counts(), (n, 1), "check {n}: no index read");
    }
}

#[tokio::test(start_paused = true)]
async fn writes_still_landing_are_read_once_after_their_time_even_at_the_same_version() {
    // A feed that bumped the record (its deadline 300 s away) and was killed after its
    // first batch: the version never changes again.
    let clock = WallClock::following_tokio();
    let record = Some(ChangeRecord::Version {
        version: 5,
        unsettled_until: Some(clock.now() + Duration::from_secs(300)),
        log: Some(7),
    });
    let (fake, store, cache) = setup(vec![item(1, "show/a")], record, policy());
    let snapshot = cache.current(&store).await.unwrap();
    // Its writes may still land: a changes cursor before every change, not at 5.
    assert_eq!(cache.position_of(&snapshot), Some((7, 0)));
    // A batch lands after the fill read the index.
    fake.write(vec![item(1, "show/a"), item(2, "show/b")], false);
    // Before the deadline (and the clock margin) passes: checks only.
    for n in 2..6 {
        expire(&cache).await; // 70 s each: 280 s
        assert_eq!(cache.current(&store).await.unwrap().len(), 1);
        assert_eq!(fake.counts(), (n, 1), "check {n}: not yet");
    }
    // Past it: one settle reads the index (a cold fill knows no settled version)...
    expire(&cache).await;
    let settled = cache.current(&store).await.unwrap();
    assert_eq!(settled.len(), 2);
    assert_eq!(fake.counts(), (6, 2));
    assert_eq!(cache.position_of(&settled), Some((7, 5)));
    assert_eq!(
        cache.position_of(&snapshot),
        None,
        "not the one held any more"
    );
    // ...and only one.
    for n in 7..10 {
        expire(&cache).await;
        cache.current(&store).await.unwrap();
        assert_eq!(fake.counts(), (n, 2), "check {n}: settled");
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_that_followed_a_killed_feed_settles_it_from_the_log() {
    let (fake, store, cache) = setup(vec![item(1, "show/a")], v(1), policy());
    *fake.log.lock().unwrap() = Some(Default::default());
    cache.current(&store).await.unwrap();
    // The feed bumps (deadline 100 s) and logs its shows before its first batch; this task
    // follows the bump from the log before any batch landed; the feed dies mid-way.
    *fake.lag.lock().unwrap() = Some(Duration::from_secs(100));
    expire(&cache).await;
    fake.write_logged(vec![item(1, "show/a")], &["show/b", "show/c"]);
    assert_eq!(cache.current(&store).await.unwrap().len(), 1);
    assert_eq!(
        (fake.counts(), fake.deltas.load(Ordering::SeqCst)),
        ((2, 1), 1)
    );
    fake.write(vec![item(1, "show/a"), item(2, "show/b")], false);
    expire(&cache).await; // 70 s: before the deadline
    assert_eq!(cache.current(&store).await.unwrap().len(), 1);
    expire(&cache).await; // 140 s: past it: the logged shows again, not the index
    assert_eq!(cache.current(&store).await.unwrap().len(), 2);
    assert_eq!(
        (fake.counts(), fake.deltas.load(Ordering::SeqCst)),
        ((4, 1), 2)
    );
    expire(&cache).await;
    cache.current(&store).await.unwrap();
    assert_eq!(
        (fake.counts(), fake.deltas.load(Ordering::SeqCst)),
        ((5, 1), 2)
    );
}

#[tokio::test(start_paused = true)]
async fn a_change_the_index_lags_behind_is_read_again_once_to_settle() {
    let (fake, store, cache) = setup(vec![item(1, "show/a")], v(1), policy());
    *fake.lag.lock().unwrap() = Some(Duration::from_secs(2));
    cache.current(&store).await.unwrap();
    expire(&cache).await;
    // Another task bumps the record, but this task's index read still sees the old
    // catalogue (a lagging GSI): the refill right after the change is stale...
    fake.bump();
    let stale = cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (2, 2));
    assert_eq!(stale.len(), 1);
    // ...and the index catches up without another bump: the settling refill at the next
    // check picks it up, then the snapshot stays.
    fake.write(vec![item(1, "show/a"), item(2, "show/b")], false);
    expire(&cache).await;
    let settled = cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (3, 3));
    assert_eq!(settled.len(), 2);
    expire(&cache).await;
    cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (4, 3), "settled: no more index reads");
}

#[tokio::test(start_paused = true)]
async fn a_write_during_a_refill_is_seen_by_the_next_check() {
    // The record is read before the index: a write (and its bump) that lands after the
    // index was read is a new version at the next check.
    let (fake, store, cache) = setup(vec![item(1, "show/a")], v(1), policy());
    *fake.write_during_list.lock().unwrap() = Some(vec![item(1, "show/a"), item(1, "show/b")]);
    let raced = cache.current(&store).await.unwrap();
    assert_eq!(raced.len(), 1, "read before the write");
    expire(&cache).await;
    let next = cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (2, 2));
    assert_eq!(next.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_missing_or_invalid_record_means_a_full_read_at_every_check() {
    for record in [None, Some(ChangeRecord::Invalid)] {
        let (fake, store, cache) = setup(vec![item(1, "show/a")], record, policy());
        for n in 1..4 {
            let s = cache.current(&store).await.unwrap();
            assert_eq!(s.len(), 1);
            assert_eq!(fake.counts(), (n, n), "{record:?}");
            expire(&cache).await;
        }
        assert!(cache.warned.load(Ordering::SeqCst));
    }
}

#[tokio::test(start_paused = true)]
async fn the_safety_net_reads_the_index_when_nothing_says_it_changed() {
    let (fake, store, cache) = setup(vec![item(1, "show/a")], v(1), with_safety_net());
    cache.current(&store).await.unwrap();
    expire(&cache).await;
    cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (2, 1), "70 s: a check");
    fake.write(vec![item(5, "show/z")], false); // a writer that does not bump
    expire(&cache).await;
    let s = cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (3, 2), "140 s: the safety net");
    assert_eq!(s.len(), 1);
    assert!(s.json.windows(6).any(|w| w == b"show/z"));
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_is_answered_from_the_last_snapshot_for_the_stale_window_only() {
    let (fake, store, cache) = setup(vec![item(1, "show/a")], v(1), policy());
    let first = cache.current(&store).await.unwrap();
    fake.down.store(true, Ordering::SeqCst);
    // In the background first (past 3/4 of the TTL), then at once (past TTL + max_stale).
    tokio::time::advance(Duration::from_secs(50)).await;
    assert!(Arc::ptr_eq(&first, &cache.current(&store).await.unwrap()));
    quiesce(&cache).await;
    tokio::time::advance(Duration::from_secs(20)).await;
    let served = cache.current(&store).await.unwrap();
    assert!(Arc::ptr_eq(&first, &served));
    // Past TTL + the stale window (120 s): the store's error.
    tokio::time::advance(Duration::from_secs(111)).await;
    assert!(matches!(
        cache.current(&store).await,
        Err(StoreError::Unavailable { .. })
    ));
    // Back up: a normal check again (a second after the failure).
    fake.down.store(false, Ordering::SeqCst);
    tokio::time::advance(RETRY_CHECK_AFTER).await;
    assert!(cache.current(&store).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_local_write_refills_at_once_and_a_fill_that_raced_one_is_not_kept() {
    let (fake, store, cache) = setup(vec![item(1, "show/a")], v(1), policy());
    cache.current(&store).await.unwrap();
    cache.invalidate();
    assert!(cache.get().is_none());
    fake.write(vec![item(1, "show/a"), item(1, "show/b")], true);
    assert_eq!(cache.current(&store).await.unwrap().len(), 2);
    assert!(cache.get().is_some());
    // A local write that stored nothing (no bump): the snapshot is confirmed, not re-read.
    cache.invalidate();
    assert_eq!(cache.current(&store).await.unwrap().len(), 2);
    assert_eq!(fake.counts(), (3, 2));
}

#[tokio::test(start_paused = true)]
async fn a_logged_change_is_applied_without_reading_the_index() {
    let start = vec![item(1, "show/a"), item(3, "show/c")];
    let (fake, store, cache) = setup(start, v(1), policy());
    *fake.log.lock().unwrap() = Some(Default::default());
    cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (1, 1));

    // Another task adds show/b and moves show/a past show/c.
    fake.write_logged(
        vec![item(2, "show/b"), item(3, "show/c"), item(4, "show/a")],
        &["show/a", "show/b"],
    );
    expire(&cache).await;
    let applied = cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (2, 1), "no index read");
    assert_eq!(fake.deltas.load(Ordering::SeqCst), 1);
    let full = Snapshot::build(fake.items.lock().unwrap().clone(), None).unwrap();
    assert_eq!(applied.json, full.json);
    assert_eq!(applied.etag, full.etag);
    // A delta from a settled record does not settle: the next check only checks.
    expire(&cache).await;
    cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (3, 1));

    // A write through this task (and its delete of show/c): applied at the next request.
    cache.invalidate();
    fake.write_logged(vec![item(2, "show/b"), item(4, "show/a")], &["show/c"]);
    cache.invalidate();
    assert_eq!(cache.current(&store).await.unwrap().len(), 2);
    assert_eq!(fake.counts(), (4, 1));

    // A gap in the log (a writer that bumped but logged nothing): the index is read.
    fake.write(vec![item(4, "show/a")], true);
    expire(&cache).await;
    assert_eq!(cache.current(&store).await.unwrap().len(), 1);
    assert_eq!(fake.counts(), (5, 2));
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_read_from_the_index_after_a_change_settles_from_the_log() {
    let (fake, store, cache) = setup(vec![item(1, "show/a")], v(1), policy());
    *fake.log.lock().unwrap() = Some(Default::default());
    *fake.lag.lock().unwrap() = Some(Duration::from_secs(2));
    cache.current(&store).await.unwrap();
    // A write whose log entry is not there yet: the index is read (and may lag)...
    expire(&cache).await;
    fake.write(vec![item(1, "show/a"), item(2, "show/b")], true);
    assert_eq!(cache.current(&store).await.unwrap().len(), 2);
    assert_eq!(fake.counts(), (2, 2));
    // ...then the entry lands: the settle re-reads the shows it names, not the index.
    fake.log
        .lock()
        .unwrap()
        .get_or_insert_default()
        .insert(2, vec!["show/b".into()]);
    expire(&cache).await;
    cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (3, 2), "settled from the log");
    assert_eq!(fake.deltas.load(Ordering::SeqCst), 1);
    expire(&cache).await;
    cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (4, 2), "settled: checks only");
}

#[tokio::test(start_paused = true)]
async fn more_changes_than_the_budget_read_the_index() {
    let items: Vec<ListItem> = (0..10).map(|i| item(1, &format!("show/s{i}"))).collect();
    let (fake, store, cache) = setup(items.clone(), v(1), policy());
    *fake.log.lock().unwrap() = Some(Default::default());
    cache.current(&store).await.unwrap();
    let many: Vec<String> = (0..=DELTA_MIN_SHOWS)
        .map(|i| format!("show/n{i}"))
        .collect();
    let named: Vec<&str> = many.iter().map(String::as_str).collect();
    fake.write_logged(items, &named);
    expire(&cache).await;
    cache.current(&store).await.unwrap();
    assert_eq!(fake.counts(), (2, 2), "over the budget: the index");
    assert_eq!(fake.deltas.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_reader_during_a_slow_refill_gets_the_last_snapshot_at_once() {
    let (fake, store, cache) = setup(vec![item(1, "show/a")], v(1), policy());
    let first = cache.current(&store).await.unwrap();
    // A change the log cannot describe, and an index read that takes 30 s.
    fake.write(vec![item(1, "show/a"), item(2, "show/b")], true);
    *fake.list_takes.lock().unwrap() = Duration::from_secs(30);
    // Past 3/4 of the TTL: the request that starts the check is answered at once...
    tokio::time::advance(Duration::from_secs(50)).await;
    let t0 = Instant::now();
    assert!(Arc::ptr_eq(&first, &cache.current(&store).await.unwrap()));
    tokio::task::yield_now().await; // the check starts
    // ...and so is every request while the refill runs, up to TTL + max_stale (70 s).
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(5)).await;
        let t = Instant::now();
        assert!(Arc::ptr_eq(&first, &cache.current(&store).await.unwrap()));
        assert_eq!(t.elapsed(), Duration::ZERO, "no wait");
    }
    assert_eq!(
        fake.counts(),
        (1 + 1, 1 + 1),
        "one check, one refill running"
    );
    // Past the bound, a request waits for the refill (and gets its result).
    tokio::time::advance(Duration::from_secs(6)).await; // 71 s after the last check
    let t = Instant::now();
    let fresh = cache.current(&store).await.unwrap();
    assert_eq!(fresh.len(), 2);
    assert_eq!(t0.elapsed(), Duration::from_secs(30), "the refill's 30 s");
    assert!(t.elapsed() > Duration::ZERO, "waited");
    assert_eq!(fake.counts(), (2, 2), "no second refill");
}

#[tokio::test(start_paused = true)]
async fn a_safety_net_refill_keeps_the_snapshot_fresh_while_it_reads() {
    let (fake, store, cache) = setup(vec![item(1, "show/a")], v(1), with_safety_net());
    let first = cache.current(&store).await.unwrap();
    *fake.list_takes.lock().unwrap() = Duration::from_secs(300);
    tokio::time::advance(Duration::from_secs(50)).await;
    cache.current(&store).await.unwrap(); // a check in the background
    quiesce(&cache).await;
    tokio::time::advance(Duration::from_secs(55)).await;
    // 105 s after the fill: the check finds the record unchanged and the safety net due.
    assert!(Arc::ptr_eq(&first, &cache.current(&store).await.unwrap()));
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_secs(65)).await;
    // 170 s after the fill, 75 s after the last check before it, and 65 s into a refill
    // that takes 300 s: the check confirmed the snapshot before reading the index.
    let t = Instant::now();
    assert!(Arc::ptr_eq(&first, &cache.current(&store).await.unwrap()));
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(fake.counts(), (3, 2), "the refill still runs");
}

#[tokio::test(start_paused = true)]
async fn a_reader_after_a_local_write_waits_for_its_delta_not_for_a_running_refill() {
    let (fake, store, cache) = setup(vec![item(1, "show/a")], v(1), with_safety_net());
    *fake.log.lock().unwrap() = Some(Default::default());
    cache.current(&store).await.unwrap();
    // A safety-net refill that takes 300 s starts in the background.
    *fake.list_takes.lock().unwrap() = Duration::from_secs(300);
    tokio::time::advance(Duration::from_secs(50)).await;
    cache.current(&store).await.unwrap();
    quiesce(&cache).await;
    tokio::time::advance(Duration::from_secs(55)).await;
    cache.current(&store).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(fake.counts(), (3, 2));
    // A write through this task ends: its reader gets it at once, from the log.
    fake.write_logged(vec![item(1, "show/a"), item(2, "show/b")], &["show/b"]);
    cache.invalidate();
    let t = Instant::now();
    assert_eq!(cache.current(&store).await.unwrap().len(), 2);
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(fake.deltas.load(Ordering::SeqCst), 1);
    // The refill that started before the write ends; the write is still listed.
    quiesce(&cache).await;
    assert_eq!(cache.current(&store).await.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_read_of_the_index_after_a_pending_settles_time_pays_it_and_a_delta_does_not() {
    for logged in [false, true] {
        // A cold fill while a write may still land (for 100 s).
        let clock = WallClock::following_tokio();
        let record = Some(ChangeRecord::Version {
            version: 1,
            unsettled_until: Some(clock.now() + Duration::from_secs(100)),
            log: Some(7),
        });
        let (fake, store, cache) = setup(vec![item(1, "show/a")], record, policy());
        cache.current(&store).await.unwrap();
        expire(&cache).await; // 70 s: not yet
        cache.current(&store).await.unwrap();
        assert_eq!(fake.counts(), (2, 1));
        // 140 s: another write (settled at once), read from the index or the log.
        expire(&cache).await;
        if logged {
            *fake.log.lock().unwrap() = Some(Default::default());
            fake.write_logged(vec![item(1, "show/a"), item(2, "show/b")], &["show/b"]);
        } else {
            fake.write(vec![item(1, "show/a"), item(2, "show/b")], true);
        }
        assert_eq!(cache.current(&store).await.unwrap().len(), 2);
        let lists = if logged { 1 } else { 2 };
        assert_eq!(fake.counts(), (3, lists), "logged: {logged}");
        // The index read after 101 s saw every write the cold fill may have missed; the
        // delta re-read one show only, so the cold fill's settle is still owed.
        expire(&cache).await;
        cache.current(&store).await.unwrap();
        let settle = usize::from(logged);
        assert_eq!(fake.counts(), (4, lists + settle), "logged: {logged}");
        expire(&cache).await;
        cache.current(&store).await.unwrap();
        assert_eq!(
            fake.counts(),
            (5, lists + settle),
            "logged: {logged}: settled"
        );
    }
}
