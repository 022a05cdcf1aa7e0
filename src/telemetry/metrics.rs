//! Metrics: every metric the service emits is a row of [`METRICS`] (name, type, unit,
//! labels, help, and the dimensions it carries to CloudWatch). Code emits them through
//! the `metrics` facade (`metrics::counter!(NAME, "label" => value)`); [`install`] sends
//! them to the exporters that `APP__METRICS__*` turns on:
//! - the Prometheus text exposition (metrics-exporter-prometheus) on its own listener,
//!   `APP__METRICS__HOST:APP__METRICS__PORT`, which answers `GET /metrics` and nothing else;
//! - CloudWatch Embedded Metric Format documents on stdout every
//!   `APP__METRICS__EMFINTERVALSECONDS` (see [`super::emf`]).
//!
//! The HTTP layer's request metrics are made here too ([`RequestMetrics`],
//! [`in_flight_layer`]), so the middleware only says what was answered.
//!
//! Label values come only from closed sets (matched route templates, outcomes named
//! here), never from what a client sent. A test checks that every name used with the
//! facade under `src/` is in the table, and the README's metrics table is generated from it.

use crate::config::MetricsSettings;
use anyhow::Context as _;
use axum::http::{Method, StatusCode};
use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::FanoutBuilder;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{LazyLock, RwLock};
use std::time::Duration;
use tower_http::metrics::in_flight_requests::{InFlightRequestsCounter, InFlightRequestsLayer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric the service emits.
#[derive(Debug, Clone, Copy)]
pub struct MetricDoc {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: metrics::Unit,
    /// Label names, with their closed set of values in `help` where it is not obvious.
    pub labels: &'static [&'static str],
    /// CloudWatch EMF: `None` = not sent; `Some(dims)` = sent with the dimension
    /// `Environment` plus `dims` (`status_class` is derived from `status`), summed over
    /// every other label.
    pub emf: Option<&'static [&'static str]>,
    pub help: &'static str,
}

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    emf: Option<&'static [&'static str]>,
    help: &'static str,
) -> MetricDoc {
    let unit = match kind {
        Kind::Histogram => metrics::Unit::Seconds,
        _ => metrics::Unit::Count,
    };
    MetricDoc {
        name,
        kind,
        unit,
        labels,
        emf,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric, in documentation order.
pub const METRICS: &[MetricDoc] = &[
    m(
        "http_requests_total",
        Counter,
        &["route", "method", "status"],
        Some(&["status_class"]),
        "Requests answered, by matched route template (`unmatched` for none), method (`other` for unusual ones) and status.",
    ),
    m(
        "http_request_duration_seconds",
        Histogram,
        &["route", "method", "status_class"],
        Some(&[]),
        "Time from the request's arrival to its answer's headers.",
    ),
    m(
        "http_requests_in_flight",
        Gauge,
        &[],
        None,
        "Requests being answered (sampled every second).",
    ),
    m(
        "http_requests_shed_total",
        Counter,
        &[],
        Some(&[]),
        "Requests refused with 503 because `APP__SERVER__MAXCONCURRENCY` were in flight.",
    ),
    m(
        "http_requests_timed_out_total",
        Counter,
        &[],
        Some(&[]),
        "Requests answered 503 at `APP__SERVER__REQUESTTIMEOUTMS`.",
    ),
    m(
        "feeds_total",
        Counter,
        &["outcome"],
        Some(&["outcome"]),
        "Feeds posted, by outcome: `accepted`, `rejected` (invalid, nothing written), `partial` (some shows written), `failed` (nothing written).",
    ),
    m(
        "shows_written_total",
        Counter,
        &[],
        Some(&[]),
        "Shows written by accepted feeds.",
    ),
    m(
        "store_calls_total",
        Counter,
        &["store", "operation", "outcome"],
        Some(&["outcome"]),
        "Store calls, by store (`sqlite`, `dynamodb`), operation and outcome (`ok`, `unavailable`, `throttled`, `error`).",
    ),
    m(
        "store_call_duration_seconds",
        Histogram,
        &["store", "operation"],
        Some(&[]),
        "Duration of store calls.",
    ),
    m(
        "store_consumed_read_units_total",
        Counter,
        &["operation"],
        Some(&[]),
        "DynamoDB read capacity units consumed.",
    ),
    m(
        "store_consumed_write_units_total",
        Counter,
        &["operation"],
        Some(&[]),
        "DynamoDB write capacity units consumed.",
    ),
    m(
        "store_items_total",
        Counter,
        &["operation"],
        None,
        "Items read or written by store calls.",
    ),
    m(
        "catalogue_change_checks_total",
        Counter,
        &["outcome"],
        Some(&["outcome"]),
        "Checks of the catalogue's change marker: `unchanged`, `changed`, `missing`, `invalid`, `error`.",
    ),
    m(
        "catalogue_refills_total",
        Counter,
        &["reason", "kind"],
        Some(&[]),
        "Refills of the cached catalogue, by reason: `cold`, `changed`, `safety_net`, `local_write`; kind `full` (the index read) or `delta` (only the changed shows read).",
    ),
    m(
        "catalogue_refill_duration_seconds",
        Histogram,
        &[],
        Some(&[]),
        "Duration of catalogue refills.",
    ),
    m(
        "catalogue_items",
        Gauge,
        &[],
        None,
        "Shows in the cached catalogue.",
    ),
    m(
        "catalogue_bytes",
        Gauge,
        &[],
        None,
        "Bytes of the cached catalogue.",
    ),
    m(
        "catalogue_cache_hits_total",
        Counter,
        &[],
        None,
        "Catalogue reads answered from the cache.",
    ),
    m(
        "catalogue_not_modified_total",
        Counter,
        &[],
        None,
        "Catalogue reads answered 304 Not Modified.",
    ),
    m(
        "auth_token_verifications_total",
        Counter,
        &["outcome"],
        Some(&["outcome"]),
        "Access token checks: `ok`, `cached`, `malformed`, `expired`, `not_yet_valid`, `bad_signature`, `unknown_key`, `wrong_issuer`, `wrong_audience`, `wrong_token_use`, `missing_scope`, `issuer_unavailable`.",
    ),
    m(
        "auth_jwks_fetches_total",
        Counter,
        &["outcome"],
        Some(&["outcome"]),
        "JWKS fetches: `ok`, `error`.",
    ),
    m(
        "issuer_tokens_issued_total",
        Counter,
        &[],
        Some(&[]),
        "Tokens issued by the local issuer.",
    ),
    m(
        "issuer_token_requests_rejected_total",
        Counter,
        &["reason"],
        Some(&["reason"]),
        "Token requests the local issuer refused: `invalid_client`, `invalid_request`, `invalid_scope`, `unsupported_grant_type`, `rate_limited`.",
    ),
];

/// The row of `name`.
pub fn doc(name: &str) -> Option<&'static MetricDoc> {
    METRICS.iter().find(|d| d.name == name)
}

/// Prometheus histogram buckets for every `*_seconds` metric.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What [`install`] started.
#[derive(Default)]
pub struct Installed {
    /// The Prometheus listener's address.
    pub addr: Option<SocketAddr>,
    emf: Option<super::emf::Writer>,
}

impl Installed {
    /// Writes the EMF documents of the interval not yet sent; call when the server stops.
    pub fn flush(&self) {
        if let Some(emf) = &self.emf {
            emf.flush();
        }
    }
}

/// Installs the global recorder for the exporters `settings` turn on, binds the
/// Prometheus listener and starts the EMF documents; without either, metrics cost
/// nothing. Call once, inside the runtime.
pub async fn install(settings: &MetricsSettings, env: &str) -> anyhow::Result<Installed> {
    let prometheus = settings.port != 0;
    let emf = !settings.emf_interval.is_zero();
    let mut installed = Installed::default();
    if !prometheus && !emf {
        return Ok(installed);
    }
    let mut fanout = FanoutBuilder::default();
    if prometheus {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .context("histogram buckets")?
            .build_recorder();
        let handle = recorder.handle();
        let at = SocketAddr::new(settings.host, settings.port);
        let listener = tokio::net::TcpListener::bind(at).await.with_context(|| {
            format!("APP__METRICS__PORT / APP__METRICS__HOST: cannot listen on {at}")
        })?;
        installed.addr = Some(listener.local_addr()?);
        tokio::spawn(serve_exposition(listener, handle));
        fanout = fanout.add_recorder(recorder);
    }
    if emf {
        let (recorder, documents) = super::emf::Emf::new(env);
        installed.emf = Some(documents.start(settings.emf_interval));
        fanout = fanout.add_recorder(recorder);
    }
    metrics::set_global_recorder(fanout.build())
        .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
    tokio::spawn(
        IN_FLIGHT
            .clone()
            .run_emitter(Duration::from_secs(1), |n| async move {
                metrics::gauge!("http_requests_in_flight").set(n as f64)
            }),
    );
    for d in METRICS {
        match d.kind {
            Kind::Counter => metrics::describe_counter!(d.name, d.unit, d.help),
            Kind::Gauge => metrics::describe_gauge!(d.name, d.unit, d.help),
            Kind::Histogram => metrics::describe_histogram!(d.name, d.unit, d.help),
        }
    }
    Ok(installed)
}

/// Requests being answered (bodies included), counted by [`in_flight_layer`] and sampled
/// into `http_requests_in_flight` every second once [`install`] has run.
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

/// The metrics listener: `GET /metrics` is the exposition, anything else 404. Histogram
/// samples are folded in every few seconds, so memory stays bounded between scrapes.
async fn serve_exposition(listener: tokio::net::TcpListener, handle: PrometheusHandle) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
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

/// The README's metrics table, generated from [`METRICS`].
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| name | type | unit | labels | CloudWatch EMF dimensions | meaning |\n|---|---|---|---|---|---|\n",
    );
    for d in METRICS {
        let list = |names: &[&str]| {
            if names.is_empty() {
                "–".to_string()
            } else {
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let emf = match d.emf {
            None => "(not sent)".to_string(),
            Some(dims) => {
                let mut all = vec!["Environment"];
                all.extend_from_slice(dims);
                list(&all)
            }
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            d.name,
            format!("{:?}", d.kind).to_lowercase(),
            d.unit.as_str(),
            list(d.labels),
            emf,
            d.help
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `counter!("…")`, `gauge!("…")`, `histogram!("…")` under `src/`, with its file.
    fn used_names() -> Vec<(Kind, String, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut found = Vec::new();
        for file in files {
            let mut text = std::fs::read_to_string(&file).unwrap();
            // This file's tests (this scan) name the macros too.
            if file.ends_with("telemetry/metrics.rs") {
                text.truncate(text.find("\n#[cfg(test)]").unwrap());
            }
            for (kind, mac) in [
                (Kind::Counter, "counter!("),
                (Kind::Gauge, "gauge!("),
                (Kind::Histogram, "histogram!("),
            ] {
                for (i, _) in text.match_indices(mac) {
                    // `describe_counter!(` and friends take the table's own names.
                    let line_start = text[..i].rfind('\n').map_or(0, |j| j + 1);
                    if text[..i].ends_with("describe_")
                        || text[line_start..i].trim_start().starts_with("//")
                    {
                        continue;
                    }
                    let rest = text[i + mac.len()..].trim_start();
                    // A string literal, or a constant of this file holding one.
                    let constant = |rest: &str| {
                        let ident: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        let decl = format!("const {ident}: &str = \"");
                        let at = text.find(&decl).filter(|_| !ident.is_empty())?;
                        text[at + decl.len()..].split('"').next()
                    };
                    let name = rest
                        .strip_prefix('"')
                        .and_then(|r| r.split('"').next())
                        .or_else(|| constant(rest))
                        .unwrap_or_else(|| {
                            panic!(
                                "{}: a metric name must be a string literal or a `const NAME: &str` of the same file: {mac}{}",
                                file.display(),
                                &rest[..rest.len().min(40)]
                            )
                        });
                    found.push((kind, name.to_string(), file.display().to_string()));
                }
            }
        }
        found
    }

    #[test]
    fn every_metric_used_under_src_is_in_the_table_with_its_type() {
        let used = used_names();
        assert!(
            used.iter().any(|(_, n, _)| n == "http_requests_total"),
            "the scan found nothing: {used:?}"
        );
        let mut problems = Vec::new();
        for (kind, name, file) in &used {
            match doc(name) {
                None => problems.push(format!(
                    "{file}: metric `{name}` is not in telemetry::metrics::METRICS"
                )),
                Some(d) if d.kind != *kind => problems.push(format!(
                    "{file}: `{name}` used as a {kind:?}, the table says {:?}",
                    d.kind
                )),
                Some(_) => {}
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

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

    #[test]
    fn the_table_is_well_formed() {
        let mut names = std::collections::HashSet::new();
        for d in METRICS {
            assert!(names.insert(d.name), "{} twice", d.name);
            assert!(
                d.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
                "{}",
                d.name
            );
            match d.kind {
                Kind::Counter => assert!(d.name.ends_with("_total"), "{}", d.name),
                Kind::Histogram => assert!(d.name.ends_with("_seconds"), "{}", d.name),
                Kind::Gauge => assert!(!d.name.ends_with("_total"), "{}", d.name),
            }
            for dim in d.emf.unwrap_or_default() {
                let from = if *dim == "status_class" {
                    "status"
                } else {
                    dim
                };
                assert!(
                    d.labels.contains(dim) || d.labels.contains(&from),
                    "{}: EMF dimension {dim} is not a label",
                    d.name
                );
            }
            assert!(
                d.kind != Kind::Gauge || d.emf.is_none(),
                "{}: gauges are not sent to EMF",
                d.name
            );
        }
    }
}
