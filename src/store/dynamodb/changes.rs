//! The change record's bumps ([`bump`]) and the change log on DynamoDB (see
//! [`crate::store`]): after a bump of the change record numbered `v` (a write's
//! announcement, or its bump after the write), the writer puts the item
//! `meta/catalogue-change/{v}` holding the slugs that write named. A task holding the catalogue at version `a` that reads `b`
//! from the record gets entries `a+1 ..= b` with one `BatchGetItem`, then the shows they
//! name with `BatchGetItem`s of 100 — both strongly consistent, so what a task applies is
//! the table as it is after those writes, not a lagging index (and whichever of two
//! concurrent writes of a show won, the table says). A changed show costs a task one
//! read unit (up to 4 KB); re-reading the index costs what the catalogue holds.
//!
//! Entries carry `expiresAt` (epoch seconds, the retention after the write,
//! `APP__CHANGES__RETENTIONHOURS`) for the table's TTL (enabled by `infra/modules/data`);
//! readers treat an entry past it as missing, whether or not TTL has deleted it yet. An
//! entry holds every slug its write named (a feed's 1000 fit one item; more go to parts),
//! and says whether it is a write's announcement (`openUntil`) or the bump after it
//! (`closes`): the change feed serves an announced write only once it has landed. An entry is put just after the bump that numbered it, so a
//! reader can see a version a few milliseconds before its entry: a missing entry is
//! asked for once more after [`MISSING_RETRY`] before the answer is
//! [`Changes::Unknown`]. A writer that fails between the two (or never writes entries:
//! the Go service, a console edit) leaves a gap, and readers read the index.

