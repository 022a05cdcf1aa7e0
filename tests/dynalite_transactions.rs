//! `TransactWriteItems` on the emulator the tests use. dynalite has no transactions of its
//! own: `scripts/install-test-tools.sh` adds them from `scripts/dynalite/` (see its README).
//! These tests pin what the DynamoDB store relies on, on a table made like ours (with the
//! catalogue index): all or nothing with the failing action named, indexes updated, twice
//! the write units, the request limits, and concurrent writers serialized per item.
//!
//! `SHOW_TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:PORT` runs the same tests against another
//! endpoint instead of starting dynalite, to compare with an independent implementation of
//! transactions. Against moto's server the capacity and concurrency tests fail for moto's
//! own reasons (scripts/dynalite/README.md says which); the others pass alike.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

mod support;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Delete, Put, ReturnConsumedCapacity,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use show_service::store::dynamodb::DynamoStore;
use show_service::store::layout::GSI_NAME;
use std::collections::HashMap;
use std::time::Duration;
use support::dynalite::{Dynalite, unique_table};
use support::dynamo_settings;

type Item = HashMap<String, AttributeValue>;

/// A new table with the catalogue index, made as the store makes it, and the client.
async fn table() -> (Client, String) {
    let endpoint = std::env::var("SHOW_TEST_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| Dynalite::shared().endpoint());
    let settings = dynamo_settings(&endpoint, &unique_table("tx"));
    let store = DynamoStore::connect(&settings).await.unwrap();
    store.ensure_table(Duration::from_secs(10)).await.unwrap();
    (store.client().clone(), store.table().to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A show item as the store lays it out: in the index when `drm`.
fn show(slug: &str, owner: &str, drm: bool) -> Item {
    let mut item = HashMap::from([
        ("slug".to_string(), s(slug)),
        ("title".to_string(), s(&format!("{slug} by {owner}"))),
        ("owner".to_string(), s(owner)),
        ("episodeCount".to_string(), n(3)),
    ]);
    if drm {
        item.insert("drmKey".to_string(), n(1));
    }
    item
}

fn put(table: &str, item: Item) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .build()
                .unwrap(),
        )
        .build()
}

/// A put that only creates: the slug must be new.
fn put_new(table: &str, item: Item) -> TransactWriteItem {
    let mut p = put(table, item).put.unwrap();
    p.condition_expression = Some("attribute_not_exists(slug)".to_string());
    TransactWriteItem::builder().put(p).build()
}

/// A put that only replaces a show `owner` still owns (the old item is returned on failure).
fn put_owned(table: &str, item: Item, owner: &str) -> TransactWriteItem {
    let mut p = put(table, item).put.unwrap();
    p.condition_expression = Some("#owner = :owner".to_string());
    p.expression_attribute_names = Some(HashMap::from([("#owner".into(), "owner".into())]));
    p.expression_attribute_values = Some(HashMap::from([(":owner".into(), s(owner))]));
    p.return_values_on_condition_check_failure = Some(ReturnValuesOnConditionCheckFailure::AllOld);
    TransactWriteItem::builder().put(p).build()
}

async fn get(client: &Client, table: &str, slug: &str) -> Option<Item> {
    client
        .get_item()
        .table_name(table)
        .key("slug", s(slug))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

async fn scan_slugs(client: &Client, table: &str) -> Vec<String> {
    let items = client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let mut slugs: Vec<String> = items
        .iter()
        .map(|i| i["slug"].as_s().unwrap().clone())
        .collect();
    slugs.sort();
    slugs
}

/// The slugs the catalogue index lists (`drmKey` = 1), sorted.
async fn indexed_slugs(client: &Client, table: &str) -> Vec<String> {
    let items = client
        .query()
        .table_name(table)
        .index_name(GSI_NAME)
        .key_condition_expression("drmKey = :one")
        .expression_attribute_values(":one", n(1))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let mut slugs: Vec<String> = items
        .iter()
        .map(|i| i["slug"].as_s().unwrap().clone())
        .collect();
    slugs.sort();
    slugs
}

fn codes(reasons: &[CancellationReason]) -> Vec<&str> {
    reasons.iter().map(|r| r.code().unwrap_or("")).collect()
}

/// The message and cancellation reasons of a cancelled transaction; panics on another error.
fn cancelled(err: TransactWriteItemsError) -> (String, Vec<CancellationReason>) {
    match err {
        TransactWriteItemsError::TransactionCanceledException(e) => (
            e.message().unwrap_or_default().to_string(),
            e.cancellation_reasons().to_vec(),
        ),
        other => panic!("expected TransactionCanceledException, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failing_condition_cancels_the_whole_transaction_and_names_the_action() {
    let (client, table) = (table()).await;
    let taken = show("show/taken", "partner-b", false);
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(taken.clone()))
        .send()
        .await
        .unwrap();

    let err = client
        .transact_write_items()
        .transact_items(put_new(&table, show("show/new", "partner-a", true)))
        .transact_items(put_owned(
            &table,
            show("show/taken", "partner-a", true),
            "partner-a",
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();

    let (message, reasons) = cancelled(err);
    assert_eq!(codes(&reasons), ["None", "ConditionalCheckFailed"]);
    assert!(
        message.contains("[None, ConditionalCheckFailed]"),
        "message: {message}"
    );
    // ALL_OLD: the failing action's reason carries the item as it is.
    assert_eq!(reasons[1].item(), Some(&taken));
    assert_eq!(reasons[0].item(), None);
    // Nothing written: the passing put did not happen, the other show is unchanged.
    assert_eq!(get(&client, &table, "show/new").await, None);
    assert_eq!(get(&client, &table, "show/taken").await, Some(taken));
}

#[tokio::test]
async fn when_every_condition_holds_every_write_lands_and_the_index_sees_it() {
    let (client, table) = (table()).await;
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(show("show/mine", "partner-a", false)))
        .send()
        .await
        .unwrap();

    let new = show("show/new", "partner-a", true);
    let mine = show("show/mine", "partner-a", true);
    client
        .transact_write_items()
        .transact_items(put_new(&table, new.clone()))
        .transact_items(put_owned(&table, mine.clone(), "partner-a"))
        .send()
        .await
        .unwrap();

    assert_eq!(get(&client, &table, "show/new").await, Some(new));
    assert_eq!(get(&client, &table, "show/mine").await, Some(mine));
    // The catalogue index (drmKey = 1) lists both, the replaced one included.
    let slugs = indexed_slugs(&client, &table).await;
    assert_eq!(slugs, ["show/mine", "show/new"]);
}

/// The write units one call reports for `table` (a transaction reports a list).
fn units_of(capacity: &[aws_sdk_dynamodb::types::ConsumedCapacity], table: &str) -> f64 {
    capacity
        .iter()
        .filter(|c| c.table_name() == Some(table))
        .map(|c| c.capacity_units().unwrap())
        .sum()
}

#[tokio::test]
async fn a_transactional_write_costs_twice_the_units_of_the_same_put() {
    let (client, table) = (table()).await;
    // About 2.5 KB: 3 write units as a PutItem.
    let big = |slug: &str| {
        let mut item = show(slug, "partner-a", true);
        item.insert("description".to_string(), s(&"x".repeat(2500)));
        item
    };

    let single = client
        .put_item()
        .table_name(&table)
        .set_item(Some(big("show/single")))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap()
        .consumed_capacity
        .unwrap()
        .capacity_units
        .unwrap();
    assert_eq!(single, 3.0);

    let one = client
        .transact_write_items()
        .transact_items(put_new(&table, big("show/one")))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    assert_eq!(units_of(one.consumed_capacity(), &table), 2.0 * single);

    let two = client
        .transact_write_items()
        .transact_items(put_new(&table, big("show/two-a")))
        .transact_items(put_new(&table, show("show/two-b", "partner-a", true)))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    // Per item: 2 × 3 units for the big one, 2 × 1 for the small one.
    assert_eq!(units_of(two.consumed_capacity(), &table), 8.0);
}

fn validation_message(err: TransactWriteItemsError) -> String {
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
    err.message().unwrap_or_default().to_string()
}

#[tokio::test]
async fn over_100_actions_or_two_on_one_item_are_refused_and_write_nothing() {
    let (client, table) = (table()).await;

    let too_many: Vec<TransactWriteItem> = (0..101)
        .map(|i| put_new(&table, show(&format!("show/n{i}"), "partner-a", false)))
        .collect();
    let message = validation_message(
        client
            .transact_write_items()
            .set_transact_items(Some(too_many))
            .send()
            .await
            .unwrap_err()
            .into_service_error(),
    );
    assert!(
        message.contains("transactItems") && message.contains("100"),
        "message: {message}"
    );

    // 100 is the limit, not over it.
    let hundred: Vec<TransactWriteItem> = (0..100)
        .map(|i| put_new(&table, show(&format!("show/h{i:03}"), "partner-a", false)))
        .collect();
    client
        .transact_write_items()
        .set_transact_items(Some(hundred))
        .send()
        .await
        .unwrap();
    assert_eq!(scan_slugs(&client, &table).await.len(), 100);

    let message = validation_message(
        client
            .transact_write_items()
            .transact_items(put_new(&table, show("show/twice", "partner-a", false)))
            .transact_items(put_new(&table, show("show/other", "partner-a", false)))
            .transact_items(put(&table, show("show/twice", "partner-b", false)))
            .send()
            .await
            .unwrap_err()
            .into_service_error(),
    );
    assert!(
        message.contains("Transaction request cannot include multiple operations on one item"),
        "message: {message}"
    );
    let slugs = scan_slugs(&client, &table).await;
    assert_eq!(slugs.len(), 100);
    assert!(!slugs.iter().any(|s| s.starts_with("show/n")));
    assert!(!slugs.contains(&"show/twice".to_string()));
    assert!(!slugs.contains(&"show/other".to_string()));
}

/// Whether a cancellation was only a conflict with another transaction in flight (DynamoDB
/// may answer so; the writer retries). The emulator serializes instead and never does.
fn only_conflicts(reasons: &[CancellationReason]) -> bool {
    reasons
        .iter()
        .all(|r| matches!(r.code(), Some("None" | "TransactionConflict")))
}

/// Sends a create-only transaction of `slugs` for `owner`, retried while it is cancelled
/// only by conflicts; true when it was written, false when a condition failed.
async fn create_all(client: &Client, table: &str, owner: &str, slugs: &[String]) -> bool {
    loop {
        let mut call = client.transact_write_items();
        for slug in slugs {
            call = call.transact_items(put_new(table, show(slug, owner, true)));
        }
        match call.send().await {
            Ok(_) => return true,
            Err(e) => {
                let (_, reasons) = cancelled(e.into_service_error());
                assert_eq!(reasons.len(), slugs.len());
                if !only_conflicts(&reasons) {
                    assert!(
                        codes(&reasons).contains(&"ConditionalCheckFailed"),
                        "{reasons:?}"
                    );
                    return false;
                }
            }
        }
    }
}

/// A conditional `PutItem` creating `slug` for `owner`: true when it was written.
async fn create_one(client: &Client, table: &str, owner: &str, slug: &str) -> bool {
    loop {
        let result = client
            .put_item()
            .table_name(table)
            .set_item(Some(show(slug, owner, true)))
            .condition_expression("attribute_not_exists(slug)")
            .send()
            .await;
        match result.map_err(|e| e.into_service_error()) {
            Ok(_) => return true,
            Err(e) if e.is_conditional_check_failed_exception() => return false,
            Err(e) if e.code() == Some("TransactionConflictException") => continue,
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[tokio::test]
async fn concurrent_writers_on_overlapping_items_never_both_win() {
    let (client, table) = (table()).await;
    for round in 0..20 {
        let slug = |i: usize| format!("show/r{round}-{i:02}");
        // a: 0..10, b: 5..15, and a plain conditional PutItem of 7, which both include.
        let a: Vec<String> = (0..10).map(slug).collect();
        let b: Vec<String> = (5..15).map(slug).collect();
        let c = slug(7);
        let (won_a, won_b, won_c) = tokio::join!(
            create_all(&client, &table, "partner-a", &a),
            create_all(&client, &table, "partner-b", &b),
            create_one(&client, &table, "partner-c", &c),
        );
        let outcomes = [
            (won_a, "partner-a", a),
            (won_b, "partner-b", b),
            (won_c, "partner-c", vec![c]),
        ];
        let winners: Vec<_> = outcomes.iter().filter(|(won, _, _)| *won).collect();
        assert_eq!(winners.len(), 1, "round {round}: {won_a} {won_b} {won_c}");
        let (_, owner, written) = winners[0];
        // Exactly the winner's items exist, each with the winner as owner.
        for i in 0..15 {
            let item = get(&client, &table, &slug(i)).await;
            if written.contains(&slug(i)) {
                let item = item.unwrap_or_else(|| panic!("round {round}: {} missing", slug(i)));
                assert_eq!(item["owner"], s(owner), "round {round}: {}", slug(i));
            } else {
                assert_eq!(item, None, "round {round}: {} written by a loser", slug(i));
            }
        }
    }
}

#[tokio::test]
async fn update_delete_and_condition_check_actions_are_all_or_nothing_too() {
    let (client, table) = (table()).await;
    for slug in ["show/a", "show/b", "show/check"] {
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(show(slug, "partner-a", true)))
            .send()
            .await
            .unwrap();
    }
    let owner_is = |owner: &str| {
        (
            "#owner = :owner".to_string(),
            HashMap::from([("#owner".to_string(), "owner".to_string())]),
            HashMap::from([(":owner".to_string(), s(owner))]),
        )
    };
    let actions = |check_owner: &str| {
        let (cond, names, values) = owner_is("partner-a");
        let mut update_values = values.clone();
        update_values.insert(":title".to_string(), s("renamed"));
        let update = Update::builder()
            .table_name(&table)
            .key("slug", s("show/a"))
            .update_expression("SET title = :title")
            .condition_expression(&cond)
            .set_expression_attribute_names(Some(names.clone()))
            .set_expression_attribute_values(Some(update_values))
            .build()
            .unwrap();
        let delete = Delete::builder()
            .table_name(&table)
            .key("slug", s("show/b"))
            .condition_expression(&cond)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .unwrap();
        let (cond, names, values) = owner_is(check_owner);
        let check = ConditionCheck::builder()
            .table_name(&table)
            .key("slug", s("show/check"))
            .condition_expression(cond)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .unwrap();
        vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().condition_check(check).build(),
        ]
    };

    // The check fails: neither the update nor the delete happens.
    let err = client
        .transact_write_items()
        .set_transact_items(Some(actions("partner-b")))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        codes(&cancelled(err).1),
        ["None", "None", "ConditionalCheckFailed"]
    );
    assert_eq!(
        get(&client, &table, "show/a").await,
        Some(show("show/a", "partner-a", true))
    );
    assert_eq!(
        get(&client, &table, "show/b").await,
        Some(show("show/b", "partner-a", true))
    );

    // It holds: both happen, and the index follows (show/b leaves it).
    client
        .transact_write_items()
        .set_transact_items(Some(actions("partner-a")))
        .send()
        .await
        .unwrap();
    let a = get(&client, &table, "show/a").await.unwrap();
    assert_eq!(a["title"], s("renamed"));
    assert_eq!(get(&client, &table, "show/b").await, None);
    let slugs = indexed_slugs(&client, &table).await;
    assert_eq!(slugs, ["show/a", "show/check"]);
}
