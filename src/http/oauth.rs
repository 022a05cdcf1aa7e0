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

/// The token request form. (Documentation only: the handler parses the body itself to
/// refuse repeated parameters, as RFC 6749 §3.2 requires.)
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    #[schema(example = "client_credentials", pattern = "^client_credentials$")]
    grant_type: String,
    /// Space-separated scopes; short (`shows.read`) or full names. Default: all the
    /// client may have.
    #[schema(example = "shows.read shows.write")]
    scope: Option<String>,
    /// With `client_secret`, instead of HTTP Basic.
    client_id: Option<String>,
    client_secret: Option<String>,
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
mod tests {
    use super::*;
    use crate::auth::issuer::{FAILURE_BURST, FAILURE_REFILL_SECONDS};
    use crate::auth::keys::SigningKey;
    use crate::config::Settings;
    use serde_json::Value;
    use std::time::Duration;

    const RS: &str = "https://show-service-local.api";
    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn settings(extra: &[(&str, &str)]) -> Settings {
        let mut env = vec![("APP__AUTH__CLIENTS", "reader:reader-secret:shows.read")];
        env.extend_from_slice(extra);
        Settings::load(
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap()
    }

    fn issuer(extra: &[(&str, &str)]) -> Arc<Issuer> {
        let key = Arc::new(SigningKey::generate().unwrap());
        Arc::new(Issuer::new(&settings(extra).auth, key).unwrap())
    }

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        for (k, v) in pairs {
            let name = header::HeaderName::from_bytes(k.as_bytes()).unwrap();
            h.insert(name, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    async fn ask(issuer: &Arc<Issuer>, h: HeaderMap, body: &str) -> Result<Value, OAuthError> {
        let (_, res) = token_request(issuer, &h, body.as_bytes(), HERE, Instant::now()).await?;
        assert_eq!(res.token_type, "Bearer");
        assert_eq!(res.expires_in, 3600);
        // The claims as issued (their signature is the auth tests' business).
        let payload = res.access_token.split('.').nth(1).unwrap();
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        Ok(serde_json::from_slice(&json).unwrap())
    }

    fn code(r: Result<Value, OAuthError>) -> &'static str {
        r.map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[tokio::test]
    async fn basic_and_form_authentication_both_issue_cognito_shaped_tokens() {
        let iss = issuer(&[]);
        let by_basic = ask(
            &iss,
            headers(&[("authorization", &basic("local-client", "local-secret"))]),
            "grant_type=client_credentials",
        )
        .await
        .unwrap();
        let by_form = ask(
            &iss,
            headers(&[]),
            "grant_type=client_credentials&client_id=local-client&client_secret=local-secret&scope=shows.read",
        )
        .await
        .unwrap();
        assert_eq!(
            by_basic["scope"],
            format!("{RS}/shows.read {RS}/shows.write")
        );
        assert_eq!(by_form["scope"], format!("{RS}/shows.read"));
        for claims in [&by_basic, &by_form] {
            assert_eq!(claims["sub"], "local-client");
            assert_eq!(claims["client_id"], "local-client");
            assert_eq!(claims["token_use"], "access");
            assert_eq!(claims["iss"], "http://127.0.0.1:8080");
            assert_eq!(claims["version"], 2);
            assert_eq!(
                claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
                3600
            );
            assert_eq!(claims["auth_time"], claims["iat"]);
            assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
            assert!(
                claims.get("aud").is_none(),
                "Cognito access tokens carry no aud"
            );
            let keys: Vec<&str> = claims
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys.len(), 10, "{keys:?}");
        }
        assert_ne!(by_basic["jti"], by_form["jti"]);
    }

    #[tokio::test]
    async fn scopes_may_be_short_or_full_and_only_those_allowed() {
        let iss = issuer(&[]);
        let reader = headers(&[("authorization", &basic("reader", "reader-secret"))]);
        let cases: &[(&str, &str)] = &[
            ("", "ok"),
            ("&scope=", "ok"),
            ("&scope=shows.read", "ok"),
            (
                "&scope=https%3A%2F%2Fshow-service-local.api%2Fshows.read",
                "ok",
            ),
            ("&scope=shows.read+shows.read", "ok"),
            ("&scope=shows.write", "invalid_scope"),
            ("&scope=shows.read+shows.write", "invalid_scope"),
            ("&scope=shows.delete", "invalid_scope"),
            (
                "&scope=https%3A%2F%2Fother.api%2Fshows.read",
                "invalid_scope",
            ),
        ];
        for (scope, want) in cases {
            let body = format!("grant_type=client_credentials{scope}");
            let got = ask(&iss, reader.clone(), &body).await;
            if *want == "ok" {
                assert_eq!(got.unwrap()["scope"], format!("{RS}/shows.read"), "{scope}");
            } else {
                assert_eq!(code(got), *want, "{scope}");
            }
        }
    }

    #[tokio::test]
    async fn bad_requests_get_their_rfc_6749_error() {
        let iss = issuer(&[]);
        let good = basic("local-client", "local-secret");
        let form_auth = "client_id=local-client&client_secret=local-secret";
        let json_type = {
            let mut h = headers(&[("authorization", &good)]);
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h
        };
        let no_type = {
            let mut h = headers(&[("authorization", &good)]);
            h.remove(header::CONTENT_TYPE);
            h
        };
        let cases: Vec<(&str, HeaderMap, String, &str)> = vec![
            (
                "wrong secret",
                headers(&[("authorization", &basic("local-client", "nope"))]),
                "grant_type=client_credentials".into(),
                "invalid_client",
            ),
            (
                "secret of another client",
                headers(&[("authorization", &basic("local-client", "reader-secret"))]),
                "grant_type=client_credentials".into(),
                "invalid_client",
            ),
            (
                "unknown client",
                headers(&[("authorization", &basic("who", "local-secret"))]),
                "grant_type=client_credentials".into(),
                "invalid_client",
            ),
            (
                "no authentication",
                headers(&[]),
                "grant_type=client_credentials".into(),
                "invalid_client",
            ),
            (
                "id without secret",
                headers(&[]),
                "grant_type=client_credentials&client_id=local-client".into(),
                "invalid_client",
            ),
            (
                "secret without id",
                headers(&[]),
                "grant_type=client_credentials&client_secret=local-secret".into(),
                "invalid_client",
            ),
            (
                "bearer instead of basic",
                headers(&[("authorization", "Bearer abc")]),
                "grant_type=client_credentials".into(),
                "invalid_client",
            ),
            (
                "basic not base64",
                headers(&[("authorization", "Basic !!!")]),
                "grant_type=client_credentials".into(),
                "invalid_client",
            ),
            (
                "basic without colon",
                headers(&[("authorization", "Basic bG9jYWwtY2xpZW50")]),
                "grant_type=client_credentials".into(),
                "invalid_client",
            ),
            (
                "two methods",
                headers(&[("authorization", &good)]),
                format!("grant_type=client_credentials&{form_auth}"),
                "invalid_request",
            ),
            (
                "other client_id in the body",
                headers(&[("authorization", &good)]),
                "grant_type=client_credentials&client_id=reader".into(),
                "invalid_request",
            ),
            (
                "no grant_type",
                headers(&[("authorization", &good)]),
                "scope=shows.read".into(),
                "invalid_request",
            ),
            (
                "password grant",
                headers(&[("authorization", &good)]),
                "grant_type=password".into(),
                "unsupported_grant_type",
            ),
            (
                "authorization_code grant",
                headers(&[]),
                format!("grant_type=authorization_code&{form_auth}"),
                "unsupported_grant_type",
            ),
            (
                "repeated parameter",
                headers(&[("authorization", &good)]),
                "grant_type=client_credentials&grant_type=client_credentials".into(),
                "invalid_request",
            ),
            (
                "JSON body",
                json_type,
                r#"{"grant_type":"client_credentials"}"#.into(),
                "invalid_request",
            ),
            (
                "no content type",
                no_type,
                "grant_type=client_credentials".into(),
                "invalid_request",
            ),
        ];
        for (name, h, body, want) in cases {
            assert_eq!(code(ask(&iss, h, &body).await), want, "{name}");
        }
        // The same client id in the body as in Basic is fine.
        let same = ask(
            &iss,
            headers(&[("authorization", &good)]),
            "grant_type=client_credentials&client_id=local-client",
        )
        .await;
        assert!(same.is_ok());
        let charset = {
            let mut h = headers(&[("authorization", &good)]);
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
            );
            h
        };
        assert!(
            ask(&iss, charset, "grant_type=client_credentials")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn each_client_is_rate_limited_with_retry_after() {
        let iss = issuer(&[
            ("APP__AUTH__TOKENRATEPERSECOND", "1"),
            ("APP__AUTH__TOKENBURST", "3"),
        ]);
        let h = headers(&[("authorization", &basic("local-client", "local-secret"))]);
        let body = "grant_type=client_credentials".as_bytes();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(token_request(&iss, &h, body, HERE, now).await.is_ok());
        }
        let err = token_request(&iss, &h, body, HERE, now).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
        let res = err.into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        // A wrong secret is told it is wrong: the issuance bucket is not the guessing one.
        let wrong = headers(&[("authorization", &basic("local-client", "guess"))]);
        let err = token_request(&iss, &wrong, body, HERE, now)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_client");
        // Another client is not affected.
        let reader = headers(&[("authorization", &basic("reader", "reader-secret"))]);
        assert!(token_request(&iss, &reader, body, HERE, now).await.is_ok());
        // A second later there is room again.
        let later = now + Duration::from_secs(1);
        assert!(token_request(&iss, &h, body, HERE, later).await.is_ok());
    }

    fn source(n: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, n))
    }

