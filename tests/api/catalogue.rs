//! GET /v1/shows (complete, paged, cached, compressed), one show, delete.

use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn titles_pass_through_byte_for_byte() {
    let mut app = TestApp::spawn().await;
    let title = "Show 0 — Épisode spécial 📺 日本";
    let feed =
        json!({"payload": [{"slug": "show/t", "title": title, "drm": true, "episodeCount": 1}]});
    assert_eq!(app.post_feed(&feed).await.status(), 201);
    let bytes = app.get("/v1/shows").await.bytes().await.unwrap();
    let needle = title.as_bytes();
    assert!(
        bytes.windows(needle.len()).any(|w| w == needle),
        "raw UTF-8 in the body"
    );
}

#[tokio::test]
async fn the_catalogue_is_complete_and_pages_walk_it_once() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.post_feed(&feed("a", 1000)).await.status(), 201);
    assert_eq!(app.post_feed(&feed("b", 500)).await.status(), 201);
    let all = app.catalogue_slugs().await;
    assert_eq!(all.len(), 1500);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/shows?limit=400&cursor={c}"),
            None => "/v1/shows?limit=400".to_string(),
        };
        let v: Value = app.get(&path).await.json().await.unwrap();
        let page = v["response"].as_array().unwrap();
        assert!(page.len() <= 400);
        seen.extend(page.iter().map(|i| i["slug"].as_str().unwrap().to_string()));
        match v.get("next").and_then(Value::as_str) {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, all);
}

#[tokio::test]
async fn bad_limits_and_forged_cursors_are_400_never_500() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.post_feed(&feed("c", 10)).await.status(), 201);
    for q in [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=1001",
        "limit=2&cursor=%%%",
        "cursor=bm9wZQ",
        "limit=2&cursor=djE6eDpzaG93L2E",
    ] {
        let res = app.get(&format!("/v1/shows?{q}")).await;
        assert_envelope(res, 400).await;
    }
}

#[tokio::test]
async fn the_cached_catalogue_has_an_etag_a_gzip_variant_and_follows_writes() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.post_feed(&feed("e", 100)).await.status(), 201);
    let token = app.token().await;
    let res = app.get("/v1/shows").await;
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let plain = res.bytes().await.unwrap();

    let res = app
        .client
        .get(app.url("/v1/shows"))
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    let res = app
        .client
        .get(app.url("/v1/shows"))
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let gz = res.bytes().await.unwrap();
    assert!(gz.len() < plain.len());
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
    assert_eq!(out, plain.to_vec());

    // A write through this instance shows at once, with a new ETag.
    assert_eq!(app.delete("/v1/shows/show/e0").await.status(), 204);
    let res = app.get("/v1/shows").await;
    assert_ne!(res.headers()["etag"].to_str().unwrap(), etag);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["response"].as_array().unwrap().len(), 99);
}

#[tokio::test]
async fn one_show_by_its_slashed_slug_and_delete() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.post_feed(&sample_feed()).await.status(), 201);
    let res = app.get("/v1/shows/show/sample-000003").await;
    assert_eq!(res.status(), 200);
    let mut v: Value = res.json().await.unwrap();
    // The show as posted, plus who owns it and who changed it when.
    let provenance = ["owner", "createdAt", "updatedAt", "updatedBy"]
        .map(|k| v.as_object_mut().unwrap().remove(k).unwrap_or_default());
    assert_eq!(v, sample_feed()["payload"][3]);
    let [owner, created, updated, by] = provenance;
    assert_eq!(owner, "local-client");
    assert_eq!(by, "local-client");
    assert!(
        created.as_str().is_some_and(|t| t.ends_with('Z')),
        "{created}"
    );
    assert_eq!(created, updated);
    assert_eq!(app.get("/shows/show/sample-000003").await.status(), 200);

    assert_envelope(app.get("/v1/shows/show/absent").await, 404).await;
    assert_envelope(app.get("/v1/shows/not-a-slug").await, 404).await;

    assert_eq!(
        app.delete("/v1/shows/show/sample-000003").await.status(),
        204
    );
    assert_envelope(app.delete("/v1/shows/show/sample-000003").await, 404).await;
    assert_envelope(app.get("/v1/shows/show/sample-000003").await, 404).await;
    assert!(
        !app.catalogue_slugs()
            .await
            .contains(&"show/sample-000003".to_string())
    );
}
