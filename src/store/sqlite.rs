//! The embedded store: one SQLite file in WAL mode, held by one process.
//!
//! Table `shows(slug PRIMARY KEY, drm_key, episode_count, doc)` with an index on
//! `(drm_key, episode_count)` that mirrors the DynamoDB GSI one-to-one: `drm_key` is 1
//! for DRM shows and NULL otherwise, `episode_count` NULL when absent, `doc` the show's
//! JSON. A feed is written in one transaction (all or nothing). One connection writes;
//! a few read, concurrently with it (WAL). Calls run on the blocking pool.
//!
//! Every connection uses SQLite's `unix-excl` VFS: the first one takes an exclusive lock
//! on the file for the whole process, and the WAL index lives in heap memory instead of a
//! memory-mapped `-shm` file (none is created; `mmap_size` stays 0). A file that stops
//! being writable under the running process (read-only remount, `chattr +i`, full disk)
//! then fails a write with an error code (503) instead of a SIGBUS on a mapped page. The
//! price: no other process can open the file while the service runs; `show-service
//! import` or a second server says so and exits ([`HELD`]).

use super::{ListItem, Page, PageRequest, ShowStore, StoreError, StoreStats};
use crate::domain::{Show, Slug};
use anyhow::Context;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a statement waits for a lock before the store reports itself unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// Read connections kept open.
const READERS: usize = 4;
/// Free space the store's file system needs for readiness once a write failed: room for
/// the WAL of the largest feed (4 MiB of JSON) and its checkpoint.
const MIN_FREE_BYTES: u64 = 16 << 20;
/// SQLite's VFS with a process-wide exclusive lock and the WAL index in heap memory.
const VFS: &str = "unix-excl";
/// Why a store file held by another process cannot be opened, and what to do instead.
pub const HELD: &str = "is held by another process (a running show-service keeps its SQLite \
store to itself): POST the feed to that service instead of importing, or stop it first";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shows (
    slug          TEXT PRIMARY KEY NOT NULL,
    drm_key       INTEGER,
    episode_count INTEGER,
    doc           TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shows_drm_episode ON shows (drm_key, episode_count);
";

const UPSERT: &str = "
INSERT INTO shows (slug, drm_key, episode_count, doc) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (slug) DO UPDATE SET
    drm_key = excluded.drm_key, episode_count = excluded.episode_count, doc = excluded.doc";

const LIST: &str = "
SELECT slug, json_extract(doc, '$.title'), coalesce(json_extract(doc, '$.image.showImage'), ''),
       episode_count
FROM shows
WHERE drm_key = 1 AND episode_count > 0 AND (episode_count, slug) > (?1, ?2)
ORDER BY episode_count, slug
LIMIT ?3";

pub struct SqliteStore {
    path: PathBuf,
    /// The one writing connection; SQLite allows one writer at a time anyway.
    writer: Arc<Mutex<Connection>>,
    /// Idle read connections; a reader is taken out for one call and put back.
    readers: Arc<Mutex<Vec<Connection>>>,
    write_calls: AtomicU64,
    read_calls: AtomicU64,
    /// Set when a write failed as unavailable (I/O error, full or read-only disk), cleared
    /// by the next write that succeeds: while set, [`ShowStore::ping`] checks that a write
    /// gets through, so readiness reports the fault.
    write_fault: Arc<AtomicBool>,
}

fn open(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    // Readers open read-write too and are made query-only: on `unix-excl` only a
    // read-write file shares the process's lock; a read-only one would take (and on
    // close drop) fcntl locks of its own on the file the process holds.
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if !read_only {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags_and_vfs(path, flags, VFS)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        // SQLite fell back to read-only because the file is not writable now.
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            Some(format!("{} is not writable", path.display())),
        ));
    }
    if read_only {
        conn.pragma_update(None, "query_only", true)?;
    } else {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a committed feed survives a power cut, not only a crash. One fsync per
        // transaction, and a feed is one transaction.
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    Ok(conn)
}

/// Whether writes get through again after a write fault: the WAL checkpoints into the
/// database, one page (whose value does not change) commits, and the file system has room
/// for a large feed. Run only while a write fault is recorded.
fn probe_write(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(map_err)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(map_err)?;
    conn.pragma_update(None, "user_version", version)
        .map_err(map_err)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let fs = rustix::fs::statvfs(dir.unwrap_or(Path::new(".")))
        .map_err(|e| StoreError::unavailable(format!("sqlite: statvfs: {e}")))?;
    let free = fs.f_bavail.saturating_mul(fs.f_frsize);
    if free < MIN_FREE_BYTES {
        return Err(StoreError::unavailable(format!(
            "sqlite: {free} bytes free after a failed write"
        )));
    }
    Ok(())
}

/// Maps SQLite failures: locks, a full or read-only disk, I/O errors are "unavailable"
/// (503, retry); anything else is internal.
fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && matches!(
            f.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::ReadOnly
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied
        )
    {
        return StoreError::unavailable(format!("sqlite: {e}"));
    }
    StoreError::Internal(anyhow::Error::new(e).context("sqlite"))
}

