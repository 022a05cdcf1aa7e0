//! The metrics table: every metric the service emits is a row of [`METRICS`] (name, type,
//! unit, labels, help, and the dimensions it carries to CloudWatch). Both exporters read it
//! (Prometheus for its descriptions, the EMF exporter for which metrics to send and with
//! which dimensions), and the README's metrics table is generated from it; it imports
//! neither of them.
//!
//! Code emits the metrics through the `metrics` facade (`metrics::counter!(NAME, "label" =>
//! value)`). Label values come only from closed sets (matched route templates, outcomes
//! named here), never from what a client sent. A test checks that every name used with the
//! facade under `src/` is in the table, with its type.

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
        "Feeds posted, by outcome: `accepted`, `rejected` (invalid, nothing written), `refused` (names shows of another partner, or unowned ones without `shows.admin`; nothing written), `partial` (some shows written), `failed` (nothing written).",
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
        "changes_served_total",
        Counter,
        &["op"],
        Some(&[]),
        "Changes served by `GET /v1/shows/changes`, by op: `put` (in the catalogue now) or `remove`.",
    ),
    m(
        "changes_cursors_expired_total",
        Counter,
        &[],
        None,
        "`GET /v1/shows/changes` answered 410 Gone: the cursor is older than the change log's retention, or another store's.",
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
            if file.ends_with("telemetry/table.rs") {
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
                    "{file}: metric `{name}` is not in telemetry::table::METRICS"
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
