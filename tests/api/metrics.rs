//! The metrics exporters against the real binary: the Prometheus listener (what it serves,
//! what moves, a port that cannot be bound) and the CloudWatch EMF documents on stdout.

use crate::helpers::*;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the exposition's sample `series` (name and labels as rendered), or 0.
pub fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn the_metrics_listener_serves_the_exposition_and_nothing_else() {
    let port = free_port();
    let mut app = TestApp::spawn_with(&[("APP__METRICS__PORT", &port.to_string())]).await;
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let scrape = |client: reqwest::Client| {
        let url = metrics.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let series = r#"http_requests_total{route="/v1/shows",method="GET",status="200"}"#;
    let before = sample(&scrape(app.client.clone()).await, series);
    for _ in 0..3 {
        assert_eq!(app.get("/v1/shows").await.status(), 200);
    }
    // A raw path never becomes a label: the unmatched route is one series.
    app.client
        .get(app.url("/no/such/<script>"))
        .send()
        .await
        .unwrap();
    let text = scrape(app.client.clone()).await;
    assert_eq!(sample(&text, series) - before, 3.0, "{text}");
    assert!(
        text.contains("# TYPE http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(!text.contains("script"), "{text}");
    // The listener answers nothing but the exposition; the API does not serve it.
    for path in ["/", "/v1/shows", "/metrics/x"] {
        let res = app
            .client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    assert_eq!(
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[test]
fn a_metrics_port_that_cannot_be_bound_stops_start_up_with_one_line_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .env_clear()
        .env("APP_ENV", "local")
        .env("APP__SERVER__PORT", "0")
        .env("APP__STORE__PATH", dir.path().join("shows.db"))
        .env("APP__METRICS__PORT", &port)
        .output()
        .unwrap();
    assert!(!out.status.success());
    // `serve` reports its failure in its log (stdout); nothing else is printed.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains("APP__METRICS__PORT") && lines[0].contains(&port),
        "{text}"
    );
}

#[tokio::test]
async fn emf_documents_reach_stdout_at_the_interval() {
    let app = TestApp::spawn_with(&[("APP__METRICS__EMFINTERVALSECONDS", "1")]).await;
    app.client.get(app.url("/nope")).send().await.unwrap();
    let started = Instant::now();
    let doc = loop {
        let found = app
            .log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["_aws"].is_object() && v["status_class"] == "4xx");
        match found {
            Some(doc) => break doc,
            None if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            None => panic!("no EMF document in {:?}", app.log_lines()),
        }
    };
    assert_eq!(doc["Environment"], "local");
    assert_eq!(doc["http_requests_total"], 1, "{doc}");
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "ShowService");
    assert_eq!(
        directive["Dimensions"],
        serde_json::json!([["Environment", "status_class"]])
    );
    assert_eq!(directive["Metrics"][0]["Unit"], "Count");
}

#[tokio::test]
async fn the_last_intervals_emf_documents_are_written_when_the_server_stops() {
    // An interval far longer than the test: only the flush at shutdown can write these.
    let mut app = TestApp::spawn_with(&[("APP__METRICS__EMFINTERVALSECONDS", "3600")]).await;
    for _ in 0..2 {
        app.client.get(app.url("/nope")).send().await.unwrap();
    }
    let (status, _) = app.terminate();
    assert!(status.success(), "{status:?}");
    // The documents come before the last log line; stdout is read by another thread.
    let started = Instant::now();
    while !app.log_lines().iter().any(|l| l.contains("\"stopped\"")) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no \"stopped\" line in {:?}",
            app.log_lines()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let docs: Vec<Value> = app
        .log_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["_aws"].is_object())
        .collect();
    let not_found: Vec<&Value> = docs.iter().filter(|d| d["status_class"] == "4xx").collect();
    assert_eq!(not_found.len(), 1, "{docs:?}");
    assert_eq!(not_found[0]["http_requests_total"], 2, "{docs:?}");
    assert_eq!(
        not_found[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "ShowService"
    );
}

/// `name` from PATH; the test tools script installs it.
fn tool(name: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: run scripts/install-test-tools.sh"))
}

/// A real Prometheus server scrapes the service every second while it answers a known
/// sequence of requests; its HTTP API must then report exactly that many more requests,
/// feeds, shows written and store write calls; promtool accepts the exposition.
#[tokio::test]
async fn a_real_prometheus_sees_the_requests_and_writes_promtool_accepts_the_exposition() {
    let (metrics_port, prom_port) = (free_port(), free_port());
    let mut app = TestApp::spawn_with(&[("APP__METRICS__PORT", &metrics_port.to_string())]).await;
    let token = app.token().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: show-service\n    \
             static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let mut prometheus = std::process::Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prometheus");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prometheus = Kill(&mut prometheus);

    let client = app.client.clone();
    let query = |q: &str| {
        let (client, url, q) = (
            client.clone(),
            format!("http://127.0.0.1:{prom_port}/api/v1/query"),
            q.to_string(),
        );
        async move {
            let res = client.get(url).query(&[("query", q)]).send().await.ok()?;
            let v: Value = res.json().await.ok()?;
            let result = v["data"]["result"].as_array()?.first()?.clone();
            result["value"][1].as_str()?.parse::<f64>().ok()
        }
    };
    let reads =
        r#"sum(http_requests_total{route="/v1/shows",method="GET",status="200"}) or vector(0)"#;
    let feeds = r#"sum(feeds_total{outcome="accepted"}) or vector(0)"#;
    let shows = "sum(shows_written_total) or vector(0)";
    // The feed is one store write call: SQLite's `upsert`, or one DynamoDB
    // TransactWriteItems (7 puts) and the change record's two UpdateItems (before and
    // after it). Reads are left out: how often the
    // catalogue cache goes to the store depends on the clock.
    let (store, write_calls) = match store_kind() {
        "dynamodb" => ("dynamodb", r#"operation=~"TransactWriteItems|UpdateItem""#),
        _ => ("sqlite", r#"operation="upsert""#),
    };
    let writes = format!(
        r#"sum(store_calls_total{{store="{store}",{write_calls},outcome="ok"}}) or vector(0)"#
    );
    let failed = r#"sum(store_calls_total{outcome!="ok"}) or vector(0)"#;
    let all = || async {
        [
            query(reads).await,
            query(feeds).await,
            query(shows).await,
            query(&writes).await,
            query(failed).await,
        ]
    };
    // Wait until Prometheus scrapes the service (the target is up), generously.
    let deadline = Instant::now() + Duration::from_secs(60);
    while query(r#"up{job="show-service"} == 1"#).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped the service"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let before = all().await;
    let before = before.map(|v| v.unwrap_or(0.0));

    for _ in 0..4 {
        assert_eq!(app.get("/v1/shows").await.status(), 200);
    }
    assert_eq!(app.post_feed(&feed("prom", 7)).await.status(), 201);
    let res = app
        .client
        .post(app.url("/v1/shows"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    let writes_expected = if store == "dynamodb" { 3.0 } else { 1.0 };
    let expected = [4.0, 1.0, 7.0, writes_expected, 0.0];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = all().await;
        let moved: Vec<f64> = now
            .iter()
            .zip(before)
            .map(|(n, b)| n.unwrap_or(0.0) - b)
            .collect();
        if moved == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus saw {moved:?} more (reads, accepted feeds, shows written, store \
             write calls, failed store calls), expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rejected = r#"sum(feeds_total{outcome="rejected"}) or vector(0)"#;
    assert_eq!(query(rejected).await, Some(1.0));

    let exposition = app
        .client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let out = std::process::Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .output_with_stdin(exposition.as_bytes())
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `Command::output` with bytes on stdin.
trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &[u8]) -> Option<std::process::Output>;
}

impl OutputWithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &[u8]) -> Option<std::process::Output> {
        use std::io::Write as _;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(input).ok()?;
        child.wait_with_output().ok()
    }
}
