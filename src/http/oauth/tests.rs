//! The token endpoint's tests: the form, client authentication, limits, the answers.

use super::*;
use crate::auth::issuer::{FAILURE_BURST, FAILURE_REFILL_SECONDS};
use crate::auth::keys::SigningKey;
use crate::config::Settings;
use serde_json::Value;
use std::time::Duration;

const RS: &str = "https://show-service-local.api";
const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut env = vec![("APP__AUTH__CLIENTS", "reader:reader-secret:shows.read")];
    env.extend_from_slice(extra);
    Settings::load(
        None,
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap()
}

fn issuer(extra: &[(&str, &str)]) -> Arc<Issuer> {
    let key = Arc::new(SigningKey::generate().unwrap());
    Arc::new(Issuer::new(&settings(extra).auth, key).unwrap())
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    for (k, v) in pairs {
        let name = header::HeaderName::from_bytes(k.as_bytes()).unwrap();
        h.insert(name, HeaderValue::from_str(v).unwrap());
    }
    h
}

async fn ask(issuer: &Arc<Issuer>, h: HeaderMap, body: &str) -> Result<Value, OAuthError> {
    let (_, res) = token_request(issuer, &h, body.as_bytes(), HERE, Instant::now()).await?;
    assert_eq!(res.token_type, "Bearer");
    assert_eq!(res.expires_in, 3600);
    // The claims as issued (their signature is the auth tests' business).
    let payload = res.access_token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    Ok(serde_json::from_slice(&json).unwrap())
}

fn code(r: Result<Value, OAuthError>) -> &'static str {
    r.map(|_| "ok").unwrap_or_else(|e| e.code())
}

#[tokio::test]
async fn basic_and_form_authentication_both_issue_cognito_shaped_tokens() {
    let iss = issuer(&[]);
    let by_basic = ask(
        &iss,
        headers(&[("authorization", &basic("local-client", "local-secret"))]),
        "grant_type=client_credentials",
    )
    .await
    .unwrap();
    let by_form = ask(
        &iss,
        headers(&[]),
        "grant_type=client_credentials&client_id=local-client&client_secret=local-secret&scope=shows.read",
    )
    .await
    .unwrap();
    // No scope asked for: every scope the client may have (the development client's
    // are all three, `shows.admin` included).
    assert_eq!(
        by_basic["scope"],
        format!("{RS}/shows.read {RS}/shows.write {RS}/shows.admin")
    );
    assert_eq!(by_form["scope"], format!("{RS}/shows.read"));
    for claims in [&by_basic, &by_form] {
        assert_eq!(claims["sub"], "local-client");
        assert_eq!(claims["client_id"], "local-client");
        assert_eq!(claims["token_use"], "access");
        assert_eq!(claims["iss"], "http://127.0.0.1:8080");
        assert_eq!(claims["version"], 2);
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            3600
        );
        assert_eq!(claims["auth_time"], claims["iat"]);
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
        assert!(
            claims.get("aud").is_none(),
            "Cognito access tokens carry no aud"
        );
        let keys: Vec<&str> = claims
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 10, "{keys:?}");
    }
    assert_ne!(by_basic["jti"], by_form["jti"]);
}

#[tokio::test]
async fn scopes_may_be_short_or_full_and_only_those_allowed() {
    let iss = issuer(&[]);
    let reader = headers(&[("authorization", &basic("reader", "reader-secret"))]);
    let cases: &[(&str, &str)] = &[
        ("", "ok"),
        ("&scope=", "ok"),
        ("&scope=shows.read", "ok"),
        (
            "&scope=https%3A%2F%2Fshow-service-local.api%2Fshows.read",
            "ok",
        ),
        ("&scope=shows.read+shows.read", "ok"),
        ("&scope=shows.write", "invalid_scope"),
        ("&scope=shows.read+shows.write", "invalid_scope"),
        ("&scope=shows.delete", "invalid_scope"),
        (
            "&scope=https%3A%2F%2Fother.api%2Fshows.read",
            "invalid_scope",
        ),
    ];
    for (scope, want) in cases {
        let body = format!("grant_type=client_credentials{scope}");
        let got = ask(&iss, reader.clone(), &body).await;
        if *want == "ok" {
            assert_eq!(got.unwrap()["scope"], format!("{RS}/shows.read"), "{scope}");
        } else {
            assert_eq!(code(got), *want, "{scope}");
        }
    }
}

