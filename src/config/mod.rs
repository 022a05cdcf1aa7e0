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
//! The variables, their defaults and meaning are listed in [`SETTINGS`] (and in the README).

use crate::domain::Scope;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The port the service listens on unless `APP__SERVER__PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8080;

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

macro_rules! settings_table {
    ($( $key:literal, $env:literal, $default:literal, $doc:literal; )*) => {
        /// Every setting the service reads, in documentation order.
        pub const SETTINGS: &[SettingDoc] = &[
            $( SettingDoc { key: $key, env: $env, default: $default, doc: $doc }, )*
        ];
        /// Every canonical environment variable the service reads (besides `APP_ENV`'s
        /// compatibility spellings described in the module doc).
        pub const ENV_VARS: &[&str] = &["APP_ENV", $( $env, )*];
    };
}

settings_table! {
    "config.file", "APP__CONFIG__FILE", "(none)", "Optional TOML file with the same keys (`[server] port = 8080`); the environment overrides it.";
    "server.host", "APP__SERVER__HOST", "127.0.0.1 (local) / 0.0.0.0", "Address to listen on.";
    "server.port", "APP__SERVER__PORT", "8080", "Port to listen on.";
    "server.requesttimeoutms", "APP__SERVER__REQUESTTIMEOUTMS", "10000", "Whole-request timeout; a request running longer gets 503.";
    "server.drainseconds", "APP__SERVER__DRAINSECONDS", "0 (local) / 5", "On SIGTERM: seconds to report not-ready before the listener closes (lets the ALB deregister).";
    "server.shutdowntimeoutseconds", "APP__SERVER__SHUTDOWNTIMEOUTSECONDS", "20", "On SIGTERM: longest wait for in-flight requests after the listener closes.";
    "server.bodylimitbytes", "APP__SERVER__BODYLIMITBYTES", "4194304", "Largest accepted request body (413 above).";
    "server.maxconcurrency", "APP__SERVER__MAXCONCURRENCY", "512", "Requests served at once; more are shed with 503 instead of queueing.";
    "server.headerreadtimeoutms", "APP__SERVER__HEADERREADTIMEOUTMS", "5000", "Longest time from a request's first byte to the end of its headers; slower connections are closed.";
    "server.idletimeoutseconds", "APP__SERVER__IDLETIMEOUTSECONDS", "75", "Longest a connection may wait for its next request (keep the load balancer's idle timeout below it).";
    "server.maxconnections", "APP__SERVER__MAXCONNECTIONS", "1024", "Open connections at most; past it new ones wait in the listen backlog.";
    "store.kind", "APP__STORE__KIND", "sqlite (local) / dynamodb", "`sqlite` (embedded, file-backed) or `dynamodb`.";
    "store.path", "APP__STORE__PATH", "data/shows.db", "SQLite file; its folder also holds the local issuer's signing key.";
    "dynamodb.region", "APP__DYNAMODB__REGION", "(SDK default chain)", "AWS region of the table.";
    "dynamodb.endpointoverride", "APP__DYNAMODB__ENDPOINTOVERRIDE", "(none)", "Endpoint URL for DynamoDB Local or an emulator.";
    "dynamodb.showstable", "APP__DYNAMODB__SHOWSTABLE", "shows-{env}", "Table name (also read as `APP_DYNAMODB_SHOWSTABLE`).";
    "dynamodb.showsgsi", "APP__DYNAMODB__SHOWSGSI", "gsi_drm_episode", "Name of the GSI on (drmKey, episodeCount).";
    "dynamodb.writeconcurrency", "APP__DYNAMODB__WRITECONCURRENCY", "4", "BatchWriteItem calls in flight at once for one feed.";
    "dynamodb.writedeadlinems", "APP__DYNAMODB__WRITEDEADLINEMS", "8000", "Longest time spent retrying UnprocessedItems for one feed.";
    "dynamodb.calltimeoutms", "APP__DYNAMODB__CALLTIMEOUTMS", "3000", "Timeout of each DynamoDB call (attempts included).";
    "cognito.userpoolid", "APP__COGNITO__USERPOOLID", "(none)", "Cognito user pool id; with the region it gives the issuer and JWKS URL.";
    "cognito.region", "APP__COGNITO__REGION", "(dynamodb.region)", "Region of the user pool.";
    "cognito.clientid", "APP__COGNITO__CLIENTID", "(none)", "Allowed app client id(s), comma separated.";
    "cognito.jwksurl", "APP__COGNITO__JWKSURL", "(derived)", "JWKS URL, when not the pool's standard one.";
    "cognito.validscopes", "APP__COGNITO__VALIDSCOPES", "(derived)", "Full scope names, comma separated; their prefix gives the resource server.";
    "auth.mode", "APP__AUTH__MODE", "local (local) / jwt", "`local`: built-in client-credentials issuer; `jwt`: external issuer such as Cognito.";
    "auth.issuer", "APP__AUTH__ISSUER", "(from cognito.*)", "Expected `iss` of access tokens, compared exactly (a trailing `/` is kept).";
    "auth.jwksurl", "APP__AUTH__JWKSURL", "(issuer + /.well-known/jwks.json)", "Where the issuer's signing keys are published.";
    "auth.audience", "APP__AUTH__AUDIENCE", "(from cognito.clientid)", "Allowed `client_id` (or `aud`) values, comma separated; empty allows any.";
    "auth.resourceserver", "APP__AUTH__RESOURCESERVER", "https://show-service-{env}.api", "Scope prefix: scopes are `<this>/shows.read` and `<this>/shows.write`.";
    "auth.leewayseconds", "APP__AUTH__LEEWAYSECONDS", "30", "Clock leeway for exp/nbf/iat (at most 60).";
    "auth.clients", "APP__AUTH__CLIENTS", "(none)", "Extra local-mode clients: `id:secret:scope scope,id2:secret2:scope`.";
    "auth.publicurl", "APP__AUTH__PUBLICURL", "http://{host}:{port}", "Local mode: the issuer URL put in `iss` and the discovery document.";
    "auth.tokenratepersecond", "APP__AUTH__TOKENRATEPERSECOND", "10", "Local mode: token requests per second each client may make (sustained).";
    "auth.tokenburst", "APP__AUTH__TOKENBURST", "20", "Local mode: token requests a client may make at once before the rate applies.";
    "log.format", "APP__LOG__FORMAT", "auto", "`json`, `text`, or `auto` (text on a terminal, JSON otherwise).";
    "log.level", "APP__LOG__LEVEL", "info", "tracing filter, e.g. `info`, or `info,request=debug` to log successful reads too (see Operations).";
    "metrics.host", "APP__METRICS__HOST", "127.0.0.1", "Address of the Prometheus metrics listener (it serves `GET /metrics` and nothing else).";
    "metrics.port", "APP__METRICS__PORT", "0 (local) / 9464", "Port of the Prometheus metrics listener; `0` = no listener.";
    "metrics.emfintervalseconds", "APP__METRICS__EMFINTERVALSECONDS", "0 (local) / 60", "Seconds between CloudWatch EMF metric documents on stdout; `0` = none.";
    "cors.allowedorigins", "APP__CORS__ALLOWEDORIGINS", "(none: CORS off)", "Origins allowed by CORS, comma separated, or `*`.";
    "docs.enabled", "APP__DOCS__ENABLED", "true (local) / false", "Serve the API reference at `/docs` and the catalogue preview at `/docs/catalogue` (`true` or `false`).";
    "cache.ttlms", "APP__CACHE__TTLMS", "1000", "Longest age of the cached catalogue before the store's change record is checked again (one small read); writes through this instance invalidate it at once. `0`: no cache.";
    "cache.safetynetseconds", "APP__CACHE__SAFETYNETSECONDS", "300", "Re-read the whole catalogue at least this often even when the change record says nothing changed (covers writers that do not bump it); `0`: never. Costs one full catalogue read per interval per task.";
    "cache.staleiferrorseconds", "APP__CACHE__STALEIFERRORSECONDS", "30", "When the store cannot be checked, keep serving the last catalogue this long past its TTL, then answer 503 (at most 3600).";
}

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
}

/// Which store implementation backs the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Dynamodb,
}

/// How access tokens are obtained and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The service issues its own tokens (client credentials) and verifies them.
    Local,
    /// Tokens come from an external issuer (Cognito); the service only verifies them.
    Jwt,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
    /// Text when stdout is a terminal, JSON otherwise (containers).
    Auto,
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
    pub docs: DocsSettings,
}

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

/// A client of the local issuer (local mode only).
#[derive(Clone)]
pub struct LocalClient {
    pub id: String,
    /// Never logged: `Debug` hides it.
    pub secret: String,
    /// The scopes this client may have.
    pub scopes: Vec<Scope>,
}

impl std::fmt::Debug for LocalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalClient")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Expected `iss`. In local mode, the issuer's own URL.
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    /// Allowed `client_id` / `aud` values; empty allows any.
    pub audience: Vec<String>,
    pub resource_server: String,
    pub leeway: Duration,
    /// Local mode: the development client plus any configured ones.
    pub clients: Vec<LocalClient>,
    /// Local mode: sustained token requests per second per client.
    pub token_rate_per_second: u32,
    /// Local mode: token requests a client may make at once.
    pub token_burst: u32,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub host: IpAddr,
    /// `0`: no Prometheus listener.
    pub port: u16,
    /// Zero: no EMF documents.
    pub emf_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct CorsSettings {
    /// Empty: no CORS headers. `["*"]`: any origin.
    pub allowed_origins: Vec<String>,
}

/// The `/docs` pages (`http::docs`).
#[derive(Debug, Clone)]
pub struct DocsSettings {
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub ttl: Duration,
    /// A full re-read at least this often; `None`: only on changes.
    pub safety_net: Option<Duration>,
    /// How long past its TTL the last catalogue is served while the store fails.
    pub stale_if_error: Duration,
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

/// A raw value and where it came from.
#[derive(Debug, Clone)]
struct Raw {
    value: String,
    source: String,
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
        let env: HashMap<String, String> = env.into_iter().collect();
        let mut raw: HashMap<&'static str, Raw> = HashMap::new();

        let file_path = match file {
            Some(p) => Some(p.to_path_buf()),
            None => env.get("APP__CONFIG__FILE").map(PathBuf::from),
        };
        if let Some(path) = file_path {
            load_file(&path, &mut raw)?;
        }
        overlay_env(&env, &mut raw);

        let app_env = match env.get("APP_ENV").map(|s| s.trim().to_ascii_lowercase()) {
            None => AppEnv::Local,
            Some(v) => match v.as_str() {
                "" | "local" => AppEnv::Local,
                "dev" => AppEnv::Dev,
                "test" => AppEnv::Test,
                "prod" => AppEnv::Prod,
                _ => {
                    return Err(ConfigError {
                        source_name: "APP_ENV".into(),
                        value: v,
                        message: "expected one of local, dev, test, prod".into(),
                    });
                }
            },
        };
        Reader { raw, env: app_env }.build()
    }
}

fn load_file(path: &Path, raw: &mut HashMap<&'static str, Raw>) -> Result<(), ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source_name: "APP__CONFIG__FILE".into(),
        value: shown.clone(),
        message: format!("cannot read the file: {e}"),
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError {
        source_name: "APP__CONFIG__FILE".into(),
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
fn overlay_env(env: &HashMap<String, String>, raw: &mut HashMap<&'static str, Raw>) {
    for doc in SETTINGS {
        let go_spelling = doc.env.replacen("APP__", "APP_", 1);
        let mut names: Vec<String> = Vec::with_capacity(3);
        if doc.key == "dynamodb.showstable" {
            names.push("APP_DYNAMODB_SHOWSTABLE".into());
        }
        names.push(go_spelling);
        names.push(doc.env.to_string());
        for name in names {
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
        name == "APP_ENV"
            || name == "APP_DYNAMODB_SHOWSTABLE"
            || SETTINGS
                .iter()
                .any(|d| d.env == name || d.env.replacen("APP__", "APP_", 1) == name)
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
            let nearest = ENV_VARS
                .iter()
                .min_by_key(|known| strsim::levenshtein(known, &canonical))
                .copied()
                .unwrap_or("APP_ENV");
            UnknownVariable {
                name: name.clone(),
                nearest,
            }
        })
        .collect();
    unknown.sort_by(|a, b| a.name.cmp(&b.name));
    unknown
}

/// Turns raw strings into typed settings, naming the source of any bad value.
struct Reader {
    raw: HashMap<&'static str, Raw>,
    env: AppEnv,
}

impl Reader {
    fn get(&self, key: &str) -> Option<&Raw> {
        self.raw.get(key).filter(|r| !r.value.trim().is_empty())
    }

    fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(|r| r.value.trim().to_string())
    }

    fn list(&self, key: &str) -> Vec<String> {
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

    fn parse<T>(&self, key: &str, default: T, expected: &str) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
    {
        match self.get(key) {
            None => Ok(default),
            Some(r) => r.value.trim().parse().map_err(|_| self.bad(r, expected)),
        }
    }

    fn bad(&self, r: &Raw, expected: &str) -> ConfigError {
        ConfigError {
            source_name: r.source.clone(),
            value: r.value.clone(),
            message: format!("expected {expected}"),
        }
    }

    fn bounded(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let expected = format!("a whole number from {min} to {max}");
        let v: u64 = self.parse(key, default, &expected)?;
        if v < min || v > max {
            let r = self
                .get(key)
                .expect("a value out of range was read from a source");
            return Err(self.bad(r, &expected));
        }
        Ok(v)
    }

    fn url(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(r) => {
                let v = r.value.trim();
                match url::Url::parse(v) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                        Ok(Some(v.trim_end_matches('/').to_string()))
                    }
                    _ => Err(self.bad(r, "an http(s) URL")),
                }
            }
        }
    }

    /// Like [`Reader::url`] but keeps the value exactly as given (an issuer is compared
    /// byte for byte with the token's `iss`, so a trailing `/` matters).
    fn url_exact(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self
            .url(key)?
            .and(self.get(key))
            .map(|r| r.value.trim().to_string()))
    }

    fn choice<T: Copy>(
        &self,
        key: &str,
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
                        self.bad(r, &format!("one of {}", names.join(", ")))
                    })
            }
        }
    }

    fn build(self) -> Result<Settings, ConfigError> {
        let local = self.env == AppEnv::Local;
        let env_name = self.env.as_str();

        let default_host: IpAddr = if local {
            [127, 0, 0, 1].into()
        } else {
            [0, 0, 0, 0].into()
        };
        let server = ServerSettings {
            host: self.parse("server.host", default_host, "an IP address")?,
            port: {
                let p = self.bounded("server.port", DEFAULT_PORT.into(), 0, 65535)?;
                u16::try_from(p).unwrap_or(DEFAULT_PORT)
            },
            request_timeout: Duration::from_millis(self.bounded(
                "server.requesttimeoutms",
                10_000,
                1,
                600_000,
            )?),
            drain: Duration::from_secs(self.bounded(
                "server.drainseconds",
                if local { 0 } else { 5 },
                0,
                60,
            )?),
            shutdown_timeout: Duration::from_secs(self.bounded(
                "server.shutdowntimeoutseconds",
                20,
                1,
                110,
            )?),
            body_limit: self.bounded("server.bodylimitbytes", 4 * 1024 * 1024, 1024, 64 << 20)?
                as usize,
            max_concurrency: self.bounded("server.maxconcurrency", 512, 1, 100_000)? as usize,
            header_read_timeout: Duration::from_millis(self.bounded(
                "server.headerreadtimeoutms",
                5_000,
                100,
                600_000,
            )?),
            idle_timeout: Duration::from_secs(self.bounded(
                "server.idletimeoutseconds",
                75,
                1,
                3_600,
            )?),
            max_connections: self.bounded("server.maxconnections", 1024, 1, 1_000_000)? as usize,
        };

        let store = StoreSettings {
            kind: self.choice(
                "store.kind",
                if local {
                    StoreKind::Sqlite
                } else {
                    StoreKind::Dynamodb
                },
                &[
                    ("sqlite", StoreKind::Sqlite),
                    ("dynamodb", StoreKind::Dynamodb),
                ],
            )?,
            path: self
                .string("store.path")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("data/shows.db")),
        };

        let dynamodb = DynamoSettings {
            region: self.string("dynamodb.region"),
            endpoint_override: self.url("dynamodb.endpointoverride")?,
            table: self
                .string("dynamodb.showstable")
                .unwrap_or_else(|| crate::store::layout::table_name(env_name)),
            gsi: self
                .string("dynamodb.showsgsi")
                .unwrap_or_else(|| crate::store::layout::GSI_NAME.to_string()),
            write_concurrency: self.bounded("dynamodb.writeconcurrency", 4, 1, 64)? as usize,
            write_deadline: Duration::from_millis(self.bounded(
                "dynamodb.writedeadlinems",
                8_000,
                100,
                600_000,
            )?),
            call_timeout: Duration::from_millis(self.bounded(
                "dynamodb.calltimeoutms",
                3_000,
                50,
                60_000,
            )?),
        };

        let auth = self.auth(local, env_name, &server, &dynamodb)?;

        let log = LogSettings {
            format: self.choice(
                "log.format",
                LogFormat::Auto,
                &[
                    ("json", LogFormat::Json),
                    ("text", LogFormat::Text),
                    ("auto", LogFormat::Auto),
                ],
            )?,
            level: self.string("log.level").unwrap_or_else(|| "info".into()),
        };
        if let Some(r) = self.get("log.level")
            && tracing_subscriber::EnvFilter::try_new(r.value.trim()).is_err()
        {
            return Err(self.bad(r, "a tracing filter such as info or show_service=debug"));
        }

        let metrics = MetricsSettings {
            host: self.parse("metrics.host", [127, 0, 0, 1].into(), "an IP address")?,
            port: self.bounded("metrics.port", if local { 0 } else { 9464 }, 0, 65535)? as u16,
            emf_interval: Duration::from_secs(self.bounded(
                "metrics.emfintervalseconds",
                if local { 0 } else { 60 },
                0,
                3600,
            )?),
        };

        let cors = CorsSettings {
            allowed_origins: self.list("cors.allowedorigins"),
        };
        for origin in &cors.allowed_origins {
            if origin != "*" && axum::http::HeaderValue::from_str(origin).is_err() {
                let r = self.get("cors.allowedorigins").expect("origins were read");
                return Err(self.bad(r, "origins such as https://app.example.com, or *"));
            }
        }
        let cache = CacheSettings {
            ttl: Duration::from_millis(self.bounded("cache.ttlms", 1000, 0, 3_600_000)?),
            safety_net: match self.bounded("cache.safetynetseconds", 300, 0, 86_400)? {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            stale_if_error: Duration::from_secs(self.bounded(
                "cache.staleiferrorseconds",
                30,
                0,
                3600,
            )?),
        };

        let docs = DocsSettings {
            enabled: self.parse("docs.enabled", self.env == AppEnv::Local, "true or false")?,
        };

        Ok(Settings {
            env: self.env,
            server,
            store,
            dynamodb,
            auth,
            log,
            metrics,
            cors,
            cache,
            docs,
        })
    }

    fn auth(
        &self,
        local: bool,
        env_name: &str,
        server: &ServerSettings,
        dynamodb: &DynamoSettings,
    ) -> Result<AuthSettings, ConfigError> {
        let mode = self.choice(
            "auth.mode",
            if local {
                AuthMode::Local
            } else {
                AuthMode::Jwt
            },
            &[("local", AuthMode::Local), ("jwt", AuthMode::Jwt)],
        )?;
        // The built-in issuer and its well-known development client write feeds for anyone
        // who reads the README: never outside a developer's machine.
        if mode == AuthMode::Local && !local {
            let r = self
                .get("auth.mode")
                .expect("local mode outside local was set");
            return Err(ConfigError {
                source_name: r.source.clone(),
                value: r.value.clone(),
                message: format!(
                    "the built-in issuer and its development client run only with \
                     APP_ENV=local (APP_ENV is {env_name}); use APP__AUTH__MODE=jwt"
                ),
            });
        }

        // Cognito, as the Go deployment configured it.
        let pool = self.string("cognito.userpoolid");
        let cognito_region = self.string("cognito.region").or_else(|| {
            // A pool id is `<region>_<id>`: the region is recoverable from it.
            pool.as_deref()
                .and_then(|p| p.split_once('_'))
                .map(|(r, _)| r.to_string())
                .or_else(|| dynamodb.region.clone())
        });
        let cognito_issuer = match (&pool, &cognito_region) {
            (Some(pool), Some(region)) => {
                Some(format!("https://cognito-idp.{region}.amazonaws.com/{pool}"))
            }
            _ => None,
        };
        let valid_scopes = self.list("cognito.validscopes");

        let issuer = match mode {
            AuthMode::Local => Some(match self.url("auth.publicurl")? {
                Some(u) => u,
                None => {
                    let host = if server.host.is_unspecified() {
                        "127.0.0.1".to_string()
                    } else {
                        server.host.to_string()
                    };
                    format!("http://{host}:{}", server.port)
                }
            }),
            AuthMode::Jwt => self.url_exact("auth.issuer")?.or(cognito_issuer),
        };
        let jwks_url = match mode {
            AuthMode::Local => None,
            AuthMode::Jwt => self
                .url("auth.jwksurl")?
                .or(self.url("cognito.jwksurl")?)
                .or_else(|| {
                    issuer
                        .as_ref()
                        .map(|i| format!("{}/.well-known/jwks.json", i.trim_end_matches('/')))
                }),
        };
        if mode == AuthMode::Jwt && (issuer.is_none() || jwks_url.is_none()) {
            return Err(ConfigError {
                source_name: "APP__AUTH__ISSUER".into(),
                value: String::new(),
                message: "auth mode jwt needs an issuer: set APP__AUTH__ISSUER (and \
                          APP__AUTH__JWKSURL), or APP__COGNITO__USERPOOLID and \
                          APP__COGNITO__REGION"
                    .into(),
            });
        }

        let mut audience = self.list("auth.audience");
        if audience.is_empty() {
            audience = self.list("cognito.clientid");
        }

        let resource_server = match self.url("auth.resourceserver")? {
            Some(r) => r,
            None => valid_scopes
                .iter()
                .find_map(|s| s.rsplit_once('/').map(|(prefix, _)| prefix.to_string()))
                .unwrap_or_else(|| format!("https://show-service-{env_name}.api")),
        };

        let leeway = Duration::from_secs(self.bounded("auth.leewayseconds", 30, 0, 60)?);

        let mut clients = Vec::new();
        if mode == AuthMode::Local {
            clients.push(LocalClient {
                id: "local-client".into(),
                secret: "local-secret".into(),
                scopes: Scope::ALL.to_vec(),
            });
            if let Some(r) = self.get("auth.clients") {
                for entry in r.value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                    let mut parts = entry.splitn(3, ':');
                    let (Some(id), Some(secret)) = (parts.next(), parts.next()) else {
                        return Err(self.bad(r, "entries id:secret:scope scope, comma separated"));
                    };
                    // Short names; none given means every scope.
                    let scopes: Option<Vec<Scope>> = match parts.next() {
                        None => Some(Scope::ALL.to_vec()),
                        Some(names) => names.split_whitespace().map(Scope::from_name).collect(),
                    };
                    let (false, Some(scopes)) = (id.is_empty() || secret.len() < 8, scopes) else {
                        return Err(self.bad(
                            r,
                            &format!(
                                "entries id:secret:scope scope with a secret of 8+ characters \
                                 and scopes {}",
                                Scope::names()
                            ),
                        ));
                    };
                    clients.push(LocalClient {
                        id: id.into(),
                        secret: secret.into(),
                        scopes,
                    });
                }
            }
        }

        let token_rate_per_second = self.bounded("auth.tokenratepersecond", 10, 1, 100_000)? as u32;
        let token_burst = self.bounded("auth.tokenburst", 20, 1, 100_000)? as u32;

        Ok(AuthSettings {
            mode,
            issuer,
            jwks_url,
            audience,
            resource_server,
            leeway,
            clients,
            token_rate_per_second,
            token_burst,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
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
    fn cloud_defaults_use_dynamodb_and_an_external_issuer() {
        let s = load(&[
            ("APP_ENV", "prod"),
            ("APP__COGNITO__USERPOOLID", "ap-southeast-2_AbC123"),
        ])
        .unwrap();
        assert_eq!(s.server.host.to_string(), "0.0.0.0");
        assert_eq!(s.store.kind, StoreKind::Dynamodb);
        assert_eq!(s.dynamodb.table, "shows-prod");
        assert_eq!(s.dynamodb.gsi, "gsi_drm_episode");
        assert_eq!(s.auth.mode, AuthMode::Jwt);
        assert_eq!(
            s.auth.issuer.as_deref(),
            Some("https://cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC123")
        );
        assert_eq!(
            s.auth.jwks_url.as_deref(),
            Some(
                "https://cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC123/.well-known/jwks.json"
            )
        );
        assert!(
            s.auth.clients.is_empty(),
            "no development client outside local mode"
        );
        assert_eq!(s.auth.resource_server, "https://show-service-prod.api");
    }

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
    fn valid_scopes_give_the_resource_server_and_client_id_the_audience() {
        let s = load(&[
            ("APP_ENV", "dev"),
            ("APP__AUTH__ISSUER", "https://issuer.example.com/"),
            (
                "APP__COGNITO__VALIDSCOPES",
                "https://show-service-dev.api/shows.read,https://show-service-dev.api/shows.write",
            ),
            ("APP__COGNITO__CLIENTID", "abc, def"),
        ])
        .unwrap();
        // Kept exactly: `iss` is compared byte for byte, as API Gateway does.
        assert_eq!(
            s.auth.issuer.as_deref(),
            Some("https://issuer.example.com/")
        );
        assert_eq!(
            s.auth.jwks_url.as_deref(),
            Some("https://issuer.example.com/.well-known/jwks.json")
        );
        assert_eq!(s.auth.resource_server, "https://show-service-dev.api");
        assert_eq!(s.auth.audience, vec!["abc", "def"]);
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
        ];
        for (name, value) in cases {
            let err = load(&[(name, value)]).expect_err(name);
            assert_eq!(&err.source_name, name, "{err}");
            let line = err.to_string();
            assert!(line.contains(name) && !line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn local_mode_is_refused_outside_the_local_environment() {
        for env in ["dev", "test", "prod"] {
            let err = load(&[
                ("APP_ENV", env),
                ("APP__AUTH__MODE", "local"),
                ("APP__STORE__KIND", "sqlite"),
            ])
            .expect_err(env);
            assert_eq!(err.source_name, "APP__AUTH__MODE");
            let line = err.to_string();
            assert!(
                line.contains("APP_ENV")
                    && line.contains("APP__AUTH__MODE")
                    && !line.contains('\n'),
                "{line}"
            );
        }
        // The Go spelling is refused the same way, naming the variable that was set.
        let err = load(&[("APP_ENV", "prod"), ("APP_AUTH__MODE", "LOCAL")]).unwrap_err();
        assert_eq!(err.source_name, "APP_AUTH__MODE");
        // Locally it is the default and may be said explicitly.
        let s = load(&[("APP_ENV", "local"), ("APP__AUTH__MODE", "local")]).unwrap();
        assert_eq!(s.auth.mode, AuthMode::Local);
        assert_eq!(s.auth.clients[0].id, "local-client");
    }

    #[test]
    fn jwt_mode_without_an_issuer_is_refused() {
        let err = load(&[("APP_ENV", "dev")]).unwrap_err();
        assert!(err.to_string().contains("APP__AUTH__ISSUER"), "{err}");
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

    #[test]
    fn the_docs_pages_are_on_in_local_mode_only_unless_set() {
        assert!(load(&[]).unwrap().docs.enabled);
        let cloud = [
            ("APP_ENV", "dev"),
            ("APP__AUTH__ISSUER", "https://issuer.example"),
        ];
        assert!(!load(&cloud).unwrap().docs.enabled);
        let on = [cloud[0], cloud[1], ("APP__DOCS__ENABLED", "true")];
        assert!(load(&on).unwrap().docs.enabled);
        assert!(
            !load(&[("APP__DOCS__ENABLED", "false")])
                .unwrap()
                .docs
                .enabled
        );
        let e = load(&[("APP__DOCS__ENABLED", "yes")]).unwrap_err();
        assert_eq!(e.source_name, "APP__DOCS__ENABLED");
    }
}
