//! The router driven in-process with `tower::ServiceExt::oneshot` (no socket): the route
//! table `http::API_ROUTES` — which the infra tests compare with API Gateway's routes —
//! agrees with the real router, and each route requires exactly its scope.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use show_service::auth::{Auth, Scope};
use show_service::config::Settings;
use show_service::http::{API_ROUTES, AppState, router};
use show_service::store::sqlite::SqliteStore;
use std::sync::Arc;
use tower::ServiceExt;

struct Fixture {
    app: axum::Router,
    settings: Settings,
    _dir: tempfile::TempDir,
}

/// Settings and app state on a SQLite store in `dir`, with `extra` settings on top.
async fn state(dir: &std::path::Path, extra: &[(&str, &str)]) -> (Settings, AppState) {
    let path = dir.join("shows.db");
    let vars = [("APP__STORE__PATH".to_string(), path.display().to_string())]
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = Settings::load(None, vars).unwrap();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let auth = Auth::from_settings(&settings).await.unwrap();
    (settings.clone(), AppState::new(settings, store, auth))
}

/// A token of the development client with both scopes.
async fn writer_token(settings: &Settings) -> String {
    show_service::auth::mint_for_cli(
        settings,
        "local-client",
        &["shows.read".into(), "shows.write".into()],
    )
    .await
    .unwrap()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (settings, state) = state(dir.path(), &[]).await;
    let app = router(state);
    Fixture {
        app,
        settings,
        _dir: dir,
    }
}

