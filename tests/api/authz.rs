//! Object-level authorization, in one table ([`MATRIX`]): every role (no token, a reader,
//! partner a, partner b, an admin) × every protected route and method × every kind of
//! object (partner a's show, partner b's, an unowned one, a new slug) → the status, run
//! against the real binary (on SQLite; on DynamoDB with `SHOW_TEST_STORE=dynamodb`).
//! Partner a's show is partner a's own and partner b's "another partner's", and the other
//! way round for partner b's. The routes come from the served OpenAPI document and from
//! `http::API_ROUTES`: a route without rows fails the test. After every refused write,
//! nothing changed: the show reads the same and the catalogue's ETag still matches.
//! The other tests here are the rule's 403s and the admin route's answers one by one.

use crate::helpers::{BIN, TestApp, assert_envelope, count_logged, dynamodb_env, store_kind};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Local-mode clients: a reader, two clients of partner `acme`, one of `globex`, an admin.
const CLIENTS: &str = "reader:readersecret:shows.read,\
    acme-feed:acmesecret1:shows.read shows.write,\
    acme-feed-2:acmesecret2:shows.read shows.write,\
    globex-feed:globexsecret:shows.read shows.write,\
    platform:platformsecret:shows.read shows.write shows.admin";
const PARTNERS: &str = "acme=acme-feed|acme-feed-2,globex=globex-feed";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    NoToken,
    Reader,
    /// `acme-feed`, of partner `acme`.
    PartnerA,
    /// `globex-feed`, of partner `globex`.
    PartnerB,
    /// `platform`: read, write and admin.
    Admin,
}

const ROLES: [Role; 5] = [
    Role::NoToken,
    Role::Reader,
    Role::PartnerA,
    Role::PartnerB,
    Role::Admin,
];

impl Role {
    fn credentials(self) -> Option<(&'static str, &'static str)> {
        match self {
            Role::NoToken => None,
            Role::Reader => Some(("reader", "readersecret")),
            Role::PartnerA => Some(("acme-feed", "acmesecret1")),
            Role::PartnerB => Some(("globex-feed", "globexsecret")),
            Role::Admin => Some(("platform", "platformsecret")),
        }
    }

    /// The owner of a slug this role creates.
    fn partner(self) -> Option<&'static str> {
        match self {
            Role::PartnerA => Some("acme"),
            Role::PartnerB => Some("globex"),
            Role::Admin => Some("platform"),
            Role::NoToken | Role::Reader => None,
        }
    }
}

/// The objects of a row, in the order of its statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    /// A show partner a (`acme`) created.
    OfA,
    /// A show partner b (`globex`) created.
    OfB,
    /// A show with no owner (`show-service import` without `--owner`).
    Unowned,
    /// A slug nobody has.
    New,
}

const OBJECTS: [Object; 4] = [Object::OfA, Object::OfB, Object::Unowned, Object::New];

impl Object {
    fn tag(self) -> &'static str {
        match self {
            Object::OfA => "a",
            Object::OfB => "b",
            Object::Unowned => "u",
            Object::New => "n",
        }
    }

    fn owner(self) -> Value {
        match self {
            Object::OfA => json!("acme"),
            Object::OfB => json!("globex"),
            Object::Unowned | Object::New => Value::Null,
        }
    }
}

use Role::*;

