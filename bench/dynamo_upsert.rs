//! Figures for the DynamoDB store against dynalite, all in one run (not a test):
//!
//! - `POST /v1/shows` of a 1000-show feed of new slugs through the real router (each run
//!   on a new table): wall time, DynamoDB calls by operation, read and write units (the
//!   emulator's capacity accounting); and the same feed written as the store did before
//!   shows had owners (main at 69eae05: the change record's bump and log entry, 40
//!   `BatchWriteItem` of 25, bump and entry again), made here with those same calls since
//!   the store no longer has that path: both in one run, on the same emulator;
//! - a partner's `DELETE` of one of its shows, and an admin's assignment of the 1000
//!   shows to another partner: calls and units;
//! - the same 1000 shows as 1000 sequential `PutItem` calls (the Go service's way);
//! - the catalogue of 1000 eligible shows read from the store, cold (no cache);
//! - `GET /v1/shows` through the router: requests/s cold (cache TTL 0) and warm (cached).
//!
//! Run: `scripts/install-test-tools.sh && cargo run --example dynamo_upsert`
//! (add `--release` for optimized figures; `-- --runs N` to change the repetitions).
//! Requests go through `tower::ServiceExt::oneshot` (no socket), so the GET figures are
//! the service's own cost plus the emulator's, not the network's. DynamoDB calls are
//! counted from the `store_calls_total` counter the store emits, caught by a
//! `DebuggingRecorder` installed as this program's global recorder (the feed is written
//! by a task of its own, on any of the runtime's threads).

#![allow(clippy::unwrap_used)] // a benchmark: a panic is a failed run

#[path = "../tests/support/mod.rs"]
mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::{Value, json};
use show_service::config::Settings;
use show_service::store::PageRequest;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::dynalite::{Dynalite, unique_table};
use tower::ServiceExt;

/// Writes as an operator: may change any show (ownership has tests of its own).
static OPERATOR: std::sync::LazyLock<show_service::domain::Actor> =
    std::sync::LazyLock::new(|| show_service::domain::Actor::operator("test"));

const SHOWS: usize = 1000;

/// A feed of `n` shows, every one eligible, shaped like a partner's (description,
/// seasons, next episode, image).
fn feed(prefix: &str, n: usize) -> Value {
    let payload: Vec<Value> = (0..n)
        .map(|i| {
            let handle = format!("{prefix}{i:05}");
            json!({
                "slug": format!("show/{handle}"),
                "title": format!("Show {i} — Épisode spécial"),
                "country": "UK", "genre": "Reality", "language": "English", "tvChannel": "GEM",
                "primaryColour": "#df0000",
                "description": "lorem ipsum ".repeat(20),
                "drm": true,
                "episodeCount": i % 60 + 1,
                "image": {"showImage": format!("http://img.example.com/shows/{handle}.jpg")},
                "seasons": [{"slug": format!("show/{handle}/season/1")},
                            {"slug": format!("show/{handle}/season/2")}],
                "nextEpisode": {"channel": null, "channelLogo": "http://img.example.com/logo.gif",
                                "date": null, "html": "<br>", "url": format!("http://www.example.com/{handle}")},
            })
        })
        .collect();
    json!({"payload": payload, "skip": 0, "take": n, "totalRecords": n})
}

