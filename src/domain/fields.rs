//! The validated values a show is made of. Each type has a private inner value and a
//! fallible constructor, so a value that exists is valid. Lengths count characters.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was refused; shown to the client next to the field's path.
pub type Rule = String;

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Rule;
            fn try_from(s: String) -> Result<Self, Rule> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn is_handle(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The longest slug accepted: far below DynamoDB's 2048-byte partition key limit.
pub const MAX_SLUG_LEN: usize = 200;

string_newtype!(
    /// A show's key: `show/<handle>`, the handle `[a-z0-9][a-z0-9-]*`.
    Slug
);

impl Slug {
    pub fn parse(s: impl Into<String>) -> Result<Slug, Rule> {
        let s = s.into();
        let ok = s.len() <= MAX_SLUG_LEN && s.strip_prefix("show/").is_some_and(is_handle);
        if ok {
            Ok(Slug(s))
        } else {
            Err(format!(
                "must match ^show/[a-z0-9][a-z0-9-]*$ (at most {MAX_SLUG_LEN} characters)"
            ))
        }
    }
}

string_newtype!(
    /// A season's slug: `show/<handle>/season/<n>`, or a show slug.
    SeasonSlug
);

impl SeasonSlug {
    pub fn parse(s: impl Into<String>) -> Result<SeasonSlug, Rule> {
        let s = s.into();
        let season = s.split_once("/season/").is_some_and(|(show, n)| {
            Slug::parse(show).is_ok() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        });
        if s.len() <= 2 * MAX_SLUG_LEN && (season || Slug::parse(s.as_str()).is_ok()) {
            Ok(SeasonSlug(s))
        } else {
            Err("must be a season slug show/<handle>/season/<n> or a show slug".into())
        }
    }
}

/// The longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 120;

string_newtype!(
    /// A show's title: not blank, at most 120 characters; kept byte for byte.
    Title
);

impl Title {
    pub fn parse(s: impl Into<String>) -> Result<Title, Rule> {
        let s = s.into();
        if s.trim().is_empty() {
            Err("must not be blank".into())
        } else if s.chars().count() > MAX_TITLE_CHARS {
            Err(format!("must be at most {MAX_TITLE_CHARS} characters"))
        } else {
            Ok(Title(s))
        }
    }
}

/// Free text of at most `MAX` characters (country, genre, description, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    pub fn parse(s: impl Into<String>) -> Result<Self, Rule> {
        let s = s.into();
        if s.chars().count() > MAX {
            Err(format!("must be at most {MAX} characters"))
        } else {
            Ok(Text(s))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<String> for Text<MAX> {
    type Error = Rule;
    fn try_from(s: String) -> Result<Self, Rule> {
        Self::parse(s)
    }
}

impl<const MAX: usize> From<Text<MAX>> for String {
    fn from(v: Text<MAX>) -> String {
        v.0
    }
}

string_newtype!(
    /// A colour `#RRGGBB` (hex digits of either case, kept as given).
    HexColour
);

impl HexColour {
    pub fn parse(s: impl Into<String>) -> Result<HexColour, Rule> {
        let s = s.into();
        let ok =
            s.len() == 7 && s.starts_with('#') && s.bytes().skip(1).all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(HexColour(s))
        } else {
            Err("must be a colour #RRGGBB".into())
        }
    }
}

/// The longest URL accepted, in characters.
pub const MAX_URL_LEN: usize = 2048;

string_newtype!(
    /// An absolute http or https URL with a host, kept as given.
    HttpUrl
);

impl HttpUrl {
    pub fn parse(s: impl Into<String>) -> Result<HttpUrl, Rule> {
        let s = s.into();
        // Characters, not bytes, like every other length rule (and the OpenAPI maxLength).
        let ok = s.chars().count() <= MAX_URL_LEN
            && !s.chars().any(char::is_whitespace)
            && url::Url::parse(&s).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
            });
        if ok {
            Ok(HttpUrl(s))
        } else {
            Err(format!(
                "must be an http(s) URL (at most {MAX_URL_LEN} characters)"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        let good = [
            "show/a",
            "show/thetaste",
            "show/0-9",
            "show/a-b-c",
            "show/7days",
        ];
        for s in good {
            assert!(Slug::parse(s).is_ok(), "{s}");
        }
        let long = format!("show/{}", "a".repeat(MAX_SLUG_LEN));
        let bad = [
            "",
            "show/",
            "show/-a",
            "show/A",
            "Show/a",
            "shows/a",
            "show/a/b",
            "show/a b",
            "show/é",
            "/show/a",
            "show/a_b",
            " show/a",
            long.as_str(),
        ];
        for s in bad {
            assert!(Slug::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn season_slugs() {
        for s in ["show/a/season/1", "show/the-taste/season/12", "show/a"] {
            assert!(SeasonSlug::parse(s).is_ok(), "{s}");
        }
        for s in [
            "show/a/season/",
            "show/a/season/x",
            "season/1",
            "show/A/season/1",
            "x",
        ] {
            assert!(SeasonSlug::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn titles_count_characters_not_bytes() {
        assert!(Title::parse("é".repeat(MAX_TITLE_CHARS)).is_ok());
        assert!(Title::parse("é".repeat(MAX_TITLE_CHARS + 1)).is_err());
        for s in ["", " ", "\t\n"] {
            assert!(Title::parse(s).is_err(), "{s:?}");
        }
        let kept = Title::parse(" Show 0 — Épisode spécial ").unwrap();
        assert_eq!(kept.as_str(), " Show 0 — Épisode spécial ");
    }

    #[test]
    fn text_limits() {
        assert!(Text::<50>::parse("ü".repeat(50)).is_ok());
        assert!(Text::<50>::parse("ü".repeat(51)).is_err());
        assert!(Text::<500>::parse("").is_ok());
    }

    #[test]
    fn colours() {
        for s in ["#000000", "#FDA9AA", "#fda9aa"] {
            assert!(HexColour::parse(s).is_ok(), "{s}");
        }
        for s in ["000000", "#00000", "#0000000", "#gggggg", "#ééé", ""] {
            assert!(HexColour::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn urls() {
        for s in [
            "http://a.example/x.jpg",
            "https://img.example.com/shows/a.jpg?x=1",
        ] {
            assert!(HttpUrl::parse(s).is_ok(), "{s}");
        }
        let long = format!("http://a.example/{}", "a".repeat(MAX_URL_LEN));
        for s in [
            "ftp://a/x",
            "javascript:alert(1)",
            "http://",
            "/relative",
            "http://a b/",
            "",
            long.as_str(),
        ] {
            assert!(HttpUrl::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn serde_refuses_invalid_values() {
        assert!(serde_json::from_str::<Slug>("\"show/ok\"").is_ok());
        assert!(serde_json::from_str::<Slug>("\"nope\"").is_err());
        assert_eq!(
            serde_json::to_string(&Slug::parse("show/ok").unwrap()).unwrap(),
            "\"show/ok\""
        );
    }
}
