//! Property tests (proptest): the show parse/serialize round trip, the catalogue filter of
//! the SQLite store against a model, and the feed parser on hostile input.
//!
//! Each property runs a bounded number of cases (see `config`) so the suite stays quick;
//! `PROPTEST_CASES=5000 cargo test --test properties` runs a deeper search locally.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use show_service::domain::{
    Feed, FeedError, HexColour, HttpUrl, Image, MAX_FEED_ITEMS, NextEpisode, Season, SeasonSlug,
    Show, Slug, Text, Title,
};
use show_service::store::sqlite::SqliteStore;
use show_service::store::{PageRequest, ShowStore};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::num::NonZeroU32;

/// Writes as an operator: may change any show (ownership has tests of its own).
static OPERATOR: std::sync::LazyLock<show_service::domain::Actor> =
    std::sync::LazyLock::new(|| show_service::domain::Actor::operator("test"));

/// Cases per property: the default unless `PROPTEST_CASES` says otherwise.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // A failure prints its minimal input; no regression files in the tree.
        failure_persistence: None,
        // Long generated strings shrink slowly: report a failure within a minute.
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Generators of valid values. Free text uses any Unicode scalar value (controls, NUL,
// quotes, backslashes, astral characters): JSON escaping and SQLite's JSON functions must
// carry all of them.

fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        vec(any::<char>(), 0..=max.min(60)).prop_map(String::from_iter),
        // Exactly at the limit, counted in characters (multi-byte ones included).
        Just("é".repeat(max)),
    ]
}

fn slug() -> impl Strategy<Value = Slug> {
    "show/[a-z0-9][a-z0-9-]{0,24}".prop_map(|s| Slug::parse(s).unwrap())
}

fn title() -> impl Strategy<Value = Title> {
    (
        any::<char>().prop_filter("not blank", |c| !c.is_whitespace()),
        any_text(119),
    )
        .prop_map(|(first, rest)| {
            let s: String = std::iter::once(first)
                .chain(rest.chars().take(119))
                .collect();
            Title::parse(s).unwrap()
        })
}

fn text<const MAX: usize>() -> impl Strategy<Value = Text<MAX>> {
    any_text(MAX).prop_map(|s| Text::parse(s).unwrap())
}

fn url() -> impl Strategy<Value = HttpUrl> {
    "https?://[a-z][a-z0-9]{0,10}\\.example(:[1-9][0-9]{0,3})?/[a-zA-Z0-9/._~-]{0,30}(\\?[a-z]=[0-9]{1,3})?"
        .prop_map(|s| HttpUrl::parse(s).unwrap())
}

fn season() -> impl Strategy<Value = Season> {
    prop_oneof![
        ("show/[a-z0-9][a-z0-9-]{0,12}", 1u32..100)
            .prop_map(|(s, n)| SeasonSlug::parse(format!("{s}/season/{n}")).unwrap()),
        "show/[a-z0-9]{1,12}".prop_map(|s| SeasonSlug::parse(s).unwrap()),
    ]
    .prop_map(|slug| Season { slug })
}

fn next_episode() -> impl Strategy<Value = NextEpisode> {
    (
        proptest::option::of(text::<100>()),
        text::<2048>(),
        proptest::option::of(text::<100>()),
        text::<2000>(),
        url(),
    )
        .prop_map(|(channel, channel_logo, date, html, url)| NextEpisode {
            channel,
            channel_logo,
            date,
            html,
            url,
        })
}

/// Any valid show: every optional field present or not.
fn show() -> impl Strategy<Value = Show> {
    let main = (
        slug(),
        title(),
        proptest::option::of(text::<50>()),
        proptest::option::of(text::<50>()),
        proptest::option::of(text::<50>()),
        proptest::option::of(text::<50>()),
        proptest::option::of(text::<500>()),
        proptest::option::of("#[0-9a-fA-F]{6}".prop_map(|s| HexColour::parse(s).unwrap())),
    );
    let rest = (
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(url().prop_map(|show_image| Image { show_image })),
        proptest::option::of(next_episode()),
        proptest::option::of(vec(season(), 0..4)),
    );
    (main, rest).prop_map(
        |(
            (slug, title, country, genre, language, tv_channel, description, primary_colour),
            (drm, episode_count, image, next_episode, seasons),
        )| Show {
            slug,
            title,
            country,
            genre,
            language,
            tv_channel,
            description,
            primary_colour,
            drm,
            episode_count,
            image,
            next_episode,
            seasons,
        },
    )
}

