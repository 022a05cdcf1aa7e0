//! The permissions a client may hold over the catalogue, and the one place their names
//! are spelled: the short name (`shows.read`) and the full one a token carries
//! (`<resource server>/shows.read`). Config parses names into [`Scope`]s once; auth and
//! the HTTP layer only ever hold the enum.

/// A permission a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read the catalogue and shows.
    Read,
    /// Post feeds and delete shows (a partner's own, or new slugs).
    Write,
    /// Write and delete any show, and assign owners (`/v1/admin/`).
    Admin,
}

impl Scope {
    /// Every scope, in the order tokens list them.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    /// The short scope name; the full one is `<resource-server>/<name>`.
    pub const fn name(self) -> &'static str {
        match self {
            Scope::Read => "shows.read",
            Scope::Write => "shows.write",
            Scope::Admin => "shows.admin",
        }
    }

    /// The full name a token carries: `<resource_server>/<name>`.
    pub fn full_name(self, resource_server: &str) -> String {
        format!("{resource_server}/{}", self.name())
    }

    /// The scope of a short name.
    pub fn from_name(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The scope of a short name or of a full name under `resource_server`.
    pub fn parse(name: &str, resource_server: &str) -> Option<Scope> {
        Scope::from_name(name).or_else(|| {
            let (prefix, short) = name.rsplit_once('/')?;
            (prefix == resource_server)
                .then(|| Scope::from_name(short))
                .flatten()
        })
    }

    /// Every short name, `a / b`, for messages.
    pub fn names() -> String {
        Scope::ALL.map(Scope::name).join(" / ")
    }

    /// Position in [`Scope::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_names_parse_to_the_same_scope() {
        let rs = "https://show-service-dev.api";
        assert_eq!(Scope::parse("shows.read", rs), Some(Scope::Read));
        assert_eq!(
            Scope::parse("https://show-service-dev.api/shows.write", rs),
            Some(Scope::Write)
        );
        assert_eq!(Scope::parse("https://other.api/shows.write", rs), None);
        assert_eq!(Scope::parse("shows.delete", rs), None);
        assert_eq!(Scope::parse("", rs), None);
        assert_eq!(
            Scope::Read.full_name(rs),
            "https://show-service-dev.api/shows.read"
        );
        assert_eq!(Scope::names(), "shows.read / shows.write / shows.admin");
        for s in Scope::ALL {
            assert_eq!(Scope::ALL[s.index()], s);
            assert_eq!(Scope::from_name(&s.to_string()), Some(s));
        }
    }
}
