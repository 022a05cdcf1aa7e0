//! The local issuer's HTTP face (local mode only), shaped like Cognito's token endpoint so
//! clients and scripts work the same locally and in AWS. Who gets which token is decided
//! by [`crate::auth::issuer`]; this module reads the request, renders the answer and
//! documents the routes:
//!
//! - `POST /oauth/token` (and Cognito's `/oauth2/token`), `application/x-www-form-urlencoded`;
//!   the client authenticates by HTTP Basic or by `client_id` + `client_secret` in the body
//!   (one method, not both); `grant_type=client_credentials`; `scope` optional.
//! - `200 {"access_token","token_type":"Bearer","expires_in":3600}` with
//!   `Cache-Control: no-store`; errors in RFC 6749 §5.2's shape, `{"error",
//!   "error_description"}`: `invalid_request`, `invalid_client` (401 with
//!   `WWW-Authenticate: Basic`), `unsupported_grant_type`, `invalid_scope` (400), and 429
//!   `temporarily_unavailable` with `Retry-After` past a rate limit.
//! - The form is at most 16 KiB (413 past it): the content type and the declared length are
//!   checked before any of the body is read, and no more than that is ever read.
//! - `GET /.well-known/jwks.json` publishes the key; `GET /.well-known/openid-configuration`
//!   describes the issuer (RFC 8414 fields).
//!
//! [`super::router`] serves these routes outside the API's concurrency limit: slow form
//! bodies never take the API's slots.

use super::extract::AnsweredClient;
use crate::auth::issuer::{GrantRequest, IssueError, Issuer, Refusal};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use utoipa::ToSchema;

/// Largest token request body read; a real one is under 200 bytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// An RS256 JWT access token.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until it expires.
    #[schema(example = 3600)]
    pub expires_in: i64,
}

/// An error of the token endpoint (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`, `invalid_scope`,
    /// `temporarily_unavailable` (rate limited) or `server_error`.
    #[schema(example = "invalid_client")]
    pub error: &'static str,
    /// What was wrong, for people.
    pub error_description: String,
}

/// The token request form, as a client authenticated by HTTP Basic sends it (the scheme
/// the document declares). A client may instead send `client_id` and `client_secret` in
/// the form (RFC 6749 §2.3.1), never both methods. (Documentation only: the handler parses
/// the body itself to refuse repeated parameters, as RFC 6749 §3.2 requires; the
/// document's `scope` pattern lists the scope names, see `openapi::document_for`.)
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    grant_type: GrantType,
    /// Space-separated scopes; short (`shows.read`) or full names. Default: all the
    /// client may have.
    #[schema(example = "shows.read shows.write")]
    scope: Option<String>,
}

/// The one grant this issuer serves.
#[derive(Debug, ToSchema)]
#[allow(non_camel_case_types, dead_code)]
enum GrantType {
    client_credentials,
}

/// A refusal, rendered in RFC 6749's shape: its status, error code and headers all
/// follow from its [`Refused`] kind.
#[derive(Debug)]
pub struct OAuthError {
    kind: Refused,
    description: String,
}

/// What kind of refusal a token request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The issuer's decision, or the form's (`invalid_request`, `invalid_client`).
    Issuer(Refusal),
    /// A form over [`MAX_REQUEST_BYTES`]: 413, `invalid_request`.
    TooLarge,
}

impl Refused {
    pub fn status(self) -> StatusCode {
        match self {
            Refused::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refused::Issuer(Refusal::InvalidClient) => StatusCode::UNAUTHORIZED,
            Refused::Issuer(Refusal::RateLimited(_)) => StatusCode::TOO_MANY_REQUESTS,
            Refused::Issuer(Refusal::ServerError) => StatusCode::INTERNAL_SERVER_ERROR,
            Refused::Issuer(
                Refusal::InvalidRequest | Refusal::InvalidScope | Refusal::UnsupportedGrantType,
            ) => StatusCode::BAD_REQUEST,
        }
    }

    /// The RFC 6749 error code.
    pub fn code(self) -> &'static str {
        match self {
            Refused::TooLarge => Refusal::InvalidRequest.code(),
            Refused::Issuer(r) => r.code(),
        }
    }

    /// The header the refusal carries besides the usual ones: `WWW-Authenticate` on a
    /// failed client authentication (RFC 6749 §5.2), `Retry-After` past a rate limit.
    fn header(self) -> Option<(header::HeaderName, HeaderValue)> {
        match self {
            Refused::Issuer(Refusal::InvalidClient) => Some((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"show-service\""),
            )),
            Refused::Issuer(Refusal::RateLimited(wait)) => {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                Some((header::RETRY_AFTER, HeaderValue::from(secs)))
            }
            _ => None,
        }
    }

    /// The `reason` label of `issuer_token_requests_rejected_total`; none for a server
    /// error, which is the log's.
    fn reason(self) -> Option<&'static str> {
        match self {
            Refused::Issuer(Refusal::ServerError) => None,
            Refused::Issuer(Refusal::RateLimited(_)) => Some("rate_limited"),
            other => Some(other.code()),
        }
    }
}