use super::errors::{self, CallContext};
use super::item::{self, Item};
use super::units;
use crate::store::layout::{
    CHANGE_LOG_CLOSES, CHANGE_LOG_COUNT, CHANGE_LOG_EXPIRES, CHANGE_LOG_MAX_SLUGS,
    CHANGE_LOG_OPEN_UNTIL, CHANGE_LOG_PARTS, CHANGE_LOG_PREFIX, CHANGE_LOG_SLUGS,
    CHANGE_RECORD_ATTRIBUTE, CHANGE_RECORD_KEY, CHANGE_RECORD_LOG_ID, CHANGE_RECORD_UNSETTLED,
    GSI_HASH_KEY, GSI_RANGE_KEY, SHOW_CREATED_AT, SHOW_OWNER, TABLE_HASH_KEY,
};
use crate::store::usage::{self, Call};
use crate::store::{Changes, ListItem, LogEntry, LogRead, StoreError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnConsumedCapacity, ReturnValue,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long after a bump DynamoDB's index may still miss the writes it counts, and how
/// long a call cut off at a write's deadline may still land on the server. A GSI
/// typically follows its table in well under a second (its reads are always eventually
/// consistent; AWS gives no hard bound), so 2 s covers it with room, plus the clock
/// difference between tasks (kept by the Amazon Time Sync Service to far less). Too short
/// a margin costs a reader a stale show until the safety net; too long costs it only one
/// more re-read of the logged shows, later.
pub const INDEX_LAG_MARGIN: Duration = Duration::from_secs(2);

/// At most this many versions in one answer: one `BatchGetItem` (DynamoDB's limit: 100
/// keys per call).
pub const MAX_VERSIONS: u64 = crate::store::MAX_LOG_READ;
/// How long a reader waits before asking again for an entry not written yet.
const MISSING_RETRY: Duration = Duration::from_millis(100);
/// `BatchGetItem` calls for one answer's shows in flight at once.
const CONCURRENCY: usize = 4;
/// Pauses between `UnprocessedKeys` retries: 50 ms doubling, this many times.
const UNPROCESSED_RETRIES: u32 = 5;

/// The key of the entry of `version`.
pub fn entry_key(version: u64) -> String {
    format!("{CHANGE_LOG_PREFIX}{version}")
}

/// The key of part `i` (1 ..) of the entry of `version`.
fn part_key(version: u64, i: usize) -> String {
    format!("{CHANGE_LOG_PREFIX}{version}/{i}")
}

/// What kind of bump an entry follows.
#[derive(Debug, Clone, Copy)]
pub enum EntryKind {
    /// A write's announcement: its shows may land until this time.
    Open { until: SystemTime },
    /// The bump after a write (the version of its announcement, when known).
    Close { announced: Option<u64> },
}

/// Puts the entry of `version`: every slug its write named (in parts of
/// [`CHANGE_LOG_MAX_SLUGS`]: the parts first, so an entry read has all of them), kept
/// `retention` (its `expiresAt`).
pub async fn put(
    client: &Client,
    table: &str,
    version: u64,
    mut slugs: Vec<String>,
    kind: EntryKind,
    retention: Duration,
) -> Result<(), StoreError> {
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(retention)
        .as_secs();
    slugs.sort_unstable();
    slugs.dedup();
    let chunks: Vec<Vec<String>> = slugs
        .chunks(CHANGE_LOG_MAX_SLUGS)
        .map(<[String]>::to_vec)
        .collect();
    let parts = chunks.len().max(1);
    let count = slugs.len();
    let mut chunks = chunks.into_iter();
    let first = chunks.next().unwrap_or_default();
    for (i, chunk) in chunks.enumerate() {
        let part = HashMap::from([
            (
                TABLE_HASH_KEY.to_string(),
                AttributeValue::S(part_key(version, i + 1)),
            ),
            (
                CHANGE_LOG_EXPIRES.to_string(),
                AttributeValue::N(expires.to_string()),
            ),
            (CHANGE_LOG_SLUGS.to_string(), AttributeValue::Ss(chunk)),
        ]);
        put_item(client, table, part).await?;
    }
    let mut entry = HashMap::from([
        (
            TABLE_HASH_KEY.to_string(),
            AttributeValue::S(entry_key(version)),
        ),
        (
            CHANGE_LOG_EXPIRES.to_string(),
            AttributeValue::N(expires.to_string()),
        ),
    ]);
    // A string set cannot be empty: a write naming nothing logs no set (an empty entry).
    if !first.is_empty() {
        entry.insert(CHANGE_LOG_SLUGS.to_string(), AttributeValue::Ss(first));
    }
    entry.insert(
        CHANGE_LOG_COUNT.into(),
        AttributeValue::N(count.to_string()),
    );
    if parts > 1 {
        entry.insert(
            CHANGE_LOG_PARTS.into(),
            AttributeValue::N(parts.to_string()),
        );
    }
    match kind {
        EntryKind::Open { until } => {
            entry.insert(CHANGE_LOG_OPEN_UNTIL.into(), millis(until));
        }
        EntryKind::Close { announced: Some(v) } => {
            entry.insert(CHANGE_LOG_CLOSES.into(), AttributeValue::N(v.to_string()));
        }
        EntryKind::Close { announced: None } => {}
    }
    put_item(client, table, entry).await
}

async fn put_item(
    client: &Client,
    table: &str,
    item: HashMap<String, AttributeValue>,
) -> Result<(), StoreError> {
    let call = Call::start("dynamodb", "PutItem");
    let res = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .map_err(|e| errors::from_sdk(e, cx(table, "PutItem")));
    call.finish(&res);
    let out = res?;
    usage::consumed("PutItem", 0.0, units(out.consumed_capacity()), 1);
    Ok(())
}

fn millis(t: SystemTime) -> AttributeValue {
    AttributeValue::N(
        t.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            .to_string(),
    )
}

/// The change record after a [`bump`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bumped {
    /// The new version, when DynamoDB returned it as a whole number.
    pub version: Option<u64>,
    /// The `unsettledUntil` this bump set (`None`: a later one was kept).
    pub until: Option<SystemTime>,
}