#[tokio::test]
async fn bad_requests_get_their_rfc_6749_error() {
    let iss = issuer(&[]);
    let good = basic("local-client", "local-secret");
    let form_auth = "client_id=local-client&client_secret=local-secret";
    let json_type = {
        let mut h = headers(&[("authorization", &good)]);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h
    };
    let no_type = {
        let mut h = headers(&[("authorization", &good)]);
        h.remove(header::CONTENT_TYPE);
        h
    };
    let cases: Vec<(&str, HeaderMap, String, &str)> = vec![
        (
            "wrong secret",
            headers(&[("authorization", &basic("local-client", "nope"))]),
            "grant_type=client_credentials".into(),
            "invalid_client",
        ),
        (
            "secret of another client",
            headers(&[("authorization", &basic("local-client", "reader-secret"))]),
            "grant_type=client_credentials".into(),
            "invalid_client",
        ),
        (
            "unknown client",
            headers(&[("authorization", &basic("who", "local-secret"))]),
            "grant_type=client_credentials".into(),
            "invalid_client",
        ),
        (
            "no authentication",
            headers(&[]),
            "grant_type=client_credentials".into(),
            "invalid_client",
        ),
        (
            "id without secret",
            headers(&[]),
            "grant_type=client_credentials&client_id=local-client".into(),
            "invalid_client",
        ),
        (
            "secret without id",
            headers(&[]),
            "grant_type=client_credentials&client_secret=local-secret".into(),
            "invalid_client",
        ),
        (
            "bearer instead of basic",
            headers(&[("authorization", "Bearer abc")]),
            "grant_type=client_credentials".into(),
            "invalid_client",
        ),
        (
            "basic not base64",
            headers(&[("authorization", "Basic !!!")]),
            "grant_type=client_credentials".into(),
            "invalid_client",
        ),
        (
            "basic without colon",
            headers(&[("authorization", "Basic bG9jYWwtY2xpZW50")]),
            "grant_type=client_credentials".into(),
            "invalid_client",
        ),
        (
            "two methods",
            headers(&[("authorization", &good)]),
            format!("grant_type=client_credentials&{form_auth}"),
            "invalid_request",
        ),
        (
            "other client_id in the body",
            headers(&[("authorization", &good)]),
            "grant_type=client_credentials&client_id=reader".into(),
            "invalid_request",
        ),
        (
            "no grant_type",
            headers(&[("authorization", &good)]),
            "scope=shows.read".into(),
            "invalid_request",
        ),
        (
            "password grant",
            headers(&[("authorization", &good)]),
            "grant_type=password".into(),
            "unsupported_grant_type",
        ),
        (
            "authorization_code grant",
            headers(&[]),
            format!("grant_type=authorization_code&{form_auth}"),
            "unsupported_grant_type",
        ),
        (
            "repeated parameter",
            headers(&[("authorization", &good)]),
            "grant_type=client_credentials&grant_type=client_credentials".into(),
            "invalid_request",
        ),
        (
            "JSON body",
            json_type,
            r#"{"grant_type":"client_credentials"}"#.into(),
            "invalid_request",
        ),
        (
            "no content type",
            no_type,
            "grant_type=client_credentials".into(),
            "invalid_request",
        ),
    ];
    for (name, h, body, want) in cases {
        assert_eq!(code(ask(&iss, h, &body).await), want, "{name}");
    }
    // The same client id in the body as in Basic is fine.
    let same = ask(
        &iss,
        headers(&[("authorization", &good)]),
        "grant_type=client_credentials&client_id=local-client",
    )
    .await;
    assert!(same.is_ok());
    let charset = {
        let mut h = headers(&[("authorization", &good)]);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        h
    };
    assert!(
        ask(&iss, charset, "grant_type=client_credentials")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn each_client_is_rate_limited_with_retry_after() {
    let iss = issuer(&[
        ("APP__AUTH__TOKENRATEPERSECOND", "1"),
        ("APP__AUTH__TOKENBURST", "3"),
    ]);
    let h = headers(&[("authorization", &basic("local-client", "local-secret"))]);
    let body = "grant_type=client_credentials".as_bytes();
    let now = Instant::now();
    for _ in 0..3 {
        assert!(token_request(&iss, &h, body, HERE, now).await.is_ok());
    }
    let err = token_request(&iss, &h, body, HERE, now).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = err.into_response();
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    // A wrong secret is told it is wrong: the issuance bucket is not the guessing one.
    let wrong = headers(&[("authorization", &basic("local-client", "guess"))]);
    let err = token_request(&iss, &wrong, body, HERE, now)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_client");
    // Another client is not affected.
    let reader = headers(&[("authorization", &basic("reader", "reader-secret"))]);
    assert!(token_request(&iss, &reader, body, HERE, now).await.is_ok());
    // A second later there is room again.
    let later = now + Duration::from_secs(1);
    assert!(token_request(&iss, &h, body, HERE, later).await.is_ok());
}

fn source(n: u8) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, n))
}

