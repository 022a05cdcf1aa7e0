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
    let out = run_import(&file, &db, &["--chunk", "700"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    // It says which data file it wrote, as an absolute path.
    assert!(
        err.contains(&format!("imported 2500 shows into sqlite {}", db.display())),
        "{err}"
    );

    let mut bad = feed("bad", 10);
    bad["payload"][9]["slug"] = "BAD".into();
    std::fs::write(&file, serde_json::to_vec(&bad).unwrap()).unwrap();
    let out = run_import(&file, &db, &[]);
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

/// Runs the binary in a clean environment with `env`, stdout and stderr captured.
fn run(args: &[&str], env: &[(&str, &str)]) -> (std::process::Output, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn a_failure_is_one_plain_line_or_one_json_line_never_both() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    let (out, stdout, stderr) = run(&["import", missing], &[("APP__LOG__FORMAT", "text")]);
    assert!(!out.status.success());
    assert_eq!(stdout, "", "nothing on stdout");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("show-service: cannot read ") && stderr.contains(missing),
        "{stderr}"
    );

    let (out, stdout, stderr) = run(&["import", missing], &[("APP__LOG__FORMAT", "json")]);
    assert!(!out.status.success());
    assert_eq!(stderr, "", "the JSON log carries it alone");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(
        lines[0]["error"].as_str().unwrap().contains(missing),
        "{stdout}"
    );
}

#[test]
fn an_unknown_variable_is_a_warning_naming_the_nearest_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shows.db");
    let (_, stdout, stderr) = run(
        &["token"],
        &[
            ("APP__STORE__PATH", db.to_str().unwrap()),
            ("APP__SERVER__PORTT", "9000"),
        ],
    );
    assert_eq!(stdout, "");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(
        warnings,
        [
            "show-service: warning: APP__SERVER__PORTT is not a setting and is ignored; did you mean APP__SERVER__PORT?"
        ],
        "{stderr}"
    );
}

#[test]
fn an_unwritable_data_folder_is_named_with_the_missing_permission() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feed.json");
    std::fs::write(&file, serde_json::to_vec(&feed("perm", 3)).unwrap()).unwrap();
    // sysfs refuses new files even to root.
    let (out, stdout, stderr) = run(
        &["import", file.to_str().unwrap()],
        &[
            ("APP__STORE__PATH", "/sys/shows.db"),
            ("APP__LOG__FORMAT", "text"),
        ],
    );
    assert!(!out.status.success());
    assert_eq!(stdout, "");
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        stderr.lines().count(),
        2,
        "the import line, then the failure: {stderr}"
    );
    assert!(
        last.contains("cannot write in the data folder /sys")
            && (last.contains("permission denied") || last.contains("read-only"))
            && last.contains("needs write permission"),
        "{stderr}"
    );
}

#[test]
fn table_create_fails_fast_in_one_line_without_dynamodb_or_credentials() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{closed}");
    let text = ("APP__LOG__FORMAT", "text");
    let no_imds = ("AWS_EC2_METADATA_DISABLED", "true");
    let (out, stdout, stderr) = run(
        &["table", "create", "--wait-seconds", "1"],
        &[
            ("APP__STORE__KIND", "dynamodb"),
            ("APP__DYNAMODB__ENDPOINTOVERRIDE", &endpoint),
            text,
            no_imds,
        ],
    );
    assert!(!out.status.success());
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("DynamoDB at {endpoint} does not answer"))
            && stderr.contains("APP__DYNAMODB__ENDPOINTOVERRIDE"),
        "{stderr}"
    );

    // A region but no credentials: said at once, not retried as "not up yet".
    let home = tempfile::tempdir().unwrap();
    let (out, stdout, stderr) = run(
        &["table", "create"],
        &[
            ("APP__STORE__KIND", "dynamodb"),
            ("AWS_REGION", "eu-west-1"),
            ("HOME", home.path().to_str().unwrap()),
            text,
            no_imds,
        ],
    );
    assert!(!out.status.success());
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no AWS credentials") && stderr.contains("AWS_ACCESS_KEY_ID"),
        "{stderr}"
    );

    // No region anywhere: one line, no instance-metadata dump.
    let (out, stdout, stderr) = run(
        &["table", "create"],
        &[
            ("APP__STORE__KIND", "dynamodb"),
            ("HOME", home.path().to_str().unwrap()),
            text,
        ],
    );
    assert!(!out.status.success());
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no AWS region"), "{stderr}");
    assert!(!stderr.contains("IMDS") && !stdout.contains("IMDS"));
}