impl OAuthError {
    fn new(kind: Refused, description: impl Into<String>) -> Self {
        OAuthError {
            kind,
            description: description.into(),
        }
    }
    fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(Refused::Issuer(Refusal::InvalidRequest), d)
    }
    fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(Refused::Issuer(Refusal::InvalidClient), d)
    }

    /// What kind of refusal it is.
    pub fn kind(&self) -> Refused {
        self.kind
    }

    /// The RFC 6749 error code.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl From<IssueError> for OAuthError {
    fn from(e: IssueError) -> Self {
        OAuthError::new(Refused::Issuer(e.refusal), e.description)
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.code(),
            error_description: self.description,
        };
        let mut res = (self.kind.status(), no_store(), json_body(&body)).into_response();
        if let Some((name, value)) = self.kind.header() {
            res.headers_mut().insert(name, value);
        }
        res
    }
}

fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

fn json_body(v: &impl Serialize) -> ([(header::HeaderName, HeaderValue); 1], Vec<u8>) {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        serde_json::to_vec(v).unwrap_or_else(|_| b"{\"error\":\"server_error\"}".to_vec()),
    )
}

/// Reads one token request's form and client authentication: exactly one method, HTTP
/// Basic or `client_id` + `client_secret` in the body; a repeated parameter is refused
/// (RFC 6749 §3.2).
fn grant_request(headers: &HeaderMap, body: &[u8]) -> Result<GrantRequest, OAuthError> {
    check_form_head(headers)?;
    if body.len() > MAX_REQUEST_BYTES {
        return Err(too_large());
    }
    let mut form = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if form.contains_key(k.as_ref()) {
            return Err(OAuthError::invalid_request(format!(
                "parameter {k:?} given more than once"
            )));
        }
        form.insert(k.into_owned(), v.into_owned());
    }
    let param = |name: &str| form.get(name).map(String::as_str);

    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(parse_basic(v)?),
    };
    let (client_id, client_secret) = match (basic, param("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: HTTP Basic or client_secret in the body",
            ));
        }
        (Some((id, secret)), None) => {
            if param("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body is not the authenticated client",
                ));
            }
            (id, secret)
        }
        (None, Some(secret)) => match param("client_id") {
            Some(id) => (id.to_string(), secret.to_string()),
            None => {
                return Err(OAuthError::invalid_client(
                    "client_secret without client_id",
                ));
            }
        },
        (None, None) => {
            return Err(OAuthError::invalid_client(
                "client authentication required: HTTP Basic, or client_id and client_secret",
            ));
        }
    };
    Ok(GrantRequest {
        client_id,
        client_secret,
        grant_type: param("grant_type").map(str::to_owned),
        scope: param("scope").map(str::to_owned),
    })
}

/// Handles one token request whose body was read: the form, then the issuer's decision.
async fn token_request(
    issuer: &Arc<Issuer>,
    headers: &HeaderMap,
    body: &[u8],
    source: IpAddr,
    now: Instant,
) -> Result<(String, TokenResponse), OAuthError> {
    let grant = grant_request(headers, body)?;
    let issued = issuer.issue(grant, source, now).await?;
    Ok((
        issued.client_id,
        TokenResponse {
            access_token: issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
        },
    ))
}

/// Counts a refused token request in `issuer_token_requests_rejected_total{reason}`
/// (`invalid_client`, `invalid_request`, `invalid_scope`, `unsupported_grant_type`,
/// `rate_limited`); server errors are the log's.
fn count_rejection(e: &OAuthError) {
    let Some(reason) = e.kind.reason() else {
        return;
    };
    metrics::counter!("issuer_token_requests_rejected_total", "reason" => reason).increment(1);
}

/// A form past [`MAX_REQUEST_BYTES`]: 413, in RFC 6749's shape.
fn too_large() -> OAuthError {
    OAuthError::new(Refused::TooLarge, "request body too large (16 KiB at most)")
}

/// The checks made before any of the body is read: the form's content type, and a
/// declared length within [`MAX_REQUEST_BYTES`].
fn check_form_head(headers: &HeaderMap) -> Result<(), OAuthError> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BYTES as u64) {
        return Err(too_large());
    }
    Ok(())
}

