//! CloudWatch Embedded Metric Format: a `metrics` recorder that keeps each metric in a
//! metrics-util registry, and a task that every interval writes one JSON document per set
//! of dimension values to stdout, where CloudWatch Logs turns it into metrics (no agent).
//! `serve` writes the last interval's documents when the server stops.
//!
//! Written here rather than taken from a crate: the EMF crates for `metrics` make every
//! label a dimension, and the metrics table wants a few dimensions with the values summed
//! over the other labels. Counters are sent as the interval's increase (Unit `Count`),
//! histograms as the interval's observations (Unit `Seconds`; at most 100 values per
//! document, as the format allows: past that, a uniform sample of them); gauges are not
//! sent. Every document carries `Environment`.

use super::table::{Kind, doc};
use metrics::{HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{Registry, Storage};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Namespace of every metric.
pub const NAMESPACE: &str = "ShowService";
/// Values one metric may carry in one document (the format's limit).
const MAX_VALUES: usize = 100;

/// The recorder half: installed (in a fanout) as the global recorder.
pub struct Emf(Arc<Registry<Key, EmfStorage>>);

/// The writer half: [`Documents::start`] writes the documents every interval.
pub struct Documents {
    registry: Arc<Registry<Key, EmfStorage>>,
    env: String,
    /// Each counter's value when last sent.
    sent: HashMap<Key, u64>,
}

impl Emf {
    pub fn new(env: &str) -> (Emf, Documents) {
        let registry = Arc::new(Registry::new(EmfStorage));
        let docs = Documents {
            registry: registry.clone(),
            env: env.to_string(),
            sent: HashMap::new(),
        };
        (Emf(registry), docs)
    }
}

impl Recorder for Emf {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        self.0
            .get_or_create_counter(key, |c| metrics::Counter::from_arc(c.clone()))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        self.0
            .get_or_create_gauge(key, |g| metrics::Gauge::from_arc(g.clone()))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        self.0
            .get_or_create_histogram(key, |h| metrics::Histogram::from_arc(h.clone()))
    }
}

pub struct EmfStorage;

impl Storage<Key> for EmfStorage {
    type Counter = Arc<AtomicU64>;
    type Gauge = Arc<AtomicU64>;
    type Histogram = Arc<Sample>;
    fn counter(&self, _: &Key) -> Arc<AtomicU64> {
        Arc::default()
    }
    fn gauge(&self, _: &Key) -> Arc<AtomicU64> {
        Arc::default()
    }
    fn histogram(&self, _: &Key) -> Arc<Sample> {
        Arc::default()
    }
}

/// A histogram's observations since the last document: how many, and a uniform sample
/// of at most [`MAX_VALUES`] of them (reservoir sampling), so memory stays bounded.
#[derive(Default)]
pub struct Sample(Mutex<(u64, Vec<f64>)>);

impl HistogramFn for Sample {
    fn record(&self, value: f64) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (count, values) = &mut *guard;
        *count += 1;
        if values.len() < MAX_VALUES {
            values.push(value);
        } else if let Some(slot) = values.get_mut(fastrand::u64(..*count) as usize) {
            *slot = value;
        }
    }
}

/// The values of one document's metrics, by metric name.
enum Values {
    Count(u64),
    Seconds(u64, Vec<f64>),
}

/// Writes the documents: every interval from a task, and once more at shutdown.
#[derive(Clone)]
pub struct Writer(Arc<Mutex<Documents>>);

impl Writer {
    /// Writes the documents for what was recorded since the last ones.
    pub fn flush(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let docs = self.0.lock().unwrap_or_else(|e| e.into_inner()).take(now);
        for doc in docs {
            let mut line = doc.to_string().into_bytes();
            line.push(b'\n');
            super::write_stdout_line(&line);
        }
    }
}

