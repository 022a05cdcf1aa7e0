//! The integrators' pages under `/docs`, every file served from the binary:
//!
//! - `/docs`: the API reference, Swagger UI (vendored by `utoipa-swagger-ui`) on the served
//!   `/openapi.json`, whose client-credentials scheme lets "Authorize" get a token from the
//!   token endpoint (in local mode prefilled with the development client).
//! - `/docs/catalogue`: the catalogue preview for content operators, a paged grid of the
//!   DRM-ready shows read through the public API with the user's token (in local mode one
//!   from the development client, see `/docs/config.json`), kept current by following
//!   `GET /v1/shows/changes` from the list's `Changes-Cursor` (a `410` lists again).
//!   Feed text reaches the page only through `textContent` and attribute setters, never
//!   as markup.
//!
//! The pages are separate routes with their own header layer, so API requests pay nothing
//! for them. Every answer carries a Content-Security-Policy that allows scripts only from
//! these files (no inline script), `frame-ancestors 'none'` and `nosniff`. Served when
//! `docs.enabled` is on (the default in local mode).

use crate::config::{AppEnv, AuthMode, Settings};
use crate::error::ApiError;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_swagger_ui::{Config, oauth};

/// The API reference page.
pub const PATH: &str = "/docs";
/// The catalogue preview page.
pub const CATALOGUE_PATH: &str = "/docs/catalogue";

/// Every route these pages add, all `GET` (API Gateway routes them without the authorizer;
/// the infra tests compare its routes with this table).
pub const ROUTES: &[&str] = &[PATH, "/docs/{*file}"];

/// Scripts only from these files; styles from them and inline (Swagger UI injects a style
/// element; no script can run from markup, so styles cannot be driven by feed data);
/// images also from feeds' hosts (the preview); requests only to this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: https: http:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The project's own files, by path below `/docs/`: (content type, body).
const FILES: &[(&str, &str, &str)] = &[
    (
        "catalogue",
        "text/html; charset=utf-8",
        include_str!("docs/catalogue.html"),
    ),
    (
        "catalogue.js",
        "text/javascript; charset=utf-8",
        include_str!("docs/catalogue.js"),
    ),
    (
        "pages.css",
        "text/css; charset=utf-8",
        include_str!("docs/pages.css"),
    ),
];

const INDEX: &str = include_str!("docs/index.html");

struct Pages {
    swagger: Arc<Config<'static>>,
    /// `/docs/config.json`: what the preview needs to get a token by itself.
    config: String,
}

/// The routes, or none when `docs.enabled` is off.
pub fn router<S: Clone + Send + Sync + 'static>(settings: &Settings) -> Router<S> {
    if !settings.docs.enabled {
        return Router::new();
    }
    let scopes: Vec<String> = crate::auth::Scope::ALL
        .iter()
        .map(|s| format!("{}/{}", settings.auth.resource_server, s.name()))
        .collect();
    // Only a local-mode instance on a developer's machine hands out its development client.
    let dev_client = (settings.auth.mode == AuthMode::Local && settings.env == AppEnv::Local)
        .then(|| settings.auth.clients.first())
        .flatten();
    let mut oauth = oauth::Config::new().scopes(scopes.clone());
    if let Some(c) = dev_client {
        oauth = oauth.client_id(&c.id).client_secret(&c.secret);
    }
    let swagger = Config::with_oauth_config(["/openapi.json"], oauth)
        .validator_url("none")
        .try_it_out_enabled(true)
        .display_request_duration(true);
    let config = serde_json::json!({
        "tokenPath": super::openapi::TOKEN_PATH,
        "scope": scopes.first(),
        "devClient": dev_client.map(|c| serde_json::json!({"id": c.id, "secret": c.secret})),
    })
    .to_string();
    let pages = Arc::new(Pages {
        swagger: Arc::new(swagger),
        config,
    });

    let headers = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    let mut router = Router::new()
        .route(
            PATH,
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX) }),
        )
        // `/docs/` (which the wildcard below does not match): the reference has one
        // address. Not in ROUTES (API Gateway's routes): the address clients are given is
        // `/docs`; this only catches a typed trailing slash.
        .route(
            "/docs/",
            get(|| async { axum::response::Redirect::permanent(PATH) }),
        )
        .route(
            "/docs/{*file}",
            get(move |Path(file): Path<String>| {
                let pages = pages.clone();
                async move { file_response(&pages, &file) }
            }),
        );
    for (name, value) in headers {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
}

