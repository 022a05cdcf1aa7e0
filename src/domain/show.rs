//! A show and its parts, and the parser that turns one untrusted JSON item into a `Show`
//! while collecting every problem with its path (`payload[3].image.showImage`).

use super::fields::{HexColour, HttpUrl, SeasonSlug, Slug, Text, Title};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The most seasons one show may list. With every other field at its limit, a show stays
/// well under DynamoDB's 400 KB item size, so no valid show can fail to store.
pub const MAX_SEASONS: usize = 500;

/// One problem with a request body: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Path of the offending value, e.g. `payload[3].slug`.
    #[schema(example = "payload[3].slug")]
    pub path: String,
    /// What is wrong with it.
    #[schema(example = "must match ^show/[a-z0-9][a-z0-9-]*$")]
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A show as stored and as returned by `GET /v1/shows/{slug}`. Absent optional fields
/// are omitted. Unknown fields of the feed are not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Show {
    #[schema(value_type = String, example = "show/thetaste", pattern = "^show/[a-z0-9][a-z0-9-]{0,194}$")]
    pub slug: Slug,
    /// Not blank (holds a character that is not Unicode white space); at most 120
    /// characters.
    #[schema(value_type = String, example = "The Taste", min_length = 1, max_length = 120,
             pattern = "[^\\t-\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]")]
    pub title: Title,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 50)]
    pub country: Option<Text<50>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 50)]
    pub genre: Option<Text<50>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 50)]
    pub language: Option<Text<50>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 50)]
    pub tv_channel: Option<Text<50>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub description: Option<Text<500>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^#[0-9a-fA-F]{6}$")]
    pub primary_colour: Option<HexColour>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drm: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub episode_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_episode: Option<NextEpisode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seasons: Option<Vec<Season>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// An absolute http(s) URL.
    #[schema(value_type = String, max_length = 2048, pattern = "^https?://([A-Za-z0-9]+(-[A-Za-z0-9]+)*\\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(:[0-9]{1,4})?([/?#]\\S*)?$")]
    pub show_image: HttpUrl,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NextEpisode {
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub channel: Option<Text<100>>,
    #[schema(value_type = String, max_length = 2048)]
    pub channel_logo: Text<2048>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub date: Option<Text<100>>,
    #[schema(value_type = String, max_length = 2000)]
    pub html: Text<2000>,
    /// An absolute http(s) URL.
    #[schema(value_type = String, max_length = 2048, pattern = "^https?://([A-Za-z0-9]+(-[A-Za-z0-9]+)*\\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(:[0-9]{1,4})?([/?#]\\S*)?$")]
    pub url: HttpUrl,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Season {
    #[schema(value_type = String, example = "show/thetaste/season/1", max_length = 400,
             pattern = "^show/[a-z0-9][a-z0-9-]{0,194}(/season/[0-9]+)?$")]
    pub slug: SeasonSlug,
}

impl Show {
    /// True when the show belongs in the catalogue: DRM on and at least one episode.
    pub fn is_eligible(&self) -> bool {
        self.drm == Some(true) && self.episode_count.unwrap_or(0) > 0
    }

    /// The catalogue's `image` value: the show image URL, or `""`.
    pub fn list_image(&self) -> &str {
        self.image.as_ref().map_or("", |i| i.show_image.as_str())
    }

    /// Parses one feed item at `path`, adding every problem found to `problems`.
    /// Returns a show only when the item had no problem.
    pub fn from_json(value: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<Show> {
        let Some(obj) = value.as_object() else {
            problems.push(Problem::new(
                path,
                format!("must be an object, not {}", kind(value)),
            ));
            return None;
        };
        let before = problems.len();
        let mut p = Parser {
            obj,
            path,
            problems,
        };
        let slug = p.required("slug", Slug::parse);
        let title = p.required("title", Title::parse);
        let show = Show {
            country: p.optional("country", Text::parse),
            genre: p.optional("genre", Text::parse),
            language: p.optional("language", Text::parse),
            tv_channel: p.optional("tvChannel", Text::parse),
            description: p.optional("description", Text::parse),
            primary_colour: p.optional("primaryColour", HexColour::parse),
            drm: p.optional_bool("drm"),
            episode_count: p.optional_count("episodeCount"),
            image: p.object("image").and_then(|(obj, path)| {
                Parser::new(obj, &path, p.problems)
                    .required("showImage", HttpUrl::parse)
                    .map(|show_image| Image { show_image })
            }),
            next_episode: p.object("nextEpisode").and_then(|(obj, path)| {
                let mut n = Parser::new(obj, &path, p.problems);
                let channel = n.optional("channel", Text::parse);
                let channel_logo = n.required("channelLogo", Text::parse);
                let date = n.optional("date", Text::parse);
                let html = n.required("html", Text::parse);
                let url = n.required("url", HttpUrl::parse);
                Some(NextEpisode {
                    channel,
                    channel_logo: channel_logo?,
                    date,
                    html: html?,
                    url: url?,
                })
            }),
            seasons: p.seasons(),
            slug: slug?,
            title: title?,
        };
        (problems.len() == before).then_some(show)
    }
}

/// A whole number from 0 to `max`. `52.0` counts: JSON (and JSON Schema's `integer`)
/// does not tell `52.0` from `52`, and some encoders write every number as a float.
pub(crate) fn whole_number(v: &Value, max: u64) -> Option<u64> {
    let n = match v.as_u64() {
        Some(n) => n,
        None => {
            let f = v.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0)?;
            // `as` saturates: anything past u64::MAX becomes u64::MAX, then fails below.
            f as u64
        }
    };
    (n <= max).then_some(n)
}