fn parse_item(v: &Value) -> Result<Show, Vec<show_service::domain::Problem>> {
    let mut problems = Vec::new();
    match Show::from_json(v, "payload[0]", &mut problems) {
        Some(show) => {
            assert!(
                problems.is_empty(),
                "a Show came with problems: {problems:?}"
            );
            Ok(show)
        }
        None => {
            assert!(!problems.is_empty(), "refused without saying why");
            Err(problems)
        }
    }
}

/// The JSON a partner might send for `show`: absent fields sometimes spelled `null` (the
/// Go service wrote them), plus fields we do not know (feeds grow).
fn as_feed_item(show: &Show, nulls: bool, extra: bool) -> Value {
    let mut v = serde_json::to_value(show).unwrap();
    let obj = v.as_object_mut().unwrap();
    if nulls {
        for key in [
            "country",
            "genre",
            "language",
            "tvChannel",
            "description",
            "primaryColour",
            "drm",
            "episodeCount",
            "image",
            "nextEpisode",
            "seasons",
        ] {
            obj.entry(key).or_insert(Value::Null);
        }
    }
    if extra {
        obj.insert(
            "someFutureField".into(),
            json!({"nested": [1, "two", null]}),
        );
    }
    v
}

proptest! {
    #![proptest_config(config(256))]

    /// Any valid show → its JSON → `Show::from_json` → the same show; and serde's own
    /// round trip (how the SQLite store keeps a show) gives it back too.
    #[test]
    fn a_valid_show_survives_the_json_round_trip(
        show in show(), nulls in any::<bool>(), extra in any::<bool>()
    ) {
        let item = as_feed_item(&show, nulls, extra);
        let parsed = parse_item(&item).unwrap();
        prop_assert_eq!(&parsed, &show);

        let stored = serde_json::to_string(&show).unwrap();
        let back: Show = serde_json::from_str(&stored).unwrap();
        prop_assert_eq!(&back, &show);
        // What we store never carries fields we do not know, nor nulls.
        let v: Value = serde_json::from_str(&stored).unwrap();
        prop_assert!(v.get("someFutureField").is_none());
        prop_assert!(v.as_object().unwrap().values().all(|v| !v.is_null()));
        // Serializing is deterministic: a re-posted show stores the same bytes.
        prop_assert_eq!(serde_json::to_string(&parsed).unwrap(), stored);
    }

    /// A feed of valid, distinct shows parses to exactly those shows, in order.
    #[test]
    fn a_valid_feed_parses_to_its_shows(
        shows in vec(show(), 1..8),
        skip in proptest::option::of(any::<u32>()),
    ) {
        let mut seen = HashSet::new();
        let shows: Vec<Show> = shows.into_iter().filter(|s| seen.insert(s.slug.clone())).collect();
        let body = json!({
            "payload": shows.iter().map(|s| as_feed_item(s, false, true)).collect::<Vec<_>>(),
            "skip": skip, "take": shows.len(),
        });
        let feed = Feed::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        prop_assert_eq!(feed.shows, shows);
        prop_assert_eq!(feed.skip, skip.map(u64::from));
    }
}

// ---------------------------------------------------------------------------------------
// The catalogue filter: for random feeds posted one after another, the SQLite store's
// `list_eligible` returns exactly the shows with `drm == true && episodeCount > 0` (the
// last version of each slug), whole and paged.

/// A show whose eligibility inputs are drawn from the edge values, slugs from a small
/// set so that later feeds overwrite earlier ones.
fn catalogue_show() -> impl Strategy<Value = Show> {
    (
        0u8..24,
        title(),
        prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
        prop_oneof![
            Just(None),
            Just(Some(0u32)),
            Just(Some(1)),
            (1u32..5).prop_map(Some),
            Just(Some(u32::MAX))
        ],
        proptest::option::of(url()),
    )
        .prop_map(|(n, title, drm, episode_count, image)| Show {
            slug: Slug::parse(format!("show/s{n}")).unwrap(),
            title,
            country: None,
            genre: None,
            language: None,
            tv_channel: None,
            description: None,
            primary_colour: None,
            drm,
            episode_count,
            image: image.map(|show_image| Image { show_image }),
            next_episode: None,
            seasons: None,
        })
}