/// The form, read only after [`check_form_head`] and never past [`MAX_REQUEST_BYTES`].
async fn read_form(headers: &HeaderMap, body: Body) -> Result<Bytes, OAuthError> {
    check_form_head(headers)?;
    match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        Err(_) => Err(OAuthError::invalid_request(
            "the request body could not be read",
        )),
    }
}

/// `Basic base64(id:secret)`. Anything else in `Authorization` fails client authentication.
fn parse_basic(v: &HeaderValue) -> Result<(String, String), OAuthError> {
    let bad =
        || OAuthError::invalid_client("the Authorization header is not HTTP Basic credentials");
    let v = v.to_str().map_err(|_| bad())?.trim();
    let (scheme, creds) = v.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    Ok((id.to_string(), secret.to_string()))
}

/// One token request: its source is the connection's peer (a router driven without a
/// server, as in tests, has none and counts as one unspecified source).
async fn handle(issuer: Arc<Issuer>, req: Request) -> Response {
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let body = match read_form(&headers, body).await {
        Ok(b) => b,
        Err(e) => {
            count_rejection(&e);
            return e.into_response();
        }
    };
    match token_request(&issuer, &headers, &body, source, Instant::now()).await {
        Ok((client_id, token)) => {
            metrics::counter!("issuer_tokens_issued_total").increment(1);
            tracing::debug!(client_id = %client_id, "token issued");
            let mut res = (StatusCode::OK, no_store(), json_body(&token)).into_response();
            res.extensions_mut().insert(AnsweredClient(client_id));
            res
        }
        Err(e) => {
            tracing::debug!(reason = %e, "token request refused");
            count_rejection(&e);
            e.into_response()
        }
    }
}

/// Issues an access token by the client-credentials grant (local mode only; in AWS this
/// route belongs to Cognito).
#[utoipa::path(
    post, path = "/oauth/token", tag = "oauth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "A token", body = TokenResponse,
         headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "invalid_request, unsupported_grant_type or invalid_scope", body = OAuthErrorBody),
        (status = 413, description = "invalid_request: the form is over 16 KiB", body = OAuthErrorBody),
        (status = 401, description = "invalid_client", body = OAuthErrorBody,
         headers(("www-authenticate" = String, description = "Basic realm=\"show-service\""))),
        (status = 429, description = "Too many failed attempts from this source or for this id, or too many tokens for this client", body = OAuthErrorBody,
         headers(("retry-after" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn token(State(issuer): State<Arc<Issuer>>, req: Request) -> Response {
    handle(issuer, req).await
}

/// Cognito's path for the token endpoint; the same as `/oauth/token`.
#[utoipa::path(
    post, path = "/oauth2/token", tag = "oauth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "A token", body = TokenResponse),
        (status = 400, description = "invalid_request, unsupported_grant_type or invalid_scope", body = OAuthErrorBody),
        (status = 413, description = "invalid_request: the form is over 16 KiB", body = OAuthErrorBody),
        (status = 401, description = "invalid_client", body = OAuthErrorBody),
        (status = 429, description = "Too many failed attempts from this source or for this id, or too many tokens for this client", body = OAuthErrorBody),
    )
)]
pub async fn token_alias(State(issuer): State<Arc<Issuer>>, req: Request) -> Response {
    handle(issuer, req).await
}

/// The issuer's public signing keys (local mode only).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "oauth",
    responses((status = 200, description = "JWKS (RFC 7517)", content_type = "application/json", body = Object)))]
pub async fn jwks(State(issuer): State<Arc<Issuer>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        Bytes::from_owner(Arc::clone(issuer.jwks_json())),
    )
        .into_response()
}

/// The issuer's metadata: issuer, token endpoint, JWKS URL, scopes (local mode only).
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth",
    responses((status = 200, description = "Issuer metadata (RFC 8414 fields)", content_type = "application/json", body = Object)))]
pub async fn discovery(State(issuer): State<Arc<Issuer>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        Bytes::from_owner(Arc::clone(issuer.discovery_json())),
    )
        .into_response()
}

/// The issuer's routes, with their state.
pub fn router(issuer: Arc<Issuer>) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/oauth2/token", post(token_alias))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .with_state(issuer)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(token, token_alias, jwks, discovery),
    components(schemas(TokenRequest, TokenResponse, OAuthErrorBody)),
    modifiers(&ClientBasic),
    tags((name = "oauth", description = "The built-in client-credentials issuer. Local mode \
        (APP__AUTH__MODE=local) only: elsewhere these routes answer 404, and in AWS API \
        Gateway sends /oauth2/token to Cognito")),
)]
struct IssuerDoc;

struct ClientBasic;

impl utoipa::Modify for ClientBasic {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The client's id and secret (or client_id and client_secret in the form)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI description of the issuer's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <IssuerDoc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
mod tests;
