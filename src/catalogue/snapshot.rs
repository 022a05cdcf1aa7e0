//! One filled catalogue as bytes: the `GET /v1/shows` JSON in page order, a gzip variant
//! made once per fill, a content ETag, and each item's position and byte range (its slot)
//! so pages are cut from the same bytes and a change is spliced in without serializing
//! the unchanged items again.
//!
//! The JSON is sorted by `(episodeCount, slug)` here, whatever order the store returned,
//! so two tasks holding the same catalogue hold the same bytes and send the same ETag
//! (a hash of the bytes only), and a cursor (a position, not an offset) continues any
//! task's walk on any other task and across refills.
//!
//! A snapshot knows nothing of where it came from or how fresh it is: that is
//! the freshness rules' (`ListCache`).

use crate::store::ListItem;
use crate::store::cursor::Position;
use bytes::Bytes;
use http::HeaderValue;
use std::io::Write;

/// Bodies smaller than this are not worth compressing.
const GZIP_MIN_BYTES: usize = 1024;

/// Where one item sits in the snapshot.
#[derive(Debug)]
struct Slot {
    episode_count: u32,
    slug: Box<str>,
    /// Its JSON object's byte range in [`Snapshot::json`].
    start: usize,
    end: usize,
}

/// One filled catalogue.
#[derive(Debug)]
pub struct Snapshot {
    /// `{"response":[…]}`, items in `(episodeCount, slug)` order.
    pub json: Bytes,
    /// The gzip variant, when the body is large enough to gain from it.
    pub gzip: Option<Bytes>,
    /// A strong ETag of the JSON bytes, quoted.
    pub etag: String,
    /// `etag` as a header value, made once per fill.
    pub etag_header: HeaderValue,
    slots: Vec<Slot>,
}

/// The catalogue's JSON for `items` in page order, and where each item is in it.
fn serialize(mut items: Vec<ListItem>) -> Result<(Vec<u8>, Vec<Slot>), serde_json::Error> {
    items.sort_unstable_by(|a, b| (a.episode_count, &a.slug).cmp(&(b.episode_count, &b.slug)));
    items.dedup_by(|a, b| a.slug == b.slug && a.episode_count == b.episode_count);
    let mut json = Vec::with_capacity(16 + items.len() * 128);
    let mut slots = Vec::with_capacity(items.len());
    json.extend_from_slice(b"{\"response\":[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        let start = json.len();
        serde_json::to_writer(&mut json, &item)?;
        slots.push(Slot {
            episode_count: item.episode_count,
            slug: item.slug.into_boxed_str(),
            start,
            end: json.len(),
        });
    }
    json.extend_from_slice(b"]}");
    Ok((json, slots))
}

