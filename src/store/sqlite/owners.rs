//! Who owns each show on the embedded store: columns `owner`, `created_at`,
//! `updated_at` (milliseconds since the epoch) and `updated_by` of table `shows`, added
//! to a file made before they existed. The rule ([`Actor::may_change`]) is checked in the
//! write's own transaction, on the one writing connection, so nothing can change hands
//! between the check and the write.

use super::map_err;
use crate::domain::{Actor, Partner, Provenance, Timestamp};
use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// The columns ownership adds, for files created before it.
const COLUMNS: [(&str, &str); 4] = [
    ("owner", "TEXT"),
    ("created_at", "INTEGER"),
    ("updated_at", "INTEGER"),
    ("updated_by", "TEXT"),
];

/// Adds the ownership columns a file lacks (no-op on a current file).
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let present: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('shows')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, kind) in COLUMNS {
        if !present.iter().any(|p| p == name) {
            conn.execute_batch(&format!("ALTER TABLE shows ADD COLUMN {name} {kind}"))?;
        }
    }
    Ok(())
}

/// The show's owner, or `None` when the slug is not stored (`Some(None)`: stored, unowned).
fn owner_of(tx: &Transaction<'_>, slug: &str) -> Result<Option<Option<String>>, StoreError> {
    tx.prepare_cached("SELECT owner FROM shows WHERE slug = ?1")
        .and_then(|mut s| s.query_row([slug], |r| r.get(0)).optional())
        .map_err(map_err)
}

/// The slugs of `slugs` that exist and that `actor` may not change, in the given order.
pub(super) fn refused<'a>(
    tx: &Transaction<'_>,
    slugs: impl IntoIterator<Item = &'a str>,
    actor: &Actor,
) -> Result<Vec<String>, StoreError> {
    let mut refused = Vec::new();
    for slug in slugs {
        if let Some(owner) = owner_of(tx, slug)? {
            let owner = owner.and_then(|o| Partner::parse(o).ok());
            if !actor.may_change(owner.as_ref()) {
                refused.push(slug.to_string());
            }
        }
    }
    Ok(refused)
}

/// Inserts or replaces one show: a new one gets the actor's partner and `now` as its
/// creation; an existing one keeps both.
pub(super) const UPSERT: &str = "
INSERT INTO shows (slug, drm_key, episode_count, doc, owner, created_at, updated_at, updated_by)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)
ON CONFLICT (slug) DO UPDATE SET
    drm_key = excluded.drm_key, episode_count = excluded.episode_count, doc = excluded.doc,
    updated_at = excluded.updated_at, updated_by = excluded.updated_by";

/// The provenance columns, as selected after `doc` by [`super::SqliteStore`]'s `get`.
pub(super) fn provenance(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Provenance> {
    let at = |i: usize| -> rusqlite::Result<Option<Timestamp>> {
        Ok(row
            .get::<_, Option<i64>>(i)?
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Timestamp::from_millis))
    };
    Ok(Provenance {
        owner: row
            .get::<_, Option<String>>(first)?
            .and_then(|o| Partner::parse(o).ok()),
        created_at: at(first + 1)?,
        updated_at: at(first + 2)?,
        updated_by: row.get(first + 3)?,
    })
}

/// Gives every stored show of `slugs` to `owner`; returns the slugs not stored.
pub(super) fn assign(
    tx: &Transaction<'_>,
    owner: &Partner,
    slugs: &[String],
    actor: &Actor,
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "UPDATE shows SET owner = ?1, updated_at = ?2, updated_by = ?3 WHERE slug = ?4",
        )
        .map_err(map_err)?;
    let mut unknown = Vec::new();
    for slug in slugs {
        let changed = stmt
            .execute(params![
                owner.as_str(),
                now.millis() as i64,
                actor.client,
                slug
            ])
            .map_err(map_err)?;
        if changed == 0 {
            unknown.push(slug.clone());
        }
    }
    Ok(unknown)
}
