//! The claims of an access token and the rules they must meet once the signature is good,
//! in API Gateway's JWT authorizer's terms (plus Cognito's own checklist):
//! - `iss` equals the configured issuer exactly;
//! - `exp` is present and not past, `nbf` and `iat` (when present) not in the future, each
//!   with the configured leeway;
//! - `token_use`, when present, is `access` (Cognito's ID tokens say `id`);
//! - when allowed audiences are configured: `aud` (any of its values) is one of them, or,
//!   only when there is no `aud`, `client_id` is;
//! - scopes are read from `scope` (space separated) and `scp` (string or array); which one a
//!   route needs is checked by the caller, so a token verified once serves every route.

use serde::Deserialize;
use serde::de::{self, Deserializer};

/// The claims we read; any others are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct AccessClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub exp: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub nbf: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub iat: Option<i64>,
    pub token_use: Option<String>,
    pub client_id: Option<String>,
    pub aud: Option<OneOrMany>,
    pub scope: Option<String>,
    pub scp: Option<OneOrMany>,
}

/// A claim that may be one string or an array of strings (`aud`, `scp`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// RFC 7519 NumericDate: seconds since the epoch, possibly with a fraction (dropped).
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f.floor() as i64)
        })
        .map(Some)
        .ok_or_else(|| de::Error::custom("a NumericDate must be a number of seconds"))
}

/// What a token that passed every rule says about its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `client_id`, else `sub`: who asked for the token.
    pub client_id: String,
    /// Every scope granted, full names as written in the token.
    pub scopes: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub exp: i64,
}

impl Verified {
    pub fn has_scope(&self, full_name: &str) -> bool {
        self.scopes.iter().any(|s| s == full_name)
    }
}

/// Why valid-looking claims are refused. The text goes to the debug log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("no iss")]
    NoIssuer,
    #[error("iss {0:?} is not the configured issuer")]
    WrongIssuer(String),
    #[error("no exp")]
    NoExpiry,
    #[error("expired at {0}")]
    Expired(i64),
    #[error("not valid before {0}")]
    NotYetValid(i64),
    #[error("issued in the future ({0})")]
    IssuedInFuture(i64),
    #[error("token_use is {0:?}, not access")]
    NotAccessToken(String),
    #[error("aud {0:?} is not an allowed audience")]
    WrongAudience(Vec<String>),
    #[error("client_id {0:?} is not an allowed client")]
    WrongClient(Option<String>),
}

