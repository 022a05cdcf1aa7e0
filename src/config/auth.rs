//! How access tokens are obtained and verified: the mode, the external issuer (given
//! directly or derived from the Go deployment's Cognito settings), the scopes' resource
//! server, the partner map (which partner each client id writes for), and the local
//! issuer's clients and limits.

use super::reader::{Reader, bad};
use super::store::DynamoSettings;
use super::{APP_ENV, AppEnv, ConfigError, SettingDoc, server::ServerSettings};
use crate::domain::{Partner, PartnerMap, Scope};
use std::time::Duration;

pub const COGNITO_USER_POOL_ID: SettingDoc = SettingDoc {
    key: "cognito.userpoolid",
    env: "APP__COGNITO__USERPOOLID",
    default: "(none)",
    doc: "Cognito user pool id; with the region it gives the issuer and JWKS URL.",
};
pub const COGNITO_REGION: SettingDoc = SettingDoc {
    key: "cognito.region",
    env: "APP__COGNITO__REGION",
    default: "(dynamodb.region)",
    doc: "Region of the user pool.",
};
pub const COGNITO_CLIENT_ID: SettingDoc = SettingDoc {
    key: "cognito.clientid",
    env: "APP__COGNITO__CLIENTID",
    default: "(none)",
    doc: "Allowed app client id(s), comma separated.",
};
pub const COGNITO_JWKS_URL: SettingDoc = SettingDoc {
    key: "cognito.jwksurl",
    env: "APP__COGNITO__JWKSURL",
    default: "(derived)",
    doc: "JWKS URL, when not the pool's standard one.",
};
pub const COGNITO_VALID_SCOPES: SettingDoc = SettingDoc {
    key: "cognito.validscopes",
    env: "APP__COGNITO__VALIDSCOPES",
    default: "(derived)",
    doc: "Full scope names, comma separated; their prefix gives the resource server.",
};
pub const MODE: SettingDoc = SettingDoc {
    key: "auth.mode",
    env: "APP__AUTH__MODE",
    default: "local (local) / jwt",
    doc: "`local`: built-in client-credentials issuer; `jwt`: external issuer such as Cognito.",
};
pub const ISSUER: SettingDoc = SettingDoc {
    key: "auth.issuer",
    env: "APP__AUTH__ISSUER",
    default: "(from cognito.*)",
    doc: "Expected `iss` of access tokens, compared exactly (a trailing `/` is kept).",
};
pub const JWKS_URL: SettingDoc = SettingDoc {
    key: "auth.jwksurl",
    env: "APP__AUTH__JWKSURL",
    default: "(issuer + /.well-known/jwks.json)",
    doc: "Where the issuer's signing keys are published.",
};
pub const AUDIENCE: SettingDoc = SettingDoc {
    key: "auth.audience",
    env: "APP__AUTH__AUDIENCE",
    default: "(from cognito.clientid)",
    doc: "Allowed `client_id` (or `aud`) values, comma separated; empty allows any.",
};
pub const RESOURCE_SERVER: SettingDoc = SettingDoc {
    key: "auth.resourceserver",
    env: "APP__AUTH__RESOURCESERVER",
    default: "https://show-service-{env}.api",
    doc: "Scope prefix: scopes are `<this>/shows.read`, `<this>/shows.write` and `<this>/shows.admin`.",
};
pub const LEEWAY_SECONDS: SettingDoc = SettingDoc {
    key: "auth.leewayseconds",
    env: "APP__AUTH__LEEWAYSECONDS",
    default: "30",
    doc: "Clock leeway for exp/nbf/iat (at most 60).",
};
pub const CLIENTS: SettingDoc = SettingDoc {
    key: "auth.clients",
    env: "APP__AUTH__CLIENTS",
    default: "(none)",
    doc: "Extra local-mode clients: `id:secret:scope scope,id2:secret2:scope` (scopes `shows.read`, `shows.write`, `shows.admin`; none listed: all).",
};
pub const PARTNERS: SettingDoc = SettingDoc {
    key: "auth.partners",
    env: "APP__AUTH__PARTNERS",
    default: "(none: each client is its own partner)",
    doc: "Which partner owns what each client id writes: `acme=<client id>\\|<client id>,globex=<client id>`.",
};
pub const PUBLIC_URL: SettingDoc = SettingDoc {
    key: "auth.publicurl",
    env: "APP__AUTH__PUBLICURL",
    default: "http://{host}:{port}",
    doc: "Local mode: the issuer URL put in `iss` and the discovery document.",
};
pub const TOKEN_RATE_PER_SECOND: SettingDoc = SettingDoc {
    key: "auth.tokenratepersecond",
    env: "APP__AUTH__TOKENRATEPERSECOND",
    default: "10",
    doc: "Local mode: token requests per second each client may make (sustained).",
};
pub const TOKEN_BURST: SettingDoc = SettingDoc {
    key: "auth.tokenburst",
    env: "APP__AUTH__TOKENBURST",
    default: "20",
    doc: "Local mode: token requests a client may make at once before the rate applies.",
};

