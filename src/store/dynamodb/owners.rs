//! Who owns each show on DynamoDB, and the rule ([`Actor::may_change`]) on every write
//! path, with no window between the check and the write (docs/dynamodb.md, "Owners").
//!
//! A show item carries its [`Provenance`] in four attributes the Go service's item has no
//! field for (its reader ignores them) and that are no index key:
//! [`SHOW_OWNER`] (S, absent on an unowned show), [`SHOW_CREATED_AT`], [`SHOW_UPDATED_AT`]
//! (N, ms since the epoch) and [`SHOW_UPDATED_BY`] (S, a client id).
//!
//! `BatchWriteItem` takes no conditions, so a write is a check and then writes conditioned
//! on what the check read ([`Held`] → [`Condition`]): a slug read as absent is written
//! only if it is still absent, an owned show only if it still has that owner, an unowned
//! one only if it still has none. A write whose condition fails (another writer got in
//! between) reads again and decides again. So whatever interleaving of writers, a show is
//! only ever written by someone the rule allowed on the owner it has when written:
//!
//! - a feed: owners read with consistent `BatchGetItem`s ([`read`]), the whole feed
//!   refused before anything is announced or written when one show is not the actor's
//!   ([`refused`]), then `TransactWriteItems` of conditioned puts ([`put`], sent by the
//!   feed's writer);
//! - a delete (`delete_owned`): a consistent `GetItem`, then a conditioned
//!   `DeleteItem`;
//! - an assignment (`assign`): `TransactWriteItems` of updates of the
//!   owner, each conditioned on the show existing.

use super::changes::{self, Projection};
use super::errors;
use super::item::{Item, slug_of};
use super::{DynamoStore, units};
use crate::domain::{Actor, Partner, Provenance, Slug, Timestamp};
use crate::store::layout::{
    SHOW_CREATED_AT, SHOW_OWNER, SHOW_UPDATED_AT, SHOW_UPDATED_BY, TABLE_HASH_KEY,
};
use crate::store::usage::{self, Call};
use crate::store::{Assignment, StoreError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::{HashMap, HashSet};
use tokio::time::Instant;

/// DynamoDB's limit of actions in one `TransactWriteItems` call.
pub const TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit of a transaction's total size (4 MB), less room for the request's
/// own names and conditions.
pub const TRANSACTION_BYTES: usize = 4 * 1024 * 1024 - 64 * 1024;
/// How many times one write reads again after another writer changed what it read,
/// before it gives up with a 503 (each time means a concurrent writer won a race).
pub const MAX_RACES: u32 = 5;
/// `BatchGetItem` calls of an ownership read in flight at once.
const READ_CONCURRENCY: usize = 4;
/// DynamoDB's limit of keys in one `BatchGetItem` call.
const READ_KEYS: usize = 100;

/// A stored show's ownership, as read before a write of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Held {
    /// The `owner` attribute exactly as stored: the write's condition compares with it.
    raw_owner: Option<AttributeValue>,
    /// The owner (a stored owner that is not a valid partner counts as none) and the
    /// creation time read.
    pub provenance: Provenance,
}

impl Held {
    /// From an item holding at least the provenance attributes.
    pub fn of(item: &Item) -> Held {
        Held {
            raw_owner: item.get(SHOW_OWNER).cloned(),
            provenance: provenance_of(item),
        }
    }

    pub fn owner(&self) -> Option<&Partner> {
        self.provenance.owner.as_ref()
    }
}

/// The provenance an item holds; all `None` on an item the Go service wrote.
pub fn provenance_of(item: &Item) -> Provenance {
    let text = |name: &str| item.get(name).and_then(|a| a.as_s().ok()).cloned();
    let at = |name: &str| {
        item.get(name)
            .and_then(|a| a.as_n().ok())
            .and_then(|n| n.parse().ok())
            .map(Timestamp::from_millis)
    };
    Provenance {
        owner: text(SHOW_OWNER).and_then(|o| Partner::parse(o).ok()),
        created_at: at(SHOW_CREATED_AT),
        updated_at: at(SHOW_UPDATED_AT),
        updated_by: text(SHOW_UPDATED_BY),
    }
}

