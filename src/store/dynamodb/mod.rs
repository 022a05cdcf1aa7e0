//! The production store: DynamoDB, through the official AWS SDK for Rust, on the table the
//! Go service used (docs/dynamodb.md, "Data layout").
//!
//! - [`client`]: building the SDK client (region, endpoint override, credentials,
//!   per-call timeouts and retries).
//! - [`item`]: a show as an item and back, in our sparse layout and the Go service's.
//! - [`owners`]: who owns each show (provenance attributes), the rule on every write
//!   path with no window between check and write, deletes and owner assignments.
//! - [`mod@write`]: feeds as concurrent `TransactWriteItems` of 100 conditioned puts, with
//!   retries of throttled transactions and a new read after a lost race.
//! - [`cursor`]: the paging cursor (an encoded, checked `LastEvaluatedKey`).
//! - [`table`]: `table create` and the schema check.
//! - [`errors`]: SDK errors to [`StoreError`] (503 for anything transient).
//!
//! Reads: the catalogue is a `Query` of the GSI (`drmKey = 1 AND episodeCount > 0`)
//! projecting `slug, title, image.showImage` (and `episodeCount`, for the cursor),
//! following `LastEvaluatedKey` to the end; one show is a strongly consistent `GetItem`
//! (its provenance with it). A delete reads the show's owner first (absent: a 404).
//!
//! The change record (see [`crate::store`]) is one item of the same table, key
//! [`CHANGE_RECORD_KEY`], outside the `show/…` key space and without the index's
//! attributes, so neither the Go service's query nor ours ever sees it. Every feed and
//! every delete is bracketed by two `UpdateItem`s on it ([`changes::bump`]: `ADD version
//! 1`, atomic, creates it when missing, 1 write unit), each followed by a change-log entry
//! naming the write's slugs under the version it returned ([`changes`]), so other tasks
//! re-read only those shows:
//!
//! - before the first write call, the announcement: `unsettledUntil` = now + the write
//!   deadline + [`changes::INDEX_LAG_MARGIN`]. A process killed after it (SIGKILL, OOM,
//!   a task stopped past its stop timeout) has still told every task which shows may have
//!   changed and until when; they re-read them once that time has passed. A failed
//!   announcement is a 503 and the write does not start.
//! - after the write, when it stored anything: `unsettledUntil` = now + the margin, so a
//!   task that read the catalogue during the write sees a new version at once. A failed
//!   bump here makes the write a 503 (puts and deletes are idempotent: the client's retry
//!   bumps again); other tasks see the write when the announcement's window ends anyway.
//!
//! A bump never moves `unsettledUntil` earlier except over its own announcement (see
//! [`changes::bump`]). A task reads the record with an eventually consistent `GetItem`
//! (half a read unit).

pub mod changes;
pub mod client;
pub mod cursor;
pub mod errors;
pub mod item;
pub mod owners;
pub mod table;
pub mod write;

#[cfg(test)]
mod tests;

use super::usage::{self, Call};
use super::{
    Assignment, ChangeRecord, Changes, ListItem, LogRead, Page, PageRequest, ShowStore, StoreError,
    StoredShow,
};
use crate::config::DynamoSettings;
use crate::domain::{Actor, Partner, Show, Slug, Timestamp};
use crate::store::layout::{
    CHANGE_RECORD_ATTRIBUTE, CHANGE_RECORD_KEY, CHANGE_RECORD_LOG_ID, CHANGE_RECORD_UNSETTLED,
    GSI_HASH_KEY, GSI_RANGE_KEY, TABLE_HASH_KEY,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConsumedCapacity, ReturnConsumedCapacity, TableStatus,
};
use cursor::Position;
use errors::CallContext;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use write::{Target, WritePolicy};

/// The capacity units a call reported (`ReturnConsumedCapacity=TOTAL`); 0 when absent.
pub(crate) fn units(consumed: Option<&ConsumedCapacity>) -> f64 {
    consumed.and_then(|c| c.capacity_units()).unwrap_or(0.0)
}

/// How long `table create` waits for the table and index to become ACTIVE.
pub const TABLE_WAIT: Duration = Duration::from_secs(600);

/// `KeyConditionExpression` of the catalogue (names and values below).
const CATALOGUE_CONDITION: &str = "#drmKey = :one AND #episodeCount > :zero";
/// `ProjectionExpression` of the catalogue. Every name goes through
/// `ExpressionAttributeNames`, so reserved words never matter.
const CATALOGUE_PROJECTION: &str = "#slug, #title, #image.#showImage, #episodeCount";

