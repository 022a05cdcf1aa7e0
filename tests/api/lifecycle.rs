//! Start-up, persistence across restarts, graceful shutdown, and the other subcommands.

use crate::helpers::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn data_survives_a_restart() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.post_feed(&sample_feed()).await.status(), 201);
    let mut app = app.restart().await;
    let v: Value = app.get("/v1/shows").await.json().await.unwrap();
    assert_eq!(rows(&v), sample_expected());
}

#[tokio::test]
async fn data_survives_a_kill() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.post_feed(&feed("k", 300)).await.status(), 201);
    let mut child = app.child.take().unwrap();
    child.kill().unwrap(); // SIGKILL: no shutdown code runs
    child.wait().unwrap();
    let data = app.data.clone();
    let env = app.env.clone();
    drop(app);
    let mut app = TestApp::start(data, env, 0).await;
    assert_eq!(app.catalogue_slugs().await.len(), 300);
}

#[tokio::test]
async fn sigterm_turns_readiness_off_then_finishes_and_exits() {
    let app = TestApp::spawn_with(&[("APP__SERVER__DRAINSECONDS", "1")]).await;
    let mut app = app;
    let client = app.client.clone();
    let ready_url = app.url("/health/ready");
    assert_eq!(client.get(&ready_url).send().await.unwrap().status(), 200);
    let pid = app.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // During the drain delay the listener still answers, but says not ready.
    let res = client.get(&ready_url).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["accepting"], false);
    // Requests are still served during the drain.
    assert_eq!(
        client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let mut child = app.child.take().unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "exits within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    for (name, value) in [
        ("APP__SERVER__PORT", "eighty"),
        ("APP_ENV", "staging"),
        ("APP__STORE__KIND", "mongo"),
    ] {
        let out = Command::new(BIN)
            .env_clear()
            .env(name, value)
            .env("APP__STORE__PATH", "/nonexistent/never/created.db")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(name) && err.contains(value), "{err}");
    }
}

/// The built-in issuer (and its well-known write-capable client) never starts outside
/// `APP_ENV=local`: `APP_ENV=prod APP__AUTH__MODE=local` used to serve it on 0.0.0.0.
#[test]
fn local_auth_mode_outside_the_local_environment_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("APP_ENV", "prod")
        .env("APP__AUTH__MODE", "local")
        .env("APP__STORE__KIND", "sqlite")
        .env("APP__STORE__PATH", dir.path().join("shows.db"))
        .env("APP__SERVER__HOST", "127.0.0.1")
        .env("APP__SERVER__PORT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Before the fix it served; wait a generous while, then call that a failure.
    let started = std::time::Instant::now();
    while out.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = out.kill();
            panic!("the service started with APP_ENV=prod APP__AUTH__MODE=local");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = out.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("APP__AUTH__MODE") && err.contains("APP_ENV"),
        "{err}"
    );
    // Stopped before anything was created: no database, no issuer key.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn import_loads_a_feed_file_and_refuses_an_invalid_one_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shows.db");
    let file = dir.path().join("feed.json");
    std::fs::write(&file, serde_json::to_vec(&feed("imp", 2500)).unwrap()).unwrap();
    let out = Command::new(BIN)
        .args(["import", file.to_str().unwrap(), "--chunk", "700"])
        .env_clear()
        .env("APP__STORE__PATH", &db)
        .env("APP__LOG__FORMAT", "text")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("imported 2500 shows"));

    let mut bad = feed("bad", 10);
    bad["payload"][9]["slug"] = "BAD".into();
    std::fs::write(&file, serde_json::to_vec(&bad).unwrap()).unwrap();
    let out = Command::new(BIN)
        .args(["import", file.to_str().unwrap()])
        .env_clear()
        .env("APP__STORE__PATH", &db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("payload[9].slug") && err.contains("nothing was written"),
        "{err}"
    );

    let data = std::sync::Arc::new(dir);
    let mut app = TestApp::start(data, Vec::new(), 0).await;
    let slugs = app.catalogue_slugs().await;
    assert_eq!(slugs.len(), 2500);
    assert!(slugs.iter().all(|s| s.starts_with("show/imp")));
}

#[tokio::test]
async fn healthcheck_exits_zero_only_when_the_service_answers() {
    let app = TestApp::spawn().await;
    let status = Command::new(BIN)
        .arg("healthcheck")
        .env_clear()
        .env("APP__SERVER__PORT", app.port.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let port = app.port;
    drop(app);
    let status = Command::new(BIN)
        .args(["healthcheck", "--timeout-ms", "500"])
        .env_clear()
        .env("APP__SERVER__PORT", port.to_string())
        .status()
        .unwrap();
    assert!(!status.success());
}