fn distinct(shows: Vec<Show>) -> Vec<Show> {
    let mut seen = HashSet::new();
    shows
        .into_iter()
        .filter(|s| seen.insert(s.slug.clone()))
        .collect()
}

type Row = (String, String, String);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn the_sqlite_catalogue_is_exactly_the_drm_shows_with_episodes(
        feeds in vec(vec(catalogue_show(), 1..12).prop_map(distinct), 1..4),
        limit in 1u32..6,
        delete in proptest::option::of(0u8..24),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("shows.db")).unwrap();
        let rt = runtime();

        // The model: the last posted version of every slug.
        let mut model: BTreeMap<String, Show> = BTreeMap::new();
        for feed in &feeds {
            let written = rt.block_on(store.upsert(feed.clone(), &OPERATOR)).unwrap();
            prop_assert_eq!(written, feed.len());
            for s in feed {
                model.insert(s.slug.to_string(), s.clone());
            }
        }
        if let Some(n) = delete {
            let slug = Slug::parse(format!("show/s{n}")).unwrap();
            let was = rt.block_on(store.delete(&slug, &OPERATOR)).unwrap();
            prop_assert_eq!(was, model.remove(slug.as_str()).is_some());
        }
        let expected: BTreeSet<Row> = model
            .values()
            .filter(|s| s.drm == Some(true) && s.episode_count.unwrap_or(0) > 0)
            .map(|s| (s.slug.to_string(), s.title.to_string(), s.list_image().to_string()))
            .collect();
        // `is_eligible` is the same rule, spelled once in the domain.
        prop_assert!(model.values().all(|s| s.is_eligible()
            == (s.drm == Some(true) && s.episode_count.unwrap_or(0) > 0)));

        let whole = rt.block_on(store.list_eligible(PageRequest::default())).unwrap();
        prop_assert!(whole.next.is_none());
        let got: Vec<Row> = whole
            .items
            .iter()
            .map(|i| (i.slug.clone(), i.title.clone(), i.image.clone()))
            .collect();
        prop_assert_eq!(got.len(), expected.len(), "no duplicates");
        prop_assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), expected);

        // Paging visits the same items in the same order, each once.
        let mut paged = Vec::new();
        let mut cursor = None;
        for _ in 0..100 {
            let page = rt
                .block_on(store.list_eligible(PageRequest {
                    limit: NonZeroU32::new(limit),
                    cursor: cursor.take(),
                }))
                .unwrap();
            prop_assert!(page.items.len() <= limit as usize);
            paged.extend(page.items.into_iter().map(|i| (i.slug, i.title, i.image)));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        prop_assert_eq!(paged, got);

        // Every stored show reads back whole, as posted last.
        for (slug, show) in &model {
            let back = rt
                .block_on(store.get(&Slug::parse(slug.clone()).unwrap()))
                .unwrap()
                .map(|stored| stored.show);
            prop_assert_eq!(back.as_ref(), Some(show));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hostile input: random JSON and random bytes never panic the parser, and a feed with any
// invalid item never yields a show.

/// Any JSON value, biased towards the shape of a feed so the parser gets deep into it.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("payload".to_string()),
        Just("slug".to_string()),
        Just("title".to_string()),
        Just("drm".to_string()),
        Just("episodeCount".to_string()),
        Just("image".to_string()),
        Just("showImage".to_string()),
        Just("nextEpisode".to_string()),
        Just("seasons".to_string()),
        Just("skip".to_string()),
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
        "show/[a-z0-9-]{0,6}(/season/[0-9x]{0,2})?".prop_map(Value::from),
        "https?://[a-z.]{0,8}/?".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// What must hold for any parser result: a feed is within limits, its slugs distinct, its
/// shows round-trip; a refusal always says why.
fn check_result(result: Result<Feed, FeedError>) -> Result<(), TestCaseError> {
    match result {
        Ok(feed) => {
            prop_assert!((1..=MAX_FEED_ITEMS).contains(&feed.shows.len()));
            let slugs: HashSet<_> = feed.shows.iter().map(|s| s.slug.clone()).collect();
            prop_assert_eq!(slugs.len(), feed.shows.len());
            for show in feed.shows {
                let v = serde_json::to_value(&show).unwrap();
                prop_assert_eq!(parse_item(&v).unwrap(), show);
            }
        }
        Err(FeedError::Invalid(problems)) => prop_assert!(!problems.is_empty()),
        Err(FeedError::NotJson) => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_json_never_panics_the_feed_parser(v in any_json()) {
        let from_value = Feed::from_value(&v);
        let from_bytes = Feed::parse(&serde_json::to_vec(&v).unwrap());
        // Same verdict whichever way in.
        prop_assert_eq!(
            from_value.as_ref().map(|f| f.shows.clone()).map_err(Clone::clone),
            from_bytes.as_ref().map(|f| f.shows.clone()).map_err(Clone::clone)
        );
        prop_assert!(!matches!(from_value, Err(FeedError::NotJson)));
        check_result(from_value)?;
        // The same value as a feed item, and wrapped in a feed.
        let _ = parse_item(&v);
        check_result(Feed::from_value(&json!({"payload": [v]})))?;
    }

    #[test]
    fn random_bytes_never_panic_the_feed_parser(bytes in vec(any::<u8>(), 0..512)) {
        check_result(Feed::parse(&bytes))?;
    }

    /// Break one item of a valid feed in one of many ways: the feed is refused whole, no
    /// show comes out, and a problem names the broken item.
    #[test]
    fn a_feed_with_an_invalid_item_yields_no_show(
        shows in vec(show(), 1..6),
        which in any::<prop::sample::Index>(),
        breakage in 0usize..BREAKAGES,
    ) {
        let shows = distinct(shows);
        let i = which.index(shows.len());
        let mut items: Vec<Value> = shows.iter().map(|s| as_feed_item(s, false, false)).collect();
        let other = (shows.len() > 1).then(|| shows[(i + 1) % shows.len()].slug.to_string());
        break_item(&mut items[i], breakage, other.as_deref());
        let body = serde_json::to_vec(&json!({"payload": items})).unwrap();
        match Feed::parse(&body) {
            Err(FeedError::Invalid(problems)) => {
                let at = format!("payload[{i}]");
                let dup_of_earlier = problems.iter().any(|p| p.message.contains("duplicates"));
                prop_assert!(
                    problems.iter().any(|p| p.path.starts_with(&at)) || dup_of_earlier,
                    "{:?}", problems
                );
            }
            other => prop_assert!(false, "breakage {} accepted: {:?}", breakage, other),
        }
        let mut problems = Vec::new();
        if breakage != DUPLICATE {
            prop_assert!(Show::from_json(&items[i], "x", &mut problems).is_none());
            prop_assert!(!problems.is_empty());
        }
    }
}

const BREAKAGES: usize = 24;
const DUPLICATE: usize = 23;

/// The `n`th way to make a feed item invalid.
fn break_item(item: &mut Value, n: usize, other_slug: Option<&str>) {
    let o = item.as_object_mut().unwrap();
    let (key, value) = match n {
        0 => ("slug", json!("Show/Upper")),
        1 => ("slug", json!("show/")),
        2 => ("slug", json!(format!("show/{}", "a".repeat(300)))),
        3 => ("slug", json!(42)),
        4 => ("title", json!(" \t\n")),
        5 => ("title", json!("é".repeat(121))),
        6 => ("country", json!("x".repeat(51))),
        7 => ("description", json!("ü".repeat(501))),
        8 => ("primaryColour", json!("#12345g")),
        9 => ("drm", json!("true")),
        10 => ("episodeCount", json!(-1)),
        11 => ("episodeCount", json!(u64::from(u32::MAX) + 1)),
        12 => ("episodeCount", json!(1.5)),
        13 => ("image", json!({"showImage": "javascript:alert(1)"})),
        14 => ("image", json!({})),
        15 => ("image", json!("http://a.example/x.jpg")),
        16 => (
            "nextEpisode",
            json!({"channelLogo": "x", "html": "y", "url": "ftp://a.example/"}),
        ),
        17 => (
            "nextEpisode",
            json!({"html": "y", "url": "http://a.example/"}),
        ),
        18 => ("seasons", json!([{"slug": "show/a/season/one"}])),
        19 => ("seasons", json!([null])),
        20 => ("seasons", json!("show/a")),
        21 => {
            o.remove("title");
            return;
        }
        22 => {
            *item = json!(["not", "an", "object"]);
            return;
        }
        DUPLICATE => match other_slug {
            Some(slug) => ("slug", json!(slug)),
            None => ("slug", json!("nope")),
        },
        _ => unreachable!(),
    };
    o.insert(key.to_string(), value);
}

/// Every committed seed of `target`, through `check`.
fn replay_seeds(target: &str, check: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        check(&bytes);
        n += 1;
    }
    assert!(n >= 3, "seeds missing under {}", dir.display());
}

// The same checks the fuzz targets run (`scripts/fuzz.sh`), on every committed seed.
#[test]
fn the_committed_feed_fuzz_seeds_replay_cleanly() {
    replay_seeds("feed", fuzz_checks::feed);
}

#[test]
fn the_committed_token_fuzz_seeds_replay_cleanly() {
    replay_seeds("token", fuzz_checks::token);
}

#[path = "../fuzz/src/checks.rs"]
mod fuzz_checks;

/// The edge the generators may rarely hit: NUL, controls and astral characters in a title
/// come back whole through SQLite's `json_extract` in the catalogue query.
#[test]
fn titles_with_nul_and_control_characters_list_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("shows.db")).unwrap();
    let title = "a\u{0}b\u{1}\u{7f}\u{1F600}\"\\</script>\u{2028}";
    let show = Show {
        slug: Slug::parse("show/nul").unwrap(),
        title: Title::parse(title).unwrap(),
        country: None,
        genre: None,
        language: None,
        tv_channel: None,
        description: None,
        primary_colour: None,
        drm: Some(true),
        episode_count: Some(1),
        image: None,
        next_episode: None,
        seasons: None,
    };
    let rt = runtime();
    rt.block_on(store.upsert(vec![show], &OPERATOR)).unwrap();
    let page = rt
        .block_on(store.list_eligible(PageRequest::default()))
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].title, title);
}

