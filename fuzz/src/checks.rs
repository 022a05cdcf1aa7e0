//! What must hold for any input, as plain functions that panic when it does not.
//! Used by the fuzz targets (a panic is a crash) and, through `#[path]`, by
//! `tests/properties.rs` to replay the committed seeds.

use serde_json::{Value, json};
use show_service::auth::claims::ClaimRules;
use show_service::auth::jwks::{KeySet, KeyStore};
use show_service::auth::keys::SigningKey;
use show_service::auth::verifier::Verifier;
use show_service::domain::{Feed, FeedError, MAX_FEED_ITEMS, Show};
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

/// `Feed::parse` on arbitrary bytes never panics; a feed it accepts is within limits,
/// has distinct slugs, and every show round-trips (its JSON parses back to itself); a
/// refusal always lists a problem; "not JSON" means exactly that.
pub fn feed(data: &[u8]) {
    let json = serde_json::from_slice::<Value>(data).ok();
    let result = Feed::parse(data);
    match &result {
        Ok(feed) => {
            assert!((1..=MAX_FEED_ITEMS).contains(&feed.shows.len()));
            let slugs: HashSet<&str> = feed.shows.iter().map(|s| s.slug.as_str()).collect();
            assert_eq!(slugs.len(), feed.shows.len(), "duplicate slugs accepted");
            for show in &feed.shows {
                let stored = serde_json::to_string(show).expect("serialize");
                let back: Show = serde_json::from_str(&stored).expect("stored show reads back");
                assert_eq!(&back, show);
                let mut problems = Vec::new();
                let again = Show::from_json(
                    &serde_json::from_str(&stored).expect("json"),
                    "p",
                    &mut problems,
                );
                assert_eq!(again.as_ref(), Some(show), "{problems:?}");
            }
        }
        Err(FeedError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "refused without a problem");
            assert!(json.is_some(), "not JSON reported as invalid");
        }
        Err(FeedError::NotJson) => assert!(json.is_none(), "JSON reported as not JSON"),
    }
    // The parsed-value entry point gives the same verdict.
    if let Some(v) = json {
        let other = Feed::from_value(&v);
        assert_eq!(
            other.map(|f| f.shows).map_err(|e| format!("{e:?}")),
            result.map(|f| f.shows).map_err(|e| format!("{e:?}")),
        );
    }
}

/// The token fuzzing set-up: one signing key, a verifier that trusts only it, and one
/// valid token; built once per process (RSA key generation is slow).
struct TokenEnv {
    runtime: tokio::runtime::Runtime,
    key: SigningKey,
    verifier: Verifier,
    valid: String,
}

const ISSUER: &str = "https://issuer.example/pool";
const CLIENT: &str = "client-a";
const LEEWAY: i64 = 30;
/// The verification time: fixed, so a run is reproducible.
const NOW: i64 = 1_700_000_000;

fn token_env() -> &'static TokenEnv {
    static ENV: OnceLock<TokenEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let key = SigningKey::generate().expect("RSA key");
        let jwks = serde_json::to_vec(&json!({ "keys": [key.public_jwk()] })).expect("jwks");
        let keys = KeySet::from_json(&jwks).expect("our own JWKS parses");
        let rules = ClaimRules {
            issuer: ISSUER.into(),
            audience: vec![CLIENT.into()],
            leeway: LEEWAY,
        };
        let valid = key
            .sign(&json!({
                "iss": ISSUER, "exp": NOW + 3600, "iat": NOW, "client_id": CLIENT,
                "token_use": "access", "scope": "https://rs.example/shows.read",
            }))
            .expect("sign");
        TokenEnv {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
            verifier: Verifier::new(Arc::new(KeyStore::fixed(keys)), rules),
            key,
            valid,
        }
    })
}

/// The verifier never panics, and accepts a token only when it is exactly a token signed
/// by the trusted key whose claims meet every rule. The first byte picks the mode:
/// - 0, 1: the rest, as text, is the token: it is refused (nothing but our signature
///   verifies, and the fuzzer cannot forge one);
/// - 2: the valid token with the rest spliced in at a position: any change is refused;
/// - 3: the rest is a JSON claims set, signed with the trusted key: accepted only when
///   issuer, expiry, token use and audience are right.
pub fn token(data: &[u8]) {
    let env = token_env();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let verify = |token: &str| env.runtime.block_on(env.verifier.verify_at(token, NOW));
    match mode % 4 {
        0 | 1 => {
            let token = String::from_utf8_lossy(rest);
            let result = verify(&token);
            if token != env.valid {
                assert!(result.is_err(), "a forged token verified: {token:?}");
            }
        }
        2 => {
            let Some((&at, insert)) = rest.split_first() else {
                assert!(verify(&env.valid).is_ok(), "the valid token was refused");
                return;
            };
            let mut bytes = env.valid.clone().into_bytes();
            let at = usize::from(at) * bytes.len() / 256;
            let cut = insert.len().min(bytes.len() - at);
            bytes.splice(at..at + cut, insert.iter().copied());
            let token = String::from_utf8_lossy(&bytes);
            let result = verify(&token);
            if token != env.valid {
                assert!(result.is_err(), "a tampered token verified: {token:?}");
            }
        }
        _ => {
            let Ok(claims) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            let token = env.key.sign(&claims).expect("sign");
            if let Ok(verified) = verify(&token) {
                assert_eq!(claims["iss"], ISSUER, "wrong issuer accepted");
                assert!(
                    NOW < verified.exp.saturating_add(LEEWAY),
                    "expired token accepted"
                );
                let token_use = &claims["token_use"];
                assert!(
                    token_use.is_null() || token_use == "access",
                    "token_use {token_use} accepted"
                );
                let aud_ok = match &claims["aud"] {
                    Value::Null => claims["client_id"] == CLIENT,
                    Value::String(a) => a == CLIENT,
                    Value::Array(a) => a.iter().any(|v| v == CLIENT),
                    other => panic!("aud {other} accepted"),
                };
                assert!(aud_ok, "wrong audience accepted: {claims}");
            }
        }
    }
}
