//! dynalite, the DynamoDB emulator the tests run against, started on a free loopback port.
//!
//! The binary is `SHOW_TEST_DYNALITE`, else `.tools/node/node_modules/.bin/dynalite` under
//! the crate (installed by `scripts/install-test-tools.sh`, with the `TransactWriteItems`
//! action dynalite lacks added from `scripts/dynalite/`). When neither exists the test
//! fails, saying so: a DynamoDB test never passes by skipping.
//!
//! Each emulator runs under a small `sh` guard that holds a pipe from the test process:
//! when the pipe closes — [`Dynalite::stop`], drop, or the test process ending in any way,
//! even killed — the guard kills dynalite and waits for it. So the one emulator a test
//! binary shares ([`Dynalite::shared`], a static that is never dropped) does not outlive it.
//! Tests share an emulator by using their own uniquely named tables ([`unique_table`]).

#![allow(dead_code)] // each test binary uses a different part

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long dynalite may take to answer after it was started (it needs ~0.4 s).
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Kills `$@` (dynalite, started in the background) when standard input closes.
const GUARD: &str = r#""$@" </dev/null & pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
read -r _ignored || true"#;

/// A running (or stopped) dynalite.
pub struct Dynalite {
    port: u16,
    /// `--path`: the data folder, kept across [`Dynalite::restart`]; `None`: in memory.
    path: Option<PathBuf>,
    log: PathBuf,
    running: Option<Running>,
}

struct Running {
    guard: Child,
    /// Closing it stops dynalite.
    pipe: ChildStdin,
}

/// The dynalite executable (see the module doc); panics with the remedy when missing.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SHOW_TEST_DYNALITE") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SHOW_TEST_DYNALITE={} does not exist; unset it or run scripts/install-test-tools.sh",
            p.display()
        );
        return p;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/node/node_modules/.bin/dynalite");
    assert!(
        p.is_file(),
        "the DynamoDB emulator is not installed ({} is missing): run scripts/install-test-tools.sh \
         (or set SHOW_TEST_DYNALITE to a dynalite executable)",
        p.display()
    );
    p
}

/// A table name no other test uses.
pub fn unique_table(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Dynalite {
    /// The emulator shared by every test of this test binary (in memory).
    pub fn shared() -> &'static Dynalite {
        static SHARED: OnceLock<Dynalite> = OnceLock::new();
        SHARED.get_or_init(|| Dynalite::start(None))
    }

    /// A new emulator on a free port; with `path`, its data persists there across
    /// [`Dynalite::restart`].
    pub fn start(path: Option<&Path>) -> Dynalite {
        let mut last_error = String::new();
        // A free port can be taken between choosing and binding it: try a few.
        for _ in 0..3 {
            let port = free_port();
            let mut d = Dynalite {
                port,
                path: path.map(Path::to_path_buf),
                log: std::env::temp_dir().join(format!("dynalite-{port}.log")),
                running: None,
            };
            match d.launch() {
                Ok(()) => return d,
                Err(e) => last_error = e,
            }
        }
        panic!("dynalite did not start: {last_error}");
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the emulator and waits until it has exited (its port is free again).
    pub fn stop(&mut self) {
        if let Some(Running { mut guard, pipe }) = self.running.take() {
            drop(pipe);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match guard.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = guard.kill();
                        let _ = guard.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Starts it again on the same port (and data folder).
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.launch() {
            panic!("dynalite did not restart on port {}: {e}", self.port);
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(&self.log).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(GUARD)
            .arg("dynalite-guard")
            .arg(binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--createTableMs",
                "0",
                "--deleteTableMs",
                "0",
                "--updateTableMs",
                "0",
            ]);
        if let Some(path) = &self.path {
            cmd.arg("--path").arg(path);
        }
        let mut guard = cmd
            .stdin(Stdio::piped())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run sh: {e}"))?;
        let pipe = guard.stdin.take().ok_or("no stdin pipe")?;
        self.running = Some(Running { guard, pipe });

        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            let exited = self
                .running
                .as_mut()
                .and_then(|r| r.guard.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.running = None;
                return Err(format!("exited with {status}: {}", self.log_text()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(format!(
            "no answer on {addr} within {START_TIMEOUT:?}: {}",
            self.log_text()
        ))
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Dynalite {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}
