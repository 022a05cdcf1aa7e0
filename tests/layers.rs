//! The crate's layers, as a test: every module's allowed imports (the picture in
//! `src/lib.rs`), no cycle between modules or between the files of one module, and no
//! HTTP crate below the HTTP layer. These tests read the sources and fail naming each file
//! and the import that breaks the picture.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and the crate modules it may import: the whole picture, top to
/// bottom. A module missing here fails [`every_module_has_a_place_in_the_picture`].
const LAYERS: &[(&str, &str)] = &[
    // the command line: starts everything
    (
        "cli",
        "http catalogue auth store error telemetry config domain",
    ),
    // the HTTP layer: routes, extractors, middleware, the connection layer
    ("http", "catalogue auth store error telemetry config domain"),
    // the API error type and its envelope: the HTTP layer's, fed by the layers below
    ("error", "auth store domain"),
    // the cached catalogue: snapshot, freshness, pages
    ("catalogue", "store domain"),
    // token verification and the local issuer
    ("auth", "telemetry config domain"),
    // the stores
    ("store", "config domain"),
    // tracing, the metrics table and its exporters: read their settings, nothing else
    ("telemetry", "config"),
    // typed settings
    ("config", "domain"),
    // the bottom: shows, feeds, scopes
    ("domain", ""),
];

/// External crates that belong to the HTTP layer; the modules in [`NO_HTTP_CRATES`] may not
/// use them.
const HTTP_CRATES: &[&str] = &["axum", "tower_http", "hyper", "hyper_util", "tower"];
const NO_HTTP_CRATES: &[&str] = &["config", "telemetry", "domain", "store", "catalogue"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
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

/// The top-level modules: `src/<name>.rs` and `src/<name>/`, without the crate roots.
fn top_modules() -> BTreeSet<String> {
    std::fs::read_dir(src())
        .expect("src/")
        .map(|e| e.expect("an entry").path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_string();
            (p.is_dir() || p.extension().is_some_and(|e| e == "rs")).then_some(name)
        })
        .filter(|n| n != "lib" && n != "main")
        .collect()
}

/// The module path (`["store", "dynamodb", "item"]`) of a source file.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("a file under src/");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The file that holds module `path`, or the deepest ancestor of it that has one (an item
/// path such as `store::ShowStore` resolves to `src/store/mod.rs`).
fn file_of(path: &[String]) -> Option<PathBuf> {
    let mut best = None;
    let mut dir = src();
    for segment in path {
        let file = dir.join(format!("{segment}.rs"));
        let module = dir.join(segment).join("mod.rs");
        if file.is_file() {
            best = Some(file);
        } else if module.is_file() {
            best = Some(module);
        } else {
            break;
        }
        dir = dir.join(segment);
    }
    best
}

/// The paths a text names after `crate::` or `super::`, groups (`crate::{a, b::{c, d}}`)
/// expanded, each made absolute (`super` resolved against `module`). Doc links count:
/// a link to a module above is an arrow up too.
fn named_paths(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let squeezed = squeeze(text);
    let bytes = squeezed.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    for prefix in ["crate::", "super::"] {
        for (at, _) in squeezed.match_indices(prefix) {
            if at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b':') {
                continue; // `mycrate::`, `self::super::` and the like
            }
            let base: Vec<String> = if prefix == "crate::" {
                Vec::new()
            } else {
                // `super` of `a/b.rs` is `a`; of `a/b/mod.rs` it is `a` too.
                module[..module.len().saturating_sub(1)].to_vec()
            };
            expand(&squeezed[at + prefix.len()..], base, &mut out);
        }
    }
    out
}

