//! The metrics exporters: the Prometheus listener and the CloudWatch EMF interval.

use super::reader::Reader;
use super::{ConfigError, SettingDoc};
use std::net::IpAddr;
use std::time::Duration;

pub const HOST: SettingDoc = SettingDoc {
    key: "metrics.host",
    env: "APP__METRICS__HOST",
    default: "127.0.0.1",
    doc: "Address of the Prometheus metrics listener (it serves `GET /metrics` and nothing else).",
};
pub const PORT: SettingDoc = SettingDoc {
    key: "metrics.port",
    env: "APP__METRICS__PORT",
    default: "0 (local) / 9464",
    doc: "Port of the Prometheus metrics listener; `0` = no listener.",
};
pub const EMF_INTERVAL_SECONDS: SettingDoc = SettingDoc {
    key: "metrics.emfintervalseconds",
    env: "APP__METRICS__EMFINTERVALSECONDS",
    default: "0 (local) / 60",
    doc: "Seconds between CloudWatch EMF metric documents on stdout; `0` = none.",
};

#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub host: IpAddr,
    /// `0`: no Prometheus listener.
    pub port: u16,
    /// Zero: no EMF documents.
    pub emf_interval: Duration,
}

pub(super) fn read(r: &Reader) -> Result<MetricsSettings, ConfigError> {
    let local = r.local();
    Ok(MetricsSettings {
        host: r.parse(&HOST, [127, 0, 0, 1].into(), "an IP address")?,
        port: r.bounded(&PORT, if local { 0 } else { 9464 }, 0, 65535)? as u16,
        emf_interval: Duration::from_secs(r.bounded(
            &EMF_INTERVAL_SECONDS,
            if local { 0 } else { 60 },
            0,
            3600,
        )?),
    })
}
