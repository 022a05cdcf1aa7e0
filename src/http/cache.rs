//! The serialized catalogue (`GET /v1/shows` without paging), kept in memory: the JSON
//! bytes, a gzip variant made once per fill, and an ETag.
//!
//! Writes through this instance invalidate it at once (a generation counter bumped before
//! and after each write, so a fill that raced a write is never kept). Writes by other
//! instances show after at most the TTL. One fill runs at a time; concurrent misses wait
//! for it instead of all querying the store.
//!
//! Under steady traffic the entry is refreshed ahead of its expiry: the first request that
//! finds it past [`REFRESH_AT`] of its TTL refills it while every other request keeps
//! being served the entry, which is still fresh. Without this, every TTL all requests
//! stalled behind one fill (a 10,000-show fill takes tens of milliseconds), which cost a
//! third of the 10,000-show throughput and set the p99 latency. A refill whose JSON is
//! byte for byte the previous one keeps the previous gzip variant and ETag instead of
//! compressing again.

use bytes::Bytes;
use std::io::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bodies smaller than this are not worth compressing.
const GZIP_MIN_BYTES: usize = 1024;

/// The fraction of the TTL after which a request refreshes the entry ahead of its expiry.
pub const REFRESH_AT: (u32, u32) = (3, 4);

/// One filled catalogue.
#[derive(Debug)]
pub struct CachedList {
    pub json: Bytes,
    /// The gzip variant, when the body is large enough to gain from it.
    pub gzip: Option<Bytes>,
    /// A strong ETag of the JSON bytes, quoted.
    pub etag: String,
    /// `etag` as a header value, made once per fill.
    pub etag_header: axum::http::HeaderValue,
    filled_at: Instant,
    generation: u64,
}

impl CachedList {
    /// The entry for `json`: `previous`'s gzip variant and ETag when its JSON is the same
    /// bytes, else compressed and hashed anew.
    fn renew(json: Bytes, generation: u64, previous: Option<&CachedList>) -> CachedList {
        match previous {
            Some(p) if p.json == json => CachedList {
                json,
                gzip: p.gzip.clone(),
                etag: p.etag.clone(),
                etag_header: p.etag_header.clone(),
                filled_at: Instant::now(),
                generation,
            },
            _ => CachedList::new(json, generation),
        }
    }

    /// Builds the cache entry for `json`, compressing it once.
    pub fn new(json: Bytes, generation: u64) -> CachedList {
        let gzip = (json.len() >= GZIP_MIN_BYTES)
            .then(|| {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(json.len() / 4),
                    flate2::Compression::fast(),
                );
                enc.write_all(&json).ok()?;
                enc.finish().ok().map(Bytes::from)
            })
            .flatten();
        let etag = etag_of(&json);
        CachedList {
            etag_header: axum::http::HeaderValue::from_str(&etag)
                .unwrap_or(axum::http::HeaderValue::from_static("\"0\"")),
            etag,
            json,
            gzip,
            filled_at: Instant::now(),
            generation,
        }
    }
}

/// A strong ETag: FNV-1a 64 of the bytes and their length.
pub fn etag_of(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}-{:x}\"", bytes.len())
}

pub struct ListCache {
    entry: RwLock<Option<std::sync::Arc<CachedList>>>,
    generation: AtomicU64,
    ttl: Duration,
    /// Serializes fills so a burst of misses makes one store query.
    fill: tokio::sync::Mutex<()>,
}

impl ListCache {
    pub fn new(ttl: Duration) -> ListCache {
        ListCache {
            entry: RwLock::new(None),
            generation: AtomicU64::new(0),
            ttl,
            fill: tokio::sync::Mutex::new(()),
        }
    }

    /// The entry, when it is fresh and no write happened since it was filled.
    pub fn get(&self) -> Option<std::sync::Arc<CachedList>> {
        let guard = self.entry.read().unwrap_or_else(|e| e.into_inner());
        let entry = guard.as_ref()?;
        let fresh = entry.generation == self.generation.load(Ordering::Acquire)
            && entry.filled_at.elapsed() < self.ttl;
        fresh.then(|| entry.clone())
    }

    /// Marks every entry filled before now as stale. Call before and after each write.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Returns the fresh entry, or fills it with `load` (one fill at a time). A fresh entry
    /// past [`REFRESH_AT`] of its TTL is refilled by the one request that gets the fill
    /// lock; the others are served the fresh entry meanwhile.
    pub async fn get_or_fill<F, Fut, E>(&self, load: F) -> Result<std::sync::Arc<CachedList>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes, E>>,
    {
        if let Some(hit) = self.get() {
            if hit.filled_at.elapsed() < self.ttl * REFRESH_AT.0 / REFRESH_AT.1 {
                return Ok(hit);
            }
            let Ok(_filling) = self.fill.try_lock() else {
                return Ok(hit); // being refreshed; still fresh
            };
            if self
                .get()
                .is_some_and(|now| !std::sync::Arc::ptr_eq(&now, &hit))
            {
                return Ok(hit); // refreshed just now by another request
            }
            // The entry is fresh: if the refill fails, keep serving it until it expires.
            return Ok(self.fill_locked(load).await.unwrap_or(hit));
        }
        let _filling = self.fill.lock().await;
        if let Some(hit) = self.get() {
            return Ok(hit);
        }
        self.fill_locked(load).await
    }

