//! The issuer's public keys (a JWKS, RFC 7517), by `kid`, parsed once and cached.
//!
//! [`KeySet::from_json`] keeps the keys a verifier may use — RSA, for signatures, RS256 or
//! no `alg`, with a `kid`, 2048 bits or more — and skips the rest, so an issuer that also
//! publishes EC or encryption keys still works.
//!
//! [`KeyStore`] holds the current set. With an HTTP source it fetches the set on start
//! and again when a token names a `kid` it does not know ([`KeyStore::fetch_for`]; the
//! verifier asks only for tokens whose signature-independent checks pass), but:
//! - from a small token bucket: [`FetchPolicy::burst`] fetches back to back, then one more
//!   each [`FetchPolicy::min_interval`], so tokens with made-up `kid`s cannot make it hammer
//!   the issuer, and a burst of them does not use up the fetch that a newly published key
//!   needs; after a failed fetch the next comes no sooner than
//!   [`FetchPolicy::retry_after_failure`];
//! - one fetch at a time: concurrent requests wait for the fetch in flight and use its
//!   result instead of starting another;
//! - within [`FetchPolicy::budget`] (1.5 s, API Gateway's): a slow or dead endpoint costs a
//!   request at most that long, and requests for known keys never wait on it;
//! - a set older than [`FetchPolicy::max_age`] is refreshed in the background, so keys
//!   the issuer withdrew stop verifying within about an hour.
//!
//! Each successful fetch that changes the set bumps [`KeyStore::generation`]: the verifier
//! then drops the cached verifications of keys that are gone (see `verifier.rs`).
//!
//! When a token's `kid` is unknown and the set could not be fetched, the answer is
//! [`KeyError::Unavailable`] (the service answers 503), not "unknown key" (401): the token
//! may well be valid, and a 401 would send clients to fetch new tokens for nothing.
//! With a static source (the local issuer, in-process) there is nothing to fetch.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// Largest JWKS document read (Cognito's is about 1 KB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_MODULUS_BYTES: usize = 256;

/// Public keys by `kid`.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<PublicKey>>,
}

/// One RSA public key of the set: its components (to tell whether a refetched set still
/// holds the same key under a `kid`) and the key parsed for verification.
pub struct PublicKey {
    n: Vec<u8>,
    e: Vec<u8>,
    decoding: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("bits", &(self.n.len() * 8))
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// The key as jsonwebtoken verifies with it.
    pub fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Whether `other` is the same key (same modulus and exponent).
    pub fn same_key(&self, other: &PublicKey) -> bool {
        self.n == other.n && self.e == other.e
    }
}

/// One entry of a JWKS, with only the members we look at.
#[derive(Debug, Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWKS document, keeping the keys usable for RS256 (see the module doc).
    pub fn from_json(json: &[u8]) -> Result<KeySet, String> {
        let raw: RawJwkSet = serde_json::from_slice(json)
            .map_err(|e| format!("not a JWKS document (an object with a keys array): {e}"))?;
        let mut keys = HashMap::new();
        for value in raw.keys {
            let Ok(jwk) = serde_json::from_value::<RawJwk>(value) else {
                continue;
            };
            match parse_jwk(&jwk) {
                Ok((kid, key)) => {
                    keys.entry(kid).or_insert_with(|| Arc::new(key));
                }
                Err(why) => {
                    tracing::debug!(
                        kid = jwk.kid.as_deref().unwrap_or("-"),
                        why,
                        "JWKS key skipped"
                    );
                }
            }
        }
        Ok(KeySet { keys })
    }

    pub fn get(&self, kid: &str) -> Option<Arc<PublicKey>> {
        self.keys.get(kid).cloned()
    }

    /// Whether the set holds `key` under `kid`.
    pub fn holds(&self, kid: &str, key: &PublicKey) -> bool {
        self.keys.get(kid).is_some_and(|k| k.same_key(key))
    }

    /// Whether both sets hold the same keys under the same `kid`s.
    fn same_keys(&self, other: &KeySet) -> bool {
        self.keys.len() == other.keys.len()
            && self.keys.iter().all(|(kid, key)| other.holds(kid, key))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn parse_jwk(jwk: &RawJwk) -> Result<(String, PublicKey), &'static str> {
    if jwk.kty.as_deref() != Some("RSA") {
        return Err("not an RSA key");
    }
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signing key");
    }
    if jwk.alg.as_deref().is_some_and(|a| a != super::keys::RS256) {
        return Err("not an RS256 key");
    }
    let kid = match &jwk.kid {
        Some(k) if !k.is_empty() => k.clone(),
        _ => return Err("no kid"),
    };
    let decode = |v: &Option<String>| -> Result<Vec<u8>, &'static str> {
        let bytes = URL_SAFE_NO_PAD
            .decode(v.as_deref().ok_or("missing n or e")?)
            .map_err(|_| "n or e is not base64url")?;
        // RFC 7518 says no leading zeros; some issuers add one. Strip, don't refuse.
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        Ok(bytes[start..].to_vec())
    };
    let n = decode(&jwk.n)?;
    let e = decode(&jwk.e)?;
    if n.len() < MIN_MODULUS_BYTES {
        return Err("RSA key shorter than 2048 bits");
    }
    // jsonwebtoken keeps the components as they are and checks them at each verification:
    // check them here once, so that a key no signature could verify is skipped at the fetch.
    RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .map_err(|_| "not a valid RSA public key")?;
    let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
    Ok((kid, PublicKey { n, e, decoding }))
}

