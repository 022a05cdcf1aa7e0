//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the types' `ToSchema` derives, served at `/openapi.json`.

use super::AppState;
use super::{health, shows};
use crate::domain::{Image, NextEpisode, Problem, Season, Show};
use crate::error::ErrorBody;
use crate::store::ListItem;
use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "show-service", description = "TV-show catalogue: partner feeds in, DRM-ready catalogue out. Every error is `{\"error\",\"requestId\",\"details\"?}`."),
    paths(
        health::live, health::ready,
        shows::list, shows::create, shows::get_one, shows::delete_one,
    ),
    components(schemas(
        Show, Image, NextEpisode, Season, Problem, ErrorBody, ListItem,
        shows::ListResponse, shows::WriteResponse, shows::FeedRequest,
        health::Message, health::Readiness,
    )),
    modifiers(&BearerAuth),
    tags((name = "shows", description = "The catalogue and feeds"), (name = "health", description = "Probes")),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An OAuth 2.0 client-credentials access token (POST /oauth/token)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document; with `issuer_routes` (local auth mode) the local issuer's routes too,
/// so the document lists exactly the routes this instance serves.
pub fn document(issuer_routes: bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    if issuer_routes {
        doc.merge(crate::auth::openapi());
    }
    doc
}

/// Serves the document, serialized once.
pub fn router(issuer_routes: bool) -> Router<AppState> {
    let json = axum::body::Bytes::from(
        document(issuer_routes)
            .to_json()
            .unwrap_or_else(|_| "{}".into()),
    );
    Router::new().route(
        "/openapi.json",
        get(move || {
            let json = json.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    json,
                )
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_routes_are_documented_only_where_they_are_served() {
        let local = document(true);
        let jwt = document(false);
        assert!(local.paths.paths.contains_key("/oauth/token"));
        assert!(!jwt.paths.paths.contains_key("/oauth/token"));
        for doc in [&local, &jwt] {
            assert!(doc.paths.paths.contains_key("/v1/shows"));
        }
    }
}
