//! The command line: `serve` (default), `import FILE`, `table create`, `token`,
//! `healthcheck`. Each subcommand is a function here; `main.rs` only dispatches.

use crate::auth::Auth;
use crate::config::{Settings, StoreKind};
use crate::domain::{Feed, FeedError};
use crate::http::{self, AppState};
use crate::store::{self, DynStore};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
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
    Create,
}

/// Loads settings for `cli`, or returns the one line that explains why not.
pub fn settings(cli: &Cli) -> Result<Settings, crate::config::ConfigError> {
    Settings::load(cli.config.as_deref(), std::env::vars())
}

/// Opens the configured store.
pub async fn open_store(settings: &Settings) -> anyhow::Result<DynStore> {
    store::open(settings).await
}

/// `serve`: binds, serves until SIGTERM/Ctrl-C, drains, returns.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
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
    http::serve(listener, state, http::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// `import FILE`: validates the whole file, then writes it in chunks with a progress bar.
pub async fn import(settings: Settings, file: PathBuf, chunk: usize) -> anyhow::Result<()> {
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
    let store = open_store(&settings).await?;
    let total = feed.shows.len();
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} shows ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut written = 0usize;
    let mut shows = feed.shows;
    while !shows.is_empty() {
        let rest = shows.split_off(chunk.min(shows.len()));
        let n = store
            .upsert(shows)
            .await
            .with_context(|| format!("writing stopped after {written} of {total} shows"))?;
        written += n;
        bar.inc(n as u64);
        shows = rest;
    }
    bar.finish_and_clear();
    eprintln!(
        "imported {written} shows into {} in {:.2?}",
        store.kind(),
        started.elapsed()
    );
    Ok(())
}

/// `table create`.
pub async fn table_create(settings: Settings) -> anyhow::Result<()> {
    if settings.store.kind != StoreKind::Dynamodb {
        eprintln!("note: APP__STORE__KIND is sqlite; creating the DynamoDB table anyway");
    }
    store::create_table(&settings).await
}

/// `token`: prints an access token of the local issuer.
pub async fn token(
    settings: Settings,
    client_id: String,
    scopes: Vec<String>,
) -> anyhow::Result<()> {
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
