//! The HTTP layer's metrics: `http_requests_total` and `http_request_duration_seconds` of
//! each answered request ([`RequestMetrics`], so the middleware only says what was
//! answered), the requests in flight ([`in_flight_layer`], sampled into
//! `http_requests_in_flight`), and the Prometheus exposition's listener ([`start`]).
//! The metrics themselves are described in `telemetry::table`; telemetry knows nothing of
//! HTTP.

use crate::telemetry::metrics::Installed;
use crate::telemetry::prometheus::Exposition;
use axum::http::{Method, StatusCode};
use metrics::SharedString;
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::Duration;
use tower_http::metrics::in_flight_requests::{InFlightRequestsCounter, InFlightRequestsLayer};

/// Starts the HTTP side of the exporters [`Installed`]: the Prometheus exposition's
/// listener, and the sampling of the requests in flight into `http_requests_in_flight`
/// every second. Nothing when no exporter is on.
pub fn start(installed: &mut Installed) {
    if let Some(exposition) = installed.take_exposition() {
        tokio::spawn(serve_exposition(exposition));
    }
    if installed.any() {
        tokio::spawn(
            IN_FLIGHT
                .clone()
                .run_emitter(Duration::from_secs(1), |n| async move {
                    metrics::gauge!("http_requests_in_flight").set(n as f64)
                }),
        );
    }
}

/// Requests being answered (bodies included), counted by [`in_flight_layer`] and sampled
/// into `http_requests_in_flight` every second once [`start`] has run.
static IN_FLIGHT: LazyLock<InFlightRequestsCounter> = LazyLock::new(InFlightRequestsCounter::new);

/// The layer that counts the requests in flight.
pub fn in_flight_layer() -> InFlightRequestsLayer {
    InFlightRequestsLayer::new(IN_FLIGHT.clone())
}

/// `http_requests_total` and `http_request_duration_seconds` of answered requests, with
/// their handles registered once per (route, method, status) and kept: the `metrics`
/// crate's way for a hot path, where `counter!` would look its key up in the recorder on
/// every request. Label values come from closed sets, so the map stays small. One per
/// router, so each router reports to the recorder installed when it first answers.
#[derive(Default)]
pub struct RequestMetrics {
    handles: RwLock<HashMap<Box<str>, Vec<RequestHandles>>>,
}

struct RequestHandles {
    method: &'static str,
    status: u16,
    count: metrics::Counter,
    duration: metrics::Histogram,
}

impl RequestMetrics {
    /// Counts one answered request: `route` is its matched route template (or
    /// `unmatched`), never a raw path; a method outside the usual ones counts as `other`.
    pub fn record(&self, route: &str, method: &Method, status: StatusCode, latency: Duration) {
        let method = method_label(method);
        let status = status.as_u16();
        let seconds = latency.as_secs_f64();
        let count = |all: &Vec<RequestHandles>| {
            let h = all
                .iter()
                .find(|h| h.method == method && h.status == status)?;
            h.count.increment(1);
            h.duration.record(seconds);
            Some(())
        };
        let handles = self.handles.read().unwrap_or_else(|e| e.into_inner());
        if handles.get(route).and_then(count).is_some() {
            return;
        }
        drop(handles);
        let mut handles = self.handles.write().unwrap_or_else(|e| e.into_inner());
        let all = handles.entry(route.into()).or_default();
        if count(all).is_none() {
            all.push(RequestHandles::register(route, method, status));
            count(all);
        }
    }
}

impl RequestHandles {
    fn register(route: &str, method: &'static str, status: u16) -> RequestHandles {
        let class = match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        let route = SharedString::from(route.to_owned());
        RequestHandles {
            method,
            status,
            count: metrics::counter!("http_requests_total", "route" => route.clone(),
                "method" => method, "status" => status.to_string()),
            duration: metrics::histogram!("http_request_duration_seconds", "route" => route,
                "method" => method, "status_class" => class),
        }
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The metrics listener: `GET /metrics` is the exposition, anything else 404.
async fn serve_exposition(exposition: Exposition) {
    let Exposition { listener, handle } = exposition;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = handle.render();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_metrics_count_each_label_set_once_per_request() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let m = RequestMetrics::default();
            let ms = Duration::from_millis(2);
            m.record("/v1/shows", &Method::GET, StatusCode::OK, ms);
            m.record("/v1/shows", &Method::GET, StatusCode::OK, ms);
            m.record("/v1/shows", &Method::GET, StatusCode::NOT_MODIFIED, ms);
            m.record("unmatched", &Method::TRACE, StatusCode::NOT_FOUND, ms);
        });
        let mut counts = std::collections::BTreeMap::new();
        let mut samples = 0;
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            match value {
                DebugValue::Counter(n) => {
                    assert_eq!(key.name(), "http_requests_total");
                    counts.insert(labels.join(","), n);
                }
                DebugValue::Histogram(v) => {
                    assert_eq!(key.name(), "http_request_duration_seconds");
                    samples += v.len();
                }
                DebugValue::Gauge(_) => panic!("no gauge expected"),
            }
        }
        assert_eq!(
            counts,
            [
                ("route=/v1/shows,method=GET,status=200".to_string(), 2),
                ("route=/v1/shows,method=GET,status=304".to_string(), 1),
                ("route=unmatched,method=other,status=404".to_string(), 1),
            ]
            .into()
        );
        assert_eq!(samples, 4);
    }
}
