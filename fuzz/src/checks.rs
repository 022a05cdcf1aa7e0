//! What must hold for any input, as plain functions that panic when it does not.
//! Used by the fuzz targets (a panic is a crash) and, through `#[path]`, by
//! `tests/properties.rs` to replay the committed seeds.

use serde_json::Value;
use show_service::domain::{Feed, FeedError, MAX_FEED_ITEMS, Show};
use std::collections::HashSet;

/// `Feed::parse` on arbitrary bytes never panics; a feed it accepts is within limits,
/// has distinct slugs, and every show round-trips (its JSON parses back to itself); a
/// refusal always lists a problem; "not JSON" means exactly that.
pub fn feed(data: &[u8]) {
    let json = serde_json::from_slice::<Value>(data).ok();
    let result = Feed::parse(data);
    match &result {
        Ok(feed) => {
            assert!((1..=MAX_FEED_ITEMS).contains(&feed.shows.len()));
            let slugs: HashSet<&str> = feed.shows.iter().map(|s| s.slug.as_str()).collect();
            assert_eq!(slugs.len(), feed.shows.len(), "duplicate slugs accepted");
            for show in &feed.shows {
                let stored = serde_json::to_string(show).expect("serialize");
                let back: Show = serde_json::from_str(&stored).expect("stored show reads back");
                assert_eq!(&back, show);
                let mut problems = Vec::new();
                let again = Show::from_json(
                    &serde_json::from_str(&stored).expect("json"),
                    "p",
                    &mut problems,
                );
                assert_eq!(again.as_ref(), Some(show), "{problems:?}");
            }
        }
        Err(FeedError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "refused without a problem");
            assert!(json.is_some(), "not JSON reported as invalid");
        }
        Err(FeedError::NotJson) => assert!(json.is_none(), "JSON reported as not JSON"),
    }
    // The parsed-value entry point gives the same verdict.
    if let Some(v) = json {
        let other = Feed::from_value(&v);
        assert_eq!(
            other.map(|f| f.shows).map_err(|e| format!("{e:?}")),
            result.map(|f| f.shows).map_err(|e| format!("{e:?}")),
        );
    }
}