fn settings(emulator: &Dynalite, table: &str, cache_ttl_ms: u64) -> Settings {
    Settings::load(
        None,
        [
            ("APP_ENV", "local".to_string()),
            ("APP__STORE__KIND", "dynamodb".into()),
            ("APP__DYNAMODB__ENDPOINTOVERRIDE", emulator.endpoint()),
            ("APP__DYNAMODB__SHOWSTABLE", table.into()),
            ("APP__CACHE__TTLMS", cache_ttl_ms.to_string()),
            ("APP__AUTH__MODE", "local".into()),
            (
                "APP__STORE__PATH",
                std::env::temp_dir()
                    .join("show-bench/shows.db")
                    .display()
                    .to_string(),
            ),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap()
}

/// The router on `settings`' table (created), its store, and a token.
async fn app(settings: Settings) -> (axum::Router, show_service::store::DynStore, String) {
    show_service::store::create_table(&settings).await.unwrap();
    let store = show_service::store::open(&settings).await.unwrap();
    let auth = show_service::auth::Auth::from_settings(&settings)
        .await
        .unwrap();
    let token = show_service::auth::mint_for_cli(&settings, "local-client", &[])
        .await
        .unwrap();
    let state = show_service::http::AppState::new(settings, store.clone(), auth);
    (show_service::http::router(state), store, token)
}

async fn call(app: &axum::Router, token: &str, method: Method, body: Option<&[u8]>) -> StatusCode {
    let mut req = Request::builder()
        .method(method)
        .uri("/v1/shows")
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_vec())))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let _ = res.into_body().collect().await.unwrap();
    status
}

/// DynamoDB calls by operation (`store_calls_total`, every outcome) since the previous
/// reading: a snapshot resets the recorder's counters.
fn calls(counters: &Snapshotter) -> BTreeMap<String, u64> {
    reading(counters).calls
}

/// What the store counted since the previous reading: calls by operation, and the read
/// and write units DynamoDB reported (`store_consumed_*_units_total`, whole units).
#[derive(Default)]
struct Reading {
    calls: BTreeMap<String, u64>,
    read_units: u64,
    write_units: u64,
}

impl Reading {
    fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    fn show(&self) -> String {
        let by_op: Vec<String> = self
            .calls
            .iter()
            .map(|(op, n)| format!("{n} {op}"))
            .collect();
        format!(
            "{} calls ({}), {} read units, {} write units",
            self.total_calls(),
            by_op.join(", "),
            self.read_units,
            self.write_units
        )
    }
}

fn reading(counters: &Snapshotter) -> Reading {
    let mut r = Reading::default();
    for (key, _, _, value) in counters.snapshot().into_vec() {
        let key = key.key();
        let DebugValue::Counter(n) = value else {
            continue;
        };
        match key.name() {
            "store_calls_total" => {
                if let Some(op) = key.labels().find(|l| l.key() == "operation")
                    && n > 0
                {
                    *r.calls.entry(op.value().to_string()).or_default() += n;
                }
            }
            "store_consumed_read_units_total" => r.read_units += n,
            "store_consumed_write_units_total" => r.write_units += n,
            _ => {}
        }
    }
    r
}

/// Writes `items` as the store did before ownership (main at 69eae05): the change
/// record's bump and log entry, `BatchWriteItem`s of 25 (all processed on an idle
/// emulator), then bump and entry again. Returns the batches' calls and write units (the
/// change record's are counted by the store's own counters).
async fn write_as_before(
    store: &show_service::store::dynamodb::DynamoStore,
    items: &[std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>],
) -> (u64, f64) {
    use aws_sdk_dynamodb::types::{PutRequest, ReturnConsumedCapacity, WriteRequest};
    use show_service::store::dynamodb::changes;
    let (client, table) = (store.client(), store.table());
    let slugs: Vec<String> = items
        .iter()
        .filter_map(|i| show_service::store::dynamodb::item::slug_of(i).map(str::to_string))
        .collect();
    let until = std::time::SystemTime::now() + Duration::from_secs(10);
    let bumped = changes::bump(client, table, until, None).await.unwrap();
    let retention = show_service::config::ChangesSettings::default().retention;
    let announced = bumped.version;
    let open = changes::EntryKind::Open { until };
    changes::put(
        client,
        table,
        bumped.version.unwrap(),
        slugs.clone(),
        open,
        retention,
    )
    .await
    .unwrap();
    let (mut calls, mut units) = (0, 0.0);
    for chunk in items.chunks(25) {
        let requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let out = client
            .batch_write_item()
            .request_items(table, requests)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .unwrap();
        assert!(
            out.unprocessed_items().is_none_or(|u| u.is_empty()),
            "the emulator processed every put"
        );
        calls += 1;
        units += out
            .consumed_capacity()
            .iter()
            .filter_map(|c| c.capacity_units())
            .sum::<f64>();
    }
    let closing = std::time::SystemTime::now() + Duration::from_secs(2);
    let bumped = changes::bump(client, table, closing, bumped.until)
        .await
        .unwrap();
    let close = changes::EntryKind::Close { announced };
    changes::put(
        client,
        table,
        bumped.version.unwrap(),
        slugs,
        close,
        retention,
    )
    .await
    .unwrap();
    (calls, units)
}