/// Adds `p`'s attributes to a show's item (none for a field that is `None`).
pub fn put_provenance(item: &mut Item, p: &Provenance) {
    let millis = |t: Timestamp| AttributeValue::N(t.millis().to_string());
    if let Some(owner) = &p.owner {
        item.insert(SHOW_OWNER.into(), AttributeValue::S(owner.to_string()));
    }
    if let Some(t) = p.created_at {
        item.insert(SHOW_CREATED_AT.into(), millis(t));
    }
    if let Some(t) = p.updated_at {
        item.insert(SHOW_UPDATED_AT.into(), millis(t));
    }
    if let Some(by) = &p.updated_by {
        item.insert(SHOW_UPDATED_BY.into(), AttributeValue::S(by.clone()));
    }
}

/// A write's condition: the show is still as it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub expression: &'static str,
    pub names: HashMap<String, String>,
    pub values: Option<HashMap<String, AttributeValue>>,
}

impl Condition {
    /// Still absent (`None`), still owned by the owner read, or still unowned.
    pub fn as_read(held: Option<&Held>) -> Condition {
        let names = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        match held {
            None => Condition {
                expression: "attribute_not_exists(#slug)",
                names: names(&[("#slug", TABLE_HASH_KEY)]),
                values: None,
            },
            Some(Held {
                raw_owner: Some(owner),
                ..
            }) => Condition {
                expression: "#owner = :owner",
                names: names(&[("#owner", SHOW_OWNER)]),
                values: Some(HashMap::from([(":owner".to_string(), owner.clone())])),
            },
            Some(Held {
                raw_owner: None, ..
            }) => Condition {
                expression: "attribute_exists(#slug) AND attribute_not_exists(#owner)",
                names: names(&[("#slug", TABLE_HASH_KEY), ("#owner", SHOW_OWNER)]),
                values: None,
            },
        }
    }
}

/// The conditioned put of one show of a feed: `content` (the show's item) with the
/// provenance a write by `actor` at `now` leaves ([`Provenance::after_write`]), written
/// only if the show is still as `held` says.
pub fn put(
    table: &str,
    content: &Item,
    held: Option<&Held>,
    actor: &Actor,
    now: Timestamp,
) -> Result<TransactWriteItem, StoreError> {
    let mut item = content.clone();
    let provenance = Provenance::after_write(held.map(|h| &h.provenance), actor, now);
    put_provenance(&mut item, &provenance);
    let condition = Condition::as_read(held);
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition.expression)
        .set_expression_attribute_names(Some(condition.names))
        .set_expression_attribute_values(condition.values)
        .build()
        .map_err(|e| StoreError::Internal(e.into()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// The slugs of `slugs` (in their order) that are stored and that `actor` may not change.
pub fn refused<'a>(
    slugs: impl IntoIterator<Item = &'a str>,
    held: &HashMap<String, Held>,
    actor: &Actor,
) -> Vec<String> {
    slugs
        .into_iter()
        .filter(|s| held.get(*s).is_some_and(|h| !actor.may_change(h.owner())))
        .map(str::to_string)
        .collect()
}

/// Counts a write refused before any call (outcome `refused` of `store_calls_total`,
/// under the operation it would have made).
pub fn count_refusal(operation: &'static str) {
    Call::start("dynamodb", operation).finish(&Err::<(), _>(StoreError::Forbidden {
        slugs: Vec::new(),
        written: 0,
    }));
}

/// The ownership of each stored show of `slugs`: strongly consistent `BatchGetItem`s of
/// 100 keys projecting only the slug, owner and creation time.
pub async fn read(
    client: &Client,
    table: &str,
    slugs: &[String],
) -> Result<HashMap<String, Held>, StoreError> {
    let chunks: Vec<Vec<String>> = slugs.chunks(READ_KEYS).map(<[String]>::to_vec).collect();
    let found: Vec<Vec<Item>> = futures::stream::iter(
        chunks
            .into_iter()
            .map(|keys| changes::batch_get(client, table, keys, Projection::Owner)),
    )
    .buffer_unordered(READ_CONCURRENCY)
    .try_collect()
    .await?;
    Ok(found
        .iter()
        .flatten()
        .filter_map(|item| Some((slug_of(item)?.to_string(), Held::of(item))))
        .collect())
}

/// Why DynamoDB cancelled a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// Conditions failed: another writer changed a show since it was read. The positions
    /// of the actions whose condition failed (empty when the answer did not say).
    Conditions(Vec<usize>),
    /// Throttled, or in conflict with another transaction on the same item: the same
    /// transaction may be sent again after a pause. The reasons, for the log.
    Transient(String),
}

