//! The log: line format and tracing filter.

use super::reader::{Reader, bad};
use super::{ConfigError, SettingDoc};

pub const FORMAT: SettingDoc = SettingDoc {
    key: "log.format",
    env: "APP__LOG__FORMAT",
    default: "auto",
    doc: "`json`, `text`, or `auto` (text on a terminal, JSON otherwise).",
};
pub const LEVEL: SettingDoc = SettingDoc {
    key: "log.level",
    env: "APP__LOG__LEVEL",
    default: "info",
    doc: "tracing filter, e.g. `info`, or `info,request=debug` to log successful reads too (see Operations).",
};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
    /// Text when stdout is a terminal, JSON otherwise (containers).
    Auto,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

pub(super) fn read(r: &Reader) -> Result<LogSettings, ConfigError> {
    let log = LogSettings {
        format: r.choice(
            &FORMAT,
            LogFormat::Auto,
            &[
                ("json", LogFormat::Json),
                ("text", LogFormat::Text),
                ("auto", LogFormat::Auto),
            ],
        )?,
        level: r.string(&LEVEL).unwrap_or_else(|| "info".into()),
    };
    if let Some(set) = r.get(&LEVEL)
        && tracing_subscriber::EnvFilter::try_new(set.value.trim()).is_err()
    {
        return Err(bad(
            set,
            "a tracing filter such as info or show_service=debug",
        ));
    }
    Ok(log)
}
