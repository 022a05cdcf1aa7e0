//! Dependencies point down: http → auth → domain and http → store → domain. These tests
//! read the sources and fail naming each file that imports a module above its own.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/<dir>`.
fn sources(dir: &str) -> Vec<PathBuf> {
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
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir),
        &mut out,
    );
    assert!(!out.is_empty(), "no sources under src/{dir}");
    out
}

/// Whether `text` names the crate's module `module`: `crate::module`, or `module` inside
/// a `crate::{…}` group.
fn imports(text: &str, module: &str) -> bool {
    let squeezed: String = text.split_whitespace().collect();
    let direct = format!("crate::{module}");
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let direct_hit = squeezed.match_indices(&direct).any(|(at, _)| {
        !squeezed[at + direct.len()..]
            .chars()
            .next()
            .is_some_and(is_ident)
    });
    let grouped = squeezed.match_indices("crate::{").any(|(at, m)| {
        let group = &squeezed[at + m.len()..];
        let group = &group[..group.find('}').unwrap_or(group.len())];
        group
            .split(|c: char| !is_ident(c))
            .any(|name| name == module)
    });
    direct_hit || grouped
}

/// The files under `src/<dir>` that import any of `above`, with what they import.
fn violations(dir: &str, above: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for path in sources(dir) {
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        for module in above {
            if imports(&text, module) {
                bad.push(format!("{} imports crate::{module}", path.display()));
            }
        }
    }
    bad
}

#[test]
fn the_scan_finds_each_spelling_of_an_import() {
    assert!(imports("use crate::http::extract::X;", "http"));
    assert!(imports("crate :: http::oauth", "http"));
    assert!(imports("use crate::{config, http::extract};", "http"));
    assert!(!imports("use crate::http_util::X;", "http"));
    assert!(!imports("use axum::http::HeaderValue;", "http"));
    assert!(!imports("use crate::{config, store};", "http"));
}

#[test]
fn auth_does_not_import_http() {
    let bad = violations("auth", &["http"]);
    assert!(bad.is_empty(), "auth sits below http:\n{}", bad.join("\n"));
}

#[test]
fn store_does_not_import_http_or_auth() {
    let bad = violations("store", &["http", "auth", "catalogue"]);
    assert!(bad.is_empty(), "store sits below http:\n{}", bad.join("\n"));
}

#[test]
fn catalogue_imports_only_store_and_domain() {
    let mut bad = violations("catalogue", &["http", "auth", "config", "cli", "telemetry"]);
    for path in sources("catalogue") {
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        if text.contains("axum") {
            bad.push(format!("{} names axum", path.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "catalogue sits below http, beside auth:\n{}",
        bad.join("\n")
    );
}

#[test]
fn domain_imports_no_layer_above_it() {
    let bad = violations("domain", &["http", "auth", "store", "config"]);
    assert!(
        bad.is_empty(),
        "domain is the bottom layer:\n{}",
        bad.join("\n")
    );
}

/// Before the `#[cfg(test)]` part of a file (tests may spell scope names).
fn code_part(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

#[test]
fn scope_names_are_spelled_only_by_the_scope_type() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![
        root.join("config.rs"),
        root.join("auth/issuer.rs"),
        root.join("auth/mod.rs"),
    ];
    files.extend(sources("http"));
    let mut bad = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        for name in ["\"shows.read\"", "\"shows.write\""] {
            if code_part(&text).contains(name) {
                bad.push(format!("{} spells {name}", path.display()));
            }
        }
    }
    let scope = std::fs::read_to_string(root.join("domain/scope.rs")).expect("domain/scope.rs");
    assert!(scope.contains("\"shows.read\"") && scope.contains("\"shows.write\""));
    assert!(
        bad.is_empty(),
        "use crate::domain::Scope:\n{}",
        bad.join("\n")
    );
}
