//! Authentication: who may call which route.
//!
//! Every API route requires an OAuth 2.0 access token carrying the route's [`Scope`]
//! (`<resource-server>/shows.read`, `/shows.write` or `/shows.admin`). [`Auth::authorize`]
//! is the one entry point the HTTP layer calls; it answers with a [`Principal`] or an
//! [`AuthError`] (401, 403, or 503 when the issuer's keys cannot be fetched).
//! [`Auth::actor`] says who a verified principal acts as: its client id, its partner (the
//! partner map `APP__AUTH__PARTNERS` names, else the client id itself) and whether its
//! token holds `shows.admin`; the store applies the ownership rule to that [`Actor`].
//!
//! Two modes (`APP__AUTH__MODE`), one verifier:
//! - `jwt`: tokens come from an external issuer (Cognito); its JWKS is fetched over HTTP.
//! - `local`: the service is its own client-credentials issuer ([`issuer`]); its key is
//!   handed to the same verifier in-process. `http::oauth` serves its routes.
//!
//! This module knows nothing of axum routing or of the HTTP layer: it sits below `http`
//! and above `domain` (whose [`Scope`] it re-exports).
//!
//! # Layout
//! - [`keys`]: the local issuer's persisted RSA key and its RFC 7638 `kid`.
//! - [`jwks`]: JWKS parsing and the key cache (refetch rules, 1.5 s budget).
//! - [`claims`]: the claim rules (issuer, times, token use, audience, scopes).
//! - [`verifier`]: signature + claims, and the cache of verified tokens.
//! - [`issuer`]: the local issuer: clients, secrets, failure limits, token minting.
//! - [`rate_limit`]: the token buckets of the issuer's limits.
//!
//! # The `Authorization` header
//! `Bearer <token>` (scheme in any case), or a bare token, as API Gateway's JWT authorizer
//! accepts both and forwards the header unchanged: refusing bare tokens here would break
//! clients that work through API Gateway. Any other scheme is refused.

pub mod claims;
pub mod issuer;
pub mod jwks;
pub mod keys;
pub mod rate_limit;
pub mod verifier;

use crate::config::{AuthMode, Settings};
use crate::domain::{Actor, PartnerMap};
use anyhow::Context;
use axum::http::HeaderValue;
use claims::{ClaimRules, Verified};
use issuer::Issuer;
use jwks::{FetchPolicy, KeySet, KeyStore};
use keys::SigningKey;
use std::sync::Arc;
use verifier::Verifier;

pub use crate::domain::Scope;

/// Who made a request, once their token verified: the verified token's claims, shared with
/// the verified-token cache (no copy per request).
#[derive(Debug, Clone)]
pub struct Principal(Arc<Verified>);

impl Principal {
    /// The token's `client_id` (else its `sub`).
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// Every scope the token grants, full names.
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }
}

/// Why a request was refused. The text is for the debug log, never for the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header (401).
    #[error("no bearer token")]
    Missing,
    /// A token that is malformed, forged, expired, for someone else… (401).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token is valid but lacks this scope (its full name, `<resource-server>/<name>`)
    /// (403).
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
    /// Prefix of the full scope names, e.g. `https://show-service-dev.api`.
    resource_server: String,
    /// `<resource_server>/<scope>`, by [`Scope::index`].
    full_scopes: [String; Scope::ALL.len()],
    /// Checks every token, in both modes; holds the key and token caches.
    verifier: Verifier,
    /// The local issuer, in local mode.
    issuer: Option<Arc<Issuer>>,
    /// The partner of each client id.
    partners: PartnerMap,
    /// [`VERIFICATIONS`] of accepted tokens, registered once (every authorized request
    /// counts one): `outcome="cached"`, a token verified before; `outcome="ok"`, verified now.
    accepted_cached: metrics::Counter,
    accepted_ok: metrics::Counter,
}