impl Documents {
    /// Writes the documents every `interval` from a task, for good; the [`Writer`] writes
    /// the last interval's at shutdown.
    pub fn start(self, interval: Duration) -> Writer {
        let writer = Writer(Arc::new(Mutex::new(self)));
        let every_interval = writer.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(interval);
            every.tick().await;
            loop {
                every.tick().await;
                every_interval.flush();
            }
        });
        writer
    }

    /// The documents for what was recorded since the last call.
    pub fn take(&mut self, timestamp_ms: u64) -> Vec<Value> {
        // Dimension values (after `Environment`) -> metric name -> values.
        let mut groups: BTreeMap<Vec<(&str, String)>, BTreeMap<&str, Values>> = BTreeMap::new();
        let mut counters = Vec::new();
        self.registry.visit_counters(|key, c| {
            counters.push((key.clone(), c.load(Ordering::Relaxed)));
        });
        for (key, now) in counters {
            let Some((d, dims)) = dimensions(&key, Kind::Counter) else {
                continue;
            };
            let before = self.sent.insert(key, now).unwrap_or(0);
            let group = groups.entry(dims).or_default();
            if let Values::Count(n) = group.entry(d).or_insert(Values::Count(0)) {
                *n += now.saturating_sub(before);
            }
        }
        self.registry.visit_histograms(|key, h| {
            let (count, values) =
                std::mem::take(&mut *h.0.lock().unwrap_or_else(|e| e.into_inner()));
            let Some((d, dims)) = dimensions(key, Kind::Histogram).filter(|_| count > 0) else {
                return;
            };
            let group = groups.entry(dims).or_default();
            if let Values::Seconds(n, all) =
                group.entry(d).or_insert(Values::Seconds(0, Vec::new()))
            {
                *n += count;
                all.extend(values);
            }
        });
        groups
            .into_iter()
            .map(|(dims, metrics)| self.document(timestamp_ms, &dims, metrics))
            .collect()
    }

    fn document(
        &self,
        timestamp_ms: u64,
        dims: &[(&str, String)],
        metrics: BTreeMap<&str, Values>,
    ) -> Value {
        let mut names = vec!["Environment"];
        names.extend(dims.iter().map(|(k, _)| *k));
        let mut root = Map::new();
        root.insert("Environment".into(), self.env.clone().into());
        for (k, v) in dims {
            root.insert((*k).into(), v.clone().into());
        }
        let mut defs = Vec::new();
        for (name, values) in metrics {
            let (unit, value) = match values {
                Values::Count(n) => ("Count", json!(n)),
                Values::Seconds(_, mut all) => {
                    fastrand::shuffle(&mut all);
                    all.truncate(MAX_VALUES);
                    ("Seconds", json!(all))
                }
            };
            defs.push(json!({"Name": name, "Unit": unit}));
            root.insert(name.into(), value);
        }
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [names],
                    "Metrics": defs,
                }],
            }),
        );
        Value::Object(root)
    }
}