impl Snapshot {
    /// The snapshot of `items`: `previous`'s gzip variant and ETag when the JSON is the
    /// same bytes, else compressed and hashed anew.
    pub fn build(
        items: Vec<ListItem>,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, serde_json::Error> {
        let (json, slots) = serialize(items)?;
        Ok(Snapshot::assemble(json, slots, previous))
    }

    /// This snapshot with the shows named in `slugs` replaced by `items` (those of them in
    /// the catalogue now): the same bytes a full build of the result would make, so the
    /// same ETag.
    pub fn apply(
        &self,
        slugs: &[String],
        mut items: Vec<ListItem>,
    ) -> Result<Snapshot, serde_json::Error> {
        let changed: std::collections::HashSet<&str> = slugs.iter().map(String::as_str).collect();
        items.retain(|i| changed.contains(i.slug.as_str()));
        let (fresh, fresh_slots) = serialize(items)?;
        let mut json = Vec::with_capacity(self.json.len() + fresh.len());
        let mut slots = Vec::with_capacity(self.slots.len() + fresh_slots.len());
        json.extend_from_slice(b"{\"response\":[");
        let mut push = |json: &mut Vec<u8>, ec: u32, slug: &str, bytes: &[u8]| {
            if !slots.is_empty() {
                json.push(b',');
            }
            let start = json.len();
            json.extend_from_slice(bytes);
            slots.push(Slot {
                episode_count: ec,
                slug: slug.into(),
                start,
                end: json.len(),
            });
        };
        let mut added = fresh_slots.iter().peekable();
        for old in self.slots.iter().filter(|s| !changed.contains(&*s.slug)) {
            while let Some(n) =
                added.next_if(|n| (n.episode_count, &*n.slug) < (old.episode_count, &*old.slug))
            {
                push(&mut json, n.episode_count, &n.slug, &fresh[n.start..n.end]);
            }
            push(
                &mut json,
                old.episode_count,
                &old.slug,
                &self.json[old.start..old.end],
            );
        }
        for n in added {
            push(&mut json, n.episode_count, &n.slug, &fresh[n.start..n.end]);
        }
        json.extend_from_slice(b"]}");
        Ok(Snapshot::assemble(json, slots, Some(self)))
    }

    fn assemble(json: Vec<u8>, slots: Vec<Slot>, previous: Option<&Snapshot>) -> Snapshot {
        let json = Bytes::from(json);
        let (gzip, etag, etag_header) = match previous {
            Some(p) if p.json == json => (p.gzip.clone(), p.etag.clone(), p.etag_header.clone()),
            _ => {
                let etag = etag_of(&json);
                let header =
                    HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
                (gzip_of(&json), etag, header)
            }
        };
        Snapshot {
            json,
            gzip,
            etag,
            etag_header,
            slots,
        }
    }

    /// How many items the catalogue holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// One page: at most `limit` items after `after` (from the start when `None`), as
    /// the `GET /v1/shows` JSON with `next` when more remain.
    pub fn page(&self, after: Option<&Position>, limit: usize) -> Bytes {
        let start = after.map_or(0, |p| {
            self.slots.partition_point(|s| {
                (s.episode_count, &*s.slug) <= (p.episode_count, p.slug.as_str())
            })
        });
        let end = start.saturating_add(limit.max(1)).min(self.slots.len());
        let mut out = Vec::with_capacity(
            64 + self.slots.get(start..end).map_or(0, |s| {
                s.last().map_or(0, |l| l.end) - s.first().map_or(0, |f| f.start)
            }),
        );
        out.extend_from_slice(b"{\"response\":[");
        if let (Some(first), Some(last)) =
            (self.slots.get(start), self.slots.get(end.wrapping_sub(1)))
            && start < end
        {
            out.extend_from_slice(&self.json[first.start..last.end]);
        }
        out.push(b']');
        if end < self.slots.len()
            && let Some(last) = self.slots.get(end - 1)
            && let Ok(slug) = crate::domain::Slug::parse(&*last.slug)
        {
            let next = Position {
                episode_count: last.episode_count,
                slug,
            }
            .encode();
            out.extend_from_slice(b",\"next\":\"");
            out.extend_from_slice(next.as_bytes());
            out.push(b'"');
        }
        out.push(b'}');
        Bytes::from(out)
    }
}

/// The gzip variant of `json`, when it is large enough to gain from one.
pub fn gzip_of(json: &[u8]) -> Option<Bytes> {
    if json.len() < GZIP_MIN_BYTES {
        return None;
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(json).ok()?;
    enc.finish().ok().map(Bytes::from)
}

/// A strong ETag: FNV-1a 64 of the bytes and their length. Content only, so every task
/// holding the same catalogue sends the same one.
pub fn etag_of(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}-{:x}\"", bytes.len())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::Slug;

    /// A catalogue entry for tests: no image, title `T {slug}`.
    pub(crate) fn item(count: u32, slug: &str) -> ListItem {
        ListItem {
            image: String::new(),
            slug: slug.into(),
            title: format!("T {slug}"),
            episode_count: count,
        }
    }

