//! The domain: a `Show` and its parts, and the feed that carries shows in. Values are
//! parsed from untrusted JSON into types that can only hold valid data.

pub mod feed;
pub mod fields;
pub mod show;

pub use feed::{Feed, FeedError, MAX_FEED_ITEMS};
pub use fields::{HexColour, HttpUrl, SeasonSlug, Slug, Text, Title};
pub use show::{Image, NextEpisode, Problem, Season, Show};