fn of(calls: &BTreeMap<String, u64>, operation: &str) -> u64 {
    calls.get(operation).copied().unwrap_or(0)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .map(|n| n.parse().expect("--runs N"))
        .unwrap_or(3);
    let recorder = DebuggingRecorder::new();
    let counters = recorder.snapshotter();
    recorder.install().expect("the only metrics recorder");
    let emulator = Dynalite::start(None);
    let profile = if cfg!(debug_assertions) {
        "dev (unoptimized)"
    } else {
        "release"
    };
    println!(
        "dynalite on {}; {profile} build; {runs} runs each\n",
        emulator.endpoint()
    );

    // 1. POST of a 1000-show feed of new slugs through the router, each run on a new
    // table; the same feed as the store wrote it before ownership; then a delete and an
    // assignment on the last table.
    let body = serde_json::to_vec(&feed("b", SHOWS)).unwrap();
    let shows = show_service::domain::Feed::parse(&body).unwrap().shows;
    let items: Vec<_> = shows
        .iter()
        .map(show_service::store::dynamodb::item::to_item)
        .collect();
    let mut times = Vec::new();
    let mut last = None;
    let mut readings = Vec::new();
    for _ in 0..runs {
        let (app, store, token) = app(settings(&emulator, &unique_table("bench-post"), 1000)).await;
        calls(&counters);
        let started = Instant::now();
        assert_eq!(
            call(&app, &token, Method::POST, Some(&body)).await,
            StatusCode::CREATED
        );
        times.push(started.elapsed());
        readings.push(reading(&counters));
        last = Some(store);
    }
    println!(
        "POST /v1/shows, {SHOWS} new shows ({} KB): median {} (runs: {})",
        body.len() / 1024,
        ms(median(times.clone())),
        times.iter().map(|t| ms(*t)).collect::<Vec<_>>().join(", ")
    );
    for (i, r) in readings.iter().enumerate() {
        println!("  after (owners): feed {}: {}", i + 1, r.show());
    }
    for i in 0..runs {
        let settings =
            support::dynamo_settings(&emulator.endpoint(), &unique_table("bench-before"));
        let store = show_service::store::dynamodb::DynamoStore::connect(&settings)
            .await
            .unwrap();
        store.ensure_table(Duration::from_secs(10)).await.unwrap();
        calls(&counters);
        let (batches, batch_units) = write_as_before(&store, &items).await;
        let change = reading(&counters);
        println!(
            "  before (main at 69eae05): feed {}: {} calls ({batches} BatchWriteItem, {}), {} write units ({batch_units} of them the batches')",
            i + 1,
            batches + change.total_calls(),
            change
                .calls
                .iter()
                .map(|(op, n)| format!("{n} {op}"))
                .collect::<Vec<_>>()
                .join(", "),
            batch_units as u64 + change.write_units
        );
    }
    let store = last.unwrap();
    let owner = show_service::domain::Actor {
        client: "local-client".into(),
        partner: Some(show_service::domain::Partner::parse("local-client").unwrap()),
        admin: false,
    };
    calls(&counters);
    let slug = shows[0].slug.clone();
    assert!(store.delete(&slug, &owner).await.unwrap());
    println!(
        "DELETE of one show by its owner: {}",
        reading(&counters).show()
    );
    let slugs: Vec<_> = shows[1..].iter().map(|s| s.slug.clone()).collect();
    let globex = show_service::domain::Partner::parse("globex").unwrap();
    let admin = show_service::domain::Actor {
        client: "platform-client".into(),
        partner: Some(show_service::domain::Partner::parse("platform").unwrap()),
        admin: true,
    };
    calls(&counters);
    let done = store.assign_owner(&globex, &slugs, &admin).await.unwrap();
    assert_eq!(done.assigned.len(), SHOWS - 1);
    println!(
        "assignment of {} shows to another partner: {}",
        SHOWS - 1,
        reading(&counters).show()
    );
    let refused = store
        .upsert(shows[1..2].to_vec(), &owner)
        .await
        .expect_err("no longer its show");
    println!("  (its former owner's write of one of them is now refused: {refused})");

    // 2. Baseline: 1000 sequential PutItem calls (the Go service's way), new table each run.
    let mut times = Vec::new();
    for _ in 0..runs {
        let settings = support::dynamo_settings(&emulator.endpoint(), &unique_table("bench-put"));
        let store = show_service::store::dynamodb::DynamoStore::connect(&settings)
            .await
            .unwrap();
        store.ensure_table(Duration::from_secs(10)).await.unwrap();
        let started = Instant::now();
        for item in &items {
            store
                .client()
                .put_item()
                .table_name(store.table())
                .set_item(Some(item.clone()))
                .send()
                .await
                .unwrap();
        }
        times.push(started.elapsed());
    }
    println!(
        "baseline, {SHOWS} sequential PutItem: median {} (runs: {}); PutItem calls: {SHOWS}",
        ms(median(times.clone())),
        times.iter().map(|t| ms(*t)).collect::<Vec<_>>().join(", ")
    );

    // 3. The catalogue of 1000 eligible shows from the store (no HTTP cache).
    let (_, store, _) = app(settings(&emulator, &unique_table("bench-list"), 0)).await;
    store.upsert(shows.clone(), &OPERATOR).await.unwrap();
    let mut times = Vec::new();
    let mut pages = Vec::new();
    for _ in 0..runs.max(5) {
        calls(&counters);
        let started = Instant::now();
        let page = store.list_eligible(PageRequest::default()).await.unwrap();
        times.push(started.elapsed());
        pages.push(of(&calls(&counters), "Query"));
        assert_eq!(page.items.len(), SHOWS);
    }
    println!(
        "list of {SHOWS} eligible shows from DynamoDB (store, cold): median {}; Query calls: {pages:?}",
        ms(median(times))
    );

    // 4. GET /v1/shows through the router: cold (TTL 0: every request queries) and warm.
    for (label, ttl, n) in [
        ("cold (cache TTL 0)", 0, 30),
        ("warm (cached)", 60_000, 3000),
    ] {
        let table = unique_table("bench-get");
        let (app, store, token) = app(settings(&emulator, &table, ttl)).await;
        store.upsert(shows.clone(), &OPERATOR).await.unwrap();
        assert_eq!(call(&app, &token, Method::GET, None).await, StatusCode::OK);
        calls(&counters);
        let started = Instant::now();
        for _ in 0..n {
            assert_eq!(call(&app, &token, Method::GET, None).await, StatusCode::OK);
        }
        let took = started.elapsed();
        let made = calls(&counters);
        println!(
            "GET /v1/shows with {SHOWS} eligible, {label}: {:.0} requests/s ({n} sequential requests in {}; \
             {} Query calls, {} GetItem calls of the change record)",
            n as f64 / took.as_secs_f64(),
            ms(took),
            of(&made, "Query"),
            of(&made, "GetItem"),
        );
    }
}
