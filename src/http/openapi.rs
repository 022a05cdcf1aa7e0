//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the types' `ToSchema` derives, served at `/openapi.json`.
//!
//! [`document_for`] completes it for the running instance: every route of
//! [`super::API_ROUTES`] (the aliases `/v1/health` and the deprecated `/shows...` copy the
//! operations they alias), and an OAuth 2.0 client-credentials scheme with the token
//! endpoint and the full scope names, so the `/docs` page can authorize.

use super::AppState;
use super::{admin, changes, health, shows};
use crate::domain::{Image, NextEpisode, Problem, Season, Show};
use crate::error::ErrorBody;
use crate::store::ListItem;
use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityRequirement,
    SecurityScheme,
};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "show-service", description = "TV-show catalogue: partner feeds in, DRM-ready catalogue out. Every error is `{\"error\",\"requestId\",\"details\"?}`."),
    paths(
        health::live, health::ready,
        shows::list, shows::create, shows::get_one, shows::delete_one,
        changes::changes_since,
        admin::assign_owners,
    ),
    components(schemas(
        Show, Image, NextEpisode, Season, Problem, ErrorBody, ListItem,
        shows::ListResponse, shows::WriteResponse, shows::FeedRequest, shows::ShowResponse,
        changes::ChangesResponse, changes::ChangeBody,
        admin::OwnersRequest, admin::OwnersResponse,
        health::Message, health::Readiness,
    )),
    modifiers(&BearerAuth),
    tags((name = "shows", description = "The catalogue and feeds"), (name = "admin", description = "Only for tokens with shows.admin"), (name = "health", description = "Probes")),
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
        doc.merge(super::oauth::openapi());
    }
    doc
}

/// Where clients get tokens: the local issuer, or (in AWS) API Gateway's route to Cognito.
pub const TOKEN_PATH: &str = "/oauth/token";

/// The name of the client-credentials scheme in the document.
pub const OAUTH2_SCHEME: &str = "oauth2";

/// Aliases served by the same handlers as the documented route they name.
const ALIASES: &[(&str, &str)] = &[
    ("/v1/health", "/health"),
    ("/shows", "/v1/shows"),
    ("/shows/{slug}", "/v1/shows/{slug}"),
];

/// The document this instance serves: [`document`] plus every API route and the OAuth 2.0
/// client-credentials scheme whose scopes are `<resource_server>/<scope>`.
pub fn document_for(issuer_routes: bool, resource_server: &str) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::{ContentBuilder, ObjectBuilder, ResponseBuilder};

    let mut doc = document(issuer_routes);
    let full = |scope: crate::auth::Scope| format!("{resource_server}/{}", scope.name());
    for (alias, of) in ALIASES {
        if let Some(mut item) = doc.paths.paths.get(*of).cloned() {
            for op in operations(&mut item) {
                op.operation_id = op.operation_id.take().map(|id| format!("{id}_alias"));
                if alias.starts_with("/shows") {
                    op.deprecated = Some(utoipa::openapi::Deprecated::True);
                    op.description = Some(format!("Deprecated alias of `{of}`."));
                }
            }
            doc.paths.paths.insert((*alias).to_string(), item);
        }
    }
    token_scope_pattern(&mut doc, resource_server);
    let json = ContentBuilder::new()
        .schema(Some(ObjectBuilder::new().build()))
        .build();
    doc.paths.paths.insert(
        "/openapi.json".into(),
        PathItem::new(
            HttpMethod::Get,
            OperationBuilder::new()
                .operation_id(Some("openapi"))
                .tag("docs")
                .summary(Some("This document"))
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("The OpenAPI 3 document")
                        .content("application/json", json),
                ),
        ),
    );

    // The scheme, and on every protected operation the same scope through it.
    let scopes = Scopes::from_iter(
        crate::auth::Scope::ALL
            .iter()
            .map(|s| (full(*s), format!("`{}`", s.name()))),
    );
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            OAUTH2_SCHEME,
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::ClientCredentials(ClientCredentials::new(
                    TOKEN_PATH, scopes,
                ))],
                "OAuth 2.0 client credentials: HTTP Basic client authentication at the token endpoint",
            )),
        );
    for (path, item) in doc.paths.paths.iter_mut() {
        let path = path.clone();
        for (method, op) in methods(item) {
            let route = super::API_ROUTES
                .iter()
                .find(|r| r.method == method && r.path.replace("{*slug}", "{slug}") == path);
            if let Some(scope) = route.and_then(|r| r.scope) {
                op.security
                    .get_or_insert_with(Vec::new)
                    .push(SecurityRequirement::new(OAUTH2_SCHEME, [full(scope)]));
            }
        }
    }
    doc
}

