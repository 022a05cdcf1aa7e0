//! The README's configuration table is the settings table of `src/config/mod.rs`, row for row,
//! and its metrics table is `telemetry::table::METRICS`. `UPDATE_README=1` rewrites the
//! metrics table from the code before checking it.

use show_service::config::{ENV_VARS, SETTINGS};

fn expected_table() -> String {
    let mut out = String::from(
        "| variable | default | meaning |\n|---|---|---|\n\
         | `APP_ENV` | `local` | `local`, `dev`, `test` or `prod`; chooses the defaults below |\n",
    );
    for s in SETTINGS {
        out.push_str(&format!("| `{}` | {} | {} |\n", s.env, s.default, s.doc));
    }
    out
}

#[test]
fn the_readme_lists_every_setting_as_the_code_documents_it() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- settings-table")
        .and_then(|i| readme[i..].find('\n').map(|j| i + j + 1))
        .expect("settings-table marker");
    let end = readme.find("<!-- /settings-table -->").expect("end marker");
    let table = &readme[start..end];
    assert_eq!(
        table,
        expected_table(),
        "README's settings table differs from config::SETTINGS; paste the expected text"
    );
    for var in ENV_VARS {
        assert!(
            table.contains(&format!("`{var}`")),
            "{var} missing from the README"
        );
    }
}

#[test]
fn the_readme_lists_every_metric_as_the_code_documents_it() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let start = readme
        .find("<!-- metrics-table")
        .and_then(|i| readme[i..].find('\n').map(|j| i + j + 1))
        .expect("metrics-table marker");
    let end = readme.find("<!-- /metrics-table -->").expect("end marker");
    let expected = show_service::telemetry::table::markdown_table();
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
        std::fs::write(path, updated).expect("README.md written");
        return the_readme_lists_every_metric_as_the_code_documents_it_unchanged(path);
    }
    assert_eq!(
        &readme[start..end],
        expected,
        "README's metrics table differs from telemetry::table::METRICS; run UPDATE_README=1 cargo nextest run --test docs"
    );
    for m in show_service::telemetry::table::METRICS {
        assert!(readme.contains(&format!("`{}`", m.name)), "{}", m.name);
    }
}

fn the_readme_lists_every_metric_as_the_code_documents_it_unchanged(path: &str) {
    let readme = std::fs::read_to_string(path).expect("README.md");
    assert!(readme.contains(&show_service::telemetry::table::markdown_table()));
}
