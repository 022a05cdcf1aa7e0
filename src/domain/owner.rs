//! Who owns a show and who may change it (OWASP API1: the check is per object, not only
//! per scope). A show's owner is a [`Partner`]: the partner a token's client id belongs
//! to, through the [`PartnerMap`] the settings read (a client not in the map is its own
//! partner), so a partner keeps its shows through a secret rotation with a second app
//! client. The [`Actor`] is who acts in one request; [`Actor::may_change`] is the rule
//! every write path applies, in the store, in the same step as the write. A show has a
//! [`Provenance`]: its owner (none for what the Go service or `import` without `--owner`
//! wrote), when it was created, and when and by which client it was last changed.

use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest partner name or client id accepted (Cognito's client ids are at most 128).
pub const MAX_PARTNER_LEN: usize = 128;

/// A partner: a name from the partner map (`acme`) or, for a client not in the map, the
/// client id itself. 1 to 128 of `A-Z a-z 0-9 . _ + -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct Partner(String);

impl Partner {
    pub fn parse(s: impl Into<String>) -> Result<Partner, String> {
        let s = s.into();
        let ok = (1..=MAX_PARTNER_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
        if ok {
            Ok(Partner(s))
        } else {
            Err(format!(
                "must be 1 to {MAX_PARTNER_LEN} of A-Z a-z 0-9 . _ + -"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Partner> for String {
    fn from(p: Partner) -> String {
        p.0
    }
}

impl fmt::Display for Partner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which partner each client id belongs to: `APP__AUTH__PARTNERS`,
/// `acme=<client id>|<client id>,globex=<client id>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartnerMap {
    by_client: HashMap<String, Partner>,
}

impl PartnerMap {
    /// Parses `name=client|client,name=client`; empty text is the empty map. A client
    /// named twice, an empty or malformed name or client id: an error saying which.
    pub fn parse(text: &str) -> Result<PartnerMap, String> {
        let mut by_client = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, clients)) = entry.split_once('=') else {
                return Err(format!("{entry:?} is not partner=client|client"));
            };
            let partner = Partner::parse(name.trim())
                .map_err(|e| format!("partner name {:?} {e}", name.trim()))?;
            if !names.insert(partner.clone()) {
                return Err(format!("partner {partner} is named twice"));
            }
            for client in clients.split('|').map(str::trim) {
                Partner::parse(client)
                    .map_err(|e| format!("client id {client:?} of partner {partner} {e}"))?;
                if by_client
                    .insert(client.to_string(), partner.clone())
                    .is_some()
                {
                    return Err(format!("client id {client} is in two partners"));
                }
            }
        }
        Ok(PartnerMap { by_client })
    }

    /// The partner of a client id: its map entry, or the client id itself.
    pub fn partner_of(&self, client_id: &str) -> Result<Partner, String> {
        match self.by_client.get(client_id) {
            Some(p) => Ok(p.clone()),
            None => Partner::parse(client_id),
        }
    }

    /// True when `owner` may be named as a show's owner: a partner of the map, or a
    /// well-formed client id.
    pub fn knows(&self, owner: &str) -> bool {
        self.by_client.values().any(|p| p.as_str() == owner) || Partner::parse(owner).is_ok()
    }

    /// The partners the map names, sorted.
    pub fn partners(&self) -> Vec<Partner> {
        let mut v: Vec<Partner> = self.by_client.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }
}

/// Who acts in one request: the token's client, its partner, and whether it holds
/// `shows.admin`. (`show-service import` acts as the partner `--owner` names, or without
/// it as an admin with no partner: what it creates is unowned.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub client: String,
    /// The owner of the slugs it creates.
    pub partner: Option<Partner>,
    pub admin: bool,
}

impl Actor {
    /// An operator acting on the store directly (`show-service import` without
    /// `--owner`, tests): may change any show; what it creates is unowned.
    pub fn operator(client: impl Into<String>) -> Actor {
        Actor {
            client: client.into(),
            partner: None,
            admin: true,
        }
    }

    /// The rule for a show that exists with `owner`: an admin may change any show; a
    /// partner only its own; an unowned show only an admin. (A slug nobody has may be
    /// created by any writer; it is then the actor's.)
    pub fn may_change(&self, owner: Option<&Partner>) -> bool {
        self.admin || (owner.is_some() && owner == self.partner.as_ref())
    }
}

/// A moment, kept as milliseconds since the Unix epoch; shown as RFC 3339 UTC
/// (`2026-12-07T22:47:45.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    pub fn from_millis(ms: u64) -> Timestamp {
        Timestamp(ms)
    }

    pub fn millis(self) -> u64 {
        self.0
    }

    /// Parses what [`fmt::Display`] writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
    pub fn parse(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() != 24 || b[23] != b'Z' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u64> {
            let t = s.get(r)?;
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())
                .flatten()
        };
        let seps = [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
        ];
        if seps.iter().any(|&(i, c)| b[i] != c) {
            return None;
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 {
            return None;
        }
        let days = days_from_civil(y as i64, mo as i64, d as i64);
        let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + se;
        let t = Timestamp(secs * 1000 + ms);
        // Reject dates that do not exist (31 February): they do not print back the same.
        (t.to_string() == s).then_some(t)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        Timestamp(
            t.duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_millis() as u64,
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1000;
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            self.0 % 1000
        )
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Who owns a stored show and who changed it when. Every field is `None` on a show the
/// Go service wrote (it keeps none of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub owner: Option<Partner>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    /// The client id of the last write.
    pub updated_by: Option<String>,
}

impl Provenance {
    /// The provenance a write by `actor` at `now` leaves on a show that had `before`
    /// (`None`: the slug was new, and becomes the actor's). An existing show keeps its
    /// owner (an admin's edit does not take it over; only an assignment does) and its
    /// creation time.
    pub fn after_write(before: Option<&Provenance>, actor: &Actor, now: Timestamp) -> Provenance {
        match before {
            None => Provenance {
                owner: actor.partner.clone(),
                created_at: Some(now),
                updated_at: Some(now),
                updated_by: Some(actor.client.clone()),
            },
            Some(b) => Provenance {
                owner: b.owner.clone(),
                created_at: b.created_at,
                updated_at: Some(now),
                updated_by: Some(actor.client.clone()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(partner: &str, admin: bool) -> Actor {
        Actor {
            client: format!("{partner}-client"),
            partner: Some(Partner::parse(partner).unwrap()),
            admin,
        }
    }

    #[test]
    fn a_partner_changes_its_own_shows_only_and_an_admin_any() {
        let a = Partner::parse("acme").unwrap();
        let b = Partner::parse("globex").unwrap();
        assert!(actor("acme", false).may_change(Some(&a)));
        assert!(!actor("acme", false).may_change(Some(&b)));
        assert!(!actor("acme", false).may_change(None));
        assert!(actor("platform", true).may_change(Some(&b)));
        assert!(actor("platform", true).may_change(None));
        let nobody = Actor {
            client: "import".into(),
            partner: None,
            admin: false,
        };
        assert!(!nobody.may_change(None) && !nobody.may_change(Some(&a)));
    }

    #[test]
    fn the_partner_map_keeps_a_partner_across_its_clients() {
        let map = PartnerMap::parse(" acme = c1 | c2 , globex=c3").unwrap();
        assert_eq!(map.partner_of("c1").unwrap().as_str(), "acme");
        assert_eq!(map.partner_of("c2").unwrap().as_str(), "acme");
        assert_eq!(map.partner_of("c3").unwrap().as_str(), "globex");
        assert_eq!(map.partner_of("c9").unwrap().as_str(), "c9");
        assert!(map.knows("acme") && map.knows("c9") && !map.knows("no spaces"));
        assert_eq!(map.partners().len(), 2);
        assert!(PartnerMap::parse("").unwrap().is_empty());
        for bad in [
            "acme",
            "acme=",
            "=c1",
            "acme=c1,acme=c2",
            "a=c1,b=c1",
            "a b=c1",
            "a=c 1",
        ] {
            assert!(PartnerMap::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn timestamps_print_rfc_3339_and_parse_back() {
        let t = Timestamp::from_millis(1_796_683_665_123);
        assert_eq!(t.to_string(), "2026-12-07T22:47:45.123Z");
        assert_eq!(Timestamp::parse("2026-12-07T22:47:45.123Z"), Some(t));
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::parse("2024-02-29T00:00:00.000Z")
                .unwrap()
                .to_string(),
            "2024-02-29T00:00:00.000Z"
        );
        for bad in [
            "2026-02-31T00:00:00.000Z",
            "2026-12-07T22:47:45Z",
            "",
            "2026-12-07 22:47:45.123Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_write_keeps_the_owner_and_creation_of_an_existing_show() {
        let now = Timestamp::from_millis(2_000);
        let created =
            Provenance::after_write(None, &actor("acme", false), Timestamp::from_millis(1_000));
        assert_eq!(created.owner.as_ref().unwrap().as_str(), "acme");
        let edited = Provenance::after_write(Some(&created), &actor("platform", true), now);
        assert_eq!(edited.owner, created.owner);
        assert_eq!(edited.created_at, created.created_at);
        assert_eq!(edited.updated_at, Some(now));
        assert_eq!(edited.updated_by.as_deref(), Some("platform-client"));
    }
}
