//! POST /v1/shows: the feed envelope, validation with paths, all-or-nothing writes.

use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn posting_the_sample_feed_builds_exactly_the_expected_catalogue() {
    let mut app = TestApp::spawn().await;
    let res = app.post_feed(&sample_feed()).await;
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["written"], 12);
    let res = app.get("/v1/shows").await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(rows(&v), sample_expected());
    // The seed's unversioned alias serves the same catalogue.
    let v: Value = app.get("/shows").await.json().await.unwrap();
    assert_eq!(rows(&v), sample_expected());
}

#[tokio::test]
async fn reposting_a_feed_is_an_idempotent_upsert() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.post_feed(&sample_feed()).await.status(), 201);
    assert_eq!(app.post_feed(&sample_feed()).await.status(), 201);
    let mut changed = sample_feed();
    changed["payload"][0]["title"] = json!("Renamed");
    assert_eq!(app.post_feed(&changed).await.status(), 201);
    let v: Value = app
        .get("/v1/shows/show/sample-000000")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["title"], "Renamed");
    assert_eq!(app.catalogue_slugs().await.len(), sample_expected().len());
}

#[tokio::test]
async fn a_body_that_is_not_json_gets_the_exact_message_and_writes_nothing() {
    let mut app = TestApp::spawn().await;
    for body in ["{", "", "payload", "{\"payload\": [}"] {
        let res = app.post_raw("/v1/shows", "application/json", body).await;
        let v = assert_envelope(res, 400).await;
        assert_eq!(
            v["error"], "Could not decode request: JSON parsing failed",
            "{body:?}"
        );
    }
    assert!(app.catalogue_slugs().await.is_empty());
}

#[tokio::test]
async fn one_invalid_item_rejects_the_whole_feed_with_every_problem_listed() {
    let mut app = TestApp::spawn().await;
    let mut feed = sample_feed();
    feed["payload"][3]["slug"] = json!("Not A Slug");
    feed["payload"][7]["primaryColour"] = json!("blue");
    feed["payload"][9]["episodeCount"] = json!("many");
    feed["payload"][10]["image"] = json!({"showImage": "javascript:alert(1)"});
    let res = app.post_feed(&feed).await;
    let v = assert_envelope(res, 400).await;
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("Could not decode request: payload[3].slug"),
        "{v}"
    );
    let paths: Vec<&str> = v["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "payload[3].slug",
            "payload[7].primaryColour",
            "payload[9].episodeCount",
            "payload[10].image.showImage"
        ]
    );
    assert!(app.catalogue_slugs().await.is_empty(), "nothing written");
    assert_eq!(app.get("/v1/shows/show/sample-000000").await.status(), 404);
}

#[tokio::test]
async fn wrong_json_types_are_validation_errors_with_paths() {
    let mut app = TestApp::spawn().await;
    let cases = [
        (json!([]), "$"),
        (json!({"payload": "x"}), "payload"),
        (json!({"payload": [1]}), "payload[0]"),
        (
            json!({"payload": [{"slug": 5, "title": "T"}]}),
            "payload[0].slug",
        ),
        (
            json!({"payload": [{"slug": "show/a", "title": "T", "drm": "yes"}]}),
            "payload[0].drm",
        ),
        (
            json!({"payload": [{"slug": "show/a", "title": "T", "seasons": [{"slug": 1}]}]}),
            "payload[0].seasons[0].slug",
        ),
        (
            json!({"payload": [{"slug": "show/a", "title": "T"}], "skip": "0"}),
            "skip",
        ),
    ];
    for (body, path) in cases {
        let v = assert_envelope(app.post_feed(&body).await, 400).await;
        assert_eq!(v["details"][0]["path"], path, "{body}");
    }
    assert!(app.catalogue_slugs().await.is_empty());
}

#[tokio::test]
async fn duplicates_empty_and_oversized_payloads_are_refused() {
    let mut app = TestApp::spawn().await;
    let dup = json!({"payload": [
        {"slug": "show/a", "title": "A", "drm": true, "episodeCount": 1},
        {"slug": "show/a", "title": "B", "drm": true, "episodeCount": 1}
    ]});
    let v = assert_envelope(app.post_feed(&dup).await, 400).await;
    assert_eq!(v["details"][0]["path"], "payload[1].slug");
    assert!(
        v["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("show/a")
    );

    let v = assert_envelope(app.post_feed(&json!({"payload": []})).await, 400).await;
    assert_eq!(v["details"][0]["path"], "payload");
    let v = assert_envelope(app.post_feed(&feed("over", 1001)).await, 400).await;
    assert_eq!(v["details"][0]["path"], "payload");
    assert!(app.catalogue_slugs().await.is_empty());

    assert_eq!(app.post_feed(&feed("max", 1000)).await.status(), 201);
    assert_eq!(app.catalogue_slugs().await.len(), 1000);
}

#[tokio::test]
async fn wrong_content_type_is_415_and_oversized_bodies_are_413() {
    let mut app = TestApp::spawn_with(&[("APP__SERVER__BODYLIMITBYTES", "4096")]).await;
    let body = serde_json::to_vec(&sample_feed()).unwrap();
    for ct in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let res = app.post_raw("/v1/shows", ct, body.clone()).await;
        assert_envelope(res, 415).await;
    }
    let res = app
        .post_raw(
            "/v1/shows",
            "application/json; charset=utf-8",
            serde_json::to_vec(&feed("s", 1)).unwrap(),
        )
        .await;
    assert_eq!(res.status(), 201, "charset parameter accepted");
    let big = serde_json::to_vec(&feed("big", 200)).unwrap();
    assert!(big.len() > 4096);
    let res = app.post_raw("/v1/shows", "application/json", big).await;
    assert_envelope(res, 413).await;
    assert_eq!(app.catalogue_slugs().await, vec!["show/s0".to_string()]);
}

#[tokio::test]
async fn unknown_fields_are_accepted_and_not_stored() {
    let mut app = TestApp::spawn().await;
    let body = json!({"payload": [{"slug": "show/x", "title": "X", "futureField": {"a": 1}}], "extra": true});
    assert_eq!(app.post_feed(&body).await.status(), 201);
    let mut v: Value = app.get("/v1/shows/show/x").await.json().await.unwrap();
    for k in ["owner", "createdAt", "updatedAt", "updatedBy"] {
        assert!(v.as_object_mut().unwrap().remove(k).is_some(), "{k}");
    }
    assert_eq!(v, json!({"slug": "show/x", "title": "X"}));
}
