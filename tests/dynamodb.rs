//! The DynamoDB store against a real emulator (dynalite, see `support/dynalite.rs`):
//! `table create`, the item layout both ways with the Go service's items, paging through
//! the index, missing tables and indexes, timeouts, and an outage of the emulator under
//! the real HTTP router (503 with Retry-After, then recovery without a restart).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

mod support;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use show_service::config::Settings;
use show_service::domain::{Show, Slug};
use show_service::store::dynamodb::DynamoStore;
use show_service::store::{PageRequest, ShowStore, StoreError};
use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};
use support::dynalite::{Dynalite, unique_table};
use support::{dynamo_settings, fresh_store};
use tower::ServiceExt;

/// Writes as an operator: may change any show (ownership has tests of its own).
static OPERATOR: std::sync::LazyLock<show_service::domain::Actor> =
    std::sync::LazyLock::new(|| show_service::domain::Actor::operator("test"));

fn show(v: Value) -> Show {
    let mut problems = Vec::new();
    Show::from_json(&v, "t", &mut problems).unwrap_or_else(|| panic!("{problems:?}"))
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

fn attrs(v: Value) -> HashMap<String, AttributeValue> {
    fn attr(v: &Value) -> AttributeValue {
        let (kind, inner) = v.as_object().unwrap().iter().next().unwrap();
        match kind.as_str() {
            "S" => AttributeValue::S(inner.as_str().unwrap().into()),
            "N" => AttributeValue::N(inner.as_str().unwrap().into()),
            "BOOL" => AttributeValue::Bool(inner.as_bool().unwrap()),
            "NULL" => AttributeValue::Null(true),
            "M" => AttributeValue::M(attrs(inner.clone())),
            "L" => AttributeValue::L(inner.as_array().unwrap().iter().map(attr).collect()),
            other => panic!("{other}"),
        }
    }
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), attr(v)))
        .collect()
}

// ---------------------------------------------------------------- table create

