//! The feed envelope `{"payload":[Show…],"skip","take","totalRecords"}` and its parser:
//! every item is checked before anything is written, and every problem is listed.

use super::show::{Problem, Show, kind, whole_number};
use serde_json::Value;
use std::collections::HashMap;

/// The most shows one feed may carry.
pub const MAX_FEED_ITEMS: usize = 1000;

/// A feed whose every show is valid and whose slugs are distinct.
#[derive(Debug, Clone)]
pub struct Feed {
    pub shows: Vec<Show>,
    pub skip: Option<u64>,
    pub take: Option<u64>,
    pub total_records: Option<u64>,
}

/// Why a feed was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError {
    /// The body is not JSON at all.
    NotJson,
    /// JSON that breaks the rules; every problem, in document order.
    Invalid(Vec<Problem>),
}

impl Feed {
    /// Parses a request body (at most [`MAX_FEED_ITEMS`] shows).
    pub fn parse(body: &[u8]) -> Result<Feed, FeedError> {
        Feed::parse_with_limit(body, MAX_FEED_ITEMS)
    }

    /// Parses a feed of at most `max_items` shows (the `import` command lifts the limit).
    pub fn parse_with_limit(body: &[u8], max_items: usize) -> Result<Feed, FeedError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| FeedError::NotJson)?;
        Feed::check(&value, max_items)
    }

    /// Checks a parsed JSON document against the feed rules.
    pub fn from_value(value: &Value) -> Result<Feed, FeedError> {
        Feed::check(value, MAX_FEED_ITEMS)
    }

    fn check(value: &Value, max_items: usize) -> Result<Feed, FeedError> {
        let mut problems = Vec::new();
        let Some(obj) = value.as_object() else {
            let msg = format!("the body must be an object, not {}", kind(value));
            return Err(FeedError::Invalid(vec![Problem::new("$", msg)]));
        };
        // At most i64::MAX: what the Go service (and most clients) can hold.
        let mut count = |name: &str| -> Option<u64> {
            let v = obj.get(name).filter(|v| !v.is_null())?;
            let n = whole_number(v, i64::MAX as u64);
            if n.is_none() {
                let msg = format!("must be a whole number from 0 to {}", i64::MAX);
                problems.push(Problem::new(name, msg));
            }
            n
        };
        let (skip, take, total_records) = (count("skip"), count("take"), count("totalRecords"));

        let mut shows = Vec::new();
        match obj.get("payload") {
            None | Some(Value::Null) => problems.push(Problem::new("payload", "is required")),
            Some(Value::Array(items)) => {
                if items.is_empty() || items.len() > max_items {
                    problems.push(Problem::new(
                        "payload",
                        format!("must hold 1 to {max_items} shows, not {}", items.len()),
                    ));
                } else {
                    let mut first_at: HashMap<&str, usize> = HashMap::with_capacity(items.len());
                    shows.reserve(items.len());
                    for (i, item) in items.iter().enumerate() {
                        let path = format!("payload[{i}]");
                        if let Some(show) = Show::from_json(item, &path, &mut problems) {
                            shows.push(show);
                        }
                        if let Some(slug) = item.get("slug").and_then(Value::as_str)
                            && let Some(first) = first_at.insert(slug, i)
                        {
                            first_at.insert(slug, first);
                            problems.push(Problem::new(
                                format!("{path}.slug"),
                                format!("duplicates payload[{first}].slug ({slug:?})"),
                            ));
                        }
                    }
                }
            }
            Some(other) => problems.push(Problem::new(
                "payload",
                format!("must be an array, not {}", kind(other)),
            )),
        }

        if problems.is_empty() {
            Ok(Feed {
                shows,
                skip,
                take,
                total_records,
            })
        } else {
            Err(FeedError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(slug: &str) -> Value {
        json!({"slug": slug, "title": "T"})
    }

    fn problems(v: Value) -> Vec<Problem> {
        match Feed::from_value(&v) {
            Err(FeedError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn the_sample_feed_parses() {
        let body = include_bytes!("../../tests/fixtures/feed-12.json");
        let feed = Feed::parse(body).unwrap();
        assert_eq!(feed.shows.len(), 12);
        assert_eq!(feed.take, Some(12));
    }

    #[test]
    fn a_body_that_is_not_json_is_not_json() {
        for body in [&b"{"[..], b"", b"nope", b"{\"payload\": [}"] {
            assert_eq!(Feed::parse(body).unwrap_err(), FeedError::NotJson);
        }
    }

    #[test]
    fn envelope_rules() {
        assert_eq!(problems(json!([]))[0].path, "$");
        assert_eq!(problems(json!({}))[0].path, "payload");
        assert_eq!(problems(json!({"payload": {}}))[0].path, "payload");
        assert_eq!(problems(json!({"payload": []}))[0].path, "payload");
        let many: Vec<Value> = (0..=MAX_FEED_ITEMS)
            .map(|i| item(&format!("show/s{i}")))
            .collect();
        assert!(
            problems(json!({"payload": many}))[0]
                .message
                .contains("1001")
        );
        let p = problems(
            json!({"payload": [item("show/a")], "skip": -1, "take": "x", "totalRecords": 1.5}),
        );
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["skip", "take", "totalRecords"]);
        let ok = Feed::from_value(&json!({"payload": [item("show/a")], "skip": null})).unwrap();
        assert_eq!(ok.skip, None);
        // Whole numbers written as floats count; the range is i64's (the Go service's).
        let ok = Feed::from_value(
            &json!({"payload": [{"slug": "show/a", "title": "T", "episodeCount": 52.0}],
                    "take": 12.0, "totalRecords": i64::MAX}),
        )
        .unwrap();
        assert_eq!(ok.shows[0].episode_count, Some(52));
        assert_eq!(
            (ok.take, ok.total_records),
            (Some(12), Some(i64::MAX as u64))
        );
        let p = problems(
            json!({"payload": [item("show/a")], "skip": i64::MAX as u64 + 1,
                                "take": 9.3e18, "totalRecords": -0.5}),
        );
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn duplicates_are_named_and_every_bad_item_is_listed() {
        let p = problems(
            json!({"payload": [item("show/a"), item("BAD"), item("show/a"), item("show/a")]}),
        );
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(got[0].0, "payload[1].slug");
        assert_eq!(
            got[1],
            ("payload[2].slug", "duplicates payload[0].slug (\"show/a\")")
        );
        assert_eq!(
            got[2],
            ("payload[3].slug", "duplicates payload[0].slug (\"show/a\")")
        );
    }

    #[test]
    fn a_thousand_shows_are_accepted() {
        let many: Vec<Value> = (0..MAX_FEED_ITEMS)
            .map(|i| item(&format!("show/s{i}")))
            .collect();
        assert_eq!(
            Feed::from_value(&json!({"payload": many}))
                .unwrap()
                .shows
                .len(),
            MAX_FEED_ITEMS
        );
    }
}
