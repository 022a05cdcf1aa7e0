//! The retry, throttling and failure paths, against the real SDK client with its HTTP
//! layer replaced by `aws-smithy-mocks` rules (no trait or type swap in the store).
//! Errors are mocked as the HTTP answers DynamoDB gives (status + `__type` body), so the
//! SDK's own error parsing and retry classification run as in production. Store calls are
//! counted from the `store_calls_total` counter the store emits in production, caught by
//! a recorder local to the test's thread (see [`Counted`]).

use super::*;
use aws_sdk_dynamodb::config::retry::RetryPartition;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Writes as an operator: may change any show (ownership has tests of its own).
static OPERATOR: std::sync::LazyLock<crate::domain::Actor> =
    std::sync::LazyLock::new(|| crate::domain::Actor::operator("test"));

const TABLE: &str = "shows-test";

fn settings() -> DynamoSettings {
    DynamoSettings {
        region: None,
        endpoint_override: None,
        table: TABLE.into(),
        gsi: "gsi_drm_episode".into(),
        write_concurrency: 4,
        write_deadline: Duration::from_secs(2),
        call_timeout: Duration::from_secs(2),
    }
}

/// A store whose client answers with `rules`.
fn mocked(rules: &[&Rule], mode: RuleMode, settings: &DynamoSettings) -> DynamoStore {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(mode);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    // Every write ends with the change record's bump (see the module doc of the store).
    let bump = mock!(Client::update_item).then_output(|| {
        aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder().build()
    });
    interceptor = interceptor.with_rule(&bump);
    // Every feed reads its shows' owners first: by default, none is stored.
    let owners = mock!(Client::batch_get_item).then_output(|| {
        aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder().build()
    });
    interceptor = interceptor.with_rule(&owners);
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::from_static("us-east-1"))
        .credentials_provider(Credentials::new("a", "b", None, None, "test"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor);
    // Each test its own retry quota, as each production table has.
    let conf = client::with_call_policy(conf, settings)
        .retry_partition(RetryPartition::new(uuid::Uuid::new_v4().to_string()));
    DynamoStore::from_client(Client::from_conf(conf.build()), settings)
        .with_backoff(Duration::from_millis(2), Duration::from_millis(20))
}

/// The DynamoDB calls a test makes, by operation, from `store_calls_total` (every
/// outcome), as the service's metrics export them.
///
/// The recorder is the thread's local one while [`Counted::start`]'s guard lives: a
/// `#[tokio::test]` runs on a current-thread runtime, so the test and every task it
/// spawns run on that thread. Calls made on another thread (a task spawned on a
/// multi-threaded runtime) would go uncounted: the counts would come out low and the
/// test fail, not pass.
struct Counted {
    recorder: DebuggingRecorder,
}

impl Counted {
    fn new() -> Counted {
        Counted {
            recorder: DebuggingRecorder::new(),
        }
    }

    /// Counts what this thread records until the guard drops.
    fn start(&self) -> metrics::LocalRecorderGuard<'_> {
        metrics::set_default_local_recorder(&self.recorder)
    }

    /// Calls by operation since the previous reading (a reading resets the counters).
    fn calls(&self) -> BTreeMap<String, u64> {
        let mut by_operation = BTreeMap::new();
        for (key, _, _, value) in self.recorder.snapshotter().snapshot().into_vec() {
            let key = key.key();
            let label = |name: &str| {
                key.labels()
                    .find(|l| l.key() == name)
                    .map(|l| l.value().to_string())
            };
            if let ("store_calls_total", DebugValue::Counter(n)) = (key.name(), value) {
                assert_eq!(label("store").as_deref(), Some("dynamodb"), "{key:?}");
                let operation = label("operation").unwrap_or_default();
                *by_operation.entry(operation).or_default() += n;
            }
        }
        by_operation
    }
}

/// DynamoDB's error answer for `code`.
fn aws_error(code: &str) -> Option<String> {
    Some(
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": "mocked"})
            .to_string(),
    )
}

fn shows(prefix: &str, n: usize) -> Vec<Show> {
    (0..n)
        .map(|i| {
            let v = json!({"slug": format!("show/{prefix}-{i:04}"), "title": format!("T{i}"),
                           "drm": true, "episodeCount": 1 + i % 5});
            let mut problems = Vec::new();
            Show::from_json(&v, "t", &mut problems).unwrap_or_else(|| panic!("{problems:?}"))
        })
        .collect()
}

/// A `GetItem` answer: an unowned show is stored (an operator may delete it).
fn stored_show() -> aws_sdk_dynamodb::operation::get_item::GetItemOutput {
    aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder()
        .item(TABLE_HASH_KEY, AttributeValue::S("show/a".into()))
        .build()
}

/// Feeds as transactions, ownership on mocked answers.
mod transactions;