impl Auth {
    /// Builds the verifier (and, in local mode, the issuer, loading or generating its key
    /// in the data directory). In jwt mode the JWKS is fetched once here; if that fails the
    /// service still starts (a warning is logged) and fetches again on the first token.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Arc<Auth>> {
        let auth = &settings.auth;
        let rules = ClaimRules {
            issuer: auth
                .issuer
                .clone()
                .context("no token issuer is configured (APP__AUTH__ISSUER)")?,
            audience: auth.audience.clone(),
            leeway: auth.leeway.as_secs() as i64,
        };
        let (keys, issuer) = match auth.mode {
            AuthMode::Local => {
                let issuer = Arc::new(Issuer::new(auth, load_key(settings).await?)?);
                let keys = KeySet::from_json(issuer.jwks_json()).map_err(anyhow::Error::msg)?;
                (KeyStore::fixed(keys), Some(issuer))
            }
            AuthMode::Jwt => {
                let url = auth
                    .jwks_url
                    .as_deref()
                    .context("no JWKS URL is configured (APP__AUTH__JWKSURL)")?;
                let keys = KeyStore::http(url, FetchPolicy::default())?;
                if let Err(e) = keys.refresh().await {
                    tracing::warn!(url, error = %e, "the issuer's keys could not be fetched at start; tokens get 503 until they can");
                }
                (keys, None)
            }
        };
        Ok(Arc::new(Auth {
            full_scopes: Scope::ALL.map(|s| s.full_name(&auth.resource_server)),
            resource_server: auth.resource_server.clone(),
            verifier: Verifier::new(Arc::new(keys), rules),
            issuer,
            partners: auth.partners.clone(),
            accepted_cached: metrics::counter!(VERIFICATIONS, "outcome" => Outcome::Cached.label()),
            accepted_ok: metrics::counter!(VERIFICATIONS, "outcome" => Outcome::Ok.label()),
        }))
    }

    /// The scope prefix, for `WWW-Authenticate` challenges.
    pub fn resource_server(&self) -> &str {
        &self.resource_server
    }

    /// The full name of `scope`: `<resource-server>/<name>`.
    pub fn full_scope(&self, scope: Scope) -> &str {
        &self.full_scopes[scope.index()]
    }

    /// Checks the `Authorization` header for a valid token carrying `scope`.
    pub async fn authorize(
        &self,
        authorization: Option<&HeaderValue>,
        scope: Scope,
    ) -> Result<Principal, AuthError> {
        let now = verifier::unix_now();
        // The common case first: a token verified before, found by its bytes as sent.
        let (verified, accepted) = match authorization
            .and_then(|h| bearer_bytes(h.as_bytes()))
            .and_then(|t| self.verifier.cached(t, now))
        {
            Some(hit) => (hit, &self.accepted_cached),
            None => {
                let token = match bearer_token(authorization) {
                    Ok(t) => t,
                    // No token at all is not a verification.
                    Err(AuthError::Missing) => return Err(AuthError::Missing),
                    Err(e) => return Err(counted(Outcome::Malformed, e)),
                };
                let (verified, outcome) = self
                    .verifier
                    .verify_with_outcome(token, now)
                    .await
                    .map_err(|(outcome, e)| counted(outcome, e))?;
                let counter = match outcome {
                    Outcome::Cached => &self.accepted_cached,
                    _ => &self.accepted_ok,
                };
                (verified, counter)
            }
        };
        let needed = self.full_scope(scope);
        if !verified.has_scope(needed) {
            return Err(counted(
                Outcome::MissingScope,
                AuthError::InsufficientScope(needed.to_string()),
            ));
        }
        accepted.increment(1);
        Ok(Principal(verified))
    }

    /// Who `principal` acts as: its client, that client's partner, and `admin` when its
    /// token holds `shows.admin`. `Err` (a sentence for the client) when the client id
    /// cannot be a partner (only an external issuer could sign such a token).
    pub fn actor(&self, principal: &Principal) -> Result<Actor, String> {
        let client = principal.client_id();
        let partner = self
            .partners
            .partner_of(client)
            .map_err(|_| "this client id cannot own shows; ask for another client".to_string())?;
        Ok(Actor {
            client: client.to_string(),
            partner: Some(partner),
            admin: principal.0.has_scope(self.full_scope(Scope::Admin)),
        })
    }

    /// The partner map: which owners an admin may name.
    pub fn partners(&self) -> &PartnerMap {
        &self.partners
    }

    /// The local issuer, in local mode; the HTTP layer serves its routes.
    pub fn issuer(&self) -> Option<&Arc<Issuer>> {
        self.issuer.as_ref()
    }
}

/// Counter of token checks by `outcome` ([`Outcome::label`]).
pub const VERIFICATIONS: &str = "auth_token_verifications_total";

/// What one token check came to: its label is the `outcome` of [`VERIFICATIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Verified now (signature and claims).
    Ok,
    /// The very token verified before, still usable.
    Cached,
    Malformed,
    Expired,
    NotYetValid,
    BadSignature,
    UnknownKey,
    WrongIssuer,
    WrongAudience,
    WrongTokenUse,
    /// Verified, but without the route's scope (403).
    MissingScope,
    /// The key could not be fetched (503).
    IssuerUnavailable,
}

