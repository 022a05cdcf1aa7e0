//! A show as a DynamoDB item, and back (docs/dynamodb.md, "Data layout").
//!
//! Written (ours, sparse): every field under its JSON name with its natural type — strings
//! `S`, `drm` `BOOL`, `episodeCount` `N`, `image` `M{showImage S}`, `seasons` `L` of `M`,
//! `nextEpisode` `M` (its own null fields as `NULL`) — absent optional fields are left
//! out, and `drmKey = 1` is added only when `drm` is true, so only DRM shows enter the
//! GSI. `episodeCount` is written only when the feed gave it.
//!
//! Read (ours and the Go service's): the Go service wrote `drmKey` 0 or 1 on every item,
//! `episodeCount` 0 when absent and absent optional fields as `{"NULL": true}`. Reading
//! drops `drmKey` and the provenance attributes (owner, created, updated: the owners'
//! module reads them), treats `NULL` as absent, and treats an `image` without a `showImage`
//! (a Go zero-valued struct) as no image. The item then goes through the same parser as a
//! feed item (`Show::from_json`), so a stored show is as valid as a posted one.

use crate::domain::{Problem, Show};
use crate::store::ListItem;
use crate::store::layout::{GSI_HASH_KEY, GSI_RANGE_KEY, SHOW_PROVENANCE, TABLE_HASH_KEY};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's item size limit (names and values, UTF-8).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// A stored item that is not a valid show.
#[derive(Debug, thiserror::Error)]
#[error("stored item {slug} is not a valid show: {}", describe(.problems))]
pub struct ItemError {
    pub slug: String,
    pub problems: Vec<Problem>,
}

fn describe(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{} {}", p.path, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The item we write for `show` (see the module doc).
pub fn to_item(show: &Show) -> Item {
    let mut item = Item::new();
    if let Ok(Value::Object(fields)) = serde_json::to_value(show) {
        for (name, value) in fields {
            if !value.is_null() {
                item.insert(name, to_attr(value));
            }
        }
    }
    if show.drm == Some(true) {
        item.insert(GSI_HASH_KEY.into(), AttributeValue::N("1".into()));
    }
    item
}

fn to_attr(value: Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s),
        Value::Array(items) => AttributeValue::L(items.into_iter().map(to_attr).collect()),
        Value::Object(fields) => {
            AttributeValue::M(fields.into_iter().map(|(k, v)| (k, to_attr(v))).collect())
        }
    }
}

/// Reads a stored item, in our layout or the Go service's (see the module doc).
pub fn from_item(item: &Item) -> Result<Show, ItemError> {
    let mut fields = Map::new();
    for (name, attr) in item {
        if name != GSI_HASH_KEY && !SHOW_PROVENANCE.contains(&name.as_str()) {
            fields.insert(name.clone(), to_json(attr));
        }
    }
    // Go stored a show without an image as its zero-valued struct: {showImage: NULL or ""}.
    let empty_image = match fields.get("image") {
        Some(Value::Object(image)) => match image.get("showImage") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        },
        _ => false,
    };
    if empty_image {
        fields.remove("image");
    }
    let value = Value::Object(fields);
    let mut problems = Vec::new();
    Show::from_json(&value, "item", &mut problems).ok_or_else(|| ItemError {
        slug: slug_of(item).unwrap_or("?").to_string(),
        problems,
    })
}

fn to_json(attr: &AttributeValue) -> Value {
    match attr {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => number(n),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        AttributeValue::L(l) => Value::Array(l.iter().map(to_json).collect()),
        AttributeValue::Ss(ss) => Value::Array(ss.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(ns) => Value::Array(ns.iter().map(|n| number(n)).collect()),
        AttributeValue::B(b) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
        }
        AttributeValue::Bs(bs) => Value::Array(
            bs.iter()
                .map(|b| {
                    Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
                })
                .collect(),
        ),
        // A type added to DynamoDB after this SDK: not one of our fields.
        _ => Value::Null,
    }
}

