//! Per-caller token buckets: each principal (or client IP, when anonymous) may make
//! `rps` requests per second on average and `burst` at once. Buckets live in memory, one
//! gateway replica at a time; a refused call learns how long to wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle buckets are forgotten once the table grows past this many callers.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by caller key.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `rps` tokens per second, at most `burst` saved up; `rps == 0` never limits.
    pub fn new(rps: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rps),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; the time until one is available when there is none.
    pub fn acquire(&self, key: &str) -> Result<(), Duration> {
        self.acquire_at(key, Instant::now())
    }

    fn acquire_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        // A poisoned lock only means another request panicked mid-update: the numbers are
        // still usable.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(2, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.acquire_at("a", start).is_ok());
        }
        let wait = limiter.acquire_at("a", start).unwrap_err();
        assert!(wait <= Duration::from_millis(500) && wait > Duration::ZERO);
        assert!(
            limiter.acquire_at("b", start).is_ok(),
            "buckets are per key"
        );
        let later = start + Duration::from_millis(500);
        assert!(limiter.acquire_at("a", later).is_ok());
        assert!(limiter.acquire_at("a", later).is_err());
    }

    #[test]
    fn a_zero_rate_never_limits() {
        let limiter = RateLimiter::new(0, 0);
        for _ in 0..1000 {
            assert!(limiter.acquire("a").is_ok());
        }
    }
}
