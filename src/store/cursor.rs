//! The paging cursor, shared by both stores and the cached catalogue: an opaque base64url
//! encoding of a position `(episodeCount, slug)` (the last item of a page, not an offset,
//! so it stays valid across refills and tasks), written as the GSI query's
//! `LastEvaluatedKey` — exactly
//! `{"drmKey":{"N":"1"},"episodeCount":{"N":"…"},"slug":{"S":"…"}}` — so the DynamoDB
//! store can hand it to `ExclusiveStartKey` and any task can continue any task's walk.
//!
//! A cursor comes back from the client, so it is checked before it is used: exactly
//! those three attributes with those types, `drmKey` 1 (the query's hash key: any other
//! value would be a ValidationException), `episodeCount` a whole number ≥ 1 (inside the
//! query's range), `slug` a valid slug. Anything else is [`StoreError::BadCursor`] (400).

use crate::domain::Slug;
use crate::store::StoreError;
use crate::store::layout::{GSI_HASH_KEY, GSI_RANGE_KEY, TABLE_HASH_KEY};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// Longer cursors are refused before decoding (a real one is well under 400 characters).
const MAX_CURSOR_LEN: usize = 1024;

/// A position in the index: the key of the last item of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub episode_count: u32,
    pub slug: Slug,
}

impl Position {
    /// The opaque cursor.
    pub fn encode(&self) -> String {
        // Attributes in name order (whether or not serde_json preserves insertion order):
        // the encoding is canonical.
        let mut key = Map::new();
        key.insert(GSI_HASH_KEY.into(), typed("N", "1"));
        key.insert(
            GSI_RANGE_KEY.into(),
            typed("N", &self.episode_count.to_string()),
        );
        key.insert(TABLE_HASH_KEY.into(), typed("S", self.slug.as_str()));
        URL_SAFE_NO_PAD.encode(Value::Object(key).to_string())
    }

    /// Checks and decodes a cursor (see the module doc).
    pub fn decode(cursor: &str) -> Result<Position, StoreError> {
        if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
            return Err(StoreError::BadCursor);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| StoreError::BadCursor)?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
        let Value::Object(key) = value else {
            return Err(StoreError::BadCursor);
        };
        if key.len() != 3 {
            return Err(StoreError::BadCursor);
        }
        let drm = untyped(&key, GSI_HASH_KEY, "N")?;
        let count = untyped(&key, GSI_RANGE_KEY, "N")?;
        let slug = untyped(&key, TABLE_HASH_KEY, "S")?;
        if drm != "1" || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StoreError::BadCursor);
        }
        let episode_count = count
            .parse::<u32>()
            .ok()
            .filter(|c| *c >= 1)
            .ok_or(StoreError::BadCursor)?;
        let slug = Slug::parse(slug).map_err(|_| StoreError::BadCursor)?;
        Ok(Position {
            episode_count,
            slug,
        })
    }
}

fn typed(kind: &str, value: &str) -> Value {
    let mut m = Map::new();
    m.insert(kind.into(), Value::String(value.into()));
    Value::Object(m)
}

/// The string inside `{"<kind>": "…"}` at `name`, when that is exactly what is there.
fn untyped<'a>(key: &'a Map<String, Value>, name: &str, kind: &str) -> Result<&'a str, StoreError> {
    match key.get(name) {
        Some(Value::Object(m)) if m.len() == 1 => m
            .get(kind)
            .and_then(Value::as_str)
            .ok_or(StoreError::BadCursor),
        _ => Err(StoreError::BadCursor),
    }
}

/// A position for tests: `episode_count` and a valid slug.
#[cfg(test)]
pub(crate) fn pos(count: u32, slug: &str) -> Position {
    Position {
        episode_count: count,
        slug: Slug::parse(slug).expect("slug"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn a_cursor_round_trips_and_is_the_last_evaluated_key() {
        let p = pos(12, "show/a-b");
        let c = p.encode();
        assert_eq!(Position::decode(&c).expect("decodes"), p);
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(&c).expect("b64")).expect("utf8");
        assert_eq!(
            json,
            r#"{"drmKey":{"N":"1"},"episodeCount":{"N":"12"},"slug":{"S":"show/a-b"}}"#
        );
    }

    #[test]
    fn forged_cursors_are_refused() {
        let forged = [
            String::new(),
            "!!!".into(),
            "A".repeat(5000),
            enc("[]"),
            enc("null"),
            enc(r#"{"slug":1}"#),
            enc("v1:1:show/a"),
            // wrong drmKey: would make DynamoDB fail the query
            enc(r#"{"drmKey":{"N":"0"},"episodeCount":{"N":"1"},"slug":{"S":"show/a"}}"#),
            enc(r#"{"drmKey":{"N":"01"},"episodeCount":{"N":"1"},"slug":{"S":"show/a"}}"#),
            // wrong types
            enc(r#"{"drmKey":{"S":"1"},"episodeCount":{"N":"1"},"slug":{"S":"show/a"}}"#),
            enc(r#"{"drmKey":{"N":"1"},"episodeCount":{"S":"1"},"slug":{"S":"show/a"}}"#),
            enc(r#"{"drmKey":{"N":"1"},"episodeCount":{"N":"1"},"slug":{"N":"1"}}"#),
            enc(r#"{"drmKey":{"N":"1","S":"1"},"episodeCount":{"N":"1"},"slug":{"S":"show/a"}}"#),
            enc(r#"{"drmKey":{"N":1},"episodeCount":{"N":"1"},"slug":{"S":"show/a"}}"#),
            // outside the query's range, or not a count
            enc(r#"{"drmKey":{"N":"1"},"episodeCount":{"N":"0"},"slug":{"S":"show/a"}}"#),
            enc(r#"{"drmKey":{"N":"1"},"episodeCount":{"N":"-3"},"slug":{"S":"show/a"}}"#),
            enc(r#"{"drmKey":{"N":"1"},"episodeCount":{"N":"1.5"},"slug":{"S":"show/a"}}"#),
            enc(r#"{"drmKey":{"N":"1"},"episodeCount":{"N":"99999999999"},"slug":{"S":"show/a"}}"#),
            // an invalid slug
            enc(r#"{"drmKey":{"N":"1"},"episodeCount":{"N":"1"},"slug":{"S":"../etc"}}"#),
            // missing or extra attributes
            enc(r#"{"drmKey":{"N":"1"},"slug":{"S":"show/a"}}"#),
            enc(
                r#"{"drmKey":{"N":"1"},"episodeCount":{"N":"1"},"slug":{"S":"show/a"},"x":{"S":"y"}}"#,
            ),
            enc(r#"{"drmKey":{"N":"1"},"episodeCount":{"N":"1"},"title":{"S":"show/a"}}"#),
        ];
        for f in &forged {
            assert!(
                matches!(Position::decode(f), Err(StoreError::BadCursor)),
                "{f:?}"
            );
        }
    }
}