/// Cursor: base64url of `v1:<episodeCount>:<slug>`, the last item of the page.
fn encode_cursor(episode_count: i64, slug: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{episode_count}:{slug}"))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| StoreError::BadCursor)?;
    let rest = text.strip_prefix("v1:").ok_or(StoreError::BadCursor)?;
    let (count, slug) = rest.split_once(':').ok_or(StoreError::BadCursor)?;
    let count: u32 = count.parse().map_err(|_| StoreError::BadCursor)?;
    let slug = Slug::parse(slug).map_err(|_| StoreError::BadCursor)?;
    Ok((i64::from(count), slug.to_string()))
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, its folder included.
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
        }
        let writer = open(path, false).map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                anyhow::anyhow!("the SQLite store {} {HELD}", path.display())
            }
            _ => anyhow::Error::new(e)
                .context(format!("cannot open the SQLite store {}", path.display())),
        })?;
        writer
            .execute_batch(SCHEMA)
            .context("cannot create the schema")?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(Mutex::new(Vec::with_capacity(READERS))),
            write_calls: AtomicU64::new(0),
            read_calls: AtomicU64::new(0),
            write_fault: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Runs `f` on the writing connection, on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_calls.fetch_add(1, Ordering::Relaxed);
        let writer = self.writer.clone();
        let fault = self.write_fault.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(|e| e.into_inner());
            let out = f(&mut conn);
            match &out {
                Ok(_) => fault.store(false, Ordering::Relaxed),
                Err(StoreError::Unavailable { .. }) => fault.store(true, Ordering::Relaxed),
                Err(_) => {}
            }
            out
        })
        .await
        .map_err(|e| StoreError::Internal(e.into()))?
    }

    /// Runs `f` on a read connection (opened on first need), on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.read_calls.fetch_add(1, Ordering::Relaxed);
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let idle = readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match idle {
                Some(c) => c,
                None => open(&path, true).map_err(map_err)?,
            };
            let out = f(&conn);
            let mut pool = readers.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Internal(e.into()))?
    }
}

#[async_trait]
impl ShowStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
                .map_err(map_err)
        })
        .await?;
        if self.write_fault.load(Ordering::Relaxed) {
            let path = self.path.clone();
            self.write(move |c| probe_write(c, &path)).await?;
        }
        Ok(())
    }

    async fn upsert(&self, shows: Vec<Show>) -> Result<usize, StoreError> {
        // Serialize before taking the write lock: it is the expensive part.
        let rows = tokio::task::spawn_blocking(move || {
            shows
                .iter()
                .map(|s| {
                    let doc = serde_json::to_string(s)?;
                    Ok((
                        s.slug.to_string(),
                        (s.drm == Some(true)).then_some(1_i64),
                        s.episode_count.map(i64::from),
                        doc,
                    ))
                })
                .collect::<Result<Vec<_>, serde_json::Error>>()
        })
        .await
        .map_err(|e| StoreError::Internal(e.into()))?
        .map_err(|e| StoreError::Internal(e.into()))?;
        self.write(move |conn| {
            let tx = conn.transaction().map_err(map_err)?;
            {
                let mut stmt = tx.prepare_cached(UPSERT).map_err(map_err)?;
                for (slug, drm_key, episode_count, doc) in &rows {
                    stmt.execute(params![slug, drm_key, episode_count, doc])
                        .map_err(map_err)?;
                }
            }
            tx.commit().map_err(map_err)?;
            Ok(rows.len())
        })
        .await
    }

    async fn list_eligible(&self, page: PageRequest) -> Result<Page, StoreError> {
        let (after_count, after_slug) = match &page.cursor {
            Some(c) => decode_cursor(c)?,
            None => (-1, String::new()),
        };
        let limit = page.limit.map(|n| n.get());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(LIST).map_err(map_err)?;
            // Ask for one more than the page to know whether another page follows.
            let fetch = limit.map_or(-1, |n| i64::from(n) + 1);
            let rows = stmt
                .query_map(params![after_count, after_slug, fetch], |row| {
                    let item = ListItem {
                        slug: row.get(0)?,
                        title: row.get(1)?,
                        image: row.get(2)?,
                    };
                    Ok((item, row.get::<_, i64>(3)?))
                })
                .map_err(map_err)?;
            let mut rows = rows.collect::<Result<Vec<_>, _>>().map_err(map_err)?;
            let mut next = None;
            if let Some(n) = limit.map(|n| n as usize)
                && rows.len() > n
            {
                rows.truncate(n);
                next = rows
                    .last()
                    .map(|(item, count)| encode_cursor(*count, &item.slug));
            }
            let items = rows.into_iter().map(|(item, _)| item).collect();
            Ok(Page { items, next })
        })
        .await
    }

    async fn get(&self, slug: &Slug) -> Result<Option<Show>, StoreError> {
        let slug = slug.to_string();
        let doc: Option<String> = self
            .read(move |conn| {
                conn.prepare_cached("SELECT doc FROM shows WHERE slug = ?1")
                    .and_then(|mut s| s.query_row([&slug], |r| r.get(0)).optional())
                    .map_err(map_err)
            })
            .await?;
        doc.map(|d| {
            serde_json::from_str(&d)
                .map_err(|e| StoreError::Internal(anyhow::Error::new(e).context("stored show")))
        })
        .transpose()
    }

    async fn delete(&self, slug: &Slug) -> Result<bool, StoreError> {
        let slug = slug.to_string();
        self.write(move |conn| {
            conn.execute("DELETE FROM shows WHERE slug = ?1", [&slug])
                .map(|n| n > 0)
                .map_err(map_err)
        })
        .await
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            write_calls: self.write_calls.load(Ordering::Relaxed),
            read_calls: self.read_calls.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        let c = encode_cursor(12, "show/a-b");
        assert_eq!(decode_cursor(&c).unwrap(), (12, "show/a-b".to_string()));
        let forged = [
            "",
            "!!!",
            "djE6",
            &URL_SAFE_NO_PAD.encode("v2:1:show/a"),
            &URL_SAFE_NO_PAD.encode("v1:x:show/a"),
            &URL_SAFE_NO_PAD.encode("v1:-1:show/a"),
            &URL_SAFE_NO_PAD.encode("v1:1:../etc"),
            &URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
        ];
        for f in forged {
            assert!(
                matches!(decode_cursor(f), Err(StoreError::BadCursor)),
                "{f}"
            );
        }
    }
}
