//! Metrics: [`install`] sends what code emits through the `metrics` facade to the
//! exporters that `APP__METRICS__*` turns on, and describes every metric of the table
//! ([`super::table`]) to them:
//! - the Prometheus text exposition on its own listener (see [`super::prometheus`]);
//! - CloudWatch Embedded Metric Format documents on stdout every
//!   `APP__METRICS__EMFINTERVALSECONDS` (see [`super::emf`]).
//!
//! The two exporters share only the table; this module is the one that knows both.

use super::prometheus::Exposition;
use super::table::{Kind, METRICS};
use crate::config::MetricsSettings;
use metrics_util::layers::FanoutBuilder;
use std::net::SocketAddr;

/// What [`install`] started.
#[derive(Default)]
pub struct Installed {
    /// The Prometheus listener's address.
    pub addr: Option<SocketAddr>,
    /// The Prometheus exposition, until the HTTP layer takes it to answer on its listener.
    exposition: Option<Exposition>,
    emf: Option<super::emf::Writer>,
}

impl Installed {
    /// Whether a recorder was installed (an exporter is on).
    pub fn any(&self) -> bool {
        self.addr.is_some() || self.emf.is_some()
    }

    /// The Prometheus exposition to serve (once; `None` when Prometheus is off).
    pub fn take_exposition(&mut self) -> Option<Exposition> {
        self.exposition.take()
    }

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
        let (recorder, exposition) = super::prometheus::start(settings).await?;
        installed.addr = Some(exposition.listener.local_addr()?);
        installed.exposition = Some(exposition);
        fanout = fanout.add_recorder(recorder);
    }
    if emf {
        let (recorder, documents) = super::emf::Emf::new(env);
        installed.emf = Some(documents.start(settings.emf_interval));
        fanout = fanout.add_recorder(recorder);
    }
    metrics::set_global_recorder(fanout.build())
        .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
    for d in METRICS {
        match d.kind {
            Kind::Counter => metrics::describe_counter!(d.name, d.unit, d.help),
            Kind::Gauge => metrics::describe_gauge!(d.name, d.unit, d.help),
            Kind::Histogram => metrics::describe_histogram!(d.name, d.unit, d.help),
        }
    }
    Ok(installed)
}
