//! The local OAuth 2.0 client-credentials issuer (local mode only), shaped like Cognito's
//! token endpoint so clients and scripts work the same locally and in AWS. This module
//! decides who gets which token; the HTTP layer (`http::oauth`) reads the form and the
//! `Authorization` header into a [`GrantRequest`], and renders the answer.
//!
//! - `grant_type=client_credentials`; `scope` optional, space separated, short
//!   (`shows.read`) or full (`<resource-server>/shows.read`) names, omitted meaning every
//!   scope the client may have.
//! - Refusals are RFC 6749 §5.2's codes ([`Refusal`]): `invalid_client`,
//!   `unsupported_grant_type`, `invalid_scope`, and `temporarily_unavailable` past a rate
//!   limit (below), with the time to wait.
//! - Limits: failed attempts are charged to the source address and, separately, to the
//!   attempted client id (known or not, so unknown and known ids get the same answers). A
//!   source that failed [`FAILURE_BURST`] times is refused until its bucket refills; an id
//!   that failed that often is refused only to sources that failed lately themselves, so
//!   a guesser elsewhere cannot lock the real client out. Issued tokens are limited per
//!   authenticated client (`auth.tokenratepersecond`, `auth.tokenburst`): only the client
//!   itself can use up its own bucket.
//! - Tokens are RS256 JWTs with Cognito's access-token claims (`sub` = `client_id`,
//!   `token_use: access`, full scope names, `auth_time`, `iss`, `exp`, `iat`, `jti`,
//!   `version: 2`), signed with the persisted key ([`super::keys`]).
//! - It publishes its key as a JWKS and describes itself in a discovery document (RFC 8414
//!   fields), both serialized once.
//!
//! Secrets are compared as SHA-256 digests in constant time, so neither their content nor
//! their length shows in the timing; an unknown client costs the same comparison.

use super::Scope;
use super::keys::SigningKey;
use super::rate_limit::RateLimiter;
use crate::config::AuthSettings;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Lifetime of an issued token (Cognito's default).
pub const TOKEN_TTL_SECONDS: i64 = 3600;
/// Failed attempts a source (or an attempted id) may make at once…
pub const FAILURE_BURST: u32 = 10;
/// …and then one every this many seconds.
pub const FAILURE_REFILL_SECONDS: f64 = 6.0;

/// A configured client, its secret kept only as a digest.
struct Client {
    id: String,
    /// SHA-256 of the secret: compared in constant time, whatever the lengths.
    secret_digest: [u8; 32],
    /// The scopes it may ask for.
    scopes: Vec<Scope>,
}

/// The local issuer: clients, the signing key, and the documents it publishes.
pub struct Issuer {
    /// The persisted key, parsed once; shared with nothing else.
    key: Arc<SigningKey>,
    /// `iss` of every token, and the base of the published URLs.
    issuer: String,
    /// Prefix of the full scope names written into tokens.
    resource_server: String,
    /// The configured clients (the development client first); fixed at start.
    clients: Vec<Client>,
    /// Tokens issued per authenticated client id; lives as long as the issuer.
    limiter: RateLimiter,
    /// Failed attempts per source address.
    failed_by_source: RateLimiter,
    /// Failed attempts per attempted client id, known or not.
    failed_by_id: RateLimiter,
    /// The JWKS document, serialized once.
    jwks: Arc<[u8]>,
    /// The discovery document, serialized once.
    discovery: Arc<[u8]>,
}

/// One token request, as the HTTP layer read it: the authenticated-to-be client and the
/// form's grant parameters.
#[derive(Debug)]
pub struct GrantRequest {
    pub client_id: String,
    pub client_secret: String,
    /// `grant_type`, if given.
    pub grant_type: Option<String>,
    /// `scope`, if given.
    pub scope: Option<String>,
}

/// An issued token.
#[derive(Debug)]
pub struct Issued {
    /// The authenticated client.
    pub client_id: String,
    /// An RS256 JWT access token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// Why a token request was refused, as RFC 6749 §5.2 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    InvalidRequest,
    InvalidClient,
    InvalidScope,
    UnsupportedGrantType,
    /// Past a rate limit: retry after this long.
    RateLimited(Duration),
    /// Signing failed; the details are in the log.
    ServerError,
}

impl Refusal {
    /// The RFC 6749 error code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::InvalidRequest => "invalid_request",
            Refusal::InvalidClient => "invalid_client",
            Refusal::InvalidScope => "invalid_scope",
            Refusal::UnsupportedGrantType => "unsupported_grant_type",
            Refusal::RateLimited(_) => "temporarily_unavailable",
            Refusal::ServerError => "server_error",
        }
    }
}

