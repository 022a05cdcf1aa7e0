//! Turning the layered raw strings into typed values, naming the source of any bad one.
//!
//! Every read takes the setting's [`SettingDoc`] (a constant of its concern's file, the
//! same one [`super::SETTINGS`] lists), never a spelt-out key: a key the table does not
//! document cannot be read, and the reader notes each key it is asked for so a test can
//! show that every documented key is read.

use super::{AppEnv, ConfigError, SettingDoc};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

/// A raw value and where it came from (the variable, or `file: section.name`).
#[derive(Debug, Clone)]
pub(super) struct Raw {
    pub(super) value: String,
    pub(super) source: String,
}

/// The raw values by key, after every layer was applied.
pub(super) type RawValues = HashMap<&'static str, Raw>;

pub(super) struct Reader {
    raw: RawValues,
    env: AppEnv,
    /// The keys asked for, set or not.
    read: RefCell<BTreeSet<&'static str>>,
}

impl Reader {
    pub(super) fn new(raw: RawValues, env: AppEnv) -> Reader {
        Reader {
            raw,
            env,
            read: RefCell::default(),
        }
    }

    pub(super) fn env(&self) -> AppEnv {
        self.env
    }

    /// `APP_ENV=local`: the developer's machine, whose defaults differ.
    pub(super) fn local(&self) -> bool {
        self.env == AppEnv::Local
    }

    /// The keys asked for so far.
    #[cfg(test)]
    pub(super) fn keys_read(&self) -> BTreeSet<&'static str> {
        self.read.borrow().clone()
    }

    /// The value of `key` when set and not blank.
    pub(super) fn get(&self, key: &SettingDoc) -> Option<&Raw> {
        self.read.borrow_mut().insert(key.key);
        self.raw.get(key.key).filter(|r| !r.value.trim().is_empty())
    }

    pub(super) fn string(&self, key: &SettingDoc) -> Option<String> {
        self.get(key).map(|r| r.value.trim().to_string())
    }

    /// A list separated by commas or spaces; empty when unset.
    pub(super) fn list(&self, key: &SettingDoc) -> Vec<String> {
        self.get(key)
            .map(|r| {
                r.value
                    .split([',', ' '])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn parse<T>(
        &self,
        key: &SettingDoc,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
    {
        match self.get(key) {
            None => Ok(default),
            Some(r) => r.value.trim().parse().map_err(|_| bad(r, expected)),
        }
    }

    /// A whole number from `min` to `max`.
    pub(super) fn bounded(
        &self,
        key: &SettingDoc,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let expected = format!("a whole number from {min} to {max}");
        let v: u64 = self.parse(key, default, &expected)?;
        if v < min || v > max {
            let r = self
                .get(key)
                .expect("a value out of range was read from a source");
            return Err(bad(r, &expected));
        }
        Ok(v)
    }

    /// An http(s) URL with a host, without its trailing `/`.
    pub(super) fn url(&self, key: &SettingDoc) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(r) => {
                let v = r.value.trim();
                match url::Url::parse(v) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                        Ok(Some(v.trim_end_matches('/').to_string()))
                    }
                    _ => Err(bad(r, "an http(s) URL")),
                }
            }
        }
    }

    /// Like [`Reader::url`] but keeps the value exactly as given (an issuer is compared
    /// byte for byte with the token's `iss`, so a trailing `/` matters).
    pub(super) fn url_exact(&self, key: &SettingDoc) -> Result<Option<String>, ConfigError> {
        Ok(self
            .url(key)?
            .and(self.get(key))
            .map(|r| r.value.trim().to_string()))
    }

    /// One of `options`, by name, case-insensitively.
    pub(super) fn choice<T: Copy>(
        &self,
        key: &SettingDoc,
        default: T,
        options: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(r) => {
                let v = r.value.trim().to_ascii_lowercase();
                options
                    .iter()
                    .find(|(name, _)| *name == v)
                    .map(|(_, t)| *t)
                    .ok_or_else(|| {
                        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                        bad(r, &format!("one of {}", names.join(", ")))
                    })
            }
        }
    }
}

/// The error for `r`: its source, its value and what was expected instead.
pub(super) fn bad(r: &Raw, expected: &str) -> ConfigError {
    ConfigError {
        source_name: r.source.clone(),
        value: r.value.clone(),
        message: format!("expected {expected}"),
    }
}
