//! Extractors whose rejections are our own [`ApiError`]s:
//! - [`Authorized<S>`] requires a token carrying scope `S` (401/403 before the body is read);
//! - [`FeedBody`] requires `application/json`, a body within `server.bodylimitbytes`
//!   (413 past it), and a valid feed; [`json_body`] is its first two checks, for the
//!   other JSON bodies (the admin routes').

use super::AppState;
use crate::auth::{Principal, Scope};
use crate::domain::{Feed, FeedError};
use crate::error::{ApiError, NOT_JSON};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::marker::PhantomData;

/// A scope, as a type, so a handler's signature says what it requires.
pub trait RequiredScope: Send + Sync + 'static {
    const SCOPE: Scope;
}

/// `shows.read`.
pub struct Read;
/// `shows.write`.
pub struct Write;
/// `shows.admin`.
pub struct Admin;

impl RequiredScope for Read {
    const SCOPE: Scope = Scope::Read;
}
impl RequiredScope for Write {
    const SCOPE: Scope = Scope::Write;
}
impl RequiredScope for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// The caller, whose token verified and carries scope `S`.
pub struct Authorized<S: RequiredScope>(pub Principal, PhantomData<S>);

/// Where the caller goes for the request log line: the outer middleware puts an empty slot
/// in the request's extensions, the scope extractor fills it, and the middleware reads the
/// client id from it when it logs the answer.
#[derive(Debug, Clone, Default)]
pub struct ClientId(pub std::sync::Arc<std::sync::OnceLock<Principal>>);

impl ClientId {
    /// The client id, once the scope extractor has filled the slot.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(Principal::client_id)
    }
}

/// A client id a handler found itself (the token endpoint), in the response's extensions.
#[derive(Debug, Clone)]
pub struct AnsweredClient(pub String);

impl<S: RequiredScope> FromRequestParts<AppState> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(header::AUTHORIZATION);
        let principal = state.auth.authorize(header, S::SCOPE).await?;
        if let Some(slot) = parts.extensions.get::<ClientId>() {
            let _ = slot.0.set(principal.clone());
        }
        Ok(Authorized(principal, PhantomData))
    }
}

/// The bytes of a request body that says it is JSON (else 415), within
/// `server.bodylimitbytes` (else 413).
pub async fn json_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    if !is_json(&req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    // The body limit is applied here, where the bodies are read, rather than by a layer
    // on every route (axum's `DefaultBodyLimit` adds a request extension to each
    // request, a cached GET included).
    let limit = state.settings.server.body_limit;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge),
        Err(_) => Err(ApiError::bad_request("could not read the request body")),
    }
}

/// A valid feed from a JSON request body.
pub struct FeedBody(pub Feed);

/// True when the request says its body is JSON (`application/json`, any parameters).
fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json")
                || (m.len() > 17
                    && m[..12].eq_ignore_ascii_case("application/")
                    && m.to_ascii_lowercase().ends_with("+json"))
        })
        .unwrap_or(false)
}

impl FromRequest<AppState> for FeedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let body = json_body(req, state).await?;
        // Parsing a large feed is CPU work: keep it off the async workers.
        let feed = if body.len() > 64 * 1024 {
            tokio::task::spawn_blocking(move || Feed::parse(&body))
                .await
                .map_err(|e| ApiError::Internal(e.into()))?
        } else {
            Feed::parse(&body)
        };
        match feed {
            Ok(feed) => Ok(FeedBody(feed)),
            Err(FeedError::NotJson) => Err(ApiError::bad_request(NOT_JSON)),
            Err(FeedError::Invalid(problems)) => Err(ApiError::invalid(problems)),
        }
    }
}
