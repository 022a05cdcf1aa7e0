//! The store contract: one suite, written once, run against every `ShowStore`.
//!
//! `contract_tests!(make)` expands to one test per rule; `make` is an async block giving
//! a fresh, empty store and a guard that keeps its resources (a temp dir, an emulator
//! table) alive for the test. Store calls are counted from the `store_calls_total`
//! counter the stores emit in production ([`write_calls`]).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

mod support;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::{Value, json};
use show_service::domain::{Feed, Show};
use show_service::store::{DynStore, ListItem, PageRequest};
use std::collections::BTreeSet;
use std::num::NonZeroU32;

/// Writes as an operator: may change any show (ownership has tests of its own).
static OPERATOR: std::sync::LazyLock<show_service::domain::Actor> =
    std::sync::LazyLock::new(|| show_service::domain::Actor::operator("test"));

/// A test store and whatever must outlive it.
pub struct Fixture {
    pub store: DynStore,
    pub _guard: Box<dyn std::any::Any + Send>,
}

pub fn show(v: Value) -> Show {
    let mut problems = Vec::new();
    Show::from_json(&v, "t", &mut problems).unwrap_or_else(|| panic!("{problems:?}"))
}

pub fn sample_feed() -> Vec<Show> {
    Feed::parse(include_bytes!("fixtures/feed-12.json"))
        .expect("sample feed")
        .shows
}

pub fn sample_expected() -> BTreeSet<(String, String, String)> {
    let v: Value =
        serde_json::from_slice(include_bytes!("fixtures/feed-12.expected.json")).unwrap();
    v["response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["slug"].as_str().unwrap().to_string(),
                i["title"].as_str().unwrap().to_string(),
                i["image"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn as_set(items: &[ListItem]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|i| (i.slug.clone(), i.title.clone(), i.image.clone()))
        .collect()
}

/// `n` shows; show `i` is eligible when `i % 3 != 0`; descriptions of `desc` characters.
pub fn many(prefix: &str, n: usize, desc: usize) -> Vec<Show> {
    (0..n)
        .map(|i| {
            show(json!({
                "slug": format!("show/{prefix}{i:05}"),
                "title": format!("Show {i} ✓"),
                "description": "d".repeat(desc),
                "drm": i % 3 != 0,
                "episodeCount": (i % 40) + 1,
                "image": {"showImage": format!("http://img.example.com/{i}.jpg")},
            }))
        })
        .collect()
}

pub async fn upsert_all(store: &DynStore, shows: Vec<Show>) {
    let mut shows = shows;
    while !shows.is_empty() {
        let rest = shows.split_off(shows.len().min(1000));
        store.upsert(shows, &OPERATOR).await.expect("upsert");
        shows = rest;
    }
}

/// The write calls (`store_calls_total`, every outcome) that `recorder` caught from a
/// store of `kind`: SQLite's `upsert` transactions, DynamoDB's `TransactWriteItems` calls
/// (the change record's `UpdateItem` is not a write of shows).
///
/// Set `recorder` as the thread's local one around the calls to count: a `#[tokio::test]`
/// runs the test and what it spawns on that one thread (current-thread runtime).
pub fn write_calls(recorder: &DebuggingRecorder, kind: &str) -> u64 {
    let operation = match kind {
        "dynamodb" => "TransactWriteItems",
        _ => "upsert",
    };
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            let key = key.key();
            let has = |name: &str, value: &str| {
                key.labels().any(|l| l.key() == name && l.value() == value)
            };
            key.name() == "store_calls_total" && has("store", kind) && has("operation", operation)
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            other => panic!("store_calls_total is a counter: {other:?}"),
        })
        .sum()
}

/// Every page of the catalogue with `limit`, checking each page's size.
pub async fn walk(store: &DynStore, limit: u32) -> Vec<ListItem> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..100_000 {
        let page = store
            .list_eligible(PageRequest {
                limit: NonZeroU32::new(limit),
                cursor: cursor.take(),
            })
            .await
            .expect("page");
        assert!(page.items.len() <= limit as usize);
        out.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
    panic!("paging never ended");
}

