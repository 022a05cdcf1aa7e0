//! Storage faults on the embedded store, injected under the running process: its files
//! made immutable (`chattr +i`, the closest a test comes to a disk that turns read-only),
//! and its folder on a small tmpfs that fills up. For each: the process stays alive, writes
//! answer 503 with `Retry-After` and change nothing, reads are served from the catalogue
//! cache or answer 503, `/health` stays 200, `/health/ready` reports the store, and once
//! the fault is removed writes succeed again without a restart.
//!
//! They need root (`chattr +i` needs CAP_LINUX_IMMUTABLE, `mount` CAP_SYS_ADMIN), as
//! `scripts/test.sh` runs in CI; without it they fail and say so. Guards undo the fault
//! (immutable flags, mounts) even when an assertion fails. `bench/storage-faults.sh`
//! repeats both faults for the "no process death in 20 runs" figure.

use crate::helpers::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SQLITE: (&str, &str) = ("APP__STORE__KIND", "sqlite");

/// Runs a privileged command; a failure names what the test needs.
fn privileged(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} cannot run ({e}): this test needs {program} (root)"));
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}\nThis test injects storage faults and needs root \
         (chattr +i: CAP_LINUX_IMMUTABLE; mount: CAP_SYS_ADMIN), as scripts/test.sh has in CI, \
         and a temporary folder (TMPDIR) on a file system with immutable flags (ext4, xfs, \
         tmpfs since Linux 6.0).",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The store's files (`shows.db`, `-wal`, …) made immutable; `chattr -i` again on drop.
struct Immutable {
    files: Vec<PathBuf>,
}

impl Immutable {
    fn set(dir: &Path) -> Immutable {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("shows.db"))
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no store files in {}", dir.display());
        let guard = Immutable { files };
        privileged("chattr", &guard.args("+i"));
        guard
    }

    fn args(&self, flag: &'static str) -> Vec<&str> {
        std::iter::once(flag)
            .chain(self.files.iter().map(|p| p.to_str().unwrap()))
            .collect()
    }

    fn clear(&mut self) {
        if !self.files.is_empty() {
            let _ = Command::new("chattr").args(self.args("-i")).status();
            self.files.clear();
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A tmpfs of `size` mounted on a new temporary folder; unmounted on drop.
struct Tmpfs {
    dir: Arc<tempfile::TempDir>,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let path = dir.path().to_str().unwrap().to_string();
        privileged(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &path],
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.dir.path();
        let ok = Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still in use (the service not reaped yet): detach it now, freed when unused.
            let _ = Command::new("umount").arg("-l").arg(path).status();
        }
    }
}

/// Fills the file system holding `dir` with a filler file until it is full.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut small = [0u8; 512];
    small.fill(1);
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    filler
}

async fn ready(app: &TestApp) -> reqwest::Response {
    app.client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap()
}

fn assert_alive(app: &mut TestApp, when: &str) {
    let status = app.child.as_mut().expect("running").try_wait().unwrap();
    assert!(status.is_none(), "the service died {when}: {status:?}");
}

/// What a client sees while the store is faulty: every write refused with 503 and
/// `Retry-After`, reads from the cache (or 503), liveness up, readiness naming the store.
async fn assert_faulty(app: &mut TestApp, before: &[String]) {
    let res = app.post_feed(&feed("lost", 1000)).await;
    assert!(res.headers().contains_key("retry-after"), "{res:?}");
    assert_envelope(res, 503).await;
    assert_alive(app, "after a write to the faulty store");
    let res = app.delete("/v1/shows/show/sample-000002").await;
    assert!(res.headers().contains_key("retry-after"), "{res:?}");
    assert_envelope(res, 503).await;

    let res = app.get("/v1/shows").await;
    match res.status().as_u16() {
        200 => {
            let v: Value = res.json().await.unwrap();
            let slugs: Vec<String> = rows(&v).into_iter().map(|r| r.0).collect();
            assert_eq!(slugs, before, "the catalogue changed under the fault");
        }
        503 => assert!(res.headers().contains_key("retry-after")),
        other => panic!("GET /v1/shows under the fault answered {other}"),
    }
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200, "liveness");
    let res = ready(app).await;
    assert_eq!(res.status(), 503, "readiness under the fault");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["store"], "sqlite: unavailable", "{v}");
    assert_alive(app, "under the fault");
}

/// Once the fault is gone: writes succeed again (retrying a 503 as a client would), what
/// was refused is absent, and readiness comes back.
async fn assert_recovered(app: &mut TestApp, before: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = app.post_feed(&feed("after", 3)).await;
        match res.status().as_u16() {
            201 => break,
            503 if Instant::now() < deadline => {
                assert!(res.headers().contains_key("retry-after"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => panic!("POST after the fault answered {other}"),
        }
    }
    let mut expected: Vec<String> = before.to_vec();
    expected.extend((0..3).map(|i| format!("show/after{i}")));
    expected.sort();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let slugs = app.catalogue_slugs().await;
        if slugs == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "catalogue after recovery: {slugs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ready(app).await.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "readiness did not come back");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_alive(app, "after the fault was removed");
}

/// Posts the sample feed and returns the catalogue it makes.
async fn seed(app: &mut TestApp) -> Vec<String> {
    assert_eq!(app.post_feed(&sample_feed()).await.status(), 201);
    let slugs = app.catalogue_slugs().await;
    let expected: Vec<String> = sample_expected().into_iter().map(|r| r.0).collect();
    assert_eq!(slugs, expected);
    slugs
}

#[tokio::test]
async fn store_files_made_immutable_mid_run_answer_503_and_writes_recover() {
    let mut app = TestApp::spawn_with(&[SQLITE]).await;
    let before = seed(&mut app).await;
    let mut fault = Immutable::set(app.data.path());
    assert_faulty(&mut app, &before).await;
    fault.clear();
    assert_recovered(&mut app, &before).await;
}

#[tokio::test]
async fn a_store_folder_that_fills_up_answers_503_and_writes_recover_once_space_is_freed() {
    let disk = Tmpfs::mount("4m");
    let mut app = TestApp::start(
        disk.dir.clone(),
        vec![(SQLITE.0.into(), SQLITE.1.into())],
        0,
    )
    .await;
    let before = seed(&mut app).await;
    let filler = fill(disk.dir.path());
    assert_faulty(&mut app, &before).await;
    std::fs::remove_file(filler).unwrap();
    assert_recovered(&mut app, &before).await;
    drop(app); // the service first, then the mount
}
