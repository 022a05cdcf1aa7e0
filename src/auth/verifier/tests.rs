//! The verifier's tests: forgeries, claims, the verified-token cache, keys that come and go.

use super::*;
use crate::auth::jwks::KeySet;
use crate::auth::jwks::tests::{FakeIssuer, JwksServer, fake_store, fast_policy};
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
    assert_eq!(
        verifier.cached_count(),
        0,
        "an expired entry is dropped when looked up"
    );
}

#[tokio::test]
async fn the_cache_stays_within_its_capacity() {
    let key = SigningKey::generate().unwrap();
    let doc = crate::auth::jwks::tests::jwks_doc(&[&key]);
    let store = KeyStore::fixed(KeySet::from_json(doc.as_bytes()).unwrap());
    let verifier = Verifier::with_capacity(Arc::new(store), rules(), 3);
    let now = unix_now();
    let mut tokens = Vec::new();
    for i in 0..20 {
        let mut c = claims(now);
        c["jti"] = json!(i);
        let token = key.sign(&c).unwrap();
        verifier.verify_at(&token, now).await.unwrap();
        assert!(verifier.cached_count() <= 3, "{}", verifier.cached_count());
        tokens.push(token);
    }
    assert_eq!(verifier.cached_count(), 3, "full, not emptied");
    let hits = tokens
        .iter()
        .filter(|t| verifier.cached(t.as_bytes(), now).is_some())
        .count();
    assert_eq!(hits, 3, "what is counted is what answers");
    // Every token still verifies, evicted or not.
    for token in &tokens {
        assert!(verifier.verify_at(token, now).await.is_ok());
    }
    assert!(verifier.cached_count() <= 3);
}

#[tokio::test(start_paused = true)]
async fn keys_are_fetched_and_a_rotated_key_is_picked_up() {
    let old = SigningKey::generate().unwrap();
    let new = SigningKey::generate().unwrap();
    let issuer = FakeIssuer::new(&[&old]);
    let store = fake_store(&issuer, fast_policy(Duration::from_secs(1)));
    let verifier = Verifier::new(store, rules());
    let now = unix_now();
    let t_old = old.sign(&claims(now)).unwrap();
    let t_new = new.sign(&claims(now)).unwrap();

    assert!(verifier.verify_at(&t_old, now).await.is_ok());
    assert_eq!(issuer.hits(), 1);
    // Unknown kid: the set was just fetched, so no refetch; 401.
    assert!(matches!(
        verifier.verify_at(&t_new, now).await,
        Err(AuthError::Invalid(_))
    ));
    assert_eq!(issuer.hits(), 1);

    issuer.publish(&[&old, &new]);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(verifier.verify_at(&t_new, now).await.is_ok());
    assert_eq!(issuer.hits(), 2);
    for _ in 0..10 {
        assert!(verifier.verify_at(&t_new, now).await.is_ok());
        assert!(verifier.verify_at(&t_old, now).await.is_ok());
    }
    assert_eq!(issuer.hits(), 2);
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

#[tokio::test(start_paused = true)]
async fn a_dead_jwks_endpoint_makes_verification_unavailable_not_invalid() {
    let key = SigningKey::generate().unwrap();
    let issuer = FakeIssuer::new(&[&key]);
    issuer.set_down(true);
    let policy = fast_policy(Duration::from_secs(60));
    let verifier = Verifier::new(fake_store(&issuer, policy), rules());
    let now = unix_now();
    let started = tokio::time::Instant::now();
    let err = verifier
        .verify_at(&key.sign(&claims(now)).unwrap(), now)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() <= policy.budget);
    // An issuer that does not answer costs the budget, no more.
    issuer.set_down(false);
    issuer.set_delay(Duration::from_secs(10));
    let other = SigningKey::generate().unwrap();
    tokio::time::advance(policy.retry_after_failure).await;
    let started = tokio::time::Instant::now();
    let err = verifier
        .verify_at(&other.sign(&claims(now)).unwrap(), now)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Unavailable(_)), "{err:?}");
    assert_eq!(started.elapsed(), policy.budget);
    // A token that is not even well formed is still a plain 401.
    assert!(matches!(
        verifier.verify_at("garbage", now).await,
        Err(AuthError::Invalid(_))
    ));
}
