//! The HTTP layer: one shared [`AppState`], one module per resource, merged in [`router`];
//! [`serve`] runs it with graceful shutdown.
//!
//! - `health`: liveness and readiness.
//! - `oauth`: the local issuer's token endpoint, JWKS and discovery routes (local mode).
//! - `shows`: the catalogue, feeds, one show.
//! - `changes`: the catalogue's changes since a position (`/v1/shows/changes`).
//! - `admin`: `/v1/admin/` routes, for `shows.admin` tokens only (owner assignment).
//! - `openapi`: the OpenAPI document, generated from the handlers' annotations.
//! - `docs`: the `/docs` pages (API reference, catalogue preview), static files.
//! - `extract`: request extractors (scope checks, the JSON feed body).
//! - `conn`: the connection layer (header-read and idle timeouts, connection cap,
//!   lingering close).
//! - `middleware`: request ids, the request log line, the error envelope, limits.
//! - `metrics`: the request metrics and the Prometheus exposition's listener.
//! - `trace`: the trace id of a request, from its trace context headers.

pub mod admin;
pub mod changes;
pub mod conn;
pub mod docs;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod oauth;
pub mod openapi;
pub mod shows;
pub mod trace;

use crate::auth::{Auth, Scope};
use crate::catalogue::{ListCache, Policy};
use crate::config::Settings;
use crate::store::DynStore;
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The liveness route the ALB target group and the container health check call.
pub const LIVENESS_PATH: &str = "/health";
/// The readiness route.
pub const READINESS_PATH: &str = "/health/ready";

/// One API route: method, path (axum syntax) and the scope it requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub scope: Option<Scope>,
}

const fn r(method: &'static str, path: &'static str, scope: Option<Scope>) -> RouteSpec {
    RouteSpec {
        method,
        path,
        scope,
    }
}

/// Every route of the API proper (the local issuer's routes are `oauth`'s).
/// A router test checks this table against the real router; the infra tests check API
/// Gateway's routes against it.
pub const API_ROUTES: &[RouteSpec] = &[
    r("GET", LIVENESS_PATH, None),
    r("GET", "/v1/health", None),
    r("GET", READINESS_PATH, None),
    r("GET", "/openapi.json", None),
    r("GET", "/v1/shows", Some(Scope::Read)),
    r("GET", "/v1/shows/changes", Some(Scope::Read)),
    r("POST", "/v1/shows", Some(Scope::Write)),
    r("GET", "/v1/shows/{*slug}", Some(Scope::Read)),
    r("DELETE", "/v1/shows/{*slug}", Some(Scope::Write)),
    r("GET", "/shows", Some(Scope::Read)),
    r("POST", "/shows", Some(Scope::Write)),
    r("GET", "/shows/{*slug}", Some(Scope::Read)),
    r("DELETE", "/shows/{*slug}", Some(Scope::Write)),
    r("POST", "/v1/admin/owners", Some(Scope::Admin)),
];

/// What every handler shares: one `Arc`, so the clones axum makes per request (one per
/// boxed route service, one per `State` extractor) cost one reference count each.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    /// The configured store; lives as long as the server.
    pub store: DynStore,
    /// Token verification (and the local issuer).
    pub auth: Arc<Auth>,
    /// The serialized catalogue, shared by all requests.
    pub cache: Arc<ListCache>,
    /// Readiness; turned off when shutdown starts so the load balancer stops sending.
    pub ready: Arc<AtomicBool>,
    /// The last store check, reused for a second by `/health/ready`.
    pub readiness: Arc<health::ReadinessCache>,
    /// Writes in flight (feeds, deletes, owner assignments), one permit each (see
    /// `shows::spawn_write`): a write outlives its request when the client goes away,
    /// shutdown waits for every permit to return, and a write that finds none free is
    /// refused (503).
    pub writes: Arc<Semaphore>,
    /// The settings the server started with.
    pub settings: Arc<Settings>,
}

