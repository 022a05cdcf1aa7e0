//! The change feed (`GET /v1/shows/changes`): what changed in the catalogue since a
//! position a client holds, read from the store's change log
//! ([`crate::store::ShowStore::log_entries`]) and the changed shows as they are now
//! ([`crate::store::ShowStore::catalogue_items`]).
//!
//! # The cursor
//! A position is `(log, version, offset)`: every change of the log's versions up to
//! `version` has been served, and the first `offset` slugs (in the entry's sorted order)
//! of version `version + 1`, so a long answer pages within one write. `log` is the id the
//! store made with its change record, so a cursor from another table or store is told
//! apart. Encoded as 25 bytes (a format byte, the three numbers, a 32-bit FNV-1a
//! checksum of them), base64url. The checksum is not a secret: it tells a mangled or
//! made-up cursor (400) from one this service issued; one that parses but names another
//! log, or a version whose entries are no longer held, is 410 (the client lists again).
//! An HMAC would also stop a client forging a position of the right log, but that can
//! only make its own answer wrong (one made-up version ahead of the record is 400).
//!
//! # What an answer holds
//! The slugs the entries after the cursor named, in the order they were written, each
//! once at its latest position, with its state now: `put` (in the catalogue: DRM, with
//! episodes) or `remove`. Applying them in order to the list read at `since` gives the
//! list at `next`. An answer stops at `limit` distinct shows (the client asks again while
//! it gets `limit`), at a gap in the log (410 unless a write may still be putting its
//! entry: then the answer ends before it), and before a write still landing (DynamoDB: an
//! announcement entry whose window has not passed and which no later entry closes): its
//! shows are served once it has landed, at the announcement (the entry after the write
//! repeats them for the caches; the feed skips it). Nothing new: `next` is `since`, for one read of
//! the change record.

use crate::catalogue::CLOCK_MARGIN;
use crate::store::{ChangeRecord, ListItem, LogEntry, LogRead, ShowStore, StoreError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;
use std::time::SystemTime;

/// A change a client applies to its list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The show is in the catalogue, as listed now.
    Put(ListItem),
    /// It is not (deleted, no longer DRM, no episodes).
    Remove(String),
}

/// One answer of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub changes: Vec<Change>,
    pub next: Cursor,
}

/// Why no feed: each maps to a client error, never a 5xx but `Store`.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Not a cursor this service issued (400).
    #[error("since is not a changes cursor: {0}")]
    BadCursor(&'static str),
    /// A version the change record has not reached (400).
    #[error("since is a position the catalogue has not reached")]
    Future,
    /// Another log's, or changes after it are no longer held (410): list again.
    #[error("since is too old or from another store")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A position in the change log (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub log: u64,
    pub version: u64,
    pub offset: u32,
}

const FORMAT: u8 = 1;
const LEN: usize = 1 + 8 + 8 + 4 + 4;
/// How far a cursor may be ahead of the record read (DynamoDB's record read is
/// eventually consistent: another task may have issued it from a newer one): within
/// this, the answer is "nothing new yet"; beyond it, 400.
const LAGGING_RECORD_VERSIONS: u64 = 100;

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

impl Cursor {
    pub fn encode(&self) -> String {
        let mut b = Vec::with_capacity(LEN);
        b.push(FORMAT);
        b.extend_from_slice(&self.log.to_be_bytes());
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&self.offset.to_be_bytes());
        let sum = fnv1a(&b);
        b.extend_from_slice(&sum.to_be_bytes());
        URL_SAFE_NO_PAD.encode(b)
    }

    pub fn decode(text: &str) -> Result<Cursor, FeedError> {
        let b = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| FeedError::BadCursor("not base64url"))?;
        if b.len() != LEN || b[0] != FORMAT {
            return Err(FeedError::BadCursor("not a cursor of this service"));
        }
        let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u64, |n, x| n << 8 | u64::from(*x));
        if num(21..25) != u64::from(fnv1a(&b[..21])) {
            return Err(FeedError::BadCursor("its checksum does not match"));
        }
        Ok(Cursor {
            log: num(1..9),
            version: num(9..17),
            offset: num(17..21) as u32,
        })
    }
}

/// The changes after `since`, at most `limit` (1 ..) shows; `now` is the wall clock
/// (announcement windows are compared with it).
pub async fn changes_since(
    store: &dyn ShowStore,
    since: Cursor,
    limit: usize,
    now: SystemTime,
) -> Result<Feed, FeedError> {
    let result = walk(store, since, limit.max(1), now).await;
    match &result {
        Ok(feed) => {
            for change in &feed.changes {
                let op = match change {
                    Change::Put(_) => "put",
                    Change::Remove(_) => "remove",
                };
                metrics::counter!("changes_served_total", "op" => op).increment(1);
            }
        }
        Err(FeedError::Expired) => metrics::counter!("changes_cursors_expired_total").increment(1),
        Err(_) => {}
    }
    result
}