/// Method, route (as the OpenAPI document spells it), role, and the status for
/// [a's show, b's show, an unowned show, a new slug]. `POST /v1/admin/owners` assigns the
/// show to `globex`.
#[rustfmt::skip]
const MATRIX: &[(&str, &str, Role, [u16; 4])] = &[
    ("GET",    "/v1/shows",         NoToken,  [401, 401, 401, 401]),
    ("GET",    "/v1/shows",         Reader,   [200, 200, 200, 200]),
    ("GET",    "/v1/shows",         PartnerA, [200, 200, 200, 200]),
    ("GET",    "/v1/shows",         PartnerB, [200, 200, 200, 200]),
    ("GET",    "/v1/shows",         Admin,    [200, 200, 200, 200]),
    // Without `since` the route answers its own 400: the scope check passed.
    ("GET",    "/v1/shows/changes", NoToken,  [401, 401, 401, 401]),
    ("GET",    "/v1/shows/changes", Reader,   [400, 400, 400, 400]),
    ("GET",    "/v1/shows/changes", PartnerA, [400, 400, 400, 400]),
    ("GET",    "/v1/shows/changes", PartnerB, [400, 400, 400, 400]),
    ("GET",    "/v1/shows/changes", Admin,    [400, 400, 400, 400]),
    ("POST",   "/v1/shows",         NoToken,  [401, 401, 401, 401]),
    ("POST",   "/v1/shows",         Reader,   [403, 403, 403, 403]),
    ("POST",   "/v1/shows",         PartnerA, [201, 403, 403, 201]),
    ("POST",   "/v1/shows",         PartnerB, [403, 201, 403, 201]),
    ("POST",   "/v1/shows",         Admin,    [201, 201, 201, 201]),
    ("GET",    "/v1/shows/{slug}",  NoToken,  [401, 401, 401, 401]),
    ("GET",    "/v1/shows/{slug}",  Reader,   [200, 200, 200, 404]),
    ("GET",    "/v1/shows/{slug}",  PartnerA, [200, 200, 200, 404]),
    ("GET",    "/v1/shows/{slug}",  PartnerB, [200, 200, 200, 404]),
    ("GET",    "/v1/shows/{slug}",  Admin,    [200, 200, 200, 404]),
    ("DELETE", "/v1/shows/{slug}",  NoToken,  [401, 401, 401, 401]),
    ("DELETE", "/v1/shows/{slug}",  Reader,   [403, 403, 403, 403]),
    ("DELETE", "/v1/shows/{slug}",  PartnerA, [204, 403, 403, 404]),
    ("DELETE", "/v1/shows/{slug}",  PartnerB, [403, 204, 403, 404]),
    ("DELETE", "/v1/shows/{slug}",  Admin,    [204, 204, 204, 404]),
    ("GET",    "/shows",            NoToken,  [401, 401, 401, 401]),
    ("GET",    "/shows",            Reader,   [200, 200, 200, 200]),
    ("GET",    "/shows",            PartnerA, [200, 200, 200, 200]),
    ("GET",    "/shows",            PartnerB, [200, 200, 200, 200]),
    ("GET",    "/shows",            Admin,    [200, 200, 200, 200]),
    ("POST",   "/shows",            NoToken,  [401, 401, 401, 401]),
    ("POST",   "/shows",            Reader,   [403, 403, 403, 403]),
    ("POST",   "/shows",            PartnerA, [201, 403, 403, 201]),
    ("POST",   "/shows",            PartnerB, [403, 201, 403, 201]),
    ("POST",   "/shows",            Admin,    [201, 201, 201, 201]),
    ("GET",    "/shows/{slug}",     NoToken,  [401, 401, 401, 401]),
    ("GET",    "/shows/{slug}",     Reader,   [200, 200, 200, 404]),
    ("GET",    "/shows/{slug}",     PartnerA, [200, 200, 200, 404]),
    ("GET",    "/shows/{slug}",     PartnerB, [200, 200, 200, 404]),
    ("GET",    "/shows/{slug}",     Admin,    [200, 200, 200, 404]),
    ("DELETE", "/shows/{slug}",     NoToken,  [401, 401, 401, 401]),
    ("DELETE", "/shows/{slug}",     Reader,   [403, 403, 403, 403]),
    ("DELETE", "/shows/{slug}",     PartnerA, [204, 403, 403, 404]),
    ("DELETE", "/shows/{slug}",     PartnerB, [403, 204, 403, 404]),
    ("DELETE", "/shows/{slug}",     Admin,    [204, 204, 204, 404]),
    ("POST",   "/v1/admin/owners",  NoToken,  [401, 401, 401, 401]),
    ("POST",   "/v1/admin/owners",  Reader,   [403, 403, 403, 403]),
    ("POST",   "/v1/admin/owners",  PartnerA, [403, 403, 403, 403]),
    ("POST",   "/v1/admin/owners",  PartnerB, [403, 403, 403, 403]),
    ("POST",   "/v1/admin/owners",  Admin,    [200, 200, 200, 200]),
];