fn file_response(pages: &Pages, file: &str) -> Response {
    let typed = |content_type: &'static str, body: axum::body::Body| {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    if let Some((_, content_type, body)) = FILES.iter().find(|(name, ..)| *name == file) {
        return typed(content_type, (*body).into());
    }
    if file == "config.json" {
        return typed("application/json", pages.config.clone().into());
    }
    match utoipa_swagger_ui::serve(file, pages.swagger.clone()) {
        // Swagger UI's own files (its index is ours: `/docs`).
        // (stored uncompressed: the crate's `gzip` feature is off)
        Ok(Some(f)) if file != "index.html" => (
            [(header::CONTENT_TYPE, f.content_type)],
            f.bytes.into_owned(),
        )
            .into_response(),
        Ok(_) => ApiError::NotFound("no such page".into()).into_response(),
        Err(e) => {
            ApiError::Internal(anyhow::anyhow!("Swagger UI file {file}: {e}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        Settings::load(
            None,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap()
    }

    async fn get(app: &Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let res = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into(),
        )
    }

    /// The `/docs/...` files a page names in `src="..."` or `href="..."`.
    fn referenced(html: &str) -> Vec<String> {
        html.split(['"', '\''])
            .filter(|s| s.starts_with("/docs"))
            .map(String::from)
            .collect()
    }

    #[tokio::test]
    async fn every_page_and_every_file_it_names_is_served_with_the_security_headers() {
        let app = router::<()>(&settings(&[]));
        let mut paths = vec![PATH.to_string(), CATALOGUE_PATH.to_string()];
        paths.extend(referenced(INDEX));
        paths.extend(referenced(include_str!("docs/catalogue.html")));
        paths.push("/docs/config.json".into());
        assert!(paths.iter().any(|p| p.ends_with("swagger-initializer.js")));
        assert!(paths.iter().any(|p| p.ends_with("catalogue.js")));
        for path in &paths {
            let (status, headers, _) = get(&app, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            let scripts = csp
                .split(';')
                .find(|d| d.trim().starts_with("script-src"))
                .unwrap();
            assert_eq!(scripts.trim(), "script-src 'self'", "{path}");
            assert!(csp.contains("frame-ancestors 'none'"), "{path}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        }
        // No inline script on either page: every <script> names its file.
        for html in [INDEX, include_str!("docs/catalogue.html")] {
            for tag in html.split("<script").skip(1) {
                assert!(tag.trim_start().starts_with("src="), "inline script: {tag}");
            }
        }
        for missing in ["/docs/no-such-file", "/docs/index.html"] {
            assert_eq!(
                get(&app, missing).await.0,
                StatusCode::NOT_FOUND,
                "{missing}"
            );
        }
    }

    #[tokio::test]
    async fn the_reference_with_a_trailing_slash_redirects_to_its_one_address() {
        let app = router::<()>(&settings(&[]));
        let (status, headers, _) = get(&app, "/docs/").await;
        assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(headers[header::LOCATION], PATH);
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[test]
    fn the_preview_never_parses_feed_text_as_markup() {
        let js = include_str!("docs/catalogue.js");
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!js.contains(sink), "catalogue.js uses {sink}");
        }
        assert!(js.contains("textContent"));
    }

    #[tokio::test]
    async fn the_development_client_is_offered_only_by_a_local_instance() {
        let local = router::<()>(&settings(&[]));
        let (_, _, config) = get(&local, "/docs/config.json").await;
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["devClient"]["id"], "local-client");
        assert_eq!(config["tokenPath"], "/oauth/token");
        let (_, _, init) = get(&local, "/docs/swagger-initializer.js").await;
        assert!(
            init.contains("\"clientSecret\": \"local-secret\""),
            "{init}"
        );
        assert!(
            init.contains("https://show-service-local.api/shows.read"),
            "{init}"
        );

        let cloud = router::<()>(&settings(&[
            ("APP_ENV", "dev"),
            ("APP__AUTH__ISSUER", "https://issuer.example"),
            ("APP__DOCS__ENABLED", "true"),
        ]));
        let (status, _, config) = get(&cloud, "/docs/config.json").await;
        assert_eq!(status, StatusCode::OK);
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["devClient"], serde_json::Value::Null);
        let (_, _, init) = get(&cloud, "/docs/swagger-initializer.js").await;
        assert!(!init.contains("clientSecret"), "{init}");
        assert!(
            init.contains("https://show-service-dev.api/shows.read"),
            "{init}"
        );
    }

    #[tokio::test]
    async fn switched_off_the_pages_are_not_routed() {
        let app = router::<()>(&settings(&[("APP__DOCS__ENABLED", "false")]));
        for path in [PATH, CATALOGUE_PATH, "/docs/swagger-ui-bundle.js"] {
            assert_eq!(get(&app, path).await.0, StatusCode::NOT_FOUND, "{path}");
        }
    }
}