async fn walk(
    store: &dyn ShowStore,
    since: Cursor,
    limit: usize,
    now: SystemTime,
) -> Result<Feed, FeedError> {
    let ChangeRecord::Version {
        version: top,
        unsettled_until,
        log: Some(log),
    } = store.change_record().await?
    else {
        // No record (or one without a log id): no cursor of it was ever issued.
        return Err(FeedError::Expired);
    };
    if since.log != log {
        return Err(FeedError::Expired);
    }
    let ahead = since.version > top || (since.version == top && since.offset > 0);
    if ahead && since.version > top.saturating_add(LAGGING_RECORD_VERSIONS) {
        return Err(FeedError::Future);
    }
    if ahead || since.version == top {
        return Ok(Feed {
            changes: Vec::new(),
            next: since,
        });
    }
    let unsettled = unsettled_until.is_some_and(|t| t + CLOCK_MARGIN > now);
    // Each slug at its latest position: (sequence, slug).
    let mut latest: HashMap<String, usize> = HashMap::new();
    let mut seq = 0usize;
    let mut next = since;
    let mut closed: Vec<u64> = Vec::new();
    'walk: while next.version < top {
        let entries = match store.log_entries(next.version, top).await? {
            LogRead::Entries(e) if !e.is_empty() => e,
            LogRead::Entries(_) => break,
            // A writer may still be putting the entry of a version it bumped to.
            LogRead::Gap { .. } if unsettled => break,
            LogRead::Gap { .. } | LogRead::Expired { .. } => return Err(FeedError::Expired),
        };
        closed.extend(entries.iter().filter_map(|e| e.closes));
        for entry in &entries {
            if landing(store, entry, &mut closed, top, now).await? {
                break 'walk;
            }
            // The entry after a write repeats its announcement's slugs (for caches that
            // filled while it ran); the feed served them at the announcement, which it
            // serves only once the write has landed.
            let skip = if entry.closes.is_some() {
                entry.slugs.len()
            } else if entry.version == next.version + 1 {
                next.offset as usize
            } else {
                0
            };
            for (i, slug) in entry.slugs.iter().enumerate().skip(skip) {
                if !latest.contains_key(slug) && latest.len() == limit {
                    next = Cursor {
                        log,
                        version: entry.version - 1,
                        offset: i as u32,
                    };
                    break 'walk;
                }
                latest.insert(slug.clone(), seq);
                seq += 1;
            }
            next = Cursor {
                log,
                version: entry.version,
                offset: 0,
            };
        }
    }
    let mut order: Vec<(usize, String)> = latest.into_iter().map(|(s, at)| (at, s)).collect();
    order.sort_unstable();
    let slugs: Vec<String> = order.into_iter().map(|(_, s)| s).collect();
    let mut now_listed: HashMap<String, ListItem> = HashMap::new();
    for chunk in slugs.chunks(1000) {
        for item in store.catalogue_items(chunk).await? {
            now_listed.insert(item.slug.clone(), item);
        }
    }
    let changes = slugs
        .into_iter()
        .map(|slug| match now_listed.remove(&slug) {
            Some(item) => Change::Put(item),
            None => Change::Remove(slug),
        })
        .collect();
    Ok(Feed { changes, next })
}

/// Whether `entry` announces a write that may still be landing: its window (plus the
/// clock margin) not passed, and no entry up to `top` closing it (`closed` holds the
/// closes seen so far; the entries after are read when needed).
async fn landing(
    store: &dyn ShowStore,
    entry: &LogEntry,
    closed: &mut Vec<u64>,
    top: u64,
    now: SystemTime,
) -> Result<bool, StoreError> {
    let open = entry.open_until.is_some_and(|t| t + CLOCK_MARGIN > now);
    if !open || closed.contains(&entry.version) {
        return Ok(false);
    }
    // Read ahead for its close (it is at most a write's deadline old: few entries).
    let mut at = entry.version;
    while at < top {
        match store.log_entries(at, top).await? {
            LogRead::Entries(e) if !e.is_empty() => {
                at = e.last().map_or(top, |l| l.version);
                closed.extend(e.iter().filter_map(|x| x.closes));
                if closed.contains(&entry.version) {
                    return Ok(false);
                }
            }
            _ => break,
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_mangled_one_is_refused() {
        let c = Cursor {
            log: 0x0123_4567_89ab_cdef,
            version: 42,
            offset: 7,
        };
        let text = c.encode();
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(Cursor::decode(&text).unwrap(), c);
        // One character changed: the checksum (or the format) no longer matches.
        let mut bytes = text.into_bytes();
        bytes[12] = if bytes[12] == b'A' { b'B' } else { b'A' };
        let mangled = String::from_utf8(bytes).unwrap();
        assert!(matches!(
            Cursor::decode(&mangled),
            Err(FeedError::BadCursor(_))
        ));
        for bad in [
            "",
            "abc",
            "not a cursor",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                matches!(Cursor::decode(bad), Err(FeedError::BadCursor(_))),
                "{bad}"
            );
        }
    }
}
