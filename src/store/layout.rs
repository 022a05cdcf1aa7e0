//! Names of the DynamoDB table layout shared with the Go service (docs/dynamodb.md), used by the
//! DynamoDB store, `table create`, the SQLite mirror of the index and the infra tests.

/// The table's hash key (S).
pub const TABLE_HASH_KEY: &str = "slug";
/// The catalogue index's name and the table of an environment (`shows-{env}`): the
/// settings' defaults, so they live with the settings.
pub use crate::config::store::{GSI_NAME, table_name};
/// The index's hash key (N): 1 for DRM shows; absent on the items we write otherwise.
pub const GSI_HASH_KEY: &str = "drmKey";
/// The index's range key (N).
pub const GSI_RANGE_KEY: &str = "episodeCount";

/// The key (`slug`) of the catalogue's change record. Outside the `show/…` key space (no
/// show can have it: slugs start with `show/`) and without `drmKey` or `episodeCount`, so
/// it is never in the index the Go service and the catalogue query read.
pub const CHANGE_RECORD_KEY: &str = "meta/catalogue-version";
/// The change record's counter attribute (N), bumped with `UpdateItem ADD`.
pub const CHANGE_RECORD_ATTRIBUTE: &str = "version";
/// Until when the writes the change record counts may still be landing (N, milliseconds
/// since the epoch): set by each bump, never moved earlier by a later one.
pub const CHANGE_RECORD_UNSETTLED: &str = "unsettledUntil";

/// The key prefix of the change log's entries: `meta/catalogue-change/{version}` holds
/// the slugs the write of that version named. Outside the `show/…` key space and without
/// the index's attributes, like the change record.
pub const CHANGE_LOG_PREFIX: &str = "meta/catalogue-change/";
/// A change-log entry's slugs (SS): every slug its write named, the first
/// [`CHANGE_LOG_MAX_SLUGS`] in the entry, the rest in parts `{entry key}/{i}` (i = 1 ..
/// `parts`). (Entries written before every write was logged whole may lack it: a gap.)
pub const CHANGE_LOG_SLUGS: &str = "slugs";
/// How many slugs an entry's write named (N). An entry without it comes from before
/// every write was logged whole and may have left its slugs out: it cannot say what
/// changed.
pub const CHANGE_LOG_COUNT: &str = "count";
/// How many items an entry's slugs fill (N), when more than one.
pub const CHANGE_LOG_PARTS: &str = "parts";
/// On a write's announcement entry: until when its shows may still be landing (N,
/// milliseconds since the epoch), unless a later entry closes it.
pub const CHANGE_LOG_OPEN_UNTIL: &str = "openUntil";
/// On the entry after a write: the version of its announcement (N).
pub const CHANGE_LOG_CLOSES: &str = "closes";
/// The change record's log id (N, random, set once with `if_not_exists`): a changes
/// cursor carries it so one from another table is told apart.
pub const CHANGE_RECORD_LOG_ID: &str = "logId";
/// The table's TTL attribute (N, epoch seconds): DynamoDB deletes an entry after it.
pub const CHANGE_LOG_EXPIRES: &str = "expiresAt";
/// At most this many slugs per entry item (200 characters each: about 200 KB, inside an
/// item's 400 KB; a feed's 1000 fit one item).
pub const CHANGE_LOG_MAX_SLUGS: usize = 1000;

/// A show's owner (S, a partner name), on the items this service writes: absent on an
/// unowned show (every item the Go service wrote). Like the three below, a name the Go
/// service's item struct does not have, so its reader ignores it, and no index key.
pub const SHOW_OWNER: &str = "owner";
/// When the show was first written by this service (N, milliseconds since the epoch).
pub const SHOW_CREATED_AT: &str = "createdAt";
/// When it was last written (N, milliseconds since the epoch).
pub const SHOW_UPDATED_AT: &str = "updatedAt";
/// The client id of its last write (S).
pub const SHOW_UPDATED_BY: &str = "updatedBy";
/// The provenance attributes together: what a show's reader leaves out of the show.
pub const SHOW_PROVENANCE: [&str; 4] = [
    SHOW_OWNER,
    SHOW_CREATED_AT,
    SHOW_UPDATED_AT,
    SHOW_UPDATED_BY,
];
