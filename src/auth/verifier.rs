//! Token verification: header (RS256, `kid`, no `crit`) → key from the [`KeyStore`] →
//! signature → claims ([`ClaimRules`]). The same code checks Cognito's tokens (keys over
//! HTTP) and the local issuer's (keys in-process).
//!
//! The compact JWS is taken apart and its signature checked by the `jsonwebtoken` crate,
//! with RS256 as the only algorithm allowed and every one of its own claim checks turned
//! off: the claim rules are ours, all in `claims.rs`, applied to the claims jsonwebtoken
//! decoded once the signature was good. Its base64url decoding is strict (no padding, no
//! stray bits), so a token has one encoding only.
//!
//! A verified token is cached until it expires, keyed by the whole token (signature
//! included) and found by exact comparison: a repeat costs a fast hash, one comparison and
//! a map lookup instead of an RSA verification, while a token whose header or claims were
//! altered, even one carrying a cached signature, misses the cache and fails verification.
//! The hash is foldhash with a per-process random seed: fast, and not a security boundary
//! (a hit needs byte-for-byte equality, and only tokens that verified are ever inserted, so
//! no one can fill the map with chosen keys). A SHA-256 digest as the key was measured at
//! about 3 % of a cached request's CPU. The cache is quick_cache's: bounded
//! ([`CACHE_CAPACITY`] tokens of about 1 KiB), sharded, with O(1) eviction that keeps the
//! tokens in use (S3-FIFO); an expired entry never answers and is dropped when looked up.
//! Failures are not cached (a verification is cheap enough; caching them would let junk
//! push good entries out).
//!
//! Each cached verification remembers the key that checked it. When a JWKS fetch changes
//! the key set ([`KeyStore::generation`]), the next lookup first drops the verifications of
//! keys that left the set, so a withdrawn key's tokens stop working at the re-fetch, not
//! at their `exp`. That check is one atomic load per lookup.
//!
//! A token whose `kid` is not in the set in hand may make the key store fetch the JWKS
//! again, but only if everything that does not need the signature passes first: the
//! header (RS256, a `kid`) and every claim rule, read from the still unverified claims.
//! Junk with made-up `kid`s therefore never spends the store's fetches (see `jwks.rs`).

use super::claims::{AccessClaims, ClaimError, ClaimRules, Verified};
use super::jwks::{KeyError, KeyStore, PublicKey};
use super::{AuthError, Outcome};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Longest token looked at. Cognito's access tokens are about 1 KB; anything near this is
/// not a token we issued or would accept, and refusing early bounds the work per request.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Most verified tokens kept (each about 1 KiB: a few MiB at most).
pub const CACHE_CAPACITY: usize = 4096;

/// Verified tokens, by their bytes.
type TokenCache = quick_cache::sync::Cache<
    Box<[u8]>,
    Arc<Entry>,
    quick_cache::UnitWeighter,
    foldhash::fast::RandomState,
>;

/// One verified token.
struct Entry {
    /// The last second it may be used (`exp` + leeway).
    until: i64,
    verified: Arc<Verified>,
    /// The key that verified it, by `kid`: the entry goes when the key leaves the set.
    kid: Box<str>,
    key: Arc<PublicKey>,
}

pub struct Verifier {
    /// The issuer's public keys (fetched over HTTP, or the local issuer's).
    keys: Arc<KeyStore>,
    /// What the claims must say; fixed at start.
    rules: ClaimRules,
    /// Verified tokens, each with the last second it may be used; at most
    /// [`CACHE_CAPACITY`] (fewer in tests).
    cache: TokenCache,
    /// jsonwebtoken's checks: RS256 only, none of its claim checks (ours are in `rules`).
    validation: jsonwebtoken::Validation,
    /// The key set generation the cache was last checked against.
    checked_generation: AtomicU64,
}

impl Verifier {
    pub fn new(keys: Arc<KeyStore>, rules: ClaimRules) -> Verifier {
        Verifier::with_capacity(keys, rules, CACHE_CAPACITY)
    }