#[macro_export]
macro_rules! contract_tests {
    ($make:expr, $retained:expr) => {
        use $crate::*;
        use serde_json::json;
        use show_service::domain::Slug;
        use show_service::store::{PageRequest, StoreError};
        use std::collections::BTreeSet;

        async fn fixture() -> Fixture {
            $make.await
        }

        /// A fixture whose change log keeps entries `retention`.
        async fn fixture_retained(retention: std::time::Duration) -> Fixture {
            ($retained)(retention).await
        }

        #[tokio::test]
        async fn an_empty_store_lists_nothing_and_answers_pings() {
            let f = fixture().await;
            f.store.ping().await.expect("ping");
            let page = f.store.list_eligible(PageRequest::default()).await.unwrap();
            assert!(page.items.is_empty() && page.next.is_none());
        }

        #[tokio::test]
        async fn the_sample_feed_lists_exactly_the_drm_shows_with_episodes() {
            let f = fixture().await;
            assert_eq!(f.store.upsert(sample_feed(), &OPERATOR).await.unwrap(), 12);
            let page = f.store.list_eligible(PageRequest::default()).await.unwrap();
            assert_eq!(as_set(&page.items), sample_expected());
            assert_eq!(page.items.len(), sample_expected().len(), "no duplicates");
            assert!(page.next.is_none());
        }

        #[tokio::test]
        async fn a_show_reads_back_whole() {
            let f = fixture().await;
            let shows = sample_feed();
            f.store.upsert(shows.clone(), &OPERATOR).await.unwrap();
            for s in &shows {
                let got = f.store.get(&s.slug).await.unwrap().expect("stored").show;
                assert_eq!(&got, s);
            }
            let absent = Slug::parse("show/absent").unwrap();
            assert!(f.store.get(&absent).await.unwrap().is_none());
        }

        #[tokio::test]
        async fn upsert_replaces_and_is_idempotent() {
            let f = fixture().await;
            let v1 = show(json!({"slug": "show/a", "title": "One", "drm": true, "episodeCount": 2}));
            f.store.upsert(vec![v1.clone()], &OPERATOR).await.unwrap();
            f.store.upsert(vec![v1.clone()], &OPERATOR).await.unwrap();
            let v2 = show(json!({"slug": "show/a", "title": "Two", "drm": true, "episodeCount": 3,
                                 "image": {"showImage": "https://i.example/a.png"}}));
            f.store.upsert(vec![v2.clone()], &OPERATOR).await.unwrap();
            assert_eq!(f.store.get(&v2.slug).await.unwrap().map(|s| s.show), Some(v2));
            let page = f.store.list_eligible(PageRequest::default()).await.unwrap();
            assert_eq!(page.items.len(), 1);
            assert_eq!(page.items[0].title, "Two");
            assert_eq!(page.items[0].image, "https://i.example/a.png");
        }

        #[tokio::test]
        async fn a_show_that_loses_drm_or_episodes_leaves_the_catalogue() {
            let f = fixture().await;
            let on = show(json!({"slug": "show/a", "title": "A", "drm": true, "episodeCount": 2}));
            let on2 = show(json!({"slug": "show/b", "title": "B", "drm": true, "episodeCount": 2}));
            f.store.upsert(vec![on, on2], &OPERATOR).await.unwrap();
            let off = show(json!({"slug": "show/a", "title": "A", "drm": false, "episodeCount": 2}));
            let none = show(json!({"slug": "show/b", "title": "B", "drm": true, "episodeCount": 0}));
            f.store.upsert(vec![off, none], &OPERATOR).await.unwrap();
            let page = f.store.list_eligible(PageRequest::default()).await.unwrap();
            assert!(page.items.is_empty(), "{:?}", page.items);
        }

        #[tokio::test]
        async fn titles_pass_through_byte_for_byte() {
            let f = fixture().await;
            let titles = ["Épisode spécial — «Ça»", "日本のテレビ", "emoji 📺 \u{200d} x", "tab\there \"quoted\" \\ back"];
            let shows: Vec<_> = titles
                .iter()
                .enumerate()
                .map(|(i, t)| show(json!({"slug": format!("show/t{i}"), "title": t, "drm": true, "episodeCount": 1})))
                .collect();
            f.store.upsert(shows, &OPERATOR).await.unwrap();
            let page = f.store.list_eligible(PageRequest::default()).await.unwrap();
            let got: BTreeSet<String> = page.items.iter().map(|i| i.title.clone()).collect();
            let want: BTreeSet<String> = titles.iter().map(|t| t.to_string()).collect();
            assert_eq!(got, want);
        }

        #[tokio::test]
        async fn the_catalogue_is_complete_beyond_one_store_page() {
            let f = fixture().await;
            // ~1,600 eligible shows of ~700 bytes: more than DynamoDB's 1 MB query page.
            let shows = many("big", 2400, 500);
            let want: BTreeSet<String> = shows
                .iter()
                .filter(|s| s.is_eligible())
                .map(|s| s.slug.to_string())
                .collect();
            upsert_all(&f.store, shows).await;
            let page = f.store.list_eligible(PageRequest::default()).await.unwrap();
            let got: BTreeSet<String> = page.items.iter().map(|i| i.slug.clone()).collect();
            assert_eq!(page.items.len(), want.len(), "no duplicates, none missing");
            assert_eq!(got, want);
        }

        #[tokio::test]
        async fn paging_visits_every_show_once_in_index_order() {
            let f = fixture().await;
            let shows = many("pg", 100, 10);
            let want: BTreeSet<String> = shows
                .iter()
                .filter(|s| s.is_eligible())
                .map(|s| s.slug.to_string())
                .collect();
            f.store.upsert(shows.clone(), &OPERATOR).await.unwrap();
            for limit in [1, 7, 66, 67, 1000] {
                let items = walk(&f.store, limit).await;
                let got: BTreeSet<String> = items.iter().map(|i| i.slug.clone()).collect();
                assert_eq!(items.len(), want.len(), "limit {limit}: no duplicates");
                assert_eq!(got, want, "limit {limit}");
                let counts: Vec<u32> = items
                    .iter()
                    .map(|i| {
                        shows
                            .iter()
                            .find(|s| s.slug.as_str() == i.slug)
                            .and_then(|s| s.episode_count)
                            .unwrap()
                    })
                    .collect();
                assert!(counts.windows(2).all(|w| w[0] <= w[1]), "limit {limit}: ordered by episodeCount");
            }
        }

        #[tokio::test]
        async fn a_forged_cursor_is_refused() {
            let f = fixture().await;
            f.store.upsert(many("fc", 10, 1), &OPERATOR).await.unwrap();
            for forged in ["", "x", "!!!!", "eyJzbHVnIjoxfQ", "djE6MTpzaG93L2E", &"A".repeat(5000)] {
                let res = f
                    .store
                    .list_eligible(PageRequest {
                        limit: std::num::NonZeroU32::new(2),
                        cursor: Some(forged.to_string()),
                    })
                    .await;
                // A cursor either decodes to a valid position or is refused; never a 500.
                match res {
                    Err(StoreError::BadCursor) | Ok(_) => {}
                    Err(other) => panic!("{forged:?}: {other:?}"),
                }
            }
            let res = f
                .store
                .list_eligible(PageRequest { limit: None, cursor: Some("not a cursor".into()) })
                .await;
            assert!(matches!(res, Err(StoreError::BadCursor)), "{res:?}");
        }

        #[tokio::test]
        async fn delete_removes_and_reports_absence() {
            let f = fixture().await;
            f.store.upsert(sample_feed(), &OPERATOR).await.unwrap();
            let slug = Slug::parse("show/sample-000002").unwrap();
            assert!(f.store.delete(&slug, &OPERATOR).await.unwrap());
            assert!(!f.store.delete(&slug, &OPERATOR).await.unwrap());
            assert!(f.store.get(&slug).await.unwrap().is_none());
            let page = f.store.list_eligible(PageRequest::default()).await.unwrap();
            assert!(page.items.iter().all(|i| i.slug != "show/sample-000002"));
            assert_eq!(page.items.len(), sample_expected().len() - 1);
        }

        #[tokio::test]
        async fn every_write_changes_the_change_record_and_reads_do_not() {
            use show_service::store::ChangeRecord;
            let f = fixture().await;
            assert_eq!(f.store.change_record().await.unwrap(), ChangeRecord::Missing);
            let mut seen = Vec::new();
            let version = || async {
                match f.store.change_record().await.unwrap() {
                    ChangeRecord::Version { version, .. } => version,
                    other => panic!("{other:?}"),
                }
            };
            f.store.upsert(sample_feed(), &OPERATOR).await.unwrap();
            seen.push(version().await);
            // Reads leave it alone.
            f.store.list_eligible(PageRequest::default()).await.unwrap();
            f.store.get(&Slug::parse("show/sample-000002").unwrap()).await.unwrap();
            assert_eq!(version().await, seen[0]);
            // The same feed again is still a write.
            f.store.upsert(sample_feed(), &OPERATOR).await.unwrap();
            seen.push(version().await);
            assert!(f.store.delete(&Slug::parse("show/sample-000002").unwrap(), &OPERATOR).await.unwrap());
            seen.push(version().await);
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
            // The record is never part of the catalogue.
            let page = f.store.list_eligible(PageRequest::default()).await.unwrap();
            assert_eq!(page.items.len(), sample_expected().len() - 1);
            assert!(page.items.iter().all(|i| i.slug.starts_with("show/")));
        }

        #[tokio::test]
        async fn the_change_log_names_each_writes_shows_as_they_are_now() {
            use show_service::store::{ChangeRecord, Changes};
            let f = fixture().await;
            let version = || async {
                match f.store.change_record().await.unwrap() {
                    ChangeRecord::Version { version, .. } => version,
                    other => panic!("{other:?}"),
                }
            };
            f.store.upsert(sample_feed(), &OPERATOR).await.unwrap();
            let v1 = version().await;
            // show/x0 eligible, show/x1 not DRM, then show/x0 moved and the sample's
            // show/sample-000002 deleted.
            let x = |slug: &str, drm: bool, episodes: u32| {
                show(json!({"slug": slug, "title": format!("T {slug}"), "drm": drm,
                    "episodeCount": episodes, "image": {"showImage": "http://i.example.com/a.jpg"}}))
            };
            f.store
                .upsert(vec![x("show/x0", true, 3), x("show/x1", false, 3)], &OPERATOR)
                .await
                .unwrap();
            let v2 = version().await;
            f.store.upsert(vec![x("show/x0", true, 7)], &OPERATOR).await.unwrap();
            assert!(f.store.delete(&Slug::parse("show/sample-000002").unwrap(), &OPERATOR).await.unwrap());
            let v4 = version().await;
            assert!(v1 < v2 && v2 < v4);

            let Changes::Shows { slugs, items } = f.store.changes_since(v1, v4, 100).await.unwrap()
            else {
                panic!("every version since {v1} is logged");
            };
            assert_eq!(slugs, ["show/sample-000002", "show/x0", "show/x1"]);
            assert_eq!(items.len(), 1, "{items:?}");
            assert_eq!((items[0].slug.as_str(), items[0].episode_count), ("show/x0", 7));
            assert_eq!(items[0].title, "T show/x0");
            assert_eq!(items[0].image, "http://i.example.com/a.jpg");

            // Applied to the catalogue at v1, the log gives the catalogue at v4.
            let page = f.store.list_eligible(PageRequest::default()).await.unwrap();
            let mut expected = sample_expected();
            expected.retain(|(slug, ..)| slug != "show/sample-000002");
            expected.insert(("show/x0".into(), "T show/x0".into(), "http://i.example.com/a.jpg".into()));
            assert_eq!(as_set(&page.items), expected);

            // Only the versions asked for.
            let Changes::Shows { slugs, .. } = f.store.changes_since(v2, v4, 100).await.unwrap()
            else {
                panic!("logged");
            };
            assert_eq!(slugs, ["show/sample-000002", "show/x0"]);
            // More shows than the caller would re-read, versions never written, or nothing
            // asked: the log cannot tell.
            assert_eq!(f.store.changes_since(v1, v4, 2).await.unwrap(), Changes::Unknown);
            assert_eq!(f.store.changes_since(v4, v4 + 3, 100).await.unwrap(), Changes::Unknown);
            assert_eq!(f.store.changes_since(v4, v4, 100).await.unwrap(), Changes::Unknown);
            // The log is never part of the catalogue.
            assert!(page.items.iter().all(|i| i.slug.starts_with("show/")));
        }

        #[tokio::test]
        async fn pages_carry_each_items_episode_count() {
            let f = fixture().await;
            let shows = many("ec", 60, 1);
            f.store.upsert(shows.clone(), &OPERATOR).await.unwrap();
            let items = walk(&f.store, 9).await;
            for i in &items {
                let s = shows.iter().find(|s| s.slug.as_str() == i.slug).unwrap();
                assert_eq!(Some(i.episode_count), s.episode_count, "{}", i.slug);
            }
            // Ordered by episodeCount; among equal counts the index's own order (DynamoDB
            // does not sort those by slug; the cached snapshot does).
            assert!(items.windows(2).all(|w| w[0].episode_count <= w[1].episode_count));
            assert_eq!(items.len(), shows.iter().filter(|s| s.is_eligible()).count());
        }

        #[tokio::test]
        async fn a_thousand_shows_are_written_in_one_call() {
            let f = fixture().await;
            let recorder = metrics_util::debugging::DebuggingRecorder::new();
            let counting = metrics::set_default_local_recorder(&recorder);
            assert_eq!(f.store.upsert(many("k", 1000, 50), &OPERATOR).await.unwrap(), 1000);
            drop(counting);
            let calls = write_calls(&recorder, f.store.kind());
            // SQLite: one transaction; DynamoDB: transactions of 100.
            assert!(calls <= 10, "{calls} write calls for 1000 shows");
            assert!(calls >= 1);
        }

        $crate::ownership_tests!();
        $crate::changes_tests!();
    };
}