/// A refusal and what was wrong, for people (never internal error text).
#[derive(Debug, thiserror::Error)]
#[error("{}: {description}", refusal.code())]
pub struct IssueError {
    pub refusal: Refusal,
    pub description: String,
}

impl IssueError {
    /// A refusal of kind `refusal`.
    pub fn new(refusal: Refusal, description: impl Into<String>) -> Self {
        IssueError {
            refusal,
            description: description.into(),
        }
    }
    fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(Refusal::InvalidClient, d)
    }
    fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(Refusal::InvalidScope, d)
    }
    fn server_error() -> Self {
        Self::new(Refusal::ServerError, "internal error")
    }

    /// The RFC 6749 error code.
    pub fn code(&self) -> &'static str {
        self.refusal.code()
    }
}

/// A 429-to-be `temporarily_unavailable`, retry after `wait`.
fn rate_limited(wait: Duration) -> IssueError {
    IssueError::new(
        Refusal::RateLimited(wait),
        "too many token requests; retry later (tokens last an hour: reuse them)",
    )
}
/// The claims of an issued token, in Cognito's order.
#[derive(Serialize)]
struct IssuedClaims<'a> {
    sub: &'a str,
    token_use: &'static str,
    scope: String,
    auth_time: i64,
    iss: &'a str,
    exp: i64,
    iat: i64,
    version: u8,
    jti: String,
    client_id: &'a str,
}