/// `text` with whitespace runs made one space, and none around `::`, braces and commas,
/// so `crate :: { a ,b }` reads as `crate::{a,b}` while `use crate` keeps its space.
fn squeeze(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let joins = |c: Option<char>| matches!(c, Some(':' | '{' | '}' | ','));
    let mut out = String::with_capacity(text.len());
    for (i, word) in words.iter().enumerate() {
        if i > 0 && !joins(out.chars().last()) && !joins(word.chars().next()) {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Reads one path tree (`a::b::{c, d::e}`) from the start of `rest`, appending each leaf
/// path to `out` (prefixed by `base`).
fn expand(rest: &str, base: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let bytes = rest.as_bytes();
    let mut path = base;
    let mut i = 0;
    loop {
        if bytes.get(i) == Some(&b'{') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return i,
                    Some(b'}') => return i + 1,
                    Some(b',') => i += 1,
                    Some(_) => {
                        let used = expand(&rest[i..], path.clone(), out);
                        if used == 0 {
                            i += 1;
                        } else {
                            i += used;
                        }
                    }
                }
            }
        }
        let start = i;
        while bytes
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            i += 1;
        }
        if i == start {
            if !path.is_empty() {
                out.push(path);
            }
            return i;
        }
        let ident = &rest[start..i];
        if ident != "self" {
            path.push(ident.to_string());
        }
        if rest[i..].starts_with("::") {
            i += 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// Every source file with the files its paths resolve to.
fn file_graph() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    walk(&src(), &mut files);
    let mut graph = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        let module = module_of(&file);
        let targets = named_paths(&text, &module)
            .iter()
            .filter_map(|p| file_of(p))
            .filter(|t| *t != file)
            .collect();
        graph.insert(file, targets);
    }
    graph
}

fn top_of(file: &Path) -> String {
    module_of(file).first().cloned().unwrap_or_default()
}

#[test]
fn the_scan_reads_each_spelling_of_an_import() {
    let m = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    let paths = |text: &str, module: &str| named_paths(text, &m(module));
    assert_eq!(
        paths("use crate::http::extract::X;", "cli"),
        [m("http::extract::X")]
    );
    assert_eq!(
        paths("use crate::{config, store::{self, DynStore}};", "cli"),
        [m("config"), m("store"), m("store::DynStore")]
    );
    assert_eq!(paths("crate :: http::oauth", "cli"), [m("http::oauth")]);
    assert_eq!(
        paths("use super::metrics::Kind;", "telemetry::emf"),
        [m("telemetry::metrics::Kind")]
    );
    assert!(paths("use axum::http::HeaderValue; use mycrate::x;", "cli").is_empty());
    assert_eq!(
        file_of(&m("store::dynamodb::item::Thing")),
        Some(src().join("store/dynamodb/item.rs"))
    );
    assert_eq!(
        file_of(&m("store::ShowStore")),
        Some(src().join("store/mod.rs"))
    );
}

#[test]
fn every_module_has_a_place_in_the_picture() {
    let placed: BTreeSet<String> = LAYERS.iter().map(|(m, _)| m.to_string()).collect();
    let missing: Vec<_> = top_modules().difference(&placed).cloned().collect();
    assert!(missing.is_empty(), "add to LAYERS: {missing:?}");
    // The picture itself runs one way: each module may import only modules listed after it.
    for (at, (module, allowed)) in LAYERS.iter().enumerate() {
        for a in allowed.split_whitespace() {
            let below = LAYERS[at + 1..].iter().any(|(m, _)| *m == a);
            assert!(below, "{module} may import {a}, which is not below it");
        }
    }
}

#[test]
fn the_picture_in_lib_rs_is_this_table() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs");
    let picture = lib
        .split("//! ```text")
        .nth(1)
        .and_then(|rest| rest.split("//! ```").next())
        .expect("a ```text picture in lib.rs's Layout section");
    let drawn: Vec<&str> = picture
        .lines()
        .filter_map(|l| l.trim_start_matches("//!").split_whitespace().next())
        .collect();
    let table: Vec<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    assert_eq!(
        drawn, table,
        "lib.rs draws the layers in this order, top to bottom"
    );
}