/// The ownership cases of the contract (partners, admins, the race between two partners).
#[path = "store_contract/ownership.rs"]
mod ownership;

/// The change feed's cases of the contract (paging, expiry, the list-plus-changes property).
#[path = "store_contract/changes.rs"]
mod changes;

mod sqlite {
    use show_service::store::sqlite::SqliteStore;
    use std::sync::Arc;

    async fn make(retention: std::time::Duration) -> crate::Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("shows.db"))
            .expect("open")
            .with_retention(retention);
        crate::Fixture {
            store: Arc::new(store),
            _guard: Box::new(dir),
        }
    }

    contract_tests!(make(std::time::Duration::from_secs(3600)), make);
}

/// The same suite on DynamoDB: dynalite (one per test binary), a new table per test; or
/// the emulator at `SHOW_TEST_DYNAMODB_ENDPOINT` when set (e.g. moto, whose transactions
/// are the reference the dynalite ones are checked against).
mod dynamodb {
    use crate::support;
    use std::sync::Arc;

    async fn make(retention: std::time::Duration) -> crate::Fixture {
        let store = support::fresh_store_on(&support::emulator_endpoint(), "contract")
            .await
            .with_retention(retention);
        crate::Fixture {
            store: Arc::new(store),
            _guard: Box::new(()),
        }
    }

    contract_tests!(make(std::time::Duration::from_secs(3600)), make);
}
