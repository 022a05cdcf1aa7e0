//! Compact JWS (RFC 7515) as access tokens use it: `b64(header).b64(claims).b64(signature)`
//! with RS256 (RSASSA-PKCS1-v1_5, SHA-256) and nothing else.
//!
//! [`parse`] only takes a token apart and reads its header; the caller checks the
//! signature with the key the header names, and only then reads the claims. [`sign_rs256`]
//! makes a token with an already parsed key (parsing an RSA private key costs about as
//! much as a signature, so the issuer keeps its key parsed).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The one signature algorithm accepted and used.
pub const RS256: &str = "RS256";

/// Longest token looked at. Cognito's access tokens are about 1 KB; anything near this is
/// not a token we issued or would accept, and refusing early bounds the work per request.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a string is not a usable compact JWS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("token longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    #[error("not three base64url segments")]
    Shape,
    #[error("the {0} segment is not unpadded base64url")]
    Base64(&'static str),
    #[error("the header is not a JSON object with a string alg")]
    Header,
    #[error("algorithm {0:?} is not accepted (RS256 only)")]
    Algorithm(String),
    #[error("the header has no kid")]
    NoKid,
    #[error("the header names critical extensions")]
    Critical,
}

/// The header fields we read; others (`typ`, `x5t`, …) are ignored.
#[derive(Debug, Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7515 §4.1.11: extensions the verifier must understand. We understand none.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// A token taken apart; nothing in it is trusted until the signature verifies.
#[derive(Debug)]
pub struct Parts<'a> {
    /// The key id from the header.
    pub kid: String,
    /// `b64(header).b64(claims)`: the bytes the signature covers.
    pub signing_input: &'a [u8],
    /// The claims segment, still encoded: decoded only once the signature is good.
    pub claims_b64: &'a str,
    pub signature: Vec<u8>,
}

impl Parts<'_> {
    /// The claims' JSON bytes. Call only after the signature verified.
    pub fn claims_json(&self) -> Result<Vec<u8>, JwsError> {
        URL_SAFE_NO_PAD
            .decode(self.claims_b64)
            .map_err(|_| JwsError::Base64("claims"))
    }
}

/// Takes `token` apart and checks its header: RS256, a `kid`, no `crit`.
///
/// The base64url decoder is strict (no padding, no stray bits), so each token has exactly
/// one encoding and a signature cannot be re-encoded into a second, different-looking token.
pub fn parse(token: &str) -> Result<Parts<'_>, JwsError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwsError::TooLong);
    }
    let mut segments = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(JwsError::Shape);
    };
    if header_b64.is_empty() || claims_b64.is_empty() || signature_b64.is_empty() {
        return Err(JwsError::Shape);
    }
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JwsError::Base64("header"))?;
    let header: RawHeader = serde_json::from_slice(&header_json).map_err(|_| JwsError::Header)?;
    if header.alg != RS256 {
        return Err(JwsError::Algorithm(header.alg));
    }
    if header.crit.is_some() {
        return Err(JwsError::Critical);
    }
    let kid = match header.kid {
        Some(k) if !k.is_empty() => k,
        _ => return Err(JwsError::NoKid),
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| JwsError::Base64("signature"))?;
    let signing_len = header_b64.len() + 1 + claims_b64.len();
    Ok(Parts {
        kid,
        signing_input: &token.as_bytes()[..signing_len],
        claims_b64,
        signature,
    })
}

/// The header the issuer writes: Cognito's shape, `{"kid","alg"}`.
#[derive(Serialize)]
struct SignHeader<'a> {
    kid: &'a str,
    alg: &'static str,
}

/// Signs `claims` with `key` as an RS256 compact JWS whose header names `kid`.
pub fn sign_rs256(key: &KeyPair, kid: &str, claims: &impl Serialize) -> anyhow::Result<String> {
    let header = serde_json::to_vec(&SignHeader { kid, alg: RS256 })?;
    let claims = serde_json::to_vec(claims)?;
    let mut token =
        String::with_capacity((header.len() + claims.len() + key.public_modulus_len()) * 4 / 3 + 8);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
    let mut signature = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        token.as_bytes(),
        &mut signature,
    )
    .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}