impl Outcome {
    /// Every outcome, in the table's order.
    pub const ALL: [Outcome; 12] = [
        Outcome::Ok,
        Outcome::Cached,
        Outcome::Malformed,
        Outcome::Expired,
        Outcome::NotYetValid,
        Outcome::BadSignature,
        Outcome::UnknownKey,
        Outcome::WrongIssuer,
        Outcome::WrongAudience,
        Outcome::WrongTokenUse,
        Outcome::MissingScope,
        Outcome::IssuerUnavailable,
    ];

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Cached => "cached",
            Outcome::Malformed => "malformed",
            Outcome::Expired => "expired",
            Outcome::NotYetValid => "not_yet_valid",
            Outcome::BadSignature => "bad_signature",
            Outcome::UnknownKey => "unknown_key",
            Outcome::WrongIssuer => "wrong_issuer",
            Outcome::WrongAudience => "wrong_audience",
            Outcome::WrongTokenUse => "wrong_token_use",
            Outcome::MissingScope => "missing_scope",
            Outcome::IssuerUnavailable => "issuer_unavailable",
        }
    }
}

/// Counts a refusal under `outcome` and hands it back.
fn counted(outcome: Outcome, e: AuthError) -> AuthError {
    metrics::counter!(VERIFICATIONS, "outcome" => outcome.label()).increment(1);
    e
}

/// The token of a `Bearer <token>` header value, as bytes and unchecked: the key for a
/// verified-token cache lookup, nothing more. It is the token [`bearer_token`] would find
/// whenever that succeeds (the scheme is matched without regard to case, and only the
/// spaces and tabs a header value can hold are trimmed); a header it can't split goes to
/// [`bearer_token`], which says what is wrong.
fn bearer_bytes(value: &[u8]) -> Option<&[u8]> {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let start = rest.iter().position(|b| !blank(b))?;
    let end = rest.iter().rposition(|b| !blank(b))?;
    Some(&rest[start..=end])
}

/// The token in an `Authorization` header (see the module doc).
fn bearer_token(header: Option<&HeaderValue>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    // Only a cache miss comes here (see `Auth::authorize`), so the plain check will do.
    let value = value
        .to_str()
        .map_err(|_| AuthError::Invalid("the Authorization header is not ASCII".into()))?
        .trim();
    if value.is_empty() {
        return Err(AuthError::Missing);
    }
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some((scheme, _)) => {
            let scheme: String = scheme.chars().take(16).collect();
            return Err(AuthError::Invalid(format!(
                "authorization scheme {scheme:?} is not Bearer"
            )));
        }
        None if value.eq_ignore_ascii_case("bearer") => "",
        None => value,
    };
    if token.is_empty() {
        return Err(AuthError::Invalid("empty bearer token".into()));
    }
    Ok(token)
}

/// The local issuer's key, loaded or generated off the async workers (key generation
/// takes a noticeable fraction of a second).
async fn load_key(settings: &Settings) -> anyhow::Result<Arc<SigningKey>> {
    let dir = settings.store.data_dir();
    let key = tokio::task::spawn_blocking(move || SigningKey::load_or_generate(&dir)).await??;
    Ok(Arc::new(key))
}

/// Mints a token from the local issuer for `show-service token`, with the key the server
/// persisted; no server needs to run, but one must have started once with the same
/// settings: this never generates a key (a new key would sign tokens the running server
/// refuses). `scopes` are short or full names; none means every scope the client may have.
pub async fn mint_for_cli(
    settings: &Settings,
    client_id: &str,
    scopes: &[String],
) -> anyhow::Result<String> {
    if settings.auth.mode != AuthMode::Local {
        anyhow::bail!(
            "`token` uses the built-in issuer, which exists only with APP__AUTH__MODE=local; \
             with Cognito, ask its /oauth2/token endpoint"
        );
    }
    let dir = settings.store.data_dir();
    let key = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || SigningKey::load(&dir)
    })
    .await??
    .with_context(|| {
        format!(
            "no signing key at {}: the server makes it on its first start; start it once \
             with the same settings (`show-service serve`), or point APP__STORE__PATH at \
             the server's data file",
            dir.join(keys::KEY_FILE).display()
        )
    })?;
    let issuer = Issuer::new(&settings.auth, Arc::new(key))?;
    let requested = scopes.join(" ");
    issuer.mint_for(client_id, Some(requested.as_str()))
}

/// Counter values of a `DebuggingRecorder`'s snapshot, for tests.
#[cfg(test)]
pub(crate) mod test_metrics {
    use metrics_util::debugging::{DebugValue, Snapshotter};
    use std::collections::HashMap;