/// Before: 40 wrong secrets for `local-client` gave 20×401, 20×429, and then the
/// correct secret got 429 too.
#[tokio::test]
async fn failed_guesses_do_not_lock_the_real_client_out() {
    let iss = issuer(&[]);
    let body = "grant_type=client_credentials".as_bytes();
    let now = Instant::now();
    let wrong = headers(&[("authorization", &basic("local-client", "guess"))]);
    let mut codes = Vec::new();
    for _ in 0..40 {
        let err = token_request(&iss, &wrong, body, source(66), now)
            .await
            .unwrap_err();
        codes.push(err.status().as_u16());
    }
    let refused = FAILURE_BURST as usize;
    assert!(codes[..refused].iter().all(|c| *c == 401), "{codes:?}");
    assert!(codes[refused..].iter().all(|c| *c == 429), "{codes:?}");
    // The real client, elsewhere, still gets its token with the right secret.
    let good = headers(&[("authorization", &basic("local-client", "local-secret"))]);
    assert!(
        token_request(&iss, &good, body, source(1), now)
            .await
            .is_ok()
    );
    // Guessers spread over many sources: each new source gets one try at this id
    // before the id's own bucket turns it away; a clean source with the right
    // secret is still served.
    let late = token_request(&iss, &wrong, body, source(67), now)
        .await
        .unwrap_err();
    assert_eq!(late.code(), "invalid_client");
    let again = token_request(&iss, &wrong, body, source(67), now)
        .await
        .unwrap_err();
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        token_request(&iss, &good, body, source(2), now)
            .await
            .is_ok()
    );
    // The guessing source waits for its bucket to refill.
    let later = now + Duration::from_secs_f64(FAILURE_REFILL_SECONDS * 2.0);
    let err = token_request(&iss, &wrong, body, source(66), later)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_client");
}

/// Before: every unknown id shared one bucket, so after 25 unknown ids a new unknown
/// id got 429 while a known id with a wrong secret got 401.
#[tokio::test]
async fn unknown_and_known_ids_are_answered_alike() {
    let iss = issuer(&[]);
    let body = "grant_type=client_credentials".as_bytes();
    let now = Instant::now();
    for i in 0..25u8 {
        let h = headers(&[("authorization", &basic(&format!("nobody-{i}"), "guess"))]);
        let _ = token_request(&iss, &h, body, source(100 + i), now).await;
    }
    let unknown = headers(&[("authorization", &basic("nobody-new", "guess"))]);
    let known = headers(&[("authorization", &basic("reader", "guess"))]);
    let a = token_request(&iss, &unknown, body, source(200), now)
        .await
        .unwrap_err();
    let b = token_request(&iss, &known, body, source(201), now)
        .await
        .unwrap_err();
    assert_eq!(a.kind(), b.kind());
    assert_eq!(a.code(), "invalid_client");
    assert_eq!(a.description, b.description);
}

#[test]
fn rejections_are_counted_by_reason() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        count_rejection(&OAuthError::from(IssueError::new(
            Refusal::RateLimited(Duration::from_secs(1)),
            "x",
        )));
        count_rejection(&OAuthError::invalid_client("x"));
        count_rejection(&too_large());
        count_rejection(&OAuthError::from(IssueError::new(
            Refusal::ServerError,
            "x",
        )));
    });
    let counted = crate::auth::test_metrics::counters(&snapshotter);
    let want: std::collections::HashMap<String, u64> =
        ["rate_limited", "invalid_client", "invalid_request"]
            .map(|r| {
                (
                    format!("issuer_token_requests_rejected_total{{reason={r}}}"),
                    1,
                )
            })
            .into();
    assert_eq!(counted, want, "server errors are not counted");
}

#[tokio::test]
async fn the_form_is_checked_before_its_body_is_read() {
    // A body that never ends: answered from the headers alone.
    let endless = Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
    let mut h = headers(&[]);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let err = tokio::time::timeout(Duration::from_secs(30), read_form(&h, endless))
        .await
        .expect("answered without reading")
        .unwrap_err();
    assert_eq!(err.code(), "invalid_request");
    let endless = Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
    let mut h = headers(&[]);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(4u64 << 20));
    let err = tokio::time::timeout(Duration::from_secs(30), read_form(&h, endless))
        .await
        .expect("answered without reading")
        .unwrap_err();
    assert!(err.description.contains("too large"), "{err}");
    // Without a declared length, reading stops at the cap.
    let big = Body::from_stream(futures::stream::iter(
        (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; 1024]))),
    ));
    let err = read_form(&headers(&[]), big).await.unwrap_err();
    assert!(err.description.contains("too large"), "{err}");
    let ok = read_form(&headers(&[]), Body::from("grant_type=client_credentials"))
        .await
        .unwrap();
    assert_eq!(&ok[..], b"grant_type=client_credentials");
}

#[tokio::test]
async fn error_responses_have_the_rfc_shape_and_headers() {
    let res = OAuthError::invalid_client("nope").into_response();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"show-service\""
    );
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"error": "invalid_client", "error_description": "nope"})
    );
    let res = OAuthError::from(IssueError::new(Refusal::InvalidScope, "x")).into_response();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
    let res = too_large().into_response();
    assert_eq!(res.status(), 413);
    assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "invalid_request");
}

#[test]
fn the_issuer_routes_are_documented() {
    let doc = openapi();
    for path in [
        "/oauth/token",
        "/oauth2/token",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        assert!(doc.paths.paths.contains_key(path), "{path}");
    }
    let schemes = &doc.components.as_ref().unwrap().security_schemes;
    assert!(schemes.contains_key("client_basic"));
}