/// When and how long the store may fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchPolicy {
    /// Fetches that unknown `kid`s may trigger back to back (the bucket's size).
    pub burst: u32,
    /// After the burst, one more fetch each interval (the bucket's refill).
    pub min_interval: Duration,
    /// Least time between fetches after a failed one.
    pub retry_after_failure: Duration,
    /// Longest a fetch may take, connection included.
    pub budget: Duration,
    /// Age after which the set is refreshed in the background.
    pub max_age: Duration,
}

impl Default for FetchPolicy {
    fn default() -> FetchPolicy {
        FetchPolicy {
            burst: 4,
            min_interval: Duration::from_secs(15),
            retry_after_failure: Duration::from_secs(5),
            budget: Duration::from_millis(1500),
            max_age: Duration::from_secs(3600),
        }
    }
}

/// Why no key could be given for a `kid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The current set (fetched recently enough) has no such key.
    #[error("no key with kid {0:?} in the issuer's JWKS")]
    UnknownKid(String),
    /// The key is not known and the set could not be fetched.
    #[error("the issuer's JWKS is unavailable: {0}")]
    Unavailable(String),
}

enum Source {
    /// Keys given once (the local issuer's own).
    Static,
    Http {
        client: reqwest::Client,
        url: String,
    },
    /// An issuer in memory, whose delays run on tokio's clock (tests pause it).
    #[cfg(test)]
    Fake(Arc<tests::FakeIssuer>),
}

/// What the store knows, behind a lock never held across an `.await`.
struct State {
    keys: Arc<KeySet>,
    /// When the last fetch ended, and whether it succeeded.
    last_attempt: Option<(Instant, Result<(), String>)>,
    /// When the current set was fetched.
    fetched_at: Option<Instant>,
    /// Fetches unknown `kid`s may still trigger now, and when that was counted.
    bucket: (f64, Instant),
    /// Fetches ended so far (a waiter tells by it whether one ended while it waited).
    attempts: u64,
}

/// The current key set and the rules for refreshing it. Shared by all requests.
pub struct KeyStore {
    /// Where keys come from: nowhere (fixed) or a JWKS URL.
    source: Source,
    policy: FetchPolicy,
    state: RwLock<State>,
    /// Held while a fetch runs, so there is only ever one.
    fetching: Arc<tokio::sync::Mutex<()>>,
    /// Fetches started, for tests and metrics.
    fetches: AtomicU64,
    /// Bumped by each fetch that changed the set.
    generation: AtomicU64,
}

impl KeyStore {
    /// A store whose keys never change (the local issuer's, parsed from its JWKS).
    pub fn fixed(keys: KeySet) -> KeyStore {
        KeyStore::with_source(Source::Static, keys, FetchPolicy::default())
    }