    #[test]
    fn applied_changes_make_the_bytes_a_full_build_makes() {
        // Random catalogues and random changes (adds, removals, moves, new titles): the
        // spliced snapshot equals the one built from the result.
        fastrand::seed(12);
        for round in 0..200 {
            let n = fastrand::usize(0..40);
            let mut shows: std::collections::BTreeMap<String, ListItem> = (0..n)
                .map(|i| {
                    let slug = format!("show/s{i}");
                    (slug.clone(), item(fastrand::u32(1..6), &slug))
                })
                .collect();
            let before = Snapshot::build(shows.values().cloned().collect(), None).unwrap();
            let mut slugs = Vec::new();
            for _ in 0..fastrand::usize(0..8) {
                let slug = format!("show/s{}", fastrand::usize(0..50));
                match fastrand::u8(0..3) {
                    0 => {
                        shows.remove(&slug);
                    }
                    1 => {
                        shows.insert(slug.clone(), item(fastrand::u32(1..6), &slug));
                    }
                    _ => {
                        let mut it = item(fastrand::u32(1..6), &slug);
                        it.title = format!("New {round}");
                        shows.insert(slug.clone(), it);
                    }
                }
                slugs.push(slug);
            }
            let named: Vec<ListItem> = shows
                .values()
                .filter(|i| slugs.contains(&i.slug))
                .cloned()
                .collect();
            let applied = before.apply(&slugs, named).unwrap();
            let full = Snapshot::build(shows.values().cloned().collect(), None).unwrap();
            assert_eq!(applied.json, full.json, "round {round}");
            assert_eq!(applied.etag, full.etag);
            assert_eq!(applied.len(), full.len());
            let page = |s: &Snapshot| s.page(None, 3);
            assert_eq!(page(&applied), page(&full), "pages cut from the same slots");
        }
    }

    #[test]
    fn snapshots_of_the_same_catalogue_agree_whatever_order_the_store_gave() {
        let a = vec![item(2, "show/b"), item(1, "show/z"), item(2, "show/a")];
        let mut b = a.clone();
        b.reverse();
        let sa = Snapshot::build(a, None).unwrap();
        let sb = Snapshot::build(b, None).unwrap();
        assert_eq!(sa.json, sb.json);
        assert_eq!(sa.etag, sb.etag);
        let v: serde_json::Value = serde_json::from_slice(&sa.json).unwrap();
        let slugs: Vec<&str> = v["response"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["slug"].as_str().unwrap())
            .collect();
        assert_eq!(slugs, ["show/z", "show/a", "show/b"]);
    }

    #[test]
    fn pages_are_cut_from_the_snapshot_and_resume_by_position() {
        let items: Vec<ListItem> = (0..10)
            .map(|i| item(i / 3 + 1, &format!("show/s{i}")))
            .collect();
        let snap = Snapshot::build(items, None).unwrap();
        let mut seen = Vec::new();
        let mut after: Option<Position> = None;
        loop {
            let body = snap.page(after.as_ref(), 4);
            let v: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            let page = v["response"].as_array().unwrap();
            assert!(page.len() <= 4);
            seen.extend(page.iter().map(|i| i["slug"].as_str().unwrap().to_string()));
            match v.get("next").and_then(|n| n.as_str()) {
                Some(c) => after = Some(Position::decode(c).unwrap()),
                None => break,
            }
        }
        let want: Vec<String> = (0..10).map(|i| format!("show/s{i}")).collect();
        assert_eq!(seen, want);
        // A position whose show is gone still resumes after it.
        let gone = Position {
            episode_count: 2,
            slug: Slug::parse("show/s3x").unwrap(),
        };
        let v: serde_json::Value = serde_json::from_slice(&snap.page(Some(&gone), 1)).unwrap();
        assert_eq!(v["response"][0]["slug"], "show/s4");
        // Past the end: an empty last page.
        let end = Position {
            episode_count: 99,
            slug: Slug::parse("show/a").unwrap(),
        };
        let v: serde_json::Value = serde_json::from_slice(&snap.page(Some(&end), 5)).unwrap();
        assert_eq!(v, serde_json::json!({"response": []}));
        let empty = Snapshot::build(vec![], None).unwrap();
        assert_eq!(&empty.page(None, 3)[..], b"{\"response\":[]}");
        assert_eq!(&empty.json[..], b"{\"response\":[]}");
    }

    #[test]
    fn large_bodies_get_a_gzip_variant_and_etags_differ() {
        let big = vec![b'a'; 10_000];
        assert!(gzip_of(&big).unwrap().len() < big.len() / 10);
        assert!(gzip_of(b"{}").is_none());
        assert_ne!(etag_of(b"a"), etag_of(b"b"));
        let e = etag_of(&big);
        assert!(e.starts_with('"') && e.ends_with('"'));
    }
}