/// Short name of a JSON value's type, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads the fields of one JSON object, recording problems under `path`.
struct Parser<'a, 'p> {
    obj: &'a Map<String, Value>,
    path: &'a str,
    problems: &'p mut Vec<Problem>,
}

impl<'a, 'p> Parser<'a, 'p> {
    fn new(obj: &'a Map<String, Value>, path: &'a str, problems: &'p mut Vec<Problem>) -> Self {
        Parser {
            obj,
            path,
            problems,
        }
    }

    fn at(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    /// The field's value; absent and `null` are the same (the Go service wrote NULLs).
    fn value(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, name: &str) -> Option<&'a str> {
        match self.value(name)? {
            Value::String(s) => Some(s),
            other => {
                let msg = format!("must be a string, not {}", kind(other));
                self.problems.push(Problem::new(self.at(name), msg));
                None
            }
        }
    }

    fn optional<T>(
        &mut self,
        name: &str,
        parse: impl Fn(String) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(name)?;
        match parse(s.to_owned()) {
            Ok(v) => Some(v),
            Err(rule) => {
                self.problems.push(Problem::new(self.at(name), rule));
                None
            }
        }
    }

    fn required<T>(
        &mut self,
        name: &str,
        parse: impl Fn(String) -> Result<T, String>,
    ) -> Option<T> {
        if self.value(name).is_none() {
            self.problems
                .push(Problem::new(self.at(name), "is required"));
            return None;
        }
        self.optional(name, parse)
    }

    fn optional_bool(&mut self, name: &str) -> Option<bool> {
        match self.value(name)? {
            Value::Bool(b) => Some(*b),
            other => {
                let msg = format!("must be a boolean, not {}", kind(other));
                self.problems.push(Problem::new(self.at(name), msg));
                None
            }
        }
    }

