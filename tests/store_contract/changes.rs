//! The change feed's cases of the store contract (see `tests/store_contract.rs`): what
//! `catalogue::changes::changes_since` answers from each store's change log — paging
//! within one write, a cursor past the retention or of another store (expired), and the
//! property the feed promises: applying the changes since a position to the list read
//! there gives the list now, over random feeds and deletes.

use show_service::catalogue::changes::{Change, Cursor, FeedError, changes_since};
use show_service::store::{ChangeRecord, DynStore, ListItem, PageRequest};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The store's position now (its change record), as a cursor.
pub async fn position(store: &DynStore) -> Cursor {
    match store.change_record().await.unwrap() {
        ChangeRecord::Version {
            version,
            log: Some(log),
            ..
        } => Cursor {
            log,
            version,
            offset: 0,
        },
        other => panic!("no log position: {other:?}"),
    }
}

/// The catalogue as slug → item.
pub async fn list(store: &DynStore) -> BTreeMap<String, ListItem> {
    let page = store.list_eligible(PageRequest::default()).await.unwrap();
    page.items
        .into_iter()
        .map(|i| (i.slug.clone(), i))
        .collect()
}

/// Follows the feed from `since` with `limit`, applying each answer to `list`, until an
/// answer holds fewer than `limit`; returns the last `next` and how many answers it took.
pub async fn follow(
    store: &DynStore,
    list: &mut BTreeMap<String, ListItem>,
    since: Cursor,
    limit: usize,
) -> Result<(Cursor, usize), FeedError> {
    let mut at = since;
    for answers in 1..10_000 {
        let feed = changes_since(store.as_ref(), at, limit, SystemTime::now()).await?;
        assert!(feed.changes.len() <= limit);
        let n = feed.changes.len();
        for change in feed.changes {
            match change {
                Change::Put(item) => {
                    list.insert(item.slug.clone(), item);
                }
                Change::Remove(slug) => {
                    list.remove(&slug);
                }
            }
        }
        if n < limit {
            assert_eq!(
                changes_since(store.as_ref(), feed.next, limit, SystemTime::now())
                    .await?
                    .next,
                feed.next,
                "nothing more: next stays"
            );
            return Ok((feed.next, answers));
        }
        at = feed.next;
    }
    panic!("the feed never ended");
}