/// The cancellation `err` is, if it is one that a read or a pause can resolve; `None`
/// for any other failure (including a cancellation for an invalid request).
pub fn cancelled(err: &SdkError<TransactWriteItemsError, HttpResponse>) -> Option<Cancelled> {
    let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error()
    else {
        return None;
    };
    let codes: Vec<&str> = e
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or("None"))
        .collect();
    let failed: Vec<usize> = (codes.iter().enumerate())
        .filter(|(_, c)| **c == "ConditionalCheckFailed")
        .map(|(i, _)| i)
        .collect();
    if !failed.is_empty() || codes.iter().all(|c| *c == "None") {
        return Some(Cancelled::Conditions(failed));
    }
    let transient = |c: &&str| {
        matches!(
            *c,
            "None"
                | "TransactionConflict"
                | "ThrottlingError"
                | "ProvisionedThroughputExceeded"
                | "RequestLimitExceeded"
        )
    };
    codes
        .iter()
        .all(transient)
        .then(|| Cancelled::Transient(codes.join(", ")))
}

/// What a refused show's answer says: refused whole, or after `written` were stored.
pub fn forbidden(slugs: Vec<String>, written: usize) -> StoreError {
    StoreError::Forbidden { slugs, written }
}

impl DynamoStore {
    /// One show's ownership: a strongly consistent `GetItem` projecting it.
    async fn held_one(&self, slug: &Slug) -> Result<Option<Held>, StoreError> {
        let held = self
            .get_consistent(slug, |request| {
                request
                    .projection_expression("#slug, #owner, #createdAt")
                    .expression_attribute_names("#slug", TABLE_HASH_KEY)
                    .expression_attribute_names("#owner", SHOW_OWNER)
                    .expression_attribute_names("#createdAt", SHOW_CREATED_AT)
            })
            .await?;
        Ok(held.map(|i| Held::of(&i)))
    }

    /// Deletes `slug` for `actor` (see the module doc): refused (no call after the read,
    /// the change record left alone) when the show is not the actor's to delete; else
    /// announced, a `DeleteItem` conditioned on the owner read, and bumped after. A
    /// condition that fails (the show changed hands or went meanwhile) reads again.
    pub(super) async fn delete_owned(
        &self,
        slug: &Slug,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let slugs = vec![slug.to_string()];
        let mut held = self.held_one(slug).await?;
        if held.as_ref().is_some_and(|h| !actor.may_change(h.owner())) {
            count_refusal("DeleteItem");
            return Err(forbidden(slugs, 0));
        }
        let deadline = Instant::now() + self.policy.deadline;
        let announced = self
            .announce("the delete", &slugs, self.policy.deadline)
            .await?;
        let mut deleted = false;
        let mut races = 0;
        // Absent: nothing to delete, but bumped all the same (a retry after a failed bump
        // still bumps).
        while let Some(h) = &held {
            if self.delete_if(slug, h, deadline).await? {
                deleted = true;
                break;
            }
            races += 1;
            if races > MAX_RACES {
                return Err(StoreError::unavailable(
                    "other writers kept changing the show during its delete",
                ));
            }
            held = self.held_one(slug).await?;
            if held.as_ref().is_some_and(|h| !actor.may_change(h.owner())) {
                // Nothing was removed: the announcement alone covers this write.
                return Err(forbidden(slugs, 0));
            }
        }
        self.record_change("the delete", slugs, announced).await?;
        Ok(deleted)
    }

