//! The command line: `serve` (default), `import FILE`, `table create`, `token`,
//! `healthcheck`. Each subcommand is a function here; `main.rs` only dispatches.
//!
//! Every subcommand reads the settings `serve` reads ([`settings`]), and `token` and
//! `import` say on stderr which ones they act on (data file, issuer, key, table), since a
//! relative `APP__STORE__PATH` run from another folder is another data file. A failure is
//! reported once ([`Report`]): one plain line on stderr, or one ERROR log line when the
//! log is JSON (stdout not a terminal and `APP__LOG__FORMAT` `json` or `auto`).

use crate::auth::Auth;
use crate::config::{self, LogFormat, LogSettings, Settings, StoreKind};
use crate::domain::{Actor, Feed, FeedError, Partner};
use crate::http::{self, AppState};
use crate::store::{self, DynStore};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(name = "show-service", version, about = "TV-show catalogue API")]
pub struct Cli {
    /// Optional TOML settings file (the environment overrides it).
    #[arg(long, global = true, env = "APP__CONFIG__FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (the default).
    Serve,
    /// Bulk-load a feed file (the JSON of POST /v1/shows, any number of shows) into the
    /// configured store. Every show is checked before anything is written.
    Import {
        /// The feed file.
        file: PathBuf,
        /// Shows per write.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        chunk: u32,
        /// Import as this partner (a partner of APP__AUTH__PARTNERS or a client id): new
        /// shows become its, and shows owned by anyone else are refused (nothing written).
        /// Without it the import acts as an operator: it may replace any show, and what it
        /// creates has no owner until an admin assigns one (POST /v1/admin/owners).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Manage the DynamoDB table.
    Table {
        #[command(subcommand)]
        action: TableAction,
    },
    /// Print an access token from the built-in issuer (local mode), for curl.
    Token {
        /// Scopes to ask for (`shows.read`, `shows.write`); default: all the client may have.
        #[arg(long, value_delimiter = ',')]
        scope: Vec<String>,
        /// The local client to issue for.
        #[arg(long, default_value = "local-client")]
        client_id: String,
    },
    /// Exit 0 when GET /health on the local port answers 200 (container health check).
    Healthcheck {
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TableAction {
    /// Create the table and its GSI when missing and wait until ACTIVE; a no-op otherwise.
    Create {
        /// How long to wait for DynamoDB to accept connections (an emulator starting).
        #[arg(long, default_value_t = 5)]
        wait_seconds: u64,
    },
}

/// Loads settings for `cli`, or returns the one line that explains why not.
pub fn settings(cli: &Cli) -> Result<Settings, crate::config::ConfigError> {
    Settings::load(cli.config.as_deref(), std::env::vars())
}

/// How a warning or a failure reaches the person running the command: exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// One plain line on stderr, prefixed `show-service:`.
    Plain,
    /// One log event (an ERROR or WARN line of the JSON log on stdout).
    Log,
}

impl Report {
    /// [`Report::Log`] when the command logs (`logging`) and the log is JSON: the same
    /// rule as the log itself, `json`, or `auto` with stdout not a terminal.
    pub fn choose(logging: bool, log: &LogSettings) -> Report {
        let json = match log.format {
            LogFormat::Json => true,
            LogFormat::Text => false,
            LogFormat::Auto => !std::io::stdout().is_terminal(),
        };
        if logging && json {
            Report::Log
        } else {
            Report::Plain
        }
    }

    pub fn warning(self, message: &str) {
        match self {
            Report::Plain => eprintln!("show-service: warning: {}", one_line(message)),
            Report::Log => tracing::warn!("{}", one_line(message)),
        }
    }

    /// The failure and its causes on one line.
    pub fn failure(self, error: &anyhow::Error) {
        let text = one_line(&format!("{error:#}"));
        match self {
            Report::Plain => eprintln!("show-service: {text}"),
            Report::Log => tracing::error!(error = text, "failed"),
        }
    }
}

/// `text` with every run of whitespace (line breaks included) as one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What `import` should do when a running service holds the SQLite file.
const IMPORT_WHEN_HELD: &str =
    "POST the feed to that service instead of importing, or stop it first";

/// What a second `serve` should do when another process holds the SQLite file.
fn serve_when_held() -> String {
    format!(
        "stop that process first, or set {} to another file",
        config::store::PATH.env
    )
}

/// Opens the configured store; for SQLite, after checking its folder can be written, so
/// a permission problem is named as one instead of SQLite's "unable to open database file".
/// A SQLite file another process holds is reported with `when_held`, the command's advice.
pub async fn open_store(settings: &Settings, when_held: &str) -> anyhow::Result<DynStore> {
    if settings.store.kind == StoreKind::Sqlite {
        check_writable(&settings.store.path)?;
    }
    store::open(settings)
        .await
        .map_err(|e| match e.downcast_ref::<store::sqlite::Held>() {
            Some(held) => anyhow::anyhow!("{held}: {when_held}"),
            None => e,
        })
}

/// The SQLite file `path` (or, when absent, its folder) can be written by this user.
fn check_writable(path: &Path) -> anyhow::Result<()> {
    let shown = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let denied = |e: &std::io::Error, what: String, needs: &str| {
        let reason = match e.kind() {
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::ReadOnlyFilesystem => "read-only file system".to_string(),
            _ => e.to_string(),
        };
        anyhow::anyhow!(
            "{what} ({reason}): the user running show-service needs {needs}; or set \
             APP__STORE__PATH to a file in a writable folder"
        )
    };
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| {
            denied(
                &e,
                format!("cannot create the data folder {}", shown(&dir).display()),
                "write permission on its parent folder",
            )
        })?;
    }
    let probe = dir.join(format!(".show-service-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => {
            return Err(denied(
                &e,
                format!("cannot write in the data folder {}", shown(&dir).display()),
                "write permission on the folder (SQLite keeps its journal beside the file)",
            ));
        }
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| {
                denied(
                    &e,
                    format!(
                        "cannot open the SQLite file {} for writing",
                        shown(path).display()
                    ),
                    "read and write permission on the file",
                )
            })?;
    }
    Ok(())
}

