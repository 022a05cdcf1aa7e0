//! Where raw values come from: the optional TOML file, then the environment in each of a
//! setting's spellings; and the variables that look like settings but name none.
//!
//! A setting `section.name` is read from, lowest precedence first:
//! - the file's `[section] name = …`;
//! - `APP_DYNAMODB_SHOWSTABLE` (the table name only): the seed documentation's spelling;
//! - `APP_SECTION__NAME`: what the Go service's config library actually read;
//! - `APP__SECTION__NAME`: the canonical spelling, [`SettingDoc::env`].

use super::reader::{Raw, RawValues};
use super::{APP_ENV, ConfigError, FILE, SETTINGS, SettingDoc, store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The seed documentation's spelling of [`store::SHOWS_TABLE`].
pub const SEED_TABLE_VARIABLE: &str = "APP_DYNAMODB_SHOWSTABLE";

/// The variables `doc` is read from, lowest precedence first (the canonical one last).
fn spellings(doc: &SettingDoc) -> Vec<String> {
    let mut names = Vec::with_capacity(3);
    if doc.key == store::SHOWS_TABLE.key {
        names.push(SEED_TABLE_VARIABLE.to_string());
    }
    names.push(doc.env.replacen("APP__", "APP_", 1));
    names.push(doc.env.to_string());
    names
}

/// The file to read: `file` when given, else the one [`FILE`]'s variable names (its
/// canonical spelling only).
pub(super) fn file_path(file: Option<&Path>, env: &HashMap<String, String>) -> Option<PathBuf> {
    match file {
        Some(p) => Some(p.to_path_buf()),
        None => env.get(FILE.env).map(PathBuf::from),
    }
}

/// Reads the TOML file at `path` into `raw`; an unknown key stops start-up.
pub(super) fn load_file(path: &Path, raw: &mut RawValues) -> Result<(), ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source_name: FILE.env.into(),
        value: shown.clone(),
        message: format!("cannot read the file: {e}"),
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError {
        source_name: FILE.env.into(),
        value: shown.clone(),
        message: format!("not valid TOML: {}", e.message()),
    })?;
    for (section, inner) in &table {
        let Some(inner) = inner.as_table() else {
            return Err(ConfigError {
                source_name: format!("{shown}: {section}"),
                value: inner.to_string(),
                message: "expected a [section] table".into(),
            });
        };
        for (name, value) in inner {
            let key = format!(
                "{}.{}",
                section.to_ascii_lowercase(),
                name.to_ascii_lowercase()
            );
            let Some(doc) = SETTINGS.iter().find(|s| s.key == key) else {
                return Err(ConfigError {
                    source_name: format!("{shown}: {key}"),
                    value: value.to_string(),
                    message: "unknown setting".into(),
                });
            };
            let value = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            raw.insert(
                doc.key,
                Raw {
                    value,
                    source: format!("{shown}: {key}"),
                },
            );
        }
    }
    Ok(())
}

/// Applies the environment over `raw`: lowest precedence spelling first, canonical last.
pub(super) fn overlay_env(env: &HashMap<String, String>, raw: &mut RawValues) {
    for doc in SETTINGS {
        for name in spellings(doc) {
            if let Some(value) = env.get(&name) {
                raw.insert(
                    doc.key,
                    Raw {
                        value: value.clone(),
                        source: name,
                    },
                );
            }
        }
    }
}

/// An `APP__…` variable (or the Go spelling `APP_<SECTION>__…`) that names no setting,
/// with the known variable nearest to it; see [`unknown_variables`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariable {
    pub name: String,
    pub nearest: &'static str,
}

impl std::fmt::Display for UnknownVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not a setting and is ignored; did you mean {}?",
            self.name, self.nearest
        )
    }
}

