//! The Terraform in `infra/` and the service's code must agree. These tests parse the HCL
//! (no Terraform functions are evaluated) and compare it with what the library exports, so
//! that the Go deployment's faults cannot come back unnoticed: a health check on a path the
//! service does not answer, routes without scopes, task-definition variables the service
//! never reads, a table layout different from the store's.
//!
//! Each assertion message names the Terraform file and the Rust item that disagree.

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::expr::{Expression, ObjectKey, TemplateExpr};
use hcl::{Block, Body, Value};
use show_service::auth::Scope;
use show_service::config::{AuthMode, DEFAULT_PORT, ENV_VARS, Settings, StoreKind};
use show_service::domain::owner::MAX_PARTNER_LEN;
use show_service::domain::{Partner, PartnerMap};
use show_service::http::{API_ROUTES, LIVENESS_PATH, RouteSpec};
use show_service::store::layout::{
    CHANGE_LOG_EXPIRES, GSI_HASH_KEY, GSI_NAME, GSI_RANGE_KEY, TABLE_HASH_KEY, table_name,
};
use show_service::telemetry::table::METRICS;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ENVS: [&str; 3] = ["dev", "test", "prod"];

// ---------------------------------------------------------------------------------------
// HCL helpers
// ---------------------------------------------------------------------------------------

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn parse(rel: &str) -> Body {
    hcl::from_str::<Body>(&read(rel)).unwrap_or_else(|e| panic!("parsing {rel}: {e}"))
}

/// Every `locals { … }` entry of a file.
fn locals_of(body: &Body) -> BTreeMap<String, Expression> {
    body.blocks()
        .filter(|b| b.identifier.as_str() == "locals")
        .flat_map(|b| b.body.attributes())
        .map(|a| (a.key.as_str().to_owned(), a.expr.clone()))
        .collect()
}

fn local<'a>(locals: &'a BTreeMap<String, Expression>, file: &str, name: &str) -> &'a Expression {
    locals
        .get(name)
        .unwrap_or_else(|| panic!("{file}: no local value `{name}`"))
}

/// `<kind> "<type>" "<name>" { … }` (kind is `resource` or `data`).
fn block<'a>(body: &'a Body, file: &str, kind: &str, ty: &str, name: &str) -> &'a Block {
    body.blocks()
        .find(|b| {
            b.identifier.as_str() == kind
                && b.labels.len() == 2
                && b.labels[0].as_str() == ty
                && b.labels[1].as_str() == name
        })
        .unwrap_or_else(|| panic!("{file}: no {kind} \"{ty}\" \"{name}\""))
}

/// `<kind> "<name>" { … }` (kind is `module`, `variable` or `output`).
fn labelled<'a>(body: &'a Body, file: &str, kind: &str, name: &str) -> &'a Block {
    body.blocks()
        .find(|b| {
            b.identifier.as_str() == kind && b.labels.len() == 1 && b.labels[0].as_str() == name
        })
        .unwrap_or_else(|| panic!("{file}: no {kind} \"{name}\""))
}

fn resources_of_type<'a>(body: &'a Body, ty: &str) -> Vec<&'a Block> {
    body.blocks()
        .filter(|b| {
            b.identifier.as_str() == "resource" && b.labels.first().map(|l| l.as_str()) == Some(ty)
        })
        .collect()
}

fn attr<'a>(body: &'a Body, what: &str, key: &str) -> &'a Expression {
    body.attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.expr)
        .unwrap_or_else(|| panic!("{what}: no attribute `{key}`"))
}

fn nested<'a>(body: &'a Body, ident: &str) -> Vec<&'a Block> {
    body.blocks()
        .filter(|b| b.identifier.as_str() == ident)
        .collect()
}

/// The expression as Terraform source, e.g. `local.container_port`.
fn source(expr: &Expression) -> String {
    hcl::format::to_string(expr).expect("formatting an expression cannot fail")
}

fn string(expr: &Expression, what: &str) -> String {
    match expr {
        Expression::String(s) => s.clone(),
        Expression::TemplateExpr(t) => match t.as_ref() {
            TemplateExpr::QuotedString(s) => s.clone(),
            TemplateExpr::Heredoc(h) => h.template.clone(),
        },
        other => panic!("{what}: expected a string, found `{}`", source(other)),
    }
}

/// A whole-number `local.<name>` of the service module.
fn service_number(locals: &BTreeMap<String, Expression>, name: &str) -> u64 {
    number(local(locals, SERVICE_TF, name), &format!("local.{name}"))
}

fn number(expr: &Expression, what: &str) -> u64 {
    match expr {
        Expression::Number(n) => n
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: {n} is not a whole number")),
        other => panic!("{what}: expected a number, found `{}`", source(other)),
    }
}

fn boolean(expr: &Expression, what: &str) -> bool {
    match expr {
        Expression::Bool(b) => *b,
        other => panic!("{what}: expected true or false, found `{}`", source(other)),
    }
}

fn key_name(key: &ObjectKey) -> String {
    match key {
        ObjectKey::Identifier(i) => i.as_str().to_owned(),
        ObjectKey::Expression(e) => string(e, "object key"),
        other => panic!("unexpected object key {other:?}"),
    }
}

fn object<'a>(expr: &'a Expression, what: &str) -> Vec<(String, &'a Expression)> {
    match expr {
        Expression::Object(o) => o.iter().map(|(k, v)| (key_name(k), v)).collect(),
        other => panic!("{what}: expected an object, found `{}`", source(other)),
    }
}

fn field<'a>(expr: &'a Expression, what: &str, key: &str) -> &'a Expression {
    object(expr, what)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{what}: no `{key}`"))
}

fn array<'a>(expr: &'a Expression, what: &str) -> &'a [Expression] {
    match expr {
        Expression::Array(a) => a,
        other => panic!("{what}: expected a list, found `{}`", source(other)),
    }
}

fn strings(expr: &Expression, what: &str) -> Vec<String> {
    array(expr, what).iter().map(|e| string(e, what)).collect()
}

/// A `terraform.<env>.tfvars` file as name → expression.
fn tfvars(env: &str) -> BTreeMap<String, Expression> {
    parse(&format!("infra/terraform.{env}.tfvars"))
        .attributes()
        .map(|a| (a.key.as_str().to_owned(), a.expr.clone()))
        .collect()
}

/// Substitutes `${var.env}` / `${var.name}` the way the root module sets them.
fn render(template: &str, env: &str) -> String {
    template
        .replace("${var.env}", env)
        .replace("${var.name}", &format!("show-service-{env}"))
}

// ---------------------------------------------------------------------------------------
// The service module's container definition
// ---------------------------------------------------------------------------------------

const SERVICE_TF: &str = "infra/modules/service/main.tf";

/// The one container of the task definition (the argument of `jsonencode([ … ])`).
fn container(service: &Body) -> Expression {
    let td = block(
        service,
        SERVICE_TF,
        "resource",
        "aws_ecs_task_definition",
        "this",
    );
    let defs = attr(
        &td.body,
        "aws_ecs_task_definition.this",
        "container_definitions",
    );
    let Expression::FuncCall(call) = defs else {
        panic!("{SERVICE_TF}: container_definitions should be jsonencode([...])");
    };
    assert_eq!(
        call.name.name.as_str(),
        "jsonencode",
        "{SERVICE_TF}: container_definitions"
    );
    let list = array(&call.args[0], "container_definitions");
    assert_eq!(
        list.len(),
        1,
        "{SERVICE_TF}: the task definition should hold one container"
    );
    list[0].clone()
}

// ---------------------------------------------------------------------------------------
// Routes and scopes
// ---------------------------------------------------------------------------------------

const API_TF: &str = "infra/modules/api/main.tf";

/// A path in one comparable shape: `{proxy+}` / `{*slug}` → `{*}`, `{id}` → `{}`.
fn normalise(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && (seg.ends_with("+}") || seg.starts_with("{*")) {
                "{*}"
            } else if seg.starts_with('{') {
                "{}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn service_route(method: &str, path: &str) -> Option<&'static RouteSpec> {
    API_ROUTES
        .iter()
        .find(|r| r.method == method && normalise(r.path) == normalise(path))
}

fn split_route_key(key: &str) -> (&str, &str) {
    key.split_once(' ')
        .unwrap_or_else(|| panic!("{API_TF}: route key `{key}` is not `METHOD /path`"))
}

fn scope_names() -> BTreeSet<&'static str> {
    Scope::ALL.iter().map(|s| s.name()).collect()
}

/// The protected route API Gateway selects for `method path` (a service route's template
/// or a concrete path), as an HTTP API selects: the same path first, else the greedy
/// `{proxy+}` route with the longest prefix of it (`GET /v1/shows/{proxy+}` serves
/// `GET /v1/shows/changes`: a path that is not a show's still goes through it).
fn gateway_route<'a>(
    protected: &'a [(String, String)],
    method: &str,
    path: &str,
) -> Option<&'a (String, String)> {
    let same = protected.iter().find(|(key, _)| {
        let (m, p) = split_route_key(key);
        m == method && normalise(p) == normalise(path)
    });
    same.or_else(|| {
        protected
            .iter()
            .filter_map(|route| {
                let (m, p) = split_route_key(&route.0);
                let prefix = p.strip_suffix("{proxy+}")?;
                let rest = path.strip_prefix(prefix)?;
                (m == method && !rest.is_empty()).then_some((prefix.len(), route))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, route)| route)
    })
}

fn protected_routes(api: &Body) -> Vec<(String, String)> {
    object(
        local(&locals_of(api), API_TF, "protected_routes"),
        "local.protected_routes",
    )
    .into_iter()
    .map(|(k, v)| {
        let scope = string(v, &k);
        (k, scope)
    })
    .collect()
}

/// The change feed has no route of its own at API Gateway: `GET /v1/shows/{proxy+}`
/// forwards it, with the scope the service requires (`shows.read`). A route of its own
/// with another scope, or the greedy route's scope changed, fails here.
#[test]
fn the_change_feed_is_forwarded_by_api_gateway_with_the_read_scope() {
    let changes = API_ROUTES
        .iter()
        .find(|r| r.method == "GET" && r.path == "/v1/shows/changes")
        .expect("http::API_ROUTES has GET /v1/shows/changes");
    assert_eq!(
        changes.scope,
        Some(Scope::Read),
        "http::API_ROUTES: GET /v1/shows/changes"
    );
    let protected = protected_routes(&parse(API_TF));
    let (key, scope) = gateway_route(&protected, "GET", "/v1/shows/changes")
        .unwrap_or_else(|| panic!("{API_TF}: no route forwards GET /v1/shows/changes"));
    assert_eq!(
        scope,
        Scope::Read.name(),
        "{API_TF}: `{key}` forwards GET /v1/shows/changes with scope {scope}"
    );
    // The selection itself: the same path wins over the greedy route, the longest prefix
    // over a shorter one, and a greedy route needs at least one segment after its prefix.
    let routes = |keys: &[(&str, &str)]| -> Vec<(String, String)> {
        keys.iter()
            .map(|(k, s)| (k.to_string(), s.to_string()))
            .collect()
    };
    let table = routes(&[
        ("GET /v1/{proxy+}", "a"),
        ("GET /v1/shows/{proxy+}", "b"),
        ("GET /v1/shows/changes", "c"),
        ("DELETE /v1/shows/{proxy+}", "d"),
    ]);
    let pick = |m: &str, p: &str| gateway_route(&table, m, p).map(|(_, s)| s.as_str());
    assert_eq!(pick("GET", "/v1/shows/changes"), Some("c"));
    assert_eq!(pick("GET", "/v1/shows/show/x"), Some("b"));
    assert_eq!(pick("GET", "/v1/shows/{*slug}"), Some("b"));
    assert_eq!(pick("GET", "/v1/other"), Some("a"));
    assert_eq!(pick("DELETE", "/v1/shows/changes"), Some("d"));
    assert_eq!(pick("GET", "/v2/shows"), None);
    assert_eq!(pick("DELETE", "/v1/shows/"), None);
}

#[test]
fn every_route_api_gateway_forwards_exists_in_the_router_with_the_same_scope() {
    let api = parse(API_TF);
    let locals = locals_of(&api);

    let protected = object(
        local(&locals, API_TF, "protected_routes"),
        "local.protected_routes",
    );
    assert!(!protected.is_empty(), "{API_TF}: no protected routes");
    for (key, scope) in &protected {
        let scope = string(scope, key);
        let (method, path) = split_route_key(key);
        let route = service_route(method, path).unwrap_or_else(|| {
            panic!("{API_TF}: API Gateway forwards `{key}` but http::API_ROUTES has no such route")
        });
        assert_eq!(
            route.scope.map(Scope::name),
            Some(scope.as_str()),
            "{API_TF}: `{key}` requires scope {scope} at API Gateway, the service's route {} {} requires {:?}",
            route.method,
            route.path,
            route.scope.map(Scope::name),
        );
    }

    for key in strings(
        local(&locals, API_TF, "public_routes"),
        "local.public_routes",
    ) {
        let (method, path) = split_route_key(&key);
        let route = service_route(method, path).unwrap_or_else(|| {
            panic!("{API_TF}: API Gateway forwards `{key}` but http::API_ROUTES has no such route")
        });
        assert_eq!(
            route.scope, None,
            "{API_TF}: `{key}` has no authorizer at API Gateway but the service requires {:?}",
            route.scope
        );
    }

    // The protected routes really are JWT-authorized with the full scope name.
    let routes = block(&api, API_TF, "resource", "aws_apigatewayv2_route", "this");
    let what = "aws_apigatewayv2_route.this";
    assert_eq!(
        source(attr(&routes.body, what, "for_each")),
        "local.protected_routes",
        "{what}: for_each"
    );
    assert_eq!(
        string(attr(&routes.body, what, "authorization_type"), what),
        "JWT",
        "{what}"
    );
    let scopes = strings(attr(&routes.body, what, "authorization_scopes"), what);
    assert_eq!(
        scopes,
        ["${var.resource_server_identifier}/${each.value}"],
        "{API_TF}: each route must require <resource server>/<its scope>"
    );

    // The token route goes to Cognito, not to the service; nothing else is routed.
    let token = string(local(&locals, API_TF, "token_route"), "local.token_route");
    assert_eq!(token, "POST /oauth/token", "{API_TF}: token route");
    let token_route = block(&api, API_TF, "resource", "aws_apigatewayv2_route", "token");
    assert_eq!(
        string(
            attr(&token_route.body, "aws_apigatewayv2_route.token", "target"),
            "target"
        ),
        "integrations/${aws_apigatewayv2_integration.token.id}",
        "{API_TF}: POST /oauth/token must go to the Cognito integration"
    );
    let route_blocks: BTreeSet<String> = resources_of_type(&api, "aws_apigatewayv2_route")
        .iter()
        .map(|b| b.labels[1].as_str().to_owned())
        .collect();
    assert_eq!(
        route_blocks,
        ["docs", "public", "this", "token"].map(String::from).into(),
        "{API_TF}: a route outside protected_routes/public_routes/docs_routes/token_route"
    );
    for key in protected.iter().map(|(k, _)| k.as_str()) {
        assert!(
            !key.contains("$default") && !key.starts_with("ANY /{proxy+}"),
            "{API_TF}: catch-all route `{key}`"
        );
    }
}