pub struct DynamoStore {
    client: Client,
    table: String,
    gsi: String,
    policy: WritePolicy,
    /// `Limit` of each catalogue page when the caller gave none (`None`: DynamoDB's 1 MB
    /// pages). Tests lower it to prove that every page is followed.
    page_limit: Option<i32>,
    /// How long the change log keeps an entry (its `expiresAt`).
    retention: Duration,
}

/// A write's announcement, for the bump after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Announced {
    /// The `unsettledUntil` it set (`None`: a later one was kept).
    until: Option<SystemTime>,
    /// The version it bumped to.
    version: Option<u64>,
}

impl DynamoStore {
    /// A store on the table `settings` name. Makes no network call (see [`client`]).
    pub async fn connect(settings: &DynamoSettings) -> anyhow::Result<DynamoStore> {
        let config = client::config(settings).await?;
        Ok(DynamoStore::from_client(
            Client::from_conf(config),
            settings,
        ))
    }

    /// A store using `client` (tests pass a mocked or emulator client here).
    pub fn from_client(client: Client, settings: &DynamoSettings) -> DynamoStore {
        DynamoStore {
            client,
            table: settings.table.clone(),
            gsi: settings.gsi.clone(),
            policy: WritePolicy {
                concurrency: settings.write_concurrency,
                deadline: settings.write_deadline,
                backoff_base: Duration::from_millis(50),
                backoff_cap: Duration::from_secs(2),
            },
            page_limit: None,
            retention: crate::config::ChangesSettings::default().retention,
        }
    }

    /// The same store, its change log kept `retention` (`APP__CHANGES__RETENTIONHOURS`).
    pub fn with_retention(mut self, retention: Duration) -> DynamoStore {
        self.retention = retention;
        self
    }

    /// Sets the backoff of `UnprocessedItems` retries (first pause, largest pause).
    pub fn with_backoff(mut self, base: Duration, cap: Duration) -> DynamoStore {
        self.policy.backoff_base = base;
        self.policy.backoff_cap = cap;
        self
    }

    /// Caps each page of an unpaged catalogue query at `limit` items.
    pub fn with_page_limit(mut self, limit: u32) -> DynamoStore {
        self.page_limit = Some(i32::try_from(limit).unwrap_or(i32::MAX).max(1));
        self
    }

    /// The SDK client (for tools such as the benchmark).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table and index when missing (see [`table::ensure`]).
    pub async fn ensure_table(&self, wait: Duration) -> anyhow::Result<table::Outcome> {
        table::ensure(&self.client, &self.table, &self.gsi, wait).await
    }

    /// One item by slug, strongly consistent (`project` narrows what is read): the show's
    /// read and the ownership read before a delete. An empty item counts as absent.
    async fn get_consistent(
        &self,
        slug: &Slug,
        project: impl FnOnce(GetItemFluentBuilder) -> GetItemFluentBuilder,
    ) -> Result<Option<item::Item>, StoreError> {
        let call = Call::start("dynamodb", "GetItem");
        let request = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(TABLE_HASH_KEY, AttributeValue::S(slug.to_string()))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let res = project(request)
            .send()
            .await
            .map_err(|e| errors::from_sdk(e, self.cx("GetItem")));
        call.finish(&res);
        let out = res?;
        usage::consumed(
            "GetItem",
            units(out.consumed_capacity()),
            0.0,
            usize::from(out.item.is_some()),
        );
        Ok(out.item.filter(|i| !i.is_empty()))
    }