/// Where the configured store is, in words: `sqlite /abs/data/shows.db` or the table.
pub fn store_description(settings: &Settings) -> String {
    match settings.store.kind {
        StoreKind::Sqlite => {
            let path = &settings.store.path;
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            format!("sqlite {} (APP__STORE__PATH)", path.display())
        }
        StoreKind::Dynamodb => {
            let d = &settings.dynamodb;
            let at = match (&d.endpoint_override, &d.region) {
                (Some(endpoint), _) => format!(" at {endpoint}"),
                (None, Some(region)) => format!(" in {region}"),
                (None, None) => String::new(),
            };
            format!("DynamoDB table {}{at}", d.table)
        }
    }
}

/// `serve`: binds, serves until SIGTERM/Ctrl-C, drains, returns.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Metrics first: a metrics port that cannot be bound stops start-up before anything.
    let mut metrics =
        crate::telemetry::metrics::install(&settings.metrics, settings.env.as_str()).await?;
    http::metrics::start(&mut metrics);
    if let Some(addr) = metrics.addr {
        tracing::info!(%addr, "metrics listening");
    }
    let store = open_store(&settings, &serve_when_held()).await?;
    let auth = Auth::from_settings(&settings).await?;
    let addr = std::net::SocketAddr::new(settings.server.host, settings.server.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        env = settings.env.as_str(),
        store = store.kind(),
        "listening"
    );
    let state = AppState::new(settings, store, auth);
    let served = http::serve(listener, state, http::shutdown_signal()).await;
    // The last interval's EMF documents, with every request and write just finished.
    metrics.flush();
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Who an import acts as: the partner `owner` names, under the rule every partner's
/// write follows; without one, an operator (any show; what it creates is unowned).
pub fn import_actor(settings: &Settings, owner: Option<&str>) -> anyhow::Result<Actor> {
    const CLIENT: &str = "show-service import";
    let Some(owner) = owner else {
        return Ok(Actor::operator(CLIENT));
    };
    let partner = Partner::parse(owner)
        .ok()
        .filter(|_| settings.auth.partners.knows(owner))
        .with_context(|| {
            format!(
                "--owner {owner:?} is neither a partner of {} nor a client id (1 to {} of \
                 A-Z a-z 0-9 . _ + -)",
                config::auth::PARTNERS.env,
                crate::domain::owner::MAX_PARTNER_LEN,
            )
        })?;
    Ok(Actor {
        client: CLIENT.into(),
        partner: Some(partner),
        admin: false,
    })
}