/// The other direction: every versioned route of the service that needs a token is one
/// API Gateway forwards, with the same scope (a route added to the router but not to the
/// gateway would answer 404 in AWS only); every scope guards a route at the gateway; and
/// the admin scope guards exactly the routes under `/v1/admin/` (OWASP API5: admin
/// functions on their own paths, never a flag on a partner route).
#[test]
fn every_scoped_route_of_the_service_is_behind_api_gateway_and_admin_routes_need_the_admin_scope() {
    let protected = protected_routes(&parse(API_TF));
    let at_gateway = |method: &str, path: &str| gateway_route(&protected, method, path);

    for route in API_ROUTES
        .iter()
        .filter(|r| r.scope.is_some() && r.path.starts_with("/v1/"))
    {
        let (key, scope) = at_gateway(route.method, route.path).unwrap_or_else(|| {
            panic!(
                "{API_TF}: http::API_ROUTES has {} {} (scope {:?}) but API Gateway does not forward it",
                route.method, route.path, route.scope.map(Scope::name)
            )
        });
        assert_eq!(
            Some(scope.as_str()),
            route.scope.map(Scope::name),
            "{API_TF}: `{key}` requires {scope} at API Gateway, http::API_ROUTES says {:?}",
            route.scope.map(Scope::name)
        );
    }

    for scope in Scope::ALL {
        assert!(
            protected.iter().any(|(_, s)| s == scope.name()),
            "{API_TF}: no route requires {}, a scope of auth::Scope::ALL",
            scope.name()
        );
    }

    for (key, scope) in &protected {
        let (_, path) = split_route_key(key);
        let admin_path = path.starts_with("/v1/admin/");
        assert_eq!(
            scope == Scope::Admin.name(),
            admin_path,
            "{API_TF}: `{key}` requires {scope}: {} belongs to the routes under /v1/admin/ and nowhere else",
            Scope::Admin.name()
        );
    }
    for route in API_ROUTES {
        assert_eq!(
            route.scope == Some(Scope::Admin),
            route.path.starts_with("/v1/admin/"),
            "http::API_ROUTES: {} {} requires {:?}; {} belongs to the routes under /v1/admin/ and nowhere else",
            route.method,
            route.path,
            route.scope.map(Scope::name),
            Scope::Admin.name()
        );
    }
}