    /// Before: 40 wrong secrets for `local-client` gave 20×401, 20×429, and then the
    /// correct secret got 429 too.
    #[tokio::test]
    async fn failed_guesses_do_not_lock_the_real_client_out() {
        let iss = issuer(&[]);
        let body = "grant_type=client_credentials".as_bytes();
        let now = Instant::now();
        let wrong = headers(&[("authorization", &basic("local-client", "guess"))]);
        let mut codes = Vec::new();
        for _ in 0..40 {
            let err = token_request(&iss, &wrong, body, source(66), now)
                .await
                .unwrap_err();
            codes.push(err.status().as_u16());
        }
        let refused = FAILURE_BURST as usize;
        assert!(codes[..refused].iter().all(|c| *c == 401), "{codes:?}");
        assert!(codes[refused..].iter().all(|c| *c == 429), "{codes:?}");
        // The real client, elsewhere, still gets its token with the right secret.
        let good = headers(&[("authorization", &basic("local-client", "local-secret"))]);
        assert!(
            token_request(&iss, &good, body, source(1), now)
                .await
                .is_ok()
        );
        // Guessers spread over many sources: each new source gets one try at this id
        // before the id's own bucket turns it away; a clean source with the right
        // secret is still served.
        let late = token_request(&iss, &wrong, body, source(67), now)
            .await
            .unwrap_err();
        assert_eq!(late.code(), "invalid_client");
        let again = token_request(&iss, &wrong, body, source(67), now)
            .await
            .unwrap_err();
        assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            token_request(&iss, &good, body, source(2), now)
                .await
                .is_ok()
        );
        // The guessing source waits for its bucket to refill.
        let later = now + Duration::from_secs_f64(FAILURE_REFILL_SECONDS * 2.0);
        let err = token_request(&iss, &wrong, body, source(66), later)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_client");
    }

    /// Before: every unknown id shared one bucket, so after 25 unknown ids a new unknown
    /// id got 429 while a known id with a wrong secret got 401.
    #[tokio::test]
    async fn unknown_and_known_ids_are_answered_alike() {
        let iss = issuer(&[]);
        let body = "grant_type=client_credentials".as_bytes();
        let now = Instant::now();
        for i in 0..25u8 {
            let h = headers(&[("authorization", &basic(&format!("nobody-{i}"), "guess"))]);
            let _ = token_request(&iss, &h, body, source(100 + i), now).await;
        }
        let unknown = headers(&[("authorization", &basic("nobody-new", "guess"))]);
        let known = headers(&[("authorization", &basic("reader", "guess"))]);
        let a = token_request(&iss, &unknown, body, source(200), now)
            .await
            .unwrap_err();
        let b = token_request(&iss, &known, body, source(201), now)
            .await
            .unwrap_err();
        assert_eq!(a.kind(), b.kind());
        assert_eq!(a.code(), "invalid_client");
        assert_eq!(a.description, b.description);
    }

    #[test]
    fn rejections_are_counted_by_reason() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            count_rejection(&OAuthError::from(IssueError::new(
                Refusal::RateLimited(Duration::from_secs(1)),
                "x",
            )));
            count_rejection(&OAuthError::invalid_client("x"));
            count_rejection(&too_large());
            count_rejection(&OAuthError::from(IssueError::new(
                Refusal::ServerError,
                "x",
            )));
        });
        let counted = crate::auth::test_metrics::counters(&snapshotter);
        let want: std::collections::HashMap<String, u64> =
            ["rate_limited", "invalid_client", "invalid_request"]
                .map(|r| {
                    (
                        format!("issuer_token_requests_rejected_total{{reason={r}}}"),
                        1,
                    )
                })
                .into();
        assert_eq!(counted, want, "server errors are not counted");
    }

    #[tokio::test]
    async fn the_form_is_checked_before_its_body_is_read() {
        // A body that never ends: answered from the headers alone.
        let endless =
            Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
        let mut h = headers(&[]);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let err = tokio::time::timeout(Duration::from_secs(30), read_form(&h, endless))
            .await
            .expect("answered without reading")
            .unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        let endless =
            Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
        let mut h = headers(&[]);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(4u64 << 20));
        let err = tokio::time::timeout(Duration::from_secs(30), read_form(&h, endless))
            .await
            .expect("answered without reading")
            .unwrap_err();
        assert!(err.description.contains("too large"), "{err}");
        // Without a declared length, reading stops at the cap.
        let big = Body::from_stream(futures::stream::iter(
            (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; 1024]))),
        ));
        let err = read_form(&headers(&[]), big).await.unwrap_err();
        assert!(err.description.contains("too large"), "{err}");
        let ok = read_form(&headers(&[]), Body::from("grant_type=client_credentials"))
            .await
            .unwrap();
        assert_eq!(&ok[..], b"grant_type=client_credentials");
    }

    #[tokio::test]
    async fn error_responses_have_the_rfc_shape_and_headers() {
        let res = OAuthError::invalid_client("nope").into_response();
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"show-service\""
        );
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "invalid_client", "error_description": "nope"})
        );
        let res = OAuthError::from(IssueError::new(Refusal::InvalidScope, "x")).into_response();
        assert_eq!(res.status(), 400);
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
        let res = too_large().into_response();
        assert_eq!(res.status(), 413);
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "invalid_request");
    }

    #[test]
    fn the_issuer_routes_are_documented() {
        let doc = openapi();
        for path in [
            "/oauth/token",
            "/oauth2/token",
            "/.well-known/jwks.json",
            "/.well-known/openid-configuration",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path}");
        }
        let schemes = &doc.components.as_ref().unwrap().security_schemes;
        assert!(schemes.contains_key("client_basic"));
    }
}
