//! Figures for the DynamoDB store against dynalite, all in one run (not a test):
//!
//! - `POST /v1/shows` of a 1000-show feed through the real router (each run on a new
//!   table): wall time and DynamoDB write calls;
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
    let mut by_operation = BTreeMap::new();
    for (key, _, _, value) in counters.snapshot().into_vec() {
        let key = key.key();
        if let ("store_calls_total", DebugValue::Counter(n)) = (key.name(), value)
            && let Some(op) = key.labels().find(|l| l.key() == "operation")
        {
            *by_operation.entry(op.value().to_string()).or_default() += n;
        }
    }
    by_operation
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

    // 1. POST of a 1000-show feed through the router, each run on a new table.
    let body = serde_json::to_vec(&feed("b", SHOWS)).unwrap();
    let mut times = Vec::new();
    let mut batches = Vec::new();
    let mut bumps = Vec::new();
    for _ in 0..runs {
        let (app, _, token) = app(settings(&emulator, &unique_table("bench-post"), 1000)).await;
        calls(&counters);
        let started = Instant::now();
        assert_eq!(
            call(&app, &token, Method::POST, Some(&body)).await,
            StatusCode::CREATED
        );
        times.push(started.elapsed());
        let made = calls(&counters);
        batches.push(of(&made, "BatchWriteItem"));
        bumps.push(of(&made, "UpdateItem"));
    }
    println!(
        "POST /v1/shows, {SHOWS} shows ({} KB): median {} (runs: {}); BatchWriteItem calls per feed: {batches:?} \
         (and the change record's UpdateItem: {bumps:?})",
        body.len() / 1024,
        ms(median(times.clone())),
        times.iter().map(|t| ms(*t)).collect::<Vec<_>>().join(", ")
    );

    // 2. Baseline: 1000 sequential PutItem calls (the Go service's way), new table each run.
    let shows = show_service::domain::Feed::parse(&body).unwrap().shows;
    let items: Vec<_> = shows
        .iter()
        .map(show_service::store::dynamodb::item::to_item)
        .collect();
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
