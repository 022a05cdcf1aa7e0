//! The key store's tests. The fetch rules run against [`FakeIssuer`] on paused time, so
//! delays, budgets and refills are exact and nothing waits on the wall clock; a few tests
//! fetch from a real HTTP server ([`JwksServer`]) for the download itself.

use super::*;
use crate::auth::keys::SigningKey;
use axum::Router;
use axum::routing::get;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

/// An issuer in memory: the JWKS it publishes, how long it takes to answer (on tokio's
/// clock), whether it is down, and how many fetches it answered.
#[derive(Default)]
pub(crate) struct FakeIssuer {
    doc: Mutex<String>,
    delay: Mutex<Duration>,
    down: AtomicBool,
    hits: AtomicU64,
}

impl FakeIssuer {
    pub fn new(keys: &[&SigningKey]) -> Arc<FakeIssuer> {
        let issuer = FakeIssuer::default();
        *issuer.doc.lock().unwrap() = jwks_doc(keys);
        Arc::new(issuer)
    }

    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.doc.lock().unwrap() = jwks_doc(keys);
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// One fetch of the document, as [`download`] answers it.
    pub(super) async fn serve(&self) -> Result<Vec<u8>, String> {
        self.hits.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err("cannot fetch: connection refused".into());
        }
        Ok(self.doc.lock().unwrap().clone().into_bytes())
    }
}

/// A store that fetches from `issuer`.
pub(crate) fn fake_store(issuer: &Arc<FakeIssuer>, policy: FetchPolicy) -> Arc<KeyStore> {
    Arc::new(KeyStore::with_source(
        Source::Fake(issuer.clone()),
        KeySet::default(),
        policy,
    ))
}

