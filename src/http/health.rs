//! Liveness (`/health`, never touches the store) and readiness (`/health/ready`: the
//! store answers and the service is not shutting down; the store check is reused for a
//! second so probes cannot load the store).

use super::AppState;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// How long a store check is reused.
const READINESS_TTL: Duration = Duration::from_secs(1);

pub fn router() -> Router<AppState> {
    Router::new()
        .route(super::LIVENESS_PATH, get(live))
        .route("/v1/health", get(live))
        .route(super::READINESS_PATH, get(ready))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    #[schema(example = "ok")]
    pub message: String,
}

/// Readiness answer: overall status and each check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// The store kind and whether it answered (`ok`, or what failed).
    pub store: String,
    /// `false` once shutdown started.
    pub accepting: bool,
}

/// The last store check and when it was made.
#[derive(Default)]
pub struct ReadinessCache {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

/// The process is up. Does not touch the store.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "Alive", body = Message)))]
pub async fn live() -> Json<Message> {
    Json(Message {
        message: "ok".into(),
    })
}

/// The store answers and the service accepts traffic.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: the body names what failed", body = Readiness),
    ))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let accepting = state.ready.load(Ordering::SeqCst);
    let cached = {
        let last = state
            .readiness
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < READINESS_TTL)
            .map(|(_, r)| r.clone())
    };
    let store = match cached {
        Some(r) => r,
        None => {
            let r = state.store.ping().await.map_err(|e| {
                tracing::warn!(error = %e, "readiness: store check failed");
                "unavailable".to_string()
            });
            *state
                .readiness
                .last
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), r.clone()));
            r
        }
    };
    let ok = accepting && store.is_ok();
    let body = Readiness {
        status: if ok { "ok" } else { "unavailable" },
        store: format!(
            "{}: {}",
            state.store.kind(),
            store.err().unwrap_or_else(|| "ok".into())
        ),
        accepting,
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
