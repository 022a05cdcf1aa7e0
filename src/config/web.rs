//! What the API serves to browsers: the CORS origins and the `/docs` pages.

use super::reader::{Reader, bad};
use super::{ConfigError, SettingDoc};

pub const ALLOWED_ORIGINS: SettingDoc = SettingDoc {
    key: "cors.allowedorigins",
    env: "APP__CORS__ALLOWEDORIGINS",
    default: "(none: CORS off)",
    doc: "Origins allowed by CORS, comma separated, or `*`.",
};
pub const DOCS_ENABLED: SettingDoc = SettingDoc {
    key: "docs.enabled",
    env: "APP__DOCS__ENABLED",
    default: "true (local) / false",
    doc: "Serve the API reference at `/docs` and the catalogue preview at `/docs/catalogue` (`true` or `false`).",
};

#[derive(Debug, Clone)]
pub struct CorsSettings {
    /// Empty: no CORS headers. `["*"]`: any origin.
    pub allowed_origins: Vec<String>,
}

/// The `/docs` pages (`http::docs`).
#[derive(Debug, Clone)]
pub struct DocsSettings {
    pub enabled: bool,
}

pub(super) fn read_cors(r: &Reader) -> Result<CorsSettings, ConfigError> {
    let cors = CorsSettings {
        allowed_origins: r.list(&ALLOWED_ORIGINS),
    };
    for origin in &cors.allowed_origins {
        // Each origin becomes an `Access-Control-Allow-Origin` value as it is.
        if origin != "*" && http::HeaderValue::from_str(origin).is_err() {
            let set = r.get(&ALLOWED_ORIGINS).expect("origins were read");
            return Err(bad(set, "origins such as https://app.example.com, or *"));
        }
    }
    Ok(cors)
}

pub(super) fn read_docs(r: &Reader) -> Result<DocsSettings, ConfigError> {
    Ok(DocsSettings {
        enabled: r.parse(&DOCS_ENABLED, r.local(), "true or false")?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::load;

    #[test]
    fn the_docs_pages_are_on_in_local_mode_only_unless_set() {
        assert!(load(&[]).unwrap().docs.enabled);
        let cloud = [
            ("APP_ENV", "dev"),
            ("APP__AUTH__ISSUER", "https://issuer.example"),
        ];
        assert!(!load(&cloud).unwrap().docs.enabled);
        let on = [cloud[0], cloud[1], ("APP__DOCS__ENABLED", "true")];
        assert!(load(&on).unwrap().docs.enabled);
        assert!(
            !load(&[("APP__DOCS__ENABLED", "false")])
                .unwrap()
                .docs
                .enabled
        );
        let e = load(&[("APP__DOCS__ENABLED", "yes")]).unwrap_err();
        assert_eq!(e.source_name, "APP__DOCS__ENABLED");
    }

    #[test]
    fn an_origin_that_is_no_header_value_is_refused() {
        let s = load(&[("APP__CORS__ALLOWEDORIGINS", "https://a.example, *")]).unwrap();
        assert_eq!(s.cors.allowed_origins, ["https://a.example", "*"]);
        let e = load(&[("APP__CORS__ALLOWEDORIGINS", "https://a.example\u{7f}")]).unwrap_err();
        assert_eq!(e.source_name, "APP__CORS__ALLOWEDORIGINS");
    }
}
