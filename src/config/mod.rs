//! Typed settings, loaded in layers: built-in defaults < optional TOML file < environment.
//!
//! Every setting has a key `section.name`; its environment variable is
//! `APP__SECTION__NAME` (upper case). For compatibility with the Go service this replaces,
//! two more spellings are read for every key:
//! - `APP_SECTION__NAME` (single underscore after the prefix): what the Go service's config
//!   library actually read;
//! - `APP_DYNAMODB_SHOWSTABLE`: the seed documentation's spelling of the table name.
//!
//! When several spellings are set, the canonical `APP__…` one wins. `APP_ENV` selects the
//! environment (`local`, `dev`, `test`, `prod`) and with it the defaults of the other
//! settings. A value that does not parse stops start-up with one line naming the variable
//! (or the file key) and what was expected.
//!
//! Each setting is written once: a [`SettingDoc`] constant in the file of its concern
//! (`server`, `store`, `auth`, `log`, `metrics`, `web`, `cache`, `changes`) holds its key, variable,
//! default and meaning; [`SETTINGS`] (the README's table) lists those constants, and the
//! code reads a value only through its constant (`reader`), so a key cannot be misspelt
//! where it is read (a test checks that the keys read are exactly the documented ones).
//! `sources` layers the file and the environment's spellings and names unknown variables.
//!
//! Nothing here imports a module above `domain` (`tests/layers.rs` checks): the store's
//! table and index defaults live in [`store`], and the store reads them from here.

pub mod auth;
pub mod cache;
pub mod changes;
pub mod log;
pub mod metrics;
mod reader;
pub mod server;
mod sources;
pub mod store;
pub mod web;

pub use auth::{AuthMode, AuthSettings, LocalClient};
pub use cache::CacheSettings;
pub use changes::ChangesSettings;
pub use log::{LogFormat, LogSettings};
pub use metrics::MetricsSettings;
pub use server::{DEFAULT_PORT, ServerSettings};
pub use sources::{SEED_TABLE_VARIABLE, UnknownVariable, unknown_variables};
pub use store::{DynamoSettings, StoreKind, StoreSettings};
pub use web::{CorsSettings, DocsSettings};

use reader::Reader;
use std::collections::HashMap;
use std::path::Path;

/// One documented setting: its key, canonical variable, default and meaning.
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    /// `section.name`, also the TOML file key.
    pub key: &'static str,
    /// The canonical environment variable.
    pub env: &'static str,
    /// The default, as documentation (some depend on `APP_ENV`).
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// The variable that selects the environment, and with it the defaults.
pub const APP_ENV: &str = "APP_ENV";

/// The optional TOML file, read before the environment.
pub const FILE: SettingDoc = SettingDoc {
    key: "config.file",
    env: "APP__CONFIG__FILE",
    default: "(none)",
    doc: "Optional TOML file with the same keys (`[server] port = 8080`); the environment overrides it.",
};

/// Every setting the service reads, in documentation order.
pub const SETTINGS: &[SettingDoc] = &[
    FILE,
    server::HOST,
    server::PORT,
    server::REQUEST_TIMEOUT_MS,
    server::DRAIN_SECONDS,
    server::SHUTDOWN_TIMEOUT_SECONDS,
    server::BODY_LIMIT_BYTES,
    server::MAX_CONCURRENCY,
    server::HEADER_READ_TIMEOUT_MS,
    server::IDLE_TIMEOUT_SECONDS,
    server::MAX_CONNECTIONS,
    store::KIND,
    store::PATH,
    store::REGION,
    store::ENDPOINT_OVERRIDE,
    store::SHOWS_TABLE,
    store::SHOWS_GSI,
    store::WRITE_CONCURRENCY,
    store::WRITE_DEADLINE_MS,
    store::CALL_TIMEOUT_MS,
    auth::COGNITO_USER_POOL_ID,
    auth::COGNITO_REGION,
    auth::COGNITO_CLIENT_ID,
    auth::COGNITO_JWKS_URL,
    auth::COGNITO_VALID_SCOPES,
    auth::MODE,
    auth::ISSUER,
    auth::JWKS_URL,
    auth::AUDIENCE,
    auth::RESOURCE_SERVER,
    auth::LEEWAY_SECONDS,
    auth::PARTNERS,
    auth::CLIENTS,
    auth::PUBLIC_URL,
    auth::TOKEN_RATE_PER_SECOND,
    auth::TOKEN_BURST,
    log::FORMAT,
    log::LEVEL,
    metrics::HOST,
    metrics::PORT,
    metrics::EMF_INTERVAL_SECONDS,
    web::ALLOWED_ORIGINS,
    web::DOCS_ENABLED,
    cache::TTL_MS,
    cache::SAFETY_NET_SECONDS,
    cache::STALE_IF_ERROR_SECONDS,
    changes::RETENTION_HOURS,
];

