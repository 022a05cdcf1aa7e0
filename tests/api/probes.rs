//! Health, readiness, request ids, trace ids, OpenAPI, routing errors.

use crate::helpers::*;
use serde_json::Value;

#[tokio::test]
async fn health_answers_ok_and_aliases_agree() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/v1/health"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v, serde_json::json!({"message": "ok"}));
    }
}

#[tokio::test]
async fn liveness_does_not_touch_the_store_but_readiness_does() {
    let app = TestApp::spawn().await;
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let v: Value = ready.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["store"], format!("{}: ok", store_kind()));
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = app
        .client
        .get(app.url("/health"))
        .header("apigw-requestid", "Gw1234=")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "Gw1234=");
    let res = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a fresh uuid replaces an unsafe id: {id}");
}

/// Every request's line, successful reads included.
const EVERY_REQUEST_LINE: (&str, &str) = ("APP__LOG__LEVEL", "info,request=debug");

#[tokio::test]
async fn a_request_line_is_one_json_line_with_route_status_latency_and_id() {
    let app = TestApp::spawn_with(&[EVERY_REQUEST_LINE]).await;
    app.client
        .get(app.url("/health"))
        .header("x-request-id", "log-line-test")
        .send()
        .await
        .unwrap();
    let lines = lines_of(&app, "log-line-test").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["target"], "request");
    assert_eq!(line["level"], "DEBUG", "a read that succeeded");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/health");
    assert_eq!(line["status"], 200);
    assert!(line["latency_us"].is_u64());
    assert_eq!(line["client_id"], "-", "no token, no client");
}

#[tokio::test]
async fn writes_and_refusals_are_logged_at_info_successful_reads_only_at_debug() {
    let mut app = TestApp::spawn().await;
    let token = app.token().await;
    let get = |path: &str, id: &'static str| {
        app.client
            .get(app.url(path))
            .bearer_auth(&token)
            .header("x-request-id", id)
    };
    let status =
        |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().status().as_u16() };
    let no_token = app.client.get(app.url("/v1/shows"));
    let write = app.client.post(app.url("/v1/shows")).bearer_auth(&token);
    let statuses = [
        status(get("/v1/shows", "a-read")).await,
        status(get("/v1/shows/no-such-show", "a-missing-show")).await,
        status(no_token.header("x-request-id", "no-token")).await,
        status(write.header("x-request-id", "a-write").json(&sample_feed())).await,
        status(get("/health", "a-probe")).await,
    ];
    assert_eq!(statuses, [200, 404, 401, 201, 200]);
    // A refusal last: once its line is in, every line before it is too (one writer, in order).
    get("/nope", "the-last").send().await.unwrap();
    assert_eq!(lines_of(&app, "the-last").await[0]["level"], "INFO");
    for (id, route, status) in [
        ("a-missing-show", "/v1/shows/{*slug}", 404),
        ("no-token", "/v1/shows", 401),
        ("a-write", "/v1/shows", 201),
    ] {
        let lines = lines_of(&app, id).await;
        assert_eq!(lines.len(), 1, "{id}: {lines:?}");
        assert_eq!(lines[0]["level"], "INFO", "{id}");
        assert_eq!(lines[0]["route"], route, "{id}");
        assert_eq!(lines[0]["status"], status, "{id}");
    }
    let logged: Vec<String> = app.log_lines();
    for quiet in ["a-read", "a-probe"] {
        assert!(
            !logged.iter().any(|l| l.contains(quiet)),
            "{quiet} was logged at info: {logged:?}"
        );
    }
}

#[tokio::test]
async fn the_request_line_names_the_authenticated_client() {
    let mut app = TestApp::spawn_with(&[EVERY_REQUEST_LINE]).await;
    let token = app.token().await;
    app.client
        .get(app.url("/v1/shows"))
        .bearer_auth(token)
        .header("x-request-id", "client-id-test")
        .send()
        .await
        .unwrap();
    let lines = lines_of(&app, "client-id-test").await;
    let line = lines
        .first()
        .unwrap_or_else(|| panic!("no request line in {:?}", app.log_lines()));
    assert_eq!(line["client_id"], "local-client");
    assert_eq!(line["route"], "/v1/shows");
}

/// The request lines whose `request_id` is `id`, waited for (the log lags a moment).
async fn lines_of(app: &TestApp, id: &str) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let found: Vec<Value> = app
            .log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["request_id"] == id)
            .collect();
        if !found.is_empty() || started.elapsed() > std::time::Duration::from_secs(5) {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_request_line_carries_a_valid_trace_id_never_a_hostile_one() {
    let app = TestApp::spawn().await;
    let send = |id: &'static str, header: Option<(&'static str, &'static str)>| {
        let mut req = app.client.get(app.url("/nope")).header("x-request-id", id);
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        async move { assert_eq!(req.send().await.unwrap().status(), 404) }
    };
    let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
    let hostile = "00-\"},{\"forged\":true,\"x\":\"-00f067aa0ba902b7-01";
    send("trace-w3c", Some(("traceparent", w3c))).await;
    send("trace-xray", Some(("x-amzn-trace-id", xray))).await;
    send("trace-hostile", Some(("traceparent", hostile))).await;
    send("trace-none", None).await;
    let trace_of = |lines: Vec<Value>| -> String {
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines[0]["span"]["trace_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no span.trace_id in {}", lines[0]))
            .to_string()
    };
    assert_eq!(
        trace_of(lines_of(&app, "trace-w3c").await),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        trace_of(lines_of(&app, "trace-xray").await),
        "5759e988bd862e3fe1be46a994272793"
    );
    let fresh = [
        trace_of(lines_of(&app, "trace-hostile").await),
        trace_of(lines_of(&app, "trace-none").await),
    ];
    for id in &fresh {
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    }
    assert_ne!(fresh[0], fresh[1]);
    assert!(
        !app.log_lines().iter().any(|l| l.contains("forged")),
        "a hostile traceparent reached the log"
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_in_the_envelope() {
    let mut app = TestApp::spawn().await;
    let res = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_envelope(res, 404).await;
    let res = app.client.put(app.url("/v1/shows")).send().await.unwrap();
    let v = assert_envelope(res, 405).await;
    assert!(v["error"].as_str().unwrap().contains("method"));
    let token = app.token().await;
    let res = app
        .client
        .patch(app.url("/v1/shows/show/a"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_envelope(res, 405).await;
}

#[tokio::test]
async fn openapi_documents_every_route_and_the_error_envelope() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/health", "get"),
        ("/health/ready", "get"),
        ("/v1/shows", "get"),
        ("/v1/shows", "post"),
        ("/v1/shows/{slug}", "get"),
        ("/v1/shows/{slug}", "delete"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} undocumented"
        );
    }
    for schema in [
        "ErrorBody",
        "Show",
        "ListResponse",
        "FeedRequest",
        "Problem",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema}"
        );
    }
    let post = &paths["/v1/shows"]["post"]["responses"];
    for status in ["201", "400", "401", "403", "413", "415", "503"] {
        assert!(
            post.get(status).is_some(),
            "POST /v1/shows documents {status}"
        );
    }
}