/// A DynamoDB number as JSON: an integer when it is one, else a float, else the text
/// (which the show parser then reports).
fn number(n: &str) -> Value {
    if let Ok(i) = n.parse::<u64>() {
        return Value::Number(i.into());
    }
    if let Ok(i) = n.parse::<i64>() {
        return Value::Number(i.into());
    }
    n.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or_else(|| Value::String(n.to_string()), Value::Number)
}

/// The item's `slug`, when it is a string.
pub fn slug_of(item: &Item) -> Option<&str> {
    item.get(TABLE_HASH_KEY)
        .and_then(|a| a.as_s().ok())
        .map(String::as_str)
}

/// The item's `episodeCount`, when it is a whole number.
pub fn episode_count_of(item: &Item) -> Option<u32> {
    item.get(GSI_RANGE_KEY)
        .and_then(|a| a.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// A catalogue entry from a projected index item (`slug, title, image.showImage`).
/// `None` when the item lacks a string slug, a title or a whole `episodeCount`.
pub fn to_list_item(item: &Item) -> Option<ListItem> {
    let slug = slug_of(item)?.to_string();
    let title = item.get("title")?.as_s().ok()?.clone();
    let image = item
        .get("image")
        .and_then(|a| a.as_m().ok())
        .and_then(|m| m.get("showImage"))
        .and_then(|a| a.as_s().ok())
        .cloned()
        .unwrap_or_default();
    let episode_count = episode_count_of(item)?;
    Some(ListItem {
        image,
        slug,
        title,
        episode_count,
    })
}

/// An upper bound of the item's size as DynamoDB counts it (names plus values; numbers
/// at most their text length).
pub fn size_of(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + attr_size(v)).sum()
}

fn attr_size(attr: &AttributeValue) -> usize {
    match attr {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + attr_size(v))
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + attr_size(v)).sum::<usize>(),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.iter().map(String::len).sum(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }
    fn m(fields: &[(&str, AttributeValue)]) -> AttributeValue {
        AttributeValue::M(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }
    fn null() -> AttributeValue {
        AttributeValue::Null(true)
    }
    fn item(fields: &[(&str, AttributeValue)]) -> Item {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
    fn show(v: Value) -> Show {
        let mut problems = Vec::new();
        Show::from_json(&v, "t", &mut problems).unwrap_or_else(|| panic!("{problems:?}"))
    }

    fn full_show() -> Show {
        show(json!({
            "slug": "show/thetaste",
            "title": "The Taste",
            "country": "UK", "genre": "Reality", "language": "English", "tvChannel": "GEM",
            "description": "lorem", "primaryColour": "#df0000",
            "drm": true, "episodeCount": 4,
            "image": {"showImage": "http://img.example.com/a.jpg"},
            "nextEpisode": {"channel": null, "channelLogo": "http://img.example.com/logo.gif",
                            "date": null, "html": "<br>", "url": "http://www.example.com/a"},
            "seasons": [{"slug": "show/thetaste/season/1"}, {"slug": "show/thetaste/season/2"}],
        }))
    }

    #[test]
    fn our_item_has_natural_types_and_the_sparse_index_key() {
        let got = to_item(&full_show());
        let want = item(&[
            ("slug", s("show/thetaste")),
            ("title", s("The Taste")),
            ("country", s("UK")),
            ("genre", s("Reality")),
            ("language", s("English")),
            ("tvChannel", s("GEM")),
            ("description", s("lorem")),
            ("primaryColour", s("#df0000")),
            ("drm", AttributeValue::Bool(true)),
            ("drmKey", n("1")),
            ("episodeCount", n("4")),
            (
                "image",
                m(&[("showImage", s("http://img.example.com/a.jpg"))]),
            ),
            (
                "nextEpisode",
                m(&[
                    ("channel", null()),
                    ("channelLogo", s("http://img.example.com/logo.gif")),
                    ("date", null()),
                    ("html", s("<br>")),
                    ("url", s("http://www.example.com/a")),
                ]),
            ),
            (
                "seasons",
                AttributeValue::L(vec![
                    m(&[("slug", s("show/thetaste/season/1"))]),
                    m(&[("slug", s("show/thetaste/season/2"))]),
                ]),
            ),
        ]);
        assert_eq!(got, want);
        assert_eq!(from_item(&got).expect("reads back"), full_show());
    }

    #[test]
    fn only_drm_shows_get_a_drm_key_and_absent_fields_stay_absent() {
        let cases = [
            (
                json!({"slug": "show/a", "title": "A", "drm": false, "episodeCount": 3}),
                false,
            ),
            (
                json!({"slug": "show/a", "title": "A", "episodeCount": 3}),
                false,
            ),
            (json!({"slug": "show/a", "title": "A", "drm": true}), true),
        ];
        for (v, keyed) in cases {
            let sh = show(v.clone());
            let it = to_item(&sh);
            assert_eq!(it.contains_key("drmKey"), keyed, "{v}");
            assert_eq!(
                it.contains_key("episodeCount"),
                v.get("episodeCount").is_some(),
                "{v}"
            );
            assert!(
                !it.values().any(|a| a.is_null()),
                "no top-level NULLs: {it:?}"
            );
            assert_eq!(from_item(&it).expect("reads back"), sh);
        }
    }

    /// An item as the Go service wrote it: `drmKey` 0/1 on every item, `episodeCount` 0
    /// when absent, absent optional fields as NULL, an image-less show as an empty struct.
    #[test]
    fn a_go_written_item_reads_back() {
        let go = item(&[
            ("slug", s("show/legacy")),
            ("title", s("Legacy")),
            ("country", null()),
            ("genre", null()),
            ("language", s("English")),
            ("tvChannel", null()),
            ("description", null()),
            ("primaryColour", null()),
            ("drm", AttributeValue::Bool(false)),
            ("drmKey", n("0")),
            ("episodeCount", n("0")),
            ("image", m(&[("showImage", null())])),
            ("nextEpisode", null()),
            ("seasons", null()),
        ]);
        let got = from_item(&go).expect("Go item");
        assert_eq!(
            got,
            show(
                json!({"slug": "show/legacy", "title": "Legacy", "language": "English",
                        "drm": false, "episodeCount": 0})
            )
        );
        assert!(!got.is_eligible());

        let go_drm = item(&[
            ("slug", s("show/legacy-drm")),
            ("title", s("Legacy DRM")),
            ("drm", AttributeValue::Bool(true)),
            ("drmKey", n("1")),
            ("episodeCount", n("12")),
            (
                "image",
                m(&[("showImage", s("https://img.example.com/l.jpg"))]),
            ),
            (
                "nextEpisode",
                m(&[
                    ("channel", null()),
                    ("channelLogo", s("http://img.example.com/logo.gif")),
                    ("date", null()),
                    ("html", s("")),
                    ("url", s("http://www.example.com/l")),
                ]),
            ),
            (
                "seasons",
                AttributeValue::L(vec![m(&[("slug", s("show/legacy-drm/season/1"))])]),
            ),
        ]);
        let got = from_item(&go_drm).expect("Go DRM item");
        assert!(got.is_eligible());
        assert_eq!(got.list_image(), "https://img.example.com/l.jpg");
        assert_eq!(got.next_episode.as_ref().map(|e| e.html.as_str()), Some(""));
        assert_eq!(got.seasons.as_ref().map(Vec::len), Some(1));
    }

    /// What the Go service reads (its struct, by name and DynamoDB type): every attribute
    /// it knows is either absent (a zero value to Go) or of the type it declared.
    #[test]
    fn our_item_reads_in_the_go_services_shape() {
        let it = to_item(&full_show());
        let is = |name: &str, ok: fn(&AttributeValue) -> bool| {
            it.get(name).is_none_or(|a| ok(a) || a.is_null())
        };
        assert!(is("slug", AttributeValue::is_s));
        assert!(is("title", AttributeValue::is_s));
        for name in [
            "country",
            "genre",
            "language",
            "tvChannel",
            "description",
            "primaryColour",
        ] {
            assert!(is(name, AttributeValue::is_s), "{name}");
        }
        assert!(is("drm", AttributeValue::is_bool));
        assert!(is("drmKey", AttributeValue::is_n));
        assert!(is("episodeCount", AttributeValue::is_n));
        assert!(is("image", AttributeValue::is_m));
        assert!(is("nextEpisode", AttributeValue::is_m));
        assert!(is("seasons", AttributeValue::is_l));
        let image = it["image"].as_m().expect("image");
        assert!(image["showImage"].is_s());
        for season in it["seasons"].as_l().expect("seasons") {
            assert!(season.as_m().expect("season")["slug"].is_s());
        }
        // The catalogue projection the Go service and we both query.
        let listed = to_list_item(&it).expect("listable");
        assert_eq!(listed.image, "http://img.example.com/a.jpg");
        assert_eq!(episode_count_of(&it), Some(4));
    }

    #[test]
    fn a_stored_item_that_is_not_a_show_is_an_error_naming_it() {
        let bad = item(&[("slug", s("show/bad")), ("title", n("3"))]);
        let err = from_item(&bad).expect_err("not a show");
        assert_eq!(err.slug, "show/bad");
        assert!(err.to_string().contains("item.title"), "{err}");
    }

    #[test]
    fn list_items_default_the_image_and_need_slug_and_title() {
        let it = item(&[
            ("slug", s("show/a")),
            ("title", s("A")),
            ("episodeCount", n("2")),
        ]);
        let listed = to_list_item(&it).expect("item");
        assert_eq!((listed.image.as_str(), listed.episode_count), ("", 2));
        assert!(to_list_item(&item(&[("slug", s("show/a")), ("title", s("A"))])).is_none());
        assert!(to_list_item(&item(&[("slug", s("show/a"))])).is_none());
    }

    #[test]
    fn the_size_estimate_counts_names_and_values() {
        let it = item(&[("slug", s("show/a")), ("drm", AttributeValue::Bool(true))]);
        assert_eq!(size_of(&it), 4 + 6 + 3 + 1);
        assert!(size_of(&to_item(&full_show())) < 1000);
    }

    #[test]
    fn the_largest_valid_show_fits_in_one_item() {
        use crate::domain::fields::{MAX_SLUG_LEN, MAX_URL_LEN};
        use crate::domain::show::MAX_SEASONS;
        let handle = "a".repeat(MAX_SLUG_LEN - 5);
        let url = format!("https://{}", "u".repeat(MAX_URL_LEN - 8));
        let wide = "\u{1F4FA}"; // 4 bytes in UTF-8
        let digits = 2 * MAX_SLUG_LEN - "show//season/".len() - handle.len();
        let season = format!("show/{handle}/season/{}", "9".repeat(digits));
        let v = serde_json::json!({
            "slug": format!("show/{handle}"),
            "title": wide.repeat(120),
            "country": wide.repeat(50), "genre": wide.repeat(50),
            "language": wide.repeat(50), "tvChannel": wide.repeat(50),
            "description": wide.repeat(500), "primaryColour": "#ffffff",
            "drm": true, "episodeCount": u32::MAX,
            "image": {"showImage": url},
            "nextEpisode": {"channel": wide.repeat(100), "channelLogo": wide.repeat(2048),
                            "date": wide.repeat(100), "html": wide.repeat(2000), "url": url},
            "seasons": vec![serde_json::json!({"slug": season}); MAX_SEASONS],
        });
        let mut problems = Vec::new();
        let show =
            Show::from_json(&v, "t", &mut problems).unwrap_or_else(|| panic!("{problems:?}"));
        let size = size_of(&to_item(&show));
        assert!(size < MAX_ITEM_BYTES, "{size} bytes");
    }
}
