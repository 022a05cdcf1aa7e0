//! Feeds as `TransactWriteItems` (see `write.rs` and `owners.rs`) on mocked answers:
//! transactions of 100, cancellations that are throttling (sent again until the
//! deadline, then `Partial` or 503), a failed call stopping the feed, the conditions
//! each put carries for what was read, a refusal before anything is announced, and a
//! race lost to another partner after the check.

use super::*;
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsInput,
};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use aws_smithy_mocks::MockResponse;
use aws_smithy_types::body::SdkBody;
use item::Item;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

/// DynamoDB's answer to a cancelled transaction, one reason per action.
fn cancellation(codes: &[&str]) -> aws_sdk_dynamodb::config::http::HttpResponse {
    let reasons: Vec<Value> = codes.iter().map(|c| json!({"Code": c})).collect();
    let body = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
        "CancellationReasons": reasons,
    });
    aws_sdk_dynamodb::config::http::HttpResponse::new(
        400.try_into().expect("status"),
        SdkBody::from(body.to_string()),
    )
}

fn puts(input: &TransactWriteItemsInput) -> Vec<Put> {
    input
        .transact_items()
        .iter()
        .filter_map(TransactWriteItem::put)
        .cloned()
        .collect()
}

fn put_slugs(input: &TransactWriteItemsInput) -> Vec<String> {
    puts(input)
        .iter()
        .map(|p| item::slug_of(p.item()).unwrap_or("?").to_string())
        .collect()
}

fn ok() -> MockResponse<TransactWriteItemsOutput, TransactWriteItemsError> {
    MockResponse::Output(TransactWriteItemsOutput::builder().build())
}