fn concrete(path: &str) -> String {
    path.replace("{*slug}", "show/x")
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> axum::response::Response {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if method == "POST" {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let body = if method == "POST" {
        Body::from(r#"{"payload":[{"slug":"show/x","title":"X"}]}"#)
    } else {
        Body::empty()
    };
    app.clone().oneshot(req.body(body).unwrap()).await.unwrap()
}

#[tokio::test]
async fn every_listed_route_exists_and_public_ones_need_no_token() {
    let f = fixture().await;
    for route in API_ROUTES {
        let res = call(&f.app, route.method, &concrete(route.path), None).await;
        let status = res.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{route:?}");
        match route.scope {
            None => assert!(status.is_success(), "{route:?}: {status}"),
            Some(_) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{route:?}");
                let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
                assert!(challenge.contains("invalid_token"), "{challenge}");
            }
        }
    }
}

#[tokio::test]
async fn each_route_requires_exactly_its_scope() {
    let f = fixture().await;
    for held in Scope::ALL {
        let token = show_service::auth::mint_for_cli(
            &f.settings,
            "local-client",
            &[held.name().to_string()],
        )
        .await
        .unwrap();
        for route in API_ROUTES.iter().filter(|r| r.scope.is_some()) {
            let res = call(&f.app, route.method, &concrete(route.path), Some(&token)).await;
            let status = res.status();
            if route.scope == Some(held) {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{route:?} with {held:?}: {status}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{route:?} with {held:?}");
                let challenge = res.headers()[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .to_string();
                let want = format!(
                    "{}/{}",
                    f.settings.auth.resource_server,
                    route.scope.unwrap().name()
                );
                assert!(
                    challenge.contains("insufficient_scope") && challenge.contains(&want),
                    "{challenge}"
                );
            }
        }
    }
}

#[tokio::test]
async fn routing_errors_carry_the_envelope() {
    let f = fixture().await;
    for (method, path, status) in [
        ("GET", "/nope", 404),
        ("PUT", "/v1/shows", 405),
        ("POST", "/health", 405),
    ] {
        let res = call(&f.app, method, path, None).await;
        assert_eq!(res.status().as_u16(), status, "{method} {path}");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].is_string() && v["requestId"].is_string(), "{v}");
    }
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_in_the_envelope_and_its_message_stays_inside() {
    let dir = tempfile::tempdir().unwrap();
    let (_, state) = state(dir.path(), &[]).await;
    let boom = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("secret internal detail");
            }
            "unreachable"
        }),
    );
    let app = show_service::http::middleware::wrap(boom, state);

    for _ in 0..2 {
        let res = call(&app, "GET", "/boom", None).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.headers().contains_key("x-request-id"));
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("secret"), "{text}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].is_string() && v["requestId"].is_string(), "{v}");
    }
    // The service goes on answering after a panic.
    let res = call(&app, "GET", "/nope", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let dir = tempfile::tempdir().unwrap();
    let (_, state) = state(
        dir.path(),
        &[("APP__CORS__ALLOWEDORIGINS", "https://app.example")],
    )
    .await;
    let app = router(state);

    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/v1/shows")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
            .body(Body::empty())
            .unwrap()
    };
    let res = app
        .clone()
        .oneshot(preflight("https://app.example"))
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    let res = app
        .clone()
        .oneshot(preflight("https://evil.example"))
        .await
        .unwrap();
    assert!(
        !res.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    // A simple request from the allowed origin, with `padding` bytes in one more header.
    let simple = |uri: &str, padding: usize| {
        let req = Request::builder()
            .uri(uri)
            .header(header::ORIGIN, "https://app.example");
        let req = match padding {
            0 => req,
            n => req.header("x-padding", "a".repeat(n)),
        };
        req.body(Body::empty()).unwrap()
    };
    // It sees the request id header.
    let res = app.clone().oneshot(simple("/health", 0)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    let exposed = res.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert!(exposed.contains("changes-cursor"), "{exposed}");

    // So do the answers the layers give themselves (here 431), not only the routes'.
    let res = app
        .clone()
        .oneshot(simple("/v1/shows", 17 * 1024))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(
        res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
}

/// The body limit holds for bodies that don't declare their length (chunked), on the feed
/// route and on the token endpoint, and a refused feed writes nothing.
#[tokio::test]
async fn bodies_past_the_limit_are_413_declared_or_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, state) = state(dir.path(), &[("APP__SERVER__BODYLIMITBYTES", "4096")]).await;
    let app = router(state);
    let token = writer_token(&settings).await;
    let items: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"slug":"show/big-{i}","title":"Big {i}"}}"#))
        .collect();
    let big = format!(r#"{{"payload":[{}]}}"#, items.join(","));
    assert!(big.len() > 4096);
    // In pieces, with no Content-Length: only the running count can stop it.
    let streamed = |bytes: &str| {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes
            .as_bytes()
            .chunks(1000)
            .map(|c| Ok(c.to_vec()))
            .collect();
        Body::from_stream(futures::stream::iter(chunks))
    };
    for (path, content_type, auth) in [
        ("/v1/shows", "application/json", true),
        ("/oauth/token", "application/x-www-form-urlencoded", false),
    ] {
        for declared in [true, false] {
            let mut req = Request::builder()
                .method("POST")
                .uri(path)
                .header(header::CONTENT_TYPE, content_type);
            if auth {
                req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            // The token form has its own, smaller cap (16 KiB), whatever the server's.
            let bytes = if auth { big.clone() } else { big.repeat(3) };
            let body = if declared {
                Body::from(bytes)
            } else {
                streamed(&bytes)
            };
            let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "{path}, declared length: {declared}"
            );
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(v["error"].is_string(), "{v}");
        }
    }
    // A feed within the limit, streamed, is stored; the refused ones left nothing.
    let small = r#"{"payload":[{"slug":"show/small","title":"Small"}]}"#;
    let req = Request::builder()
        .method("POST")
        .uri("/v1/shows")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(streamed(small))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = call(&app, "GET", "/v1/shows/show/big-0", Some(&token)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// A write runs only while it holds a permit that shutdown waits for: with every permit
/// taken, a feed and a delete are 503 + Retry-After in the envelope, and nothing is
/// written (the store's change record is not even touched).
#[tokio::test]
async fn with_no_write_permit_free_writes_are_503_and_write_nothing() {
    use show_service::store::ChangeRecord;
    let dir = tempfile::tempdir().unwrap();
    let (settings, state) = state(dir.path(), &[]).await;
    let app = router(state.clone());
    let token = writer_token(&settings).await;
    // show/x is stored while permits are free.
    assert_eq!(
        call(&app, "POST", "/v1/shows", Some(&token)).await.status(),
        StatusCode::CREATED
    );
    let version = state.store.change_record().await.unwrap();
    assert!(
        matches!(version, ChangeRecord::Version { .. }),
        "{version:?}"
    );

    let all = u32::try_from(state.writes.available_permits()).unwrap();
    let held = state.writes.clone().try_acquire_many_owned(all).unwrap();
    let feed = r#"{"payload":[{"slug":"show/y","title":"Y"}]}"#;
    let post = Request::builder()
        .method("POST")
        .uri("/v1/shows")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(feed))
        .unwrap();
    let refused = [
        app.clone().oneshot(post).await.unwrap(),
        call(&app, "DELETE", "/v1/shows/show/x", Some(&token)).await,
    ];
    for res in refused {
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert!(
            res.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].is_string() && v["requestId"].is_string(), "{v}");
    }
    let status = |path: &'static str| {
        let (app, token) = (app.clone(), token.clone());
        async move { call(&app, "GET", path, Some(&token)).await.status() }
    };
    assert_eq!(
        status("/v1/shows/show/x").await,
        StatusCode::OK,
        "not deleted"
    );
    assert_eq!(
        status("/v1/shows/show/y").await,
        StatusCode::NOT_FOUND,
        "not stored"
    );
    assert_eq!(state.store.change_record().await.unwrap(), version);

    // With the permits back, the same delete goes through.
    drop(held);
    assert_eq!(
        call(&app, "DELETE", "/v1/shows/show/x", Some(&token))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(status("/v1/shows/show/x").await, StatusCode::NOT_FOUND);
}
