//! The local issuer's RSA signing key: generated on first start, kept beside the store
//! (`<data dir>/local-issuer.pk8`, PKCS#8 DER, file mode 0600), reused on every restart so
//! tokens outlive the process. Its `kid` is the key's RFC 7638 thumbprint, so the same
//! key always has the same id and a new key a new one.
//!
//! A key file that cannot be read or parsed stops start-up with a message naming the
//! file: silently replacing it would invalidate every token issued so far.

use anyhow::Context;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "local-issuer.pk8";

/// A parsed RSA private key and what is published about it.
pub struct SigningKey {
    /// Parsed once: signing with it needs no further parsing.
    pair: KeyPair,
    /// RFC 7638 thumbprint of the public key.
    kid: String,
    /// The public key as a JWK, for the JWKS document.
    public: PublicJwk,
}

/// An RSA public key as a JWK (RFC 7517), in the shape Cognito publishes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PublicJwk {
    pub alg: &'static str,
    pub e: String,
    pub kid: String,
    pub kty: &'static str,
    pub n: String,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Wraps a parsed key pair, computing its `kid` and public JWK.
    pub fn new(pair: KeyPair) -> SigningKey {
        let public = pair.public_key();
        let n = b64(public.modulus().big_endian_without_leading_zero());
        let e = b64(public.exponent().big_endian_without_leading_zero());
        let kid = thumbprint(&e, &n);
        SigningKey {
            pair,
            public: PublicJwk {
                alg: RS256,
                e,
                kid: kid.clone(),
                kty: "RSA",
                n,
                use_: "sig",
            },
            kid,
        }
    }

    /// A fresh 2048-bit key (Cognito's size), not saved anywhere.
    pub fn generate() -> anyhow::Result<SigningKey> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
        Ok(SigningKey::new(pair))
    }

    /// Loads the key from `dir`; `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> anyhow::Result<Option<SigningKey>> {
        let path = dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(der) => SigningKey::from_file_bytes(&path, &der).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e)
                .with_context(|| format!("cannot read the local issuer's key {}", path.display())),
        }
    }

    /// Loads the key from `dir`, or generates and saves one there when there is none.
    pub fn load_or_generate(dir: &Path) -> anyhow::Result<SigningKey> {
        if let Some(key) = SigningKey::load(dir)? {
            return Ok(key);
        }
        let path = dir.join(KEY_FILE);
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        let key = SigningKey::generate()?;
        let der = key
            .pair
            .as_der()
            .map_err(|_| anyhow::anyhow!("cannot encode the new key as PKCS#8"))?;
        if create_private_file(&path, der.as_ref())? {
            tracing::info!(path = %path.display(), kid = %key.kid, "generated the local issuer's signing key");
            Ok(key)
        } else {
            // Another process (a second `serve`, or `token`) saved its key first: use that
            // one, so both sign with the key that is on disk.
            let der = std::fs::read(&path).with_context(|| {
                format!("cannot read the local issuer's key {}", path.display())
            })?;
            SigningKey::from_file_bytes(&path, &der)
        }
    }

    fn from_file_bytes(path: &Path, der: &[u8]) -> anyhow::Result<SigningKey> {
        warn_if_readable_by_others(path);
        let pair = KeyPair::from_pkcs8(der).map_err(|e| {
            anyhow::anyhow!(
                "the local issuer's key {} is not a PKCS#8 RSA private key ({e}); move it \
                 away to generate a new one (tokens signed by the old key stop verifying)",
                path.display()
            )
        })?;
        Ok(SigningKey::new(pair))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// Signs `claims` as an RS256 JWT whose header names this key, in Cognito's shape
    /// (`{"kid","alg"}`). Signs with the key parsed once: jsonwebtoken's `EncodingKey`
    /// would parse the PKCS#8 key again for every token, which costs about as much as the
    /// signature.
    pub fn sign(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct Header<'a> {
            kid: &'a str,
            alg: &'static str,
        }
        let header = serde_json::to_vec(&Header {
            kid: &self.kid,
            alg: RS256,
        })?;
        let claims = serde_json::to_vec(claims)?;
        let modulus_len = self.pair.public_modulus_len();
        let mut token =
            String::with_capacity((header.len() + claims.len() + modulus_len) * 4 / 3 + 8);
        URL_SAFE_NO_PAD.encode_string(&header, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
        let mut signature = vec![0u8; modulus_len];
        self.pair
            .sign(
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
}

/// The one signature algorithm the service accepts and uses.
pub const RS256: &str = "RS256";

/// Unpadded base64url, as JOSE writes every binary value.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638 thumbprint of an RSA key: SHA-256 of `{"e","kty","n"}` with the members in
/// lexicographic order and no whitespace, base64url encoded.
pub fn thumbprint(e: &str, n: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// Writes `bytes` to `path` with mode 0600 unless `path` already exists; returns whether it
/// wrote. The file appears complete or not at all: it is written under a temporary name
/// and hard-linked into place (a link, unlike a rename, never replaces an existing file).
fn create_private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    let tmp = temp_name(path);
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot save the new key as {}", path.display())),
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    PathBuf::from(name)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the local issuer's key is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_matches_rfc_7638s_example() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint("AQAB", n),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_key_is_generated_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = SigningKey::load_or_generate(&data).unwrap();
        let path = data.join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let second = SigningKey::load_or_generate(&data).unwrap();
        assert_eq!(first.kid(), second.kid());
        assert_eq!(first.public_jwk(), second.public_jwk());
        assert_eq!(first.public_jwk().kid, first.kid());
        assert_eq!(first.public_jwk().e, "AQAB");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_key_file_stops_start_up_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, b"not a key").unwrap();
        let err = SigningKey::load_or_generate(dir.path()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(KEY_FILE) && msg.contains("PKCS#8"), "{msg}");
        // The file was not replaced.
        assert_eq!(std::fs::read(&path).unwrap(), b"not a key");
    }

    #[cfg(unix)]
    #[test]
    fn an_unreadable_key_path_stops_start_up_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: reading it fails with something other
        // than "not found", whoever runs the test (root ignores file modes).
        std::fs::create_dir(dir.path().join(KEY_FILE)).unwrap();
        let err = SigningKey::load_or_generate(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains(KEY_FILE), "{err:#}");
    }

    #[test]
    fn a_second_writer_keeps_the_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        assert!(create_private_file(&path, b"first").unwrap());
        assert!(!create_private_file(&path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
    }
}