/// `import FILE`: validates the whole file, then writes it in chunks with a progress bar,
/// as `owner` (see [`import_actor`]).
pub async fn import(
    settings: Settings,
    file: PathBuf,
    chunk: usize,
    owner: Option<String>,
) -> anyhow::Result<()> {
    let actor = import_actor(&settings, owner.as_deref())?;
    let body = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let feed = match Feed::parse_with_limit(&body, usize::MAX) {
        Ok(feed) => feed,
        Err(FeedError::NotJson) => bail!("{}: not JSON", file.display()),
        Err(FeedError::Invalid(problems)) => {
            for p in problems.iter().take(20) {
                eprintln!("{}: {} {}", file.display(), p.path, p.message);
            }
            if problems.len() > 20 {
                eprintln!("… and {} more problems", problems.len() - 20);
            }
            bail!(
                "{}: {} problems; nothing was written",
                file.display(),
                problems.len()
            );
        }
    };
    let target = store_description(&settings);
    let total = feed.shows.len();
    eprintln!(
        "show-service: importing {total} shows from {} into {target}",
        file.display()
    );
    let store = open_store(&settings, IMPORT_WHEN_HELD).await?;
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(progress_style());
    let started = Instant::now();
    let mut written = 0usize;
    let mut shows = feed.shows;
    while !shows.is_empty() {
        let rest = shows.split_off(chunk.min(shows.len()));
        let n = match store.upsert(shows, &actor).await {
            Ok(n) => n,
            Err(store::StoreError::Forbidden { slugs, .. }) => {
                bar.finish_and_clear();
                let shown: Vec<&str> = slugs.iter().take(5).map(String::as_str).collect();
                bail!(
                    "{} shows are not {}'s to change (another partner's, or unowned: only \
                     an import without --owner or an admin may change them), e.g. {}; \
                     writing stopped after {written} of {total} shows",
                    slugs.len(),
                    owner.as_deref().unwrap_or_default(),
                    shown.join(", ")
                );
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("writing stopped after {written} of {total} shows")));
            }
        };
        written += n;
        bar.inc(n as u64);
        shows = rest;
    }
    bar.finish_and_clear();
    eprintln!(
        "show-service: imported {written} shows into {target} in {:.2?}",
        started.elapsed()
    );
    Ok(())
}

/// The import's progress bar: at most 78 columns for up to 9,999,999 shows (the bar
/// takes what is left of 80 when the counts are shorter), the rate a whole number.
fn progress_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(
        "{spinner} {elapsed_precise} {bar:30} {human_pos}/{human_len} {rate}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .with_key(
        "rate",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}/s", indicatif::HumanCount(state.per_sec() as u64));
        },
    )
}

/// `table create`: fails within about `wait` when DynamoDB cannot be reached or no
/// credentials resolve ([`store::dynamodb::client::preflight`]).
pub async fn table_create(settings: Settings, wait: Duration) -> anyhow::Result<()> {
    if settings.store.kind != StoreKind::Dynamodb {
        eprintln!("note: APP__STORE__KIND is sqlite; creating the DynamoDB table anyway");
    }
    store::dynamodb::client::preflight(&settings.dynamodb, wait).await?;
    store::create_table(&settings).await
}

