//! How the cached catalogue follows the store: its TTL, the safety-net re-read, and how
//! long it is served while the store cannot be checked.

use super::reader::Reader;
use super::{ConfigError, SettingDoc};
use std::time::Duration;

pub const TTL_MS: SettingDoc = SettingDoc {
    key: "cache.ttlms",
    env: "APP__CACHE__TTLMS",
    default: "1000",
    doc: "Longest age of the cached catalogue before the store's change record is checked again (one small read); writes through this instance invalidate it at once. `0`: no cache.",
};
pub const SAFETY_NET_SECONDS: SettingDoc = SettingDoc {
    key: "cache.safetynetseconds",
    env: "APP__CACHE__SAFETYNETSECONDS",
    default: "300",
    doc: "Re-read the whole catalogue at least this often even when the change record says nothing changed (covers writers that do not bump it); `0`: never. Costs one full catalogue read per interval per task.",
};
pub const STALE_IF_ERROR_SECONDS: SettingDoc = SettingDoc {
    key: "cache.staleiferrorseconds",
    env: "APP__CACHE__STALEIFERRORSECONDS",
    default: "30",
    doc: "When the store cannot be checked, keep serving the last catalogue this long past its TTL, then answer 503 (at most 3600).",
};

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub ttl: Duration,
    /// A full re-read at least this often; `None`: only on changes.
    pub safety_net: Option<Duration>,
    /// How long past its TTL the last catalogue is served while the store fails.
    pub stale_if_error: Duration,
}

pub(super) fn read(r: &Reader) -> Result<CacheSettings, ConfigError> {
    Ok(CacheSettings {
        ttl: Duration::from_millis(r.bounded(&TTL_MS, 1000, 0, 3_600_000)?),
        safety_net: match r.bounded(&SAFETY_NET_SECONDS, 300, 0, 86_400)? {
            0 => None,
            s => Some(Duration::from_secs(s)),
        },
        stale_if_error: Duration::from_secs(r.bounded(&STALE_IF_ERROR_SECONDS, 30, 0, 3600)?),
    })
}