    fn cx(&self, operation: &'static str) -> CallContext<'_> {
        CallContext {
            operation,
            table: &self.table,
            index: None,
        }
    }

    /// Announces a write before it starts: bumps the change record with `unsettledUntil`
    /// at the write's deadline (`deadline`, from now) plus [`changes::INDEX_LAG_MARGIN`],
    /// and logs the write's `slugs` under the new version. Returns the `unsettledUntil` it
    /// set, for the bump after the write. A failed bump is a 503 and the write does not
    /// start; a failed log entry only costs other tasks a read of the index.
    async fn announce(
        &self,
        what: &str,
        slugs: &[String],
        deadline: Duration,
    ) -> Result<Announced, StoreError> {
        let until = SystemTime::now() + deadline + changes::INDEX_LAG_MARGIN;
        match changes::bump(&self.client, &self.table, until, None).await {
            Ok(bumped) => {
                let kind = changes::EntryKind::Open { until };
                self.log_change(what, bumped.version, slugs.to_vec(), kind)
                    .await;
                Ok(Announced {
                    until: bumped.until,
                    version: bumped.version,
                })
            }
            Err(e) => {
                tracing::warn!(
                    table = %self.table,
                    error = %e,
                    "the change record could not be bumped: {what} not started"
                );
                Err(StoreError::Unavailable {
                    reason: format!("{what} not started: the change record was not bumped: {e}"),
                    retry_after: Duration::from_secs(1),
                })
            }
        }
    }

    /// Bumps the change record again after a write that stored something, with
    /// `unsettledUntil` at now plus the index-lag margin (replacing `announced`, the
    /// write's own window, but no other writer's), and logs the same `slugs`: a task that
    /// read the catalogue while the write ran sees a new version and re-reads them. A
    /// failed bump is a 503 that says the write went through (the announcement still makes
    /// every task re-read those shows once the write's window has passed).
    async fn record_change(
        &self,
        what: &str,
        slugs: Vec<String>,
        announced: Announced,
    ) -> Result<(), StoreError> {
        let until = SystemTime::now() + changes::INDEX_LAG_MARGIN;
        match changes::bump(&self.client, &self.table, until, announced.until).await {
            Ok(bumped) => {
                let kind = changes::EntryKind::Close {
                    announced: announced.version,
                };
                self.log_change(what, bumped.version, slugs, kind).await;
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    table = %self.table,
                    error = %e,
                    "{what} went through but the change record was not bumped after it: \
                     other tasks see it once the write's window has passed, or when the \
                     client retries"
                );
                Err(StoreError::Unavailable {
                    reason: format!("{what} stored, but the change record was not bumped: {e}"),
                    retry_after: Duration::from_secs(1),
                })
            }
        }
    }

    /// Logs `slugs` under `version` (the change log); a failure is a WARN line (a gap:
    /// caches read the index, change cursors before it get 410).
    async fn log_change(
        &self,
        what: &str,
        version: Option<u64>,
        slugs: Vec<String>,
        kind: changes::EntryKind,
    ) {
        let Some(version) = version else {
            return;
        };
        let (client, table) = (&self.client, &self.table);
        if let Err(e) = changes::put(client, table, version, slugs, kind, self.retention).await {
            tracing::warn!(
                table = %self.table,
                version,
                error = %e,
                "the change-log entry of {what} was not written: other tasks read the whole \
                 index to see it"
            );
        }
    }

    /// One catalogue query: items from `start` on, at most `limit` of them.
    async fn query_page(
        &self,
        start: Option<HashMap<String, AttributeValue>>,
        limit: Option<i32>,
    ) -> Result<
        (
            Vec<HashMap<String, AttributeValue>>,
            Option<HashMap<String, AttributeValue>>,
            f64,
        ),
        StoreError,
    > {
        let call = Call::start("dynamodb", "Query");
        let res = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(&self.gsi)
            .key_condition_expression(CATALOGUE_CONDITION)
            .projection_expression(CATALOGUE_PROJECTION)
            .expression_attribute_names("#drmKey", GSI_HASH_KEY)
            .expression_attribute_names("#episodeCount", GSI_RANGE_KEY)
            .expression_attribute_names("#slug", TABLE_HASH_KEY)
            .expression_attribute_names("#title", "title")
            .expression_attribute_names("#image", "image")
            .expression_attribute_names("#showImage", "showImage")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .set_exclusive_start_key(start)
            .set_limit(limit)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| {
                errors::from_sdk(
                    e,
                    CallContext {
                        index: Some(&self.gsi),
                        ..self.cx("Query")
                    },
                )
            });
        call.finish(&res);
        let out = res?;
        let read_units = units(out.consumed_capacity());
        usage::consumed("Query", read_units, 0.0, out.items().len());
        let last = out.last_evaluated_key.filter(|k| !k.is_empty());
        Ok((out.items.unwrap_or_default(), last, read_units))
    }

    /// Turns projected items into catalogue entries, skipping (and logging) any that
    /// lack a slug, title or episode count.
    fn list_items(&self, items: &[HashMap<String, AttributeValue>]) -> Vec<ListItem> {
        items
            .iter()
            .filter_map(|it| match item::to_list_item(it) {
                Some(li) => Some(li),
                None => {
                    tracing::error!(
                        table = %self.table,
                        slug = item::slug_of(it).unwrap_or("?"),
                        "a catalogue item has no string slug or title; left out of the list"
                    );
                    None
                }
            })
            .collect()
    }
}