#[tokio::test]
async fn throttled_reads_are_unavailable() {
    let query = mock!(Client::query)
        .sequence()
        .http_status(400, aws_error("ProvisionedThroughputExceededException"))
        .repeatedly()
        .build();
    let get = mock!(Client::get_item)
        .sequence()
        .http_status(400, aws_error("RequestLimitExceeded"))
        .repeatedly()
        .build();
    let delete = mock!(Client::delete_item)
        .sequence()
        .http_status(400, aws_error("ThrottlingException"))
        .repeatedly()
        .build();
    let store = mocked(&[&query, &get, &delete], RuleMode::MatchAny, &settings());
    let slug = Slug::parse("show/a").expect("slug");

    let list = store.list_eligible(PageRequest::default()).await;
    assert!(
        matches!(list, Err(StoreError::Unavailable { .. })),
        "{list:?}"
    );
    let one = store.get(&slug).await;
    assert!(
        matches!(one, Err(StoreError::Unavailable { .. })),
        "{one:?}"
    );
    let gone = store.delete(&slug, &OPERATOR).await;
    assert!(
        matches!(gone, Err(StoreError::Unavailable { .. })),
        "{gone:?}"
    );
}

/// Collects log output for one test.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

#[tokio::test]
async fn a_missing_table_is_unavailable_and_logged_with_its_name() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);
    let describe = mock!(Client::describe_table)
        .sequence()
        .http_status(400, aws_error("ResourceNotFoundException"))
        .repeatedly()
        .build();
    let get = mock!(Client::get_item)
        .sequence()
        .http_status(400, aws_error("ResourceNotFoundException"))
        .repeatedly()
        .build();
    let store = mocked(&[&describe, &get], RuleMode::MatchAny, &settings());

    let ping = store.ping().await;
    assert!(
        matches!(ping, Err(StoreError::Unavailable { retry_after, .. }) if retry_after == errors::RETRY_AFTER_MISSING),
        "{ping:?}"
    );
    let one = store.get(&Slug::parse("show/a").expect("slug")).await;
    assert!(
        matches!(one, Err(StoreError::Unavailable { .. })),
        "{one:?}"
    );
    assert_eq!(describe.num_calls(), 1, "a missing table is not retried");

    let text =
        String::from_utf8(logs.0.lock().unwrap_or_else(|e| e.into_inner()).clone()).expect("utf8");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.iter().all(|l| l.contains(TABLE)), "{text}");
}

fn list_item(slug: &str, count: u32) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("slug".to_string(), AttributeValue::S(slug.into())),
        ("title".to_string(), AttributeValue::S(slug.to_uppercase())),
        (
            "episodeCount".to_string(),
            AttributeValue::N(count.to_string()),
        ),
    ])
}

fn key_of(slug: &str, count: u32) -> HashMap<String, AttributeValue> {
    Position {
        episode_count: count,
        slug: Slug::parse(slug).expect("slug"),
    }
    .to_key()
}

/// DynamoDB may stop a page early (1 MB) with a `LastEvaluatedKey`: the store must go on.
#[tokio::test]
async fn the_catalogue_follows_last_evaluated_key_to_the_end() {
    let rule = mock!(Client::query)
        .sequence()
        .output(|| {
            QueryOutput::builder()
                .items(list_item("show/a", 1))
                .items(list_item("show/b", 1))
                .set_last_evaluated_key(Some(key_of("show/b", 1)))
                .build()
        })
        .output(|| {
            QueryOutput::builder()
                .set_last_evaluated_key(Some(key_of("show/b", 1)))
                .build()
        })
        .output(|| QueryOutput::builder().items(list_item("show/c", 2)).build())
        .build();
    let store = mocked(&[&rule], RuleMode::Sequential, &settings());
    let counted = Counted::new();
    let _counting = counted.start();
    let page = store
        .list_eligible(PageRequest::default())
        .await
        .expect("list");
    let slugs: Vec<&str> = page.items.iter().map(|i| i.slug.as_str()).collect();
    assert_eq!(slugs, ["show/a", "show/b", "show/c"]);
    assert!(page.next.is_none());
    let counts = counted.calls();
    assert_eq!(counts.get("Query"), Some(&3), "{counts:?}");
}

/// A limited page that DynamoDB cut short is filled from the next query; the cursor is
/// the key of the page's last item.
#[tokio::test]
async fn a_short_page_is_filled_and_the_cursor_is_the_last_items_key() {
    let starts: Arc<Mutex<Vec<Option<i32>>>> = Arc::default();
    let seen = starts.clone();
    let rule = mock!(Client::query).then_compute_output(move |input| {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.push(input.limit());
        if seen.len() == 1 {
            // Cut short at 2 items (as at 1 MB), though 4 were asked for.
            QueryOutput::builder()
                .items(list_item("show/a", 1))
                .items(list_item("show/b", 2))
                .set_last_evaluated_key(Some(key_of("show/b", 2)))
                .build()
        } else {
            QueryOutput::builder()
                .items(list_item("show/c", 3))
                .items(list_item("show/d", 4))
                .set_last_evaluated_key(Some(key_of("show/d", 4)))
                .build()
        }
    });
    let store = mocked(&[&rule], RuleMode::MatchAny, &settings());
    let page = store
        .list_eligible(PageRequest {
            limit: NonZeroU32::new(3),
            cursor: None,
        })
        .await
        .expect("page");
    let slugs: Vec<&str> = page.items.iter().map(|i| i.slug.as_str()).collect();
    assert_eq!(slugs, ["show/a", "show/b", "show/c"]);
    let next = Position::decode(page.next.as_deref().expect("more")).expect("ours");
    assert_eq!(next.slug.as_str(), "show/c");
    assert_eq!(next.episode_count, 3);
    assert_eq!(
        *starts.lock().unwrap_or_else(|e| e.into_inner()),
        [Some(4), Some(2)],
        "asks for one more than the page still needs"
    );
}

