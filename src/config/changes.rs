//! How long the change log keeps what each write changed: the window in which a client's
//! `GET /v1/shows/changes` cursor stays valid (older ones get `410 Gone`).

use super::reader::Reader;
use super::{ConfigError, SettingDoc};
use std::time::Duration;

pub const RETENTION_HOURS: SettingDoc = SettingDoc {
    key: "changes.retentionhours",
    env: "APP__CHANGES__RETENTIONHOURS",
    default: "168",
    doc: "How long the change log keeps each write's shows (1 to 8760 hours): a `GET /v1/shows/changes` cursor older than that gets 410 Gone and the client lists again. Costs one small log item per write for that long (docs/dynamodb.md, cost model).",
};

#[derive(Debug, Clone)]
pub struct ChangesSettings {
    /// How long a change-log entry is kept and honoured.
    pub retention: Duration,
}

impl Default for ChangesSettings {
    fn default() -> ChangesSettings {
        ChangesSettings {
            retention: Duration::from_secs(168 * 3600),
        }
    }
}

pub(super) fn read(r: &Reader) -> Result<ChangesSettings, ConfigError> {
    Ok(ChangesSettings {
        retention: Duration::from_secs(r.bounded(&RETENTION_HOURS, 168, 1, 8760)? * 3600),
    })
}
