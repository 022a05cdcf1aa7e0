//! A token bucket per key: `burst` requests at once, then `rate` per second. The local
//! issuer keeps three: tokens issued per authenticated client, and failed attempts per
//! source address and per attempted client id (known or not, so the answers do not tell
//! which ids exist). The map holds at most [`MAX_KEYS`] keys: past that, buckets that
//! have refilled (which are the same as no bucket) are dropped, and if none has, the
//! oldest-touched half goes.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most keys a limiter remembers.
pub const MAX_KEYS: usize = 10_000;
/// Longest key kept: longer client-supplied keys are cut here.
const MAX_KEY_BYTES: usize = 256;

pub struct RateLimiter {
    /// Tokens added per second.
    rate: f64,
    /// Most tokens a bucket holds.
    burst: f64,
    /// Each key's tokens and when they were last topped up.
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(rate_per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate_per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// A limiter refilling `rate_per_second` (may be below one) up to `burst`.
    pub fn with_rate(rate_per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: rate_per_second.max(1e-3),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `key`'s bucket at `now`, or says how long until one is there.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.with_bucket(key, now, |tokens| {
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                Ok(())
            } else {
                Err(())
            }
        })
        .map_err(|tokens| self.wait(tokens))
    }

    /// Whether `key`'s bucket holds a token at `now` (none is taken), else how long until
    /// it does.
    pub fn available(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.with_bucket(
            key,
            now,
            |tokens| if *tokens >= 1.0 { Ok(()) } else { Err(()) },
        )
        .map_err(|tokens| self.wait(tokens))
    }

    /// Whether `key`'s bucket is full at `now` (nothing was taken lately).
    pub fn is_full(&self, key: &str, now: Instant) -> bool {
        self.with_bucket(key, now, |tokens| {
            if *tokens >= self.burst {
                Ok(())
            } else {
                Err(())
            }
        })
        .is_ok()
    }

    /// Takes one token from `key`'s bucket if it has one (a charge, not a check).
    pub fn charge(&self, key: &str, now: Instant) {
        let _ = self.check(key, now);
    }

    fn wait(&self, tokens: f64) -> Duration {
        Duration::from_secs_f64((1.0 - tokens).max(0.0) / self.rate)
    }

    /// Runs `f` on `key`'s bucket topped up to `now`; on `Err` returns the tokens held.
    fn with_bucket(
        &self,
        key: &str,
        now: Instant,
        f: impl FnOnce(&mut f64) -> Result<(), ()>,
    ) -> Result<(), f64> {
        let key = match key.char_indices().nth(MAX_KEY_BYTES) {
            Some((end, _)) => &key[..end],
            None => key,
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            self.prune(&mut buckets, now);
        }
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *at = now;
        f(tokens).map_err(|()| *tokens)
    }

    fn prune(&self, buckets: &mut HashMap<String, (f64, Instant)>, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        buckets.retain(|_, (tokens, at)| {
            *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
        });
        if buckets.len() >= MAX_KEYS {
            let mut ages: Vec<Instant> = buckets.values().map(|(_, at)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            buckets.retain(|_, (_, at)| *at > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate_applies_per_key() {
        let limiter = RateLimiter::new(10, 20);
        let t0 = Instant::now();
        for i in 0..20 {
            assert!(limiter.check("a", t0).is_ok(), "request {i} of the burst");
        }
        let wait = limiter.check("a", t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another client has its own bucket.
        assert!(limiter.check("b", t0).is_ok());
        // A tenth of a second later one more token is there, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.check("a", t1).is_ok());
        assert!(limiter.check("a", t1).is_err());
        // After a long pause the bucket is full again, but no fuller.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..20 {
            assert!(limiter.check("a", t2).is_ok());
        }
        assert!(limiter.check("a", t2).is_err());
    }

    #[test]
    fn availability_is_looked_at_without_taking_and_the_map_stays_bounded() {
        let limiter = RateLimiter::with_rate(0.1, 2);
        let t0 = Instant::now();
        assert!(limiter.is_full("a", t0));
        for _ in 0..5 {
            assert!(limiter.available("a", t0).is_ok());
        }
        limiter.charge("a", t0);
        assert!(!limiter.is_full("a", t0));
        limiter.charge("a", t0);
        let wait = limiter.available("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        for i in 0..(MAX_KEYS + 10) {
            limiter.charge(&format!("k{i}"), t0);
        }
        let len = limiter.buckets.lock().unwrap().len();
        assert!(len <= MAX_KEYS, "{len}");
    }
}
