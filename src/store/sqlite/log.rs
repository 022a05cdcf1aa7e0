//! The change log on the embedded store: table `catalogue_changes(version, slugs, at)`
//! holds, under the version each write bumped the record to, every slug it named (a JSON
//! array) and when (`at`, milliseconds since the epoch), written in the write's own
//! transaction. Entries older than the retention are dropped by the next write, and read
//! as missing before that, so what a changes cursor may rely on is kept by age, not by
//! count. Table `catalogue_log` holds the log's id (random, made once with the file),
//! which a changes cursor carries to be told apart from another store's.

use super::map_err;
use crate::store::{ListItem, LogEntry, LogRead, MAX_LOG_READ, StoreError};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Adds what the log needs to a file made before it: the `at` column, the log's id.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let present: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('catalogue_changes')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if !present.iter().any(|p| p == "at") {
        conn.execute_batch("ALTER TABLE catalogue_changes ADD COLUMN at INTEGER")?;
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS catalogue_log (
             id     INTEGER PRIMARY KEY CHECK (id = 1),
             log_id INTEGER NOT NULL
         )",
    )?;
    // A random id, not 0 (63 bits: SQLite's integers are signed).
    let id = (uuid::Uuid::new_v4().as_u64_pair().0 >> 1).max(1) as i64;
    conn.execute(
        "INSERT OR IGNORE INTO catalogue_log (id, log_id) VALUES (1, ?1)",
        [id],
    )?;
    Ok(())
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Logs every one of `slugs` under `version`, now; drops entries past `retention`.
pub(super) fn append(
    tx: &Transaction<'_>,
    version: i64,
    slugs: &[&str],
    retention: Duration,
) -> Result<(), StoreError> {
    let now = SystemTime::now();
    let named = serde_json::to_string(slugs).map_err(|e| StoreError::Internal(e.into()))?;
    let oldest = millis(now.checked_sub(retention).unwrap_or(UNIX_EPOCH));
    tx.prepare_cached(
        "INSERT OR REPLACE INTO catalogue_changes (version, slugs, at) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut s| s.execute(params![version, named, millis(now)]))
    .and_then(|_| {
        tx.prepare_cached("DELETE FROM catalogue_changes WHERE at IS NULL OR at < ?1")?
            .execute([oldest])
    })
    .map_err(map_err)?;
    Ok(())
}

/// The log's id.
pub(super) fn id(conn: &Connection) -> Result<Option<u64>, StoreError> {
    let id: Option<i64> = conn
        .prepare_cached("SELECT log_id FROM catalogue_log WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(map_err)?;
    Ok(id.and_then(|n| u64::try_from(n).ok()))
}

/// The entries of versions `since + 1 ..= upto` (at most [`MAX_LOG_READ`]), an entry
/// past `retention` (not dropped yet) reading as missing.
pub(super) fn entries(
    conn: &Connection,
    since: u64,
    upto: u64,
    retention: Duration,
) -> Result<LogRead, StoreError> {
    let upto = upto.min(since.saturating_add(MAX_LOG_READ));
    let (Ok(from), Ok(to)) = (i64::try_from(since), i64::try_from(upto)) else {
        return Ok(LogRead::Gap { missing: since + 1 });
    };
    let oldest = millis(
        SystemTime::now()
            .checked_sub(retention)
            .unwrap_or(UNIX_EPOCH),
    );
    let rows: Vec<(i64, Option<String>, Option<i64>)> = conn
        .prepare_cached(
            "SELECT version, slugs, at FROM catalogue_changes
             WHERE version > ?1 AND version <= ?2 ORDER BY version",
        )
        .and_then(|mut s| {
            s.query_map([from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(map_err)?;
    let mut out = Vec::with_capacity(rows.len());
    let mut expected = since + 1;
    for (version, slugs, at) in rows {
        let version = u64::try_from(version).unwrap_or(0);
        let named = slugs.and_then(|s| serde_json::from_str::<Vec<String>>(&s).ok());
        if version == expected && at.is_some_and(|at| at < oldest) {
            return Ok(LogRead::Expired { version });
        }
        let (true, Some(mut named), Some(_)) = (version == expected, named, at) else {
            // Trimmed by age (entries are dropped oldest first) or never written.
            return Ok(LogRead::Gap { missing: expected });
        };
        named.sort_unstable();
        named.dedup();
        out.push(LogEntry {
            version,
            slugs: named,
            open_until: None,
            closes: None,
        });
        expected += 1;
    }
    if expected <= upto {
        return Ok(LogRead::Gap { missing: expected });
    }
    Ok(LogRead::Entries(out))
}

/// One show of the catalogue by slug.
pub(super) const LIST_ONE: &str = "
SELECT slug, json_extract(doc, '$.title'), coalesce(json_extract(doc, '$.image.showImage'), ''),
       episode_count
FROM shows
WHERE slug = ?1 AND drm_key = 1 AND episode_count > 0";

/// Of `slugs`, the shows in the catalogue, in `tx`'s snapshot.
pub(super) fn catalogue_items<'a>(
    tx: &Transaction<'_>,
    slugs: impl IntoIterator<Item = &'a String>,
) -> Result<Vec<ListItem>, StoreError> {
    let mut stmt = tx.prepare_cached(LIST_ONE).map_err(map_err)?;
    let mut items = Vec::new();
    for slug in slugs {
        let found = stmt
            .query_row([slug], |row| {
                Ok(ListItem {
                    slug: row.get(0)?,
                    title: row.get(1)?,
                    image: row.get(2)?,
                    episode_count: row.get(3)?,
                })
            })
            .optional()
            .map_err(map_err)?;
        items.extend(found);
    }
    Ok(items)
}
