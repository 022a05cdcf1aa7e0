//! Several service instances on one store, as tasks behind the load balancer: they agree
//! on ETags and cursors, a write through one is listed by all, and while nothing changes
//! none of them reads the catalogue again, and a change is applied from the change log,
//! not by reading the index (from their own log lines, not from timing).

use crate::helpers::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const REFILLED: &str = "catalogue refilled";
const CHECKED: &str = "catalogue change record checked";

/// `n` services on one DynamoDB table, with a short TTL and checks logged.
async fn on_one_table(n: usize, ttl_ms: &str) -> Vec<TestApp> {
    let mut env = dynamodb_env().await;
    env.push(("APP__CACHE__TTLMS".into(), ttl_ms.into()));
    env.push((
        "APP__LOG__LEVEL".into(),
        "show_service::catalogue=debug,info".into(),
    ));
    let mut apps = Vec::new();
    for _ in 0..n {
        let data = std::sync::Arc::new(tempfile::tempdir().unwrap());
        apps.push(TestApp::start(data, env.clone(), 0).await);
    }
    apps
}

/// GETs the catalogue until `done` holds for it (a generous deadline, for a busy
/// machine); 503s are retried as a client would.
async fn until(app: &mut TestApp, what: &str, done: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = app.get("/v1/shows").await;
        if res.status() == 200 {
            let v: Value = res.json().await.unwrap();
            if done(&v) {
                return;
            }
        } else {
            assert_eq!(res.status(), 503, "{what}");
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never listed; {:#?}",
            app.log_lines()
                .iter()
                .filter(|l| l.contains("catalogue") || l.contains("WARN") || l.contains("ERROR"))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has(v: &Value, slug: &str) -> bool {
    v["response"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["slug"] == slug)
}

#[tokio::test]
async fn three_tasks_list_a_write_through_any_and_read_nothing_while_nothing_changes() {
    let mut apps = on_one_table(3, "300").await;
    assert_eq!(apps[0].post_feed(&feed("x", 30)).await.status(), 201);
    for (i, app) in apps.iter_mut().enumerate() {
        until(app, &format!("x, task {i}"), |v| has(v, "show/x1")).await;
    }
    // A write through the second task is listed by all three.
    assert_eq!(apps[1].post_feed(&feed("y", 3)).await.status(), 201);
    for (i, app) in apps.iter_mut().enumerate() {
        until(app, &format!("y, task {i}"), |v| has(v, "show/y1")).await;
    }
    // Let every task check a few times, and until a check finds no settle pending (a
    // change read while its writes may still be landing is read once more after their
    // time), then count: more checks, and no index read.
    for app in apps.iter_mut() {
        let from = app.log_lines().len();
        let deadline = Instant::now() + Duration::from_secs(60);
        let settled = |app: &TestApp| {
            app.log_lines()
                .iter()
                .rev()
                .find(|l| l.contains(CHECKED))
                .is_some_and(|l| l.contains(r#""settle_pending":false"#))
        };
        while count_logged(app, CHECKED, from) < 3 || !settled(app) {
            assert!(
                Instant::now() < deadline,
                "no checks: {:#?}",
                app.log_lines()
            );
            assert_eq!(app.get("/v1/shows").await.status(), 200);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let marks: Vec<usize> = apps.iter().map(|a| a.log_lines().len()).collect();
    let etag = apps[0].get("/v1/shows").await.headers()["etag"].clone();
    for (app, from) in apps.iter_mut().zip(&marks) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while count_logged(app, CHECKED, *from) < 4 {
            assert!(
                Instant::now() < deadline,
                "no checks: {:#?}",
                app.log_lines()
            );
            let res = app.get("/v1/shows").await;
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["etag"], etag, "every task, the same ETag");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (i, (app, from)) in apps.iter().zip(&marks).enumerate() {
        assert_eq!(
            count_logged(app, REFILLED, *from),
            0,
            "task {i} read the catalogue while nothing changed"
        );
        assert!(count_logged(app, CHECKED, *from) >= 4);
    }
    // A delete through the third is a change for the others too, and for the third
    // itself: every task applies it from the change log (the deleted slug read again,
    // found gone), none reads the index.
    let marks: Vec<usize> = apps.iter().map(|a| a.log_lines().len()).collect();
    assert_eq!(apps[2].delete("/v1/shows/show/y1").await.status(), 204);
    for (i, app) in apps.iter_mut().enumerate() {
        until(app, &format!("delete, task {i}"), |v| !has(v, "show/y1")).await;
    }
    for (i, (app, from)) in apps.iter().zip(&marks).enumerate() {
        // The refill's log line comes through the service's stdout and a reader thread:
        // it can trail the response that already showed the delete.
        let deadline = Instant::now() + Duration::from_secs(30);
        while count_logged(app, REFILLED, *from) < 1 {
            assert!(
                Instant::now() < deadline,
                "task {i}: no refill logged: {:#?}",
                app.log_lines()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let refills: Vec<String> = app.log_lines()[*from..]
            .iter()
            .filter(|l| l.contains(REFILLED))
            .cloned()
            .collect();
        assert!(
            refills
                .iter()
                .all(|l| l.contains(r#""kind":"delta""#) && l.contains(r#""changed":1"#)),
            "task {i}: the delete applied from the change log, not the index: {refills:#?}"
        );
    }
    // The same catalogue, the same ETag, on every task.
    let etags: Vec<String> = {
        let mut e = Vec::new();
        for app in apps.iter_mut() {
            e.push(
                app.get("/v1/shows").await.headers()["etag"]
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
        }
        e
    };
    assert!(etags.windows(2).all(|w| w[0] == w[1]), "{etags:?}");
}

#[tokio::test]
async fn two_tasks_send_the_same_etag_and_continue_each_others_cursors() {
    let mut apps = on_one_table(2, "1000").await;
    assert_eq!(apps[0].post_feed(&feed("p", 90)).await.status(), 201);
    let mut want = Vec::new();
    for app in apps.iter_mut() {
        until(app, "listed", |v| {
            v["response"].as_array().unwrap().len() == 90
        })
        .await;
        want = app.catalogue_slugs().await;
    }
    let a = apps[0].get("/v1/shows").await;
    let b = apps[1].get("/v1/shows").await;
    let etag = a.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(b.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(a.bytes().await.unwrap(), b.bytes().await.unwrap());
    // A 304 from the other task.
    let token = apps[1].token().await;
    let res = apps[1]
        .client
        .get(apps[1].url("/v1/shows"))
        .bearer_auth(token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    // A walk that alternates tasks page by page sees every show once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for turn in 0.. {
        let path = match &cursor {
            Some(c) => format!("/v1/shows?limit=7&cursor={c}"),
            None => "/v1/shows?limit=7".to_string(),
        };
        let v: Value = apps[turn % 2].get(&path).await.json().await.unwrap();
        seen.extend(
            v["response"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["slug"].as_str().unwrap().to_string()),
        );
        match v.get("next").and_then(Value::as_str) {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no show twice");
    assert_eq!(sorted, want);
}
