//! Names of the DynamoDB table layout shared with the Go service (docs/dynamodb.md), used by the
//! DynamoDB store, `table create`, the SQLite mirror of the index and the infra tests.

/// The table's hash key (S).
pub const TABLE_HASH_KEY: &str = "slug";
/// The catalogue index.
pub const GSI_NAME: &str = "gsi_drm_episode";
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

/// The table of an environment: `shows-{env}`.
pub fn table_name(env: &str) -> String {
    format!("shows-{env}")
}