#[test]
fn every_import_points_down() {
    let allowed: BTreeMap<&str, Vec<&str>> = LAYERS
        .iter()
        .map(|(m, a)| (*m, a.split_whitespace().collect()))
        .collect();
    let mut bad = Vec::new();
    for (file, targets) in file_graph() {
        let from = top_of(&file);
        for target in targets {
            let to = top_of(&target);
            if to == from || to.is_empty() {
                continue;
            }
            if !allowed
                .get(from.as_str())
                .is_some_and(|a| a.iter().any(|m| *m == to))
            {
                bad.push(format!("{} imports {}", file.display(), target.display()));
            }
        }
    }
    assert!(bad.is_empty(), "arrows that run up:\n{}", bad.join("\n"));
}

#[test]
fn the_files_of_a_module_import_each_other_without_a_cycle() {
    // Edges from a file to its own module's `mod.rs` (or an ancestor's) are the child using
    // what its parent declares; the parent naming its children is how modules are made.
    // A cycle is between siblings (or cousins): `a.rs` → `b.rs` → … → `a.rs`.
    let graph = file_graph();
    let is_ancestor_file = |from: &Path, to: &Path| {
        to.file_name().is_some_and(|n| n == "mod.rs")
            && to.parent().is_some_and(|dir| from.starts_with(dir))
    };
    let edges: BTreeMap<&PathBuf, Vec<&PathBuf>> = graph
        .iter()
        .map(|(f, ts)| {
            let kept = ts
                .iter()
                .filter(|t| {
                    top_of(t) == top_of(f) && !is_ancestor_file(f, t) && !is_ancestor_file(t, f)
                })
                .collect();
            (f, kept)
        })
        .collect();
    // Depth-first search for a back edge.
    fn visit<'a>(
        node: &'a PathBuf,
        edges: &BTreeMap<&'a PathBuf, Vec<&'a PathBuf>>,
        state: &mut BTreeMap<&'a PathBuf, u8>,
        stack: &mut Vec<&'a PathBuf>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(node, 1);
        stack.push(node);
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                0 => visit(next, edges, state, stack, cycles),
                1 => {
                    let at = stack.iter().position(|n| n == next).unwrap_or(0);
                    let names: Vec<String> = stack[at..]
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect();
                    cycles.push(format!("{} -> {}", names.join(" -> "), next.display()));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node, 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for node in edges.keys() {
        if !state.contains_key(*node) {
            visit(node, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_http_crate_below_the_http_layer() {
    let mut files = Vec::new();
    walk(&src(), &mut files);
    let mut bad = Vec::new();
    for file in files {
        if !NO_HTTP_CRATES.contains(&top_of(&file).as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        let squeezed = squeeze(&text);
        for krate in HTTP_CRATES {
            let spelled = format!("{krate}::");
            let hit = squeezed.match_indices(&spelled).any(|(at, _)| {
                at == 0 || !matches!(squeezed.as_bytes()[at - 1], b'a'..=b'z' | b'_' | b':' | b'0'..=b'9' | b'A'..=b'Z')
            });
            if hit {
                bad.push(format!("{} uses {krate}", file.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "HTTP crates below http:\n{}",
        bad.join("\n")
    );
}

/// Before the `#[cfg(test)]` part of a file (tests may spell scope names).
fn code_part(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

#[test]
fn scope_names_are_spelled_only_by_the_scope_type() {
    let mut files = Vec::new();
    for dir in ["config", "auth", "http"] {
        let path = src().join(dir);
        if path.is_dir() {
            walk(&path, &mut files);
        } else {
            files.push(src().join(format!("{dir}.rs")));
        }
    }
    let mut bad = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        for name in ["\"shows.read\"", "\"shows.write\""] {
            if code_part(&text).contains(name) {
                bad.push(format!("{} spells {name}", path.display()));
            }
        }
    }
    let scope = std::fs::read_to_string(src().join("domain/scope.rs")).expect("domain/scope.rs");
    assert!(scope.contains("\"shows.read\"") && scope.contains("\"shows.write\""));
    assert!(
        bad.is_empty(),
        "use crate::domain::Scope:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_source_file_is_over_700_lines() {
    let mut files = Vec::new();
    walk(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).ok()?.lines().count();
            (lines > 700).then(|| format!("{}: {lines} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split by concern:\n{}", long.join("\n"));
}
