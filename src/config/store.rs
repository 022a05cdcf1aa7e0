//! Which store backs the API, and the DynamoDB table's name, index and write limits.
//!
//! The table and index names' defaults live here (the store reads them from here, for
//! `table create` and the infra tests), so the settings need nothing from the store.

use super::reader::Reader;
use super::{ConfigError, SettingDoc};
use std::path::PathBuf;
use std::time::Duration;

pub const KIND: SettingDoc = SettingDoc {
    key: "store.kind",
    env: "APP__STORE__KIND",
    default: "sqlite (local) / dynamodb",
    doc: "`sqlite` (embedded, file-backed) or `dynamodb`.",
};
pub const PATH: SettingDoc = SettingDoc {
    key: "store.path",
    env: "APP__STORE__PATH",
    default: "data/shows.db",
    doc: "SQLite file; its folder also holds the local issuer's signing key.",
};
pub const REGION: SettingDoc = SettingDoc {
    key: "dynamodb.region",
    env: "APP__DYNAMODB__REGION",
    default: "(SDK default chain)",
    doc: "AWS region of the table.",
};
pub const ENDPOINT_OVERRIDE: SettingDoc = SettingDoc {
    key: "dynamodb.endpointoverride",
    env: "APP__DYNAMODB__ENDPOINTOVERRIDE",
    default: "(none)",
    doc: "Endpoint URL for DynamoDB Local or an emulator.",
};
pub const SHOWS_TABLE: SettingDoc = SettingDoc {
    key: "dynamodb.showstable",
    env: "APP__DYNAMODB__SHOWSTABLE",
    default: "shows-{env}",
    doc: "Table name (also read as `APP_DYNAMODB_SHOWSTABLE`).",
};
pub const SHOWS_GSI: SettingDoc = SettingDoc {
    key: "dynamodb.showsgsi",
    env: "APP__DYNAMODB__SHOWSGSI",
    default: "gsi_drm_episode",
    doc: "Name of the GSI on (drmKey, episodeCount).",
};
pub const WRITE_CONCURRENCY: SettingDoc = SettingDoc {
    key: "dynamodb.writeconcurrency",
    env: "APP__DYNAMODB__WRITECONCURRENCY",
    default: "4",
    doc: "TransactWriteItems calls in flight at once for one feed.",
};
pub const WRITE_DEADLINE_MS: SettingDoc = SettingDoc {
    key: "dynamodb.writedeadlinems",
    env: "APP__DYNAMODB__WRITEDEADLINEMS",
    default: "8000",
    doc: "Longest time spent retrying UnprocessedItems for one feed.",
};
pub const CALL_TIMEOUT_MS: SettingDoc = SettingDoc {
    key: "dynamodb.calltimeoutms",
    env: "APP__DYNAMODB__CALLTIMEOUTMS",
    default: "3000",
    doc: "Timeout of each DynamoDB call (attempts included).",
};

/// The catalogue index's name, shared with the Go service (docs/dynamodb.md).
pub const GSI_NAME: &str = "gsi_drm_episode";

/// The table of an environment: `shows-{env}`.
pub fn table_name(env: &str) -> String {
    format!("shows-{env}")
}

/// Which store implementation backs the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Dynamodb,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub kind: StoreKind,
    pub path: PathBuf,
}

impl StoreSettings {
    /// The folder that holds the SQLite file and the local issuer's key.
    pub fn data_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DynamoSettings {
    pub region: Option<String>,
    pub endpoint_override: Option<String>,
    pub table: String,
    pub gsi: String,
    pub write_concurrency: usize,
    pub write_deadline: Duration,
    pub call_timeout: Duration,
}

pub(super) fn read_store(r: &Reader) -> Result<StoreSettings, ConfigError> {
    let default_kind = if r.local() {
        StoreKind::Sqlite
    } else {
        StoreKind::Dynamodb
    };
    Ok(StoreSettings {
        kind: r.choice(
            &KIND,
            default_kind,
            &[
                ("sqlite", StoreKind::Sqlite),
                ("dynamodb", StoreKind::Dynamodb),
            ],
        )?,
        path: r
            .string(&PATH)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("data/shows.db")),
    })
}

pub(super) fn read_dynamodb(r: &Reader) -> Result<DynamoSettings, ConfigError> {
    let ms = |key: &SettingDoc, default, min, max| {
        r.bounded(key, default, min, max).map(Duration::from_millis)
    };
    Ok(DynamoSettings {
        region: r.string(&REGION),
        endpoint_override: r.url(&ENDPOINT_OVERRIDE)?,
        table: r
            .string(&SHOWS_TABLE)
            .unwrap_or_else(|| table_name(r.env().as_str())),
        gsi: r.string(&SHOWS_GSI).unwrap_or_else(|| GSI_NAME.to_string()),
        write_concurrency: r.bounded(&WRITE_CONCURRENCY, 4, 1, 64)? as usize,
        write_deadline: ms(&WRITE_DEADLINE_MS, 8_000, 100, 600_000)?,
        call_timeout: ms(&CALL_TIMEOUT_MS, 3_000, 50, 60_000)?,
    })
}