#[test]
fn cognito_scopes_are_the_ones_the_verifier_requires() {
    let file = "infra/modules/identity/main.tf";
    let identity = parse(file);
    let locals = locals_of(&identity);
    let declared: BTreeSet<String> = object(local(&locals, file, "scopes"), "local.scopes")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let required: BTreeSet<String> = scope_names().into_iter().map(String::from).collect();
    assert_eq!(
        declared, required,
        "{file}: the resource server's scopes differ from auth::Scope::ALL"
    );

    // Every scope a route names is one Cognito issues.
    let api = parse(API_TF);
    for (key, scope) in object(
        local(&locals_of(&api), API_TF, "protected_routes"),
        "protected_routes",
    ) {
        let scope = string(scope, &key);
        assert!(
            required.contains(&scope),
            "{API_TF}: `{key}` requires unknown scope {scope}"
        );
    }

    // One resource server per environment: https://show-service-<env>.api, the service's
    // default APP__AUTH__RESOURCESERVER.
    let identifier = string(
        local(&locals, file, "resource_server_identifier"),
        "local.resource_server_identifier",
    );
    let root = parse("infra/main.tf");
    let name = string(
        local(&locals_of(&root), "infra/main.tf", "name"),
        "local.name",
    );
    assert_eq!(name, "show-service-${var.env}", "infra/main.tf: local.name");
    for env in ENVS {
        assert_eq!(
            render(&identifier, env),
            format!("https://show-service-{env}.api"),
            "{file}: resource server identifier for {env}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Health checks and port
// ---------------------------------------------------------------------------------------

#[test]
fn target_group_and_container_health_checks_use_the_liveness_route() {
    let service = parse(SERVICE_TF);
    let locals = locals_of(&service);
    assert_eq!(
        string(
            local(&locals, SERVICE_TF, "health_check_path"),
            "local.health_check_path"
        ),
        LIVENESS_PATH,
        "{SERVICE_TF}: health_check_path differs from http::LIVENESS_PATH"
    );

    let tg = block(
        &service,
        SERVICE_TF,
        "resource",
        "aws_lb_target_group",
        "this",
    );
    let hc = nested(&tg.body, "health_check");
    assert_eq!(
        hc.len(),
        1,
        "{SERVICE_TF}: target group needs one health_check block"
    );
    assert_eq!(
        source(attr(&hc[0].body, "target group health_check", "path")),
        "local.health_check_path",
        "{SERVICE_TF}: the target group's health check must use local.health_check_path"
    );
    assert_eq!(
        string(
            attr(&hc[0].body, "target group health_check", "matcher"),
            "matcher"
        ),
        "200",
        "{SERVICE_TF}: /health answers 200"
    );

    // The container's check is the binary's own `healthcheck` subcommand, which calls
    // LIVENESS_PATH on the local port (the image has no curl).
    let container = container(&service);
    let check = field(&container, "container", "healthCheck");
    assert_eq!(
        strings(
            field(check, "healthCheck", "command"),
            "healthCheck.command"
        ),
        ["CMD", "/show-service", "healthcheck"],
        "{SERVICE_TF}: container health check"
    );
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains(r#"CMD ["/show-service", "healthcheck"]"#),
        "Dockerfile: HEALTHCHECK must run /show-service healthcheck"
    );
}

#[test]
fn container_port_is_the_services_default_port() {
    let service = parse(SERVICE_TF);
    let locals = locals_of(&service);
    let port = service_number(&locals, "container_port");
    assert_eq!(
        port,
        u64::from(DEFAULT_PORT),
        "{SERVICE_TF}: container_port differs from config::DEFAULT_PORT"
    );

    let container = container(&service);
    let mappings = array(
        field(&container, "container", "portMappings"),
        "portMappings",
    );
    let ports: Vec<String> = mappings
        .iter()
        .map(|m| source(field(m, "portMappings", "containerPort")))
        .collect();
    assert_eq!(
        ports,
        ["local.container_port", "local.metrics_port"],
        "{SERVICE_TF}: portMappings: the service's port, then the metrics listener's"
    );

    let tg = block(
        &service,
        SERVICE_TF,
        "resource",
        "aws_lb_target_group",
        "this",
    );
    assert_eq!(
        source(attr(&tg.body, "aws_lb_target_group.this", "port")),
        "local.container_port",
        "{SERVICE_TF}: target group port"
    );
    let svc = block(&service, SERVICE_TF, "resource", "aws_ecs_service", "this");
    let lb = nested(&svc.body, "load_balancer");
    assert_eq!(
        source(attr(
            &lb[0].body,
            "aws_ecs_service.this load_balancer",
            "container_port"
        )),
        "local.container_port",
        "{SERVICE_TF}: service load_balancer.container_port"
    );

    assert!(
        read("Dockerfile").contains(&format!("EXPOSE {DEFAULT_PORT}")),
        "Dockerfile: EXPOSE differs from config::DEFAULT_PORT"
    );
}

// ---------------------------------------------------------------------------------------
// Environment variables
// ---------------------------------------------------------------------------------------

#[test]
fn task_definition_sets_only_variables_the_service_reads() {
    let service = parse(SERVICE_TF);
    let locals = locals_of(&service);
    let env = object(
        local(&locals, SERVICE_TF, "environment"),
        "local.environment",
    );
    assert!(!env.is_empty(), "{SERVICE_TF}: local.environment is empty");
    for (name, _) in &env {
        assert!(
            ENV_VARS.contains(&name.as_str()),
            "{SERVICE_TF}: the task definition sets {name}, which config::ENV_VARS does not read"
        );
    }
    let names: BTreeMap<&str, &Expression> = env.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        names.get("APP__SERVER__PORT").map(|e| source(e)),
        Some("tostring(local.container_port)".to_owned()),
        "{SERVICE_TF}: APP__SERVER__PORT must be the container port"
    );
    assert_eq!(
        names
            .get("APP__STORE__KIND")
            .map(|e| string(e, "APP__STORE__KIND")),
        Some("dynamodb".to_owned()),
        "{SERVICE_TF}: APP__STORE__KIND"
    );

    // …and the container's environment is exactly that map, nothing added.
    let container = container(&service);
    let Expression::ForExpr(for_expr) = field(&container, "container", "environment") else {
        panic!("{SERVICE_TF}: container environment must be built from local.environment");
    };
    assert_eq!(
        source(&for_expr.collection_expr),
        "local.environment",
        "{SERVICE_TF}: container environment"
    );
    let secrets = object(&container, "container")
        .into_iter()
        .any(|(k, _)| k == "secrets");
    assert!(
        !secrets,
        "{SERVICE_TF}: container secrets are not read by the service"
    );

    // The image's own defaults are settings too.
    for line in read("Dockerfile").lines() {
        let line = line
            .trim()
            .trim_start_matches("ENV ")
            .trim_end_matches('\\')
            .trim();
        if let Some((name, _)) = line.split_once('=')
            && name.starts_with("APP")
        {
            assert!(
                ENV_VARS.contains(&name),
                "Dockerfile: ENV {name} is not in config::ENV_VARS"
            );
        }
    }
}

/// Sample values for what the root module passes into the service module, so that the
/// task definition's environment can be fed to the real settings loader.
fn sample_value(expr: &Expression, env: &str, container_port: u64) -> String {
    let src = source(expr);
    match src.as_str() {
        "var.env" => env.to_owned(),
        "tostring(local.container_port)" => container_port.to_string(),
        "tostring(local.metrics_port)" => {
            service_number(&locals_of(&parse(SERVICE_TF)), "metrics_port").to_string()
        }
        "var.app_environment.region" => "ap-southeast-2".to_owned(),
        "var.app_environment.table_name" => table_name(env),
        "var.app_environment.gsi_name" => GSI_NAME.to_owned(),
        "var.app_environment.user_pool_id" => "ap-southeast-2_Example".to_owned(),
        "join(\",\", var.app_environment.client_ids)" => "exampleclientid,otherclientid".to_owned(),
        "var.app_environment.resource_server_identifier" => {
            format!("https://show-service-{env}.api")
        }
        // The partner map, evaluated from the HCL for the default clients.
        s if s.contains("var.app_environment.partner_client_ids") => default_partner_map(),
        _ => match expr {
            Expression::String(s) => s.clone(),
            _ => panic!(
                "{SERVICE_TF}: no sample value for `{src}` in local.environment; add one to sample_value()"
            ),
        },
    }
}

/// `APP__AUTH__PARTNERS` as Terraform renders it for the default clients (sample ids).
fn default_partner_map() -> String {
    let vars = parse("infra/variables.tf");
    let var = labelled(&vars, "infra/variables.tf", "variable", "cognito_clients");
    let clients = typed_clients(
        attr(&var.body, "cognito_clients", "default"),
        "cognito_clients",
    );
    rendered_partner_map(&clients, &sample_client_ids(&clients))
}

#[test]
fn the_task_definition_environment_configures_the_service_as_deployed() {
    let service = parse(SERVICE_TF);
    let locals = locals_of(&service);
    let port = service_number(&locals, "container_port");
    let env_map = object(
        local(&locals, SERVICE_TF, "environment"),
        "local.environment",
    );

    // The issuer API Gateway's authorizer trusts, for the same region and pool.
    let identity_outputs = parse("infra/modules/identity/outputs.tf");
    let issuer_output = identity_outputs
        .blocks()
        .find(|b| b.identifier.as_str() == "output" && b.labels[0].as_str() == "issuer_url")
        .expect("infra/modules/identity/outputs.tf: output issuer_url");
    let authorizer_issuer = string(
        attr(&issuer_output.body, "output.issuer_url", "value"),
        "issuer",
    )
    .replace("${data.aws_region.current.name}", "ap-southeast-2")
    .replace("${aws_cognito_user_pool.this.id}", "ap-southeast-2_Example");

    for env in ENVS {
        let vars: Vec<(String, String)> = env_map
            .iter()
            .map(|(k, v)| (k.clone(), sample_value(v, env, port)))
            .collect();
        let settings = Settings::load(None, vars.clone()).unwrap_or_else(|e| {
            panic!("{SERVICE_TF}: the service refuses the task definition's environment for {env}: {e}\n{vars:?}")
        });
        let what = format!("{SERVICE_TF} ({env})");
        assert_eq!(u64::from(settings.server.port), port, "{what}: port");
        assert_eq!(
            settings.store.kind,
            StoreKind::Dynamodb,
            "{what}: store kind"
        );
        assert_eq!(settings.dynamodb.table, table_name(env), "{what}: table");
        assert_eq!(settings.dynamodb.gsi, GSI_NAME, "{what}: GSI");
        assert_eq!(
            settings.dynamodb.region.as_deref(),
            Some("ap-southeast-2"),
            "{what}: region"
        );
        assert_eq!(
            settings.auth.mode,
            AuthMode::Jwt,
            "{what}: tokens must come from Cognito"
        );
        assert_eq!(
            settings.auth.issuer.as_deref(),
            Some(authorizer_issuer.as_str()),
            "{what}: the service's issuer differs from the JWT authorizer's (identity issuer_url)"
        );
        for client in ["exampleclientid", "otherclientid"] {
            assert!(
                settings.auth.audience.iter().any(|a| a == client),
                "{what}: every app client must be an allowed client/audience ({client} is not: {:?})",
                settings.auth.audience
            );
        }
        assert_eq!(
            settings.auth.resource_server,
            format!("https://show-service-{env}.api"),
            "{what}: resource server"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Data layout
// ---------------------------------------------------------------------------------------

#[test]
fn table_key_and_index_equal_the_stores_layout() {
    let file = "infra/modules/data/main.tf";
    let data = parse(file);
    let locals = locals_of(&data);
    let table = block(&data, file, "resource", "aws_dynamodb_table", "this");
    let what = "aws_dynamodb_table.this";

    let name = string(attr(&table.body, what, "name"), what);
    for env in ENVS {
        assert_eq!(
            render(&name, env),
            table_name(env),
            "{file}: table name for {env} differs from store::layout::table_name"
        );
    }
    assert_eq!(
        string(attr(&table.body, what, "hash_key"), what),
        TABLE_HASH_KEY,
        "{file}: hash_key"
    );
    assert_eq!(
        string(attr(&table.body, what, "billing_mode"), what),
        "PAY_PER_REQUEST",
        "{file}: billing_mode"
    );

    // Key types as the store writes them (docs/dynamodb.md): slug S, drmKey N, episodeCount N.
    let types: BTreeMap<String, String> = nested(&table.body, "attribute")
        .iter()
        .map(|b| {
            (
                string(attr(&b.body, "attribute", "name"), "attribute.name"),
                string(attr(&b.body, "attribute", "type"), "attribute.type"),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = [
        (TABLE_HASH_KEY, "S"),
        (GSI_HASH_KEY, "N"),
        (GSI_RANGE_KEY, "N"),
    ]
    .iter()
    .map(|(k, t)| ((*k).to_owned(), (*t).to_owned()))
    .collect();
    assert_eq!(
        types, expected,
        "{file}: key attributes/types differ from the store's layout"
    );

    // The change log's entries expire through the table's TTL, on the store's attribute.
    let ttl = nested(&table.body, "ttl");
    assert_eq!(ttl.len(), 1, "{file}: one ttl block");
    assert_eq!(
        string(attr(&ttl[0].body, "ttl", "attribute_name"), "ttl"),
        CHANGE_LOG_EXPIRES,
        "{file}: ttl attribute differs from store::layout::CHANGE_LOG_EXPIRES"
    );
    assert!(
        matches!(attr(&ttl[0].body, "ttl", "enabled"), Expression::Bool(true)),
        "{file}: ttl enabled"
    );

    let gsis = nested(&table.body, "global_secondary_index");
    assert_eq!(gsis.len(), 1, "{file}: one GSI");
    let gsi = &gsis[0].body;
    let gsi_name = attr(gsi, "global_secondary_index", "name");
    let gsi_name = match gsi_name {
        Expression::Traversal(_) => string(local(&locals, file, "gsi_name"), "local.gsi_name"),
        other => string(other, "global_secondary_index.name"),
    };
    assert_eq!(
        gsi_name, GSI_NAME,
        "{file}: GSI name differs from store::layout::GSI_NAME"
    );
    assert_eq!(
        string(attr(gsi, "gsi", "hash_key"), "gsi"),
        GSI_HASH_KEY,
        "{file}: GSI hash key"
    );
    assert_eq!(
        string(attr(gsi, "gsi", "range_key"), "gsi"),
        GSI_RANGE_KEY,
        "{file}: GSI range key"
    );
    assert_eq!(
        string(attr(gsi, "gsi", "projection_type"), "gsi"),
        "ALL",
        "{file}: GSI projection"
    );

    let pitr = nested(&table.body, "point_in_time_recovery");
    let sse = nested(&table.body, "server_side_encryption");
    assert_eq!(pitr.len(), 1, "{file}: point-in-time recovery");
    assert_eq!(sse.len(), 1, "{file}: server-side encryption");
    assert!(
        boolean(attr(&sse[0].body, "sse", "enabled"), "sse.enabled"),
        "{file}: SSE enabled"
    );
}

#[test]
fn no_iam_policy_grants_a_wildcard_action() {
    for module in ["network", "service", "pipeline"] {
        let file = format!("infra/modules/{module}/main.tf");
        let body = parse(&file);
        for doc in body.blocks().filter(|b| {
            b.identifier.as_str() == "data"
                && b.labels.first().map(|l| l.as_str()) == Some("aws_iam_policy_document")
        }) {
            for statement in nested(&doc.body, "statement") {
                for action in strings(attr(&statement.body, "statement", "actions"), "actions") {
                    assert!(
                        !action.contains('*'),
                        "{file}: policy document {} grants wildcard action {action}",
                        doc.labels[1].as_str()
                    );
                }
            }
        }
    }

    // Which table actions the task role holds: exactly what the store's calls need
    // (the_task_role_allows_exactly_what_the_dynamodb_stores_calls_need).
}

// ---------------------------------------------------------------------------------------
// Sizing per environment
// ---------------------------------------------------------------------------------------

/// Fargate's CPU/memory pairs (AWS-FACTS: 256 → 512, 1024, 2048; 512 → 1–4 GB; …).
fn valid_fargate(cpu: u64, memory: u64) -> bool {
    match cpu {
        256 => [512, 1024, 2048].contains(&memory),
        512 => (1024..=4096).contains(&memory) && memory.is_multiple_of(1024),
        1024 => (2048..=8192).contains(&memory) && memory.is_multiple_of(1024),
        2048 => (4096..=16384).contains(&memory) && memory.is_multiple_of(1024),
        4096 => (8192..=30720).contains(&memory) && memory.is_multiple_of(1024),
        _ => false,
    }
}

#[test]
fn each_environment_has_a_valid_fargate_size_matching_the_seed() {
    // The seed's table: env, CPU, memory MiB, tasks, log retention days.
    let seed = [
        ("dev", 256, 512, 1, 3),
        ("test", 512, 1024, 1, 7),
        ("prod", 512, 1024, 2, 14),
    ];
    for (env, cpu, memory, tasks, days) in seed {
        let file = format!("infra/terraform.{env}.tfvars");
        let vars = tfvars(env);
        let get = |name: &str| {
            vars.get(name)
                .unwrap_or_else(|| panic!("{file}: no `{name}`"))
        };
        assert_eq!(string(get("env"), "env"), env, "{file}: env");
        let got = (
            number(get("task_cpu"), "task_cpu"),
            number(get("task_memory"), "task_memory"),
            number(get("desired_count"), "desired_count"),
            number(get("log_retention_days"), "log_retention_days"),
        );
        assert_eq!(
            got,
            (cpu, memory, tasks, days),
            "{file}: (cpu, memory, tasks, log days) differ from the seed's table"
        );
        assert!(
            valid_fargate(got.0, got.1),
            "{file}: {}/{} is not a Fargate size",
            got.0,
            got.1
        );
        assert!(
            number(get("max_count"), "max_count") >= got.2,
            "{file}: autoscaling max below the task count"
        );
    }

    let prod = tfvars("prod");
    for flag in ["nat_gateway_per_az", "deletion_protection"] {
        let value = prod
            .get(flag)
            .unwrap_or_else(|| panic!("terraform.prod.tfvars: no {flag}"));
        assert!(
            boolean(value, flag),
            "infra/terraform.prod.tfvars: {flag} must be true in prod"
        );
    }
}

#[test]
fn every_terraform_file_parses() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("infra/ is readable") {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() && !name.starts_with('.') {
                walk(&path, out);
            } else if name.ends_with(".tf") || name.ends_with(".tfvars") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo_path("infra"), &mut files);
    assert!(
        files.len() > 20,
        "expected the root and six modules under infra/"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        if let Err(e) = hcl::from_str::<Body>(&text) {
            panic!("{}: does not parse: {e}", file.display());
        }
    }
}

/// The ALB is reachable only from the VPC link's security group, and the tasks only from
/// the ALB's: every ingress rule on those groups names its source group, none a CIDR or
/// prefix list, and the root passes the VPC link's own group in.
#[test]
fn only_the_vpc_link_reaches_the_alb_and_only_the_alb_reaches_the_tasks() {
    let file = "infra/modules/service/main.tf";
    let service = parse(file);
    for ty in [
        "aws_security_group_rule",
        "aws_vpc_security_group_ingress_rule",
    ] {
        for rule in resources_of_type(&service, ty) {
            let name = rule.labels[1].as_str();
            let what = format!("{file}: {ty}.{name}");
            let attrs: BTreeMap<String, String> = rule
                .body
                .attributes()
                .map(|a| (a.key.as_str().to_owned(), source(&a.expr)))
                .collect();
            if attrs.get("type").is_some_and(|t| t.contains("egress")) {
                continue;
            }
            // The metrics listener admits the VPC and nothing else (no load balancer
            // or API route leads to it).
            if attrs.get("from_port").map(String::as_str) == Some("local.metrics_port") {
                assert_eq!(
                    attrs["security_group_id"], "aws_security_group.tasks.id",
                    "{what}"
                );
                assert_eq!(
                    attrs.get("to_port").map(String::as_str),
                    Some("local.metrics_port"),
                    "{what}"
                );
                assert_eq!(
                    attrs.get("cidr_ipv4").map(String::as_str),
                    Some("var.vpc_cidr_block"),
                    "{what}: the metrics port admits the VPC only"
                );
                continue;
            }
            for open in [
                "cidr_ipv4",
                "cidr_ipv6",
                "cidr_blocks",
                "ipv6_cidr_blocks",
                "prefix_list_id",
                "prefix_list_ids",
            ] {
                assert!(
                    !attrs.contains_key(open),
                    "{what}: ingress from `{open}`, not a security group"
                );
            }
            let target = attrs
                .get("security_group_id")
                .unwrap_or_else(|| panic!("{what}: no security_group_id"));
            let from = attrs
                .get("referenced_security_group_id")
                .or_else(|| attrs.get("source_security_group_id"))
                .unwrap_or_else(|| panic!("{what}: no source security group"));
            match target.as_str() {
                "aws_security_group.alb.id" => {
                    assert_eq!(from, "var.vpc_link_security_group_id", "{what}")
                }
                "aws_security_group.tasks.id" => {
                    assert_eq!(from, "aws_security_group.alb.id", "{what}")
                }
                // The interface endpoints admit the tasks only.
                "var.endpoints.security_group_id" => {
                    assert_eq!(from, "aws_security_group.tasks.id", "{what}")
                }
                other => panic!("{what}: ingress on an unexpected group `{other}`"),
            }
        }
    }
    for group in ["alb", "tasks"] {
        let sg = block(&service, file, "resource", "aws_security_group", group);
        assert!(
            nested(&sg.body, "ingress").is_empty(),
            "{file}: inline ingress on the {group} group"
        );
    }

    let root = parse("infra/main.tf");
    let module = root
        .blocks()
        .find(|b| {
            b.identifier.as_str() == "module"
                && b.body
                    .attributes()
                    .any(|a| a.key.as_str() == "vpc_link_security_group_id")
        })
        .expect("infra/main.tf: the service module takes vpc_link_security_group_id");
    assert_eq!(
        source(attr(
            &module.body,
            "infra/main.tf",
            "vpc_link_security_group_id"
        )),
        "module.api.vpc_link_security_group_id"
    );
    let api_file = "infra/modules/api/main.tf";
    let api = parse(api_file);
    let link = block(
        &api,
        api_file,
        "resource",
        "aws_apigatewayv2_vpc_link",
        "this",
    );
    let groups: String = source(attr(&link.body, api_file, "security_group_ids"))
        .split_whitespace()
        .collect();
    assert_eq!(
        groups, "[aws_security_group.vpc_link.id]",
        "the VPC link has its own security group"
    );
    let outputs = parse("infra/modules/api/outputs.tf");
    let out = outputs
        .blocks()
        .find(|b| {
            b.identifier.as_str() == "output"
                && b.labels.first().map(|l| l.as_str()) == Some("vpc_link_security_group_id")
        })
        .expect("api output vpc_link_security_group_id");
    assert_eq!(
        source(attr(&out.body, "api outputs", "value")),
        "aws_security_group.vpc_link.id"
    );
}

// ---------------------------------------------------------------------------------------
// Monitoring: every alarm and dashboard widget names a metric that exists
// ---------------------------------------------------------------------------------------

const MONITORING_TF: &str = "infra/modules/monitoring/main.tf";

/// The service's own namespace (CloudWatch Embedded Metric Format on stdout).
const SERVICE_NAMESPACE: &str = "ShowService";

/// What AWS publishes for the stack's resource types: namespace → metric → every set of
/// dimensions it is published with. CloudWatch finds a metric only under exactly one of
/// these sets (it does not aggregate over a missing dimension), so an alarm with any
/// other set watches nothing, silently. From the CloudWatch metrics references of API
/// Gateway (HTTP APIs), Elastic Load Balancing (ALB), ECS, Container Insights for ECS
/// and DynamoDB.
fn aws_metrics() -> BTreeMap<&'static str, BTreeMap<&'static str, Vec<BTreeSet<&'static str>>>> {
    fn sets(dims: &[&[&'static str]]) -> Vec<BTreeSet<&'static str>> {
        dims.iter().map(|d| d.iter().copied().collect()).collect()
    }
    let api = sets(&[
        &["ApiId"],
        &["ApiId", "Stage"],
        &["ApiId", "Stage", "Route"],
    ]);
    let lb_only = sets(&[&["LoadBalancer"], &["LoadBalancer", "AvailabilityZone"]]);
    let lb_or_tg = sets(&[
        &["LoadBalancer"],
        &["LoadBalancer", "AvailabilityZone"],
        &["LoadBalancer", "TargetGroup"],
        &["LoadBalancer", "TargetGroup", "AvailabilityZone"],
        &["TargetGroup"],
    ]);
    let tg_hosts = sets(&[
        &["LoadBalancer", "TargetGroup"],
        &["LoadBalancer", "TargetGroup", "AvailabilityZone"],
        &["TargetGroup"],
        &["TargetGroup", "AvailabilityZone"],
    ]);
    let ecs = sets(&[&["ClusterName"], &["ClusterName", "ServiceName"]]);
    let insights_service = sets(&[&["ClusterName", "ServiceName"]]);
    let table = sets(&[&["TableName"], &["TableName", "GlobalSecondaryIndexName"]]);
    let table_op = sets(&[&["TableName", "Operation"]]);

    let mut out: BTreeMap<_, BTreeMap<_, _>> = BTreeMap::new();
    let mut put =
        |ns: &'static str, metrics: &[&'static str], dims: &Vec<BTreeSet<&'static str>>| {
            for m in metrics {
                out.entry(ns).or_default().insert(*m, dims.clone());
            }
        };
    put(
        "AWS/ApiGateway",
        &[
            "4xx",
            "5xx",
            "Count",
            "Latency",
            "IntegrationLatency",
            "DataProcessed",
        ],
        &api,
    );
    put(
        "AWS/ApplicationELB",
        &["HTTPCode_ELB_5XX_Count", "HTTPCode_ELB_4XX_Count"],
        &lb_only,
    );
    put(
        "AWS/ApplicationELB",
        &[
            "HTTPCode_Target_5XX_Count",
            "HTTPCode_Target_4XX_Count",
            "TargetResponseTime",
            "RequestCount",
        ],
        &lb_or_tg,
    );
    put(
        "AWS/ApplicationELB",
        &["HealthyHostCount", "UnHealthyHostCount"],
        &tg_hosts,
    );
    put("AWS/ECS", &["CPUUtilization", "MemoryUtilization"], &ecs);
    put(
        "ECS/ContainerInsights",
        &["RunningTaskCount", "DesiredTaskCount", "PendingTaskCount"],
        &insights_service,
    );
    put(
        "AWS/DynamoDB",
        &[
            "ReadThrottleEvents",
            "WriteThrottleEvents",
            "ConsumedReadCapacityUnits",
            "ConsumedWriteCapacityUnits",
        ],
        &table,
    );
    put(
        "AWS/DynamoDB",
        &[
            "SystemErrors",
            "ThrottledRequests",
            "SuccessfulRequestLatency",
        ],
        &table_op,
    );
    out
}

/// One metric the service sends to CloudWatch through EMF: its name, and the closed set
/// of values of each EMF dimension it carries besides `Environment`.
struct ServiceMetric {
    name: &'static str,
    dims: BTreeMap<&'static str, BTreeSet<&'static str>>,
}

/// The service's metrics as CloudWatch receives them through EMF, from the code's
/// metrics table (`telemetry::table::METRICS`): every metric it sends to EMF, with
/// the dimensions it carries besides `Environment`. The table names each label's values
/// in its help text; their closed sets (the team's metrics contract) are in
/// [`label_values`].
fn service_emf_metrics() -> Vec<ServiceMetric> {
    METRICS
        .iter()
        .filter_map(|m| {
            let dims = m.emf?;
            Some(ServiceMetric {
                name: m.name,
                dims: dims.iter().map(|d| (*d, label_values(m.name, d))).collect(),
            })
        })
        .collect()
}

/// The closed set of values of an EMF dimension of a service metric.
fn label_values(metric: &str, dim: &str) -> BTreeSet<&'static str> {
    let values: &[&'static str] = match (metric, dim) {
        (_, "status_class") => &["1xx", "2xx", "3xx", "4xx", "5xx"],
        ("feeds_total", "outcome") => &["accepted", "rejected", "refused", "partial", "failed"],
        ("store_calls_total", "outcome") => &["ok", "unavailable", "throttled", "error"],
        ("catalogue_change_checks_total", "outcome") => {
            &["unchanged", "changed", "missing", "invalid", "error"]
        }
        ("auth_token_verifications_total", "outcome") => &[
            "ok",
            "cached",
            "malformed",
            "expired",
            "not_yet_valid",
            "bad_signature",
            "unknown_key",
            "wrong_issuer",
            "wrong_audience",
            "wrong_token_use",
            "missing_scope",
            "issuer_unavailable",
        ],
        ("auth_jwks_fetches_total", "outcome") => &["ok", "error"],
        ("issuer_token_requests_rejected_total", "reason") => &[
            "invalid_client",
            "invalid_request",
            "invalid_scope",
            "unsupported_grant_type",
            "rate_limited",
        ],
        _ => panic!(
            "telemetry::table::METRICS sends {metric} to EMF with the dimension {dim}, \
             whose values this test does not know: add them to label_values()"
        ),
    };
    values.iter().copied().collect()
}

/// Evaluates the small part of Terraform the monitoring module builds its alarms and
/// widgets with: `local.x` and loop variables are substituted, `merge()` and `concat()`
/// applied, `for` over a known list expanded. Everything else (`var.*`, resource
/// attributes) stays as it is: its value does not decide which metric is named.
fn eval(
    expr: &Expression,
    locals: &BTreeMap<String, Expression>,
    scope: &BTreeMap<String, Expression>,
) -> Expression {
    use hcl::expr::{FuncCall, TraversalOperator};
    match expr {
        Expression::Traversal(t) => {
            let Expression::Variable(root) = &t.expr else {
                return expr.clone();
            };
            let mut ops = t.operators.iter();
            let mut value = match root.as_str() {
                "local" => match ops.next() {
                    Some(TraversalOperator::GetAttr(name)) => match locals.get(name.as_str()) {
                        Some(e) => eval(e, locals, scope),
                        None => panic!("{MONITORING_TF}: no local value `{name}`"),
                    },
                    _ => return expr.clone(),
                },
                name => match scope.get(name) {
                    Some(e) => e.clone(),
                    None => return expr.clone(),
                },
            };
            for op in ops {
                let TraversalOperator::GetAttr(attr) = op else {
                    return expr.clone();
                };
                let Expression::Object(o) = &value else {
                    return expr.clone();
                };
                let Some((_, v)) = o.iter().find(|(k, _)| key_name(k) == attr.as_str()) else {
                    return expr.clone();
                };
                value = v.clone();
            }
            value
        }
        Expression::Variable(v) => scope
            .get(v.as_str())
            .cloned()
            .unwrap_or_else(|| expr.clone()),
        Expression::Array(a) => {
            Expression::Array(a.iter().map(|e| eval(e, locals, scope)).collect())
        }
        Expression::Object(o) => Expression::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), eval(v, locals, scope)))
                .collect(),
        ),
        Expression::FuncCall(call) => {
            let args: Vec<Expression> = call.args.iter().map(|a| eval(a, locals, scope)).collect();
            match call.name.name.as_str() {
                "merge" if args.iter().all(|a| matches!(a, Expression::Object(_))) => {
                    let mut merged = hcl::expr::Object::new();
                    for arg in args {
                        let Expression::Object(o) = arg else {
                            unreachable!()
                        };
                        for (k, v) in o {
                            merged.insert(k, v);
                        }
                    }
                    Expression::Object(merged)
                }
                "flatten" if matches!(args.as_slice(), [Expression::Array(_)]) => {
                    fn flat(e: Expression, out: &mut Vec<Expression>) {
                        match e {
                            Expression::Array(items) => {
                                items.into_iter().for_each(|i| flat(i, out))
                            }
                            other => out.push(other),
                        }
                    }
                    let mut out = Vec::new();
                    args.into_iter().for_each(|a| flat(a, &mut out));
                    Expression::Array(out)
                }
                "concat" if args.iter().all(|a| matches!(a, Expression::Array(_))) => {
                    Expression::Array(
                        args.into_iter()
                            .flat_map(|a| match a {
                                Expression::Array(items) => items,
                                _ => unreachable!(),
                            })
                            .collect(),
                    )
                }
                _ => Expression::FuncCall(Box::new(FuncCall {
                    name: call.name.clone(),
                    args,
                    expand_final: call.expand_final,
                })),
            }
        }
        Expression::ForExpr(f) if f.key_expr.is_none() && f.cond_expr.is_none() => {
            // (key, value) of each element: index and item of a list, key and value of
            // an object.
            let entries: Vec<(Expression, Expression)> =
                match eval(&f.collection_expr, locals, scope) {
                    Expression::Array(items) => items
                        .into_iter()
                        .enumerate()
                        .map(|(i, item)| (Expression::Number((i as u64).into()), item))
                        .collect(),
                    Expression::Object(o) => o
                        .into_iter()
                        .map(|(k, v)| (Expression::String(key_name(&k)), v))
                        .collect(),
                    _ => return expr.clone(),
                };
            Expression::Array(
                entries
                    .into_iter()
                    .map(|(key, item)| {
                        let mut inner = scope.clone();
                        inner.insert(f.value_var.as_str().to_owned(), item);
                        if let Some(k) = &f.key_var {
                            inner.insert(k.as_str().to_owned(), key);
                        }
                        eval(&f.value_expr, locals, &inner)
                    })
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

/// One metric an alarm or a widget names: where, namespace, name, dimensions.
#[derive(Debug)]
struct MetricRef {
    at: String,
    namespace: String,
    name: String,
    dims: BTreeMap<String, Expression>,
}

fn is_namespace(s: &str) -> bool {
    s == SERVICE_NAMESPACE || aws_metrics().contains_key(s)
}

/// Every dashboard-style metric array (`[namespace, name, dim, value, …, {options}]`)
/// inside an evaluated expression.
fn widget_metrics(expr: &Expression, at: &str, out: &mut Vec<MetricRef>) {
    match expr {
        Expression::Array(items) => {
            if let [Expression::String(ns), Expression::String(name), rest @ ..] = items.as_slice()
                && is_namespace(ns)
            {
                let rest: Vec<&Expression> = rest
                    .iter()
                    .filter(|e| !matches!(e, Expression::Object(_)))
                    .collect();
                assert!(
                    rest.len().is_multiple_of(2),
                    "{at}: metric {ns} {name}: dimensions must come in name/value pairs"
                );
                let dims = rest
                    .chunks(2)
                    .map(|pair| (string(pair[0], at), pair[1].clone()))
                    .collect();
                out.push(MetricRef {
                    at: at.to_owned(),
                    namespace: ns.clone(),
                    name: name.clone(),
                    dims,
                });
            } else {
                for item in items {
                    widget_metrics(item, at, out);
                }
            }
        }
        Expression::Object(o) => {
            for (_, v) in o.iter() {
                widget_metrics(v, at, out);
            }
        }
        _ => {}
    }
}

fn metric_ref(at: String, metric: &Expression) -> MetricRef {
    let dims = object(field(metric, &at, "dimensions"), &at)
        .into_iter()
        .map(|(k, v)| (k, v.clone()))
        .collect();
    MetricRef {
        namespace: string(field(metric, &at, "namespace"), &at),
        name: string(field(metric, &at, "metric_name"), &at),
        dims,
        at,
    }
}

/// A block's attributes as one object expression, so `eval` can work on it.
fn block_object(body: &Body) -> Expression {
    Expression::Object(
        body.attributes()
            .map(|a| {
                (
                    ObjectKey::Expression(Expression::String(a.key.as_str().to_owned())),
                    a.expr.clone(),
                )
            })
            .collect(),
    )
}

/// Every metric any alarm of the monitoring module watches.
fn alarm_metrics(body: &Body, locals: &BTreeMap<String, Expression>) -> Vec<MetricRef> {
    let mut out = Vec::new();
    let empty = BTreeMap::new();
    for alarm in resources_of_type(body, "aws_cloudwatch_metric_alarm") {
        let name = alarm.labels[1].as_str();
        let what = format!("{MONITORING_TF}: aws_cloudwatch_metric_alarm.{name}");
        if let Some(for_each) = alarm
            .body
            .attributes()
            .find(|a| a.key.as_str() == "for_each")
        {
            // One alarm per entry of a map: its metric fields come from each.value.
            let map = eval(&for_each.expr, locals, &empty);
            for (key, attrs) in [
                ("namespace", "each.value.namespace"),
                ("metric_name", "each.value.metric_name"),
                ("dimensions", "each.value.dimensions"),
            ] {
                assert_eq!(
                    source(attr(&alarm.body, &what, key)),
                    attrs,
                    "{what}: {key}"
                );
            }
            for (key, entry) in object(&map, &what) {
                out.push(metric_ref(format!("{what}[\"{key}\"]"), entry));
            }
            continue;
        }
        let mut found = 0;
        for query in nested(&alarm.body, "metric_query") {
            for metric in nested(&query.body, "metric") {
                let m = eval(&block_object(&metric.body), locals, &empty);
                out.push(metric_ref(what.clone(), &m));
                found += 1;
            }
        }
        for dynamic in nested(&alarm.body, "dynamic") {
            assert_eq!(
                dynamic.labels[0].as_str(),
                "metric_query",
                "{what}: dynamic block"
            );
            let Expression::Array(items) =
                eval(attr(&dynamic.body, &what, "for_each"), locals, &empty)
            else {
                panic!("{what}: dynamic metric_query must iterate a known list");
            };
            let content = &nested(&dynamic.body, "content")[0].body;
            for (i, item) in items.into_iter().enumerate() {
                let iteration: Expression = Expression::Object(
                    [
                        (
                            ObjectKey::Expression(Expression::String("key".into())),
                            Expression::Number((i as u64).into()),
                        ),
                        (
                            ObjectKey::Expression(Expression::String("value".into())),
                            item,
                        ),
                    ]
                    .into_iter()
                    .collect(),
                );
                let scope: BTreeMap<String, Expression> =
                    [("metric_query".to_owned(), iteration)].into();
                for metric in nested(content, "metric") {
                    let m = eval(&block_object(&metric.body), locals, &scope);
                    out.push(metric_ref(format!("{what} (metric_query {i})"), &m));
                    found += 1;
                }
            }
        }
        assert!(found > 0, "{what}: watches no metric");
    }
    out
}

fn dashboard_metrics(locals: &BTreeMap<String, Expression>) -> Vec<MetricRef> {
    let widgets = eval(
        local(locals, MONITORING_TF, "widgets"),
        locals,
        &BTreeMap::new(),
    );
    let mut out = Vec::new();
    for (i, widget) in array(&widgets, "local.widgets").iter().enumerate() {
        widget_metrics(
            widget,
            &format!("{MONITORING_TF}: dashboard widget {i}"),
            &mut out,
        );
    }
    out
}

/// Fails unless the metric exists under exactly these dimensions: AWS's table for AWS
/// namespaces; for the service's own, the metric's EMF dimensions plus `Environment`
/// (= `var.env`, the service's APP_ENV), each value in the label's closed set.
fn assert_metric_exists(m: &MetricRef) {
    let dims: BTreeSet<&str> = m.dims.keys().map(String::as_str).collect();
    if m.namespace == SERVICE_NAMESPACE {
        let metrics = service_emf_metrics();
        let Some(known) = metrics.iter().find(|s| s.name == m.name) else {
            panic!(
                "{}: {SERVICE_NAMESPACE} {} is not a metric the service sends through EMF",
                m.at, m.name
            );
        };
        let expected: BTreeSet<&str> = known.dims.keys().copied().chain(["Environment"]).collect();
        assert_eq!(
            dims, expected,
            "{}: {SERVICE_NAMESPACE} {} is published with exactly these dimensions",
            m.at, m.name
        );
        assert_eq!(
            source(&m.dims["Environment"]),
            "var.env",
            "{}: the Environment dimension is the service's APP_ENV (var.env)",
            m.at
        );
        for (dim, values) in &known.dims {
            let value = string(&m.dims[*dim], &m.at);
            assert!(
                values.contains(value.as_str()),
                "{}: {} has no {dim} \"{value}\" (its values: {values:?})",
                m.at,
                m.name
            );
        }
        return;
    }
    let table = aws_metrics();
    let Some(metrics) = table.get(m.namespace.as_str()) else {
        panic!(
            "{}: namespace {} is not one the stack publishes to",
            m.at, m.namespace
        );
    };
    let Some(sets) = metrics.get(m.name.as_str()) else {
        panic!("{}: {} publishes no metric {}", m.at, m.namespace, m.name);
    };
    assert!(
        sets.contains(&dims),
        "{}: {} {} is not published with dimensions {dims:?} (only with {sets:?})",
        m.at,
        m.namespace,
        m.name
    );
    for (dim, value) in &m.dims {
        assert!(
            !matches!(value, Expression::String(s) if s.is_empty()),
            "{}: empty {dim}",
            m.at
        );
    }
}

/// A signal: namespace, metric, and the dimension value it must be narrowed to, if any.
type Signal = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

/// The signals the alarms must cover (AWS's recommended alarms for the stack's resource
/// types, and the service's own failure signals).
const REQUIRED_SIGNALS: &[Signal] = &[
    ("AWS/ApiGateway", "5xx", None),
    ("AWS/ApiGateway", "Latency", None),
    ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", None),
    ("AWS/ApplicationELB", "UnHealthyHostCount", None),
    ("AWS/ApplicationELB", "TargetResponseTime", None),
    ("AWS/ECS", "CPUUtilization", None),
    ("AWS/ECS", "MemoryUtilization", None),
    ("ECS/ContainerInsights", "RunningTaskCount", None),
    ("ECS/ContainerInsights", "DesiredTaskCount", None),
    ("AWS/DynamoDB", "ReadThrottleEvents", None),
    ("AWS/DynamoDB", "WriteThrottleEvents", None),
    ("AWS/DynamoDB", "SystemErrors", None),
    (
        SERVICE_NAMESPACE,
        "store_calls_total",
        Some(("outcome", "unavailable")),
    ),
    (
        SERVICE_NAMESPACE,
        "auth_jwks_fetches_total",
        Some(("outcome", "error")),
    ),
    (
        SERVICE_NAMESPACE,
        "feeds_total",
        Some(("outcome", "partial")),
    ),
    (SERVICE_NAMESPACE, "http_requests_shed_total", None),
    (
        SERVICE_NAMESPACE,
        "http_requests_total",
        Some(("status_class", "5xx")),
    ),
];

fn names_signal(refs: &[MetricRef], (ns, name, dim): Signal) -> bool {
    refs.iter().any(|m| {
        m.namespace == ns
            && m.name == name
            && dim.is_none_or(|(d, v)| {
                m.dims
                    .get(d)
                    .is_some_and(|e| matches!(e, Expression::String(s) if s == v))
            })
    })
}

#[test]
fn every_alarm_watches_a_metric_that_exists_with_the_dimensions_it_has() {
    let body = parse(MONITORING_TF);
    let locals = locals_of(&body);
    let metrics = alarm_metrics(&body, &locals);
    assert!(
        metrics.len() >= REQUIRED_SIGNALS.len(),
        "{MONITORING_TF}: too few alarms"
    );
    for m in &metrics {
        assert_metric_exists(m);
    }
    for signal in REQUIRED_SIGNALS {
        assert!(
            names_signal(&metrics, *signal),
            "{MONITORING_TF}: no alarm on {signal:?}"
        );
    }

    // Every alarm notifies the topic, on ALARM and on OK.
    assert_eq!(
        source(local(&locals, MONITORING_TF, "alarm_actions"))
            .split_whitespace()
            .collect::<String>(),
        "[aws_sns_topic.alarms.arn]",
        "{MONITORING_TF}: local.alarm_actions"
    );
    for alarm in resources_of_type(&body, "aws_cloudwatch_metric_alarm") {
        let what = format!("aws_cloudwatch_metric_alarm.{}", alarm.labels[1].as_str());
        for key in ["alarm_actions", "ok_actions"] {
            assert_eq!(
                source(attr(&alarm.body, &what, key)),
                "local.alarm_actions",
                "{MONITORING_TF}: {what}.{key}"
            );
        }
    }
}

#[test]
fn every_dashboard_widget_names_a_metric_that_exists_and_shows_every_alarmed_signal() {
    let body = parse(MONITORING_TF);
    let locals = locals_of(&body);
    let shown = dashboard_metrics(&locals);
    assert!(
        !shown.is_empty(),
        "{MONITORING_TF}: the dashboard shows no metric"
    );
    for m in &shown {
        assert_metric_exists(m);
    }
    for m in alarm_metrics(&body, &locals) {
        assert!(
            shown.iter().any(|s| s.namespace == m.namespace
                && s.name == m.name
                && s.dims.keys().eq(m.dims.keys())),
            "{}: the dashboard does not show {} {} {:?}",
            m.at,
            m.namespace,
            m.name,
            m.dims.keys().collect::<Vec<_>>()
        );
    }

    // The alarm widget lists every alarm resource.
    let arns = source(local(&locals, MONITORING_TF, "alarm_arns"));
    for alarm in resources_of_type(&body, "aws_cloudwatch_metric_alarm") {
        let name = alarm.labels[1].as_str();
        assert!(
            arns.contains(&format!("aws_cloudwatch_metric_alarm.{name}")),
            "{MONITORING_TF}: local.alarm_arns (the alarm widget) misses {name}"
        );
    }
    let dashboard = block(
        &body,
        MONITORING_TF,
        "resource",
        "aws_cloudwatch_dashboard",
        "this",
    );
    assert_eq!(
        source(attr(
            &dashboard.body,
            "aws_cloudwatch_dashboard.this",
            "dashboard_body"
        ))
        .split_whitespace()
        .collect::<String>(),
        "jsonencode({widgets=local.widgets})",
        "{MONITORING_TF}: the dashboard is local.widgets"
    );
}

/// The keys of a variable whose type is `object({ … })`.
fn object_type_keys(file: &str, variable: &str) -> BTreeSet<String> {
    let body = parse(file);
    let var = labelled(&body, file, "variable", variable);
    let Expression::FuncCall(ty) = attr(&var.body, variable, "type") else {
        panic!("{file}: variable {variable} should be of type object({{...}})");
    };
    object(&ty.args[0], variable)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn every_environment_sets_every_alarm_threshold() {
    let module_keys = object_type_keys("infra/modules/monitoring/variables.tf", "thresholds");
    let root_keys = object_type_keys("infra/variables.tf", "alarm_thresholds");
    assert_eq!(
        root_keys, module_keys,
        "infra/variables.tf alarm_thresholds and the monitoring module's thresholds differ"
    );
    let monitoring = read(MONITORING_TF);
    for key in &module_keys {
        assert!(
            monitoring.contains(&format!("local.t.{key}")),
            "{MONITORING_TF}: threshold {key} is never used"
        );
    }
    for env in ENVS {
        let file = format!("infra/terraform.{env}.tfvars");
        let vars = tfvars(env);
        let thresholds = vars
            .get("alarm_thresholds")
            .unwrap_or_else(|| panic!("{file}: no alarm_thresholds"));
        let set: BTreeMap<String, f64> = object(thresholds, &file)
            .into_iter()
            .map(|(k, v)| match v {
                Expression::Number(n) => (k, n.as_f64().expect("a finite number")),
                other => panic!("{file}: {k} = `{}` is not a number", source(other)),
            })
            .collect();
        assert_eq!(
            set.keys().cloned().collect::<BTreeSet<_>>(),
            module_keys,
            "{file}: alarm_thresholds must set every threshold"
        );
        for (k, v) in &set {
            assert!(*v >= 0.0, "{file}: {k} is negative");
            if k.ends_with("_rate") {
                assert!(*v <= 1.0, "{file}: {k} is a share of requests (0..1)");
            }
            if k.ends_with("_percent") {
                assert!(*v <= 100.0, "{file}: {k} is a percentage");
            }
        }
    }
    let root = parse("infra/main.tf");
    let m = &labelled(&root, "infra/main.tf", "module", "monitoring").body;
    assert_eq!(
        source(attr(m, "module.monitoring", "thresholds")),
        "var.alarm_thresholds"
    );
    assert_eq!(
        source(attr(m, "module.monitoring", "env")),
        "var.env",
        "infra/main.tf: the Environment dimension is the env the task definition sets as APP_ENV"
    );
}

/// The DynamoDB calls the store can make, as the SDK spells them (`client.<method>()`),
/// with the operation's name (the `Operation` dimension of DynamoDB's metrics) and the IAM
/// actions the call needs. A transaction needs the actions of the items it holds
/// ([`TRANSACTION_ITEMS`]; AWS: "Using IAM with DynamoDB transactions").
const DYNAMODB_CALLS: &[(&str, &str, &[&str])] = &[
    ("batch_get_item", "BatchGetItem", &["BatchGetItem"]),
    ("batch_write_item", "BatchWriteItem", &["BatchWriteItem"]),
    ("delete_item", "DeleteItem", &["DeleteItem"]),
    ("describe_table", "DescribeTable", &["DescribeTable"]),
    ("get_item", "GetItem", &["GetItem"]),
    ("put_item", "PutItem", &["PutItem"]),
    ("query", "Query", &["Query"]),
    ("scan", "Scan", &["Scan"]),
    ("update_item", "UpdateItem", &["UpdateItem"]),
    ("transact_get_items", "TransactGetItems", &[]),
    ("transact_write_items", "TransactWriteItems", &[]),
];

/// The items of a transaction (`aws_sdk_dynamodb::types::<Item>::builder()`) and the IAM
/// action each needs.
const TRANSACTION_ITEMS: &[(&str, &str)] = &[
    ("ConditionCheck", "ConditionCheckItem"),
    ("Delete", "DeleteItem"),
    ("Get", "GetItem"),
    ("Put", "PutItem"),
    ("Update", "UpdateItem"),
];

/// The store's runtime code: every `.rs` file under `src/store/dynamodb/` and
/// `src/store/dynamodb.rs`, without unit tests (`tests.rs`, anything after
/// `#[cfg(test)]`) and without `table.rs`, the operator's table tool (`create-table`,
/// local start-up), whose CreateTable / UpdateTable the task role must never hold.
fn dynamodb_store_sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo_path("src/store/dynamodb"), &mut files);
    let single = repo_path("src/store/dynamodb.rs");
    if single.exists() {
        files.push(single);
    }
    files.sort();
    let sources: Vec<(String, String)> = files
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name != "tests.rs"
                && name != "table.rs"
                && !p.components().any(|c| c.as_os_str() == "tests")
        })
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            // An inline unit-test module (`#[cfg(test)]` then `mod tests {`) ends the
            // runtime code; `#[cfg(test)] mod tests;` only names tests.rs.
            let code = match text.find("#[cfg(test)]\nmod tests {") {
                Some(i) => text[..i].to_owned(),
                None => text,
            };
            (p.display().to_string(), code)
        })
        .collect();
    assert!(
        !sources.is_empty(),
        "no DynamoDB store sources under src/store/dynamodb"
    );
    sources
}

/// True when `code` calls `.method()` (the SDK's fluent builders; whitespace or a line
/// break may come before the dot).
fn calls_method(code: &str, method: &str) -> bool {
    code.contains(&format!(".{method}()"))
}

/// True when `code` builds a `Type::builder()` of exactly that type (not `FooType`).
fn builds(code: &str, ty: &str) -> bool {
    let needle = format!("{ty}::builder()");
    code.match_indices(&needle).any(|(i, _)| {
        !code[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The store's calls: (operation names, IAM actions they need).
fn dynamodb_store_calls() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut operations = BTreeSet::new();
    let mut actions = BTreeSet::new();
    for (_, code) in dynamodb_store_sources() {
        for (method, operation, needs) in DYNAMODB_CALLS {
            if calls_method(&code, method) {
                operations.insert((*operation).to_owned());
                actions.extend(needs.iter().map(|a| (*a).to_owned()));
            }
        }
        if calls_method(&code, "transact_write_items") || calls_method(&code, "transact_get_items")
        {
            for (ty, action) in TRANSACTION_ITEMS {
                if builds(&code, ty) {
                    actions.insert((*action).to_owned());
                }
            }
        }
    }
    assert!(
        operations.contains("Query") && operations.contains("GetItem"),
        "the scan of src/store/dynamodb found no Query or GetItem call: {operations:?}"
    );
    (operations, actions)
}

fn task_role_table_actions() -> BTreeSet<String> {
    let service = parse(SERVICE_TF);
    let task = block(
        &service,
        SERVICE_TF,
        "data",
        "aws_iam_policy_document",
        "task",
    );
    let statements = nested(&task.body, "statement");
    assert_eq!(
        statements.len(),
        1,
        "{SERVICE_TF}: the task role has one statement, the table's"
    );
    strings(attr(&statements[0].body, "statement", "actions"), "actions")
        .into_iter()
        .map(|a| {
            a.strip_prefix("dynamodb:")
                .unwrap_or_else(|| {
                    panic!("{SERVICE_TF}: the task role allows {a}, not a DynamoDB action")
                })
                .to_owned()
        })
        .collect()
}

/// Least privilege that still works: the task role allows exactly the IAM actions the
/// DynamoDB store's calls need, read from the store's code (a call the role lacks is an
/// AccessDenied in AWS only; no emulator checks IAM).
#[test]
fn the_task_role_allows_exactly_what_the_dynamodb_stores_calls_need() {
    let (_, needed) = dynamodb_store_calls();
    let allowed = task_role_table_actions();
    let missing: Vec<_> = needed.difference(&allowed).collect();
    let unused: Vec<_> = allowed.difference(&needed).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "{SERVICE_TF}: the task role's table actions differ from what src/store/dynamodb calls: \
         missing {missing:?} (AccessDenied in AWS), never used {unused:?}"
    );
}

#[test]
fn the_system_errors_alarm_covers_every_table_call_the_store_makes() {
    let (operations, _) = dynamodb_store_calls();
    let data_plane: BTreeSet<String> = operations
        .into_iter()
        // A control-plane call: DynamoDB publishes no SystemErrors for it.
        .filter(|o| o != "DescribeTable")
        .collect();
    let body = parse(MONITORING_TF);
    let locals = locals_of(&body);
    let watched: BTreeSet<String> = alarm_metrics(&body, &locals)
        .into_iter()
        .filter(|m| m.namespace == "AWS/DynamoDB" && m.name == "SystemErrors")
        .map(|m| string(&m.dims["Operation"], &m.at))
        .collect();
    assert_eq!(
        watched, data_plane,
        "{MONITORING_TF}: the SystemErrors alarm must watch exactly the data-plane calls src/store/dynamodb makes"
    );
}

#[test]
fn the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use() {
    let body = parse(MONITORING_TF);
    let topic = block(&body, MONITORING_TF, "resource", "aws_sns_topic", "alarms");
    assert_eq!(
        source(attr(
            &topic.body,
            "aws_sns_topic.alarms",
            "kms_master_key_id"
        )),
        "aws_kms_key.alarms.arn",
        "{MONITORING_TF}: the topic is encrypted with its own key (CloudWatch cannot use aws/sns)"
    );
    let key = block(&body, MONITORING_TF, "resource", "aws_kms_key", "alarms");
    assert!(boolean(
        attr(&key.body, "aws_kms_key.alarms", "enable_key_rotation"),
        "rotation"
    ));
    let policy = block(
        &body,
        MONITORING_TF,
        "data",
        "aws_iam_policy_document",
        "alarm_key",
    );
    let cloudwatch_may_encrypt = nested(&policy.body, "statement").iter().any(|s| {
        nested(&s.body, "principals").iter().any(|p| {
            strings(attr(&p.body, "principals", "identifiers"), "identifiers")
                .contains(&"cloudwatch.amazonaws.com".to_owned())
        }) && strings(attr(&s.body, "statement", "actions"), "actions")
            .iter()
            .any(|a| a == "kms:GenerateDataKey")
    });
    assert!(
        cloudwatch_may_encrypt,
        "{MONITORING_TF}: the key policy must let cloudwatch.amazonaws.com generate data keys"
    );
    let subscription = block(
        &body,
        MONITORING_TF,
        "resource",
        "aws_sns_topic_subscription",
        "alarms",
    );
    assert!(
        source(attr(&subscription.body, "subscription", "for_each"))
            .contains("var.alarm_subscriptions"),
        "{MONITORING_TF}: subscriptions come from var.alarm_subscriptions"
    );
}

// ---------------------------------------------------------------------------------------
// One Cognito app client per consumer; the gateway and the service admit the same ones
// ---------------------------------------------------------------------------------------

#[test]
fn every_app_client_is_an_api_audience_and_an_allowed_client_of_the_service() {
    let root_file = "infra/main.tf";
    let root = parse(root_file);
    let locals = locals_of(&root);
    assert_eq!(
        source(local(&locals, root_file, "client_ids")),
        "values(module.identity.client_ids)",
        "{root_file}: local.client_ids are the identity module's clients"
    );
    let module = |name: &str| labelled(&root, root_file, "module", name);
    assert_eq!(
        source(attr(&module("api").body, "module.api", "jwt_audiences")),
        "local.client_ids",
        "{root_file}: the JWT authorizer's audiences must be every app client"
    );
    let app_env = attr(&module("service").body, "module.service", "app_environment");
    assert_eq!(
        source(field(
            app_env,
            "module.service.app_environment",
            "client_ids"
        )),
        "local.client_ids",
        "{root_file}: the service's allowed client ids must be every app client"
    );
    assert_eq!(
        source(attr(&module("identity").body, "module.identity", "clients")),
        "var.cognito_clients",
        "{root_file}: the identity module's clients"
    );
    let service = parse(SERVICE_TF);
    let service_locals = locals_of(&service);
    let env = object(
        local(&service_locals, SERVICE_TF, "environment"),
        "local.environment",
    );
    let client_var = env
        .iter()
        .find(|(k, _)| k == "APP__COGNITO__CLIENTID")
        .map(|(_, v)| source(v))
        .unwrap_or_else(|| panic!("{SERVICE_TF}: APP__COGNITO__CLIENTID is not set"));
    assert_eq!(
        client_var, "join(\",\", var.app_environment.client_ids)",
        "{SERVICE_TF}: APP__COGNITO__CLIENTID lists every app client (comma separated, as config reads it)"
    );

    // Cognito: one client per map entry, allowed only its own scopes.
    let identity_file = "infra/modules/identity/main.tf";
    let identity = parse(identity_file);
    let clients = resources_of_type(&identity, "aws_cognito_user_pool_client");
    assert_eq!(
        clients.len(),
        1,
        "{identity_file}: one client resource, for_each over var.clients"
    );
    let client = &clients[0].body;
    let what = "aws_cognito_user_pool_client";
    assert_eq!(source(attr(client, what, "for_each")), "var.clients");
    assert_eq!(
        source(attr(client, what, "allowed_oauth_scopes")),
        "[for s in sort(each.value.scopes) : \"${aws_cognito_resource_server.this.identifier}/${s}\"]",
        "{identity_file}: a client is allowed exactly the scopes its entry lists"
    );
    assert_eq!(
        strings(attr(client, what, "allowed_oauth_flows"), what),
        ["client_credentials"]
    );

    // The default consumers: every scope is one the service knows, no read-only consumer
    // holds write power, and the platform's own client holds the admin scope. The same
    // for every environment that lists its own clients.
    let vars = parse("infra/variables.tf");
    let var = labelled(&vars, "infra/variables.tf", "variable", "cognito_clients");
    let defaults = attr(&var.body, "cognito_clients", "default");
    assert!(
        object(defaults, "cognito_clients").len() >= 2,
        "infra/variables.tf: one client per consumer, not one for all"
    );
    let mut lists = vec![("infra/variables.tf (default)".to_owned(), defaults.clone())];
    for env in ENVS {
        if let Some(clients) = tfvars(env).get("cognito_clients") {
            lists.push((format!("infra/terraform.{env}.tfvars"), clients.clone()));
        }
    }
    let known = scope_names();
    for (file, clients) in &lists {
        let mut read_only = false;
        let mut admin = false;
        for (name, entry) in object(clients, file) {
            let scopes = strings(field(entry, &name, "scopes"), &name);
            assert!(!scopes.is_empty(), "{file}: client {name} has no scope");
            for s in &scopes {
                assert!(
                    known.contains(s.as_str()),
                    "{file}: client {name}: unknown scope {s}"
                );
            }
            read_only |= scopes == [Scope::Read.name()];
            admin |= scopes.iter().any(|s| s == Scope::Admin.name());
            if let Some((_, partner)) = object(entry, &name)
                .into_iter()
                .find(|(k, _)| k == "partner")
            {
                let partner = string(partner, &name);
                Partner::parse(partner.as_str())
                    .unwrap_or_else(|e| panic!("{file}: client {name}: partner {partner:?} {e}"));
            }
        }
        if file.starts_with("infra/variables.tf") {
            assert!(
                read_only,
                "{file}: the defaults should show a read-only client"
            );
        }
        assert!(
            admin,
            "{file}: no client holds {}: nobody could assign owners (POST /v1/admin/owners)",
            Scope::Admin.name()
        );
    }

    // One output entry per client; the secrets are sensitive.
    let outputs = parse("infra/outputs.tf");
    let output = |name: &str| labelled(&outputs, "infra/outputs.tf", "output", name);
    assert_eq!(
        source(attr(&output("cognito_client_ids").body, "output", "value")),
        "module.identity.client_ids"
    );
    let secrets = &output("cognito_client_secrets").body;
    assert_eq!(
        source(attr(secrets, "output", "value")),
        "module.identity.client_secrets"
    );
    assert!(
        boolean(
            attr(secrets, "cognito_client_secrets", "sensitive"),
            "sensitive"
        ),
        "infra/outputs.tf: cognito_client_secrets must be sensitive"
    );
}

#[test]
fn the_task_definition_sets_jwt_mode_explicitly() {
    let service = parse(SERVICE_TF);
    let service_locals = locals_of(&service);
    let env = object(
        local(&service_locals, SERVICE_TF, "environment"),
        "local.environment",
    );
    let mode = env
        .iter()
        .find(|(k, _)| k == "APP__AUTH__MODE")
        .map(|(_, v)| string(v, "APP__AUTH__MODE"));
    assert_eq!(
        mode.as_deref(),
        Some("jwt"),
        "{SERVICE_TF}: the task definition must say APP__AUTH__MODE=jwt, not rely on the default"
    );
}

// ---------------------------------------------------------------------------------------
// The partner map: the app clients grouped by partner, in the task definition
// ---------------------------------------------------------------------------------------

const IDENTITY_TF: &str = "infra/modules/identity/main.tf";
const IDENTITY_OUTPUTS_TF: &str = "infra/modules/identity/outputs.tf";

/// The Terraform functions the partner map's expressions call, for hcl's evaluator:
/// `join(sep, list)` and `coalesce(a, b, …)` (the first argument neither null nor "").
fn terraform_functions(ctx: &mut Context) {
    fn join(args: FuncArgs) -> Result<Value, String> {
        let sep = args[0].as_str().ok_or("join: separator")?;
        let items: Vec<&str> = args[1]
            .as_array()
            .ok_or("join: list")?
            .iter()
            .map(|v| v.as_str().ok_or("join: a list of strings"))
            .collect::<Result<_, _>>()?;
        Ok(Value::from(items.join(sep)))
    }
    fn coalesce(args: FuncArgs) -> Result<Value, String> {
        args.iter()
            .find(|v| !v.is_null() && v.as_str() != Some(""))
            .cloned()
            .ok_or_else(|| "coalesce: no non-null, non-empty argument".to_owned())
    }
    ctx.declare_func(
        "join",
        FuncDef::builder()
            .param(ParamType::String)
            .param(ParamType::array_of(ParamType::String))
            .build(join),
    );
    ctx.declare_func(
        "coalesce",
        FuncDef::builder()
            .variadic_param(ParamType::Any)
            .build(coalesce),
    );
}

fn evaluate(expr: &Expression, ctx: &Context, what: &str) -> Value {
    expr.evaluate(ctx)
        .unwrap_or_else(|e| panic!("{what}: `{}` does not evaluate: {e}", source(expr)))
}

/// A `cognito_clients` map as Terraform types it (`map(object({ scopes, partner =
/// optional(string) }))`): an entry that leaves `partner` out has it null.
fn typed_clients(expr: &Expression, what: &str) -> hcl::Map<String, Value> {
    let Value::Object(clients) = evaluate(expr, &Context::new(), what) else {
        panic!("{what}: cognito_clients is not a map");
    };
    clients
        .into_iter()
        .map(|(name, entry)| {
            let Value::Object(mut entry) = entry else {
                panic!("{what}: client {name} is not {{ scopes, partner }}");
            };
            entry.entry("partner".to_owned()).or_insert(Value::Null);
            (name, Value::Object(entry))
        })
        .collect()
}

/// The partner a client acts for, as the variable's description promises: the entry's
/// `partner`, else the client's name.
fn expected_partner(name: &str, entry: &Value) -> String {
    entry
        .as_object()
        .and_then(|e| e.get("partner"))
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or(name)
        .to_owned()
}

/// What Terraform puts in the task definition's `APP__AUTH__PARTNERS` for `clients`
/// whose Cognito app clients got the ids `ids`: the identity module's `local.partner_of`,
/// its `partner_client_ids` output and the service module's environment entry, each
/// evaluated from the HCL as written.
fn rendered_partner_map(
    clients: &hcl::Map<String, Value>,
    ids: &BTreeMap<String, String>,
) -> String {
    let mut ctx = Context::new();
    terraform_functions(&mut ctx);

    let identity = parse(IDENTITY_TF);
    let partner_of_expr = local(&locals_of(&identity), IDENTITY_TF, "partner_of").clone();
    let mut vars = hcl::Map::new();
    vars.insert("clients".to_owned(), Value::Object(clients.clone()));
    ctx.declare_var("var", Value::Object(vars));
    let partner_of = evaluate(&partner_of_expr, &ctx, IDENTITY_TF);

    let outputs = parse(IDENTITY_OUTPUTS_TF);
    let output = labelled(
        &outputs,
        IDENTITY_OUTPUTS_TF,
        "output",
        "partner_client_ids",
    );
    let grouped_expr = attr(&output.body, "output.partner_client_ids", "value");
    let mut locals = hcl::Map::new();
    locals.insert("partner_of".to_owned(), partner_of);
    ctx.declare_var("local", Value::Object(locals));
    let created: hcl::Map<String, Value> = ids
        .iter()
        .map(|(name, id)| {
            let mut client = hcl::Map::new();
            client.insert("id".to_owned(), Value::from(id.as_str()));
            (name.clone(), Value::Object(client))
        })
        .collect();
    let mut this = hcl::Map::new();
    this.insert("this".to_owned(), Value::Object(created));
    ctx.declare_var("aws_cognito_user_pool_client", Value::Object(this));
    let grouped = evaluate(grouped_expr, &ctx, IDENTITY_OUTPUTS_TF);

    let service_locals = locals_of(&parse(SERVICE_TF));
    let env = object(
        local(&service_locals, SERVICE_TF, "environment"),
        "local.environment",
    );
    let (_, partners_expr) = env
        .iter()
        .find(|(k, _)| k == "APP__AUTH__PARTNERS")
        .unwrap_or_else(|| {
            panic!("{SERVICE_TF}: the task definition does not set APP__AUTH__PARTNERS")
        });
    let mut app_environment = hcl::Map::new();
    app_environment.insert("partner_client_ids".to_owned(), grouped);
    let mut vars = hcl::Map::new();
    vars.insert("app_environment".to_owned(), Value::Object(app_environment));
    ctx.declare_var("var", Value::Object(vars));
    match evaluate(partners_expr, &ctx, SERVICE_TF) {
        Value::String(s) => s,
        other => panic!("{SERVICE_TF}: APP__AUTH__PARTNERS evaluates to {other:?}, not a string"),
    }
}

/// Made-up Cognito client ids (26 lower-case letters and digits, as Cognito's), one per
/// client name.
fn sample_client_ids(clients: &hcl::Map<String, Value>) -> BTreeMap<String, String> {
    clients
        .keys()
        .enumerate()
        .map(|(i, name)| (name.clone(), format!("4example{i:018}")))
        .collect()
}

/// The service reads which partner each client acts for from `APP__AUTH__PARTNERS`;
/// Terraform builds it from `cognito_clients` and the app clients it creates. Evaluated
/// here from the HCL for the default clients, every environment's own list and a secret
/// rotation (two clients of one partner), it parses with `PartnerMap::parse` and maps
/// every client id to the partner its entry names.
#[test]
fn the_task_definition_carries_the_partner_map_built_from_cognito_clients() {
    // Wiring: the root passes the identity module's grouping to the service module.
    let root_file = "infra/main.tf";
    let root = parse(root_file);
    let service_module = labelled(&root, root_file, "module", "service");
    let app_env = attr(&service_module.body, "module.service", "app_environment");
    assert_eq!(
        source(field(
            app_env,
            "module.service.app_environment",
            "partner_client_ids"
        )),
        "module.identity.partner_client_ids",
        "{root_file}: the service's partner map must be the identity module's clients grouped by partner"
    );
    let outputs = parse("infra/outputs.tf");
    let output = labelled(&outputs, "infra/outputs.tf", "output", "cognito_partners");
    assert_eq!(
        source(attr(&output.body, "output.cognito_partners", "value")),
        "module.identity.partner_client_ids",
        "infra/outputs.tf: cognito_partners (docs/deploy.md lists the partners with it)"
    );
    let identity = parse(IDENTITY_TF);
    let clients = resources_of_type(&identity, "aws_cognito_user_pool_client");
    assert_eq!(
        source(attr(
            &clients[0].body,
            "aws_cognito_user_pool_client",
            "for_each"
        )),
        "var.clients",
        "{IDENTITY_TF}: one app client per entry of var.clients"
    );

    let vars = parse("infra/variables.tf");
    let var = labelled(&vars, "infra/variables.tf", "variable", "cognito_clients");
    let mut cases = vec![(
        "infra/variables.tf (default)".to_owned(),
        attr(&var.body, "cognito_clients", "default").clone(),
    )];
    for env in ENVS {
        if let Some(clients) = tfvars(env).get("cognito_clients") {
            cases.push((format!("infra/terraform.{env}.tfvars"), clients.clone()));
        }
    }
    // docs/deploy.md section 7: a second client for the same partner while its secret
    // rotates.
    let rotation = hcl::from_str::<Body>(
        r#"cognito_clients = {
             acme     = { scopes = ["shows.write"] }
             acme-new = { scopes = ["shows.write"], partner = "acme" }
             app      = { scopes = ["shows.read"] }
             platform = { scopes = ["shows.read", "shows.write", "shows.admin"] }
           }"#,
    )
    .expect("the rotation sample parses");
    cases.push((
        "a secret rotation".to_owned(),
        attr(&rotation, "sample", "cognito_clients").clone(),
    ));

    for (what, expr) in &cases {
        let clients = typed_clients(expr, what);
        let ids = sample_client_ids(&clients);
        let text = rendered_partner_map(&clients, &ids);
        let map = PartnerMap::parse(&text).unwrap_or_else(|e| {
            panic!("{SERVICE_TF} ({what}): APP__AUTH__PARTNERS={text:?} does not parse: {e}")
        });
        let mut expected_partners = BTreeSet::new();
        for (name, entry) in &clients {
            let expected = expected_partner(name, entry);
            let got = map
                .partner_of(&ids[name])
                .unwrap_or_else(|e| panic!("{what}: client {name}: {e}"));
            assert_eq!(
                got.as_str(),
                expected,
                "{SERVICE_TF} ({what}): APP__AUTH__PARTNERS={text:?} maps client {name} to {got}, its entry says {expected}"
            );
            expected_partners.insert(expected);
        }
        let named: BTreeSet<String> = map.partners().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            named, expected_partners,
            "{SERVICE_TF} ({what}): APP__AUTH__PARTNERS={text:?} names other partners than cognito_clients"
        );
    }

    // The rotation case really has two clients of one partner.
    let clients = typed_clients(&cases.last().expect("the rotation case").1, "rotation");
    let ids = sample_client_ids(&clients);
    let map = PartnerMap::parse(&rendered_partner_map(&clients, &ids)).expect("parsed above");
    assert_eq!(
        map.partner_of(&ids["acme"]).expect("a partner"),
        map.partner_of(&ids["acme-new"]).expect("a partner"),
        "{SERVICE_TF}: both clients of a rotation must act for the same partner"
    );
}

/// `^[CLASS]{1,N}$` as the variables' validations write a partner name: the characters
/// of the class (ranges and single characters) and N.
fn partner_regex(regex: &str, what: &str) -> (BTreeSet<char>, usize) {
    let inner = regex
        .strip_prefix("^[")
        .and_then(|r| r.strip_suffix("}$"))
        .unwrap_or_else(|| panic!("{what}: partner regex {regex:?} is not ^[…]{{1,N}}$"));
    let (class, counts) = inner
        .split_once("]{1,")
        .unwrap_or_else(|| panic!("{what}: partner regex {regex:?} is not ^[…]{{1,N}}$"));
    let max: usize = counts
        .parse()
        .unwrap_or_else(|_| panic!("{what}: partner regex {regex:?}: {counts:?} is not a count"));
    let chars: Vec<char> = class.chars().collect();
    let mut set = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        // A `-` between two characters is a range; first or last, it is itself.
        if i + 2 < chars.len() && chars[i + 1] == '-' {
            set.extend(chars[i]..=chars[i + 2]);
            i += 3;
        } else {
            set.insert(chars[i]);
            i += 1;
        }
    }
    (set, max)
}

