//! The one API error type. Each variant is a status; its response carries the JSON
//! envelope `{"error","requestId","details"?}`. Internal causes are logged here, once,
//! and never sent to the client.

use crate::auth::AuthError;
use crate::domain::Problem;
use crate::store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// The exact message of a body that is not JSON (kept from the original challenge).
pub const NOT_JSON: &str = "Could not decode request: JSON parsing failed";

/// The error envelope every non-2xx answer carries.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong, for people.
    #[schema(
        example = "Could not decode request: payload[3].slug must match ^show/[a-z0-9][a-z0-9-]*$"
    )]
    pub error: String,
    /// The request id (also in the `x-request-id` header), for support.
    pub request_id: String,
    /// Every problem found, with its path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Problem>,
}

/// The error part of an answer, put in the response's extensions; the request middleware
/// renders it with the request id (see `http::middleware`).
#[derive(Debug, Clone)]
pub struct ErrorPayload {
    pub error: String,
    pub details: Vec<Problem>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request breaks a rule; `details` lists every problem.
    #[error("{message}")]
    BadRequest {
        message: String,
        details: Vec<Problem>,
    },
    /// 401: no token, or one that does not verify.
    #[error("unauthorized")]
    Unauthorized,
    /// 403: a valid token without the route's scope (its full name).
    #[error("insufficient scope")]
    Forbidden { scope: String },
    /// 403: the token's client may not act on these objects (another partner's shows, or
    /// unowned ones without `shows.admin`); `details` lists each, never naming its owner.
    #[error("{message}")]
    NotYours {
        message: String,
        details: Vec<Problem>,
    },
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 410: what the request points at is no longer held (a changes cursor past the
    /// change log's retention, or another store's): the message says what to do instead.
    #[error("{0}")]
    Gone(String),
    /// 413: the body is larger than the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 503 with `Retry-After`: the store cannot answer now, or a write was only partly done.
    #[error("service unavailable")]
    Unavailable {
        message: String,
        retry_after: Duration,
        details: Vec<Problem>,
    },
    /// 500: anything else; the cause is logged, the client sees a generic message.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// A 400 listing `problems`; the message names the first one.
    pub fn invalid(problems: Vec<Problem>) -> ApiError {
        let first = problems
            .first()
            .map(|p| format!("{} {}", p.path, p.message))
            .unwrap_or_else(|| "invalid request".into());
        ApiError::BadRequest {
            message: format!("Could not decode request: {first}"),
            details: problems,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::NotYours { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::BadCursor => ApiError::bad_request("the cursor is not valid"),
            StoreError::Unavailable {
                reason,
                retry_after,
            } => {
                tracing::warn!(%reason, "store unavailable");
                ApiError::Unavailable {
                    message: "the store is unavailable; retry later".into(),
                    retry_after,
                    details: Vec::new(),
                }
            }
            StoreError::Partial {
                written,
                not_written,
                reason,
            } => {
                tracing::error!(written, not_written = not_written.len(), %reason, "partial write");
                let details = not_written
                    .iter()
                    .map(|slug| Problem::new(slug.clone(), "not written"))
                    .collect();
                ApiError::Unavailable {
                    message: format!(
                        "only {written} of {} shows were written; post the feed again",
                        written + not_written.len()
                    ),
                    retry_after: Duration::from_secs(1),
                    details,
                }
            }
            StoreError::Forbidden { slugs, written } => {
                let details = slugs
                    .into_iter()
                    .map(|slug| Problem::new(slug, "belongs to another partner"))
                    .collect();
                let message = if written == 0 {
                    "these shows belong to another partner; nothing was written".to_string()
                } else {
                    format!(
                        "these shows were taken by another partner while the feed was \
                         written; {written} of its other shows were stored"
                    )
                };
                ApiError::NotYours { message, details }
            }
            StoreError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::InsufficientScope(scope) => ApiError::Forbidden { scope },
            // The issuer's keys cannot be fetched: our outage, not the client's fault.
            AuthError::Unavailable(reason) => {
                tracing::debug!(%reason, "token not verified: keys unavailable");
                ApiError::Unavailable {
                    message: "access tokens cannot be verified right now; retry later".into(),
                    retry_after: Duration::from_secs(5),
                    details: Vec::new(),
                }
            }
            other => {
                tracing::debug!(reason = %other, "token refused");
                ApiError::Unauthorized
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut headers = axum::http::HeaderMap::new();
        match &self {
            ApiError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            ApiError::Forbidden { scope } => {
                let v = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
                if let Ok(v) = HeaderValue::from_str(&v) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            ApiError::Unavailable { retry_after, .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_secs().max(1)),
                );
            }
            _ => {}
        }
        let (error, details) = match self {
            ApiError::BadRequest { message, details } => (message, details),
            ApiError::Unauthorized => ("missing or invalid access token".into(), Vec::new()),
            ApiError::Forbidden { ref scope } => (
                format!("the access token lacks the scope {scope}"),
                Vec::new(),
            ),
            ApiError::NotYours { message, details } => (message, details),
            ApiError::NotFound(m) | ApiError::Gone(m) => (m, Vec::new()),
            ApiError::PayloadTooLarge => ("request body too large".into(), Vec::new()),
            ApiError::UnsupportedMediaType => {
                ("Content-Type must be application/json".into(), Vec::new())
            }
            ApiError::Unavailable {
                message, details, ..
            } => (message, details),
            ApiError::Internal(ref e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                ("internal error".into(), Vec::new())
            }
        };
        let mut res = (status, headers).into_response();
        res.extensions_mut().insert(ErrorPayload { error, details });
        res
    }
}

/// Short message for a status produced outside the handlers (routing, limits, timeouts).
pub fn default_message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "no such route",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route",
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Content-Type must be application/json",
        StatusCode::REQUEST_TIMEOUT => "request timed out",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "request headers too large",
        StatusCode::SERVICE_UNAVAILABLE => "service unavailable; retry later",
        StatusCode::TOO_MANY_REQUESTS => "too many requests",
        StatusCode::UNAUTHORIZED => "missing or invalid credentials",
        s if s.is_server_error() => "internal error",
        _ => "bad request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_its_status() {
        let cases = [
            (ApiError::bad_request("x"), 400),
            (ApiError::Unauthorized, 401),
            (
                ApiError::Forbidden {
                    scope: "shows.read".into(),
                },
                403,
            ),
            (ApiError::NotFound("x".into()), 404),
            (ApiError::PayloadTooLarge, 413),
            (ApiError::UnsupportedMediaType, 415),
            (StoreError::unavailable("down").into(), 503),
            (
                StoreError::Partial {
                    written: 1,
                    not_written: vec!["show/a".into()],
                    reason: "throttled".into(),
                }
                .into(),
                503,
            ),
            (StoreError::BadCursor.into(), 400),
            (
                StoreError::Forbidden {
                    slugs: vec!["show/a".into()],
                    written: 0,
                }
                .into(),
                403,
            ),
            (ApiError::Internal(anyhow::anyhow!("secret detail")), 500),
            (AuthError::Missing.into(), 401),
            (AuthError::Invalid("secret detail".into()).into(), 401),
            (
                AuthError::InsufficientScope("rs/shows.write".into()).into(),
                403,
            ),
            (AuthError::Unavailable("secret detail".into()).into(), 503),
        ];
        for (err, status) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            let res = err.into_response();
            assert_eq!(res.status().as_u16(), status);
            let payload = res.extensions().get::<ErrorPayload>().expect("payload");
            assert!(!payload.error.contains("secret"), "{}", payload.error);
        }
    }

    #[test]
    fn invalid_names_the_first_problem() {
        let e = ApiError::invalid(vec![
            Problem::new("payload[3].slug", "must match x"),
            Problem::new("payload[4].title", "is required"),
        ]);
        assert_eq!(
            e.to_string(),
            "Could not decode request: payload[3].slug must match x"
        );
    }
}
