//! Authentication through the real router: the local issuer's token endpoint, the
//! verifier's 401/403/503 answers in the error envelope, jwt mode against an external
//! issuer started by the test (tokens made with an independent JWT library), and the
//! `token` subcommand.
//!
//! Each test builds the app with `http::router` over a SQLite store in a temp dir and
//! drives it with `oneshot`; a real socket is used only where HTTP must cross between
//! two apps (a JWKS fetched over HTTP).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use show_service::auth::Auth;
use show_service::config::Settings;
use show_service::http::{AppState, router};
use show_service::store::sqlite::SqliteStore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower::ServiceExt;

const RS_LOCAL: &str = "https://show-service-local.api";

fn settings(dir: &std::path::Path, extra: &[(&str, &str)]) -> Settings {
    let mut env = vec![(
        "APP__STORE__PATH".to_string(),
        dir.join("shows.db").display().to_string(),
    )];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load(None, env).expect("settings")
}

async fn app(settings: Settings) -> Router {
    let store = Arc::new(SqliteStore::open(&settings.store.path).expect("store"));
    let auth = Auth::from_settings(&settings).await.expect("auth");
    router(AppState::new(settings, store, auth))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(format!("{bytes:?}")))
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut req = Request::get(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    req.body(Body::empty()).expect("request")
}

fn post_feed(token: &str) -> Request<Body> {
    Request::post("/v1/shows")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(&include_bytes!("fixtures/feed-12.json")[..]))
        .expect("request")
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn token_request(path: &str, authorization: Option<&str>, form: &str) -> Request<Body> {
    let mut req =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(a) = authorization {
        req = req.header(header::AUTHORIZATION, a);
    }
    req.body(Body::from(form.to_string())).expect("request")
}

async fn local_token(app: &Router, scope: &str) -> String {
    let a = send(
        app,
        token_request(
            "/oauth/token",
            Some(&basic("local-client", "local-secret")),
            &format!("grant_type=client_credentials&scope={scope}"),
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["access_token"].as_str().expect("token").to_string()
}

/// The JSON error envelope, with the request id echoed.
fn assert_envelope(a: &Answer) {
    assert!(
        a.header(header::CONTENT_TYPE)
            .starts_with("application/json")
    );
    let id = a.header(header::HeaderName::from_static("x-request-id"));
    assert_eq!(a.body["requestId"], id, "{}", a.body);
    assert!(a.body["error"].as_str().is_some_and(|e| !e.is_empty()));
}

#[tokio::test]
async fn without_a_token_401_with_a_read_token_403_on_writes_with_the_right_scope_200() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(settings(dir.path(), &[])).await;

    for path in ["/v1/shows", "/shows", "/v1/shows/show/a"] {
        let a = send(&app, get(path, None)).await;
        assert_eq!(a.status, 401, "{path}");
        assert_eq!(
            a.header(header::WWW_AUTHENTICATE),
            "Bearer error=\"invalid_token\""
        );
        assert_envelope(&a);
    }
    let a = send(&app, get("/v1/shows", Some("not-a-token"))).await;
    assert_eq!(a.status, 401);
    assert_envelope(&a);
    let a = send(
        &app,
        Request::get("/v1/shows")
            .header(header::AUTHORIZATION, basic("local-client", "local-secret"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 401, "a Basic header is the wrong scheme");

    // The probes and the document need no token.
    for path in ["/health", "/health/ready", "/openapi.json"] {
        assert_eq!(send(&app, get(path, None)).await.status, 200, "{path}");
    }

    let read = local_token(&app, "shows.read").await;
    assert_eq!(send(&app, get("/v1/shows", Some(&read))).await.status, 200);
    let a = send(&app, post_feed(&read)).await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.header(header::WWW_AUTHENTICATE),
        format!("Bearer error=\"insufficient_scope\", scope=\"{RS_LOCAL}/shows.write\"")
    );
    assert_envelope(&a);

    let write = local_token(&app, "shows.write").await;
    assert_eq!(send(&app, post_feed(&write)).await.status, 201);
    let a = send(&app, get("/v1/shows", Some(&write))).await;
    assert_eq!(a.status, 403, "write does not imply read");
    assert_eq!(
        a.header(header::WWW_AUTHENTICATE),
        format!("Bearer error=\"insufficient_scope\", scope=\"{RS_LOCAL}/shows.read\"")
    );

    let both = local_token(&app, "shows.read%20shows.write").await;
    let a = send(&app, get("/v1/shows", Some(&both))).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["response"].as_array().map(Vec::len), Some(5));
    // A bare token (no "Bearer "), as API Gateway accepts and forwards.
    let bare = Request::get("/v1/shows")
        .header(header::AUTHORIZATION, &both)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, bare).await.status, 200);
}