    /// A store that fetches the JWKS at `url`. Nothing is fetched until [`KeyStore::refresh`]
    /// or the first lookup.
    pub fn http(url: &str, policy: FetchPolicy) -> anyhow::Result<KeyStore> {
        let client = reqwest::Client::builder()
            .timeout(policy.budget)
            .connect_timeout(policy.budget)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("show-service/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(KeyStore::with_source(
            Source::Http {
                client,
                url: url.to_string(),
            },
            KeySet::default(),
            policy,
        ))
    }

    fn with_source(source: Source, keys: KeySet, policy: FetchPolicy) -> KeyStore {
        KeyStore {
            source,
            policy,
            state: RwLock::new(State {
                keys: Arc::new(keys),
                last_attempt: None,
                fetched_at: None,
                bucket: (f64::from(policy.burst), Instant::now()),
                attempts: 0,
            }),
            fetching: Arc::new(tokio::sync::Mutex::new(())),
            fetches: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// How many fetches were started.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// How many keys the current set holds.
    pub fn key_count(&self) -> usize {
        self.read().keys.len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The set's current generation: it changes whenever a fetch changes the set.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current set.
    pub fn current(&self) -> Arc<KeySet> {
        self.read().keys.clone()
    }

    /// The key named `kid` in the set in hand, without fetching (an old set is refreshed
    /// in the background).
    pub fn known(self: &Arc<Self>, kid: &str) -> Option<Arc<PublicKey>> {
        let (found, stale) = {
            let state = self.read();
            let stale = state
                .fetched_at
                .is_some_and(|at| at.elapsed() >= self.policy.max_age);
            (state.keys.get(kid), stale)
        };
        if found.is_some() && stale {
            self.refresh_in_background();
        }
        found
    }

    /// The key named `kid`, fetching the set first if the key is unknown and the policy
    /// allows it. Ask only for tokens that could be good but for their key: each call
    /// with an unknown `kid` may use up a fetch.
    pub async fn fetch_for(self: &Arc<Self>, kid: &str) -> Result<Arc<PublicKey>, KeyError> {
        if let Some(key) = self.known(kid) {
            return Ok(key);
        }
        if matches!(self.source, Source::Static) {
            return Err(KeyError::UnknownKid(kid.to_string()));
        }

        // One fetch at a time; a waiter waits at most one fetch budget (plus a margin).
        let before = self.read().attempts;
        let wait = self.policy.budget + Duration::from_millis(250);
        let Ok(_guard) = tokio::time::timeout(wait, self.fetching.lock()).await else {
            return Err(KeyError::Unavailable(
                "a JWKS fetch is still running".into(),
            ));
        };
        // A fetch that ended while we waited answers for us too: no second one.
        let waited_for_one = self.read().attempts != before;
        if !waited_for_one && self.read().keys.get(kid).is_none() && self.take_fetch() {
            let _ = self.fetch().await;
        }
        let state = self.read();
        if let Some(key) = state.keys.get(kid) {
            return Ok(key);
        }
        match &state.last_attempt {
            Some((_, Err(e))) => Err(KeyError::Unavailable(e.clone())),
            _ => Err(KeyError::UnknownKid(kid.to_string())),
        }
    }

    /// [`KeyStore::fetch_for`] without the caller's checks (tests).
    #[cfg(test)]
    pub async fn key(self: &Arc<Self>, kid: &str) -> Result<Arc<PublicKey>, KeyError> {
        self.fetch_for(kid).await
    }

    /// Fetches the set now (used at start-up), unless a fetch is running.
    pub async fn refresh(&self) -> Result<(), String> {
        let _guard = self.fetching.lock().await;
        self.fetch().await
    }

    /// Takes a fetch from the bucket, if one is left and the last failure is old enough.
    fn take_fetch(&self) -> bool {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, Err(_))) = &state.last_attempt
            && at.elapsed() < self.policy.retry_after_failure
        {
            return false;
        }
        let burst = f64::from(self.policy.burst);
        let (tokens, counted_at) = state.bucket;
        let now = Instant::now();
        let refill = if self.policy.min_interval.is_zero() {
            burst
        } else {
            now.duration_since(counted_at).as_secs_f64() / self.policy.min_interval.as_secs_f64()
        };
        let tokens = (tokens + refill).min(burst);
        if tokens >= 1.0 {
            state.bucket = (tokens - 1.0, now);
            true
        } else {
            state.bucket = (tokens, now);
            false
        }
    }

    /// Whether a background refresh may run: the set is as old as `max_age`, so this is
    /// no more often than that, apart from retries after a failure.
    fn may_refresh(&self) -> bool {
        match &self.read().last_attempt {
            None => true,
            Some((at, Ok(()))) => at.elapsed() >= self.policy.max_age,
            Some((at, Err(_))) => at.elapsed() >= self.policy.retry_after_failure,
        }
    }

    fn refresh_in_background(self: &Arc<Self>) {
        let Ok(guard) = self.fetching.clone().try_lock_owned() else {
            return; // a fetch is running already
        };
        if !self.may_refresh() {
            return;
        }
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let _guard = guard;
            let _ = store.fetch().await;
        });
    }

    /// One fetch, within the budget; records the outcome. Call with `fetching` held.
    async fn fetch(&self) -> Result<(), String> {
        let budget = self.policy.budget;
        let started = Instant::now();
        let (url, body) = match &self.source {
            Source::Static => return Ok(()),
            Source::Http { client, url } => {
                self.fetches.fetch_add(1, Ordering::Relaxed);
                (
                    url.as_str(),
                    tokio::time::timeout(budget, download(client, url)).await,
                )
            }
            #[cfg(test)]
            Source::Fake(issuer) => {
                self.fetches.fetch_add(1, Ordering::Relaxed);
                ("fake", tokio::time::timeout(budget, issuer.serve()).await)
            }
        };
        let result = match body {
            Ok(Ok(body)) => KeySet::from_json(&body),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {:?}", self.policy.budget)),
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("auth_jwks_fetches_total", "outcome" => outcome).increment(1);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        state.attempts += 1;
        match result {
            Ok(keys) => {
                tracing::info!(url = %url, keys = keys.len(), elapsed_ms = started.elapsed().as_millis() as u64, "JWKS fetched");
                if keys.is_empty() {
                    tracing::warn!(url = %url, "the JWKS has no RS256 signing key: every token will be refused");
                }
                if !keys.same_keys(&state.keys) {
                    state.keys = Arc::new(keys);
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                state.fetched_at = Some(now);
                state.last_attempt = Some((now, Ok(())));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(url = %url, error = %e, "JWKS fetch failed; keeping the keys already known");
                state.last_attempt = Some((now, Err(e.clone())));
                Err(e)
            }
        }
    }
}

async fn download(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut res = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("cannot fetch: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("answered {}", res.status()));
    }
    if res
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err("document too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| format!("cannot read: {e}"))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err("document too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
pub(crate) mod tests;