    /// `DeleteItem` of `slug` if it is still as `held` says; `false` when the condition
    /// failed.
    async fn delete_if(
        &self,
        slug: &Slug,
        held: &Held,
        deadline: Instant,
    ) -> Result<bool, StoreError> {
        let condition = Condition::as_read(Some(held));
        let call = Call::start("dynamodb", "DeleteItem");
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(TABLE_HASH_KEY, AttributeValue::S(slug.to_string()))
            .condition_expression(condition.expression)
            .set_expression_attribute_names(Some(condition.names))
            .set_expression_attribute_values(condition.values)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let res = match tokio::time::timeout_at(deadline, request).await {
            Ok(Err(e))
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                call.finish(&Err::<(), _>(forbidden(Vec::new(), 0)));
                return Ok(false);
            }
            Ok(res) => res.map_err(|e| errors::from_sdk(e, self.cx("DeleteItem"))),
            Err(_) => Err(StoreError::Unavailable {
                reason: "DynamoDB DeleteItem did not end within the write deadline".into(),
                retry_after: errors::RETRY_AFTER_OUTAGE,
            }),
        };
        call.finish(&res);
        let out = res?;
        usage::consumed("DeleteItem", 0.0, units(out.consumed_capacity()), 1);
        Ok(true)
    }

    /// Gives every stored show of `slugs` to `owner` (see [`crate::store::ShowStore::assign_owner`]):
    /// the unknown ones found with consistent `BatchGetItem`s, the others updated with
    /// `TransactWriteItems` of 100 `SET owner, updatedAt, updatedBy` each conditioned on
    /// the show existing; a show deleted meanwhile moves to `unknown`. Content, creation
    /// time and the change record are left alone.
    pub(super) async fn assign(
        &self,
        owner: &Partner,
        slugs: &[Slug],
        actor: &Actor,
    ) -> Result<Assignment, StoreError> {
        let mut seen = HashSet::new();
        let slugs: Vec<String> = (slugs.iter().map(Slug::to_string))
            .filter(|s| seen.insert(s.clone()))
            .collect();
        let held = read(&self.client, &self.table, &slugs).await?;
        let known: Vec<String> = slugs
            .iter()
            .filter(|s| held.contains_key(*s))
            .cloned()
            .collect();
        let deadline = Instant::now() + self.policy.deadline;
        let now = Timestamp::now();
        let chunks: Vec<Vec<String>> = known
            .chunks(TRANSACTION_ITEMS)
            .map(<[String]>::to_vec)
            .collect();
        let gone: Vec<Vec<String>> = futures::stream::iter(
            chunks
                .into_iter()
                .map(|chunk| self.assign_chunk(owner, chunk, actor, now, deadline)),
        )
        .buffer_unordered(self.policy.concurrency.max(1))
        .try_collect()
        .await?;
        let gone: HashSet<String> = gone.into_iter().flatten().collect();
        let (assigned, unknown) = slugs
            .into_iter()
            .partition(|s| held.contains_key(s) && !gone.contains(s));
        tracing::info!(
            table = %self.table,
            client = %actor.client,
            owner = %owner,
            assigned = ?assigned,
            "owner assigned"
        );
        Ok(Assignment { assigned, unknown })
    }

    /// One transaction of an assignment; returns the slugs found deleted meanwhile.
    async fn assign_chunk(
        &self,
        owner: &Partner,
        mut chunk: Vec<String>,
        actor: &Actor,
        now: Timestamp,
        deadline: Instant,
    ) -> Result<Vec<String>, StoreError> {
        let mut gone = Vec::new();
        let mut attempt = 0;
        while !chunk.is_empty() {
            let actions = chunk
                .iter()
                .map(|slug| {
                    let update = Update::builder()
                        .table_name(&self.table)
                        .key(TABLE_HASH_KEY, AttributeValue::S(slug.clone()))
                        .update_expression(
                            "SET #owner = :owner, #updatedAt = :now, #updatedBy = :by",
                        )
                        .condition_expression("attribute_exists(#slug)")
                        .expression_attribute_names("#slug", TABLE_HASH_KEY)
                        .expression_attribute_names("#owner", SHOW_OWNER)
                        .expression_attribute_names("#updatedAt", SHOW_UPDATED_AT)
                        .expression_attribute_names("#updatedBy", SHOW_UPDATED_BY)
                        .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
                        .expression_attribute_values(
                            ":now",
                            AttributeValue::N(now.millis().to_string()),
                        )
                        .expression_attribute_values(":by", AttributeValue::S(actor.client.clone()))
                        .build()
                        .map_err(|e| StoreError::Internal(e.into()))?;
                    Ok(TransactWriteItem::builder().update(update).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let call = Call::start("dynamodb", "TransactWriteItems");
            let request = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send();
            let Ok(res) = tokio::time::timeout_at(deadline, request).await else {
                let e = StoreError::Unavailable {
                    reason: "DynamoDB TransactWriteItems did not end within the write deadline"
                        .into(),
                    retry_after: errors::RETRY_AFTER_OUTAGE,
                };
                call.finish(&Err::<(), _>(StoreError::unavailable("deadline")));
                return Err(e);
            };
            match res {
                Ok(out) => {
                    call.finish(&Ok::<(), StoreError>(()));
                    let write_units = out.consumed_capacity().iter().map(|c| units(Some(c))).sum();
                    usage::consumed("TransactWriteItems", 0.0, write_units, chunk.len());
                    break;
                }
                Err(e) => match cancelled(&e) {
                    Some(Cancelled::Conditions(failed)) if !failed.is_empty() => {
                        call.finish(&Err::<(), _>(forbidden(Vec::new(), 0)));
                        let mut i = 0;
                        chunk.retain(|slug| {
                            let keep = !failed.contains(&i);
                            i += 1;
                            if !keep {
                                gone.push(slug.clone());
                            }
                            keep
                        });
                    }
                    Some(Cancelled::Conditions(_)) => {
                        // The answer did not say which: read which are still there.
                        call.finish(&Err::<(), _>(forbidden(Vec::new(), 0)));
                        let there = read(&self.client, &self.table, &chunk).await?;
                        gone.extend(chunk.iter().filter(|s| !there.contains_key(*s)).cloned());
                        chunk.retain(|s| there.contains_key(s));
                    }
                    Some(Cancelled::Transient(reasons)) => {
                        let e = StoreError::unavailable(format!(
                            "DynamoDB TransactWriteItems throttled: {reasons}"
                        ));
                        call.finish(&Err::<(), _>(e));
                        attempt += 1;
                        let pause = self.policy.backoff(attempt);
                        if Instant::now() + pause >= deadline {
                            return Err(StoreError::Unavailable {
                                reason: format!(
                                    "DynamoDB kept cancelling an assignment: {reasons}"
                                ),
                                retry_after: errors::RETRY_AFTER_THROTTLED,
                            });
                        }
                        tokio::time::sleep(pause).await;
                    }
                    None => {
                        let res = Err(errors::from_sdk(e, self.cx("TransactWriteItems")));
                        call.finish(&res);
                        return res;
                    }
                },
            }
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::layout::{GSI_HASH_KEY, GSI_RANGE_KEY, SHOW_PROVENANCE};

    #[test]
    fn provenance_goes_in_attributes_the_go_service_has_no_field_for_and_back() {
        // The Go service's item struct (docs/dynamodb.md, "Data layout") and the keys.
        let go = [
            "slug",
            "title",
            "country",
            "genre",
            "language",
            "tvChannel",
            "description",
            "primaryColour",
            "drm",
            "drmKey",
            "episodeCount",
            "image",
            "nextEpisode",
            "seasons",
        ];
        for name in SHOW_PROVENANCE {
            assert!(!go.contains(&name), "{name}");
            assert!(![TABLE_HASH_KEY, GSI_HASH_KEY, GSI_RANGE_KEY].contains(&name));
        }
        let p = Provenance {
            owner: Some(Partner::parse("acme").expect("partner")),
            created_at: Some(Timestamp::from_millis(1_000)),
            updated_at: Some(Timestamp::from_millis(2_000)),
            updated_by: Some("c1".into()),
        };
        let mut item = Item::new();
        put_provenance(&mut item, &p);
        assert_eq!(item.len(), 4);
        assert_eq!(provenance_of(&item), p);
        assert_eq!(Held::of(&item).owner().map(Partner::as_str), Some("acme"));
        // Nothing stored: nothing read; an owner that is no valid partner counts as none,
        // but the condition still compares with what is stored.
        assert_eq!(provenance_of(&Item::new()), Provenance::default());
        let odd = HashMap::from([(SHOW_OWNER.to_string(), AttributeValue::S("a b".into()))]);
        assert_eq!(Held::of(&odd).owner(), None);
        let c = Condition::as_read(Some(&Held::of(&odd)));
        assert_eq!(c.expression, "#owner = :owner");
        assert_eq!(
            c.values.and_then(|v| v.get(":owner").cloned()),
            Some(AttributeValue::S("a b".into()))
        );
    }
}