/// What the mocked calls of a write saw, in order: each operation, and for the change
/// record's bumps the `unsettledUntil` they set and the one they may replace (ms).
type Seen = Arc<Mutex<Vec<(&'static str, Option<u64>, Option<u64>)>>>;

fn millis_of(values: Option<&HashMap<String, AttributeValue>>, name: &str) -> Option<u64> {
    values?.get(name)?.as_n().ok()?.parse().ok()
}

#[tokio::test]
async fn a_write_is_announced_before_its_first_call_and_bumped_again_after_it() {
    use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
    use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    let seen: Seen = Arc::default();
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let push = |s: &Seen, what, until, mine| {
        let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
        s.push((what, until, mine));
        s.len()
    };
    let bump = mock!(Client::update_item).then_compute_output(move |input| {
        let values = input.expression_attribute_values();
        let n = push(
            &s1,
            "UpdateItem",
            millis_of(values, ":until"),
            millis_of(values, ":mine"),
        );
        UpdateItemOutput::builder()
            .attributes(CHANGE_RECORD_ATTRIBUTE, AttributeValue::N(n.to_string()))
            .build()
    });
    let log = mock!(Client::put_item).then_compute_output(move |_| {
        push(&s2, "PutItem", None, None);
        PutItemOutput::builder().build()
    });
    let batch = mock!(Client::transact_write_items).then_compute_output(move |_| {
        push(&s3, "TransactWriteItems", None, None);
        TransactWriteItemsOutput::builder().build()
    });
    let held = mock!(Client::get_item).then_output(stored_show);
    let delete = mock!(Client::delete_item).then_compute_output(move |_| {
        push(&s4, "DeleteItem", None, None);
        DeleteItemOutput::builder().build()
    });
    let mut s = settings();
    s.write_concurrency = 1;
    let store = mocked(
        &[&bump, &log, &batch, &delete, &held],
        RuleMode::MatchAny,
        &s,
    );
    let now = || {
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64
    };
    let (deadline, margin) = (
        s.write_deadline.as_millis() as u64,
        changes::INDEX_LAG_MARGIN.as_millis() as u64,
    );

    let before = now();
    assert_eq!(
        store
            .upsert(shows("a", 30), &OPERATOR)
            .await
            .expect("written"),
        30
    );
    assert!(
        store
            .delete(&Slug::parse("show/a").expect("slug"), &OPERATOR)
            .await
            .expect("deleted")
    );
    let after = now();

    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let order: Vec<&str> = seen.iter().map(|s| s.0).collect();
    let write = |call| {
        [
            ["UpdateItem", "PutItem"].as_slice(),
            call,
            &["UpdateItem", "PutItem"],
        ]
        .concat()
    };
    assert_eq!(
        order,
        [write(&["TransactWriteItems"]), write(&["DeleteItem"])].concat()
    );
    for (open, close) in [(0, 3), (5, 8)] {
        let (_, Some(announced), None) = seen[open] else {
            panic!("{:?}", seen[open]);
        };
        assert!(
            (before + deadline + margin..=after + deadline + margin).contains(&announced),
            "announced until the deadline and the margin: {announced}"
        );
        let (_, Some(closed), Some(replaces)) = seen[close] else {
            panic!("{:?}", seen[close]);
        };
        assert_eq!(
            replaces, announced,
            "the closing bump may end its own window"
        );
        assert!(
            (before + margin..=after + margin).contains(&closed),
            "{closed}"
        );
    }
}

#[tokio::test]
async fn a_write_whose_announcement_fails_does_not_start() {
    let bump = mock!(Client::update_item)
        .sequence()
        .http_status(500, aws_error("InternalServerError"))
        .repeatedly()
        .build();
    let batch = mock!(Client::transact_write_items)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let delete = mock!(Client::delete_item).then_output(|| {
        aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput::builder().build()
    });
    let held = mock!(Client::get_item).then_output(stored_show);
    let store = mocked(
        &[&bump, &batch, &delete, &held],
        RuleMode::MatchAny,
        &settings(),
    );
    let err = store
        .upsert(shows("n", 30), &OPERATOR)
        .await
        .expect_err("not started");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    let err = store
        .delete(&Slug::parse("show/n-0001").expect("slug"), &OPERATOR)
        .await
        .expect_err("not started");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_eq!(
        (batch.num_calls(), delete.num_calls()),
        (0, 0),
        "nothing written"
    );
}