/// `token`: prints an access token of the local issuer.
pub async fn token(
    settings: Settings,
    client_id: String,
    scopes: Vec<String>,
) -> anyhow::Result<()> {
    eprintln!(
        "show-service: token for {client_id}, issuer {}, key {} (beside the data file of \
         APP__STORE__PATH)",
        settings.auth.issuer.as_deref().unwrap_or("(none)"),
        std::path::absolute(settings.store.data_dir().join(crate::auth::keys::KEY_FILE))
            .unwrap_or_default()
            .display(),
    );
    let token = crate::auth::mint_for_cli(&settings, &client_id, &scopes).await?;
    println!("{token}");
    Ok(())
}

/// `healthcheck`: a bare HTTP/1.1 GET of the liveness route on the local port.
pub async fn healthcheck(settings: Settings, timeout: Duration) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = if settings.server.host.is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        settings.server.host
    };
    let addr = std::net::SocketAddr::new(host, settings.server.port);
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            http::LIVENESS_PATH
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    let head = tokio::time::timeout(timeout, check)
        .await
        .with_context(|| format!("no answer from {addr} within {timeout:?}"))?
        .with_context(|| format!("cannot reach {addr}"))?;
    if &head[..] == b"HTTP/1.1 200" {
        Ok(())
    } else {
        bail!(
            "{addr}{} answered {}",
            http::LIVENESS_PATH,
            String::from_utf8_lossy(&head)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A terminal of `width` columns that keeps what is drawn.
    #[derive(Debug, Clone)]
    struct Screen {
        width: u16,
        lines: Arc<Mutex<Vec<String>>>,
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.lines.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.write_line(s)
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_progress_bar_fits_80_columns_with_a_whole_number_rate() {
        let screen = Screen {
            width: 80,
            lines: Arc::default(),
        };
        let total = 9_999_999;
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        bar.set_style(progress_style());
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(30));
            bar.inc(1_234_567);
            bar.tick();
        }
        bar.set_position(total);
        bar.tick();
        let lines = screen.lines.lock().unwrap().clone();
        let last = lines
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .expect("drawn");
        assert!(last.contains("9,999,999/9,999,999"), "{last:?}");
        let rate = last.rsplit(' ').next().unwrap();
        assert!(
            rate.ends_with("/s") && !rate.contains('.') && rate.len() > 2,
            "{last:?}"
        );
        for line in &lines {
            assert!(
                line.chars().count() <= 80,
                "{} columns: {line:?}",
                line.chars().count()
            );
        }
    }

    #[test]
    fn an_import_acts_as_the_named_partner_or_as_an_operator() {
        let settings = Settings::load(
            None,
            [("APP__AUTH__PARTNERS".to_string(), "acme=c1".to_string())],
        )
        .unwrap();
        let operator = import_actor(&settings, None).unwrap();
        assert!(operator.admin && operator.partner.is_none());
        for owner in ["acme", "c9"] {
            let actor = import_actor(&settings, Some(owner)).unwrap();
            assert!(!actor.admin);
            assert_eq!(actor.partner.unwrap().as_str(), owner);
        }
        let err = import_actor(&settings, Some("no such"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--owner") && err.contains("APP__AUTH__PARTNERS"),
            "{err}"
        );
    }

    #[test]
    fn one_line_joins_a_multi_line_error() {
        let e = anyhow::anyhow!("inner\n  detail").context("outer");
        assert_eq!(one_line(&format!("{e:#}")), "outer: inner detail");
    }

    #[test]
    fn an_unwritable_data_folder_is_named_with_the_missing_permission() {
        // sysfs refuses new files even to root, so this holds whoever runs the tests.
        let err = check_writable(Path::new("/sys/shows.db")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/sys")
                && (msg.contains("permission denied") || msg.contains("read-only"))
                && msg.contains("write permission"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        check_writable(&dir.path().join("new/shows.db")).unwrap();
        assert!(dir.path().join("new").is_dir());
    }
}