/// The configured expectations.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    /// Expected `iss`, byte for byte.
    pub issuer: String,
    /// Allowed `aud` / `client_id` values; empty allows any.
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf`, `iat`, in seconds.
    pub leeway: i64,
}

impl ClaimRules {
    /// Checks `claims` at `now` (seconds since the epoch).
    pub fn check(&self, claims: AccessClaims, now: i64) -> Result<Verified, ClaimError> {
        match &claims.iss {
            None => return Err(ClaimError::NoIssuer),
            Some(iss) if *iss != self.issuer => return Err(ClaimError::WrongIssuer(iss.clone())),
            Some(_) => {}
        }
        let exp = claims.exp.ok_or(ClaimError::NoExpiry)?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(ClaimError::Expired(exp));
        }
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(ClaimError::NotYetValid(nbf));
        }
        if let Some(iat) = claims.iat
            && iat > now.saturating_add(self.leeway)
        {
            return Err(ClaimError::IssuedInFuture(iat));
        }
        if let Some(use_) = &claims.token_use
            && use_ != "access"
        {
            return Err(ClaimError::NotAccessToken(use_.clone()));
        }
        if !self.audience.is_empty() {
            let allowed = |v: &String| self.audience.iter().any(|a| a == v);
            match &claims.aud {
                // As API Gateway: `aud` decides when present, `client_id` only without it.
                Some(aud) => {
                    if !aud.values().iter().any(allowed) {
                        return Err(ClaimError::WrongAudience(aud.values().to_vec()));
                    }
                }
                None => {
                    if !claims.client_id.as_ref().is_some_and(allowed) {
                        return Err(ClaimError::WrongClient(claims.client_id));
                    }
                }
            }
        }
        let mut scopes: Vec<String> = claims
            .scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if let Some(scp) = &claims.scp {
            for s in scp.values().iter().flat_map(|s| s.split_whitespace()) {
                if !scopes.iter().any(|have| have == s) {
                    scopes.push(s.to_owned());
                }
            }
        }
        Ok(Verified {
            client_id: claims
                .client_id
                .or(claims.sub)
                .unwrap_or_else(|| "-".into()),
            scopes,
            exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_700_000_000;
    const ISS: &str = "https://cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC";
    const READ: &str = "https://show-service-dev.api/shows.read";

    fn rules(audience: &[&str]) -> ClaimRules {
        ClaimRules {
            issuer: ISS.into(),
            audience: audience.iter().map(|s| s.to_string()).collect(),
            leeway: 30,
        }
    }

    /// A Cognito client-credentials access token's claims.
    fn cognito() -> Value {
        json!({
            "sub": "client-a", "token_use": "access", "scope": READ,
            "auth_time": NOW - 10, "iss": ISS, "exp": NOW + 3590, "iat": NOW - 10,
            "version": 2, "jti": "8f0c", "client_id": "client-a",
        })
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        if value.is_null() {
            v.as_object_mut().unwrap().remove(key);
        } else {
            v[key] = value;
        }
        v
    }

    fn check(rules: &ClaimRules, v: Value) -> Result<Verified, ClaimError> {
        let claims: AccessClaims = serde_json::from_value(v).expect("claims parse");
        rules.check(claims, NOW)
    }

    #[test]
    fn a_cognito_access_token_passes() {
        let v = check(&rules(&["client-a"]), cognito()).unwrap();
        assert_eq!(v.client_id, "client-a");
        assert_eq!(v.scopes, vec![READ]);
        assert_eq!(v.exp, NOW + 3590);
        assert!(v.has_scope(READ));
        assert!(!v.has_scope("shows.read"), "short names are not full names");
    }

    #[test]
    fn each_rule_refuses_what_breaks_it() {
        let none = Value::Null;
        let cases: Vec<(&str, &[&str], Value, ClaimError)> = vec![
            (
                "expired",
                &[],
                with(cognito(), "exp", json!(NOW - 31)),
                ClaimError::Expired(NOW - 31),
            ),
            (
                "expired exactly at the leeway",
                &[],
                with(cognito(), "exp", json!(NOW - 30)),
                ClaimError::Expired(NOW - 30),
            ),
            (
                "no exp",
                &[],
                with(cognito(), "exp", none.clone()),
                ClaimError::NoExpiry,
            ),
            (
                "not yet valid",
                &[],
                with(cognito(), "nbf", json!(NOW + 31)),
                ClaimError::NotYetValid(NOW + 31),
            ),
            (
                "issued in the future",
                &[],
                with(cognito(), "iat", json!(NOW + 31)),
                ClaimError::IssuedInFuture(NOW + 31),
            ),
            (
                "wrong issuer",
                &[],
                with(cognito(), "iss", json!("https://evil.example")),
                ClaimError::WrongIssuer("https://evil.example".into()),
            ),
            (
                "issuer with a trailing slash",
                &[],
                with(cognito(), "iss", json!(format!("{ISS}/"))),
                ClaimError::WrongIssuer(format!("{ISS}/")),
            ),
            (
                "no issuer",
                &[],
                with(cognito(), "iss", none.clone()),
                ClaimError::NoIssuer,
            ),
            (
                "an id token",
                &[],
                with(cognito(), "token_use", json!("id")),
                ClaimError::NotAccessToken("id".into()),
            ),
            (
                "wrong client",
                &["client-b"],
                cognito(),
                ClaimError::WrongClient(Some("client-a".into())),
            ),
            (
                "no client",
                &["client-a"],
                with(cognito(), "client_id", none.clone()),
                ClaimError::WrongClient(None),
            ),
            // `aud` decides when present, even if `client_id` would be allowed.
            (
                "aud overrides client_id",
                &["client-a"],
                with(cognito(), "aud", json!("api-x")),
                ClaimError::WrongAudience(vec!["api-x".into()]),
            ),
            (
                "empty aud array",
                &["client-a"],
                with(cognito(), "aud", json!([])),
                ClaimError::WrongAudience(vec![]),
            ),
        ];
        for (name, audience, claims, want) in cases {
            assert_eq!(check(&rules(audience), claims).unwrap_err(), want, "{name}");
        }
    }

    #[test]
    fn the_leeway_and_the_optional_claims_are_honoured() {
        let r = rules(&[]);
        let ok: Vec<(&str, Value)> = vec![
            (
                "expired within the leeway",
                with(cognito(), "exp", json!(NOW - 29)),
            ),
            (
                "nbf within the leeway",
                with(cognito(), "nbf", json!(NOW + 30)),
            ),
            (
                "iat within the leeway",
                with(cognito(), "iat", json!(NOW + 30)),
            ),
            (
                "fractional exp",
                with(cognito(), "exp", json!(NOW as f64 + 0.5)),
            ),
            (
                "no token_use (other issuers)",
                with(cognito(), "token_use", Value::Null),
            ),
            (
                "no iat or nbf",
                with(with(cognito(), "iat", Value::Null), "nbf", Value::Null),
            ),
            (
                "any client when none configured",
                with(cognito(), "client_id", json!("anyone")),
            ),
        ];
        for (name, claims) in ok {
            assert!(check(&r, claims).is_ok(), "{name}");
        }
    }

    #[test]
    fn aud_is_matched_when_present_as_string_or_array() {
        let r = rules(&["api-x"]);
        assert!(check(&r, with(cognito(), "aud", json!("api-x"))).is_ok());
        assert!(check(&r, with(cognito(), "aud", json!(["other", "api-x"]))).is_ok());
    }

    #[test]
    fn scopes_come_from_scope_and_scp() {
        let r = rules(&[]);
        let both = with(
            with(cognito(), "scope", json!(format!("{READ} openid"))),
            "scp",
            json!(["https://show-service-dev.api/shows.write", READ]),
        );
        let v = check(&r, both).unwrap();
        assert_eq!(
            v.scopes,
            vec![READ, "openid", "https://show-service-dev.api/shows.write"]
        );
        let scp_string = with(with(cognito(), "scope", Value::Null), "scp", json!(READ));
        assert!(check(&r, scp_string).unwrap().has_scope(READ));
        let none = with(cognito(), "scope", Value::Null);
        assert!(check(&r, none).unwrap().scopes.is_empty());
    }

    #[test]
    fn the_client_is_named_by_client_id_then_sub() {
        let r = rules(&[]);
        let no_client = with(cognito(), "client_id", Value::Null);
        assert_eq!(check(&r, no_client).unwrap().client_id, "client-a");
    }

    #[test]
    fn claims_of_the_wrong_type_do_not_parse() {
        for bad in [
            json!({"exp": "tomorrow"}),
            json!({"iss": 5}),
            json!({"aud": 5}),
            json!({"scope": ["a"]}),
            json!({"exp": 1e300}),
        ] {
            assert!(
                serde_json::from_value::<AccessClaims>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