/// Every canonical environment variable the service reads (besides the compatibility
/// spellings described in the module doc): `APP_ENV`, then [`SETTINGS`]' variables.
pub const ENV_VARS: &[&str] = &{
    let mut out = [APP_ENV; SETTINGS.len() + 1];
    let mut i = 0;
    while i < SETTINGS.len() {
        out[i + 1] = SETTINGS[i].env;
        i += 1;
    }
    out
};

/// Which deployment this is; it chooses defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Local,
    Dev,
    Test,
    Prod,
}

impl AppEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Local => "local",
            AppEnv::Dev => "dev",
            AppEnv::Test => "test",
            AppEnv::Prod => "prod",
        }
    }

    /// The environment `APP_ENV` names; unset or empty is `local`.
    fn from_env(env: &HashMap<String, String>) -> Result<AppEnv, ConfigError> {
        let Some(v) = env.get(APP_ENV).map(|s| s.trim().to_ascii_lowercase()) else {
            return Ok(AppEnv::Local);
        };
        match v.as_str() {
            "" | "local" => Ok(AppEnv::Local),
            "dev" => Ok(AppEnv::Dev),
            "test" => Ok(AppEnv::Test),
            "prod" => Ok(AppEnv::Prod),
            _ => Err(ConfigError {
                source_name: APP_ENV.into(),
                value: v,
                message: "expected one of local, dev, test, prod".into(),
            }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub env: AppEnv,
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub dynamodb: DynamoSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub cors: CorsSettings,
    pub cache: CacheSettings,
    pub changes: ChangesSettings,
    pub docs: DocsSettings,
}

/// A setting that could not be read; `Display` is the one line printed at start-up.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {source_name}={value:?}: {message}")]
pub struct ConfigError {
    /// The variable or file key the value came from.
    pub source_name: String,
    pub value: String,
    pub message: String,
}

impl Settings {
    /// Loads settings from the process environment (and the file it may name).
    pub fn from_env() -> Result<Settings, ConfigError> {
        Settings::load(None, std::env::vars())
    }

    /// Loads settings from `file` (or the one `APP__CONFIG__FILE` names) and `env`.
    ///
    /// Reads every variable in [`ENV_VARS`], plus the compatibility spellings
    /// `APP_<SECTION>__<NAME>` and `APP_DYNAMODB_SHOWSTABLE`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        build(&layers(file, env)?)
    }
}

/// The file, then the environment, over the defaults; `APP_ENV` read.
fn layers(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Reader, ConfigError> {
    let env: HashMap<String, String> = env.into_iter().collect();
    let mut raw = reader::RawValues::new();
    if let Some(path) = sources::file_path(file, &env) {
        sources::load_file(&path, &mut raw)?;
    }
    sources::overlay_env(&env, &mut raw);
    Ok(Reader::new(raw, AppEnv::from_env(&env)?))
}

/// Every concern's settings, in the order their errors are reported.
fn build(r: &Reader) -> Result<Settings, ConfigError> {
    let server = server::read(r)?;
    let store = store::read_store(r)?;
    let dynamodb = store::read_dynamodb(r)?;
    let auth = auth::read(r, &server, &dynamodb)?;
    Ok(Settings {
        env: r.env(),
        log: log::read(r)?,
        metrics: metrics::read(r)?,
        cors: web::read_cors(r)?,
        cache: cache::read(r)?,
        changes: changes::read(r)?,
        docs: web::read_docs(r)?,
        server,
        store,
        dynamodb,
        auth,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    pub(crate) fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load(
            None,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn local_defaults_bind_loopback_on_sqlite_with_the_local_issuer() {
        let s = load(&[]).unwrap();
        assert_eq!(s.env, AppEnv::Local);
        assert_eq!(s.server.host.to_string(), "127.0.0.1");
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.store.kind, StoreKind::Sqlite);
        assert_eq!(s.store.path, PathBuf::from("data/shows.db"));
        assert_eq!(s.auth.mode, AuthMode::Local);
        assert_eq!(s.auth.resource_server, "https://show-service-local.api");
        assert_eq!(s.auth.clients[0].id, "local-client");
        assert_eq!(s.store.data_dir(), PathBuf::from("data"));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let cases: &[(&str, &str)] = &[
            ("APP__SERVER__PORT", "eighty"),
            ("APP__SERVER__PORT", "70000"),
            ("APP__SERVER__HOST", "localhost:80"),
            ("APP__STORE__KIND", "postgres"),
            ("APP__AUTH__MODE", "none"),
            ("APP__DYNAMODB__ENDPOINTOVERRIDE", "not a url"),
            ("APP__CACHE__TTLMS", "-1"),
            ("APP__LOG__FORMAT", "xml"),
            ("APP_ENV", "staging"),
            ("APP_SERVER__PORT", "x"),
            ("APP__AUTH__CLIENTS", "nosecret"),
            ("APP__AUTH__TOKENBURST", "0"),
            ("APP__AUTH__LEEWAYSECONDS", "61"),
            ("APP__CHANGES__RETENTIONHOURS", "0"),
            ("APP__CHANGES__RETENTIONHOURS", "a week"),
        ];
        for (name, value) in cases {
            let err = load(&[(name, value)]).expect_err(name);
            assert_eq!(&err.source_name, name, "{err}");
            let line = err.to_string();
            assert!(line.contains(name) && !line.contains('\n'), "{line}");
        }
    }

    /// The keys the code asks for while loading `vars`.
    fn keys_read(vars: &[(&str, &str)]) -> BTreeSet<&'static str> {
        let r = layers(
            None,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap();
        build(&r).unwrap();
        r.keys_read()
    }

    #[test]
    fn the_code_reads_exactly_the_documented_keys() {
        // Local mode and jwt mode between them take every branch that reads a key.
        let mut read = keys_read(&[]);
        read.extend(keys_read(&[
            ("APP_ENV", "dev"),
            ("APP__AUTH__ISSUER", "https://issuer.example"),
        ]));
        let documented: BTreeSet<&str> = SETTINGS.iter().map(|d| d.key).collect();
        assert_eq!(documented.len(), SETTINGS.len(), "a key documented twice");
        let undocumented: Vec<_> = read.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "read but not in SETTINGS: {undocumented:?}"
        );
        // The file's key is read by the loader, before the layers it fills.
        let unread: Vec<_> = documented
            .difference(&read)
            .filter(|k| **k != FILE.key)
            .collect();
        assert!(unread.is_empty(), "in SETTINGS but never read: {unread:?}");
        let err = load(&[(FILE.env, "/nonexistent/show.toml")]).unwrap_err();
        assert_eq!(err.source_name, FILE.env, "{err}");
    }

    #[test]
    fn env_vars_is_app_env_then_every_setting_in_order() {
        let expected: Vec<&str> = std::iter::once(APP_ENV)
            .chain(SETTINGS.iter().map(|d| d.env))
            .collect();
        assert_eq!(ENV_VARS, expected);
    }
}
