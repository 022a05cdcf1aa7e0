//! The layers around every route, outermost first:
//! 1. request id (from `x-request-id`, else API Gateway's `apigw-requestid`, else new),
//!    echoed in the response;
//! 2. the request log line (method, matched route, status, latency, request id, client id);
//! 3. the error envelope: every 4xx/5xx answer becomes `{"error","requestId","details"?}`,
//!    including those made by routing (404, 405) and limits (413);
//! 4. the header size limit (431 past [`MAX_HEADER_BYTES`]), load shedding (503 past
//!    `server.maxconcurrency` requests in flight; probes exempt) and the request timeout
//!    (503);
//! 5. panics become a 500 with a generic message (the panic goes to the log);
//! 6. CORS, when origins are configured.
//!
//! The body size limit is not a layer here: the feed extractor applies it, and the
//! issuer's routes carry their own (see `http::router`).

use super::AppState;
use super::extract::{AnsweredClient, ClientId};
use crate::error::{ApiError, ErrorBody, ErrorPayload, default_message};
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static APIGW_REQUEST_ID: HeaderName = HeaderName::from_static("apigw-requestid");

/// The most request header bytes (names, values and `": "`/CRLF separators, as on the
/// wire) a request may carry; more gets 431 in the envelope. API Gateway and the ALB pass
/// far smaller headers; a JWT access token is a few KiB at most. (hyper itself answers a
/// bare 431 to more than 100 headers or about 400 KiB of them, before any of this runs.)
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The outer middleware's shared limits.
struct Limits {
    timeout: Duration,
    /// Requests in flight (probes not counted), at most `max_in_flight`.
    in_flight: AtomicUsize,
    max_in_flight: usize,
}

/// One request counted in [`Limits::in_flight`] until dropped.
struct InFlight(Arc<Limits>);

impl InFlight {
    /// Counts a request in, unless `max_in_flight` are already in flight.
    fn enter(limits: &Arc<Limits>) -> Option<InFlight> {
        let before = limits.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= limits.max_in_flight {
            limits.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight(limits.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The outer middleware as a tower layer: request id, limits, envelope and log line
/// around each route. Hand-written rather than `axum::middleware::from_fn`, which boxes the
/// inner service again and splits and rebuilds the request for its extractors on every
/// call (measured: see `bench/profiling.md`).
#[derive(Clone)]
struct EnvelopeLayer(Arc<Limits>);

impl<S> Layer<S> for EnvelopeLayer {
    type Service = Envelope<S>;
    fn layer(&self, inner: S) -> Envelope<S> {
        Envelope {
            inner,
            limits: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct Envelope<S> {
    inner: S,
    limits: Arc<Limits>,
}

impl<S> Service<Request> for Envelope<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id(&req);
        let client = ClientId::default();
        req.extensions_mut().insert(client.clone());
        let line = Line {
            started,
            id,
            method: req.method().clone(),
            route: req.extensions().get::<MatchedPath>().cloned(),
            client,
        };
        // Refusals are answered here, without calling the route.
        if header_bytes(&req) > MAX_HEADER_BYTES {
            let res = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.into_response();
            return Box::pin(std::future::ready(Ok(line.finish(res))));
        }
        let permit = if is_probe(req.uri().path()) {
            None
        } else {
            match InFlight::enter(&self.limits) {
                Some(p) => Some(p),
                None => return Box::pin(std::future::ready(Ok(line.finish(shed())))),
            }
        };
        // Called now, on the service that was polled ready: a route's future owns what it
        // needs, so no clone of the inner service is kept for later.
        let answer = self.inner.call(req);
        let timeout = self.limits.timeout;
        Box::pin(async move {
            let deadline = tokio::time::Instant::from_std(started) + timeout;
            let res = match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(res)) => res.into_response(),
                Ok(Err(never)) => match never {},
                Err(_) => {
                    tracing::warn!(timeout_ms = timeout.as_millis() as u64, "request timed out");
                    ApiError::Unavailable {
                        message: "the request timed out; retry later".into(),
                        retry_after: Duration::from_secs(1),
                        details: Vec::new(),
                    }
                    .into_response()
                }
            };
            drop(permit);
            Ok(line.finish(res))
        })
    }
}

/// Wraps `app` in every layer, in the order the module doc gives. The layers are composed
/// into one stack and given to the router once: each `Router::layer` call boxes every
/// route once more, and each box costs a clone and an allocation per request.
pub fn wrap(app: Router, state: AppState) -> Router {
    let server = &state.settings.server;
    let envelope = EnvelopeLayer(Arc::new(Limits {
        timeout: server.request_timeout,
        in_flight: AtomicUsize::new(0),
        max_in_flight: server.max_concurrency,
    }));
    let stack = ServiceBuilder::new()
        .layer(envelope)
        .layer(CatchPanicLayer::custom(|_panic| {
            ApiError::Internal(anyhow::anyhow!("a handler panicked")).into_response()
        }))
        .option_layer(cors_layer(&state.settings.cors.allowed_origins));
    app.fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(stack)
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                X_REQUEST_ID.clone(),
            ])
            .expose_headers([X_REQUEST_ID.clone(), header::ETAG])
            .max_age(Duration::from_secs(600)),
    )
}

/// A request id we accept from a client: 1–128 visible, unremarkable characters.
fn acceptable_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:/+=".contains(c))
}

fn request_id(req: &Request) -> HeaderValue {
    [&X_REQUEST_ID, &APIGW_REQUEST_ID]
        .into_iter()
        .filter_map(|name| req.headers().get(name))
        .find(|v| acceptable_id(v))
        .cloned()
        .unwrap_or_else(new_request_id)
}

/// A new request id: a version-4 UUID from the thread's fast generator (a request id must
/// be unique, not secret: `Uuid::new_v4` would make a `getrandom` system call per
/// request), formatted without an intermediate `String`.
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
        .unwrap_or(HeaderValue::from_static("unknown"))
}

/// The size of the request's headers as sent (HTTP/1.1 framing).
fn header_bytes(req: &Request) -> usize {
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

fn is_probe(path: &str) -> bool {
    path == super::LIVENESS_PATH || path == super::READINESS_PATH
}

fn shed() -> Response {
    ApiError::Unavailable {
        message: "the service is at capacity; retry later".into(),
        retry_after: Duration::from_secs(1),
        details: Vec::new(),
    }
    .into_response()
}

/// What the request log line needs from the request.
struct Line {
    started: Instant,
    id: HeaderValue,
    method: Method,
    route: Option<MatchedPath>,
    client: ClientId,
}

impl Line {
    /// Renders the error envelope when needed, echoes the request id, logs the line.
    fn finish(self, mut res: Response) -> Response {
        let status = res.status();
        if status.is_client_error() || status.is_server_error() {
            res = render_error(res, &self.id);
        }
        let client = self
            .client
            .get()
            .or_else(|| {
                res.extensions()
                    .get::<AnsweredClient>()
                    .map(|c| c.0.as_str())
            })
            .unwrap_or("-");
        crate::telemetry::RequestLine {
            method: self.method.as_str(),
            route: self.route.as_ref().map_or("unmatched", MatchedPath::as_str),
            status: status.as_u16(),
            latency_us: self.started.elapsed().as_micros() as u64,
            request_id: self.id.to_str().unwrap_or("-"),
            client_id: client,
        }
        .log();
        res.headers_mut().insert(X_REQUEST_ID.clone(), self.id);
        res
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_request_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| new_request_id().to_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id, &u.hyphenated().to_string());
        }
    }

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
