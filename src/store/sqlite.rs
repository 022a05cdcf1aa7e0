//! The embedded store: one SQLite file in WAL mode, held by one process.
//!
//! Table `shows(slug PRIMARY KEY, drm_key, episode_count, doc, owner, created_at,
//! updated_at, updated_by)`: `drm_key` is 1 for DRM shows and NULL otherwise,
//! `episode_count` NULL when absent, `doc` the show's JSON, the last four its provenance
//! ([`owners`]: who owns it, checked in each write's transaction). The
//! partial index `shows_catalogue` holds the DRM shows in page order,
//! `(episode_count, slug)`, so a page resumed from a cursor is one index seek on the
//! row value `(episode_count, slug) > cursor`: walking the catalogue is linear, not
//! quadratic. (`episode_count > 0` is a filter written `+episode_count`: as an index term
//! SQLite would seek on it instead of on the cursor, and scan every earlier page again.)
//!
//! Table `catalogue_version` holds the change record (one row, `id = 1`): a feed or a
//! delete bumps it in the same transaction as its rows, so a reader never sees one
//! without the other, and a process that dies half-way leaves neither: the record has no
//! window in which its writes may still land (`unsettled_until` is always `None`). Table
//! `catalogue_changes` is the change log ([`log`]): the same transaction stores every
//! slug the write named under the version it bumped to, and drops entries past the
//! retention. A feed is written in one transaction (all or nothing). One
//! connection writes; a few read, concurrently with it (WAL). Calls run on the blocking
//! pool.
//!
//! Every connection uses SQLite's `unix-excl` VFS: the first one takes an exclusive lock
//! on the file for the whole process, and the WAL index lives in heap memory instead of a
//! memory-mapped `-shm` file (none is created; `mmap_size` stays 0). A file that stops
//! being writable under the running process (read-only remount, `chattr +i`, full disk)
//! then fails a write with an error code (503) instead of a SIGBUS on a mapped page. The
//! price: no other process can open the file while the service runs; `show-service
//! import` or a second server says so and exits ([`Held`]).

mod log;
mod owners;