#[async_trait]
impl ShowStore for DynamoStore {
    fn kind(&self) -> &'static str {
        "dynamodb"
    }

    /// `DescribeTable`: the table exists, is usable, and has the index.
    async fn ping(&self) -> Result<(), StoreError> {
        let call = Call::start("dynamodb", "DescribeTable");
        let res = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| errors::from_sdk(e, self.cx("DescribeTable")));
        call.finish(&res);
        let out = res?;
        let Some(desc) = out.table else {
            return Err(StoreError::unavailable("DescribeTable returned no table"));
        };
        match desc.table_status() {
            Some(TableStatus::Active | TableStatus::Updating) => {}
            other => {
                return Err(StoreError::unavailable(format!(
                    "table {} is {other:?}",
                    self.table
                )));
            }
        }
        let has_index = desc
            .global_secondary_indexes()
            .iter()
            .any(|i| i.index_name() == Some(self.gsi.as_str()));
        if !has_index {
            tracing::error!(
                table = %self.table,
                index = %self.gsi,
                "DynamoDB table {} has no index {}: run `show-service table create`",
                self.table,
                self.gsi
            );
            return Err(StoreError::Unavailable {
                reason: format!("table {} has no index {}", self.table, self.gsi),
                retry_after: errors::RETRY_AFTER_MISSING,
            });
        }
        Ok(())
    }

    async fn upsert(&self, shows: Vec<Show>, actor: &Actor) -> Result<usize, StoreError> {
        // Slugs are distinct by contract; a repeated one would fail a whole transaction
        // at DynamoDB, so keep the last of each anyway.
        let mut seen = HashSet::with_capacity(shows.len());
        let mut items = Vec::with_capacity(shows.len());
        for show in shows.iter().rev() {
            if seen.insert(show.slug.as_str()) {
                items.push(item::to_item(show));
            }
        }
        items.reverse();
        let slugs: Vec<String> = items
            .iter()
            .filter_map(|i| item::slug_of(i).map(str::to_string))
            .collect();
        // A show over DynamoDB's item limit would fail its whole transaction: refuse the
        // feed before anything is written.
        if let Some(big) = items
            .iter()
            .find(|i| item::size_of(i) > item::MAX_ITEM_BYTES)
        {
            return Err(StoreError::Internal(anyhow::anyhow!(
                "show {} is larger than DynamoDB's 400 KB item limit; nothing was written",
                item::slug_of(big).unwrap_or("?")
            )));
        }
        // Who owns what, before anything is announced: a refused feed leaves the change
        // record as it was.
        let held = owners::read(&self.client, &self.table, &slugs).await?;
        let refused = owners::refused(slugs.iter().map(String::as_str), &held, actor);
        if !refused.is_empty() {
            owners::count_refusal("TransactWriteItems");
            return Err(owners::forbidden(refused, 0));
        }
        let target = Target {
            client: &self.client,
            table: &self.table,
            actor,
            now: Timestamp::now(),
        };
        // The deadline covers the announcement and every transaction, retries included.
        let deadline = Instant::now() + self.policy.deadline;
        let announced = self
            .announce("the feed", &slugs, self.policy.deadline)
            .await?;
        let result = write::write_all(&target, items, held, &self.policy, deadline).await;
        // Nothing stored (every call failed or was cut off): the announcement's window
        // covers a call that still lands, and there is nothing else to tell.
        let stored = match &result {
            Ok(_) | Err(StoreError::Partial { .. }) => true,
            Err(StoreError::Forbidden { written, .. }) => *written > 0,
            Err(_) => false,
        };
        if stored {
            self.record_change("the feed", slugs, announced).await?;
        }
        result
    }

    async fn list_eligible(&self, page: PageRequest) -> Result<Page, StoreError> {
        let mut start = match &page.cursor {
            Some(c) => Some(Position::decode(c)?.to_key()),
            None => None,
        };
        let Some(limit) = page.limit.map(|n| n.get() as usize) else {
            // The whole catalogue: every page, to the end.
            let mut all = Page::default();
            loop {
                let (found, last, read_units) = self.query_page(start, self.page_limit).await?;
                all.items.extend(self.list_items(&found));
                all.calls += 1;
                all.read_units += read_units;
                match last {
                    Some(key) => start = Some(key),
                    None => return Ok(all),
                }
            }
        };
        // One page of `limit`: ask for one more item than needed, so a full last page
        // is known to be the last, and the cursor is the key of the page's last item —
        // the `LastEvaluatedKey` DynamoDB would return had it stopped there.
        let mut items: Vec<ListItem> = Vec::with_capacity(limit + 1);
        let (mut calls, mut read_units) = (0, 0.0);
        loop {
            let want = i32::try_from(limit + 1 - items.len()).unwrap_or(i32::MAX);
            let (found, last, units) = self.query_page(start, Some(want)).await?;
            items.extend(self.list_items(&found));
            calls += 1;
            read_units += units;
            if items.len() > limit {
                items.truncate(limit);
                let next = items.last().and_then(|li| {
                    Some(Position {
                        episode_count: li.episode_count,
                        slug: Slug::parse(li.slug.as_str()).ok()?,
                    })
                });
                let Some(next) = next else {
                    return Err(StoreError::Internal(anyhow::anyhow!(
                        "the last catalogue item of a page has no valid key"
                    )));
                };
                return Ok(Page {
                    items,
                    next: Some(next.encode()),
                    calls,
                    read_units,
                });
            }
            match last {
                Some(key) => start = Some(key),
                None => {
                    return Ok(Page {
                        items,
                        next: None,
                        calls,
                        read_units,
                    });
                }
            }
        }
    }

    async fn get(&self, slug: &Slug) -> Result<Option<StoredShow>, StoreError> {
        match self.get_consistent(slug, |request| request).await? {
            None => Ok(None),
            Some(it) => item::from_item(&it)
                .map(|show| {
                    Some(StoredShow {
                        show,
                        provenance: owners::provenance_of(&it),
                    })
                })
                .map_err(|e| StoreError::Internal(e.into())),
        }
    }

    async fn delete(&self, slug: &Slug, actor: &Actor) -> Result<bool, StoreError> {
        self.delete_owned(slug, actor).await
    }

    async fn assign_owner(
        &self,
        owner: &Partner,
        slugs: &[Slug],
        actor: &Actor,
    ) -> Result<Assignment, StoreError> {
        self.assign(owner, slugs, actor).await
    }

    async fn change_record(&self) -> Result<ChangeRecord, StoreError> {
        let call = Call::start("dynamodb", "GetItem");
        let res = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(TABLE_HASH_KEY, AttributeValue::S(CHANGE_RECORD_KEY.into()))
            .projection_expression("#v, #u, #l")
            .expression_attribute_names("#v", CHANGE_RECORD_ATTRIBUTE)
            .expression_attribute_names("#u", CHANGE_RECORD_UNSETTLED)
            .expression_attribute_names("#l", CHANGE_RECORD_LOG_ID)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| errors::from_sdk(e, self.cx("GetItem")));
        call.finish(&res);
        let out = res?;
        usage::consumed(
            "GetItem",
            units(out.consumed_capacity()),
            0.0,
            usize::from(out.item.is_some()),
        );
        let Some(record) = out.item else {
            return Ok(ChangeRecord::Missing);
        };
        let unsettled_until = changes::unsettled_until(record.get(CHANGE_RECORD_UNSETTLED));
        let log = record
            .get(CHANGE_RECORD_LOG_ID)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok());
        Ok(record
            .get(CHANGE_RECORD_ATTRIBUTE)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .map_or(ChangeRecord::Invalid, |version| ChangeRecord::Version {
                version,
                unsettled_until,
                log,
            }))
    }

    async fn changes_since(
        &self,
        since: u64,
        upto: u64,
        max_shows: usize,
    ) -> Result<Changes, StoreError> {
        changes::since(&self.client, &self.table, since, upto, max_shows).await
    }

    async fn log_entries(&self, since: u64, upto: u64) -> Result<LogRead, StoreError> {
        changes::entries(&self.client, &self.table, since, upto).await
    }

    async fn catalogue_items(&self, slugs: &[String]) -> Result<Vec<ListItem>, StoreError> {
        changes::catalogue_items(&self.client, &self.table, slugs).await
    }
}
