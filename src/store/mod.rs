//! Where shows live. [`ShowStore`] is the seam; [`sqlite`] is the embedded store and
//! [`dynamodb`] the production one. Both pass the same contract tests
//! (`tests/store_contract.rs`).
//!
//! Besides the shows, a store keeps the catalogue's change record: a counter that every
//! successful write through the store bumps (a feed, a partial feed, a delete, an
//! import), readable with one small call ([`ShowStore::change_record`]). Every task of
//! the service reads it instead of re-reading the catalogue to learn whether the
//! catalogue changed; the store owns it because every writer goes through the store.
//!
//! What the record promises: a write that stores anything is counted by the record
//! even when the process dies half-way through it. SQLite writes the shows, the bump
//! and the log entry in one transaction. DynamoDB cannot, so a write there is announced
//! before its first call (a bump, its shows logged, and [`ChangeRecord::Version`]'s
//! `unsettled_until` set to the write's deadline plus the index's lag) and bumped again
//! after it (`unsettled_until` then the lag alone): a reader that filled while the write
//! was landing re-reads those shows once `unsettled_until` has passed, whether or not the
//! writer lived to bump again.
//!
//! With each bump a store also logs which shows that write named (the change log,
//! [`ShowStore::changes_since`]), so a task that holds the catalogue at one version can
//! re-read just those shows instead of the whole index. The log is kept for a while, not
//! forever; when it cannot tell (trimmed, an entry missing, more shows than re-reading
//! everything would cost) the answer is [`Changes::Unknown`] and the task reads the index.
//! [`cursor`] is the paging position both stores and the cached catalogue share.
//!
//! The same log serves clients that follow the catalogue (`GET /v1/shows/changes`, see
//! the catalogue's `changes` module): [`ShowStore::log_entries`] returns the entries with
//! their versions, and [`ShowStore::catalogue_items`] the changed shows as they are now.
//! For that, every write logs all its slugs (never "too many"), each entry is kept at
//! least the retention (`APP__CHANGES__RETENTIONHOURS`, by age, not by count) and an
//! entry past it reads as missing even before it is deleted.
//!
//! Who may write a show is decided here too, in the same step as the write (one
//! transaction on SQLite, conditional writes on DynamoDB), so no race between two
//! partners hands a show to the wrong one: every write names its [`Actor`], and the rule
//! is [`Actor::may_change`]. A show is stored with its [`Provenance`] (owner, created,
//! updated, by whom), in attributes the Go service's reader and index query ignore.
//!
//! What each backend call costs (calls by outcome, durations, DynamoDB's capacity units,
//! items) is counted in [`usage`], through the `metrics` facade: the store owns it because
//! only it sees each call. Tests and benchmarks count store calls from those counters too;
//! the trait carries no counters of its own.

pub mod cursor;
pub mod dynamodb;
pub mod layout;
pub mod sqlite;
pub mod usage;

use crate::domain::{Actor, Partner, Provenance, Show, Slug};
use async_trait::async_trait;
use serde::Serialize;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

/// One catalogue entry, as `GET /v1/shows` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ListItem {
    /// `image.showImage`, or `""` when the show has none.
    pub image: String,
    pub slug: String,
    pub title: String,
    /// The show's `episodeCount`: with the slug, its place in the catalogue's order.
    #[serde(skip)]
    pub episode_count: u32,
}

/// Which part of the catalogue to read.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// At most this many items; `None`: everything (the store follows every page).
    pub limit: Option<NonZeroU32>,
    /// Where to continue, as returned in [`Page::next`].
    pub cursor: Option<String>,
}

/// A part of the catalogue, in the index's order (by `episodeCount`, then slug).
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<ListItem>,
    /// An opaque cursor when more items remain.
    pub next: Option<String>,
    /// Store calls made to read it.
    pub calls: u32,
    /// Read capacity units DynamoDB reported for them (0 on SQLite).
    pub read_units: f64,
}

/// A stored show with its owner and who changed it when.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredShow {
    pub show: Show,
    pub provenance: Provenance,
}

/// What an owner assignment did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The slugs now owned by the new owner (those it already owned included).
    pub assigned: Vec<String>,
    /// The slugs the store does not hold; nothing was done for them.
    pub unknown: Vec<String>,
}