/// Terraform refuses, at plan time, exactly the partner names the service would refuse
/// at start-up (`Partner::parse`), in the root variable and in the identity module; and
/// the root variable admits exactly the scopes of `auth::Scope::ALL`.
#[test]
fn terraform_validates_partner_names_and_scopes_as_the_service_does() {
    for (file, name) in [
        ("infra/variables.tf", "cognito_clients"),
        ("infra/modules/identity/variables.tf", "clients"),
    ] {
        let body = parse(file);
        let var = labelled(&body, file, "variable", name);
        let conditions: Vec<String> = nested(&var.body, "validation")
            .iter()
            .map(|v| source(attr(&v.body, "validation", "condition")))
            .collect();
        let partner_check = conditions
            .iter()
            .find(|c| c.contains("c.partner"))
            .unwrap_or_else(|| {
                panic!("{file}: variable {name} has no validation of partner names")
            });
        let regex = partner_check
            .split("regex(\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| {
                panic!("{file}: the partner validation has no regex(\"…\"): {partner_check}")
            });
        let (class, max) = partner_regex(regex, file);
        assert_eq!(
            max, MAX_PARTNER_LEN,
            "{file}: partner names may be {max} long, the service's Partner::parse {MAX_PARTNER_LEN}"
        );
        for b in 0u8..=127 {
            let c = char::from(b);
            assert_eq!(
                class.contains(&c),
                Partner::parse(c.to_string()).is_ok(),
                "{file}: the partner regex {regex:?} and Partner::parse disagree on {c:?}"
            );
        }
        assert!(
            partner_check.contains(&format!("coalesce(c.partner, {})", "name")),
            "{file}: a client without a partner acts for its own name, which must be checked too: {partner_check}"
        );

        if name == "cognito_clients" {
            let scope_check = conditions
                .iter()
                .find(|c| c.contains("c.scopes"))
                .unwrap_or_else(|| panic!("{file}: variable {name} has no validation of scopes"));
            let named: BTreeSet<&str> = scope_check
                .split('"')
                .filter(|s| s.starts_with("shows."))
                .collect();
            assert_eq!(
                named,
                scope_names(),
                "{file}: the scopes cognito_clients admits differ from auth::Scope::ALL"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Egress: AWS through endpoints, only the issuer's JWKS through NAT
// ---------------------------------------------------------------------------------------

#[test]
fn tasks_reach_aws_through_vpc_endpoints_and_only_the_jwks_through_nat() {
    let service = parse(SERVICE_TF);
    let mut open_to_all = Vec::new();
    let mut destinations = BTreeSet::new();
    for rule in resources_of_type(&service, "aws_vpc_security_group_egress_rule") {
        let name = rule.labels[1].as_str();
        let what = format!("{SERVICE_TF}: aws_vpc_security_group_egress_rule.{name}");
        let attrs: BTreeMap<String, String> = rule
            .body
            .attributes()
            .map(|a| (a.key.as_str().to_owned(), source(&a.expr)))
            .collect();
        if attrs["security_group_id"] != "aws_security_group.tasks.id" {
            continue;
        }
        assert_eq!(attrs["ip_protocol"], "\"tcp\"", "{what}");
        assert_eq!(
            (attrs["from_port"].as_str(), attrs["to_port"].as_str()),
            ("443", "443"),
            "{what}: HTTPS only"
        );
        if let Some(cidr) = attrs.get("cidr_ipv4") {
            assert_eq!(cidr, "\"0.0.0.0/0\"", "{what}");
            open_to_all.push(name.to_owned());
        } else if let Some(group) = attrs.get("referenced_security_group_id") {
            destinations.insert(group.clone());
        } else if let Some(list) = attrs.get("prefix_list_id") {
            destinations.insert(list.clone());
            assert_eq!(
                attrs.get("for_each").map(|f| f.split_whitespace().collect::<String>()),
                Some("{dynamodb=var.endpoints.dynamodb_prefix_list_ids3=var.endpoints.s3_prefix_list_id}".to_owned()),
                "{what}: the gateway endpoints of DynamoDB and S3"
            );
        } else {
            panic!("{what}: egress to an unnamed destination");
        }
    }
    assert_eq!(
        open_to_all,
        ["tasks_to_jwks"],
        "{SERVICE_TF}: exactly one egress rule may leave for any address (the JWKS, through NAT)"
    );
    assert!(
        destinations.contains("var.endpoints.security_group_id")
            && destinations.contains("each.value"),
        "{SERVICE_TF}: tasks must reach the interface endpoints' group and the gateway prefix lists ({destinations:?})"
    );

    // The interface endpoints are the ones the tasks call; the gateway endpoints route
    // from every private subnet.
    let file = "infra/modules/network/main.tf";
    let network = parse(file);
    let services: BTreeSet<String> = strings(
        local(&locals_of(&network), file, "interface_endpoints"),
        "local.interface_endpoints",
    )
    .into_iter()
    .collect();
    assert_eq!(
        services,
        ["ecr.api", "ecr.dkr", "logs"].map(String::from).into(),
        "{file}: the tasks call ECR's API, its registry and CloudWatch Logs"
    );
    for gateway in ["dynamodb", "s3"] {
        let endpoint = block(&network, file, "resource", "aws_vpc_endpoint", gateway);
        let what = format!("aws_vpc_endpoint.{gateway}");
        assert_eq!(
            string(attr(&endpoint.body, &what, "vpc_endpoint_type"), &what),
            "Gateway"
        );
        assert_eq!(
            source(attr(&endpoint.body, &what, "route_table_ids")),
            "aws_route_table.private[*].id"
        );
    }
    let interface = block(&network, file, "resource", "aws_vpc_endpoint", "interface");
    let what = "aws_vpc_endpoint.interface";
    assert!(
        boolean(attr(&interface.body, what, "private_dns_enabled"), what),
        "{file}: private DNS"
    );
    assert_eq!(
        source(attr(&interface.body, what, "security_group_ids"))
            .split_whitespace()
            .collect::<String>(),
        "[aws_security_group.endpoints.id]"
    );
    let readme = read("infra/README.md");
    assert!(
        readme.contains("JWKS") && readme.contains("NAT"),
        "infra/README.md must say what still needs the NAT (the JWKS) and why"
    );
}

// ---------------------------------------------------------------------------------------
// Keep-alive: the ALB closes idle connections before the service does
// ---------------------------------------------------------------------------------------

/// The service's keep-alive idle timeout as deployed: the task definition's value, or
/// else the default in config's SETTINGS table.
fn service_idle_timeout_seconds() -> u64 {
    const VAR: &str = "APP__SERVER__IDLETIMEOUTSECONDS";
    let service = parse(SERVICE_TF);
    let service_locals = locals_of(&service);
    let env = object(
        local(&service_locals, SERVICE_TF, "environment"),
        "local.environment",
    );
    if let Some((_, value)) = env.iter().find(|(k, _)| k == VAR) {
        return string(value, VAR)
            .parse()
            .unwrap_or_else(|e| panic!("{SERVICE_TF}: {VAR} is not a number of seconds: {e}"));
    }
    let setting = show_service::config::SETTINGS
        .iter()
        .find(|s| s.env == VAR)
        .unwrap_or_else(|| {
            panic!(
                "config::SETTINGS has no {VAR}: the service has no keep-alive idle timeout \
                 to keep the ALB's idle_timeout below"
            )
        });
    setting.default.trim().parse().unwrap_or_else(|e| {
        panic!(
            "config::SETTINGS: the default of {VAR} ({:?}) is not a number of seconds: {e}",
            setting.default
        )
    })
}

#[test]
fn the_albs_idle_timeout_is_below_the_services_keep_alive_timeout() {
    let service = parse(SERVICE_TF);
    let locals = locals_of(&service);
    let alb = block(&service, SERVICE_TF, "resource", "aws_lb", "this");
    assert_eq!(
        source(attr(&alb.body, "aws_lb.this", "idle_timeout")),
        "local.alb_idle_timeout_seconds",
        "{SERVICE_TF}: the ALB's idle_timeout"
    );
    let alb_idle = service_number(&locals, "alb_idle_timeout_seconds");
    let service_idle = service_idle_timeout_seconds();
    assert!(
        alb_idle < service_idle,
        "{SERVICE_TF}: the ALB's idle timeout ({alb_idle} s) must be below the service's \
         keep-alive idle timeout ({service_idle} s), or the ALB may reuse a connection the \
         service is closing and answer 502"
    );
    // API Gateway's integration gives up after 29 s: a shorter ALB idle timeout would cut
    // a slow answer the gateway still waits for.
    assert!(
        alb_idle > 30,
        "{SERVICE_TF}: the ALB's idle timeout must outlast API Gateway's 29 s integration timeout"
    );
}

// ---------------------------------------------------------------------------------------
// The /docs pages
// ---------------------------------------------------------------------------------------

#[test]
fn api_gateway_routes_the_docs_pages_and_their_document_without_the_authorizer() {
    use show_service::http::docs;
    let api = parse(API_TF);
    let locals = locals_of(&api);
    let routed: BTreeSet<String> = strings(local(&locals, API_TF, "docs_routes"), "docs_routes")
        .iter()
        .map(|key| {
            let (method, path) = split_route_key(key);
            assert_eq!(method, "GET", "{API_TF}: `{key}`: the pages are GET only");
            normalise(path)
        })
        .collect();
    let served: BTreeSet<String> = docs::ROUTES.iter().map(|p| normalise(p)).collect();
    assert_eq!(
        routed, served,
        "{API_TF}: local.docs_routes differ from http::docs::ROUTES"
    );

    let what = "aws_apigatewayv2_route.docs";
    let route = block(&api, API_TF, "resource", "aws_apigatewayv2_route", "docs");
    assert_eq!(
        source(attr(&route.body, what, "for_each")),
        "toset(local.docs_routes)",
        "{what}: for_each"
    );
    assert_eq!(
        string(attr(&route.body, what, "authorization_type"), what),
        "NONE",
        "{what}: the pages are public"
    );
    assert_eq!(
        string(attr(&route.body, what, "target"), what),
        "integrations/${aws_apigatewayv2_integration.service.id}",
        "{what}: the pages are served by the service"
    );

    // The page renders /openapi.json: it must be routed too, without a token.
    let public = strings(local(&locals, API_TF, "public_routes"), "public_routes");
    assert!(
        public.iter().any(|k| k == "GET /openapi.json"),
        "{API_TF}: /docs needs GET /openapi.json among public_routes"
    );
}

/// Every `.tf` file under `infra/` (modules included), as paths relative to the repository.
fn terraform_files() -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("infra/ is readable") {
            let entry = entry.expect("directory entry");
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && !name.starts_with('.') {
                walk(&path, root, out);
            } else if name.ends_with(".tf") && !name.starts_with("zz_") {
                let rel = path.strip_prefix(root).expect("under the repository");
                out.push(rel.display().to_string());
            }
        }
    }
    let root = repo_path("");
    let mut out = Vec::new();
    walk(&repo_path("infra"), &root, &mut out);
    out.sort();
    out
}

/// The deployer's policy (docs/deploy.md) lets Terraform create every resource type
/// `infra/` declares, and grants no service-wide wildcard: each type is listed below with
/// the action that creates it, so a new type fails here until the policy covers it.
#[test]
fn the_deployer_policy_can_create_every_resource_type_in_infra() {
    const CREATED_BY: &[(&str, &str)] = &[
        ("aws_apigatewayv2_api", "apigateway:POST"),
        ("aws_apigatewayv2_authorizer", "apigateway:POST"),
        ("aws_apigatewayv2_integration", "apigateway:POST"),
        ("aws_apigatewayv2_route", "apigateway:POST"),
        ("aws_apigatewayv2_stage", "apigateway:POST"),
        ("aws_apigatewayv2_vpc_link", "apigateway:POST"),
        (
            "aws_appautoscaling_policy",
            "application-autoscaling:PutScalingPolicy",
        ),
        (
            "aws_appautoscaling_target",
            "application-autoscaling:RegisterScalableTarget",
        ),
        ("aws_cloudwatch_dashboard", "cloudwatch:PutDashboard"),
        ("aws_cloudwatch_log_group", "logs:CreateLogGroup"),
        ("aws_cloudwatch_metric_alarm", "cloudwatch:PutMetricAlarm"),
        ("aws_codebuild_project", "codebuild:CreateProject"),
        ("aws_codebuild_webhook", "codebuild:CreateWebhook"),
        (
            "aws_cognito_resource_server",
            "cognito-idp:CreateResourceServer",
        ),
        ("aws_cognito_user_pool", "cognito-idp:CreateUserPool"),
        (
            "aws_cognito_user_pool_client",
            "cognito-idp:CreateUserPoolClient",
        ),
        (
            "aws_cognito_user_pool_domain",
            "cognito-idp:CreateUserPoolDomain",
        ),
        (
            "aws_default_security_group",
            "ec2:RevokeSecurityGroupIngress",
        ),
        ("aws_dynamodb_table", "dynamodb:CreateTable"),
        ("aws_ecr_lifecycle_policy", "ecr:PutLifecyclePolicy"),
        ("aws_ecr_repository", "ecr:CreateRepository"),
        ("aws_ecr_repository_policy", "ecr:SetRepositoryPolicy"),
        ("aws_ecs_cluster", "ecs:CreateCluster"),
        ("aws_ecs_service", "ecs:CreateService"),
        ("aws_ecs_task_definition", "ecs:RegisterTaskDefinition"),
        ("aws_eip", "ec2:AllocateAddress"),
        ("aws_flow_log", "ec2:CreateFlowLogs"),
        ("aws_iam_role", "iam:CreateRole"),
        ("aws_iam_role_policy", "iam:PutRolePolicy"),
        ("aws_internet_gateway", "ec2:CreateInternetGateway"),
        ("aws_kms_alias", "kms:CreateAlias"),
        ("aws_kms_key", "kms:CreateKey"),
        ("aws_lb", "elasticloadbalancing:CreateLoadBalancer"),
        ("aws_lb_listener", "elasticloadbalancing:CreateListener"),
        (
            "aws_lb_target_group",
            "elasticloadbalancing:CreateTargetGroup",
        ),
        ("aws_nat_gateway", "ec2:CreateNatGateway"),
        ("aws_route", "ec2:CreateRoute"),
        ("aws_route_table", "ec2:CreateRouteTable"),
        ("aws_route_table_association", "ec2:AssociateRouteTable"),
        ("aws_security_group", "ec2:CreateSecurityGroup"),
        ("aws_sns_topic", "sns:CreateTopic"),
        ("aws_sns_topic_policy", "sns:SetTopicAttributes"),
        ("aws_sns_topic_subscription", "sns:Subscribe"),
        ("aws_subnet", "ec2:CreateSubnet"),
        ("aws_vpc", "ec2:CreateVpc"),
        ("aws_vpc_endpoint", "ec2:CreateVpcEndpoint"),
        (
            "aws_vpc_security_group_egress_rule",
            "ec2:AuthorizeSecurityGroupEgress",
        ),
        (
            "aws_vpc_security_group_ingress_rule",
            "ec2:AuthorizeSecurityGroupIngress",
        ),
    ];
    let policy: serde_json::Value =
        serde_json::from_str(&read("infra/deployer-policy.json")).expect("deployer policy JSON");
    let statements = policy["Statement"].as_array().expect("Statement");
    let mut allowed = BTreeSet::new();
    for s in statements {
        assert_eq!(s["Effect"], "Allow", "{s}");
        for a in s["Action"].as_array().expect("Action list") {
            let a = a.as_str().unwrap();
            let (service, verb) = a.split_once(':').unwrap_or(("", a));
            assert!(
                !service.is_empty() && verb != "*",
                "{a}: no wildcard for a whole service"
            );
            if a == "iam:PassRole" {
                assert!(
                    s["Condition"]["StringEquals"]["iam:PassedToService"].is_array(),
                    "iam:PassRole only to named services: {s}"
                );
            }
            allowed.insert(a.to_string());
        }
    }
    let covers = |action: &str| {
        allowed.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => action.starts_with(prefix),
            None => a == action,
        })
    };
    let mut seen = BTreeSet::new();
    for file in terraform_files() {
        for line in read(&file).lines() {
            let Some(rest) = line.trim_start().strip_prefix("resource \"") else {
                continue;
            };
            let ty = rest.split('"').next().unwrap();
            let Some((_, action)) = CREATED_BY.iter().find(|(t, _)| *t == ty) else {
                panic!(
                    "{file}: resource type {ty} is not in this test's table: add it with the \
                     action that creates it, and that action to infra/deployer-policy.json"
                );
            };
            assert!(
                covers(action),
                "{file}: {ty} needs {action} in infra/deployer-policy.json"
            );
            seen.insert(ty.to_string());
        }
    }
    assert!(
        seen.contains("aws_dynamodb_table") && seen.len() > 20,
        "{seen:?}"
    );
    // Terraform reads the state from S3 and the table it takes over from the Go service.
    for action in ["s3:GetObject", "s3:PutObject", "dynamodb:DescribeTable"] {
        assert!(covers(action), "{action}");
    }
    let runbook = read("docs/deploy.md");
    assert!(runbook.contains("infra/deployer-policy.json"));
}