/// The token form's `scope`: space-separated scope names, short or full, so a generated
/// form asks for scopes that exist (the names come from [`crate::auth::Scope`]).
fn token_scope_pattern(doc: &mut utoipa::openapi::OpenApi, resource_server: &str) {
    use utoipa::openapi::{RefOr, Schema};
    let escape = |s: &str| {
        s.chars().fold(String::new(), |mut out, c| {
            if !c.is_ascii_alphanumeric() && !matches!(c, '/' | '-' | '_' | ':') {
                out.push('\\');
            }
            out.push(c);
            out
        })
    };
    let names: Vec<String> = crate::auth::Scope::ALL
        .iter()
        .flat_map(|s| {
            [
                s.name().to_string(),
                format!("{resource_server}/{}", s.name()),
            ]
        })
        .map(|n| escape(&n))
        .collect();
    let one = format!("({})", names.join("|"));
    let pattern = format!("^({one}( {one})*)?$");
    let form = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("TokenRequest"));
    if let Some(RefOr::T(Schema::Object(form))) = form
        && let Some(RefOr::T(Schema::Object(scope))) = form.properties.get_mut("scope")
    {
        scope.pattern = Some(pattern);
    }
}

/// The operations of `item` with their methods, upper case as in `API_ROUTES`.
fn methods(
    item: &mut utoipa::openapi::path::PathItem,
) -> Vec<(&'static str, &mut utoipa::openapi::path::Operation)> {
    [
        ("GET", &mut item.get),
        ("POST", &mut item.post),
        ("PUT", &mut item.put),
        ("DELETE", &mut item.delete),
        ("PATCH", &mut item.patch),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
    .collect()
}

fn operations(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    methods(item).into_iter().map(|(_, op)| op)
}

/// Serves the document, serialized once.
pub fn router(issuer_routes: bool, resource_server: &str) -> Router<AppState> {
    let json = axum::body::Bytes::from(
        document_for(issuer_routes, resource_server)
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
    fn the_token_form_says_which_grant_and_scopes_the_issuer_accepts() {
        let doc = serde_json::to_value(document_for(true, "https://rs.example")).unwrap();
        let form = &doc["components"]["schemas"]["TokenRequest"];
        assert_eq!(
            form["required"],
            serde_json::json!(["grant_type"]),
            "{form}"
        );
        let grant = &doc["components"]["schemas"]["GrantType"];
        assert_eq!(
            grant["enum"],
            serde_json::json!(["client_credentials"]),
            "{grant}"
        );
        let pattern = form["properties"]["scope"]["pattern"].as_str().unwrap();
        for scope in crate::auth::Scope::ALL {
            let short = scope.name().replace('.', "\\.");
            assert!(
                pattern.contains(&format!("|{short}|")) || pattern.contains(&format!("({short}|")),
                "{pattern}"
            );
            assert!(
                pattern.contains(&format!("https://rs\\.example/{short}")),
                "{pattern}"
            );
        }
        assert!(
            pattern.starts_with("^(") && pattern.ends_with(")*)?$"),
            "{pattern}"
        );
    }

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

    #[test]
    fn the_served_document_lists_every_api_route() {
        let doc = document_for(false, "https://rs.example");
        for route in super::super::API_ROUTES {
            let path = route.path.replace("{*slug}", "{slug}");
            let mut item = doc
                .paths
                .paths
                .get(&path)
                .unwrap_or_else(|| panic!("{path} undocumented"))
                .clone();
            let op = methods(&mut item)
                .into_iter()
                .find(|(m, _)| *m == route.method)
                .map(|(_, op)| op.clone())
                .unwrap_or_else(|| panic!("{} {path} undocumented", route.method));
            // A protected route can be authorized with the client-credentials scheme, with
            // the full name of exactly its scope.
            let security = serde_json::to_value(&op.security).unwrap();
            let oauth: Vec<_> = security
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|req| req.get(OAUTH2_SCHEME))
                .collect();
            match route.scope {
                Some(scope) => assert_eq!(
                    oauth,
                    [&serde_json::json!([format!(
                        "https://rs.example/{}",
                        scope.name()
                    )])],
                    "{} {path}",
                    route.method
                ),
                None => assert!(oauth.is_empty(), "{} {path}", route.method),
            }
        }
        let scheme =
            serde_json::to_value(&doc.components.as_ref().unwrap().security_schemes[OAUTH2_SCHEME])
                .unwrap();
        assert_eq!(scheme["flows"]["clientCredentials"]["tokenUrl"], TOKEN_PATH);
    }
}