fn secret_digest(secret: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Issuer {
    /// The issuer for `settings` (local mode), signing with `key`.
    pub fn new(settings: &AuthSettings, key: Arc<SigningKey>) -> anyhow::Result<Issuer> {
        let issuer = settings
            .issuer
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the local issuer needs its URL (auth.publicurl)"))?;
        let clients = settings
            .clients
            .iter()
            .map(|c| Client {
                id: c.id.clone(),
                secret_digest: secret_digest(&c.secret),
                scopes: c.scopes.clone(),
            })
            .collect();
        let base = issuer.trim_end_matches('/').to_string();
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": [key.public_jwk()] }))?;
        let discovery = serde_json::to_vec(&serde_json::json!({
            "issuer": issuer,
            "token_endpoint": format!("{base}/oauth/token"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": Scope::ALL
                .iter()
                .map(|s| s.full_name(&settings.resource_server))
                .collect::<Vec<_>>(),
            "response_types_supported": ["token"],
        }))?;
        Ok(Issuer {
            key,
            issuer,
            resource_server: settings.resource_server.clone(),
            clients,
            limiter: RateLimiter::new(settings.token_rate_per_second, settings.token_burst),
            failed_by_source: RateLimiter::with_rate(1.0 / FAILURE_REFILL_SECONDS, FAILURE_BURST),
            failed_by_id: RateLimiter::with_rate(1.0 / FAILURE_REFILL_SECONDS, FAILURE_BURST),
            jwks: jwks.into(),
            discovery: discovery.into(),
        })
    }

    /// The JWKS document the issuer publishes.
    pub fn jwks_json(&self) -> &Arc<[u8]> {
        &self.jwks
    }

    /// The discovery document the issuer publishes.
    pub fn discovery_json(&self) -> &Arc<[u8]> {
        &self.discovery
    }

    /// The scopes granted for a `scope` parameter (see the module doc).
    fn grant(&self, client: &Client, requested: Option<&str>) -> Result<Vec<Scope>, IssueError> {
        let requested = requested.map(str::trim).filter(|s| !s.is_empty());
        let Some(requested) = requested else {
            if client.scopes.is_empty() {
                return Err(IssueError::invalid_scope("the client may have no scope"));
            }
            return Ok(client.scopes.clone());
        };
        let mut granted = Vec::new();
        for name in requested.split_whitespace() {
            let scope = Scope::parse(name, &self.resource_server)
                .ok_or_else(|| IssueError::invalid_scope(format!("unknown scope {name:?}")))?;
            if !client.scopes.contains(&scope) {
                return Err(IssueError::invalid_scope(format!(
                    "the client may not have the scope {name:?}"
                )));
            }
            if !granted.contains(&scope) {
                granted.push(scope);
            }
        }
        granted.sort();
        Ok(granted)
    }

    /// Signs a token for `client_id` with `scopes`, issued at `now` (epoch seconds).
    fn mint(&self, client_id: &str, scopes: &[Scope], now: i64) -> anyhow::Result<String> {
        let scope = scopes
            .iter()
            .map(|s| s.full_name(&self.resource_server))
            .collect::<Vec<_>>()
            .join(" ");
        self.key.sign(&IssuedClaims {
            sub: client_id,
            token_use: "access",
            scope,
            auth_time: now,
            iss: &self.issuer,
            exp: now + TOKEN_TTL_SECONDS,
            iat: now,
            version: 2,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id,
        })
    }

    /// A token for a configured client without its secret: for `show-service token`,
    /// whose user holds the key file anyway.
    pub fn mint_for(&self, client_id: &str, requested: Option<&str>) -> anyhow::Result<String> {
        let client = self.clients.iter().find(|c| c.id == client_id).ok_or_else(|| {
            let ids: Vec<&str> = self.clients.iter().map(|c| c.id.as_str()).collect();
            anyhow::anyhow!(
                "no local client {client_id:?} (configured: {}; add more with APP__AUTH__CLIENTS)",
                ids.join(", ")
            )
        })?;
        let scopes = self
            .grant(client, requested)
            .map_err(|e| anyhow::anyhow!("{}", e.description))?;
        self.mint(&client.id, &scopes, super::verifier::unix_now())
    }

    /// Decides one token request from `source` at `now`: the limits, the secret, the
    /// grant type and the scopes, in that order, then signs.
    pub async fn issue(
        self: &Arc<Self>,
        req: GrantRequest,
        source: IpAddr,
        now: Instant,
    ) -> Result<Issued, IssueError> {
        let GrantRequest {
            client_id: id,
            client_secret: secret,
            grant_type,
            scope,
        } = req;
        // Guessing is limited before the secret is looked at, by failures only (see the
        // module doc); the same for every id, known or not.
        let source_key = source.to_string();
        self.failed_by_source
            .available(&source_key, now)
            .map_err(rate_limited)?;
        if let Err(wait) = self.failed_by_id.available(&id, now)
            && !self.failed_by_source.is_full(&source_key, now)
        {
            return Err(rate_limited(wait));
        }
        let client = self.clients.iter().find(|c| c.id == id);
        let presented = secret_digest(&secret);
        let expected = client.map_or([0u8; 32], |c| c.secret_digest);
        let secret_ok: bool = presented.ct_eq(&expected).into();
        let client = match client {
            Some(c) if secret_ok => c,
            _ => {
                self.failed_by_source.charge(&source_key, now);
                self.failed_by_id.charge(&id, now);
                return Err(IssueError::invalid_client("unknown client or wrong secret"));
            }
        };
        // Signing is limited per authenticated client: nobody else can use it up.
        self.limiter.check(&client.id, now).map_err(rate_limited)?;

        match grant_type.as_deref() {
            None => {
                return Err(IssueError::new(
                    Refusal::InvalidRequest,
                    "grant_type is required",
                ));
            }
            Some("client_credentials") => {}
            Some(other) => {
                return Err(IssueError::new(
                    Refusal::UnsupportedGrantType,
                    format!("grant_type {other:?} is not supported; use client_credentials"),
                ));
            }
        }
        let scopes = self.grant(client, scope.as_deref())?;

        // RSA signing is ~1 ms of CPU: off the async workers.
        let issuer = Arc::clone(self);
        let client_id = client.id.clone();
        let (token, client_id) = tokio::task::spawn_blocking(move || {
            let token = issuer.mint(&client_id, &scopes, super::verifier::unix_now());
            (token, client_id)
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "token signing task failed");
            IssueError::server_error()
        })?;
        let access_token = token.map_err(|e| {
            tracing::error!(error = format!("{e:#}"), "token signing failed");
            IssueError::server_error()
        })?;
        Ok(Issued {
            client_id,
            access_token,
            expires_in: TOKEN_TTL_SECONDS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::AccessClaims;
    use crate::config::Settings;
    use serde_json::Value;

    const RS: &str = "https://show-service-local.api";

    fn issuer() -> Arc<Issuer> {
        let settings = Settings::load(
            None,
            [(
                "APP__AUTH__CLIENTS".to_string(),
                "reader:reader-secret:shows.read".to_string(),
            )],
        )
        .unwrap();
        let key = Arc::new(SigningKey::generate().unwrap());
        Arc::new(Issuer::new(&settings.auth, key).unwrap())
    }

    fn grant(id: &str, secret: &str, grant_type: Option<&str>) -> GrantRequest {
        GrantRequest {
            client_id: id.into(),
            client_secret: secret.into(),
            grant_type: grant_type.map(str::to_owned),
            scope: None,
        }
    }

    #[tokio::test]
    async fn issue_checks_the_secret_then_the_grant_type() {
        let iss = issuer();
        let now = Instant::now();
        let here = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let ok = iss
            .issue(
                grant("reader", "reader-secret", Some("client_credentials")),
                here,
                now,
            )
            .await
            .unwrap();
        assert_eq!((ok.client_id.as_str(), ok.expires_in), ("reader", 3600));
        // A wrong secret is refused before the grant type is looked at.
        let err = iss
            .issue(grant("reader", "nope", Some("password")), here, now)
            .await
            .unwrap_err();
        assert_eq!(err.refusal, Refusal::InvalidClient);
        let err = iss
            .issue(
                grant("reader", "reader-secret", Some("password")),
                here,
                now,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unsupported_grant_type");
        let err = iss
            .issue(grant("reader", "reader-secret", None), here, now)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_request");
    }

    #[tokio::test]
    async fn issued_tokens_verify_with_the_published_jwks() {
        let iss = issuer();
        let token = iss.mint_for("reader", None).unwrap();
        let set = crate::auth::jwks::KeySet::from_json(iss.jwks_json()).unwrap();
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let mut only_rs256 = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        only_rs256.required_spec_claims.clear();
        only_rs256.validate_exp = false;
        only_rs256.validate_aud = false;
        let claims: AccessClaims =
            jsonwebtoken::decode(&token, set.get(&kid).unwrap().decoding(), &only_rs256)
                .unwrap()
                .claims;
        assert_eq!(claims.client_id.as_deref(), Some("reader"));

        // An independent implementation agrees: jsonwebtoken, from the published JWK.
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(iss.jwks_json()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&["http://127.0.0.1:8080"]);
        let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
        assert_eq!(data.header.kid.as_deref(), Some(kid.as_str()));
        assert_eq!(data.claims["scope"], format!("{RS}/shows.read"));

        let discovery: Value = serde_json::from_slice(iss.discovery_json()).unwrap();
        assert_eq!(discovery["issuer"], "http://127.0.0.1:8080");
        assert_eq!(
            discovery["jwks_uri"],
            "http://127.0.0.1:8080/.well-known/jwks.json"
        );
        assert_eq!(
            discovery["token_endpoint"],
            "http://127.0.0.1:8080/oauth/token"
        );
        assert_eq!(
            discovery["scopes_supported"],
            serde_json::json!([
                format!("{RS}/shows.read"),
                format!("{RS}/shows.write"),
                format!("{RS}/shows.admin")
            ])
        );
    }

    #[test]
    fn the_cli_path_names_unknown_clients_and_scopes() {
        let iss = issuer();
        let err = iss.mint_for("nobody", None).unwrap_err().to_string();
        assert!(
            err.contains("nobody") && err.contains("local-client"),
            "{err}"
        );
        let err = iss
            .mint_for("reader", Some("shows.write"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("shows.write"), "{err}");
    }
}
