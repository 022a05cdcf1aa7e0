//! `TestApp`: the real `show-service` binary started on a free loopback port with its
//! own data folder, one typed method per endpoint, stopped on drop.

use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_show-service");

/// Runs `show-service import FILE ARGS…` on the SQLite store at `db`, with text logs and
/// nothing else from the environment.
pub fn run_import(
    file: &std::path::Path,
    db: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("import")
        .arg(file)
        .args(args)
        .env_clear()
        .env("APP__STORE__PATH", db)
        .env("APP__LOG__FORMAT", "text")
        .output()
        .unwrap()
}

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub child: Option<Child>,
    pub data: Arc<tempfile::TempDir>,
    pub client: reqwest::Client,
    /// Every line the service printed on stdout (JSON logs).
    pub logs: Arc<Mutex<Vec<String>>>,
    pub env: Vec<(String, String)>,
    token: Option<String>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    /// Starts the service with extra environment variables, on a fresh data folder (and,
    /// with `SHOW_TEST_STORE=dynamodb`, a fresh DynamoDB table; see [`store_kind`]).
    pub async fn spawn_with(env: &[(&str, &str)]) -> TestApp {
        let data = Arc::new(tempfile::tempdir().expect("tempdir"));
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if store_kind() == "dynamodb" && !env.iter().any(|(k, _)| k == "APP__STORE__KIND") {
            env.extend(dynamodb_env().await);
        }
        TestApp::start(data, env, 0).await
    }

    /// Starts the binary on `data`; port 0 picks a free port (read back from the log).
    pub async fn start(
        data: Arc<tempfile::TempDir>,
        env: Vec<(String, String)>,
        port: u16,
    ) -> TestApp {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("APP_ENV", "local")
            .env("APP__SERVER__PORT", port.to_string())
            .env("APP__STORE__PATH", data.path().join("shows.db"))
            .env("APP__LOG__FORMAT", "json")
            .env("APP__LOG__LEVEL", "info")
            // Generous deadlines: the tests run beside other builds and test processes,
            // and a write that takes longer than production's 8 s on a loaded machine is
            // slow, not wrong. Tests of the deadlines themselves set their own.
            .env("APP__SERVER__REQUESTTIMEOUTMS", "60000")
            .env("APP__DYNAMODB__WRITEDEADLINEMS", "50000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start show-service");
        let stdout = child.stdout.take().expect("stdout");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("\"listening\"") {
                        let _ = tx.send(line.clone());
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let line = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "the service did not start: {}\n{:?}",
                    String::from_utf8_lossy(&out.stderr),
                    logs.lock().unwrap()
                );
            }
        };
        let v: Value = serde_json::from_str(&line).expect("json log line");
        let addr = v["addr"].as_str().expect("addr").to_string();
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        TestApp {
            base: format!("http://{addr}"),
            port,
            child: Some(child),
            data,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            logs,
            env,
            token: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An access token with `scopes` from the local issuer.
    pub async fn token_for(&self, scopes: &str) -> String {
        let res = self
            .client
            .post(self.url("/oauth/token"))
            .basic_auth("local-client", Some("local-secret"))
            .form(&[("grant_type", "client_credentials"), ("scope", scopes)])
            .send()
            .await
            .expect("token request");
        assert_eq!(res.status(), 200, "token endpoint");
        let v: Value = res.json().await.unwrap();
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// A token with both scopes, fetched once.
    pub async fn token(&mut self) -> String {
        if self.token.is_none() {
            self.token = Some(self.token_for("shows.read shows.write").await);
        }
        self.token.clone().unwrap()
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let token = self.token().await;
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn post_raw(
        &mut self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let token = self.token().await;
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn post_feed(&mut self, feed: &Value) -> reqwest::Response {
        self.post_raw(
            "/v1/shows",
            "application/json",
            serde_json::to_vec(feed).unwrap(),
        )
        .await
    }

    pub async fn delete(&mut self, path: &str) -> reqwest::Response {
        let token = self.token().await;
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("DELETE")
    }

    /// The catalogue's slugs, as a sorted list.
    pub async fn catalogue_slugs(&mut self) -> Vec<String> {
        let res = self.get("/v1/shows").await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        let mut slugs: Vec<String> = v["response"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["slug"].as_str().unwrap().to_string())
            .collect();
        slugs.sort();
        slugs
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for the exit, returning how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (st, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("the service did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops this process and starts another on the same data folder and port.
    pub async fn restart(mut self) -> TestApp {
        self.terminate();
        let data = self.data.clone();
        let env = self.env.clone();
        let port = self.port;
        drop(self);
        TestApp::start(data, env, port).await
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The store the apps run on: `sqlite` by default; `SHOW_TEST_STORE=dynamodb` runs every
/// test that does not pin `APP__STORE__KIND` against DynamoDB (dynalite, one per test
/// process, a new table per app).
pub fn store_kind() -> &'static str {
    match std::env::var("SHOW_TEST_STORE").as_deref() {
        Ok("dynamodb") => "dynamodb",
        Ok("sqlite") | Err(_) => "sqlite",
        Ok(other) => panic!("SHOW_TEST_STORE={other}: expected sqlite or dynamodb"),
    }
}

/// Settings for an app on a new table (created here) of the shared emulator.
/// The settings of a fresh DynamoDB table on the shared emulator (several services may be
/// started on it).
pub async fn dynamodb_env() -> Vec<(String, String)> {
    use crate::support::dynalite::Dynalite;
    let store = crate::support::fresh_store(Dynalite::shared(), "api").await;
    vec![
        ("APP__STORE__KIND".into(), "dynamodb".into()),
        (
            "APP__DYNAMODB__ENDPOINTOVERRIDE".into(),
            Dynalite::shared().endpoint(),
        ),
        (
            "APP__DYNAMODB__SHOWSTABLE".into(),
            store.table().to_string(),
        ),
    ]
}

/// How many times the service logged `message` (its JSON log's `"message"`), from line
/// `from` on.
pub fn count_logged(app: &TestApp, message: &str, from: usize) -> usize {
    let needle = format!("\"message\":\"{message}\"");
    app.log_lines()
        .iter()
        .skip(from)
        .filter(|l| l.contains(&needle))
        .count()
}

/// The sample feed (12 shows, 5 in the catalogue).
pub fn sample_feed() -> Value {
    serde_json::from_slice(include_bytes!("../fixtures/feed-12.json")).unwrap()
}

/// The expected catalogue of the sample feed, as sorted (slug, title, image) rows.
pub fn sample_expected() -> Vec<(String, String, String)> {
    let v: Value =
        serde_json::from_slice(include_bytes!("../fixtures/feed-12.expected.json")).unwrap();
    rows(&v)
}

pub fn rows(v: &Value) -> Vec<(String, String, String)> {
    let mut rows: Vec<_> = v["response"]
        .as_array()
        .expect("response array")
        .iter()
        .map(|i| {
            (
                i["slug"].as_str().unwrap().to_string(),
                i["title"].as_str().unwrap().to_string(),
                i["image"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// A feed of `n` valid shows named `show/<prefix><i>`, all in the catalogue.
pub fn feed(prefix: &str, n: usize) -> Value {
    let payload: Vec<Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "slug": format!("show/{prefix}{i}"),
                "title": format!("Show {i}"),
                "drm": true,
                "episodeCount": i + 1,
            })
        })
        .collect();
    serde_json::json!({ "payload": payload })
}

/// Asserts the error envelope: JSON with `error` and `requestId`, the id echoed.
pub async fn assert_envelope(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    let ct = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let id = res
        .headers()
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = res.json().await.expect("JSON body");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert_eq!(v["requestId"].as_str(), Some(id.as_str()), "{v}");
    v
}