use super::cursor::Position;
use super::usage::{self, Call};
use super::{
    Assignment, ChangeRecord, Changes, ListItem, LogRead, Page, PageRequest, ShowStore, StoreError,
    StoredShow,
};
use crate::domain::{Actor, Partner, Provenance, Show, Slug, Timestamp};
use anyhow::Context;
use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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
/// Why a store file cannot be opened: another process holds it. What to do instead
/// depends on the command (`cli` adds it): a second server and an import differ.
#[derive(Debug, thiserror::Error)]
#[error(
    "the SQLite store {} is held by another process (a running show-service keeps its \
     SQLite store to itself)",
    path.display()
)]
pub struct Held {
    pub path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shows (
    slug          TEXT PRIMARY KEY NOT NULL,
    drm_key       INTEGER,
    episode_count INTEGER,
    doc           TEXT NOT NULL,
    owner         TEXT,
    created_at    INTEGER,
    updated_at    INTEGER,
    updated_by    TEXT
) WITHOUT ROWID;
DROP INDEX IF EXISTS shows_drm_episode;
CREATE INDEX IF NOT EXISTS shows_catalogue ON shows (episode_count, slug) WHERE drm_key = 1;
CREATE TABLE IF NOT EXISTS catalogue_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS catalogue_changes (
    version INTEGER PRIMARY KEY,
    slugs   TEXT
);
";

/// The most versions one [`ShowStore::changes_since`] answer spans.
const KEEP_VERSIONS: i64 = 1000;

/// Bumps the change record, returning the new version.
const BUMP: &str = "
INSERT INTO catalogue_version (id, version) VALUES (1, 1)
ON CONFLICT (id) DO UPDATE SET version = version + 1
RETURNING version";

/// Bumps the change record and logs every one of `slugs` under the new version; runs in
/// the transaction of the write.
fn record_change(
    tx: &rusqlite::Transaction<'_>,
    slugs: &[&str],
    retention: Duration,
) -> Result<(), StoreError> {
    let version: rusqlite::types::Value = tx.query_row(BUMP, [], |r| r.get(0)).map_err(map_err)?;
    let rusqlite::types::Value::Integer(version) = version else {
        return Ok(()); // a record of another type: readers fall back to the index anyway
    };
    log::append(tx, version, slugs, retention)
}

const LIST: &str = "
SELECT slug, json_extract(doc, '$.title'), coalesce(json_extract(doc, '$.image.showImage'), ''),
       episode_count
FROM shows
WHERE drm_key = 1 AND (episode_count, slug) > (?1, ?2) AND +episode_count > 0
ORDER BY episode_count, slug
LIMIT ?3";

pub struct SqliteStore {
    path: PathBuf,
    /// The one writing connection; SQLite allows one writer at a time anyway.
    writer: Arc<Mutex<Connection>>,
    /// Idle read connections; a reader is taken out for one call and put back.
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Set when a write failed as unavailable (I/O error, full or read-only disk), cleared
    /// by the next write that succeeds: while set, [`ShowStore::ping`] checks that a write
    /// gets through, so readiness reports the fault.
    write_fault: Arc<AtomicBool>,
    /// How long the change log keeps an entry.
    retention: Duration,
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

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, its folder included.
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
        }
        let writer = open(path, false).map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => anyhow::Error::new(Held {
                path: path.to_path_buf(),
            }),
            _ => anyhow::Error::new(e)
                .context(format!("cannot open the SQLite store {}", path.display())),
        })?;
        writer
            .execute_batch(SCHEMA)
            .context("cannot create the schema")?;
        owners::migrate(&writer).context("cannot add the ownership columns")?;
        log::migrate(&writer).context("cannot add the change log's columns")?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(Mutex::new(Vec::with_capacity(READERS))),
            write_fault: Arc::new(AtomicBool::new(false)),
            retention: crate::config::ChangesSettings::default().retention,
        })
    }

    /// The same store, its change log kept `retention` (`APP__CHANGES__RETENTIONHOURS`).
    pub fn with_retention(mut self, retention: Duration) -> SqliteStore {
        self.retention = retention;
        self
    }

    /// Runs `f` on the writing connection, on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let call = Call::start("sqlite", operation);
        let writer = self.writer.clone();
        let fault = self.write_fault.clone();
        let res = tokio::task::spawn_blocking(move || {
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
        .map_err(|e| StoreError::Internal(e.into()))
        .and_then(|r| r);
        call.finish(&res);
        res
    }

    /// Runs `f` on a read connection (opened on first need), on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let call = Call::start("sqlite", operation);
        let readers = self.readers.clone();
        let path = self.path.clone();
        let res = tokio::task::spawn_blocking(move || {
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
        .map_err(|e| StoreError::Internal(e.into()))
        .and_then(|r| r);
        call.finish(&res);
        res
    }
}

#[async_trait]
impl ShowStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("ping", |c| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
                .map_err(map_err)
        })
        .await?;
        if self.write_fault.load(Ordering::Relaxed) {
            let path = self.path.clone();
            self.write("ping", move |c| probe_write(c, &path)).await?;
        }
        Ok(())
    }

    async fn upsert(&self, shows: Vec<Show>, actor: &Actor) -> Result<usize, StoreError> {
        let actor = actor.clone();
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
        let retention = self.retention;
        self.write("upsert", move |conn| {
            let tx = conn.transaction().map_err(map_err)?;
            let refused = owners::refused(&tx, rows.iter().map(|r| r.0.as_str()), &actor)?;
            if !refused.is_empty() {
                // Dropping the transaction rolls it back: nothing written, no bump.
                return Err(StoreError::Forbidden {
                    slugs: refused,
                    written: 0,
                });
            }
            let now = Timestamp::now().millis() as i64;
            let owner = actor.partner.as_ref().map(Partner::as_str);
            {
                let mut stmt = tx.prepare_cached(owners::UPSERT).map_err(map_err)?;
                for (slug, drm_key, episode_count, doc) in &rows {
                    stmt.execute(params![
                        slug,
                        drm_key,
                        episode_count,
                        doc,
                        owner,
                        now,
                        actor.client
                    ])
                    .map_err(map_err)?;
                }
            }
            let slugs: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
            record_change(&tx, &slugs, retention)?;
            tx.commit().map_err(map_err)?;
            Ok(rows.len())
        })
        .await
    }

    async fn list_eligible(&self, page: PageRequest) -> Result<Page, StoreError> {
        let (after_count, after_slug) = match &page.cursor {
            Some(c) => {
                let p = Position::decode(c)?;
                (i64::from(p.episode_count), p.slug.to_string())
            }
            None => (0, String::new()),
        };
        let limit = page.limit.map(|n| n.get());
        self.read("list", move |conn| {
            let mut stmt = conn.prepare_cached(LIST).map_err(map_err)?;
            // Ask for one more than the page to know whether another page follows.
            let fetch = limit.map_or(-1, |n| i64::from(n) + 1);
            let rows = stmt
                .query_map(params![after_count, after_slug, fetch], |row| {
                    Ok(ListItem {
                        slug: row.get(0)?,
                        title: row.get(1)?,
                        image: row.get(2)?,
                        episode_count: row.get(3)?,
                    })
                })
                .map_err(map_err)?;
            let mut items = rows.collect::<Result<Vec<_>, _>>().map_err(map_err)?;
            let mut next = None;
            if let Some(n) = limit.map(|n| n as usize)
                && items.len() > n
            {
                items.truncate(n);
                next = items.last().and_then(|item| {
                    Some(
                        Position {
                            episode_count: item.episode_count,
                            slug: Slug::parse(&item.slug).ok()?,
                        }
                        .encode(),
                    )
                });
            }
            usage::consumed("list", 0.0, 0.0, items.len());
            Ok(Page {
                items,
                next,
                calls: 1,
                read_units: 0.0,
            })
        })
        .await
    }

    async fn get(&self, slug: &Slug) -> Result<Option<StoredShow>, StoreError> {
        let slug = slug.to_string();
        let row: Option<(String, Provenance)> = self
            .read("get", move |conn| {
                conn.prepare_cached(
                    "SELECT doc, owner, created_at, updated_at, updated_by FROM shows \
                     WHERE slug = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([&slug], |r| Ok((r.get(0)?, owners::provenance(r, 1)?)))
                        .optional()
                })
                .map_err(map_err)
            })
            .await?;
        row.map(|(doc, provenance)| {
            serde_json::from_str(&doc)
                .map(|show| StoredShow { show, provenance })
                .map_err(|e| StoreError::Internal(anyhow::Error::new(e).context("stored show")))
        })
        .transpose()
    }

    async fn delete(&self, slug: &Slug, actor: &Actor) -> Result<bool, StoreError> {
        let slug = slug.to_string();
        let actor = actor.clone();
        let retention = self.retention;
        self.write("delete", move |conn| {
            let tx = conn.transaction().map_err(map_err)?;
            let refused = owners::refused(&tx, [slug.as_str()], &actor)?;
            if !refused.is_empty() {
                return Err(StoreError::Forbidden {
                    slugs: refused,
                    written: 0,
                });
            }
            let deleted = tx
                .execute("DELETE FROM shows WHERE slug = ?1", [&slug])
                .map_err(map_err)?
                > 0;
            if deleted {
                record_change(&tx, &[slug.as_str()], retention)?;
            }
            tx.commit().map_err(map_err)?;
            Ok(deleted)
        })
        .await
    }

    async fn assign_owner(
        &self,
        owner: &Partner,
        slugs: &[Slug],
        actor: &Actor,
    ) -> Result<Assignment, StoreError> {
        let (owner, actor) = (owner.clone(), actor.clone());
        let slugs: Vec<String> = slugs.iter().map(Slug::to_string).collect();
        self.write("assign_owner", move |conn| {
            let tx = conn.transaction().map_err(map_err)?;
            let unknown = owners::assign(&tx, &owner, &slugs, &actor, Timestamp::now())?;
            tx.commit().map_err(map_err)?;
            let assigned = slugs.into_iter().filter(|s| !unknown.contains(s)).collect();
            Ok(Assignment { assigned, unknown })
        })
        .await
    }

    async fn change_record(&self) -> Result<ChangeRecord, StoreError> {
        self.read("change_record", |conn| {
            let value: Option<rusqlite::types::Value> = conn
                .prepare_cached("SELECT version FROM catalogue_version WHERE id = 1")
                .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
                .map_err(map_err)?;
            let log = log::id(conn)?;
            Ok(match value {
                None => ChangeRecord::Missing,
                Some(rusqlite::types::Value::Integer(n)) => {
                    u64::try_from(n).map_or(ChangeRecord::Invalid, |version| {
                        ChangeRecord::Version {
                            version,
                            unsettled_until: None,
                            log,
                        }
                    })
                }
                Some(_) => ChangeRecord::Invalid,
            })
        })
        .await
    }

    async fn changes_since(
        &self,
        since: u64,
        upto: u64,
        max_shows: usize,
    ) -> Result<Changes, StoreError> {
        let (Ok(from), Ok(to)) = (i64::try_from(since), i64::try_from(upto)) else {
            return Ok(Changes::Unknown);
        };
        if to <= from || to - from > KEEP_VERSIONS {
            return Ok(Changes::Unknown);
        }
        self.read("changes", move |conn| {
            // One read transaction: the entries and the shows from one snapshot.
            let tx = conn.unchecked_transaction().map_err(map_err)?;
            let entries: Vec<Option<String>> = tx
                .prepare_cached(
                    "SELECT slugs FROM catalogue_changes WHERE version > ?1 AND version <= ?2",
                )
                .and_then(|mut s| {
                    s.query_map([from, to], |r| r.get(0))?
                        .collect::<Result<_, _>>()
                })
                .map_err(map_err)?;
            if entries.len() as i64 != to - from {
                return Ok(Changes::Unknown);
            }
            let mut slugs = std::collections::BTreeSet::new();
            for entry in entries {
                let Some(named) = entry.and_then(|e| serde_json::from_str::<Vec<String>>(&e).ok())
                else {
                    return Ok(Changes::Unknown);
                };
                slugs.extend(named);
                if slugs.len() > max_shows {
                    return Ok(Changes::Unknown);
                }
            }
            let items = log::catalogue_items(&tx, &slugs)?;
            usage::consumed("changes", 0.0, 0.0, items.len());
            Ok(Changes::Shows {
                slugs: slugs.into_iter().collect(),
                items,
            })
        })
        .await
    }

    async fn log_entries(&self, since: u64, upto: u64) -> Result<LogRead, StoreError> {
        let retention = self.retention;
        self.read("log_entries", move |conn| {
            log::entries(conn, since, upto, retention)
        })
        .await
    }

    async fn catalogue_items(&self, slugs: &[String]) -> Result<Vec<ListItem>, StoreError> {
        let slugs = slugs.to_vec();
        self.read("catalogue_items", move |conn| {
            let tx = conn.unchecked_transaction().map_err(map_err)?;
            let items = log::catalogue_items(&tx, &slugs)?;
            usage::consumed("catalogue_items", 0.0, 0.0, items.len());
            Ok(items)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_resumes_with_one_index_seek_on_the_cursor() {
        // Linear paging: the plan seeks the catalogue index on (episode_count, slug) from
        // the cursor; seeking on `episode_count > 0` would re-scan every earlier page.
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(SCHEMA).expect("schema");
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {LIST}"))
            .expect("plan")
            .query_map(params![1, "show/a", 10], |r| r.get::<_, String>(3))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        let plan = plan.join(" | ");
        assert!(
            plan.contains("USING INDEX shows_catalogue ((episode_count,slug)>(?,?))"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn the_change_record_reports_a_row_of_the_wrong_type_as_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path).expect("open");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        assert_eq!(
            rt.block_on(store.change_record()).expect("read"),
            ChangeRecord::Missing
        );
        store
            .writer
            .lock()
            .expect("writer")
            .execute("INSERT INTO catalogue_version VALUES (1, 'x')", [])
            .expect("insert");
        assert_eq!(
            rt.block_on(store.change_record()).expect("read"),
            ChangeRecord::Invalid
        );
    }
}