/// Most feed writes tracked at once; far above any concurrency limit.
const MAX_TRACKED_WRITES: u32 = 1 << 16;

impl AppState {
    pub fn new(settings: Settings, store: DynStore, auth: Arc<Auth>) -> AppState {
        AppState(Arc::new(Shared {
            cache: Arc::new(ListCache::new(Policy {
                ttl: settings.cache.ttl,
                safety_net: settings.cache.safety_net,
                stale_if_error: settings.cache.stale_if_error,
                // a request that waited for the refill would have timed out by then
                max_stale: settings.server.request_timeout,
            })),
            store,
            auth,
            ready: Arc::new(AtomicBool::new(true)),
            readiness: Arc::new(health::ReadinessCache::default()),
            writes: Arc::new(Semaphore::new(MAX_TRACKED_WRITES as usize)),
            settings: Arc::new(settings),
        }))
    }
}

/// The whole application: API routes, the issuer's routes, fallbacks and middleware.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(shows::router())
        .merge(changes::router())
        .merge(admin::router())
        .merge(openapi::router(
            state.settings.auth.mode == crate::config::AuthMode::Local,
            &state.settings.auth.resource_server,
        ))
        .merge(docs::router(&state.settings))
        .with_state(state.clone());
    // The token endpoint reads its form itself, 16 KiB at most, after checking its
    // headers: no body limit to configure here.
    // None in jwt mode, so those paths answer 404 there.
    let issuer = match state.auth.issuer() {
        Some(issuer) => oauth::router(Arc::clone(issuer)),
        None => Router::new(),
    };
    // Load shedding on the API, so a busy task stays healthy: not on the probes, and not
    // on the issuer, whose requests (slow form bodies included) must never take the
    // API's slots.
    let limited = middleware::limit(api, &state);
    let probes = health::router().with_state(state.clone());
    let app = middleware::wrap(probes.merge(issuer), state.clone()).merge(limited);
    middleware::cors(app, &state.settings.cors.allowed_origins)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then drains:
/// readiness turns off, after the drain delay the listener closes, in-flight requests
/// and writes (feeds, deletes) finish (bounded by the shutdown timeout).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let ready = state.ready.clone();
    let writes = state.writes.clone();
    let drain = state.settings.server.drain;
    let grace = state.settings.server.shutdown_timeout;
    let app = router(state.clone());

    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        ready.store(false, Ordering::SeqCst);
        tracing::info!(
            drain_seconds = drain.as_secs(),
            "shutdown requested: not ready, draining"
        );
        tokio::time::sleep(drain).await;
        tracing::info!("closing the listener; finishing in-flight requests");
        let _ = closed_tx.send(());
    };
    let limits = conn::ConnLimits {
        header_read_timeout: state.settings.server.header_read_timeout,
        idle_timeout: state.settings.server.idle_timeout,
        max_connections: state.settings.server.max_connections,
    };
    let mut server = tokio::spawn(async move {
        conn::serve(listener, app, limits, signal).await;
        Ok::<(), std::io::Error>(())
    });
    // With nothing in flight the server can end as soon as the listener closes, so both
    // branches may be ready together: either way, writes are waited for below.
    let ended = tokio::select! {
        res = &mut server => Some(res),
        _ = closed_rx => None,
    };
    let deadline = tokio::time::Instant::now() + grace;
    let served = match ended {
        Some(res) => res?,
        None => match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(res) => res?,
            Err(_) => {
                tracing::warn!(
                    grace_seconds = grace.as_secs(),
                    "in-flight requests did not finish in time"
                );
                server.abort();
                Ok(())
            }
        },
    };
    // Writes whose clients hung up run on without a connection: let them finish too, or
    // the process would exit half-way through a feed or a delete.
    if tokio::time::timeout_at(deadline, writes.acquire_many(MAX_TRACKED_WRITES))
        .await
        .is_err()
    {
        tracing::warn!("writes did not finish in time");
    }
    Ok(served?)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
