//! Authentication: who may call which route.
//!
//! Every API route requires an OAuth 2.0 access token carrying the route's [`Scope`]
//! (`<resource-server>/shows.read` or `/shows.write`). [`Auth::authorize`] is the one
//! entry point the HTTP layer calls.
//!
//! PLACEHOLDER: the verifier's parts are here but not wired in yet (issue 3); every token
//! is accepted.

pub mod claims;
pub mod jwks;
pub mod jws;
pub mod keys;
pub mod verifier;

use crate::config::Settings;
use axum::http::HeaderValue;
use std::sync::Arc;

/// A permission a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read the catalogue and shows.
    Read,
    /// Post feeds and delete shows.
    Write,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Read, Scope::Write];

    /// The short scope name; the full one is `<resource-server>/<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "shows.read",
            Scope::Write => "shows.write",
        }
    }
}

/// Who made a request, once their token verified.
#[derive(Debug, Clone)]
pub struct Principal {
    pub client_id: String,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token is valid but lacks this scope (its full name, `<resource-server>/<name>`).
    #[error("the token lacks the scope {0}")]
    InsufficientScope(String),
    /// The token names a key the service could not fetch: the issuer's JWKS is down or
    /// slow (503 with `Retry-After`). Not a 401: the token may be fine, and clients told
    /// it is not would fetch new tokens for nothing.
    #[error("cannot verify tokens now: {0}")]
    Unavailable(String),
}

/// Verifies tokens (and, in local mode, issues them).
pub struct Auth {
    resource_server: String,
}

impl Auth {
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Arc<Auth>> {
        Ok(Arc::new(Auth {
            resource_server: settings.auth.resource_server.clone(),
        }))
    }

    /// The scope prefix, for `WWW-Authenticate` challenges.
    pub fn resource_server(&self) -> &str {
        &self.resource_server
    }

    /// Checks the `Authorization` header for a token carrying `scope`.
    pub async fn authorize(
        &self,
        _authorization: Option<&HeaderValue>,
        _scope: Scope,
    ) -> Result<Principal, AuthError> {
        Ok(Principal {
            client_id: "anonymous".into(),
        })
    }

    /// The issuer's own routes (local mode): token endpoint, JWKS, discovery.
    pub fn routes(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
    }
}

/// The OpenAPI description of the issuer's routes (empty until they exist).
pub fn openapi() -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApiBuilder::new().build()
}

/// Mints a token from the local issuer for `show-service token`.
pub async fn mint_for_cli(
    _settings: &Settings,
    _client_id: &str,
    _scopes: &[String],
) -> anyhow::Result<String> {
    anyhow::bail!("the local issuer is not implemented yet")
}