/// A JWKS server on 127.0.0.1:0 whose document the test can change, and which counts
/// the requests it answers. (Delays are [`FakeIssuer`]'s, on paused time.)
pub(crate) struct JwksServer {
    pub url: String,
    pub hits: Arc<AtomicU64>,
    doc: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(keys: &[&SigningKey]) -> JwksServer {
        let doc = Arc::new(Mutex::new(jwks_doc(keys)));
        let hits = Arc::new(AtomicU64::new(0));
        let (d, h) = (doc.clone(), hits.clone());
        let app = Router::new().route(
            "/jwks.json",
            get(move || {
                let (d, h) = (d.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let body = d.lock().unwrap().clone();
                    ([("content-type", "application/json")], body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer {
            url,
            hits,
            doc,
            task,
        }
    }

    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.doc.lock().unwrap() = jwks_doc(keys);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn jwks_doc(keys: &[&SigningKey]) -> String {
    let keys: Vec<_> = keys.iter().map(|k| k.public_jwk()).collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// A URL on which nothing listens.
pub(crate) async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/jwks.json")
}

pub(crate) fn fast_policy(min_interval: Duration) -> FetchPolicy {
    FetchPolicy {
        burst: 1,
        min_interval,
        retry_after_failure: min_interval,
        budget: Duration::from_millis(1500),
        max_age: Duration::from_secs(3600),
    }
}

#[test]
fn only_rs256_signing_keys_with_a_kid_are_kept() {
    let key = SigningKey::generate().unwrap();
    let good = serde_json::to_value(key.public_jwk()).unwrap();
    let mut no_alg = good.clone();
    no_alg["kid"] = "no-alg".into();
    no_alg.as_object_mut().unwrap().remove("alg");
    no_alg.as_object_mut().unwrap().remove("use");
    let mut leading_zero = good.clone();
    leading_zero["kid"] = "zero".into();
    let mut n = vec![0u8];
    n.extend(URL_SAFE_NO_PAD.decode(good["n"].as_str().unwrap()).unwrap());
    leading_zero["n"] = URL_SAFE_NO_PAD.encode(&n).into();
    let with = |k: &str, v: serde_json::Value| {
        let mut j = good.clone();
        j["kid"] = format!("bad-{k}").into();
        j[k] = v;
        j
    };
    let doc = serde_json::json!({ "keys": [
        good,
        no_alg,
        leading_zero,
        with("use", "enc".into()),
        with("alg", "RS512".into()),
        with("kty", "EC".into()),
        with("n", "AQAB".into()),
        with("n", "!!".into()),
        with("e", serde_json::Value::Null),
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "RSA"},
        "not an object",
    ]});
    let set = KeySet::from_json(doc.to_string().as_bytes()).unwrap();
    let mut kept: Vec<_> = set.keys.keys().cloned().collect();
    kept.sort();
    let mut want = vec![key.kid().to_string(), "no-alg".into(), "zero".into()];
    want.sort();
    assert_eq!(kept, want);
}

#[test]
fn a_document_that_is_not_a_jwks_is_an_error() {
    for doc in ["", "{}", "[]", r#"{"keys":{}}"#, "<html>"] {
        assert!(KeySet::from_json(doc.as_bytes()).is_err(), "{doc}");
    }
    assert!(KeySet::from_json(br#"{"keys":[]}"#).unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn unknown_kids_refetch_within_the_bucket_and_pick_up_rotation() {
    let old = SigningKey::generate().unwrap();
    let new = SigningKey::generate().unwrap();
    let issuer = FakeIssuer::new(&[&old]);
    let mut policy = fast_policy(Duration::from_secs(1));
    policy.burst = 2;
    let store = fake_store(&issuer, policy);
    store.refresh().await.unwrap();
    assert_eq!(issuer.hits(), 1);
    assert!(store.key(old.kid()).await.is_ok());

    // Made-up kids use up the bucket (two fetches), and then fetch no more.
    for i in 0..20 {
        assert!(store.key(&format!("made-up-{i}")).await.is_err());
    }
    assert_eq!(issuer.hits(), 3, "the start-up fetch and the burst of two");

    // The issuer rotates; the bucket is empty until it refills.
    issuer.publish(&[&old, &new]);
    assert_eq!(
        store.key(new.kid()).await.unwrap_err(),
        KeyError::UnknownKid(new.kid().into())
    );
    tokio::time::advance(Duration::from_millis(900)).await;
    assert!(store.key(new.kid()).await.is_err(), "not refilled yet");
    assert_eq!(issuer.hits(), 3);
    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(
        store.key(new.kid()).await.is_ok(),
        "the rotated key is picked up"
    );
    assert_eq!(issuer.hits(), 4);
    // Known kids never fetch.
    for _ in 0..20 {
        assert!(store.key(old.kid()).await.is_ok());
        assert!(store.key(new.kid()).await.is_ok());
    }
    assert_eq!(issuer.hits(), 4);
    assert_eq!(store.fetch_count(), 4);
}

#[tokio::test(start_paused = true)]
async fn concurrent_made_up_kids_share_one_fetch() {
    let key = SigningKey::generate().unwrap();
    let issuer = FakeIssuer::new(&[&key]);
    // The fetch takes a while, so that every lookup arrives while it runs.
    issuer.set_delay(Duration::from_millis(200));
    let store = fake_store(&issuer, FetchPolicy::default());
    let lookups = (0..200).map(|i| {
        let store = store.clone();
        async move { store.key(&format!("kid-{i}")).await }
    });
    let results = futures::future::join_all(lookups).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(KeyError::UnknownKid(_))))
    );
    assert_eq!(issuer.hits(), 1, "concurrent unknown kids share one fetch");
    assert!(store.key(key.kid()).await.is_ok());
    assert_eq!(issuer.hits(), 1);
}

/// Over HTTP: the download itself, and a set that changes only when its keys do.
#[tokio::test]
async fn the_generation_changes_only_when_the_keys_do() {
    let a = SigningKey::generate().unwrap();
    let b = SigningKey::generate().unwrap();
    let server = JwksServer::start(&[&a]).await;
    let store = Arc::new(KeyStore::http(&server.url, fast_policy(Duration::ZERO)).unwrap());
    store.refresh().await.unwrap();
    let first = store.generation();
    store.refresh().await.unwrap();
    assert_eq!(store.generation(), first, "the same set again");
    server.publish(&[&a, &b]);
    store.refresh().await.unwrap();
    assert_ne!(store.generation(), first, "a key was added");
    let second = store.generation();
    server.publish(&[&b]);
    store.refresh().await.unwrap();
    assert_ne!(store.generation(), second, "a key was withdrawn");
    let set = store.current();
    assert!(set.get(a.kid()).is_none());
    assert!(set.get(b.kid()).is_some());
    assert_eq!(server.hits(), 4);
}

/// Over HTTP: a refused connection is a failed fetch, and the answer is 503-worthy.
#[tokio::test]
async fn a_dead_jwks_endpoint_answers_unavailable() {
    let store = Arc::new(KeyStore::http(&dead_url().await, FetchPolicy::default()).unwrap());
    assert!(store.refresh().await.is_err());
    let err = store.key("any").await.unwrap_err();
    assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
    // Within the retry delay nothing is fetched again, and the answer stays 503-worthy.
    assert_eq!(store.fetch_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_down_issuer_is_asked_again_only_after_the_retry_delay() {
    let key = SigningKey::generate().unwrap();
    let issuer = FakeIssuer::new(&[&key]);
    issuer.set_down(true);
    let policy = FetchPolicy::default();
    let store = fake_store(&issuer, policy);
    let started = Instant::now();
    assert!(store.refresh().await.is_err());
    let err = store.key(key.kid()).await.unwrap_err();
    assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "a refusal is answered at once"
    );
    assert_eq!(issuer.hits(), 1);
    issuer.set_down(false);
    tokio::time::advance(policy.retry_after_failure - Duration::from_millis(1)).await;
    assert!(matches!(
        store.key(key.kid()).await,
        Err(KeyError::Unavailable(_))
    ));
    assert_eq!(issuer.hits(), 1, "not within the retry delay");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(store.key(key.kid()).await.is_ok());
    assert_eq!(issuer.hits(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_jwks_endpoint_costs_a_request_at_most_the_budget() {
    let key = SigningKey::generate().unwrap();
    let issuer = FakeIssuer::new(&[&key]);
    issuer.set_delay(Duration::from_secs(10));
    let policy = FetchPolicy::default();
    let store = fake_store(&issuer, policy);
    let started = Instant::now();
    let (a, b) = tokio::join!(store.key(key.kid()), store.key(key.kid()));
    let elapsed = started.elapsed();
    assert!(matches!(a, Err(KeyError::Unavailable(_))), "{a:?}");
    assert!(matches!(b, Err(KeyError::Unavailable(_))), "{b:?}");
    assert_eq!(
        elapsed, policy.budget,
        "both answered when the one fetch gave up"
    );
    assert_eq!(
        store.fetch_count(),
        1,
        "the waiter did not start a second fetch"
    );
}

#[tokio::test(start_paused = true)]
async fn known_keys_keep_verifying_while_the_endpoint_is_down() {
    let key = SigningKey::generate().unwrap();
    let issuer = FakeIssuer::new(&[&key]);
    let store = fake_store(&issuer, fast_policy(Duration::ZERO));
    store.refresh().await.unwrap();
    issuer.set_delay(Duration::from_secs(10)); // down from now on
    let started = Instant::now();
    assert!(store.key(key.kid()).await.is_ok());
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "a known key waits for nothing"
    );
    // An unknown kid now needs a fetch, which fails: unavailable, not unknown.
    assert!(matches!(
        store.key("new").await,
        Err(KeyError::Unavailable(_))
    ));
    // The failed fetch kept the old keys.
    assert!(store.key(key.kid()).await.is_ok());
    assert_eq!(store.key_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_old_set_is_refreshed_in_the_background() {
    let old = SigningKey::generate().unwrap();
    let issuer = FakeIssuer::new(&[&old]);
    let mut policy = fast_policy(Duration::ZERO);
    policy.max_age = Duration::from_secs(3600);
    let store = fake_store(&issuer, policy);
    store.refresh().await.unwrap();
    let other = SigningKey::generate().unwrap();
    issuer.publish(&[&other]); // the issuer withdrew `old`
    // Younger than max_age: answered from the set in hand, nothing fetched.
    tokio::time::advance(policy.max_age - Duration::from_secs(1)).await;
    assert!(store.key(old.kid()).await.is_ok());
    tokio::task::yield_now().await;
    assert_eq!(issuer.hits(), 1);
    // As old as max_age: still answered from the set in hand; the refresh runs behind it.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(store.key(old.kid()).await.is_ok());
    for _ in 0..100 {
        if store.fetch_count() == 2 && store.read().keys.get(old.kid()).is_none() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(issuer.hits(), 2);
    assert!(
        store.read().keys.get(old.kid()).is_none(),
        "withdrawn key dropped"
    );
    assert!(store.read().keys.get(other.kid()).is_some());
}

#[tokio::test]
async fn a_fixed_store_never_fetches() {
    let key = SigningKey::generate().unwrap();
    let set = KeySet::from_json(jwks_doc(&[&key]).as_bytes()).unwrap();
    let store = Arc::new(KeyStore::fixed(set));
    assert!(store.key(key.kid()).await.is_ok());
    assert_eq!(
        store.key("other").await.unwrap_err(),
        KeyError::UnknownKid("other".into())
    );
    assert_eq!(store.fetch_count(), 0);
}