/// What a store can fail with; the HTTP layer maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The cursor was not one this store issued (400).
    #[error("the cursor is not valid")]
    BadCursor,
    /// The store cannot answer now: down, throttled, timed out, locked (503 + Retry-After).
    #[error("store unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
    /// Some shows of a write were stored and some were not (503, naming the missing ones).
    #[error("{} of {} shows were not written: {reason}", .not_written.len(), .written + .not_written.len())]
    Partial {
        written: usize,
        not_written: Vec<String>,
        reason: String,
    },
    /// The actor may not change these shows (owned by another partner, or unowned and the
    /// actor not an admin): 403, one detail per slug, never naming the owner. `written`
    /// is 0 (nothing stored, the change record not bumped) unless another partner took a
    /// slug between the check and the write (DynamoDB's writes of a feed are not one
    /// transaction): then the shows stored before are counted.
    #[error("{} shows belong to another partner", .slugs.len())]
    Forbidden { slugs: Vec<String>, written: usize },
    /// Anything else (500); the text goes to the log only.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl StoreError {
    pub fn unavailable(reason: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            reason: reason.into(),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// The catalogue's change record, as read by [`ShowStore::change_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRecord {
    /// The counter (it differs from the last value read when the catalogue changed since),
    /// and until when the writes it counts may still be landing: a write in progress (its
    /// deadline), or DynamoDB's index still catching up after the last bump. `None`: every
    /// write it counts is visible to every read (SQLite: write and bump are one transaction).
    Version {
        version: u64,
        unsettled_until: Option<std::time::SystemTime>,
        /// The change log's id: a random number made once with the record (or the
        /// store), so a changes cursor from another table or store is told apart.
        /// `None`: a record written before the log had one (the next bump sets it).
        log: Option<u64>,
    },
    /// No record: nothing was written through this service yet (or it was removed).
    Missing,
    /// A record this service did not write: not a whole number, or of another type.
    Invalid,
}

/// What the change log says about the versions after a given one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// Every show those writes named (`slugs`), and of them the ones in the catalogue now
    /// (`items`: DRM, more than 0 episodes), read after the versions were.
    Shows {
        slugs: Vec<String>,
        items: Vec<ListItem>,
    },
    /// The log cannot tell: the catalogue must be read again.
    Unknown,
}

/// One change-log entry, as the change feed reads it ([`ShowStore::log_entries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub version: u64,
    /// Every show its write named, distinct and sorted.
    pub slugs: Vec<String>,
    /// A write's announcement (DynamoDB): its shows may still be landing until this time
    /// (plus the clock margin), unless a later entry [`closes`](LogEntry::closes) it.
    pub open_until: Option<std::time::SystemTime>,
    /// The version of the announcement whose write this entry's bump followed.
    pub closes: Option<u64>,
}

/// What the change log holds of a range of versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRead {
    /// Every version's entry, in order.
    Entries(Vec<LogEntry>),
    /// This version's entry is not held: trimmed, or never written (a writer died
    /// between its bump and its entry, a writer without a log), or not written yet.
    Gap { missing: u64 },
    /// This version's entry is past the retention (held or not): what changed then is
    /// no longer known.
    Expired { version: u64 },
}