fn cli(emulator: &Dynalite, table: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_show-service"))
        .args(["table", "create"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_ENV", "local")
        .env("APP__STORE__KIND", "dynamodb")
        .env("APP__DYNAMODB__ENDPOINTOVERRIDE", emulator.endpoint())
        .env("APP__DYNAMODB__SHOWSTABLE", table)
        .env("APP__LOG__FORMAT", "text")
        .output()
        .unwrap()
}

#[tokio::test]
async fn table_create_makes_the_table_and_index_once_then_is_a_no_op() {
    let emulator = Dynalite::shared();
    let table = unique_table("cli");

    let first = cli(emulator, &table);
    let text = String::from_utf8_lossy(&first.stdout).to_string()
        + &String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{text}");
    assert!(text.contains(&format!("created table {table}")), "{text}");

    let again = cli(emulator, &table);
    let text = String::from_utf8_lossy(&again.stdout).to_string()
        + &String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{text}");
    assert!(text.contains("already exist"), "{text}");

    let store = DynamoStore::connect(&dynamo_settings(&emulator.endpoint(), &table))
        .await
        .unwrap();
    let desc = store
        .client()
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert!(show_service::store::dynamodb::table::check_schema(&desc, "gsi_drm_episode").unwrap());
    assert_eq!(
        desc.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    store.ping().await.expect("ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_create_waits_for_a_dynamodb_that_is_still_starting() {
    // An emulator that is down for now, on a port that it will come back on.
    let mut emulator = Dynalite::start(None);
    emulator.stop();
    let settings = dynamo_settings(&emulator.endpoint(), &unique_table("late"));
    let store = DynamoStore::connect(&settings).await.unwrap();
    let create = tokio::spawn(async move { store.ensure_table(Duration::from_secs(20)).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!create.is_finished(), "waits instead of failing");
    let emulator = tokio::task::spawn_blocking(move || {
        emulator.restart();
        emulator
    })
    .await
    .unwrap();
    let outcome = create.await.unwrap().unwrap();
    assert_eq!(
        outcome,
        show_service::store::dynamodb::table::Outcome::Created
    );
    drop(emulator);
}

// ---------------------------------------------------------------- item layout

/// Items exactly as the Go service wrote them.
fn go_items() -> Vec<HashMap<String, AttributeValue>> {
    vec![
        attrs(json!({
            "slug": {"S": "show/go-drm"}, "title": {"S": "Go DRM"},
            "country": {"NULL": true}, "genre": {"S": "Drama"}, "language": {"NULL": true},
            "tvChannel": {"NULL": true}, "description": {"NULL": true}, "primaryColour": {"NULL": true},
            "drm": {"BOOL": true}, "drmKey": {"N": "1"}, "episodeCount": {"N": "5"},
            "image": {"M": {"showImage": {"S": "http://img.example.com/go.jpg"}}},
            "nextEpisode": {"NULL": true}, "seasons": {"NULL": true}
        })),
        attrs(json!({
            "slug": {"S": "show/go-no-drm"}, "title": {"S": "Go no DRM"},
            "drm": {"BOOL": false}, "drmKey": {"N": "0"}, "episodeCount": {"N": "9"},
            "image": {"M": {"showImage": {"NULL": true}}}, "nextEpisode": {"NULL": true},
            "seasons": {"L": [{"M": {"slug": {"S": "show/go-no-drm/season/1"}}}]}
        })),
        attrs(json!({
            "slug": {"S": "show/go-no-episodes"}, "title": {"S": "Go no episodes"},
            "drm": {"BOOL": true}, "drmKey": {"N": "1"}, "episodeCount": {"N": "0"},
            "image": {"M": {"showImage": {"NULL": true}}}, "nextEpisode": {"NULL": true},
            "seasons": {"NULL": true}
        })),
        attrs(json!({
            "slug": {"S": "show/go-no-image"}, "title": {"S": "Go no image"},
            "drm": {"BOOL": true}, "drmKey": {"N": "1"}, "episodeCount": {"N": "2"},
            "image": {"M": {"showImage": {"NULL": true}}},
            "nextEpisode": {"M": {"channel": {"NULL": true}, "channelLogo": {"S": "http://img.example.com/l.gif"},
                                  "date": {"NULL": true}, "html": {"S": ""}, "url": {"S": "http://www.example.com/n"}}},
            "seasons": {"NULL": true}
        })),
    ]
}

#[tokio::test]
async fn go_written_items_list_and_read_back_next_to_ours() {
    let store = fresh_store(Dynalite::shared(), "layout").await;
    for item in go_items() {
        store
            .client()
            .put_item()
            .table_name(store.table())
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    let ours = vec![
        show(
            json!({"slug": "show/ours-drm", "title": "Ours", "drm": true, "episodeCount": 3,
                    "image": {"showImage": "https://img.example.com/o.jpg"}}),
        ),
        show(json!({"slug": "show/ours-plain", "title": "Plain", "drm": false, "episodeCount": 3})),
        show(json!({"slug": "show/ours-bare", "title": "Bare"})),
    ];
    store.upsert(ours.clone(), &OPERATOR).await.unwrap();

    let page = store.list_eligible(PageRequest::default()).await.unwrap();
    let listed: BTreeSet<(String, String)> = page
        .items
        .iter()
        .map(|i| (i.slug.clone(), i.image.clone()))
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("show/go-drm", "http://img.example.com/go.jpg"),
        ("show/go-no-image", ""),
        ("show/ours-drm", "https://img.example.com/o.jpg"),
    ]
    .iter()
    .map(|(s, i)| (s.to_string(), i.to_string()))
    .collect();
    assert_eq!(listed, want);

    // Go's items read back as the shows they were.
    let go = store.get(&slug("show/go-drm")).await.unwrap().unwrap().show;
    assert_eq!(
        go,
        show(
            json!({"slug": "show/go-drm", "title": "Go DRM", "genre": "Drama", "drm": true,
                    "episodeCount": 5, "image": {"showImage": "http://img.example.com/go.jpg"}})
        )
    );
    let plain = store
        .get(&slug("show/go-no-drm"))
        .await
        .unwrap()
        .unwrap()
        .show;
    assert_eq!((plain.drm, plain.episode_count), (Some(false), Some(9)));
    assert!(plain.image.is_none());
    assert_eq!(plain.seasons.unwrap().len(), 1);
    let next = store
        .get(&slug("show/go-no-image"))
        .await
        .unwrap()
        .unwrap()
        .show;
    assert_eq!(next.next_episode.unwrap().html.as_str(), "");

    // Go's items have no owner: no provenance, a partner may not write them, an admin may
    // and leaves them unowned (only an assignment gives them an owner).
    let go_item = store.get(&slug("show/go-drm")).await.unwrap().unwrap();
    assert_eq!(
        go_item.provenance,
        show_service::domain::Provenance::default()
    );
    let acme = show_service::domain::Actor {
        client: "acme-client".into(),
        partner: Some(show_service::domain::Partner::parse("acme").unwrap()),
        admin: false,
    };
    let res = store.upsert(vec![go_item.show.clone()], &acme).await;
    assert!(
        matches!(&res, Err(StoreError::Forbidden { slugs, written: 0 }) if slugs == &["show/go-drm"]),
        "{res:?}"
    );
    store
        .upsert(vec![go_item.show.clone()], &OPERATOR)
        .await
        .unwrap();
    let edited = store.get(&slug("show/go-drm")).await.unwrap().unwrap();
    assert_eq!(edited.show, go_item.show);
    assert_eq!(edited.provenance.owner, None);
    assert_eq!(
        edited.provenance.created_at, None,
        "its creation is not known"
    );
    assert_eq!(edited.provenance.updated_by.as_deref(), Some("test"));

    // Ours are stored sparse, in the types the Go service reads.
    for s in &ours {
        let raw = store
            .client()
            .get_item()
            .table_name(store.table())
            .key("slug", AttributeValue::S(s.slug.to_string()))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        assert_eq!(
            raw.get("drmKey").map(|a| a.as_n().unwrap().as_str()),
            (s.drm == Some(true)).then_some("1"),
            "{}",
            s.slug
        );
        assert_eq!(
            raw.get("episodeCount").map(|a| a.as_n().unwrap().clone()),
            s.episode_count.map(|c| c.to_string())
        );
        assert!(raw["title"].is_s() && raw["slug"].is_s());
        assert!(raw.get("drm").is_none_or(AttributeValue::is_bool));
        assert!(!raw.values().any(AttributeValue::is_null), "{raw:?}");
        // The provenance: names the Go service's item does not have, of plain types.
        use show_service::store::layout::{
            SHOW_CREATED_AT, SHOW_OWNER, SHOW_UPDATED_AT, SHOW_UPDATED_BY,
        };
        assert!(
            !raw.contains_key(SHOW_OWNER),
            "an operator's import is unowned"
        );
        assert!(raw[SHOW_CREATED_AT].is_n() && raw[SHOW_UPDATED_AT].is_n());
        assert_eq!(raw[SHOW_UPDATED_BY].as_s().unwrap(), "test");
        assert_eq!(
            store.get(&s.slug).await.unwrap().map(|x| x.show).as_ref(),
            Some(s)
        );
    }
}

#[tokio::test]
async fn an_unpaged_catalogue_follows_every_index_page() {
    let store = fresh_store(Dynalite::shared(), "pages")
        .await
        .with_page_limit(7);
    let shows: Vec<Show> = (0..100)
        .map(|i| {
            show(
                json!({"slug": format!("show/p{i:03}"), "title": format!("P{i}"),
                        "drm": i % 3 != 0, "episodeCount": i % 9 + 1}),
            )
        })
        .collect();
    let want: BTreeSet<String> = shows
        .iter()
        .filter(|s| s.is_eligible())
        .map(|s| s.slug.to_string())
        .collect();
    store.upsert(shows, &OPERATOR).await.unwrap();
    let page = store.list_eligible(PageRequest::default()).await.unwrap();
    let got: BTreeSet<String> = page.items.iter().map(|i| i.slug.clone()).collect();
    assert_eq!(page.items.len(), want.len());
    assert_eq!(got, want);
    // The store's own count of the queries it made for the page.
    let calls = page.calls;
    assert!(calls >= want.len() as u32 / 7, "{calls} queries");
}

// ---------------------------------------------------------------- failures

fn is_unavailable<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Unavailable { .. }))
}

#[tokio::test]
async fn a_missing_table_or_index_is_unavailable() {
    let emulator = Dynalite::shared();
    let missing = DynamoStore::connect(&dynamo_settings(
        &emulator.endpoint(),
        &unique_table("absent"),
    ))
    .await
    .unwrap();
    let a = slug("show/a");
    assert!(is_unavailable(&missing.ping().await));
    assert!(is_unavailable(
        &missing.list_eligible(PageRequest::default()).await
    ));
    assert!(is_unavailable(&missing.get(&a).await));
    assert!(is_unavailable(&missing.delete(&a, &OPERATOR).await));
    let feed = vec![show(json!({"slug": "show/a", "title": "A"}))];
    assert!(is_unavailable(&missing.upsert(feed, &OPERATOR).await));

    // A table created without the index (by hand, say).
    let table = unique_table("noindex");
    let store = DynamoStore::connect(&dynamo_settings(&emulator.endpoint(), &table))
        .await
        .unwrap();
    store
        .client()
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("slug")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("slug")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(is_unavailable(&store.ping().await));
    let list = store.list_eligible(PageRequest::default()).await;
    assert!(is_unavailable(&list), "{list:?}");
}

#[tokio::test]
async fn a_silent_endpoint_times_out_within_the_call_timeout() {
    // Accepts connections (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let mut settings = dynamo_settings(&endpoint, "silent");
    settings.call_timeout = Duration::from_millis(400);
    let store = DynamoStore::connect(&settings).await.unwrap();

    let started = Instant::now();
    let list = store.list_eligible(PageRequest::default()).await;
    let waited = started.elapsed();
    assert!(is_unavailable(&list), "{list:?}");
    assert!(waited < Duration::from_millis(400 + 600), "{waited:?}");

    let started = Instant::now();
    let feed = (0..60)
        .map(|i| show(json!({"slug": format!("show/s{i}"), "title": "S"})))
        .collect();
    let write = store.upsert(feed, &OPERATOR).await;
    assert!(is_unavailable(&write), "{write:?}");
    assert!(
        started.elapsed() < Duration::from_millis(400 + 600),
        "one timed-out call stops the feed: {:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = dynamo_settings(&format!("http://127.0.0.1:{port}"), "closed");
    settings.call_timeout = Duration::from_secs(2);
    let store = DynamoStore::connect(&settings).await.unwrap();
    let started = Instant::now();
    let got = store.get(&slug("show/a")).await;
    assert!(is_unavailable(&got), "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(2) + Duration::from_millis(500));
}

// ---------------------------------------------------------------- outage under the API

struct Api {
    app: Router,
    token: String,
}

struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
    took: Duration,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let started = Instant::now();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let took = started.elapsed();
        let status = res.status();
        let retry_after = res
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            retry_after,
            body,
            took,
        }
    }
}

/// A token with both scopes from the local issuer.
async fn token(settings: &Settings) -> String {
    show_service::auth::mint_for_cli(settings, "local-client", &[])
        .await
        .expect("a token from the local issuer")
}

fn catalogue(body: &Value) -> BTreeSet<String> {
    body["response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["slug"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_503_during_an_outage_and_recovers_without_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut emulator = Dynalite::start(Some(&data.path().join("dynalite")));
    let call_timeout = Duration::from_millis(1000);
    let settings = Settings::load(
        None,
        [
            ("APP_ENV", "local".to_string()),
            ("APP__STORE__KIND", "dynamodb".into()),
            (
                "APP__STORE__PATH",
                data.path().join("shows.db").display().to_string(),
            ),
            ("APP__DYNAMODB__ENDPOINTOVERRIDE", emulator.endpoint()),
            ("APP__DYNAMODB__SHOWSTABLE", unique_table("outage")),
            (
                "APP__DYNAMODB__CALLTIMEOUTMS",
                call_timeout.as_millis().to_string(),
            ),
            ("APP__CACHE__TTLMS", "0".into()),
            ("APP__AUTH__MODE", "local".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap();
    show_service::store::create_table(&settings).await.unwrap();
    let store = show_service::store::open(&settings).await.unwrap();
    let auth = show_service::auth::Auth::from_settings(&settings)
        .await
        .unwrap();
    let token = token(&settings).await;
    let api = Api {
        app: show_service::http::router(show_service::http::AppState::new(settings, store, auth)),
        token,
    };
    let feed: Value = serde_json::from_slice(include_bytes!("fixtures/feed-12.json")).unwrap();
    let expected: Value =
        serde_json::from_slice(include_bytes!("fixtures/feed-12.expected.json")).unwrap();

    let posted = api.call(Method::POST, "/v1/shows", Some(&feed)).await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.body);
    let listed = api.call(Method::GET, "/v1/shows", None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(catalogue(&listed.body), catalogue(&expected));

    emulator.stop();

    let limit = call_timeout + Duration::from_millis(1500);
    let requests: [(Method, &str, Option<&Value>); 5] = [
        (Method::GET, "/v1/shows", None),
        (Method::GET, "/v1/shows?limit=2", None),
        (Method::GET, "/v1/shows/show/sample-000002", None),
        (Method::DELETE, "/v1/shows/show/sample-000003", None),
        (Method::POST, "/v1/shows", Some(&feed)),
    ];
    for (method, path, body) in requests {
        let a = api.call(method.clone(), path, body).await;
        eprintln!("outage: {method} {path} -> {} in {:?}", a.status, a.took);
        assert_eq!(
            a.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {}",
            a.body
        );
        assert!(
            a.retry_after.is_some_and(|s| s >= 1),
            "{method} {path}: Retry-After"
        );
        assert!(a.body["error"].is_string(), "{method} {path}: {}", a.body);
        assert!(a.took < limit, "{method} {path} took {:?}", a.took);
    }
    let live = api.call(Method::GET, "/health", None).await;
    assert_eq!(
        live.status,
        StatusCode::OK,
        "liveness never touches DynamoDB"
    );
    let ready = api.call(Method::GET, "/health/ready", None).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );

    emulator.restart();

    // Same router, same client: it recovers by itself, with the data the emulator kept.
    let started = Instant::now();
    let listed = loop {
        let a = api.call(Method::GET, "/v1/shows", None).await;
        if a.status == StatusCode::OK || started.elapsed() > Duration::from_secs(10) {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(catalogue(&listed.body), catalogue(&expected));
    let posted = api.call(Method::POST, "/v1/shows", Some(&feed)).await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.body);
    let started = Instant::now();
    let ready = loop {
        // The readiness answer is cached for a second.
        let a = api.call(Method::GET, "/health/ready", None).await;
        if a.status == StatusCode::OK || started.elapsed() > Duration::from_secs(5) {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
}

// ---------------------------------------------------------------- writes that finish

/// Holds the first call of one DynamoDB operation (by its `X-Amz-Target`) until released,
/// in the SDK's HTTP connector: the store's other calls go through untouched.
#[derive(Debug, Default)]
struct Stall {
    operation: std::sync::Mutex<Option<&'static str>>,
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[derive(Debug)]
struct StallingConnector {
    inner: aws_smithy_runtime_api::client::http::SharedHttpConnector,
    stall: std::sync::Arc<Stall>,
}

impl aws_smithy_runtime_api::client::http::HttpConnector for StallingConnector {
    fn call(
        &self,
        request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        let target = request.headers().get("x-amz-target").unwrap_or("");
        let mut armed = self.stall.operation.lock().unwrap();
        let held = armed.is_some_and(|op| target.ends_with(&format!(".{op}")));
        if held {
            *armed = None;
        }
        drop(armed);
        let (inner, stall) = (self.inner.clone(), self.stall.clone());
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::new(async move {
            if held {
                stall.reached.notify_one();
                stall.release.notified().await;
            }
            inner.call(request).await
        })
    }
}

/// A DynamoDB store whose client goes through a [`StallingConnector`].
async fn stalling_store(settings: &Settings, stall: std::sync::Arc<Stall>) -> DynamoStore {
    use aws_smithy_runtime_api::client::http::{SharedHttpConnector, http_client_fn};
    let conf = show_service::store::dynamodb::client::config(&settings.dynamodb)
        .await
        .unwrap();
    let client = http_client_fn(move |connector_settings, components| {
        let inner =
            aws_smithy_http_client::default_connector(connector_settings, components.sleep_impl())
                .expect("the SDK's default connector");
        SharedHttpConnector::new(StallingConnector {
            inner,
            stall: stall.clone(),
        })
    });
    let conf = conf.to_builder().http_client(client).build();
    DynamoStore::from_client(
        aws_sdk_dynamodb::Client::from_conf(conf),
        &settings.dynamodb,
    )
}

/// A delete whose request is dropped (the client hung up) while DynamoDB holds its
/// `DeleteItem`, after the change record's announcement: the write still finishes, the
/// record is bumped after it, this task's snapshot is invalidated, and another task,
/// following the record, lists the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_request_is_dropped_mid_write_still_finishes_and_is_seen_by_all() {
    use show_service::store::ChangeRecord;
    let emulator = Dynalite::shared();
    let data = tempfile::tempdir().unwrap();
    let table = unique_table("dropped");
    let settings = |ttl_ms: &str| {
        Settings::load(
            None,
            [
                ("APP_ENV", "local".to_string()),
                ("APP__STORE__KIND", "dynamodb".into()),
                (
                    "APP__STORE__PATH",
                    data.path().join("shows.db").display().to_string(),
                ),
                ("APP__DYNAMODB__ENDPOINTOVERRIDE", emulator.endpoint()),
                ("APP__DYNAMODB__SHOWSTABLE", table.clone()),
                ("APP__CACHE__TTLMS", ttl_ms.into()),
                ("APP__AUTH__MODE", "local".into()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        )
        .unwrap()
    };
    // This task keeps its snapshot for 10 minutes: only its own invalidation refreshes it.
    // The other checks the change record every 200 ms.
    let (this, other) = (settings("600000"), settings("200"));
    show_service::store::create_table(&this).await.unwrap();
    let stall = std::sync::Arc::new(Stall::default());
    let store = std::sync::Arc::new(stalling_store(&this, stall.clone()).await);
    let state = |settings: Settings, store: show_service::store::DynStore| async move {
        let auth = show_service::auth::Auth::from_settings(&settings)
            .await
            .unwrap();
        let token = token(&settings).await;
        let state = show_service::http::AppState::new(settings, store, auth);
        let api = Api {
            app: show_service::http::router(state.clone()),
            token,
        };
        (state, api)
    };
    let (this_state, this_api) = state(this, store.clone()).await;
    let (_, other_api) = state(
        other.clone(),
        show_service::store::open(&other).await.unwrap(),
    )
    .await;

    let feed = json!({"payload": [
        {"slug": "show/a", "title": "A", "drm": true, "episodeCount": 1},
        {"slug": "show/b", "title": "B", "drm": true, "episodeCount": 2},
    ]});
    let posted = this_api.call(Method::POST, "/v1/shows", Some(&feed)).await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.body);
    let both: BTreeSet<String> = ["show/a".into(), "show/b".into()].into();
    for api in [&this_api, &other_api] {
        let listed = api.call(Method::GET, "/v1/shows", None).await;
        assert_eq!(catalogue(&listed.body), both);
    }
    let permits = this_state.writes.available_permits();

    // The delete's DeleteItem is held; its request is dropped meanwhile.
    *stall.operation.lock().unwrap() = Some("DeleteItem");
    let request = tokio::spawn({
        let app = this_api.app.clone();
        let req = Request::builder()
            .method(Method::DELETE)
            .uri("/v1/shows/show/a")
            .header(header::AUTHORIZATION, format!("Bearer {}", this_api.token))
            .body(Body::empty())
            .unwrap();
        async move { app.oneshot(req).await }
    });
    tokio::time::timeout(Duration::from_secs(30), stall.reached.notified())
        .await
        .expect("the delete reached DeleteItem");
    let announced = match store.change_record().await.unwrap() {
        ChangeRecord::Version { version, .. } => version,
        other => panic!("{other:?}"),
    };
    request.abort();
    assert!(
        request.await.unwrap_err().is_cancelled(),
        "the request was dropped"
    );
    assert_eq!(
        this_state.writes.available_permits(),
        permits - 1,
        "the write goes on"
    );
    stall.release.notify_one();

    // The write finishes: its permit comes back.
    let started = Instant::now();
    while this_state.writes.available_permits() < permits {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the delete never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        store.get(&slug("show/a")).await.unwrap().is_none(),
        "deleted"
    );
    match store.change_record().await.unwrap() {
        ChangeRecord::Version { version, .. } => {
            assert!(
                version > announced,
                "bumped after the delete: {version} > {announced}"
            );
        }
        other => panic!("{other:?}"),
    }
    let only_b: BTreeSet<String> = ["show/b".into()].into();
    let listed = this_api.call(Method::GET, "/v1/shows", None).await;
    assert_eq!(
        catalogue(&listed.body),
        only_b,
        "this task's snapshot was invalidated"
    );
    let started = Instant::now();
    loop {
        let listed = other_api.call(Method::GET, "/v1/shows", None).await;
        if listed.status == StatusCode::OK && catalogue(&listed.body) == only_b {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the other task never listed the delete: {}",
            listed.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A bump never shortens another writer's window, and a writer's bump after its write
/// ends its own (on the emulator: the condition as DynamoDB evaluates it).
#[tokio::test]
async fn a_bump_keeps_a_later_window_and_a_writer_ends_its_own() {
    use show_service::store::ChangeRecord;
    use show_service::store::dynamodb::changes::{INDEX_LAG_MARGIN, bump};
    use std::time::{SystemTime, UNIX_EPOCH};
    let store = fresh_store(Dynalite::shared(), "window").await;
    // Whole milliseconds, as the record keeps them.
    let at = |from_now: Duration| {
        let t = SystemTime::now() + from_now;
        let ms = t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        UNIX_EPOCH + Duration::from_millis(ms)
    };
    let record = || async {
        match store.change_record().await.unwrap() {
            ChangeRecord::Version {
                version,
                unsettled_until,
                ..
            } => (version, unsettled_until),
            other => panic!("{other:?}"),
        }
    };
    let (client, table) = (store.client(), store.table());
    let long = at(Duration::from_secs(60));
    assert_eq!(
        bump(client, table, long, None).await.unwrap().until,
        Some(long)
    );
    assert_eq!(record().await, (1, Some(long)));
    // Another writer's shorter window leaves the long one; the counter moves.
    let short = at(Duration::from_secs(3));
    let kept = bump(client, table, short, None).await.unwrap();
    assert_eq!((kept.version, kept.until), (Some(2), None));
    assert_eq!(record().await, (2, Some(long)));
    // The long window's writer ends its own.
    let end = at(Duration::from_secs(2));
    bump(client, table, end, Some(long)).await.unwrap();
    assert_eq!(record().await, (3, Some(end)));

    // A feed through the store: two bumps, the record's window the margin after it.
    let before = SystemTime::now();
    store
        .upsert(
            vec![show(json!({"slug": "show/w", "title": "W"}))],
            &OPERATOR,
        )
        .await
        .unwrap();
    let after = SystemTime::now();
    let (version, until) = record().await;
    assert_eq!(version, 5, "announced and bumped after");
    let until = until.expect("a window");
    assert!(
        until >= before + INDEX_LAG_MARGIN - Duration::from_millis(1)
            && until <= after + INDEX_LAG_MARGIN,
        "{until:?}"
    );
}

/// The change feed never moves `next` past a write still landing: an announcement whose
/// window is open and that no entry closes holds the feed before it (a write after it
/// included), and once an entry closes it, its shows are served; an announcement whose
/// window has passed (its writer died) is served as it stands.
#[tokio::test]
async fn the_change_feed_waits_for_an_announced_write_to_land() {
    use show_service::catalogue::changes::{Change, Cursor, changes_since};
    use show_service::store::ChangeRecord;
    use show_service::store::dynamodb::changes::{EntryKind, bump, put};
    use std::time::SystemTime;
    let store = fresh_store(Dynalite::shared(), "inflight").await;
    let actor = show_service::domain::Actor::operator("test");
    let listed = |s: &str| show(json!({"slug": s, "title": s, "drm": true, "episodeCount": 1}));
    store
        .upsert(vec![listed("show/first")], &actor)
        .await
        .unwrap();
    let top = || async {
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
            other => panic!("{other:?}"),
        }
    };
    let since = top().await;
    let (client, table) = (store.client(), store.table());
    let retention = Duration::from_secs(3600);
    let slugs = |s: &str| vec![s.to_string()];
    // A writer announces show/landing, and has not written it yet.
    let until = SystemTime::now() + Duration::from_secs(60);
    let announced = bump(client, table, until, None).await.unwrap().version;
    let open = EntryKind::Open { until };
    put(
        client,
        table,
        announced.unwrap(),
        slugs("show/landing"),
        open,
        retention,
    )
    .await
    .unwrap();
    // Another write after it lands whole.
    store
        .upsert(vec![listed("show/later")], &actor)
        .await
        .unwrap();
    let feed = changes_since(&store, since, 100, SystemTime::now())
        .await
        .unwrap();
    assert!(feed.changes.is_empty(), "{:?}", feed.changes);
    assert_eq!(
        feed.next, since,
        "next stays before the write still landing"
    );
    // It lands, and its writer bumps again.
    store
        .upsert(vec![listed("show/landing")], &actor)
        .await
        .unwrap();
    let closing = bump(client, table, SystemTime::now(), Some(until))
        .await
        .unwrap();
    let close = EntryKind::Close { announced };
    put(
        client,
        table,
        closing.version.unwrap(),
        slugs("show/landing"),
        close,
        retention,
    )
    .await
    .unwrap();
    let feed = changes_since(&store, since, 100, SystemTime::now())
        .await
        .unwrap();
    let slugs_served: Vec<&str> = feed
        .changes
        .iter()
        .map(|c| match c {
            Change::Put(i) => i.slug.as_str(),
            Change::Remove(s) => s.as_str(),
        })
        .collect();
    assert_eq!(slugs_served, ["show/later", "show/landing"]);
    assert_eq!(feed.next, top().await);
    // A writer that died: its window passed, nothing closes it; served as it stands.
    let since = top().await;
    let gone = SystemTime::now() - Duration::from_secs(5);
    let v = bump(client, table, gone, None)
        .await
        .unwrap()
        .version
        .unwrap();
    put(
        client,
        table,
        v,
        slugs("show/never"),
        EntryKind::Open { until: gone },
        retention,
    )
    .await
    .unwrap();
    let feed = changes_since(&store, since, 100, SystemTime::now())
        .await
        .unwrap();
    assert_eq!(feed.changes, [Change::Remove("show/never".into())]);
    assert_eq!(feed.next.version, v);
}
