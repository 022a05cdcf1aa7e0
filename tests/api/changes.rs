//! The change feed through the real binary: a list's `Changes-Cursor`, the changes since
//! it applied to that list give the list after the writes, nothing new keeps `next`, and
//! bad, future, foreign cursors and bad limits are refused in the JSON envelope (400,
//! 410). Then three tasks on one DynamoDB table: writes through each, changes read from
//! another, the same property.

use crate::helpers::*;
use serde_json::{Value, json};
use show_service::catalogue::changes::Cursor;
use std::collections::BTreeMap;

type Listed = BTreeMap<String, (String, String)>;

/// The whole list and its `Changes-Cursor`.
async fn list(app: &mut TestApp) -> (Listed, String) {
    let res = app.get("/v1/shows").await;
    assert_eq!(res.status(), 200);
    let cursor = res
        .headers()
        .get("changes-cursor")
        .expect("a Changes-Cursor header on the list")
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = res.json().await.unwrap();
    let listed = v["response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap().to_string();
            (s("slug"), (s("title"), s("image")))
        })
        .collect();
    (listed, cursor)
}

/// Follows the changes from `since` in pages of `limit`, applying them to `listed`;
/// returns the last `next`.
async fn follow(app: &mut TestApp, listed: &mut Listed, since: &str, limit: usize) -> String {
    let mut at = since.to_string();
    for _ in 0..1000 {
        let res = app
            .get(&format!("/v1/shows/changes?since={at}&limit={limit}"))
            .await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        let changes = v["changes"].as_array().unwrap();
        assert!(changes.len() <= limit);
        for c in changes {
            match c["op"].as_str() {
                Some("put") => {
                    let i = &c["item"];
                    let s = |k: &str| i[k].as_str().unwrap().to_string();
                    listed.insert(s("slug"), (s("title"), s("image")));
                }
                Some("remove") => {
                    listed.remove(c["slug"].as_str().unwrap());
                }
                other => panic!("unknown op {other:?}: {c}"),
            }
        }
        let next = v["next"].as_str().unwrap().to_string();
        if changes.len() < limit {
            return next;
        }
        at = next;
    }
    panic!("the feed never ended");
}

fn show(slug: &str, title: &str, drm: bool, episodes: u32) -> Value {
    json!({"slug": slug, "title": title, "drm": drm, "episodeCount": episodes,
           "image": {"showImage": format!("https://img.example.com/{title}.jpg")}})
}

#[tokio::test]
async fn changes_since_a_list_give_the_list_after_the_writes() {
    let mut app = TestApp::spawn().await;
    let first = json!({"payload": [show("show/a", "a1", true, 1), show("show/b", "b1", true, 2),
                                    show("show/c", "c1", true, 3)]});
    assert_eq!(app.post_feed(&first).await.status(), 201);
    let (mut listed, listed_at) = list(&mut app).await;
    // The list's cursor may be a little behind it (DynamoDB: until its writes are known
    // to have landed): catching up re-serves those changes, which changes nothing.
    let since = follow(&mut app, &mut listed, &listed_at, 1000).await;
    assert_eq!(listed, list(&mut app).await.0);
    // Nothing new: no changes, next is since.
    let res = app.get(&format!("/v1/shows/changes?since={since}")).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["changes"], json!([]));
    assert_eq!(v["next"], since.as_str());
    // An update, a new show, one leaving the catalogue (no longer DRM), a delete.
    let second = json!({"payload": [show("show/a", "a2", true, 1), show("show/d", "d1", true, 4),
                                     show("show/b", "b2", false, 2)]});
    assert_eq!(app.post_feed(&second).await.status(), 201);
    assert_eq!(app.delete("/v1/shows/show/c").await.status(), 204);
    let next = follow(&mut app, &mut listed, &since, 2).await;
    let (now, _) = list(&mut app).await;
    assert_eq!(listed, now);
    assert_eq!(now.keys().collect::<Vec<_>>(), ["show/a", "show/d"]);
    // Each show once, at its latest change: a, b, d (the feed), then c (the delete).
    let res = app.get(&format!("/v1/shows/changes?since={since}")).await;
    let v: Value = res.json().await.unwrap();
    let ops: Vec<String> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["op"].as_str().unwrap(),
                c["slug"].as_str().or(c["item"]["slug"].as_str()).unwrap()
            )
        })
        .collect();
    assert_eq!(
        ops,
        ["put show/a", "remove show/b", "put show/d", "remove show/c"]
    );
    assert_eq!(v["next"], next.as_str());
    // A first page says where it stands too; a later page does not.
    let res = app.get("/v1/shows?limit=1").await;
    assert!(res.headers().get("changes-cursor").is_some());
    let v: Value = res.json().await.unwrap();
    let later = app
        .get(&format!(
            "/v1/shows?limit=1&cursor={}",
            v["next"].as_str().unwrap()
        ))
        .await;
    assert!(later.headers().get("changes-cursor").is_none());
}