    /// Every counter by `name{label=value,…}`. Taking a snapshot resets the counters, so
    /// take one at the end of a test.
    pub fn counters(snapshotter: &Snapshotter) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            if let DebugValue::Counter(n) = value {
                let key = key.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                *out.entry(format!("{}{{{}}}", key.name(), labels.join(",")))
                    .or_default() += n;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_settings(dir: &std::path::Path) -> Settings {
        Settings::load(
            None,
            [(
                "APP__STORE__PATH".to_string(),
                dir.join("shows.db").display().to_string(),
            )],
        )
        .unwrap()
    }

    #[test]
    fn the_authorization_header_is_read_as_api_gateway_reads_it() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert!(matches!(bearer_token(None), Err(AuthError::Missing)));
        assert!(matches!(
            bearer_token(Some(&h(""))),
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            bearer_token(Some(&h("   "))),
            Err(AuthError::Missing)
        ));
        for (value, token) in [
            ("Bearer a.b.c", "a.b.c"),
            ("bearer a.b.c", "a.b.c"),
            ("BEARER  a.b.c ", "a.b.c"),
            ("a.b.c", "a.b.c"),
        ] {
            assert_eq!(bearer_token(Some(&h(value))).unwrap(), token, "{value}");
        }
        for value in [
            "Basic bG9jYWw6c2VjcmV0",
            "Token a.b.c",
            "Bearer ",
            "Bearer\ta.b.c x y",
        ] {
            let header = h(value);
            let got = bearer_token(Some(&header));
            // "Bearer\ta.b.c x y" splits at the first space: scheme "Bearer\ta.b.c".
            assert!(
                matches!(got, Err(AuthError::Invalid(_))),
                "{value}: {got:?}"
            );
        }
        let not_ascii = HeaderValue::from_bytes(b"Bearer \xff").unwrap();
        assert!(matches!(
            bearer_token(Some(&not_ascii)),
            Err(AuthError::Invalid(_))
        ));
    }

    /// The cache-lookup shortcut never finds a token the full reading would not: whenever
    /// it splits a header into a key that could be a cached token (visible ASCII, as every
    /// verified token is), the full reading accepts that header and finds the same bytes.
    #[test]
    fn the_cache_key_of_a_header_is_the_token_the_full_reading_finds() {
        let mut split = 0;
        for prefix in [
            "Bearer ", "bearer ", "BeArEr ", "Bearer\t", "Basic ", "Bearer", " Bearer ",
        ] {
            for pad in ["", " ", "\t", "  \t"] {
                for token in ["a.b.c", "x", "a b", "a\tb", "", "\u{e9}t\u{e9}"] {
                    for tail in ["", " ", "\t "] {
                        let raw = format!("{prefix}{pad}{token}{tail}");
                        let Ok(header) = HeaderValue::from_bytes(raw.as_bytes()) else {
                            continue;
                        };
                        let Some(key) = bearer_bytes(header.as_bytes())
                            .filter(|k| k.iter().all(u8::is_ascii_graphic))
                        else {
                            continue;
                        };
                        split += 1;
                        let full = bearer_token(Some(&header));
                        assert_eq!(full.map(str::as_bytes).ok(), Some(key), "{raw:?}");
                    }
                }
            }
        }
        assert!(split > 20, "the shortcut split only {split} headers");
        // What the full reading refuses is never split into a key that could hit.
        for raw in [&b"Bearer "[..], b"Bearer \t ", b"Bearer", b"Bearer\ta.b.c"] {
            let header = HeaderValue::from_bytes(raw).unwrap();
            assert_eq!(bearer_bytes(header.as_bytes()), None, "{raw:?}");
        }
    }

