//! The paging cursor as DynamoDB keys: a [`Position`] is the `ExclusiveStartKey` that
//! continues after it, and an item's (or a `LastEvaluatedKey`'s) key attributes are a
//! position when they are one of ours. The rebuilt key is always canonical, whatever the
//! client sent.

use crate::domain::Slug;
pub use crate::store::cursor::Position;
use crate::store::layout::{GSI_HASH_KEY, GSI_RANGE_KEY, TABLE_HASH_KEY};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

impl Position {
    /// The position of an index key (a `LastEvaluatedKey`, or an item's key attributes),
    /// when it is one of ours.
    pub fn from_key(key: &HashMap<String, AttributeValue>) -> Option<Position> {
        let drm = key.get(GSI_HASH_KEY)?.as_n().ok()?;
        let count = key.get(GSI_RANGE_KEY)?.as_n().ok()?;
        let slug = key.get(TABLE_HASH_KEY)?.as_s().ok()?;
        if drm.parse::<u8>().ok()? != 1 {
            return None;
        }
        let episode_count = count.parse::<u32>().ok().filter(|c| *c >= 1)?;
        let slug = Slug::parse(slug.as_str()).ok()?;
        Some(Position {
            episode_count,
            slug,
        })
    }

    /// The `ExclusiveStartKey` that continues after this position.
    pub fn to_key(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (GSI_HASH_KEY.to_string(), AttributeValue::N("1".into())),
            (
                GSI_RANGE_KEY.to_string(),
                AttributeValue::N(self.episode_count.to_string()),
            ),
            (
                TABLE_HASH_KEY.to_string(),
                AttributeValue::S(self.slug.to_string()),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cursor::pos;

    #[test]
    fn a_position_round_trips_through_its_key() {
        let p = pos(12, "show/a-b");
        assert_eq!(Position::from_key(&p.to_key()), Some(p));
    }

    #[test]
    fn keys_that_are_not_ours_have_no_position() {
        let mut key = pos(3, "show/a").to_key();
        key.insert("drmKey".into(), AttributeValue::N("0".into()));
        assert_eq!(Position::from_key(&key), None);
        key.remove("drmKey");
        assert_eq!(Position::from_key(&key), None);
    }
}