/// Bumps the change record: `ADD version 1`, and `SET unsettledUntil = until` unless the
/// record holds a later time that is not `replaces` (the caller's own announcement): a
/// condition on the call, and a plain `ADD` when it fails. So a bump never shortens
/// another writer's window, while a writer's bump after its write ends its own. (A
/// writer that announced after ours with an earlier deadline would be shortened by our
/// closing bump; every task of a deployment has the same write deadline, so one that
/// announced later has the later deadline, and ours then does not replace it.)
pub async fn bump(
    client: &Client,
    table: &str,
    until: SystemTime,
    replaces: Option<SystemTime>,
) -> Result<Bumped, StoreError> {
    // The log's id, set by the first bump and kept (63 bits, not 0).
    let log_id = (uuid::Uuid::new_v4().as_u64_pair().0 >> 1).max(1);
    for conditional in [true, false] {
        let call = Call::start("dynamodb", "UpdateItem");
        let request = client
            .update_item()
            .table_name(table)
            .key(TABLE_HASH_KEY, AttributeValue::S(CHANGE_RECORD_KEY.into()))
            .expression_attribute_names("#v", CHANGE_RECORD_ATTRIBUTE)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_names("#l", CHANGE_RECORD_LOG_ID)
            .expression_attribute_values(":log", AttributeValue::N(log_id.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let request = match (conditional, replaces) {
            (false, _) => request.update_expression("ADD #v :one SET #l = if_not_exists(#l, :log)"),
            (true, mine) => {
                let request = request
                    .update_expression("ADD #v :one SET #u = :until, #l = if_not_exists(#l, :log)")
                    .expression_attribute_names("#u", CHANGE_RECORD_UNSETTLED)
                    .expression_attribute_values(":until", millis(until));
                match mine {
                    None => request.condition_expression("attribute_not_exists(#u) OR #u < :until"),
                    Some(mine) => request
                        .condition_expression(
                            "attribute_not_exists(#u) OR #u < :until OR #u = :mine",
                        )
                        .expression_attribute_values(":mine", millis(mine)),
                }
            }
        };
        let res = match request.send().await {
            Ok(out) => Ok(Some(out)),
            // A later deadline is recorded: keep it, bump the counter alone.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(errors::from_sdk(e, cx(table, "UpdateItem"))),
        };
        call.finish(&res);
        let Some(out) = res? else {
            continue;
        };
        usage::consumed("UpdateItem", 0.0, units(out.consumed_capacity()), 1);
        return Ok(Bumped {
            version: out
                .attributes()
                .and_then(|a| a.get(CHANGE_RECORD_ATTRIBUTE))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok()),
            until: conditional.then_some(until),
        });
    }
    Err(StoreError::Internal(anyhow::anyhow!(
        "the change record's unconditional bump failed its condition"
    )))
}

/// The record's `unsettledUntil` as a time; `None` when absent or not a whole number.
pub fn unsettled_until(value: Option<&AttributeValue>) -> Option<SystemTime> {
    let ms: u64 = value?.as_n().ok()?.parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// A whole number attribute.
fn number(value: Option<&AttributeValue>) -> Option<u64> {
    value?.as_n().ok()?.parse().ok()
}

fn cx<'a>(table: &'a str, operation: &'static str) -> CallContext<'a> {
    CallContext {
        operation,
        table,
        index: None,
    }
}

/// What versions `since + 1 ..= upto` changed (see the module doc).
pub async fn since(
    client: &Client,
    table: &str,
    since: u64,
    upto: u64,
    max_shows: usize,
) -> Result<Changes, StoreError> {
    if upto <= since || upto - since > MAX_VERSIONS {
        return Ok(Changes::Unknown);
    }
    let LogRead::Entries(entries) = entries(client, table, since, upto).await? else {
        return Ok(Changes::Unknown);
    };
    let mut slugs = BTreeSet::new();
    for entry in entries {
        slugs.extend(entry.slugs);
        if slugs.len() > max_shows {
            return Ok(Changes::Unknown);
        }
    }
    let slugs: Vec<String> = slugs.into_iter().collect();
    let items = catalogue_items(client, table, &slugs).await?;
    Ok(Changes::Shows { slugs, items })
}

/// The entries of versions `since + 1 ..= upto` (at most [`MAX_VERSIONS`]), strongly
/// consistent; one past its `expiresAt` reads as missing (TTL deletes it days later). A
/// missing entry is asked for once more after [`MISSING_RETRY`] (its writer puts it
/// just after the bump that numbered it).
pub async fn entries(
    client: &Client,
    table: &str,
    since: u64,
    upto: u64,
) -> Result<LogRead, StoreError> {
    let upto = upto.min(since.saturating_add(MAX_VERSIONS));
    if upto <= since {
        return Ok(LogRead::Entries(Vec::new()));
    }
    let mut wanted: Vec<String> = (since + 1..=upto).map(entry_key).collect();
    let mut found: HashMap<String, Item> = HashMap::with_capacity(wanted.len());
    for attempt in 0..2 {
        let got = batch_get(client, table, wanted.clone(), Projection::Entry).await?;
        for it in got {
            if let Some(key) = item::slug_of(&it) {
                found.insert(key.to_string(), it);
            }
        }
        wanted.retain(|k| !found.contains_key(k));
        if wanted.is_empty() || attempt == 1 {
            break;
        }
        tokio::time::sleep(MISSING_RETRY).await;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut out = Vec::with_capacity(found.len());
    let mut more: Vec<(usize, String)> = Vec::new();
    for version in since + 1..=upto {
        let Some(entry) = found.get(&entry_key(version)) else {
            return Ok(LogRead::Gap { missing: version });
        };
        if number(entry.get(CHANGE_LOG_EXPIRES)).is_none_or(|t| t < now) {
            return Ok(LogRead::Expired { version });
        }
        let slugs = entry
            .get(CHANGE_LOG_SLUGS)
            .and_then(|a| a.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        // An entry from before every write was logged whole may lack its slugs.
        if entry.get(CHANGE_LOG_COUNT).is_none() && slugs.is_empty() {
            return Ok(LogRead::Gap { missing: version });
        }
        let parts = number(entry.get(CHANGE_LOG_PARTS)).unwrap_or(1) as usize;
        more.extend((1..parts).map(|i| (out.len(), part_key(version, i))));
        out.push(LogEntry {
            version,
            slugs,
            open_until: unsettled_until(entry.get(CHANGE_LOG_OPEN_UNTIL)),
            closes: number(entry.get(CHANGE_LOG_CLOSES)),
        });
    }
    for chunk in more.chunks(100) {
        let keys = chunk.iter().map(|(_, k)| k.clone()).collect();
        let got = batch_get(client, table, keys, Projection::Entry).await?;
        let by_key: HashMap<&str, &Item> = got
            .iter()
            .filter_map(|it| Some((item::slug_of(it)?, it)))
            .collect();
        for (at, key) in chunk {
            let Some(part) = by_key.get(key.as_str()) else {
                return Ok(LogRead::Gap {
                    missing: out[*at].version,
                });
            };
            let named = part.get(CHANGE_LOG_SLUGS).and_then(|a| a.as_ss().ok());
            out[*at].slugs.extend(named.into_iter().flatten().cloned());
        }
    }
    for entry in &mut out {
        entry.slugs.sort_unstable();
        entry.slugs.dedup();
    }
    Ok(LogRead::Entries(out))
}

/// Of `slugs`, the shows in the catalogue now (`drmKey = 1 AND episodeCount > 0`, what
/// the index query keeps), by strongly consistent `BatchGetItem`s of 100.
pub async fn catalogue_items(
    client: &Client,
    table: &str,
    slugs: &[String],
) -> Result<Vec<ListItem>, StoreError> {
    let chunks: Vec<Vec<String>> = slugs.chunks(100).map(<[String]>::to_vec).collect();
    let shows: Vec<Vec<Item>> = futures::stream::iter(
        chunks
            .into_iter()
            .map(|chunk| batch_get(client, table, chunk, Projection::Show)),
    )
    .buffer_unordered(CONCURRENCY)
    .try_collect()
    .await?;
    let drm =
        |it: &&Item| (it.get(GSI_HASH_KEY).and_then(|a| a.as_n().ok())).is_some_and(|v| v == "1");
    Ok(shows
        .iter()
        .flatten()
        .filter(drm)
        .filter_map(item::to_list_item)
        .filter(|li| li.episode_count > 0)
        .collect())
}

/// What [`batch_get`] reads of each item.
#[derive(Clone, Copy)]
pub(super) enum Projection {
    /// A change-log entry's slugs.
    Entry,
    /// A show's catalogue fields.
    Show,
    /// A show's owner and creation time (the ownership check before a write).
    Owner,
}

/// Strongly consistent `BatchGetItem` of up to 100 keys, `UnprocessedKeys` retried.
pub(super) async fn batch_get(
    client: &Client,
    table: &str,
    keys: Vec<String>,
    projection: Projection,
) -> Result<Vec<Item>, StoreError> {
    let keys = keys
        .into_iter()
        .map(|k| HashMap::from([(TABLE_HASH_KEY.to_string(), AttributeValue::S(k))]))
        .collect();
    let request = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(true)
        .expression_attribute_names("#slug", TABLE_HASH_KEY);
    let request = match projection {
        Projection::Entry => request
            .projection_expression("#slug, #slugs, #exp, #parts, #open, #closes, #count")
            .expression_attribute_names("#count", CHANGE_LOG_COUNT)
            .expression_attribute_names("#slugs", CHANGE_LOG_SLUGS)
            .expression_attribute_names("#exp", CHANGE_LOG_EXPIRES)
            .expression_attribute_names("#parts", CHANGE_LOG_PARTS)
            .expression_attribute_names("#open", CHANGE_LOG_OPEN_UNTIL)
            .expression_attribute_names("#closes", CHANGE_LOG_CLOSES),
        Projection::Show => request
            .projection_expression("#slug, #title, #image.#showImage, #episodeCount, #drmKey")
            .expression_attribute_names("#title", "title")
            .expression_attribute_names("#image", "image")
            .expression_attribute_names("#showImage", "showImage")
            .expression_attribute_names("#episodeCount", GSI_RANGE_KEY)
            .expression_attribute_names("#drmKey", GSI_HASH_KEY),
        Projection::Owner => request
            .projection_expression("#slug, #owner, #createdAt")
            .expression_attribute_names("#owner", SHOW_OWNER)
            .expression_attribute_names("#createdAt", SHOW_CREATED_AT),
    };
    let mut pending = Some(
        request
            .build()
            .map_err(|e| StoreError::Internal(e.into()))?,
    );
    let mut found = Vec::new();
    let mut attempt = 0;
    while let Some(request) = pending.take() {
        let call = Call::start("dynamodb", "BatchGetItem");
        let res = client
            .batch_get_item()
            .request_items(table, request)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| errors::from_sdk(e, cx(table, "BatchGetItem")));
        call.finish(&res);
        let mut out = res?;
        let got = out
            .responses
            .as_mut()
            .and_then(|r| r.remove(table))
            .unwrap_or_default();
        let read_units = out.consumed_capacity().iter().map(|c| units(Some(c))).sum();
        usage::consumed("BatchGetItem", read_units, 0.0, got.len());
        found.extend(got);
        pending = out
            .unprocessed_keys
            .as_mut()
            .and_then(|u| u.remove(table))
            .filter(|k| !k.keys().is_empty());
        if pending.is_some() {
            attempt += 1;
            if attempt > UNPROCESSED_RETRIES {
                return Err(StoreError::unavailable(
                    "DynamoDB BatchGetItem left keys unprocessed: throttled",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50) * (1 << attempt)).await;
        }
    }
    Ok(found)
}
