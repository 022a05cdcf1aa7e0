//! A token bucket per key (the local issuer keys it by client id): `burst` requests at
//! once, then `rate` per second. The caller bounds the set of keys (the issuer maps ids it
//! does not know to one shared key), so the map cannot grow without limit.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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

    /// Takes one token from `key`'s bucket at `now`, or says how long until one is there.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
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
}