/// How access tokens are obtained and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The service issues its own tokens (client credentials) and verifies them.
    Local,
    /// Tokens come from an external issuer (Cognito); the service only verifies them.
    Jwt,
}

/// A client of the local issuer (local mode only).
#[derive(Clone)]
pub struct LocalClient {
    pub id: String,
    /// Never logged: `Debug` hides it.
    pub secret: String,
    /// The scopes this client may have.
    pub scopes: Vec<Scope>,
}

impl std::fmt::Debug for LocalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalClient")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Expected `iss`. In local mode, the issuer's own URL.
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    /// Allowed `client_id` / `aud` values; empty allows any.
    pub audience: Vec<String>,
    pub resource_server: String,
    pub leeway: Duration,
    /// The partner of each client id (a client not in it is its own partner).
    pub partners: PartnerMap,
    /// Local mode: the development client plus any configured ones.
    pub clients: Vec<LocalClient>,
    /// Local mode: sustained token requests per second per client.
    pub token_rate_per_second: u32,
    /// Local mode: token requests a client may make at once.
    pub token_burst: u32,
}

pub(super) fn read(
    r: &Reader,
    server: &ServerSettings,
    dynamodb: &DynamoSettings,
) -> Result<AuthSettings, ConfigError> {
    let mode = mode(r)?;
    let cognito = Cognito::read(r, dynamodb);
    let issuer = issuer(r, mode, server, &cognito)?;
    let jwks_url = jwks_url(r, mode, issuer.as_deref())?;
    if mode == AuthMode::Jwt && (issuer.is_none() || jwks_url.is_none()) {
        return Err(ConfigError {
            source_name: ISSUER.env.into(),
            value: String::new(),
            message: format!(
                "auth mode jwt needs an issuer: set {} (and {}), or {} and {}",
                ISSUER.env, JWKS_URL.env, COGNITO_USER_POOL_ID.env, COGNITO_REGION.env
            ),
        });
    }
    let mut audience = r.list(&AUDIENCE);
    if audience.is_empty() {
        audience = r.list(&COGNITO_CLIENT_ID);
    }
    let resource_server = resource_server(r, &cognito.valid_scopes)?;
    let leeway = Duration::from_secs(r.bounded(&LEEWAY_SECONDS, 30, 0, 60)?);
    let partners = partners(r)?;
    let clients = match mode {
        AuthMode::Local => local_clients(r)?,
        AuthMode::Jwt => Vec::new(),
    };
    let token_rate_per_second = r.bounded(&TOKEN_RATE_PER_SECOND, 10, 1, 100_000)? as u32;
    let token_burst = r.bounded(&TOKEN_BURST, 20, 1, 100_000)? as u32;
    Ok(AuthSettings {
        mode,
        issuer,
        jwks_url,
        audience,
        resource_server,
        leeway,
        partners,
        clients,
        token_rate_per_second,
        token_burst,
    })
}