#[macro_export]
macro_rules! changes_tests {
    () => {
        use $crate::changes::{follow, list, position};
        use show_service::catalogue::changes::{Change, FeedError, changes_since};
        use std::collections::BTreeMap;
        use std::time::{Duration, SystemTime};

        #[tokio::test]
        async fn changes_page_within_one_write_and_nothing_new_keeps_next() {
            let f = fixture().await;
            f.store.upsert(many("first", 1, 1), &OPERATOR).await.unwrap();
            let since = position(&f.store).await;
            // 12 shows in one feed: 8 eligible, 4 not (removes).
            let shows = many("p", 12, 10);
            f.store.upsert(shows, &OPERATOR).await.unwrap();
            let first = changes_since(f.store.as_ref(), since, 5, SystemTime::now())
                .await
                .unwrap();
            assert_eq!(first.changes.len(), 5, "a full page");
            assert_eq!(first.next.version, since.version, "within the write's version");
            assert_eq!(first.next.offset, 5);
            let mut seen = BTreeMap::new();
            let (next, answers) = follow(&f.store, &mut seen, since, 5).await.unwrap();
            assert_eq!(answers, 3, "12 changes in pages of 5");
            assert_eq!(next, position(&f.store).await);
            assert_eq!(seen, list(&f.store).await);
            assert_eq!(seen.len(), 8);
            // Every show once, in slug order within the write, removes included.
            let all = changes_since(f.store.as_ref(), since, 1000, SystemTime::now())
                .await
                .unwrap();
            let slugs: Vec<String> = all
                .changes
                .iter()
                .map(|c| match c {
                    Change::Put(i) => i.slug.clone(),
                    Change::Remove(s) => s.clone(),
                })
                .collect();
            let mut sorted = slugs.clone();
            sorted.sort();
            assert_eq!(slugs, sorted);
            assert_eq!(slugs.len(), 12);
            assert_eq!(
                all.changes.iter().filter(|c| matches!(c, Change::Remove(_))).count(),
                4
            );
        }

        #[tokio::test]
        async fn a_write_of_more_shows_than_an_entry_holds_is_logged_whole() {
            let f = fixture().await;
            f.store.upsert(many("first", 1, 1), &OPERATOR).await.unwrap();
            let since = position(&f.store).await;
            f.store.upsert(many("w", 1500, 1), &OPERATOR).await.unwrap();
            let mut seen = list(&f.store).await;
            seen.retain(|s, _| !s.starts_with("show/w"));
            let (_, answers) = follow(&f.store, &mut seen, since, 1000).await.unwrap();
            assert_eq!(answers, 2, "1500 changes in pages of 1000");
            assert_eq!(seen, list(&f.store).await);
            assert_eq!(seen.len(), 1000, "two in three are listed");
        }

        #[tokio::test]
        async fn a_cursor_of_another_store_or_ahead_of_the_record_is_refused() {
            let (a, b) = (fixture().await, fixture().await);
            a.store.upsert(many("a", 2, 1), &OPERATOR).await.unwrap();
            b.store.upsert(many("b", 2, 1), &OPERATOR).await.unwrap();
            let mut theirs = position(&a.store).await;
            theirs.version = 0;
            let ours = position(&b.store).await;
            assert_ne!(theirs.log, ours.log, "each store has its own log id");
            assert!(matches!(
                changes_since(b.store.as_ref(), theirs, 10, SystemTime::now()).await,
                Err(FeedError::Expired)
            ));
            let mut ahead = ours;
            ahead.version += 1_000_000;
            assert!(matches!(
                changes_since(b.store.as_ref(), ahead, 10, SystemTime::now()).await,
                Err(FeedError::Future)
            ));
        }

        #[tokio::test]
        async fn a_cursor_older_than_the_retention_is_expired() {
            let f = fixture_retained(Duration::from_millis(1)).await;
            f.store.upsert(many("r", 3, 1), &OPERATOR).await.unwrap();
            let since = position(&f.store).await;
            f.store.upsert(many("s", 3, 1), &OPERATOR).await.unwrap();
            let top = position(&f.store).await;
            // Past the retention (DynamoDB's `expiresAt` is in whole seconds).
            tokio::time::sleep(Duration::from_millis(2100)).await;
            assert!(matches!(
                changes_since(f.store.as_ref(), since, 10, SystemTime::now()).await,
                Err(FeedError::Expired)
            ));
            // A cursor at the top has nothing to miss.
            let feed = changes_since(f.store.as_ref(), top, 10, SystemTime::now())
                .await
                .unwrap();
            assert!(feed.changes.is_empty());
            assert_eq!(feed.next, top);
        }

        #[tokio::test]
        async fn the_list_at_a_cursor_plus_the_changes_since_is_the_list_now() {
            let f = fixture().await;
            let cases: u64 = std::env::var("SHOW_TEST_CHANGE_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(20);
            // A first write so the log has an id.
            f.store.upsert(many("zz", 1, 1), &OPERATOR).await.unwrap();
            for case in 0..cases {
                let mut rng = fastrand::Rng::with_seed(case);
                let mut marks = vec![(position(&f.store).await, list(&f.store).await)];
                for _ in 0..10 {
                    if rng.u8(0..4) == 0 {
                        let slug = format!("show/q{}", rng.u8(0..8));
                        f.store
                            .delete(&Slug::parse(&slug).unwrap(), &OPERATOR)
                            .await
                            .unwrap();
                    } else {
                        let mut slugs: Vec<u8> = (0..8).collect();
                        rng.shuffle(&mut slugs);
                        let feed = slugs[..rng.usize(1..5)]
                            .iter()
                            .map(|i| {
                                show(json!({
                                    "slug": format!("show/q{i}"),
                                    "title": format!("Q{i} v{}", rng.u32(..)),
                                    "drm": rng.u8(0..4) != 0,
                                    "episodeCount": rng.u32(0..4),
                                    "image": {"showImage": format!("https://i.example/{}", rng.u8(..))},
                                }))
                            })
                            .collect();
                        f.store.upsert(feed, &OPERATOR).await.unwrap();
                    }
                    marks.push((position(&f.store).await, list(&f.store).await));
                }
                let now = list(&f.store).await;
                let top = position(&f.store).await;
                for (i, (since, at)) in marks.into_iter().enumerate() {
                    let mut applied = at;
                    let limit = rng.usize(1..6);
                    let (next, _) = follow(&f.store, &mut applied, since, limit).await.unwrap();
                    assert_eq!(applied, now, "case {case}, mark {i}, limit {limit}");
                    assert_eq!(next, top, "case {case}, mark {i}");
                }
            }
        }
    };
}