    fn optional_count(&mut self, name: &str) -> Option<u32> {
        let v = self.value(name)?;
        match whole_number(v, u64::from(u32::MAX)).and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                let msg = format!("must be a whole number from 0 to {}", u32::MAX);
                self.problems.push(Problem::new(self.at(name), msg));
                None
            }
        }
    }

    fn object(&mut self, name: &str) -> Option<(&'a Map<String, Value>, String)> {
        match self.value(name)? {
            Value::Object(o) => Some((o, self.at(name))),
            other => {
                let msg = format!("must be an object, not {}", kind(other));
                self.problems.push(Problem::new(self.at(name), msg));
                None
            }
        }
    }

    fn seasons(&mut self) -> Option<Vec<Season>> {
        let items = match self.value("seasons")? {
            Value::Array(items) => items,
            other => {
                let msg = format!("must be an array, not {}", kind(other));
                self.problems.push(Problem::new(self.at("seasons"), msg));
                return None;
            }
        };
        if items.len() > MAX_SEASONS {
            let msg = format!(
                "must hold at most {MAX_SEASONS} seasons, not {}",
                items.len()
            );
            self.problems.push(Problem::new(self.at("seasons"), msg));
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}.seasons[{i}]", self.path);
            match item {
                Value::Object(o) => {
                    if let Some(slug) =
                        Parser::new(o, &path, self.problems).required("slug", SeasonSlug::parse)
                    {
                        out.push(Season { slug });
                    }
                }
                other => self.problems.push(Problem::new(
                    path,
                    format!("must be an object, not {}", kind(other)),
                )),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> Value {
        json!({
            "slug": "show/thetaste",
            "title": "The Taste — Épisode",
            "country": "UK", "genre": "Reality", "language": "English", "tvChannel": "GEM",
            "description": "lorem", "primaryColour": "#df0000",
            "drm": true, "episodeCount": 4,
            "image": {"showImage": "http://img.example.com/a.jpg"},
            "nextEpisode": {"channel": null, "channelLogo": "http://img.example.com/logo.gif",
                             "date": null, "html": "<br>", "url": "http://www.example.com/a"},
            "seasons": [{"slug": "show/thetaste/season/1"}],
            "someFutureField": {"x": 1}
        })
    }

    fn parse(v: &Value) -> Result<Show, Vec<Problem>> {
        let mut problems = Vec::new();
        Show::from_json(v, "payload[0]", &mut problems).ok_or(problems)
    }

    #[test]
    fn a_full_item_parses_and_round_trips_without_unknown_fields() {
        let show = parse(&full()).unwrap();
        assert!(show.is_eligible());
        assert_eq!(show.list_image(), "http://img.example.com/a.jpg");
        let stored = serde_json::to_value(&show).unwrap();
        assert!(stored.get("someFutureField").is_none());
        let back: Show = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(back, show);
        assert_eq!(parse(&stored).unwrap(), show);
    }

    #[test]
    fn a_minimal_item_parses_and_nulls_mean_absent() {
        let show = parse(
            &json!({"slug": "show/a", "title": "A", "image": null, "drm": null,
                                 "nextEpisode": null, "episodeCount": null}),
        )
        .unwrap();
        assert!(!show.is_eligible());
        assert_eq!(show.list_image(), "");
        assert_eq!(
            serde_json::to_value(&show).unwrap(),
            json!({"slug": "show/a", "title": "A"})
        );
    }

    #[test]
    fn eligibility_needs_drm_true_and_episodes() {
        let cases = [
            (json!(true), json!(1), true),
            (json!(true), json!(0), false),
            (json!(false), json!(5), false),
            (Value::Null, json!(5), false),
            (json!(true), Value::Null, false),
        ];
        for (drm, count, want) in cases {
            let show =
                parse(&json!({"slug": "show/a", "title": "A", "drm": drm, "episodeCount": count}))
                    .unwrap();
            assert_eq!(show.is_eligible(), want, "drm={drm} episodeCount={count}");
        }
    }

    #[test]
    fn every_rule_reports_its_path() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("slug", json!("nope"), "payload[0].slug"),
            ("slug", json!(7), "payload[0].slug"),
            ("title", json!("  "), "payload[0].title"),
            ("title", json!("x".repeat(121)), "payload[0].title"),
            ("country", json!("x".repeat(51)), "payload[0].country"),
            ("genre", json!("x".repeat(51)), "payload[0].genre"),
            ("language", json!("x".repeat(51)), "payload[0].language"),
            ("tvChannel", json!("x".repeat(51)), "payload[0].tvChannel"),
            (
                "description",
                json!("x".repeat(501)),
                "payload[0].description",
            ),
            ("primaryColour", json!("red"), "payload[0].primaryColour"),
            ("drm", json!("yes"), "payload[0].drm"),
            ("episodeCount", json!(-1), "payload[0].episodeCount"),
            ("episodeCount", json!(2.5), "payload[0].episodeCount"),
            ("episodeCount", json!("3"), "payload[0].episodeCount"),
            ("image", json!({}), "payload[0].image.showImage"),
            (
                "image",
                json!({"showImage": "ftp://x/y"}),
                "payload[0].image.showImage",
            ),
            ("image", json!("http://x/y"), "payload[0].image"),
            (
                "nextEpisode",
                json!({"html": "", "url": "http://a/b"}),
                "payload[0].nextEpisode.channelLogo",
            ),
            (
                "nextEpisode",
                json!({"channelLogo": "x", "url": "http://a/b"}),
                "payload[0].nextEpisode.html",
            ),
            (
                "nextEpisode",
                json!({"channelLogo": "x", "html": "", "url": "nope"}),
                "payload[0].nextEpisode.url",
            ),
            (
                "seasons",
                json!([{"slug": "show/a/season/x"}]),
                "payload[0].seasons[0].slug",
            ),
            (
                "seasons",
                json!([{"slug": "show/a"}, 3]),
                "payload[0].seasons[1]",
            ),
            ("seasons", json!({}), "payload[0].seasons"),
            (
                "seasons",
                Value::Array(vec![json!({"slug": "show/a"}); MAX_SEASONS + 1]),
                "payload[0].seasons",
            ),
        ];
        for (field, value, path) in cases {
            let mut item = full();
            item[field] = value.clone();
            let problems = parse(&item).expect_err(&format!("{field}={value}"));
            assert_eq!(problems.len(), 1, "{field}={value}: {problems:?}");
            assert_eq!(problems[0].path, path, "{field}={value}");
        }
    }

    #[test]
    fn all_problems_of_an_item_are_listed() {
        let problems = parse(&json!({"slug": 1, "drm": "x"})).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["payload[0].slug", "payload[0].title", "payload[0].drm"]
        );
        let problems = parse(&json!([])).unwrap_err();
        assert_eq!(problems[0].path, "payload[0]");
    }
}
