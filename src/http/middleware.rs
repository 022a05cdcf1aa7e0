//! The layers around every route, outermost first, all of them tower or tower-http layers
//! configured here:
//! 1. request id: `x-request-id`, else API Gateway's `apigw-requestid` (either only when
//!    short and plain), else a new UUID; echoed in the response (`SetRequestId`,
//!    `PropagateRequestId`);
//! 2. `TraceLayer`: the request's span (its `trace_id`, from `traceparent` or
//!    `X-Amzn-Trace-Id` or new, is on every log line of the request) and the request log
//!    line (method, matched route, status, latency, request id, client id; [`log_line`]);
//! 3. the error envelope: every 4xx/5xx answer becomes `{"error","requestId","details"?}`,
//!    including those made by routing (404, 405) and the limits below;
//! 4. the header size limit (431 past [`MAX_HEADER_BYTES`]) and the request timeout (503);
//! 5. panics become a 500 with a generic message (the panic goes to the log);
//! 6. on the API routes only ([`limit`]; a stack each, so a route is boxed once), load
//!    shedding: 503 past `server.maxconcurrency` requests in flight.
//!
//! CORS, when configured, wraps the whole router ([`cors`]). The body size limit is the
//! feed extractor's, and the issuer's routes carry their own.

use super::AppState;
use super::extract::{AnsweredClient, ClientId};
use super::metrics as request_metrics;
use crate::error::{ApiError, ErrorBody, ErrorPayload, default_message};
use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Extension, MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use tower::{BoxError, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing::Span;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static APIGW_REQUEST_ID: HeaderName = HeaderName::from_static("apigw-requestid");

/// The most request header bytes (as on the wire) a request may carry; more gets 431 in
/// the envelope. A JWT access token is a few KiB at most. (hyper itself answers a bare 431
/// to more than 100 headers or about 400 KiB of them, before any of this runs.)
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The routes outside the API (probes, issuer) and the fallback in every layer but 6.
pub fn wrap(app: Router, state: AppState) -> Router {
    let app = app.fallback(|| async { ApiError::NotFound("no such route".into()) });
    stack(app, &state, None)
}

/// The API routes in every layer: past `server.maxconcurrency` in flight, 503 at once.
pub fn limit(routes: Router, state: &AppState) -> Router {
    stack(routes, state, Some(state.settings.server.max_concurrency))
}

/// The layers of the module doc in one stack (each `Router::layer` boxes every route).
fn stack(app: Router, state: &AppState, shed: Option<usize>) -> Router {
    let metrics = std::sync::Arc::new(request_metrics::RequestMetrics::default());
    let limit = shed.map(tower::limit::GlobalConcurrencyLimitLayer::new);
    let shed = limit.map(|l| ServiceBuilder::new().load_shed().layer(l).into_inner());
    app.layer(
        ServiceBuilder::new()
            .map_request(prepare)
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(request_metrics::in_flight_layer())
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request| {
                        let trace_id = super::trace::trace_id(req.headers());
                        tracing::error_span!("request", trace_id = trace_id.as_str())
                    })
                    .on_request(())
                    .on_response(move |res: &Response, latency, _: &Span| {
                        log_line(&metrics, res, latency)
                    })
                    .on_failure(()),
            )
            .layer(axum::middleware::map_response(envelope))
            .layer(HandleErrorLayer::new(refused))
            .filter(|req: Request| match header_bytes(req.headers()) {
                n if n > MAX_HEADER_BYTES => Err(HeadersTooLarge),
                _ => Ok(req),
            })
            .timeout(state.settings.server.request_timeout)
            .layer(CatchPanicLayer::custom(|_panic| {
                ApiError::Internal(anyhow::anyhow!("a handler panicked")).into_response()
            }))
            .option_layer(shed)
            // Both arms of the optional layer must fail alike: shedding fails with BoxError.
            .map_err(|never: std::convert::Infallible| -> BoxError { match never {} }),
    )
}

/// Before the request id is set: drops a client's request id unless it is plain, takes
/// API Gateway's in its place, and leaves the caller's slot for the scope extractor.
fn prepare(mut req: Request) -> Request {
    let headers = req.headers_mut();
    if headers
        .get(&X_REQUEST_ID)
        .is_some_and(|v| !acceptable_id(v))
    {
        headers.remove(&X_REQUEST_ID);
    }
    if !headers.contains_key(&X_REQUEST_ID)
        && let Some(id) = headers.get(&APIGW_REQUEST_ID).filter(|v| acceptable_id(v))
    {
        let id = id.clone();
        headers.insert(X_REQUEST_ID.clone(), id);
    }
    req.extensions_mut().insert(ClientId::default());
    req
}

/// A request id we accept from a client: 1–128 visible, unremarkable characters.
fn acceptable_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:/+=".contains(c))
}

