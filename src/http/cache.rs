//! The serialized catalogue (`GET /v1/shows` without paging), kept in memory: the JSON
//! bytes, a gzip variant made once per fill, and an ETag.
//!
//! Writes through this instance invalidate it at once (a generation counter bumped before
//! and after each write, so a fill that raced a write is never kept). Writes by other
//! instances show after at most the TTL. One fill runs at a time; concurrent misses wait
//! for it instead of all querying the store.

use bytes::Bytes;
use std::io::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bodies smaller than this are not worth compressing.
const GZIP_MIN_BYTES: usize = 1024;

/// One filled catalogue.
#[derive(Debug)]
pub struct CachedList {
    pub json: Bytes,
    /// The gzip variant, when the body is large enough to gain from it.
    pub gzip: Option<Bytes>,
    /// A strong ETag of the JSON bytes, quoted.
    pub etag: String,
    filled_at: Instant,
    generation: u64,
}

impl CachedList {
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
        CachedList {
            etag: etag_of(&json),
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

    /// Returns the fresh entry, or fills it with `load` (one fill at a time).
    pub async fn get_or_fill<F, Fut, E>(&self, load: F) -> Result<std::sync::Arc<CachedList>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes, E>>,
    {
        if let Some(hit) = self.get() {
            return Ok(hit);
        }
        let _filling = self.fill.lock().await;
        if let Some(hit) = self.get() {
            return Ok(hit);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let json = load().await?;
        let entry = std::sync::Arc::new(CachedList::new(json, generation));
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
