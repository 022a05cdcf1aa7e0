//! Store faults and limits: a locked SQLite file, the request timeout, load shedding.
//! Each answers 503 with `Retry-After` in the envelope, writes nothing, and recovers.
//! They lock SQLite to make the store slow, so they always run on SQLite (DynamoDB's
//! outage is tested in `tests/dynamodb.rs`).

use crate::helpers::*;
use std::time::{Duration, Instant};

/// These tests need the SQLite store, whatever `SHOW_TEST_STORE` says.
const SQLITE: &[(&str, &str)] = &[("APP__STORE__KIND", "sqlite")];

/// Holds SQLite's write lock on the app's store from another connection.
fn lock_store(app: &TestApp) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(app.data.path().join("shows.db")).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    conn
}

#[tokio::test]
async fn a_locked_store_answers_503_and_the_service_recovers() {
    let mut app = TestApp::spawn_with(SQLITE).await;
    app.token().await;
    let lock = lock_store(&app);
    let started = Instant::now();
    let res = app.post_feed(&feed("l", 5)).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_envelope(res, 503).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded by the busy timeout"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    assert_eq!(app.post_feed(&feed("l", 5)).await.status(), 201);
    assert_eq!(app.catalogue_slugs().await.len(), 5);
}

#[tokio::test]
async fn a_request_over_the_timeout_gets_503() {
    let mut app = TestApp::spawn_with(&[SQLITE[0], ("APP__SERVER__REQUESTTIMEOUTMS", "300")]).await;
    app.token().await;
    let lock = lock_store(&app);
    let started = Instant::now();
    let res = app.post_feed(&feed("t", 5)).await;
    let took = started.elapsed();
    assert!(res.headers().contains_key("retry-after"));
    let v = assert_envelope(res, 503).await;
    assert!(v["error"].as_str().unwrap().contains("timed out"), "{v}");
    assert!(
        took < Duration::from_millis(1500),
        "answered at the timeout, took {took:?}"
    );
    drop(lock);
}

#[tokio::test]
async fn requests_past_the_concurrency_limit_are_shed_not_queued() {
    let mut app = TestApp::spawn_with(&[SQLITE[0], ("APP__SERVER__MAXCONCURRENCY", "1")]).await;
    let token = app.token().await;
    let lock = lock_store(&app);
    // One POST occupies the only slot while the store is locked.
    let slow = {
        let client = app.client.clone();
        let url = app.url("/v1/shows");
        let token = token.clone();
        let body = serde_json::to_vec(&feed("c", 1)).unwrap();
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = app.get("/v1/shows").await;
    let v = assert_envelope(res, 503).await;
    assert!(v["error"].as_str().unwrap().contains("capacity"), "{v}");
    // Probes are exempt, so the load balancer does not kill a busy task.
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    drop(lock);
    let _ = slow.await.unwrap();
    assert_eq!(app.get("/v1/shows").await.status(), 200);
}