    /// Loads and stores a new entry; the caller holds the fill lock.
    async fn fill_locked<F, Fut, E>(&self, load: F) -> Result<std::sync::Arc<CachedList>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes, E>>,
    {
        let generation = self.generation.load(Ordering::Acquire);
        let json = load().await?;
        let previous = self.entry.read().unwrap_or_else(|e| e.into_inner()).clone();
        let entry = std::sync::Arc::new(CachedList::renew(json, generation, previous.as_deref()));
        if self.ttl > Duration::ZERO {
            *self.entry.write().unwrap_or_else(|e| e.into_inner()) = Some(entry.clone());
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn a_fill_is_reused_until_a_write_or_the_ttl() {
        let cache = ListCache::new(Duration::from_secs(60));
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(Bytes::from_static(b"{\"response\":[]}"))
        };
        cache.get_or_fill(load).await.unwrap();
        cache.get_or_fill(load).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        cache.invalidate();
        cache.get_or_fill(load).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);

        let short = ListCache::new(Duration::from_millis(1));
        short.get_or_fill(load).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(short.get().is_none());
    }

    #[tokio::test]
    async fn a_fill_that_raced_a_write_is_not_kept() {
        let cache = ListCache::new(Duration::from_secs(60));
        cache
            .get_or_fill(|| async {
                cache.invalidate(); // a write lands while the store is read
                Ok::<_, ()>(Bytes::from_static(b"old"))
            })
            .await
            .unwrap();
        assert!(cache.get().is_none());
    }

    #[tokio::test]
    async fn a_nearly_expired_entry_is_refreshed_by_one_request_while_others_use_it() {
        // TTL 2 s, refreshed from 1.5 s: each step below has 400 ms of margin.
        let cache = ListCache::new(Duration::from_secs(2));
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(Bytes::from(vec![b'x'; 4096]))
        };
        let first = cache.get_or_fill(load).await.unwrap();
        // Before REFRESH_AT of the TTL: the same entry, no load.
        let again = cache.get_or_fill(load).await.unwrap();
        assert!(std::sync::Arc::ptr_eq(&first, &again));
        assert_eq!(loads.load(Ordering::SeqCst), 1);

        tokio::time::sleep(Duration::from_millis(1600)).await;
        // Past it, while a refresh holds the fill lock: the fresh entry, at once.
        let held = cache.fill.try_lock().unwrap();
        let during = tokio::time::timeout(Duration::from_secs(5), cache.get_or_fill(load))
            .await
            .expect("served without waiting for the fill")
            .unwrap();
        assert!(std::sync::Arc::ptr_eq(&first, &during));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        drop(held);
        // The next request refreshes it; same bytes: the gzip variant and ETag are reused.
        let refreshed = cache.get_or_fill(load).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        assert!(!std::sync::Arc::ptr_eq(&first, &refreshed));
        assert_eq!(refreshed.etag, first.etag);
        assert_eq!(refreshed.gzip, first.gzip);
        assert!(refreshed.gzip.as_ref().unwrap().as_ptr() == first.gzip.as_ref().unwrap().as_ptr());

        // A failed refresh keeps serving the entry while it is fresh.
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let kept = cache
            .get_or_fill(|| async { Err::<Bytes, ()>(()) })
            .await
            .unwrap();
        assert!(std::sync::Arc::ptr_eq(&kept, &refreshed));
        // Once expired, a failure is the caller's.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            cache
                .get_or_fill(|| async { Err::<Bytes, ()>(()) })
                .await
                .is_err()
        );
        // Different bytes: compressed and hashed anew.
        let changed = cache
            .get_or_fill(|| async { Ok::<_, ()>(Bytes::from(vec![b'y'; 4096])) })
            .await
            .unwrap();
        assert_ne!(changed.etag, refreshed.etag);
    }

    #[test]
    fn large_bodies_get_a_gzip_variant_and_etags_differ() {
        let big = Bytes::from(vec![b'a'; 10_000]);
        let e = CachedList::new(big.clone(), 0);
        assert!(e.gzip.as_ref().unwrap().len() < big.len() / 10);
        assert!(CachedList::new(Bytes::from_static(b"{}"), 0).gzip.is_none());
        assert_ne!(etag_of(b"a"), etag_of(b"b"));
        assert!(e.etag.starts_with('"') && e.etag.ends_with('"'));
    }
}