/// The size of the request's headers as sent (HTTP/1.1 framing).
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// The header size limit's refusal.
#[derive(Debug, thiserror::Error)]
#[error("request headers too large")]
struct HeadersTooLarge;

/// The answer to a request a layer refused: shed, timed out, or headers too large.
async fn refused(err: BoxError) -> Response {
    let unavailable = |message: &str| ApiError::Unavailable {
        message: message.into(),
        retry_after: Duration::from_secs(1),
        details: Vec::new(),
    };
    if err.is::<tower::load_shed::error::Overloaded>() {
        metrics::counter!("http_requests_shed_total").increment(1);
        unavailable("the service is at capacity; retry later").into_response()
    } else if err.is::<tower::timeout::error::Elapsed>() {
        metrics::counter!("http_requests_timed_out_total").increment(1);
        tracing::warn!("request timed out");
        unavailable("the request timed out; retry later").into_response()
    } else if err.is::<HeadersTooLarge>() {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.into_response()
    } else {
        ApiError::Internal(anyhow::anyhow!(err)).into_response()
    }
}

/// What the request log line needs from the request, handed to it in the response.
#[derive(Clone)]
struct Answered {
    method: Method,
    route: Option<MatchedPath>,
    request_id: HeaderValue,
    client: Option<ClientId>,
}

/// Renders the error envelope when needed and keeps what the log line needs.
async fn envelope(
    method: Method,
    route: Option<MatchedPath>,
    id: Option<Extension<RequestId>>,
    client: Option<Extension<ClientId>>,
    mut res: Response,
) -> Response {
    let request_id = id.map_or(HeaderValue::from_static("-"), |Extension(id)| {
        id.into_header_value()
    });
    let status = res.status();
    if status.is_client_error() || status.is_server_error() {
        res = render_error(res, &request_id);
    }
    res.extensions_mut().insert(Answered {
        method,
        route,
        request_id,
        client: client.map(|Extension(c)| c),
    });
    res
}

/// The request's metrics and log line (target `request`): WARN for a 5xx, INFO for a 4xx
/// and every write (not GET, HEAD, OPTIONS), DEBUG for a read that succeeded, which the
/// metrics count and API Gateway's access log records (README, "Operations", says why).
fn log_line(metrics: &request_metrics::RequestMetrics, res: &Response, latency: Duration) {
    let Some(a) = res.extensions().get::<Answered>() else {
        return;
    };
    let answered = || {
        res.extensions()
            .get::<AnsweredClient>()
            .map(|c| c.0.as_str())
    };
    let client = a.client.as_ref().and_then(ClientId::get).or_else(answered);
    let client_id = client.unwrap_or("-");
    let route = a.route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (status, latency_us) = (res.status().as_u16(), latency.as_micros() as u64);
    let (method, request_id) = (a.method.as_str(), a.request_id.to_str().unwrap_or("-"));
    metrics.record(route, &a.method, res.status(), latency);
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(target: "request", method, route, status, latency_us, request_id, client_id, "request")
        };
    }
    match status {
        500.. => line!(warn),
        _ if status >= 400 || !a.method.is_safe() => line!(info),
        _ => line!(debug),
    }
}

/// Gives an error response the JSON envelope, unless it already has a JSON body of its
/// own (the OAuth endpoints answer in RFC 6749's format).
fn render_error(res: Response, id: &HeaderValue) -> Response {
    let payload = res.extensions().get::<ErrorPayload>().cloned();
    let has_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if payload.is_none() && has_json {
        return res;
    }
    let status = res.status();
    let (error, details) = match payload {
        Some(p) => (p.error, p.details),
        None => (default_message(status).to_string(), Vec::new()),
    };
    let body = ErrorBody {
        error,
        request_id: id.to_str().unwrap_or("").to_string(),
        details,
    };
    let bytes =
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"internal error\"}".to_vec());
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE && !parts.headers.contains_key(header::RETRY_AFTER)
    {
        parts
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The whole router under CORS, when origins are configured.
pub fn cors(app: Router, origins: &[String]) -> Router {
    if origins.is_empty() {
        return app;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    app.layer(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                X_REQUEST_ID.clone(),
            ])
            // A browser client on another origin reads a list's position too.
            .expose_headers([
                X_REQUEST_ID.clone(),
                header::ETAG,
                header::HeaderName::from_static(super::changes::CHANGES_CURSOR),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_request_ids_are_kept_only_when_harmless() {
        for ok in ["abc", "1-2_3.4:5", "Root=1-5e1b4151-5ac6c58f5ab3b6d3"] {
            assert!(acceptable_id(&HeaderValue::from_static(ok)), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in ["", "a b", "a\"b", "<script>", long.as_str()] {
            assert!(
                !acceptable_id(&HeaderValue::from_str(bad).unwrap()),
                "{bad}"
            );
        }
    }
}
