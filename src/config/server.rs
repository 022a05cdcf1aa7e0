//! The API listener: address, request limits and timeouts, connection limits, shutdown.

use super::reader::Reader;
use super::{ConfigError, SettingDoc};
use std::net::IpAddr;
use std::time::Duration;

/// The port the service listens on unless `APP__SERVER__PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8080;

pub const HOST: SettingDoc = SettingDoc {
    key: "server.host",
    env: "APP__SERVER__HOST",
    default: "127.0.0.1 (local) / 0.0.0.0",
    doc: "Address to listen on.",
};
pub const PORT: SettingDoc = SettingDoc {
    key: "server.port",
    env: "APP__SERVER__PORT",
    default: "8080",
    doc: "Port to listen on.",
};
pub const REQUEST_TIMEOUT_MS: SettingDoc = SettingDoc {
    key: "server.requesttimeoutms",
    env: "APP__SERVER__REQUESTTIMEOUTMS",
    default: "10000",
    doc: "Whole-request timeout; a request running longer gets 503.",
};
pub const DRAIN_SECONDS: SettingDoc = SettingDoc {
    key: "server.drainseconds",
    env: "APP__SERVER__DRAINSECONDS",
    default: "0 (local) / 5",
    doc: "On SIGTERM: seconds to report not-ready before the listener closes (lets the ALB deregister).",
};
pub const SHUTDOWN_TIMEOUT_SECONDS: SettingDoc = SettingDoc {
    key: "server.shutdowntimeoutseconds",
    env: "APP__SERVER__SHUTDOWNTIMEOUTSECONDS",
    default: "20",
    doc: "On SIGTERM: longest wait for in-flight requests after the listener closes.",
};
pub const BODY_LIMIT_BYTES: SettingDoc = SettingDoc {
    key: "server.bodylimitbytes",
    env: "APP__SERVER__BODYLIMITBYTES",
    default: "4194304",
    doc: "Largest accepted request body (413 above).",
};
pub const MAX_CONCURRENCY: SettingDoc = SettingDoc {
    key: "server.maxconcurrency",
    env: "APP__SERVER__MAXCONCURRENCY",
    default: "512",
    doc: "Requests served at once; more are shed with 503 instead of queueing.",
};
pub const HEADER_READ_TIMEOUT_MS: SettingDoc = SettingDoc {
    key: "server.headerreadtimeoutms",
    env: "APP__SERVER__HEADERREADTIMEOUTMS",
    default: "5000",
    doc: "Longest time from a request's first byte to the end of its headers; slower connections are closed.",
};
pub const IDLE_TIMEOUT_SECONDS: SettingDoc = SettingDoc {
    key: "server.idletimeoutseconds",
    env: "APP__SERVER__IDLETIMEOUTSECONDS",
    default: "75",
    doc: "Longest a connection may wait for its next request (keep the load balancer's idle timeout below it).",
};
pub const MAX_CONNECTIONS: SettingDoc = SettingDoc {
    key: "server.maxconnections",
    env: "APP__SERVER__MAXCONNECTIONS",
    default: "1024",
    doc: "Open connections at most; past it new ones wait in the listen backlog.",
};

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub host: IpAddr,
    pub port: u16,
    pub request_timeout: Duration,
    pub drain: Duration,
    pub shutdown_timeout: Duration,
    pub body_limit: usize,
    pub max_concurrency: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

pub(super) fn read(r: &Reader) -> Result<ServerSettings, ConfigError> {
    let local = r.local();
    let default_host: IpAddr = if local {
        [127, 0, 0, 1].into()
    } else {
        [0, 0, 0, 0].into()
    };
    let ms = |key: &SettingDoc, default, min, max| {
        r.bounded(key, default, min, max).map(Duration::from_millis)
    };
    let secs = |key: &SettingDoc, default, min, max| {
        r.bounded(key, default, min, max).map(Duration::from_secs)
    };
    Ok(ServerSettings {
        host: r.parse(&HOST, default_host, "an IP address")?,
        port: {
            let p = r.bounded(&PORT, DEFAULT_PORT.into(), 0, 65535)?;
            u16::try_from(p).unwrap_or(DEFAULT_PORT)
        },
        request_timeout: ms(&REQUEST_TIMEOUT_MS, 10_000, 1, 600_000)?,
        drain: secs(&DRAIN_SECONDS, if local { 0 } else { 5 }, 0, 60)?,
        shutdown_timeout: secs(&SHUTDOWN_TIMEOUT_SECONDS, 20, 1, 110)?,
        body_limit: r.bounded(&BODY_LIMIT_BYTES, 4 * 1024 * 1024, 1024, 64 << 20)? as usize,
        max_concurrency: r.bounded(&MAX_CONCURRENCY, 512, 1, 100_000)? as usize,
        header_read_timeout: ms(&HEADER_READ_TIMEOUT_MS, 5_000, 100, 600_000)?,
        idle_timeout: secs(&IDLE_TIMEOUT_SECONDS, 75, 1, 3_600)?,
        max_connections: r.bounded(&MAX_CONNECTIONS, 1024, 1, 1_000_000)? as usize,
    })
}
