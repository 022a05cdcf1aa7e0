//! Trace context: the trace id a request belongs to, from W3C `traceparent` or AWS's
//! `X-Amzn-Trace-Id` (which the ALB adds to every request), else a new one. Both are
//! checked against their formats; anything else is ignored, never logged or echoed.
//!
//! The id is the W3C form, 32 lowercase hex digits: an X-Ray root `1-5759e988-bd862e3f…`
//! becomes `5759e988bd862e3f…` (its epoch and random parts, as AWS maps them itself).

use axum::http::{HeaderMap, HeaderName};

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// The request's trace id: its `traceparent`'s, else its `X-Amzn-Trace-Id` root's, else new.
pub fn trace_id(headers: &HeaderMap) -> String {
    let given = |name: &HeaderName, parse: fn(&str) -> Option<String>| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(parse)
    };
    given(&TRACEPARENT, from_traceparent)
        .or_else(|| given(&AMZN_TRACE_ID, from_amzn))
        .unwrap_or_else(new_trace_id)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; a later version may add
/// fields after these (W3C Trace Context, "versioning"). All-zero ids are invalid.
fn from_traceparent(v: &str) -> Option<String> {
    let mut parts = v.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let known = version == "00" && parts.next().is_none();
    let later = is_hex(version, 2) && version != "00" && version != "ff";
    let valid = (known || later)
        && is_hex(trace, 32)
        && is_hex(parent, 16)
        && is_hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then(|| trace.to_string())
}

/// `Root=1-<8 hex epoch>-<24 hex>` among `;`-separated `key=value` fields.
fn from_amzn(v: &str) -> Option<String> {
    let root = v.split(';').find_map(|f| f.trim().strip_prefix("Root="))?;
    let mut parts = root.split('-');
    let (version, epoch, random) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = version == "1"
        && parts.next().is_none()
        && is_hex(epoch, 8)
        && is_hex(random, 24)
        && random.bytes().any(|b| b != b'0');
    valid.then(|| format!("{epoch}{random}"))
}

/// A new random trace id (never all zeros).
fn new_trace_id() -> String {
    uuid::Uuid::from_u128(fastrand::u128(1..))
        .simple()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(pairs: &[(&'static str, &str)]) -> String {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        trace_id(&h)
    }

    const W3C: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const XRAY: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    #[test]
    fn valid_trace_headers_give_their_trace_id() {
        assert_eq!(
            with(&[("traceparent", W3C)]),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            with(&[("x-amzn-trace-id", XRAY)]),
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(
            with(&[(
                "x-amzn-trace-id",
                "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793"
            )]),
            "5759e988bd862e3fe1be46a994272793"
        );
        // traceparent wins; a later version with more fields is read as far as known.
        assert_eq!(
            with(&[("traceparent", W3C), ("x-amzn-trace-id", XRAY)]),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            with(&[(
                "traceparent",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
            )]),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn hostile_or_invalid_trace_headers_are_replaced_by_a_new_id() {
        let hostile = [
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            ),
            (
                "traceparent",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            ),
            (
                "traceparent",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            ),
            (
                "traceparent",
                "00-\"},{\"forged\":true}-00f067aa0ba902b7-01",
            ),
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a99427279;Sampled=1",
            ),
            (
                "x-amzn-trace-id",
                "Root=2-5759e988-bd862e3fe1be46a994272793",
            ),
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793-x",
            ),
            ("x-amzn-trace-id", "Root=<script>"),
            ("x-amzn-trace-id", ""),
        ];
        for (name, value) in hostile {
            let id = with(&[(name, value)]);
            assert!(is_hex(&id, 32), "{name}: {value} gave {id}");
            assert!(!value.contains(&id), "{name}: {value} was kept");
        }
    }

    #[test]
    fn new_trace_ids_are_distinct_32_hex_digits() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| with(&[])).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| is_hex(id, 32) && id != &"0".repeat(32)));
    }
}