/// The table's name for `key` and its EMF dimension values, when it is sent to EMF as `kind`.
fn dimensions(key: &Key, kind: Kind) -> Option<(&'static str, Vec<(&'static str, String)>)> {
    let d = doc(key.name()).filter(|d| d.kind == kind)?;
    let label = |name: &str| {
        key.labels()
            .find(|l| l.key() == name)
            .map(|l| l.value().to_string())
    };
    let dims = d
        .emf?
        .iter()
        .map(|dim| {
            let value = match *dim {
                "status_class" => label("status_class")
                    .or_else(|| label("status").and_then(|s| s.get(..1).map(|c| format!("{c}xx")))),
                other => label(other),
            };
            (*dim, value.unwrap_or_else(|| "none".into()))
        })
        .collect();
    Some((d.name, dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the EMF specification requires of a document, checked member by member.
    fn assert_valid_emf(doc: &Value) {
        let root = doc.as_object().expect("an object");
        let aws = root["_aws"].as_object().expect("_aws");
        assert!(aws["Timestamp"].is_u64(), "Timestamp: ms since the epoch");
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .expect("CloudWatchMetrics");
        assert!(!directives.is_empty());
        for dir in directives {
            assert_eq!(dir["Namespace"], NAMESPACE);
            for set in dir["Dimensions"].as_array().expect("Dimensions") {
                let set = set.as_array().expect("a dimension set");
                assert!(!set.is_empty() && set.len() <= 30);
                for dim in set {
                    let name = dim.as_str().expect("dimension name");
                    assert!(
                        root[name].is_string(),
                        "dimension {name} is a top-level string"
                    );
                }
            }
            let metrics = dir["Metrics"].as_array().expect("Metrics");
            assert!(!metrics.is_empty() && metrics.len() <= 100);
            for m in metrics {
                let name = m["Name"].as_str().expect("Name");
                assert!(["Count", "Seconds"].contains(&m["Unit"].as_str().unwrap()));
                let v = &root[name];
                let ok = v.is_number()
                    || v.as_array().is_some_and(|a| {
                        !a.is_empty() && a.len() <= MAX_VALUES && a.iter().all(Value::is_number)
                    });
                assert!(ok, "{name}'s value is a number or up to 100 numbers: {v}");
            }
        }
    }

    #[test]
    fn documents_follow_the_emf_structure_and_the_tables_dimensions() {
        let (recorder, mut docs) = Emf::new("test");
        metrics::with_local_recorder(&recorder, || {
            for status in ["200", "200", "204", "503"] {
                metrics::counter!("http_requests_total", "route" => "/v1/shows", "method" => "GET", "status" => status).increment(1);
            }
            metrics::counter!("http_requests_total", "route" => "/health", "method" => "GET", "status" => "200").increment(2);
            metrics::counter!("feeds_total", "outcome" => "partial").increment(1);
            metrics::counter!("http_requests_shed_total").increment(3);
            for i in 0..250 {
                metrics::histogram!("http_request_duration_seconds", "route" => "/v1/shows", "method" => "GET", "status_class" => "2xx").record(f64::from(i) / 1000.0);
            }
            metrics::gauge!("catalogue_items").set(12.0);
            metrics::counter!("catalogue_cache_hits_total").increment(1);
        });
        let first = docs.take(1_700_000_000_000);
        for d in &first {
            assert_valid_emf(d);
            assert_eq!(d["Environment"], "test");
        }
        let find = |docs: &[Value], metric: &str, dim: Option<(&str, &str)>| -> Value {
            docs.iter()
                .find(|d| !d[metric].is_null() && dim.is_none_or(|(k, v)| d[k] == v))
                .unwrap_or_else(|| panic!("no {metric} {dim:?} in {docs:?}"))
                .clone()
        };
        let ok = find(&first, "http_requests_total", Some(("status_class", "2xx")));
        assert_eq!(
            ok["http_requests_total"], 5,
            "summed over route, method and status"
        );
        assert_eq!(
            ok["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Environment", "status_class"]])
        );
        assert_eq!(
            find(&first, "http_requests_total", Some(("status_class", "5xx")))["http_requests_total"],
            1
        );
        assert_eq!(
            find(&first, "feeds_total", Some(("outcome", "partial")))["feeds_total"],
            1
        );
        let plain = find(&first, "http_requests_shed_total", None);
        assert_eq!(plain["http_requests_shed_total"], 3);
        assert_eq!(
            plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Environment"]])
        );
        let durations = plain["http_request_duration_seconds"].as_array().unwrap();
        assert_eq!(durations.len(), 100, "a sample of 250 observations");
        assert!(
            durations
                .iter()
                .all(|v| (0.0..0.25).contains(&v.as_f64().unwrap()))
        );
        for absent in ["catalogue_items", "catalogue_cache_hits_total"] {
            assert!(
                first.iter().all(|d| d[absent].is_null()),
                "{absent} is not sent"
            );
        }

        // The next interval: counters send their increase, histograms only new values.
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("http_requests_total", "route" => "/health", "method" => "GET", "status" => "200").increment(1);
        });
        let second = docs.take(1_700_000_060_000);
        second.iter().for_each(assert_valid_emf);
        assert_eq!(
            find(
                &second,
                "http_requests_total",
                Some(("status_class", "2xx"))
            )["http_requests_total"],
            1
        );
        assert_eq!(
            find(&second, "http_requests_shed_total", None)["http_requests_shed_total"],
            0
        );
        assert!(
            second
                .iter()
                .all(|d| d["http_request_duration_seconds"].is_null())
        );
    }
}
