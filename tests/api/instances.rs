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

/// The `show/…` slugs the table holds (a strongly consistent scan, every page).
async fn table_slugs(store: &show_service::store::dynamodb::DynamoStore) -> Vec<String> {
    let mut slugs = Vec::new();
    let mut start = None;
    loop {
        let out = store
            .client()
            .scan()
            .table_name(store.table())
            .consistent_read(true)
            .projection_expression("slug")
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        slugs.extend(
            out.items()
                .iter()
                .filter_map(|i| i.get("slug").and_then(|s| s.as_s().ok()))
                .filter(|s| s.starts_with("show/"))
                .cloned(),
        );
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    slugs.sort();
    slugs
}

/// A task killed (SIGKILL) in the middle of a large feed, after half of its shows are in
/// the table: every task, the restarted one included, lists exactly what the table holds
/// within the write's window (its deadline and the index-lag margin) plus a TTL and one
/// check, well before the safety net (300 s) could explain it. The feed's announcement
/// (the change record bumped, its slugs logged, before the first batch) is what tells the
/// other tasks, which read the catalogue while the feed was landing, to read those shows
/// again once the window has passed.
#[tokio::test]
async fn a_task_killed_mid_feed_leaves_every_task_listing_the_table_after_its_window() {
    let mut env = dynamodb_env().await;
    let table = env
        .iter()
        .find(|(k, _)| k == "APP__DYNAMODB__SHOWSTABLE")
        .map(|(_, v)| v.clone())
        .unwrap();
    let endpoint = crate::support::dynalite::Dynalite::shared().endpoint();
    let write_deadline = Duration::from_secs(3);
    env.extend([
        ("APP__CACHE__TTLMS".into(), "300".into()),
        ("APP__CACHE__SAFETYNETSECONDS".into(), "300".into()),
        // One batch at a time: the feed lands over many calls, so the kill falls inside it.
        ("APP__DYNAMODB__WRITECONCURRENCY".into(), "1".into()),
        (
            "APP__DYNAMODB__WRITEDEADLINEMS".into(),
            write_deadline.as_millis().to_string(),
        ),
    ]);
    let mut apps = Vec::new();
    for _ in 0..3 {
        let data = std::sync::Arc::new(tempfile::tempdir().unwrap());
        apps.push(TestApp::start(data, env.clone(), 0).await);
    }
    let store = show_service::store::dynamodb::DynamoStore::connect(
        &crate::support::dynamo_settings(&endpoint, &table),
    )
    .await
    .unwrap();
    // Every task holds a catalogue before the feed.
    assert_eq!(apps[1].post_feed(&feed("before", 10)).await.status(), 201);
    for (i, app) in apps.iter_mut().enumerate() {
        until(app, &format!("before, task {i}"), |v| {
            has(v, "show/before9")
        })
        .await;
    }

    // Two feeds of 1000 shows to the first task, killed once some of them are stored.
    let token = apps[0].token().await;
    let posts: Vec<_> = ["p", "q"]
        .into_iter()
        .map(|prefix| {
            let request = apps[0]
                .client
                .post(apps[0].url("/v1/shows"))
                .bearer_auth(&token)
                .json(&feed(prefix, 1000));
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    let started = Instant::now();
    loop {
        // The other tasks keep reading (and refilling) while the feed lands.
        for app in apps[1..].iter_mut() {
            let status = app.get("/v1/shows").await.status();
            assert!(status == 200 || status == 503, "{status}");
        }
        // Half of it: the other tasks have refilled (and settled) while it landed.
        let stored = table_slugs(&store).await.len() - 10;
        if stored >= 1000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no show of the feed reached the table"
        );
    }
    let killed_at = Instant::now();
    let pid = apps[0].pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut child = apps[0].child.take().unwrap();
    child.wait().unwrap();
    // The feed still landing when the task died has no answer. (On a slow machine the
    // other one may have finished first: then it was answered 201, whole.)
    let mut died = 0;
    for post in posts {
        match post.await.unwrap() {
            Err(_) => died += 1,
            Ok(status) => assert_eq!(status, 201, "a feed answered before the kill"),
        }
    }
    assert!(died >= 1, "a feed's request died with its task");
    // A batch the task sent just before it died may still be landing in the emulator:
    // the truth is the table once two reads a moment apart agree.
    let mut truth = table_slugs(&store).await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = table_slugs(&store).await;
        if again == truth {
            break;
        }
        truth = again;
    }
    let stored = truth.len() - 10;
    eprintln!("killed with {stored} of the feeds' 2000 shows stored");
    assert!(stored < 2000, "killed mid-feed ({stored} stored)");
    // Nothing writes any more: what the table holds is the truth every task must list.
    let restarted = TestApp::start(apps[0].data.clone(), env.clone(), 0).await;
    apps[0] = restarted;
    // Every task lists the truth once the window has passed, within a TTL and a check;
    // the bound below is that plus a generous allowance for a slow machine, and far
    // below the safety net.
    let window = write_deadline + Duration::from_secs(2);
    let bound = window + Duration::from_secs(30);
    for (i, app) in apps.iter_mut().enumerate() {
        let mut listed = Vec::new();
        loop {
            let res = app.get("/v1/shows").await;
            if res.status() == 200 {
                let v: Value = res.json().await.unwrap();
                listed = v["response"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["slug"].as_str().unwrap().to_string())
                    .collect();
                listed.sort();
                if listed == truth {
                    break;
                }
            }
            assert!(
                killed_at.elapsed() < bound,
                "task {i} lists {} shows, the table holds {}, {:?} after the kill",
                listed.len(),
                truth.len(),
                killed_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(table_slugs(&store).await, truth, "nothing wrote meanwhile");
}