/// The slugs a `BatchGetItem` asked for.
fn asked(input: &BatchGetItemInput) -> Vec<String> {
    input
        .request_items()
        .and_then(|m| m.get(TABLE))
        .map(|k| {
            k.keys()
                .iter()
                .filter_map(|key| key.get(TABLE_HASH_KEY)?.as_s().ok().cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// A `BatchGetItem` answer holding `items`.
fn found(items: Vec<Item>) -> BatchGetItemOutput {
    BatchGetItemOutput::builder()
        .responses(TABLE, items)
        .build()
}

/// A stored show's ownership as `BatchGetItem` projects it.
fn owned(slug: &str, owner: Option<&str>, created: u64) -> Item {
    let mut item = HashMap::from([
        (TABLE_HASH_KEY.to_string(), AttributeValue::S(slug.into())),
        (
            crate::store::layout::SHOW_CREATED_AT.to_string(),
            AttributeValue::N(created.to_string()),
        ),
    ]);
    if let Some(o) = owner {
        item.insert(
            crate::store::layout::SHOW_OWNER.to_string(),
            AttributeValue::S(o.into()),
        );
    }
    item
}

fn partner(name: &str) -> Actor {
    Actor {
        client: format!("{name}-client"),
        partner: Some(Partner::parse(name).expect("partner")),
        admin: false,
    }
}

#[tokio::test]
async fn a_thousand_shows_take_ten_transactions_of_a_hundred_after_ten_reads() {
    let sizes: Arc<Mutex<Vec<usize>>> = Arc::default();
    let seen = sizes.clone();
    let rule = mock!(Client::transact_write_items).then_compute_output(move |input| {
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(input.transact_items().len());
        TransactWriteItemsOutput::builder().build()
    });
    let store = mocked(&[&rule], RuleMode::MatchAny, &settings());
    let counted = Counted::new();
    let _counting = counted.start();
    let written = store.upsert(shows("k", 1000), &OPERATOR).await;
    assert_eq!(written.expect("written"), 1000);
    let sizes = sizes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(sizes, [100; 10]);
    let counts = counted.calls();
    assert_eq!(counts.get("TransactWriteItems"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("BatchGetItem"), Some(&10), "{counts:?}");
}

#[tokio::test]
async fn a_throttled_transaction_is_sent_again_whole() {
    let calls: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let seen = calls.clone();
    let rule = mock!(Client::transact_write_items).then_compute_response(move |input| {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.push(put_slugs(input));
        match seen.len() {
            1 => MockResponse::Http(cancellation(&["None", "ThrottlingError", "None"])),
            2 => MockResponse::Http(cancellation(&["TransactionConflict", "None", "None"])),
            _ => ok(),
        }
    });
    let store = mocked(&[&rule], RuleMode::MatchAny, &settings());
    assert_eq!(
        store
            .upsert(shows("u", 3), &OPERATOR)
            .await
            .expect("written"),
        3
    );
    let calls = calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| *c == calls[0]), "{calls:?}");
}

#[tokio::test]
async fn a_transaction_cancelled_until_the_deadline_is_a_partial_error_naming_its_shows() {
    let rule = mock!(Client::transact_write_items).then_compute_response(|input| {
        let slugs = put_slugs(input);
        if slugs.iter().any(|s| s.starts_with("show/stuck")) {
            MockResponse::Http(cancellation(&vec!["ThrottlingError"; slugs.len()]))
        } else {
            ok()
        }
    });
    let mut s = settings();
    s.write_deadline = Duration::from_millis(300);
    let store = mocked(&[&rule], RuleMode::MatchAny, &s);
    let mut feed = shows("ok", 149);
    let mut stuck = feed[0].clone();
    stuck.slug = Slug::parse("show/stuck").expect("slug");
    feed.insert(120, stuck);
    let want: Vec<String> = {
        let mut w: Vec<String> = feed[100..].iter().map(|s| s.slug.to_string()).collect();
        w.sort();
        w
    };
    let started = Instant::now();
    let err = store
        .upsert(feed, &OPERATOR)
        .await
        .expect_err("not a success");
    let elapsed = started.elapsed();
    match err {
        StoreError::Partial {
            written,
            not_written,
            reason,
        } => {
            assert_eq!(written, 100, "the first transaction");
            assert_eq!(not_written, want, "every show of the second");
            assert!(reason.contains("deadline"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(elapsed < Duration::from_millis(300 + 200), "{elapsed:?}");
    assert!(rule.num_calls() > 3, "sent again: {}", rule.num_calls());
}

#[tokio::test]
async fn a_feed_of_which_nothing_was_written_is_unavailable_not_partial() {
    let rule = mock!(Client::transact_write_items).then_compute_response(|input| {
        MockResponse::Http(cancellation(&vec![
            "ThrottlingError";
            input.transact_items().len()
        ]))
    });
    let mut s = settings();
    s.write_deadline = Duration::from_millis(150);
    let store = mocked(&[&rule], RuleMode::MatchAny, &s);
    let err = store
        .upsert(shows("t", 30), &OPERATOR)
        .await
        .expect_err("not a success");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn throttling_after_the_sdk_retries_is_unavailable_and_stops_the_feed() {
    let rule = mock!(Client::transact_write_items)
        .sequence()
        .http_status(400, aws_error("ThrottlingException"))
        .repeatedly()
        .build();
    let mut s = settings();
    s.write_concurrency = 1;
    let store = mocked(&[&rule], RuleMode::MatchAny, &s);
    let counted = Counted::new();
    let _counting = counted.start();
    let err = store
        .upsert(shows("t", 250), &OPERATOR)
        .await
        .expect_err("throttled");
    match err {
        StoreError::Unavailable {
            retry_after,
            reason,
        } => {
            assert_eq!(retry_after, errors::RETRY_AFTER_THROTTLED);
            assert!(reason.contains("ThrottlingException"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        rule.num_calls(),
        3,
        "the SDK's 3 attempts, then no other chunk"
    );
    let counts = counted.calls();
    assert_eq!(counts.get("TransactWriteItems"), Some(&1), "{counts:?}");
}

#[tokio::test]
async fn a_call_failing_after_others_succeeded_is_partial() {
    let rule = mock!(Client::transact_write_items)
        .sequence()
        .output(|| TransactWriteItemsOutput::builder().build())
        .http_status(500, aws_error("InternalServerError"))
        .repeatedly()
        .build();
    let mut s = settings();
    s.write_concurrency = 1;
    let store = mocked(&[&rule], RuleMode::MatchAny, &s);
    let feed = shows("p", 250);
    let want: Vec<String> = feed[100..].iter().map(|s| s.slug.to_string()).collect();
    match store.upsert(feed, &OPERATOR).await.expect_err("partial") {
        StoreError::Partial {
            written,
            not_written,
            ..
        } => {
            assert_eq!(written, 100);
            assert_eq!(not_written, want, "the failed chunk and the one never sent");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn each_put_is_conditioned_on_what_was_read_and_keeps_owner_and_creation() {
    let reads = mock!(Client::batch_get_item).then_compute_output(|input| {
        let held = [
            owned("show/mine", Some("acme"), 1_000),
            owned("show/go", None, 2_000),
        ];
        let asked = asked(input);
        found(
            held.into_iter()
                .filter(|i| asked.iter().any(|a| Some(a.as_str()) == item::slug_of(i)))
                .collect(),
        )
    });
    let sent: Arc<Mutex<Vec<Put>>> = Arc::default();
    let seen = sent.clone();
    let rule = mock!(Client::transact_write_items).then_compute_output(move |input| {
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(puts(input));
        TransactWriteItemsOutput::builder().build()
    });
    let store = mocked(&[&reads, &rule], RuleMode::MatchAny, &settings());
    let feed = |slugs: &[&str]| {
        slugs
            .iter()
            .map(|s| {
                let mut show = shows("x", 1).remove(0);
                show.slug = Slug::parse(*s).expect("slug");
                show
            })
            .collect::<Vec<_>>()
    };
    store
        .upsert(feed(&["show/mine", "show/new"]), &partner("acme"))
        .await
        .expect("acme writes its own and a new one");
    let admin = Actor {
        client: "platform-client".into(),
        partner: Some(Partner::parse("platform").expect("partner")),
        admin: true,
    };
    store
        .upsert(feed(&["show/go"]), &admin)
        .await
        .expect("an admin writes an unowned show");

    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let by_slug = |slug: &str| {
        sent.iter()
            .find(|p| item::slug_of(p.item()) == Some(slug))
            .cloned()
            .expect("sent")
    };
    let attr = |p: &Put, name: &str| p.item().get(name).cloned();
    let s = |v: &str| Some(AttributeValue::S(v.into()));
    let n = |v: u64| Some(AttributeValue::N(v.to_string()));
    use crate::store::layout::{SHOW_CREATED_AT, SHOW_OWNER, SHOW_UPDATED_AT, SHOW_UPDATED_BY};

    let mine = by_slug("show/mine");
    assert_eq!(mine.condition_expression(), Some("#owner = :owner"));
    assert_eq!(
        mine.expression_attribute_values()
            .and_then(|v| v.get(":owner"))
            .cloned(),
        s("acme")
    );
    assert_eq!(attr(&mine, SHOW_OWNER), s("acme"));
    assert_eq!(attr(&mine, SHOW_CREATED_AT), n(1_000), "creation kept");
    assert_eq!(attr(&mine, SHOW_UPDATED_BY), s("acme-client"));

    let new = by_slug("show/new");
    assert_eq!(
        new.condition_expression(),
        Some("attribute_not_exists(#slug)")
    );
    assert_eq!(
        attr(&new, SHOW_OWNER),
        s("acme"),
        "a new slug becomes the writer's"
    );
    assert!(attr(&new, SHOW_CREATED_AT).is_some());
    assert_eq!(attr(&new, SHOW_CREATED_AT), attr(&new, SHOW_UPDATED_AT));

    let go = by_slug("show/go");
    assert_eq!(
        go.condition_expression(),
        Some("attribute_exists(#slug) AND attribute_not_exists(#owner)")
    );
    assert_eq!(
        attr(&go, SHOW_OWNER),
        None,
        "an admin's edit takes no show over"
    );
    assert_eq!(attr(&go, SHOW_CREATED_AT), n(2_000));
    assert_eq!(attr(&go, SHOW_UPDATED_BY), s("platform-client"));
}

#[tokio::test]
async fn a_feed_naming_another_partners_show_is_refused_before_anything_is_announced() {
    let reads = mock!(Client::batch_get_item)
        .then_output(|| found(vec![owned("show/x-0002", Some("globex"), 1)]));
    let rule = mock!(Client::transact_write_items)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let store = mocked(&[&reads, &rule], RuleMode::MatchAny, &settings());
    let counted = Counted::new();
    let _counting = counted.start();
    let err = store
        .upsert(shows("x", 5), &partner("acme"))
        .await
        .expect_err("refused");
    match err {
        StoreError::Forbidden { slugs, written } => {
            assert_eq!((slugs, written), (vec!["show/x-0002".to_string()], 0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rule.num_calls(), 0, "nothing written");
    let counts = counted.calls();
    assert_eq!(
        counts.get("UpdateItem"),
        None,
        "the change record not bumped: {counts:?}"
    );
}

#[tokio::test]
async fn a_race_lost_after_the_check_reads_again_and_refuses_counting_what_was_stored() {
    // The first read finds nothing; by the second transaction another partner holds one
    // of its shows: the condition fails, the read after it says whose it is.
    let reads_made = Arc::new(AtomicUsize::new(0));
    let counter = reads_made.clone();
    let reads = mock!(Client::batch_get_item).then_compute_output(move |input| {
        let taken = "show/r-0103";
        let after_race = counter.fetch_add(1, Ordering::SeqCst) >= 2;
        if after_race && asked(input).iter().any(|s| s == taken) {
            found(vec![owned(taken, Some("globex"), 1)])
        } else {
            found(Vec::new())
        }
    });
    let rule = mock!(Client::transact_write_items)
        .sequence()
        .output(|| TransactWriteItemsOutput::builder().build())
        .http_response(|| {
            let mut codes = vec!["None"; 50];
            codes[3] = "ConditionalCheckFailed";
            cancellation(&codes)
        })
        .build();
    let mut s = settings();
    s.write_concurrency = 1;
    let store = mocked(&[&reads, &rule], RuleMode::MatchAny, &s);
    let counted = Counted::new();
    let _counting = counted.start();
    let err = store
        .upsert(shows("r", 150), &partner("acme"))
        .await
        .expect_err("refused");
    match err {
        StoreError::Forbidden { slugs, written } => {
            assert_eq!(slugs, ["show/r-0103"]);
            assert_eq!(written, 100, "the first transaction was stored");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rule.num_calls(), 2);
    let counts = counted.calls();
    assert_eq!(
        counts.get("UpdateItem"),
        Some(&2),
        "announced, and bumped after: something was stored: {counts:?}"
    );
}

#[tokio::test]
async fn a_race_with_a_writer_the_actor_may_follow_is_sent_again_on_what_was_read() {
    // Another task of the same partner created the slug in between: still the actor's.
    let reads_made = Arc::new(AtomicUsize::new(0));
    let counter = reads_made.clone();
    let reads = mock!(Client::batch_get_item).then_compute_output(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            found(Vec::new())
        } else {
            found(vec![owned("show/s-0000", Some("acme"), 7)])
        }
    });
    let sent: Arc<Mutex<Vec<Vec<Put>>>> = Arc::default();
    let seen = sent.clone();
    let rule = mock!(Client::transact_write_items).then_compute_response(move |input| {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.push(puts(input));
        if seen.len() == 1 {
            MockResponse::Http(cancellation(&["ConditionalCheckFailed", "None"]))
        } else {
            ok()
        }
    });
    let store = mocked(&[&reads, &rule], RuleMode::MatchAny, &settings());
    assert_eq!(
        store
            .upsert(shows("s", 2), &partner("acme"))
            .await
            .expect("written"),
        2
    );
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0][0].condition_expression(),
        Some("attribute_not_exists(#slug)")
    );
    assert_eq!(sent[1][0].condition_expression(), Some("#owner = :owner"));
    assert_eq!(
        sent[1][0].item().get(crate::store::layout::SHOW_CREATED_AT),
        Some(&AttributeValue::N("7".into())),
        "the creation read, not the first attempt's"
    );
    assert_eq!(
        sent[1][1].condition_expression(),
        Some("attribute_not_exists(#slug)")
    );
}

#[tokio::test]
async fn a_delete_of_another_partners_show_is_refused_without_a_bump_or_a_delete() {
    let held = mock!(Client::get_item).then_output(|| {
        aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder()
            .set_item(Some(owned("show/a", Some("globex"), 1)))
            .build()
    });
    let delete = mock!(Client::delete_item).then_output(|| {
        aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput::builder().build()
    });
    let store = mocked(&[&held, &delete], RuleMode::MatchAny, &settings());
    let counted = Counted::new();
    let _counting = counted.start();
    let slug = Slug::parse("show/a").expect("slug");
    let err = store
        .delete(&slug, &partner("acme"))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, StoreError::Forbidden { written: 0, .. }),
        "{err:?}"
    );
    assert_eq!(delete.num_calls(), 0);
    let counts = counted.calls();
    assert_eq!(counts.get("UpdateItem"), None, "{counts:?}");
}