// ---------------------------------------------------------------------------------------
// The metrics listener: inside the VPC only, never behind the ALB or API Gateway
// ---------------------------------------------------------------------------------------

#[test]
fn the_metrics_listener_is_reachable_only_from_inside_the_vpc() {
    let service = parse(SERVICE_TF);
    let locals = locals_of(&service);
    let port = service_number(&locals, "container_port");
    let metrics_port = service_number(&locals, "metrics_port");
    assert_ne!(
        port, metrics_port,
        "{SERVICE_TF}: the metrics listener has its own port"
    );

    // The service, configured by the task definition, listens there on every interface
    // of the task (the security group decides who reaches it).
    let env_map = object(
        local(&locals, SERVICE_TF, "environment"),
        "local.environment",
    );
    let vars: Vec<(String, String)> = env_map
        .iter()
        .map(|(k, v)| (k.clone(), sample_value(v, "prod", port)))
        .collect();
    let settings = Settings::load(None, vars.clone())
        .unwrap_or_else(|e| panic!("{SERVICE_TF}: the service refuses {vars:?}: {e}"));
    assert_eq!(
        u64::from(settings.metrics.port),
        metrics_port,
        "{SERVICE_TF}: APP__METRICS__PORT"
    );
    assert!(
        settings.metrics.host.is_unspecified(),
        "{SERVICE_TF}: APP__METRICS__HOST must be 0.0.0.0 for anything in the VPC to reach it"
    );
    assert!(
        !settings.metrics.emf_interval.is_zero(),
        "{SERVICE_TF}: EMF must be on in AWS: the alarms on the service's metrics depend on it"
    );

    // Nothing routes to it: the target group, the ALB listener and its ingress rules use
    // other ports, and API Gateway only reaches the ALB's listener.
    let tg = block(
        &service,
        SERVICE_TF,
        "resource",
        "aws_lb_target_group",
        "this",
    );
    assert_eq!(
        source(attr(&tg.body, "target group", "port")),
        "local.container_port"
    );
    let listener = block(&service, SERVICE_TF, "resource", "aws_lb_listener", "this");
    assert_eq!(
        source(attr(&listener.body, "listener", "port")),
        "local.listener_port"
    );
    for rule in resources_of_type(&service, "aws_vpc_security_group_egress_rule") {
        let attrs: BTreeMap<String, String> = rule
            .body
            .attributes()
            .map(|a| (a.key.as_str().to_owned(), source(&a.expr)))
            .collect();
        if attrs["security_group_id"] == "aws_security_group.alb.id" {
            assert_ne!(
                attrs["from_port"], "local.metrics_port",
                "{SERVICE_TF}: the ALB must not reach the metrics port"
            );
        }
    }
    let api = parse(API_TF);
    let integration = block(
        &api,
        API_TF,
        "resource",
        "aws_apigatewayv2_integration",
        "service",
    );
    assert_eq!(
        source(attr(&integration.body, "integration", "integration_uri")),
        "var.alb_listener_arn",
        "{API_TF}: API Gateway reaches the service only through the ALB's listener"
    );
    assert!(
        !read(API_TF).contains("/metrics"),
        "{API_TF}: no API route may lead to /metrics"
    );

    let root = parse("infra/main.tf");
    let module = labelled(&root, "infra/main.tf", "module", "service");
    assert_eq!(
        source(attr(&module.body, "module.service", "vpc_cidr_block")),
        "module.network.vpc_cidr_block",
        "infra/main.tf: the metrics port admits the VPC's own CIDR"
    );
}

#[test]
fn every_metric_the_service_emits_is_documented() {
    let readme = read("README.md");
    for m in METRICS {
        assert!(
            readme.contains(&format!("`{}`", m.name)),
            "README.md does not document the metric {} (telemetry::table::METRICS)",
            m.name
        );
    }
}