/// The mode: local by default on a developer's machine, and only there.
fn mode(r: &Reader) -> Result<AuthMode, ConfigError> {
    let local = r.local();
    let default = if local {
        AuthMode::Local
    } else {
        AuthMode::Jwt
    };
    let mode = r.choice(
        &MODE,
        default,
        &[("local", AuthMode::Local), ("jwt", AuthMode::Jwt)],
    )?;
    // The built-in issuer and its well-known development client write feeds for anyone
    // who reads the README: never outside a developer's machine.
    if mode == AuthMode::Local && !local {
        let set = r.get(&MODE).expect("local mode outside local was set");
        return Err(ConfigError {
            source_name: set.source.clone(),
            value: set.value.clone(),
            message: format!(
                "the built-in issuer and its development client run only with \
                 {APP_ENV}={local_env} ({APP_ENV} is {env}); use {mode_var}=jwt",
                local_env = AppEnv::Local.as_str(),
                env = r.env().as_str(),
                mode_var = MODE.env,
            ),
        });
    }
    Ok(mode)
}

/// What the Go deployment's Cognito settings say.
struct Cognito {
    /// The pool's issuer, when its id and region are known.
    issuer: Option<String>,
    /// Full scope names (`<resource server>/shows.read`).
    valid_scopes: Vec<String>,
}

impl Cognito {
    fn read(r: &Reader, dynamodb: &DynamoSettings) -> Cognito {
        let pool = r.string(&COGNITO_USER_POOL_ID);
        let region = r.string(&COGNITO_REGION).or_else(|| {
            // A pool id is `<region>_<id>`: the region is recoverable from it.
            pool.as_deref()
                .and_then(|p| p.split_once('_'))
                .map(|(r, _)| r.to_string())
                .or_else(|| dynamodb.region.clone())
        });
        let issuer = match (&pool, &region) {
            (Some(pool), Some(region)) => {
                Some(format!("https://cognito-idp.{region}.amazonaws.com/{pool}"))
            }
            _ => None,
        };
        Cognito {
            issuer,
            valid_scopes: r.list(&COGNITO_VALID_SCOPES),
        }
    }
}

/// Local mode: the issuer's own URL (the public URL, or the listener's address).
/// Jwt mode: the configured issuer, else Cognito's.
fn issuer(
    r: &Reader,
    mode: AuthMode,
    server: &ServerSettings,
    cognito: &Cognito,
) -> Result<Option<String>, ConfigError> {
    Ok(match mode {
        AuthMode::Local => Some(match r.url(&PUBLIC_URL)? {
            Some(u) => u,
            None => {
                let host = if server.host.is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    server.host.to_string()
                };
                format!("http://{host}:{}", server.port)
            }
        }),
        AuthMode::Jwt => r.url_exact(&ISSUER)?.or(cognito.issuer.clone()),
    })
}

/// Jwt mode: the configured JWKS URL, else the issuer's well-known one.
fn jwks_url(
    r: &Reader,
    mode: AuthMode,
    issuer: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    Ok(match mode {
        AuthMode::Local => None,
        AuthMode::Jwt => r.url(&JWKS_URL)?.or(r.url(&COGNITO_JWKS_URL)?).or_else(|| {
            issuer.map(|i| format!("{}/.well-known/jwks.json", i.trim_end_matches('/')))
        }),
    })
}

/// The configured prefix, else the valid scopes' prefix, else the environment's default.
fn resource_server(r: &Reader, valid_scopes: &[String]) -> Result<String, ConfigError> {
    Ok(match r.url(&RESOURCE_SERVER)? {
        Some(s) => s,
        None => valid_scopes
            .iter()
            .find_map(|s| s.rsplit_once('/').map(|(prefix, _)| prefix.to_string()))
            .unwrap_or_else(|| format!("https://show-service-{}.api", r.env().as_str())),
    })
}

/// The partner map; a malformed one stops start-up naming the variable.
fn partners(r: &Reader) -> Result<PartnerMap, ConfigError> {
    match r.get(&PARTNERS) {
        None => Ok(PartnerMap::default()),
        Some(set) => PartnerMap::parse(&set.value).map_err(|why| ConfigError {
            source_name: set.source.clone(),
            value: set.value.clone(),
            message: format!("{why}; expected partner=client|client,partner=client"),
        }),
    }
}

