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
//! about 3 % of a cached request's CPU. The cache is bounded ([`CACHE_CAPACITY`] tokens of
//! about 1 KiB): when full, expired entries go first, then arbitrary ones.
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
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Longest token looked at. Cognito's access tokens are about 1 KB; anything near this is
/// not a token we issued or would accept, and refusing early bounds the work per request.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Most verified tokens kept (each about 1 KiB: a few MiB at most).
pub const CACHE_CAPACITY: usize = 4096;

/// Verified tokens, each with the last second it may be used.
type TokenMap = HashMap<Box<[u8]>, Entry, foldhash::fast::RandomState>;

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
    /// Verified tokens, each with the last second it may be used.
    cache: RwLock<TokenMap>,
    /// Most entries in `cache` ([`CACHE_CAPACITY`]; smaller in tests).
    capacity: usize,
    /// jsonwebtoken's checks: RS256 only, none of its claim checks (ours are in `rules`).
    validation: jsonwebtoken::Validation,
    /// The key set generation the cache was last checked against.
    checked_generation: AtomicU64,
}

impl Verifier {
    pub fn new(keys: Arc<KeyStore>, rules: ClaimRules) -> Verifier {
        Verifier {
            keys,
            rules,
            cache: RwLock::new(TokenMap::default()),
            capacity: CACHE_CAPACITY,
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
        self.remember(token, &verified, &kid, key, now);
        Ok((verified, Outcome::Ok))
    }

    /// How many verified tokens are cached.
    pub fn cached_count(&self) -> usize {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The cached verification of exactly these bytes, if it is still usable at `now`.
    /// Takes bytes so that a request's token can be looked up straight from its header,
    /// before (and, on a hit, instead of) checking the header's characters: only verified
    /// tokens are cached, so a byte-for-byte hit is a token that passed every check.
    pub fn cached(&self, token: &[u8], now: i64) -> Option<Arc<Verified>> {
        self.drop_withdrawn_keys();
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        match cache.get(token) {
            // Same rule as a fresh check: usable while now < exp + leeway.
            Some(e) if now < e.until => Some(e.verified.clone()),
            _ => None,
        }
    }

    /// If the key set changed since the last look, forgets the verifications made with
    /// keys it no longer holds.
    fn drop_withdrawn_keys(&self) {
        let generation = self.keys.generation();
        if self.checked_generation.load(Ordering::Acquire) == generation {
            return;
        }
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        // Read the set under the cache's lock: a verification that raced the fetch and
        // was inserted with a withdrawn key is dropped here too.
        let generation = self.keys.generation();
        let keys = self.keys.current();
        cache.retain(|_, e| keys.holds(&e.kid, &e.key));
        self.checked_generation.store(generation, Ordering::Release);
    }

    fn remember(
        &self,
        token: &str,
        verified: &Arc<Verified>,
        kid: &str,
        key: Arc<PublicKey>,
        now: i64,
    ) {
        let until = verified.exp.saturating_add(self.rules.leeway);
        let token = token.as_bytes();
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= self.capacity && !cache.contains_key(token) {
            cache.retain(|_, e| now < e.until);
            while cache.len() >= self.capacity {
                let Some(victim) = cache.keys().next().cloned() else {
                    break;
                };
                cache.remove(&victim);
            }
        }
        cache.insert(
            token.into(),
            Entry {
                until,
                verified: verified.clone(),
                kid: kid.into(),
                key,
            },
        );
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
mod tests {
    use super::*;
    use crate::auth::jwks::KeySet;
    use crate::auth::jwks::tests::{JwksServer, fast_policy};
    use crate::auth::keys::SigningKey;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};
    use std::time::Duration;

    const ISS: &str = "https://issuer.test";
    const READ: &str = "https://show-service-test.api/shows.read";

    fn claims(now: i64) -> Value {
        json!({
            "sub": "client-a", "client_id": "client-a", "token_use": "access", "scope": READ,
            "iss": ISS, "iat": now, "exp": now + 3600, "jti": "x", "version": 2,
        })
    }

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: ISS.into(),
            audience: vec!["client-a".into()],
            leeway: 30,
        }
    }

    fn fixed(keys: &[&SigningKey]) -> Verifier {
        let doc = crate::auth::jwks::tests::jwks_doc(keys);
        let store = KeyStore::fixed(KeySet::from_json(doc.as_bytes()).unwrap());
        Verifier::new(Arc::new(store), rules())
    }

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    /// Replaces one segment of a token.
    fn replace(token: &str, index: usize, segment: &str) -> String {
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[index] = segment.to_string();
        parts.join(".")
    }

    /// An HS256 token signed with `secret`: what an attacker makes from a public key.
    fn hs256(kid: &str, claims: &Value, secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            b64(json!({"alg": "HS256", "kid": kid, "typ": "JWT"})
                .to_string()
                .as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    }

    #[tokio::test]
    async fn a_good_token_verifies_and_every_forgery_fails() {
        let key = SigningKey::generate().unwrap();
        let stranger = SigningKey::generate().unwrap();
        let verifier = fixed(&[&key]);
        let now = unix_now();
        let good = key.sign(&claims(now)).unwrap();
        let v = verifier.verify_at(&good, now).await.unwrap();
        assert_eq!(v.client_id, "client-a");
        assert!(v.has_scope(READ));

        let [header, payload, signature]: [&str; 3] =
            good.split('.').collect::<Vec<_>>().try_into().unwrap();
        let mut escalated = claims(now);
        escalated["scope"] = json!(format!("{READ} https://show-service-test.api/shows.write"));
        let jwk = serde_json::to_value(key.public_jwk()).unwrap();
        let mut flipped = URL_SAFE_NO_PAD.decode(signature).unwrap();
        flipped[10] ^= 1;

        let forgeries: Vec<(&str, String)> = vec![
            (
                "tampered payload",
                replace(&good, 1, &b64(escalated.to_string().as_bytes())),
            ),
            ("tampered signature", replace(&good, 2, &b64(&flipped))),
            ("stranger's key with our kid", {
                let forged = stranger.sign(&claims(now)).unwrap();
                let h = json!({"kid": key.kid(), "alg": "RS256"}).to_string();
                replace(&forged, 0, &b64(h.as_bytes()))
            }),
            ("unknown kid", stranger.sign(&claims(now)).unwrap()),
            (
                "alg none",
                format!(
                    "{}.{payload}.",
                    b64(json!({"alg": "none", "kid": key.kid()})
                        .to_string()
                        .as_bytes())
                ),
            ),
            (
                "alg none with a signature",
                replace(
                    &good,
                    0,
                    &b64(json!({"alg": "none", "kid": key.kid()})
                        .to_string()
                        .as_bytes()),
                ),
            ),
            (
                "HS256 with the JWK as the secret",
                hs256(key.kid(), &claims(now), jwk.to_string().as_bytes()),
            ),
            (
                "HS256 with n as the secret",
                hs256(
                    key.kid(),
                    &claims(now),
                    jwk["n"].as_str().unwrap().as_bytes(),
                ),
            ),
            (
                "HS256 with the modulus bytes as the secret",
                hs256(
                    key.kid(),
                    &claims(now),
                    &URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap(),
                ),
            ),
            // The cache must find only the very token that verified.
            ("the cached token with a byte more", format!("{good}A")),
            (
                "the cached token a byte short",
                good[..good.len() - 1].to_string(),
            ),
            // One token, one encoding: the same signature bytes written another way.
            ("the signature with padding", format!("{good}==")),
            ("the signature with stray bits", {
                const ALPHABET: &str =
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let last = good.chars().last().unwrap();
                let i = ALPHABET.find(last).unwrap() | 1;
                format!("{}{}", &good[..good.len() - 1], &ALPHABET[i..=i])
            }),
            (
                "the header with padding",
                replace(&good, 0, &format!("{header}=")),
            ),
            (
                "a critical extension",
                replace(
                    &good,
                    0,
                    &b64(
                        json!({"alg": "RS256", "kid": key.kid(), "crit": ["exp"], "exp": 1})
                            .to_string()
                            .as_bytes(),
                    ),
                ),
            ),
            (
                "alg in lower case",
                replace(
                    &good,
                    0,
                    &b64(json!({"alg": "rs256", "kid": key.kid()})
                        .to_string()
                        .as_bytes()),
                ),
            ),
            (
                "PS256",
                replace(
                    &good,
                    0,
                    &b64(json!({"alg": "PS256", "kid": key.kid()})
                        .to_string()
                        .as_bytes()),
                ),
            ),
            (
                "no kid",
                replace(
                    &good,
                    0,
                    &b64(json!({"alg": "RS256"}).to_string().as_bytes()),
                ),
            ),
            ("too long", format!("{good}{}", "A".repeat(MAX_TOKEN_LEN))),
            ("four segments", format!("{good}.{signature}")),
            ("an empty signature", replace(&good, 2, "")),
            ("garbage", "garbage".into()),
            ("two segments", format!("{header}.{payload}")),
            ("empty", String::new()),
            // Validly signed junk: the signature is good, the claims are not an object.
            ("claims not an object", key.sign(&"just a string").unwrap()),
        ];
        for (name, token) in forgeries {
            let err = verifier.verify_at(&token, now).await.unwrap_err();
            assert!(matches!(err, AuthError::Invalid(_)), "{name}: {err:?}");
        }
        // The good token still verifies after all that (from the cache).
        assert!(verifier.verify_at(&good, now).await.is_ok());
    }

    #[tokio::test]
    async fn claim_failures_surface_as_invalid_tokens() {
        let key = SigningKey::generate().unwrap();
        let verifier = fixed(&[&key]);
        let now = unix_now();
        let cases: Vec<(&str, Value)> = vec![
            ("expired", json!({"exp": now - 60})),
            ("not yet valid", json!({"nbf": now + 120})),
            ("wrong issuer", json!({"iss": "https://other.test"})),
            ("wrong client", json!({"client_id": "client-b"})),
            ("id token", json!({"token_use": "id"})),
        ];
        for (name, patch) in cases {
            let mut c = claims(now);
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            let token = key.sign(&c).unwrap();
            let err = verifier.verify_at(&token, now).await.unwrap_err();
            assert!(matches!(err, AuthError::Invalid(_)), "{name}: {err:?}");
        }
        assert_eq!(verifier.cached_count(), 0, "failures are not cached");
    }

    #[tokio::test]
    async fn a_cached_token_still_expires() {
        let key = SigningKey::generate().unwrap();
        let verifier = fixed(&[&key]);
        let now = unix_now();
        let token = key.sign(&claims(now)).unwrap();
        verifier.verify_at(&token, now).await.unwrap();
        assert_eq!(verifier.cached_count(), 1);
        assert!(verifier.verify_at(&token, now + 3600 + 29).await.is_ok());
        let err = verifier
            .verify_at(&token, now + 3600 + 30)
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthError::Invalid(ref r) if r.contains("expired")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_capacity() {
        let key = SigningKey::generate().unwrap();
        let mut verifier = fixed(&[&key]);
        verifier.capacity = 3;
        let now = unix_now();
        for i in 0..5 {
            let mut c = claims(now);
            c["jti"] = json!(i);
            // Two of them expire soon: they are evicted first.
            if i < 2 {
                c["exp"] = json!(now + 1);
            }
            verifier
                .verify_at(&key.sign(&c).unwrap(), now)
                .await
                .unwrap();
        }
        assert!(verifier.cached_count() <= 3);
        for i in 5..8 {
            let mut c = claims(now);
            c["jti"] = json!(i);
            verifier
                .verify_at(&key.sign(&c).unwrap(), now + 100)
                .await
                .unwrap();
        }
        assert_eq!(verifier.cached_count(), 3);
    }

    #[tokio::test]
    async fn keys_come_over_http_and_a_rotated_key_is_picked_up() {
        let old = SigningKey::generate().unwrap();
        let new = SigningKey::generate().unwrap();
        let server = JwksServer::start(&[&old]).await;
        let store = KeyStore::http(&server.url, fast_policy(Duration::from_secs(1))).unwrap();
        let verifier = Verifier::new(Arc::new(store), rules());
        let now = unix_now();
        let t_old = old.sign(&claims(now)).unwrap();
        let t_new = new.sign(&claims(now)).unwrap();

        assert!(verifier.verify_at(&t_old, now).await.is_ok());
        assert_eq!(server.hits(), 1);
        // Unknown kid: the set was just fetched, so no refetch; 401.
        assert!(matches!(
            verifier.verify_at(&t_new, now).await,
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(server.hits(), 1);

        server.publish(&[&old, &new]);
        tokio::time::sleep(Duration::from_millis(1050)).await;
        assert!(verifier.verify_at(&t_new, now).await.is_ok());
        assert_eq!(server.hits(), 2);
        for _ in 0..10 {
            assert!(verifier.verify_at(&t_new, now).await.is_ok());
            assert!(verifier.verify_at(&t_old, now).await.is_ok());
        }
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn a_withdrawn_key_s_cached_tokens_are_refused_after_the_refetch() {
        let old = SigningKey::generate().unwrap();
        let new = SigningKey::generate().unwrap();
        let server = JwksServer::start(&[&old]).await;
        let store = Arc::new(KeyStore::http(&server.url, fast_policy(Duration::ZERO)).unwrap());
        store.refresh().await.unwrap();
        let verifier = Verifier::new(store.clone(), rules());
        let now = unix_now();
        let t_old = old.sign(&claims(now)).unwrap();
        assert!(verifier.verify_at(&t_old, now).await.is_ok());
        assert!(verifier.cached(t_old.as_bytes(), now).is_some());

        // The issuer withdraws `old` and publishes `new`; a token of `new` makes the store
        // fetch the set again.
        server.publish(&[&new]);
        let t_new = new.sign(&claims(now)).unwrap();
        assert!(verifier.verify_at(&t_new, now).await.is_ok());
        assert_eq!(server.hits(), 2);

        assert!(verifier.cached(t_old.as_bytes(), now).is_none());
        let err = verifier.verify_at(&t_old, now).await.unwrap_err();
        assert!(matches!(err, AuthError::Invalid(_)), "{err:?}");
        assert!(verifier.verify_at(&t_new, now).await.is_ok());
        assert_eq!(
            verifier.cached_count(),
            1,
            "only the new key's token is cached"
        );

        // A refetch that changes nothing keeps the cache.
        store.refresh().await.unwrap();
        assert!(verifier.cached(t_new.as_bytes(), now).is_some());
    }

    #[tokio::test]
    async fn tokens_that_fail_without_their_signature_never_refetch() {
        let key = SigningKey::generate().unwrap();
        let new = SigningKey::generate().unwrap();
        let stranger = SigningKey::generate().unwrap();
        let server = JwksServer::start(&[&key]).await;
        // One fetch a minute, as the old policy had: the first made-up kid would take it.
        let store =
            Arc::new(KeyStore::http(&server.url, fast_policy(Duration::from_secs(60))).unwrap());
        store.refresh().await.unwrap();
        let verifier = Verifier::new(store, rules());
        let now = unix_now();
        let patched = |patch: Value| {
            let mut c = claims(now);
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            stranger.sign(&c).unwrap()
        };
        let junk = [
            patched(json!({"exp": now - 60})),
            patched(json!({"nbf": now + 600})),
            patched(json!({"iss": "https://other.test"})),
            patched(json!({"client_id": "client-b"})),
            patched(json!({"token_use": "id"})),
            stranger.sign(&"not claims").unwrap(),
            replace(&stranger.sign(&claims(now)).unwrap(), 1, "!!!"),
        ];
        for _ in 0..20 {
            for token in &junk {
                let err = verifier.verify_at(token, now).await.unwrap_err();
                assert!(matches!(err, AuthError::Invalid(_)), "{err:?}");
            }
        }
        assert_eq!(server.hits(), 1, "junk with unknown kids fetched nothing");

        // A newly published key is picked up at its first token.
        server.publish(&[&key, &new]);
        let t_new = new.sign(&claims(now)).unwrap();
        assert!(verifier.verify_at(&t_new, now).await.is_ok());
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn a_dead_jwks_endpoint_makes_verification_unavailable_not_invalid() {
        let key = SigningKey::generate().unwrap();
        let url = crate::auth::jwks::tests::dead_url().await;
        let store = KeyStore::http(&url, fast_policy(Duration::from_secs(60))).unwrap();
        let verifier = Verifier::new(Arc::new(store), rules());
        let now = unix_now();
        let started = std::time::Instant::now();
        let err = verifier
            .verify_at(&key.sign(&claims(now)).unwrap(), now)
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::Unavailable(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // A token that is not even well formed is still a plain 401.
        assert!(matches!(
            verifier.verify_at("garbage", now).await,
            Err(AuthError::Invalid(_))
        ));
    }
}