/// Unpadded base64url, as JOSE writes every binary value.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(json: &str) -> String {
        b64(json.as_bytes())
    }

    fn token(header: &str, claims: &str, sig: &str) -> String {
        format!("{}.{}.{sig}", seg(header), seg(claims))
    }

    #[test]
    fn a_well_formed_rs256_token_is_taken_apart() {
        let t = token(
            r#"{"kid":"k1","alg":"RS256","typ":"JWT"}"#,
            r#"{"a":1}"#,
            "c2ln",
        );
        let parts = parse(&t).unwrap();
        assert_eq!(parts.kid, "k1");
        assert_eq!(parts.signature, b"sig");
        assert_eq!(parts.claims_json().unwrap(), br#"{"a":1}"#);
        let dot = t.rfind('.').unwrap();
        assert_eq!(parts.signing_input, &t.as_bytes()[..dot]);
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let cases: Vec<(String, JwsError)> = vec![
            (long, JwsError::TooLong),
            ("".into(), JwsError::Shape),
            ("abc".into(), JwsError::Shape),
            ("a.b".into(), JwsError::Shape),
            ("a.b.c.d".into(), JwsError::Shape),
            ("a..c".into(), JwsError::Shape),
            (
                format!("{}.e30.", seg(r#"{"alg":"RS256","kid":"k"}"#)),
                JwsError::Shape,
            ),
            ("!!!.e30.c2ln".into(), JwsError::Base64("header")),
            (
                format!("{}=.e30.c2ln", seg(r#"{"alg":"RS256","kid":"k"}"#)),
                JwsError::Base64("header"),
            ),
            (token("not json", "{}", "c2ln"), JwsError::Header),
            (token(r#"{"alg":5}"#, "{}", "c2ln"), JwsError::Header),
            (token(r#"{"kid":"k"}"#, "{}", "c2ln"), JwsError::Header),
            (
                token(r#"{"alg":"none","kid":"k"}"#, "{}", "c2ln"),
                JwsError::Algorithm("none".into()),
            ),
            (
                token(r#"{"alg":"HS256","kid":"k"}"#, "{}", "c2ln"),
                JwsError::Algorithm("HS256".into()),
            ),
            (
                token(r#"{"alg":"rs256","kid":"k"}"#, "{}", "c2ln"),
                JwsError::Algorithm("rs256".into()),
            ),
            (
                token(r#"{"alg":"PS256","kid":"k"}"#, "{}", "c2ln"),
                JwsError::Algorithm("PS256".into()),
            ),
            (token(r#"{"alg":"RS256"}"#, "{}", "c2ln"), JwsError::NoKid),
            (
                token(r#"{"alg":"RS256","kid":""}"#, "{}", "c2ln"),
                JwsError::NoKid,
            ),
            (
                token(r#"{"alg":"RS256","kid":"k","crit":["b64"]}"#, "{}", "c2ln"),
                JwsError::Critical,
            ),
            (
                token(r#"{"alg":"RS256","kid":"k"}"#, "{}", "c2ln="),
                JwsError::Base64("signature"),
            ),
            // "cw" is the byte 0x73; "cx" says the same with a stray bit past the end.
            (
                token(r#"{"alg":"RS256","kid":"k"}"#, "{}", "cx"),
                JwsError::Base64("signature"),
            ),
        ];
        for (t, want) in cases {
            assert_eq!(parse(&t).unwrap_err(), want, "{t:.60}");
        }
    }

    #[test]
    fn claims_are_decoded_only_on_request() {
        let t = format!("{}.!!!.c2ln", seg(r#"{"alg":"RS256","kid":"k"}"#));
        let parts = parse(&t).expect("the claims segment is not read by parse");
        assert_eq!(parts.claims_json(), Err(JwsError::Base64("claims")));
    }
}