/// Routes that answer without a token and act on no show: no rows.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/v1/health"),
    ("GET", "/health/ready"),
    ("GET", "/openapi.json"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth2/token"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/openid-configuration"),
];

/// The service with the clients and partners above, and `unowned` imported (without
/// `--owner`) before it starts.
async fn start(unowned: &[String]) -> TestApp {
    start_with(unowned, &[]).await
}

async fn start_with(unowned: &[String], extra: &[(&str, &str)]) -> TestApp {
    let data = Arc::new(tempfile::tempdir().unwrap());
    let mut env: Vec<(String, String)> = vec![
        ("APP__AUTH__CLIENTS".into(), CLIENTS.into()),
        ("APP__AUTH__PARTNERS".into(), PARTNERS.into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if store_kind() == "dynamodb" {
        env.extend(dynamodb_env().await);
    }
    if !unowned.is_empty() {
        let out = import(&data, &env, unowned, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    TestApp::start(data, env, 0).await
}

/// `show-service import` of eligible shows named `slugs` into the app's store.
fn import(
    data: &tempfile::TempDir,
    env: &[(String, String)],
    slugs: &[String],
    args: &[&str],
) -> std::process::Output {
    let file = data.path().join("import.json");
    std::fs::write(&file, feed_of(slugs, "Imported").to_string()).unwrap();
    std::process::Command::new(BIN)
        .arg("import")
        .arg(&file)
        .args(args)
        .env_clear()
        .env("APP_ENV", "local")
        .env("APP__STORE__PATH", data.path().join("shows.db"))
        .env("APP__LOG__FORMAT", "text")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

/// A feed of eligible shows (in the catalogue) named `slugs`, all titled `title`.
fn feed_of(slugs: &[String], title: &str) -> Value {
    let payload: Vec<Value> = slugs
        .iter()
        .map(|s| json!({"slug": s, "title": title, "drm": true, "episodeCount": 3}))
        .collect();
    json!({ "payload": payload })
}

/// A token of `role` with every scope its client may have; `None` without a token.
async fn token(app: &TestApp, role: Role) -> Option<String> {
    let (id, secret) = role.credentials()?;
    let res = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "token for {role:?}");
    let v: Value = res.json().await.unwrap();
    Some(v["access_token"].as_str().unwrap().to_string())
}

struct Tokens([Option<String>; 5]);

impl Tokens {
    async fn of(app: &TestApp) -> Tokens {
        let mut out: [Option<String>; 5] = Default::default();
        for (i, role) in ROLES.iter().enumerate() {
            out[i] = token(app, *role).await;
        }
        Tokens(out)
    }

    fn get(&self, role: Role) -> Option<&str> {
        let i = ROLES.iter().position(|r| *r == role).unwrap();
        self.0[i].as_deref()
    }
}

async fn send(
    app: &TestApp,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

/// The show as an admin reads it (status, body; `null` when absent), and the
/// catalogue's ETag.
async fn state_of(app: &TestApp, admin: &str, slug: &str) -> (u16, Value, String) {
    let res = send(app, Some(admin), "GET", &format!("/v1/shows/{slug}"), None).await;
    let status = res.status().as_u16();
    let body: Value = match status {
        200 => res.json().await.unwrap(),
        404 => Value::Null,
        other => panic!("GET {slug} as admin: {other}"),
    };
    let res = send(app, Some(admin), "GET", "/v1/shows", None).await;
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    (status, body, etag)
}

/// Every method and route the served OpenAPI document lists, as it spells them.
async fn documented(app: &TestApp) -> BTreeSet<(String, String)> {
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_authorization_matrix_holds_for_every_role_route_and_object() {
    // One show per row and object, so every cell starts from the same state.
    let slug = |row: usize, o: Object| format!("show/m{row}-{}", o.tag());
    let of = |o: Object| -> Vec<String> { (0..MATRIX.len()).map(|r| slug(r, o)).collect() };
    let app = start(&of(Object::Unowned)).await;
    let tokens = Tokens::of(&app).await;
    let admin = tokens.get(Admin).unwrap().to_string();

    // Every route the service serves has a row for every role, and every row's route
    // exists: from the document the service serves, and from the router's own table.
    let mut served = documented(&app).await;
    for route in show_service::http::API_ROUTES {
        served.insert((
            route.method.to_string(),
            route.path.replace("{*slug}", "{slug}"),
        ));
    }
    for (method, path) in &served {
        if PUBLIC.contains(&(method.as_str(), path.as_str())) {
            continue;
        }
        for role in ROLES {
            assert!(
                MATRIX
                    .iter()
                    .any(|(m, p, r, _)| m == method && p == path && *r == role),
                "{method} {path} has no row for {role:?} in the authorization matrix"
            );
        }
    }
    for (method, path, _, _) in MATRIX {
        assert!(
            served.contains(&(method.to_string(), path.to_string())),
            "the matrix has rows for {method} {path}, which the service does not serve"
        );
    }

    // The shows of partners a and b, created by them.
    for (role, o) in [(PartnerA, Object::OfA), (PartnerB, Object::OfB)] {
        let res = send(
            &app,
            tokens.get(role),
            "POST",
            "/v1/shows",
            Some(&feed_of(&of(o), "Original")),
        )
        .await;
        assert_eq!(res.status(), 201, "seeding {o:?}");
    }
    let from = app.log_lines().len();

    for (row, (method, route, role, statuses)) in MATRIX.iter().enumerate() {
        for (object, want) in OBJECTS.into_iter().zip(statuses) {
            let slug = slug(row, object);
            let path = route.replace("{slug}", &slug);
            let cell = format!("{method} {path} as {role:?} on {object:?}");
            let body = match (*method, *route) {
                ("POST", "/v1/admin/owners") => Some(json!({"owner": "globex", "slugs": [slug]})),
                ("POST", _) => Some(feed_of(
                    std::slice::from_ref(&slug),
                    &format!("By {role:?}"),
                )),
                _ => None,
            };
            let before = state_of(&app, &admin, &slug).await;
            let res = send(&app, tokens.get(*role), method, &path, body.as_ref()).await;
            let status = res.status().as_u16();
            assert_eq!(status, *want, "{cell}");
            let answer: Option<Value> = if status == 204 {
                None
            } else {
                Some(res.json().await.unwrap_or_else(|e| panic!("{cell}: {e}")))
            };
            let after = state_of(&app, &admin, &slug).await;
            if *method != "GET" && status >= 400 {
                // Refused: the show and the catalogue are as they were.
                assert_eq!(after, before, "{cell} changed something");
                let v = answer.unwrap();
                assert!(
                    v["error"].is_string() && v["requestId"].is_string(),
                    "{cell}: {v}"
                );
                let text = v.to_string();
                for other in ["acme", "globex"] {
                    assert!(!text.contains(other), "{cell} names a partner: {text}");
                }
                continue;
            }
            match (*method, *route, status) {
                (_, _, 401 | 403 | 404) => {}
                ("GET", "/v1/shows/changes", 400) => {
                    let v = answer.unwrap();
                    assert!(
                        v["error"].as_str().unwrap().contains("since"),
                        "{cell}: {v}"
                    );
                }
                ("GET", r, 200) if r.contains("{slug}") => {
                    let v = answer.unwrap();
                    assert_eq!(v["slug"], slug, "{cell}");
                    assert_eq!(v["owner"], object.owner(), "{cell}");
                }
                ("GET", _, 200) => {
                    let v = answer.unwrap();
                    let keys: BTreeSet<&str> =
                        v.as_object().unwrap().keys().map(String::as_str).collect();
                    assert_eq!(keys, BTreeSet::from(["response"]), "{cell}");
                    let item = v["response"].as_array().unwrap()[0].as_object().unwrap();
                    let keys: BTreeSet<&str> = item.keys().map(String::as_str).collect();
                    assert_eq!(keys, BTreeSet::from(["image", "slug", "title"]), "{cell}");
                }
                ("POST", "/v1/admin/owners", 200) => {
                    let v = answer.unwrap();
                    let (assigned, unknown) = if object == Object::New {
                        (json!([]), json!([slug]))
                    } else {
                        (json!([slug]), json!([]))
                    };
                    assert_eq!(
                        v,
                        json!({"owner": "globex", "assigned": assigned, "unknown": unknown}),
                        "{cell}"
                    );
                    if object != Object::New {
                        assert_eq!(after.1["owner"], "globex", "{cell}");
                        assert_eq!(after.1["title"], before.1["title"], "{cell}");
                        assert_eq!(after.2, before.2, "{cell}: the catalogue lists no owners");
                    }
                }
                ("POST", _, 201) => {
                    assert_eq!(after.1["title"], format!("By {role:?}"), "{cell}");
                    // An existing show keeps its owner (an admin's edit too); a new
                    // slug becomes the writer's partner's.
                    let owner = match object {
                        Object::New => json!(role.partner()),
                        o => o.owner(),
                    };
                    assert_eq!(after.1["owner"], owner, "{cell}");
                    assert_eq!(
                        after.1["updatedBy"],
                        json!(role.credentials().unwrap().0),
                        "{cell}"
                    );
                    assert_ne!(after.2, before.2, "{cell}: the catalogue did not change");
                }
                ("DELETE", _, 204) => {
                    assert_eq!(after.0, 404, "{cell}");
                }
                other => panic!("{cell}: no check for {other:?}"),
            }
        }
    }
    // Every admin write is on the record with the acting client.
    for message in [
        "admin feed stored",
        "admin deleted a show",
        "admin assigned owners",
    ] {
        let line = logged(&app, message, from).await;
        assert!(
            line.contains("\"admin\":\"platform\"") && line.contains("\"level\":\"INFO\""),
            "{line}"
        );
    }
}

/// The first line logged with `message` from line `from` on. The log is read from the
/// service's stdout by another thread: wait for it (bounded), without a fixed sleep.
async fn logged(app: &TestApp, message: &str, from: usize) -> String {
    let needle = format!("\"message\":\"{message}\"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(line) = app
            .log_lines()
            .into_iter()
            .skip(from)
            .find(|l| l.contains(&needle))
        {
            return line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing logged as {message:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_feed_naming_another_partners_or_an_unowned_show_is_refused_whole_at_each_slug() {
    let unowned = vec!["show/go-era".to_string()];
    let metrics_port = crate::metrics::free_port().to_string();
    let app = start_with(&unowned, &[("APP__METRICS__PORT", &metrics_port)]).await;
    let tokens = Tokens::of(&app).await;
    let (a, b, admin) = (
        tokens.get(PartnerA).unwrap(),
        tokens.get(PartnerB).unwrap(),
        tokens.get(Admin).unwrap(),
    );
    let own = feed_of(&["show/owned-by-a".to_string()], "A's title");
    assert_eq!(
        send(&app, Some(a), "POST", "/v1/shows", Some(&own))
            .await
            .status(),
        201
    );
    let before = state_of(&app, admin, "show/owned-by-a").await;

    // Partner b: two new slugs around a's show and the unowned one.
    let names = [
        "show/b-new-1",
        "show/owned-by-a",
        "show/b-new-2",
        "show/go-era",
    ];
    let mut attack = feed_of(&names.map(String::from), "B's title");
    attack["payload"][1]["image"] = json!({"showImage": "https://elsewhere.example/x.png"});
    let res = send(&app, Some(b), "POST", "/v1/shows", Some(&attack)).await;
    let v = assert_envelope(res, 403).await;
    let paths: Vec<&str> = v["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["payload[1].slug", "payload[3].slug"], "{v}");
    assert!(!v.to_string().contains("acme"), "names the owner: {v}");

    // Nothing written: a's show, the unowned one and the catalogue as they were, and no
    // new slug.
    assert_eq!(state_of(&app, admin, "show/owned-by-a").await, before);
    for new in ["show/b-new-1", "show/b-new-2"] {
        assert_eq!(state_of(&app, admin, new).await.0, 404, "{new}");
    }
    let go = state_of(&app, admin, "show/go-era").await;
    assert_eq!(
        (go.1["title"].as_str(), &go.1["owner"]),
        (Some("Imported"), &Value::Null)
    );

    // Counted as refused, not as rejected or failed.
    let exposition = app
        .client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let feeds = |outcome: &str| {
        crate::metrics::sample(
            &exposition,
            &format!("feeds_total{{outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(
        (feeds("refused"), feeds("failed"), feeds("rejected")),
        (1.0, 0.0, 0.0)
    );

    // The delete is refused the same way.
    let res = send(&app, Some(b), "DELETE", "/v1/shows/show/owned-by-a", None).await;
    let v = assert_envelope(res, 403).await;
    assert!(!v.to_string().contains("acme"), "{v}");
    assert_eq!(state_of(&app, admin, "show/owned-by-a").await, before);
}

#[test]
fn a_malformed_partner_map_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("APP__STORE__PATH", dir.path().join("shows.db"))
        .env("APP__SERVER__PORT", "0")
        .env("APP__LOG__FORMAT", "text")
        .env("APP__AUTH__PARTNERS", "acme=c1,globex=c1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("APP__AUTH__PARTNERS") && err.contains("c1"),
        "{err}"
    );
}

#[tokio::test]
async fn a_partner_keeps_its_shows_through_a_second_client() {
    let app = start(&[]).await;
    let a = token(&app, PartnerA).await.unwrap();
    let res = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth("acme-feed-2", Some("acmesecret2"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let rotated = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let show = ["show/rotated".to_string()];
    let res = send(
        &app,
        Some(&a),
        "POST",
        "/v1/shows",
        Some(&feed_of(&show, "One")),
    )
    .await;
    assert_eq!(res.status(), 201);
    let res = send(
        &app,
        Some(&rotated),
        "POST",
        "/v1/shows",
        Some(&feed_of(&show, "Two")),
    )
    .await;
    assert_eq!(res.status(), 201);
    let v: Value = send(&app, Some(&a), "GET", "/v1/shows/show/rotated", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&v["title"], &v["owner"], &v["updatedBy"]),
        (&json!("Two"), &json!("acme"), &json!("acme-feed-2"))
    );
    assert!(v["createdAt"].as_str().unwrap() <= v["updatedAt"].as_str().unwrap());
    let res = send(
        &app,
        Some(&rotated),
        "DELETE",
        "/v1/shows/show/rotated",
        None,
    )
    .await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn the_admin_route_refuses_bad_assignments_whole_and_hands_shows_over() {
    let unowned = vec!["show/legacy-1".to_string(), "show/legacy-2".to_string()];
    let app = start(&unowned).await;
    let tokens = Tokens::of(&app).await;
    let (b, admin) = (tokens.get(PartnerB).unwrap(), tokens.get(Admin).unwrap());
    let before = state_of(&app, admin, "show/legacy-1").await;
    let many: Vec<String> = (0..1001).map(|i| format!("show/s{i}")).collect();
    let bad = [
        (
            json!({"owner": "no such partner", "slugs": ["show/legacy-1"]}),
            "owner",
        ),
        (json!({"slugs": ["show/legacy-1"]}), "owner"),
        (json!({"owner": "globex", "slugs": []}), "slugs"),
        (json!({"owner": "globex", "slugs": many}), "slugs"),
        (
            json!({"owner": "globex", "slugs": ["show/legacy-1", "show/legacy-1"]}),
            "slugs[1]",
        ),
        (
            json!({"owner": "globex", "slugs": ["show/legacy-1", "Not A Slug"]}),
            "slugs[1]",
        ),
    ];
    for (body, path) in bad {
        let res = send(&app, Some(admin), "POST", "/v1/admin/owners", Some(&body)).await;
        let v = assert_envelope(res, 400).await;
        assert_eq!(v["details"][0]["path"], path, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(path), "{v}");
        assert_eq!(state_of(&app, admin, "show/legacy-1").await, before);
    }
    let res = app
        .client
        .post(app.url("/v1/admin/owners"))
        .bearer_auth(admin)
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_envelope(res, 400).await;
    let res = app
        .client
        .post(app.url("/v1/admin/owners"))
        .bearer_auth(admin)
        .body("owner=globex")
        .send()
        .await
        .unwrap();
    assert_envelope(res, 415).await;

    // Before the assignment partner b may not touch the unowned shows; after it, it may.
    let edit = feed_of(&unowned, "Globex's now");
    assert_eq!(
        send(&app, Some(b), "POST", "/v1/shows", Some(&edit))
            .await
            .status(),
        403
    );
    let assign =
        json!({"owner": "globex", "slugs": ["show/legacy-1", "show/legacy-2", "show/gone"]});
    let res = send(&app, Some(admin), "POST", "/v1/admin/owners", Some(&assign)).await;
    assert_eq!(res.status(), 200);
    let mut v: Value = res.json().await.unwrap();
    v["assigned"]
        .as_array_mut()
        .unwrap()
        .sort_by_key(|s| s.to_string());
    assert_eq!(
        v,
        json!({"owner": "globex", "assigned": ["show/legacy-1", "show/legacy-2"], "unknown": ["show/gone"]})
    );
    assert_eq!(
        send(&app, Some(b), "POST", "/v1/shows", Some(&edit))
            .await
            .status(),
        201
    );
    let line = logged(&app, "admin assigned owners", 0).await;
    assert!(
        line.contains("\"admin\":\"platform\"")
            && line.contains("\"owner\":\"globex\"")
            && line.contains("\"assigned\":2")
            && line.contains("\"unknown\":1")
            && line.contains("show/legacy-2"),
        "{line}"
    );
    assert_eq!(count_logged(&app, "admin assigned owners", 0), 1);
}

#[tokio::test]
async fn import_with_an_owner_writes_as_that_partner_under_the_same_rule() {
    let app = start(&[]).await;
    let a = token(&app, PartnerA).await.unwrap();
    let theirs = ["show/acme-first".to_string()];
    let res = send(
        &app,
        Some(&a),
        "POST",
        "/v1/shows",
        Some(&feed_of(&theirs, "Acme's")),
    )
    .await;
    assert_eq!(res.status(), 201);
    let admin = token(&app, Admin).await.unwrap();
    let before = state_of(&app, &admin, "show/acme-first").await;
    let env = app.env.clone();
    let data = app.data.clone();
    drop(app);

    // globex may create new slugs, but not replace acme's: nothing is written.
    let out = import(
        &data,
        &env,
        &["show/globex-1".to_string(), theirs[0].clone()],
        &["--owner", "globex"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not globex's to change") && err.contains("show/acme-first"),
        "{err}"
    );
    let out = import(
        &data,
        &env,
        &["show/globex-1".to_string()],
        &["--owner", "globex"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = import(
        &data,
        &env,
        &["show/x".to_string()],
        &["--owner", "not a partner"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--owner") && err.contains("APP__AUTH__PARTNERS"),
        "{err}"
    );

    let app = TestApp::start(data, env, 0).await;
    let admin = token(&app, Admin).await.unwrap();
    let mut now = state_of(&app, &admin, "show/acme-first").await;
    // Only the catalogue changed (globex-1 joined it); acme's show did not.
    now.2 = before.2.clone();
    assert_eq!(now, before);
    let v = state_of(&app, &admin, "show/globex-1").await.1;
    assert_eq!(
        (&v["owner"], &v["updatedBy"]),
        (&json!("globex"), &json!("show-service import"))
    );
    assert_eq!(state_of(&app, &admin, "show/x").await.0, 404);
}