    fn with_capacity(keys: Arc<KeyStore>, rules: ClaimRules, capacity: usize) -> Verifier {
        Verifier {
            keys,
            rules,
            cache: TokenCache::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                foldhash::fast::RandomState::default(),
                Default::default(),
            ),
            validation: signature_only(),
            checked_generation: AtomicU64::new(0),
        }
    }

    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Verifies `token` now.
    pub async fn verify(&self, token: &str) -> Result<Arc<Verified>, AuthError> {
        self.verify_at(token, unix_now()).await
    }

    /// Verifies `token` at `now` (seconds since the epoch).
    pub async fn verify_at(&self, token: &str, now: i64) -> Result<Arc<Verified>, AuthError> {
        self.verify_with_outcome(token, now)
            .await
            .map(|(v, _)| v)
            .map_err(|(_, e)| e)
    }

    /// [`Verifier::verify_at`], with the [`Outcome`] the result stands for (`Ok`,
    /// `Cached`, or why it was refused).
    pub async fn verify_with_outcome(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Arc<Verified>, Outcome), (Outcome, AuthError)> {
        let invalid = |outcome: Outcome| move |e: String| (outcome, AuthError::Invalid(e));
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid(Outcome::Malformed)(format!(
                "token longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        if let Some(hit) = self.cached(token.as_bytes(), now) {
            return Ok((hit, Outcome::Cached));
        }
        let kid = header_kid(token).map_err(invalid(Outcome::Malformed))?;
        let key = match self.keys.known(&kid) {
            Some(key) => key,
            None => {
                // Only a token that would pass but for its key may make the store fetch:
                // its claims, read before any signature check, must meet every rule.
                let unverified = jsonwebtoken::dangerous::insecure_decode_claims(token);
                if !unverified.is_ok_and(|c: AccessClaims| self.rules.check(c, now).is_ok()) {
                    return Err(invalid(Outcome::UnknownKey)(format!(
                        "no key with kid {kid:?}, and the claims fail: not refetched"
                    )));
                }
                self.keys.fetch_for(&kid).await.map_err(|e| match e {
                    KeyError::UnknownKid(_) => invalid(Outcome::UnknownKey)(e.to_string()),
                    KeyError::Unavailable(_) => (
                        Outcome::IssuerUnavailable,
                        AuthError::Unavailable(e.to_string()),
                    ),
                })?
            }
        };
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key.decoding(), &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    invalid(Outcome::BadSignature)("bad signature".into())
                }
                _ => invalid(Outcome::Malformed)(e.to_string()),
            })?
            .claims;
        let verified = Arc::new(
            self.rules
                .check(claims, now)
                .map_err(|e| invalid(claim_outcome(&e))(e.to_string()))?,
        );
        self.remember(token, &verified, &kid, key);
        Ok((verified, Outcome::Ok))
    }

    /// How many verified tokens are cached.
    pub fn cached_count(&self) -> usize {
        self.cache.len()
    }

    /// The cached verification of exactly these bytes, if it is still usable at `now`.
    /// Takes bytes so that a request's token can be looked up straight from its header,
    /// before (and, on a hit, instead of) checking the header's characters: only verified
    /// tokens are cached, so a byte-for-byte hit is a token that passed every check.
    pub fn cached(&self, token: &[u8], now: i64) -> Option<Arc<Verified>> {
        self.drop_withdrawn_keys();
        let entry = self.cache.get(token)?;
        // Same rule as a fresh check: usable while now < exp + leeway.
        if now < entry.until {
            return Some(entry.verified.clone());
        }
        self.cache.remove(token);
        None
    }

    /// If the key set changed since the last look, forgets the verifications made with
    /// keys it no longer holds.
    fn drop_withdrawn_keys(&self) {
        let generation = self.keys.generation();
        if self.checked_generation.load(Ordering::Acquire) == generation {
            return;
        }
        // The set read after the generation is at least that new; if it is newer, the
        // next lookup looks again.
        let keys = self.keys.current();
        self.cache.retain(|_, e| keys.holds(&e.kid, &e.key));
        self.checked_generation.store(generation, Ordering::Release);
    }

    fn remember(&self, token: &str, verified: &Arc<Verified>, kid: &str, key: Arc<PublicKey>) {
        let entry = Entry {
            until: verified.exp.saturating_add(self.rules.leeway),
            verified: verified.clone(),
            kid: kid.into(),
            key: key.clone(),
        };
        self.cache.insert(token.as_bytes().into(), Arc::new(entry));
        // A fetch that withdrew the key while this token was being verified may have
        // cleaned the cache before the insert: look at the set again.
        if !self.keys.current().holds(kid, &key) {
            self.cache.remove(token.as_bytes());
        }
    }
}

/// jsonwebtoken's validation with RS256 as the only algorithm and none of its claim
/// checks: `claims.rs` applies every rule (API Gateway's and Cognito's).
fn signature_only() -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

/// The `kid` of a token's header, which must name RS256 and no critical extension
/// (RFC 7515 §4.1.11: we understand none; jsonwebtoken refuses `"b64": false` itself).
fn header_kid(token: &str) -> Result<String, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return Err(format!(
            "algorithm {:?} is not accepted (RS256 only)",
            header.alg
        ));
    }
    if header.crit.is_some() {
        return Err("the header names critical extensions".into());
    }
    match header.kid {
        Some(kid) if !kid.is_empty() => Ok(kid),
        _ => Err("the header has no kid".into()),
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The outcome of a claim refusal.
fn claim_outcome(e: &ClaimError) -> Outcome {
    match e {
        ClaimError::NoIssuer | ClaimError::WrongIssuer(_) => Outcome::WrongIssuer,
        ClaimError::NoExpiry => Outcome::Malformed,
        ClaimError::Expired(_) => Outcome::Expired,
        ClaimError::NotYetValid(_) | ClaimError::IssuedInFuture(_) => Outcome::NotYetValid,
        ClaimError::NotAccessToken(_) => Outcome::WrongTokenUse,
        ClaimError::WrongAudience(_) | ClaimError::WrongClient(_) => Outcome::WrongAudience,
    }
}

#[cfg(test)]
mod tests;
