//! Liveness (`/health`, never touches the store) and readiness (`/health/ready`: the
//! store answers and the service is not shutting down). The store check is reused for a
//! second, and one check runs at a time: probes that come while it runs share its answer
//! (single flight), so probes cannot load the store however many come at once.

use super::AppState;
use crate::store::StoreError;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
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

/// The last store check and when it was made, and the check in flight.
#[derive(Default)]
pub struct ReadinessCache {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
    /// Held while a check runs: a probe that finds it taken waits for that check's answer.
    checking: tokio::sync::Mutex<()>,
}

impl ReadinessCache {
    /// The store's answer: the last one while it is under [`READINESS_TTL`] old, else
    /// `ping()`'s, awaited by one probe while the others wait for it. A probe dropped
    /// mid-check (its client hung up) hands the check to the next one.
    pub async fn check<F>(&self, ping: impl FnOnce() -> F) -> Result<(), String>
    where
        F: Future<Output = Result<(), StoreError>>,
    {
        if let Some(r) = self.fresh() {
            return r;
        }
        let _checking = self.checking.lock().await;
        // A check that ended while this probe waited answers for it too.
        if let Some(r) = self.fresh() {
            return r;
        }
        let r = ping().await.map_err(|e| {
            tracing::warn!(error = %e, "readiness: store check failed");
            "unavailable".to_string()
        });
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), r.clone()));
        r
    }

    fn fresh(&self) -> Option<Result<(), String>> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < READINESS_TTL)
            .map(|(_, r)| r.clone())
    }
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
    let store = state.readiness.check(|| state.store.ping()).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64};

    /// A store's readiness check that takes 50 ms and counts its calls.
    #[derive(Default)]
    struct FakeStore {
        pings: AtomicU64,
        down: AtomicBool,
    }

    impl FakeStore {
        async fn ping(&self) -> Result<(), StoreError> {
            self.pings.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::unavailable("down"));
            }
            Ok(())
        }
    }

    /// `n` probes at once; their answers.
    async fn probes(
        cache: &Arc<ReadinessCache>,
        store: &Arc<FakeStore>,
        n: usize,
    ) -> Vec<Result<(), String>> {
        let all = (0..n).map(|_| {
            let (cache, store) = (cache.clone(), store.clone());
            tokio::spawn(async move { cache.check(|| store.ping()).await })
        });
        futures::future::join_all(all)
            .await
            .into_iter()
            .map(|r| r.expect("a probe"))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_probes_share_one_store_check_per_ttl() {
        let cache = Arc::new(ReadinessCache::default());
        let store = Arc::new(FakeStore::default());
        let pings = || store.pings.load(Ordering::SeqCst);

        assert!(probes(&cache, &store, 50).await.iter().all(Result::is_ok));
        assert_eq!(pings(), 1, "50 probes at once, one check");
        // Within the TTL nothing is checked again.
        tokio::time::advance(READINESS_TTL / 2).await;
        assert!(probes(&cache, &store, 10).await.iter().all(Result::is_ok));
        assert_eq!(pings(), 1);

        // Past the TTL: one check again, and its failure is every probe's answer.
        store.down.store(true, Ordering::SeqCst);
        tokio::time::advance(READINESS_TTL).await;
        let answers = probes(&cache, &store, 50).await;
        assert_eq!(pings(), 2, "one check for the second wave");
        assert!(
            answers.iter().all(|r| r == &Err("unavailable".to_string())),
            "{answers:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_dropped_mid_check_hands_the_check_on() {
        let cache = Arc::new(ReadinessCache::default());
        let store = Arc::new(FakeStore::default());
        // The first probe gives up 10 ms into its 50 ms check.
        let gave_up =
            tokio::time::timeout(Duration::from_millis(10), cache.check(|| store.ping())).await;
        assert!(gave_up.is_err());
        assert_eq!(store.pings.load(Ordering::SeqCst), 1);
        // The next probes are not stuck behind it: one of them checks, for all.
        assert!(probes(&cache, &store, 5).await.iter().all(Result::is_ok));
        assert_eq!(store.pings.load(Ordering::SeqCst), 2);
    }
}