// ---------------------------------------------------------------------------------------
// The OpenAPI document's patterns agree with the parser: every string a client (or
// schemathesis) builds from the documented pattern is accepted. Read from the generated
// document itself, so a change to either side that breaks the agreement fails here.

fn doc_pattern(schema: &str, field: &str) -> (String, Option<usize>) {
    let doc = serde_json::to_value(show_service::http::openapi::document(true)).unwrap();
    let f = &doc["components"]["schemas"][schema]["properties"][field];
    let pattern = f["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{schema}.{field} has no pattern: {f}"));
    (
        pattern.to_string(),
        f["maxLength"].as_u64().map(|n| n as usize),
    )
}

fn from_doc_pattern(schema: &str, field: &str) -> impl Strategy<Value = String> + use<> {
    let (pattern, max) = doc_pattern(schema, field);
    // Generation makes whole strings: anchors are implied and not supported. Unbounded
    // repeats are bounded so that cases stay short (and quick to shrink).
    let body = pattern
        .trim_start_matches('^')
        .trim_end_matches('$')
        .replace('*', "{0,8}")
        .replace('+', "{1,8}");
    proptest::string::string_regex(&body)
        .unwrap()
        .prop_filter("within maxLength", move |s| {
            max.is_none_or(|m| s.chars().count() <= m)
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn strings_matching_the_documented_patterns_are_accepted(
        slug in from_doc_pattern("Show", "slug"),
        season in from_doc_pattern("Season", "slug"),
        image in from_doc_pattern("Image", "showImage"),
        url in from_doc_pattern("NextEpisode", "url"),
        title_char in from_doc_pattern("Show", "title"),
        title_rest in any_text(100),
    ) {
        prop_assert!(Slug::parse(slug.clone()).is_ok(), "{slug:?}");
        prop_assert!(SeasonSlug::parse(season.clone()).is_ok(), "{season:?}");
        prop_assert!(HttpUrl::parse(image.clone()).is_ok(), "{image:?}");
        prop_assert!(HttpUrl::parse(url.clone()).is_ok(), "{url:?}");
        // The title's pattern is unanchored: one non-space character anywhere.
        let title: String = title_rest.chars().take(60).chain(title_char.chars()).collect();
        prop_assert!(Title::parse(title.clone()).is_ok(), "{title:?}");
    }
}