/// The variables of `env` that look like settings but name none, each with the nearest
/// known variable (by edit distance), sorted by name. A TOML file's unknown key stops
/// start-up; an unknown variable only warns, in every environment: the environment also
/// carries variables meant for others (the Go service's task definition, wrappers), and a
/// refusal in `prod` alone would surface a typo first where it costs most, after `dev`
/// and `test` had accepted it.
pub fn unknown_variables<'a>(
    env: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<UnknownVariable> {
    let known = |name: &str| {
        name == APP_ENV
            || SETTINGS
                .iter()
                .any(|d| spellings(d).iter().any(|s| s == name))
    };
    let looks_like_a_setting = |name: &str| {
        name.starts_with("APP__")
            || name
                .strip_prefix("APP_")
                .is_some_and(|rest| rest.contains("__"))
    };
    let mut unknown: Vec<UnknownVariable> = env
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| looks_like_a_setting(name) && !known(name))
        .map(|name| {
            // Compared in the canonical spelling, so a Go-spelt typo finds its setting.
            let canonical = match name.strip_prefix("APP__") {
                Some(_) => name.clone(),
                None => name.replacen("APP_", "APP__", 1),
            };
            let nearest = super::ENV_VARS
                .iter()
                .min_by_key(|known| strsim::levenshtein(known, &canonical))
                .copied()
                .unwrap_or(APP_ENV);
            UnknownVariable {
                name: name.clone(),
                nearest,
            }
        })
        .collect();
    unknown.sort_by(|a, b| a.name.cmp(&b.name));
    unknown
}

#[cfg(test)]
mod tests {
    use super::super::tests::load;
    use super::super::{ENV_VARS, SETTINGS, Settings};
    use super::*;

    #[test]
    fn every_spelling_of_the_table_name_is_read_and_the_canonical_one_wins() {
        let seed = load(&[("APP_DYNAMODB_SHOWSTABLE", "a")]).unwrap();
        assert_eq!(seed.dynamodb.table, "a");
        let go = load(&[("APP_DYNAMODB__SHOWSTABLE", "b")]).unwrap();
        assert_eq!(go.dynamodb.table, "b");
        let all = load(&[
            ("APP_DYNAMODB_SHOWSTABLE", "a"),
            ("APP_DYNAMODB__SHOWSTABLE", "b"),
            ("APP__DYNAMODB__SHOWSTABLE", "c"),
        ])
        .unwrap();
        assert_eq!(all.dynamodb.table, "c");
    }

    #[test]
    fn the_file_is_read_and_the_environment_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("show.toml");
        std::fs::write(
            &path,
            "[server]\nport = 9000\nhost = \"0.0.0.0\"\n[cors]\nallowedorigins = [\"https://a.example\"]\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path), [("APP__SERVER__PORT".into(), "9001".into())]).unwrap();
        assert_eq!(s.server.port, 9001);
        assert_eq!(s.server.host.to_string(), "0.0.0.0");
        assert_eq!(s.cors.allowed_origins, vec!["https://a.example"]);

        std::fs::write(&path, "[server]\nprot = 1\n").unwrap();
        let err = Settings::load(Some(&path), []).unwrap_err();
        assert!(err.to_string().contains("server.prot"), "{err}");
    }

    #[test]
    fn an_unknown_variable_is_named_with_the_nearest_known_one() {
        let env: HashMap<String, String> = [
            ("APP__SERVER__PORTT", "9000"),
            ("APP_SERVER__PROT", "9000"),
            ("APP__DYNAMODB__SHOWTABLE", "t"),
            // Known, in every spelling: no warning.
            ("APP__SERVER__PORT", "1"),
            ("APP_SERVER__HOST", "0.0.0.0"),
            ("APP_DYNAMODB_SHOWSTABLE", "t"),
            ("APP_ENV", "local"),
            // Not ours.
            ("APP_NAME", "x"),
            ("HOME", "/"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let unknown = unknown_variables(&env);
        let got: Vec<(&str, &str)> = unknown
            .iter()
            .map(|u| (u.name.as_str(), u.nearest))
            .collect();
        assert_eq!(
            got,
            [
                ("APP_SERVER__PROT", "APP__SERVER__PORT"),
                ("APP__DYNAMODB__SHOWTABLE", "APP__DYNAMODB__SHOWSTABLE"),
                ("APP__SERVER__PORTT", "APP__SERVER__PORT"),
            ]
        );
        assert_eq!(
            unknown[2].to_string(),
            "APP__SERVER__PORTT is not a setting and is ignored; did you mean APP__SERVER__PORT?"
        );
    }

    #[test]
    fn env_vars_lists_every_documented_setting() {
        for doc in SETTINGS {
            assert!(ENV_VARS.contains(&doc.env));
            assert_eq!(
                doc.env,
                format!("APP__{}", doc.key.replace('.', "__").to_uppercase())
            );
        }
    }
}
