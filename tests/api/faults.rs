//! Store faults and limits: the store of a running service refused to a second process
//! (an import or a second server, each told what it should do instead), the request
//! timeout, load shedding. Each answers with a clear error, writes nothing, and recovers.
//! They pin SQLite (DynamoDB's outage is tested in `tests/dynamodb.rs`; the embedded
//! store's disk faults in `storage_faults.rs`).

use crate::helpers::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// These tests need the SQLite store, whatever `SHOW_TEST_STORE` says.
const SQLITE: &[(&str, &str)] = &[("APP__STORE__KIND", "sqlite")];

/// Starts a POST whose body never finishes arriving: the request holds its slot and runs
/// into the request timeout. The returned stream reads the answer.
async fn hold_post(app: &TestApp, token: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/shows HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"payload\":[",
        app.port
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// The answer on `stream`, up to the server closing it (bounded).
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn import_into_the_store_of_a_running_service_is_refused_in_one_line() {
    let mut app = TestApp::spawn_with(SQLITE).await;
    assert_eq!(app.post_feed(&feed("live", 3)).await.status(), 201);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feed.json");
    std::fs::write(&file, serde_json::to_vec(&feed("imp", 50)).unwrap()).unwrap();
    let db = app.data.path().join("shows.db");
    let started = Instant::now();
    let out = run_import(&file, &db, &[]);
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(20), "no hang");
    let err = String::from_utf8_lossy(&out.stderr);
    // The failure is the last line (import first says which file it writes).
    error_line_naming(
        &err,
        &[
            db.to_str().unwrap(),
            "held by another process",
            "POST the feed",
            "stop it",
        ],
    );
    // Nothing was written, and the running service still writes.
    assert_eq!(app.catalogue_slugs().await.len(), 3);
    assert_eq!(app.post_feed(&feed("live", 4)).await.status(), 201);
    assert_eq!(app.catalogue_slugs().await.len(), 4);
}

#[tokio::test]
async fn a_second_serve_on_the_store_of_a_running_service_is_told_to_stop_it_or_move() {
    let mut app = TestApp::spawn_with(SQLITE).await;
    assert_eq!(app.post_feed(&feed("live", 3)).await.status(), 201);
    let db = app.data.path().join("shows.db");
    let mut second = std::process::Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("APP__STORE__PATH", &db)
        .env("APP__SERVER__HOST", "127.0.0.1")
        .env("APP__SERVER__PORT", "0")
        .env("APP__LOG__FORMAT", "text")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a second server that did start is stopped and fails the test.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status = status.expect("the second serve exits instead of serving");
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    let line = error_line_naming(
        &err,
        &[
            db.to_str().unwrap(),
            "held by another process",
            "stop that process",
            "APP__STORE__PATH",
        ],
    );
    // The advice for `import` is not given to a server.
    for part in ["POST the feed", "importing"] {
        assert!(!line.contains(part), "{part:?} in {line}");
    }
    // The running service still serves and writes.
    assert_eq!(app.post_feed(&feed("live", 4)).await.status(), 201);
    assert_eq!(app.catalogue_slugs().await.len(), 4);
}

#[tokio::test]
async fn a_request_over_the_timeout_gets_503() {
    let mut app = TestApp::spawn_with(&[SQLITE[0], ("APP__SERVER__REQUESTTIMEOUTMS", "300")]).await;
    let token = app.token().await;
    let started = Instant::now();
    let mut slow = hold_post(&app, &token).await;
    let answer = read_answer(&mut slow).await;
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after:"),
        "{answer}"
    );
    assert!(answer.contains("timed out"), "{answer}");
    assert!(
        took < Duration::from_secs(10),
        "answered at the timeout, took {took:?}"
    );
    assert_eq!(app.post_feed(&feed("t", 5)).await.status(), 201);
}

#[tokio::test]
async fn requests_past_the_concurrency_limit_are_shed_not_queued() {
    let mut app = TestApp::spawn_with(&[SQLITE[0], ("APP__SERVER__MAXCONCURRENCY", "1")]).await;
    let token = app.token().await;
    // One POST whose body never completes occupies the only slot.
    let slow = hold_post(&app, &token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = app.get("/v1/shows").await;
    let v = assert_envelope(res, 503).await;
    assert!(v["error"].as_str().unwrap().contains("capacity"), "{v}");
    // Probes are exempt, so the load balancer does not kill a busy task.
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    drop(slow);
    // The slot frees once the server sees the hang-up; a client retries its 503.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = app.get("/v1/shows").await.status();
        if status == 200 {
            break;
        }
        assert!(status == 503 && Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last line of a command's stderr, which must be its one error line and name every
/// one of `parts`.
fn error_line_naming<'a>(err: &'a str, parts: &[&str]) -> &'a str {
    let line = err
        .lines()
        .last()
        .filter(|l| l.starts_with("show-service: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    for part in parts {
        assert!(line.contains(part), "{part:?} missing in {line}");
    }
    line
}