#[tokio::test]
async fn the_token_endpoint_answers_like_cognito_and_keeps_rfc_6749_errors() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(settings(dir.path(), &[])).await;

    // Form authentication, the alias path, no scope: every scope the client may have.
    let a = send(
        &app,
        token_request(
            "/oauth2/token",
            None,
            "grant_type=client_credentials&client_id=local-client&client_secret=local-secret",
        ),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header(header::CACHE_CONTROL), "no-store");
    assert_eq!(a.body["token_type"], "Bearer");
    assert_eq!(a.body["expires_in"], 3600);
    let keys: Vec<&String> = a.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "token_type", "expires_in"]);
    let token = a.body["access_token"].as_str().unwrap();
    let [header_b64, claims_b64, _]: [&str; 3] =
        token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).unwrap()).unwrap();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_b64).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(
        claims["scope"],
        format!("{RS_LOCAL}/shows.read {RS_LOCAL}/shows.write {RS_LOCAL}/shows.admin")
    );
    assert_eq!(claims["iss"], "http://127.0.0.1:8080");

    let cases: &[(Option<&str>, &str, u16, &str)] = &[
        (
            Some("Basic bG9jYWwtY2xpZW50Ondyb25n"),
            "grant_type=client_credentials",
            401,
            "invalid_client",
        ),
        (None, "grant_type=client_credentials", 401, "invalid_client"),
        (
            Some("Basic bG9jYWwtY2xpZW50OmxvY2FsLXNlY3JldA=="),
            "grant_type=password",
            400,
            "unsupported_grant_type",
        ),
        (
            Some("Basic bG9jYWwtY2xpZW50OmxvY2FsLXNlY3JldA=="),
            "scope=shows.read",
            400,
            "invalid_request",
        ),
        (
            Some("Basic bG9jYWwtY2xpZW50OmxvY2FsLXNlY3JldA=="),
            "grant_type=client_credentials&scope=shows.delete",
            400,
            "invalid_scope",
        ),
    ];
    for (auth, form, status, error) in cases {
        let a = send(&app, token_request("/oauth/token", *auth, form)).await;
        assert_eq!(a.status, *status, "{form}");
        assert_eq!(a.body["error"], *error, "{form}");
        assert!(a.body["error_description"].is_string());
        assert!(
            a.body.get("requestId").is_none(),
            "not wrapped in the envelope"
        );
        assert!(a.headers.contains_key("x-request-id"));
        if *status == 401 {
            assert_eq!(
                a.header(header::WWW_AUTHENTICATE),
                "Basic realm=\"show-service\""
            );
        }
    }

    // What is not the endpoint's own answer gets the envelope, as everywhere.
    let a = send(&app, get("/oauth/token", None)).await;
    assert_eq!(a.status, 405);
    assert_envelope(&a);
}