/// The storage seam. Implementations must be safe to share across requests.
#[async_trait]
pub trait ShowStore: Send + Sync + 'static {
    /// A short name for logs and readiness (`sqlite`, `dynamodb`).
    fn kind(&self) -> &'static str;

    /// Succeeds when the store answers (readiness); does not write.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Inserts or replaces every show (slugs are distinct) for `actor`. Returns how many
    /// were written. A new slug becomes the actor's; an existing show keeps its owner and
    /// creation time. When the actor may not change one of them ([`Actor::may_change`]),
    /// nothing is written and the error is `Forbidden` naming every such slug. On other
    /// failures, either nothing was written or the error is `Partial` and says what was.
    async fn upsert(&self, shows: Vec<Show>, actor: &Actor) -> Result<usize, StoreError>;

    /// The catalogue: shows with `drm == true` and `episodeCount > 0`.
    async fn list_eligible(&self, page: PageRequest) -> Result<Page, StoreError>;

    /// One show by slug, with its provenance.
    async fn get(&self, slug: &Slug) -> Result<Option<StoredShow>, StoreError>;

    /// Removes one show for `actor`; `false` when it was not there; `Forbidden` (nothing
    /// removed, the record not bumped) when the actor may not change it.
    async fn delete(&self, slug: &Slug, actor: &Actor) -> Result<bool, StoreError>;

    /// Makes `owner` the owner of every stored show of `slugs` (distinct, at most 1000),
    /// keeping their content; `actor` (an admin) is recorded as their last writer. The
    /// change record is not bumped: the catalogue lists no owners.
    async fn assign_owner(
        &self,
        owner: &Partner,
        slugs: &[Slug],
        actor: &Actor,
    ) -> Result<Assignment, StoreError>;

    /// The change record (see the module doc): one small read. Every write that may
    /// store anything is counted by it before any of its shows can be read (in the same
    /// transaction, or announced before the write starts), and every successful write
    /// (whole or `Partial`) bumps it again before it returns, after its shows are stored;
    /// `unsettled_until` says until when the writes it counts may still be landing.
    async fn change_record(&self) -> Result<ChangeRecord, StoreError>;

    /// The shows that the writes of versions `since + 1 ..= upto` of the change record
    /// named, as the store holds them now; [`Changes::Unknown`] when the log does not
    /// hold all of those versions, or when they named more than `max_shows` shows. A
    /// store without a log always answers `Unknown`.
    async fn changes_since(
        &self,
        since: u64,
        upto: u64,
        max_shows: usize,
    ) -> Result<Changes, StoreError> {
        let _ = (since, upto, max_shows);
        Ok(Changes::Unknown)
    }

    /// The change log's entries of versions `since + 1 ..= upto` (at most
    /// [`MAX_LOG_READ`] of them), entries past the retention counting as missing. A store
    /// without a log has a gap at every version.
    async fn log_entries(&self, since: u64, upto: u64) -> Result<LogRead, StoreError> {
        let _ = upto;
        Ok(LogRead::Gap { missing: since + 1 })
    }

    /// Of `slugs` (distinct, at most 1000), the shows in the catalogue now, as it lists
    /// them, read as one consistent read (SQLite: one transaction; DynamoDB: strongly
    /// consistent `BatchGetItem`s).
    async fn catalogue_items(&self, slugs: &[String]) -> Result<Vec<ListItem>, StoreError>;
}

/// At most this many versions in one [`ShowStore::log_entries`] answer (DynamoDB: one
/// `BatchGetItem` of 100 keys).
pub const MAX_LOG_READ: u64 = 100;

/// A shared store handle.
pub type DynStore = Arc<dyn ShowStore>;

/// Opens the store the settings name.
pub async fn open(settings: &crate::config::Settings) -> anyhow::Result<DynStore> {
    match settings.store.kind {
        crate::config::StoreKind::Sqlite => Ok(Arc::new(
            sqlite::SqliteStore::open(&settings.store.path)?
                .with_retention(settings.changes.retention),
        )),
        crate::config::StoreKind::Dynamodb => Ok(Arc::new(
            dynamodb::DynamoStore::connect(&settings.dynamodb)
                .await?
                .with_retention(settings.changes.retention),
        )),
    }
}

/// Creates the DynamoDB table and its GSI when missing and waits until both are ACTIVE
/// (`show-service table create`); a no-op when they exist.
pub async fn create_table(settings: &crate::config::Settings) -> anyhow::Result<()> {
    let store = dynamodb::DynamoStore::connect(&settings.dynamodb).await?;
    let outcome = store.ensure_table(dynamodb::TABLE_WAIT).await?;
    let (table, index) = (&settings.dynamodb.table, &settings.dynamodb.gsi);
    let what = match outcome {
        dynamodb::table::Outcome::Created => format!("created table {table} with index {index}"),
        dynamodb::table::Outcome::IndexAdded => format!("added index {index} to table {table}"),
        dynamodb::table::Outcome::AlreadyPresent => {
            format!("table {table} and index {index} already exist")
        }
    };
    tracing::info!(table = %table, index = %index, ?outcome, "{what}; ACTIVE");
    Ok(())
}
