//! The Prometheus exporter: metrics-exporter-prometheus's recorder, with histogram buckets
//! for every `*_seconds` metric, and its text exposition bound to its own listener,
//! `APP__METRICS__HOST:APP__METRICS__PORT`. What answers on that listener (`GET /metrics`
//! and nothing else) is the HTTP layer's: telemetry binds the port, so that a port that
//! cannot be bound stops start-up before anything else, and hands over an [`Exposition`].

use crate::config::MetricsSettings;
use anyhow::Context as _;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::net::SocketAddr;
use std::time::Duration;

/// Prometheus histogram buckets for every `*_seconds` metric.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The exposition, ready to be served: its bound listener and what renders the text.
pub struct Exposition {
    pub listener: tokio::net::TcpListener,
    /// `handle.render()` is the text exposition (format 0.0.4).
    pub handle: PrometheusHandle,
}

/// Builds the recorder and binds its listener. Histogram samples are folded in every few
/// seconds from a task, so memory stays bounded between scrapes.
pub async fn start(settings: &MetricsSettings) -> anyhow::Result<(PrometheusRecorder, Exposition)> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .context("histogram buckets")?
        .build_recorder();
    let handle = recorder.handle();
    let at = SocketAddr::new(settings.host, settings.port);
    let listener = tokio::net::TcpListener::bind(at).await.with_context(|| {
        format!("APP__METRICS__PORT / APP__METRICS__HOST: cannot listen on {at}")
    })?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok((recorder, Exposition { listener, handle }))
}
