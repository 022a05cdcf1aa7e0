//! The domain: a `Show` and its parts, the feed that carries shows in, who owns a show
//! ([`owner`]), and the [`Scope`]s a client may hold over them. Values are parsed from untrusted JSON into
//! types that can only hold valid data. Nothing here imports another module of the crate.

pub mod feed;
pub mod fields;
pub mod owner;
pub mod scope;
pub mod show;

pub use feed::{Feed, FeedError, MAX_FEED_ITEMS};
pub use fields::{HexColour, HttpUrl, SeasonSlug, Slug, Text, Title};
pub use owner::{Actor, Partner, PartnerMap, Provenance, Timestamp};
pub use scope::Scope;
pub use show::{Image, NextEpisode, Problem, Season, Show};