    #[tokio::test]
    async fn local_mode_issues_and_verifies_with_the_same_rules() {
        let dir = tempfile::tempdir().unwrap();
        let settings = local_settings(dir.path());
        let auth = Auth::from_settings(&settings).await.unwrap();
        assert_eq!(
            auth.full_scope(Scope::Read),
            "https://show-service-local.api/shows.read"
        );

        let read_only = mint_for_cli(&settings, "local-client", &["shows.read".into()])
            .await
            .unwrap();
        let header = HeaderValue::from_str(&format!("Bearer {read_only}")).unwrap();
        let p = auth.authorize(Some(&header), Scope::Read).await.unwrap();
        assert_eq!(p.client_id(), "local-client");
        assert_eq!(p.scopes(), ["https://show-service-local.api/shows.read"]);
        match auth.authorize(Some(&header), Scope::Write).await {
            Err(AuthError::InsufficientScope(s)) => {
                assert_eq!(s, "https://show-service-local.api/shows.write")
            }
            other => panic!("{other:?}"),
        }
        // Write-only tokens do not read either.
        let write_only = mint_for_cli(&settings, "local-client", &["shows.write".into()])
            .await
            .unwrap();
        let header = HeaderValue::from_str(&write_only).unwrap();
        assert!(auth.authorize(Some(&header), Scope::Write).await.is_ok());
        assert!(matches!(
            auth.authorize(Some(&header), Scope::Read).await,
            Err(AuthError::InsufficientScope(_))
        ));

        // A restart reuses the key: old tokens still verify.
        let again = Auth::from_settings(&settings).await.unwrap();
        let header = HeaderValue::from_str(&read_only).unwrap();
        assert!(again.authorize(Some(&header), Scope::Read).await.is_ok());
    }

    #[test]
    fn every_verification_is_counted_once_by_its_outcome() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let settings = local_settings(dir.path());
                let auth = Auth::from_settings(&settings).await.unwrap();
                let read = mint_for_cli(&settings, "local-client", &["shows.read".into()])
                    .await
                    .unwrap();
                let h = HeaderValue::from_str(&format!("Bearer {read}")).unwrap();
                auth.authorize(Some(&h), Scope::Read).await.unwrap();
                auth.authorize(Some(&h), Scope::Read).await.unwrap();
                let _ = auth.authorize(Some(&h), Scope::Write).await;
                let bad = HeaderValue::from_static("Bearer not-a-token");
                let _ = auth.authorize(Some(&bad), Scope::Read).await;
                let _ = auth.authorize(None, Scope::Read).await;
                // One signature character changed, well inside the last segment.
                let mut forged = read.clone().into_bytes();
                let at = forged.len() - 10;
                forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
                let forged = String::from_utf8(forged).unwrap();
                let f = HeaderValue::from_str(&forged).unwrap();
                let _ = auth.authorize(Some(&f), Scope::Read).await;
            })
        });
        let counted = test_metrics::counters(&snapshotter);
        let v = |o: Outcome| {
            counted
                .get(&format!(
                    "auth_token_verifications_total{{outcome={}}}",
                    o.label()
                ))
                .copied()
                .unwrap_or(0)
        };
        assert_eq!(v(Outcome::Ok), 1);
        assert_eq!(v(Outcome::Cached), 1);
        assert_eq!(v(Outcome::MissingScope), 1);
        assert_eq!(v(Outcome::Malformed), 1);
        assert_eq!(v(Outcome::BadSignature), 1);
        let total: u64 = Outcome::ALL.into_iter().map(v).sum();
        assert_eq!(
            total, 5,
            "one count per verification, none for a missing header"
        );
    }

    #[test]
    fn every_outcome_is_a_label_the_metrics_table_documents() {
        let help = crate::telemetry::table::doc(VERIFICATIONS)
            .expect("in the table")
            .help;
        let labels: std::collections::HashSet<_> =
            Outcome::ALL.into_iter().map(Outcome::label).collect();
        assert_eq!(labels.len(), Outcome::ALL.len(), "labels are distinct");
        for label in labels {
            assert!(help.contains(&format!("`{label}`")), "{label} in: {help}");
        }
    }

    #[tokio::test]
    async fn tokens_of_another_instance_are_refused() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let auth_a = Auth::from_settings(&local_settings(a.path()))
            .await
            .unwrap();
        Auth::from_settings(&local_settings(b.path()))
            .await
            .unwrap();
        let token_b = mint_for_cli(&local_settings(b.path()), "local-client", &[])
            .await
            .unwrap();
        let header = HeaderValue::from_str(&token_b).unwrap();
        assert!(matches!(
            auth_a.authorize(Some(&header), Scope::Read).await,
            Err(AuthError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn the_token_command_never_makes_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = mint_for_cli(&local_settings(dir.path()), "local-client", &[])
            .await
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&dir.path().join(keys::KEY_FILE).display().to_string())
                && msg.contains("show-service serve"),
            "{msg}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn the_token_command_needs_local_mode() {
        let settings = Settings::load(
            None,
            [
                ("APP__AUTH__MODE".to_string(), "jwt".to_string()),
                ("APP__AUTH__ISSUER".into(), "https://issuer.test".into()),
            ],
        )
        .unwrap();
        let err = mint_for_cli(&settings, "local-client", &[])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("APP__AUTH__MODE=local"), "{err}");
    }
}