/// The development client (every scope, `shows.admin` included: it is the developer's
/// own), then the configured ones.
fn local_clients(r: &Reader) -> Result<Vec<LocalClient>, ConfigError> {
    let mut clients = vec![LocalClient {
        id: "local-client".into(),
        secret: "local-secret".into(),
        scopes: Scope::ALL.to_vec(),
    }];
    if let Some(set) = r.get(&CLIENTS) {
        for entry in set
            .value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            clients.push(local_client(entry).map_err(|expected| bad(set, &expected))?);
        }
    }
    Ok(clients)
}

/// One `id:secret:scope scope` entry; `Err` says what was expected.
fn local_client(entry: &str) -> Result<LocalClient, String> {
    let mut parts = entry.splitn(3, ':');
    let (Some(id), Some(secret)) = (parts.next(), parts.next()) else {
        return Err("entries id:secret:scope scope, comma separated".into());
    };
    // Short names; none given means every scope.
    let scopes: Option<Vec<Scope>> = match parts.next() {
        None => Some(Scope::ALL.to_vec()),
        Some(names) => names.split_whitespace().map(Scope::from_name).collect(),
    };
    // A client id is also a partner (its own, when the map does not name it).
    let (false, Some(scopes)) = (Partner::parse(id).is_err() || secret.len() < 8, scopes) else {
        return Err(format!(
            "entries id:secret:scope scope with an id of A-Z a-z 0-9 . _ + -, a secret of \
             8+ characters and scopes {}",
            Scope::names()
        ));
    };
    Ok(LocalClient {
        id: id.into(),
        secret: secret.into(),
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::load;
    use super::*;

    #[test]
    fn cloud_defaults_use_dynamodb_and_an_external_issuer() {
        let s = load(&[
            ("APP_ENV", "prod"),
            ("APP__COGNITO__USERPOOLID", "ap-southeast-2_AbC123"),
        ])
        .unwrap();
        assert_eq!(s.server.host.to_string(), "0.0.0.0");
        assert_eq!(s.store.kind, super::super::StoreKind::Dynamodb);
        assert_eq!(s.dynamodb.table, "shows-prod");
        assert_eq!(s.dynamodb.gsi, "gsi_drm_episode");
        assert_eq!(s.auth.mode, AuthMode::Jwt);
        assert_eq!(
            s.auth.issuer.as_deref(),
            Some("https://cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC123")
        );
        assert_eq!(
            s.auth.jwks_url.as_deref(),
            Some(
                "https://cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC123/.well-known/jwks.json"
            )
        );
        assert!(
            s.auth.clients.is_empty(),
            "no development client outside local mode"
        );
        assert_eq!(s.auth.resource_server, "https://show-service-prod.api");
    }

    #[test]
    fn valid_scopes_give_the_resource_server_and_client_id_the_audience() {
        let s = load(&[
            ("APP_ENV", "dev"),
            ("APP__AUTH__ISSUER", "https://issuer.example.com/"),
            (
                "APP__COGNITO__VALIDSCOPES",
                "https://show-service-dev.api/shows.read,https://show-service-dev.api/shows.write",
            ),
            ("APP__COGNITO__CLIENTID", "abc, def"),
        ])
        .unwrap();
        // Kept exactly: `iss` is compared byte for byte, as API Gateway does.
        assert_eq!(
            s.auth.issuer.as_deref(),
            Some("https://issuer.example.com/")
        );
        assert_eq!(
            s.auth.jwks_url.as_deref(),
            Some("https://issuer.example.com/.well-known/jwks.json")
        );
        assert_eq!(s.auth.resource_server, "https://show-service-dev.api");
        assert_eq!(s.auth.audience, vec!["abc", "def"]);
    }

    #[test]
    fn local_mode_is_refused_outside_the_local_environment() {
        for env in ["dev", "test", "prod"] {
            let err = load(&[
                ("APP_ENV", env),
                ("APP__AUTH__MODE", "local"),
                ("APP__STORE__KIND", "sqlite"),
            ])
            .expect_err(env);
            assert_eq!(err.source_name, "APP__AUTH__MODE");
            let line = err.to_string();
            assert!(
                line.contains("APP_ENV")
                    && line.contains("APP__AUTH__MODE")
                    && !line.contains('\n'),
                "{line}"
            );
        }
        // The Go spelling is refused the same way, naming the variable that was set.
        let err = load(&[("APP_ENV", "prod"), ("APP_AUTH__MODE", "LOCAL")]).unwrap_err();
        assert_eq!(err.source_name, "APP_AUTH__MODE");
        // Locally it is the default and may be said explicitly.
        let s = load(&[("APP_ENV", "local"), ("APP__AUTH__MODE", "local")]).unwrap();
        assert_eq!(s.auth.mode, AuthMode::Local);
        assert_eq!(s.auth.clients[0].id, "local-client");
    }

    #[test]
    fn jwt_mode_without_an_issuer_is_refused() {
        let err = load(&[("APP_ENV", "dev")]).unwrap_err();
        assert!(err.to_string().contains("APP__AUTH__ISSUER"), "{err}");
    }

    #[test]
    fn the_messages_built_from_the_keys_read_as_before() {
        let err = load(&[("APP_ENV", "dev")]).unwrap_err();
        assert_eq!(
            err.message,
            "auth mode jwt needs an issuer: set APP__AUTH__ISSUER (and APP__AUTH__JWKSURL), \
             or APP__COGNITO__USERPOOLID and APP__COGNITO__REGION"
        );
        let err = load(&[("APP_ENV", "test"), ("APP__AUTH__MODE", "local")]).unwrap_err();
        assert_eq!(
            err.message,
            "the built-in issuer and its development client run only with APP_ENV=local \
             (APP_ENV is test); use APP__AUTH__MODE=jwt"
        );
    }

    #[test]
    fn local_clients_are_read_with_their_scopes() {
        let clients = format!(
            "reader:readsecret:{}, writer:writesecret",
            Scope::Read.name()
        );
        let s = load(&[("APP__AUTH__CLIENTS", &clients)]).unwrap();
        let got: Vec<(&str, &[Scope])> = s
            .auth
            .clients
            .iter()
            .map(|c| (c.id.as_str(), c.scopes.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("local-client", &Scope::ALL[..]),
                ("reader", &[Scope::Read][..]),
                ("writer", &Scope::ALL[..]),
            ]
        );
        let err = load(&[("APP__AUTH__CLIENTS", "a:short")]).unwrap_err();
        assert!(err.message.contains("8+ characters"), "{err}");
        let err = load(&[("APP__AUTH__CLIENTS", "a b:longsecret")]).unwrap_err();
        assert!(err.message.contains("an id of"), "{err}");
        let admin = format!("platform:platformsecret:{}", Scope::Admin.name());
        let s = load(&[("APP__AUTH__CLIENTS", &admin)]).unwrap();
        assert_eq!(s.auth.clients[1].scopes, [Scope::Admin]);
    }

    #[test]
    fn the_partner_map_is_read_and_a_malformed_one_stops_start_up_naming_it() {
        let s = load(&[("APP__AUTH__PARTNERS", "acme=a1|a2,globex=g1")]).unwrap();
        assert_eq!(s.auth.partners.partner_of("a2").unwrap().as_str(), "acme");
        assert_eq!(s.auth.partners.partner_of("g1").unwrap().as_str(), "globex");
        assert_eq!(s.auth.partners.partner_of("z9").unwrap().as_str(), "z9");
        assert!(load(&[]).unwrap().auth.partners.is_empty());
        // Read in jwt mode too: the deployed service needs it most.
        let s = load(&[
            ("APP_ENV", "prod"),
            ("APP__COGNITO__USERPOOLID", "ap-southeast-2_AbC123"),
            ("APP__AUTH__PARTNERS", "acme=c1"),
        ])
        .unwrap();
        assert_eq!(s.auth.partners.partners().len(), 1);
        for bad in ["acme", "acme=c1,globex=c1", "a b=c1", "acme=c1,acme=c2"] {
            let err = load(&[("APP__AUTH__PARTNERS", bad)]).unwrap_err();
            assert_eq!(err.source_name, "APP__AUTH__PARTNERS", "{bad}");
            let line = err.to_string();
            assert!(
                line.contains("APP__AUTH__PARTNERS") && !line.contains('\n'),
                "{line}"
            );
        }
    }
}