#[tokio::test]
async fn the_token_endpoint_limits_each_client_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(settings(
        dir.path(),
        &[
            ("APP__AUTH__TOKENBURST", "2"),
            ("APP__AUTH__TOKENRATEPERSECOND", "1"),
        ],
    ))
    .await;
    let ask = || {
        token_request(
            "/oauth/token",
            Some(&basic("local-client", "local-secret")),
            "grant_type=client_credentials",
        )
    };
    assert_eq!(send(&app, ask()).await.status, 200);
    assert_eq!(send(&app, ask()).await.status, 200);
    // One more token per second: of four quick requests at least one is refused, even
    // on a slow machine.
    let mut refused = None;
    for _ in 0..4 {
        let a = send(&app, ask()).await;
        if a.status == 429 {
            refused = Some(a);
            break;
        }
    }
    let a = refused.expect("a request past the burst is refused");
    assert_eq!(a.header(header::RETRY_AFTER), "1");
    assert_eq!(a.body["error"], "temporarily_unavailable");
    assert!(
        a.body.get("requestId").is_none(),
        "RFC 6749 shape, not the envelope"
    );
}

#[tokio::test]
async fn the_issuer_publishes_its_key_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(settings(
        dir.path(),
        &[("APP__AUTH__PUBLICURL", "http://localhost:9999")],
    ))
    .await;
    let jwks = send(&app, get("/.well-known/jwks.json", None)).await;
    assert_eq!(jwks.status, 200);
    let key = &jwks.body["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["e"], "AQAB");
    let meta = send(&app, get("/.well-known/openid-configuration", None)).await;
    assert_eq!(meta.status, 200);
    assert_eq!(meta.body["issuer"], "http://localhost:9999");
    assert_eq!(
        meta.body["jwks_uri"],
        "http://localhost:9999/.well-known/jwks.json"
    );
    assert_eq!(
        meta.body["grant_types_supported"],
        json!(["client_credentials"])
    );

    let token = local_token(&app, "shows.read").await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], key["kid"]);
    // The key file sits beside the store, private.
    let key_file = dir.path().join(show_service::auth::keys::KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// Serves `app` on `listener` until the returned task is aborted.
async fn serve(listener: tokio::net::TcpListener, app: Router) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

#[tokio::test]
async fn local_issuer_tokens_verify_over_http_jwks_in_jwt_mode_where_the_issuer_routes_404() {
    // The local issuer, on a real socket: its JWKS is fetched over HTTP below.
    let issuer_dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer_app = app(settings(
        issuer_dir.path(),
        &[("APP__AUTH__PUBLICURL", &base)],
    ))
    .await;
    let server = serve(listener, issuer_app).await;
    let res = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .basic_auth("local-client", Some("local-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "shows.read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // A second service in jwt mode trusting it as an external issuer.
    let dir = tempfile::tempdir().unwrap();
    let jwt_app = app(settings(
        dir.path(),
        &[
            ("APP__AUTH__MODE", "jwt"),
            ("APP__AUTH__ISSUER", &base),
            ("APP__AUTH__RESOURCESERVER", RS_LOCAL),
            ("APP__AUTH__AUDIENCE", "local-client"),
        ],
    ))
    .await;
    assert_eq!(
        send(&jwt_app, get("/v1/shows", Some(&token))).await.status,
        200
    );
    assert_eq!(send(&jwt_app, post_feed(&token)).await.status, 403);

    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        let a = send(&jwt_app, get(path, None)).await;
        assert_eq!(a.status, 404, "{path}");
        assert_envelope(&a);
    }
    let a = send(
        &jwt_app,
        token_request(
            "/oauth/token",
            Some(&basic("local-client", "local-secret")),
            "grant_type=client_credentials",
        ),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(
        send(
            &jwt_app,
            token_request("/oauth2/token", None, "grant_type=client_credentials")
        )
        .await
        .status,
        404
    );
    server.abort();
}

/// An RS256 issuer written here, minting with `jsonwebtoken` (not our code): a JWKS at
/// `/jwks` that the test can rotate, counting fetches.
struct ExternalIssuer {
    base: String,
    jwks: Arc<Mutex<Value>>,
    hits: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
}

struct RsaKey {
    kid: String,
    encoding: jsonwebtoken::EncodingKey,
    jwk: Value,
}

impl RsaKey {
    fn generate(kid: &str) -> RsaKey {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = pair.as_der().unwrap();
        let body = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let public = pair.public_key();
        RsaKey {
            kid: kid.to_string(),
            encoding: jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            jwk: json!({
                "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs with this key but names `kid` in the header (a made-up kid).
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_string());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

impl ExternalIssuer {
    async fn start(keys: &[&RsaKey]) -> ExternalIssuer {
        let jwks = Arc::new(Mutex::new(Value::Null));
        let hits = Arc::new(AtomicU64::new(0));
        let (j, h) = (jwks.clone(), hits.clone());
        let app = Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (j, h) = (j.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    axum::Json(j.lock().unwrap().clone())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = ExternalIssuer {
            base,
            jwks,
            hits,
            server: serve(listener, app).await,
        };
        issuer.publish(keys);
        issuer
    }

    fn publish(&self, keys: &[&RsaKey]) {
        let keys: Vec<Value> = keys.iter().map(|k| k.jwk.clone()).collect();
        // An EC key and an encryption key too, as real issuers publish: skipped.
        let mut all = vec![
            json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}),
            json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        ];
        all.extend(keys);
        *self.jwks.lock().unwrap() = json!({ "keys": all });
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for ExternalIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const RS_EXT: &str = "https://api.example.test";

/// Claims as oidc-provider writes them: `aud`, no `token_use`, full scope names.
fn external_claims(issuer: &str, scope: &str) -> Value {
    json!({
        "iss": issuer, "sub": "partner-7", "client_id": "partner-7", "aud": RS_EXT,
        "scope": scope, "iat": now(), "exp": now() + 600, "jti": "abc",
    })
}

#[tokio::test]
async fn an_external_issuer_works_and_every_bad_token_is_refused() {
    let key = RsaKey::generate("ext-1");
    let issuer = ExternalIssuer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app(settings(
        dir.path(),
        &[
            ("APP__AUTH__MODE", "jwt"),
            ("APP__AUTH__ISSUER", &issuer.base),
            ("APP__AUTH__JWKSURL", &format!("{}/jwks", issuer.base)),
            ("APP__AUTH__AUDIENCE", RS_EXT),
            ("APP__AUTH__RESOURCESERVER", RS_EXT),
        ],
    ))
    .await;
    assert_eq!(issuer.hits(), 1, "fetched once at start");
    let read = format!("{RS_EXT}/shows.read");
    let write = format!("{RS_EXT}/shows.write");

    let good = key.sign(&external_claims(&issuer.base, &read));
    assert_eq!(send(&app, get("/v1/shows", Some(&good))).await.status, 200);
    assert_eq!(send(&app, post_feed(&good)).await.status, 403);
    let writer = key.sign(&external_claims(&issuer.base, &write));
    assert_eq!(send(&app, post_feed(&writer)).await.status, 201);
    assert_eq!(
        send(&app, get("/v1/shows", Some(&writer))).await.status,
        403
    );

    // `scp` as an array instead of `scope`.
    let mut scp = external_claims(&issuer.base, "");
    scp["scp"] = json!([read]);
    assert_eq!(
        send(&app, get("/v1/shows", Some(&key.sign(&scp))))
            .await
            .status,
        200
    );

    let patched = |patch: Value| {
        let mut c = external_claims(&issuer.base, &read);
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        key.sign(&c)
    };
    let bad = [
        ("expired", patched(json!({"exp": now() - 120}))),
        ("not yet valid", patched(json!({"nbf": now() + 120}))),
        (
            "wrong issuer",
            patched(json!({"iss": "https://elsewhere.test"})),
        ),
        (
            "wrong audience",
            patched(json!({"aud": "https://other-api.test"})),
        ),
        ("an id token", patched(json!({"token_use": "id"}))),
        ("short scope name", patched(json!({"scope": "shows.read"}))),
        (
            "unknown kid",
            RsaKey::generate("ext-2").sign(&external_claims(&issuer.base, &read)),
        ),
    ];
    for (name, token) in bad {
        let a = send(&app, get("/v1/shows", Some(&token))).await;
        let want = if name == "short scope name" { 403 } else { 401 };
        assert_eq!(a.status, want, "{name}");
        assert_envelope(&a);
    }
    // Only the unknown kid whose claims pass may refetch; made-up kids with good claims
    // use up at most the store's small bucket (four fetches, one more each 15 s).
    let stranger = RsaKey::generate("x");
    for i in 0..10 {
        let t = stranger.sign_as(&format!("x{i}"), &external_claims(&issuer.base, &read));
        assert_eq!(send(&app, get("/v1/shows", Some(&t))).await.status, 401);
    }
    let fetched = issuer.hits();
    assert!((2..=6).contains(&fetched), "{fetched} fetches");
    // Verified tokens are cached: repeats fetch nothing and still pass.
    for _ in 0..20 {
        assert_eq!(send(&app, get("/v1/shows", Some(&good))).await.status, 200);
    }
    assert_eq!(issuer.hits(), fetched);
}

fn jwt_app_settings(dir: &std::path::Path, issuer: &ExternalIssuer) -> Settings {
    let jwks = format!("{}/jwks", issuer.base);
    settings(
        dir,
        &[
            ("APP__AUTH__MODE", "jwt"),
            ("APP__AUTH__ISSUER", &issuer.base),
            ("APP__AUTH__JWKSURL", &jwks),
            ("APP__AUTH__AUDIENCE", RS_EXT),
            ("APP__AUTH__RESOURCESERVER", RS_EXT),
        ],
    )
}

#[tokio::test]
async fn a_withdrawn_key_is_refused_after_the_refetch_even_for_a_token_it_verified() {
    let old = RsaKey::generate("ext-old");
    let new = RsaKey::generate("ext-new");
    let issuer = ExternalIssuer::start(&[&old]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app(jwt_app_settings(dir.path(), &issuer)).await;
    let read = format!("{RS_EXT}/shows.read");
    let t_old = old.sign(&external_claims(&issuer.base, &read));
    assert_eq!(send(&app, get("/v1/shows", Some(&t_old))).await.status, 200);

    // The issuer withdraws the old key (say it leaked) and publishes a new one; the first
    // token of the new key makes the service fetch the JWKS again.
    issuer.publish(&[&new]);
    let t_new = new.sign(&external_claims(&issuer.base, &read));
    assert_eq!(send(&app, get("/v1/shows", Some(&t_new))).await.status, 200);
    assert_eq!(issuer.hits(), 2);

    // The old key's token was verified (and cached) before: now it is refused.
    let a = send(&app, get("/v1/shows", Some(&t_old))).await;
    assert_eq!(a.status, 401);
    assert_envelope(&a);
    assert_eq!(send(&app, get("/v1/shows", Some(&t_new))).await.status, 200);
}

#[tokio::test]
async fn a_burst_of_made_up_kids_does_not_delay_a_newly_published_key() {
    let key = RsaKey::generate("ext-1");
    let issuer = ExternalIssuer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app(jwt_app_settings(dir.path(), &issuer)).await;
    assert_eq!(issuer.hits(), 1, "fetched once at start");
    let read = format!("{RS_EXT}/shows.read");

    // An attacker's burst: random kids, signed or not, claims that do not pass.
    let stranger = RsaKey::generate("x");
    let bad = |i: usize, patch: Value| {
        let mut c = external_claims(&issuer.base, &read);
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        stranger.sign_as(&format!("random-{i}"), &c)
    };
    let mut burst = Vec::new();
    for i in 0..20 {
        burst.push(bad(i, json!({"exp": now() - 600})));
        burst.push(bad(100 + i, json!({"iss": "https://elsewhere.test"})));
        burst.push(bad(200 + i, json!({"aud": "https://other-api.test"})));
        burst.push(bad(300 + i, json!({"token_use": "id"})));
    }
    for token in &burst {
        assert_eq!(send(&app, get("/v1/shows", Some(token))).await.status, 401);
    }
    assert_eq!(issuer.hits(), 1, "the burst fetched nothing");

    // The issuer publishes a new key and signs with it at once: accepted at once.
    let new = RsaKey::generate("ext-2");
    issuer.publish(&[&key, &new]);
    let t_new = new.sign(&external_claims(&issuer.base, &read));
    assert_eq!(send(&app, get("/v1/shows", Some(&t_new))).await.status, 200);
    assert_eq!(issuer.hits(), 2);
}

#[tokio::test]
async fn a_dead_jwks_endpoint_answers_503_with_retry_after_without_hanging() {
    let key = RsaKey::generate("k");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/jwks", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    // A hang is caught, nothing is timed: the unit tests (`auth::jwks`, on paused time)
    // pin the fetch budget exactly.
    let hang = Duration::from_secs(30);
    let app = tokio::time::timeout(
        hang,
        app(settings(
            dir.path(),
            &[
                ("APP__AUTH__MODE", "jwt"),
                ("APP__AUTH__ISSUER", "https://issuer.test"),
                ("APP__AUTH__JWKSURL", &dead),
            ],
        )),
    )
    .await
    .expect("start-up does not wait for the issuer");
    let token = key.sign(&external_claims("https://issuer.test", "x"));
    let a = tokio::time::timeout(hang, send(&app, get("/v1/shows", Some(&token))))
        .await
        .expect("the request does not wait for the issuer");
    assert_eq!(a.status, 503);
    assert_eq!(a.header(header::RETRY_AFTER), "5");
    assert!(!a.headers.contains_key(header::WWW_AUTHENTICATE));
    assert_envelope(&a);
    // What cannot be a token is still a 401: the outage is not an excuse to guess.
    let a = send(&app, get("/v1/shows", Some("garbage"))).await;
    assert_eq!(a.status, 401);
    assert_eq!(send(&app, get("/v1/shows", None)).await.status, 401);
    // Liveness does not depend on the issuer.
    assert_eq!(send(&app, get("/health", None)).await.status, 200);
}

#[tokio::test]
async fn the_token_subcommand_prints_a_token_the_service_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_show-service"))
            .env_clear()
            .env("APP__STORE__PATH", dir.path().join("shows.db"))
            .args(args)
            .output()
            .expect("run show-service token")
    };
    // Before any server has started there: one line naming the missing key, and no key
    // made (one of its own would sign tokens the server refuses).
    let out = run(&["token"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    let key = dir.path().join("local-issuer.pk8");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains("issuer http://127.0.0.1:8080"), "{err}");
    assert!(
        lines[1].contains(&format!("no signing key at {}", key.display()))
            && lines[1].contains("show-service serve"),
        "{err}"
    );
    assert!(!key.exists());

    // The service makes the key on its first start; the command signs with it.
    let app = app(settings(dir.path(), &[])).await;
    let out = run(&["token", "--scope", "shows.read"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&key.display().to_string()));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    assert_eq!(send(&app, get("/v1/shows", Some(&token))).await.status, 200);
    assert_eq!(send(&app, post_feed(&token)).await.status, 403);

    let out = run(&[
        "token",
        "--scope",
        "shows.read,shows.write",
        "--client-id",
        "local-client",
    ]);
    assert!(out.status.success());
    let both = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(send(&app, post_feed(&both)).await.status, 201);

    let out = run(&["token", "--client-id", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));
}