#[tokio::test]
async fn bad_future_and_foreign_cursors_and_bad_limits_are_refused_in_the_envelope() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.post_feed(&feed("x", 2)).await.status(), 201);
    let (_, since) = list(&mut app).await;
    let ours = Cursor::decode(&since).unwrap();
    let future = Cursor {
        version: ours.version + 1_000_000,
        ..ours
    }
    .encode();
    let foreign = Cursor {
        log: ours.log ^ 1,
        ..ours
    }
    .encode();
    let mut mangled = since.clone().into_bytes();
    mangled[5] = if mangled[5] == b'A' { b'B' } else { b'A' };
    let mangled = String::from_utf8(mangled).unwrap();
    for (query, status) in [
        (String::new(), 400),
        ("since=".to_string(), 400),
        ("since=not-a-cursor".to_string(), 400),
        (format!("since={mangled}"), 400),
        (format!("since={future}"), 400),
        (format!("since={since}&limit=0"), 400),
        (format!("since={since}&limit=1001"), 400),
        (format!("since={since}&limit=ten"), 400),
        (format!("since={foreign}"), 410),
    ] {
        let res = app.get(&format!("/v1/shows/changes?{query}")).await;
        let v = assert_envelope(res, status).await;
        if status == 410 {
            assert!(
                v["error"].as_str().unwrap().contains("GET /v1/shows"),
                "{v}"
            );
        }
    }
    // Nothing was changed by them: the cursor still answers.
    let res = app
        .get(&format!("/v1/shows/changes?since={since}&limit=1000"))
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn three_tasks_on_one_table_serve_each_others_changes() {
    let env = dynamodb_env().await;
    let mut apps = Vec::new();
    for _ in 0..3 {
        let data = std::sync::Arc::new(tempfile::tempdir().unwrap());
        apps.push(TestApp::start(data, env.clone(), 0).await);
    }
    assert_eq!(apps[0].post_feed(&feed("t", 3)).await.status(), 201);
    let (mut listed, since) = list(&mut apps[0]).await;
    let mut rng = fastrand::Rng::with_seed(27);
    let mut last = 0;
    for step in 0..9 {
        let task = step % 3;
        let slug = format!("show/t{}", rng.u8(0..6));
        if rng.u8(0..4) == 0 {
            let status = apps[task]
                .delete(&format!("/v1/shows/{slug}"))
                .await
                .status();
            assert!(status == 204 || status == 404, "{status}");
        } else {
            let s = show(&slug, &format!("v{step}"), rng.u8(0..4) != 0, rng.u32(0..3));
            let status = apps[task]
                .post_feed(&json!({"payload": [s]}))
                .await
                .status();
            assert_eq!(status, 201);
        }
        last = task;
    }
    // Read from a task that did not write last; the list from the one that did (its
    // reads follow its writes).
    let reader = (last + 1) % 3;
    follow(&mut apps[reader], &mut listed, &since, 2).await;
    let (now, _) = list(&mut apps[last]).await;
    assert_eq!(listed, now);
}
