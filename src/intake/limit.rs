//! Token buckets per sender, on the injectable clock's monotonic time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::time::Clock;

/// Maximum number of senders tracked at once. At the bound, buckets that have refilled
/// completely are dropped first, because a full bucket behaves like a new one. When none has,
/// the least recently used bucket goes, which resets that sender's limit.
const MAX_TRACKED_SENDERS: usize = 10_000;

/// Settings of every sender's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Messages a sender may send at once: the bucket's capacity.
    pub burst: u32,
    /// Tokens added per minute.
    pub per_minute: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Duration,
}

/// Rate limits keyed by sender. The map sits behind one mutex, which a message holds for a
/// few arithmetic steps, or for one scan of the map when it is at its bound.
pub struct SenderLimiter {
    limit: RateLimit,
    clock: Arc<dyn Clock>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl SenderLimiter {
    pub fn new(limit: RateLimit, clock: Arc<dyn Clock>) -> Self {
        SenderLimiter {
            limit,
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `sender`. Returns `Err(wait)` with the time until the next token
    /// when the bucket is empty.
    pub fn try_acquire(&self, sender: &str) -> Result<(), Duration> {
        let now = self.clock.monotonic();
        let capacity = f64::from(self.limit.burst);
        let per_ms = self.limit.per_minute / 60_000.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED_SENDERS && !buckets.contains_key(sender) {
            buckets.retain(|_, bucket| {
                let idle_ms = now.saturating_sub(bucket.updated).as_secs_f64() * 1000.0;
                bucket.tokens + idle_ms * per_ms < capacity
            });
            if buckets.len() >= MAX_TRACKED_SENDERS {
                let oldest = buckets
                    .iter()
                    .min_by_key(|(_, bucket)| bucket.updated)
                    .map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    buckets.remove(&oldest);
                }
            }
        }
        let bucket = buckets.entry(sender.to_string()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed_ms = now.saturating_sub(bucket.updated).as_secs_f64() * 1000.0;
        bucket.tokens = (bucket.tokens + elapsed_ms * per_ms).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        if per_ms <= 0.0 {
            return Err(Duration::MAX);
        }
        let wait_ms = ((1.0 - bucket.tokens) / per_ms).ceil();
        Err(Duration::from_millis(wait_ms as u64))
    }

    /// Returns the number of senders with a bucket.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    fn limiter(clock: &Arc<ManualClock>, burst: u32, per_minute: f64) -> SenderLimiter {
        SenderLimiter::new(RateLimit { burst, per_minute }, clock.clone())
    }

    #[test]
    fn bucket_allows_burst_then_waits_for_refill() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = limiter(&clock, 3, 6.0);
        for _ in 0..3 {
            assert_eq!(limiter.try_acquire("a"), Ok(()));
        }
        let wait = limiter.try_acquire("a").unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        clock.advance(Duration::from_secs(9));
        assert_eq!(
            limiter.try_acquire("a").unwrap_err(),
            Duration::from_secs(1)
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(limiter.try_acquire("a"), Ok(()));
        assert!(limiter.try_acquire("a").is_err());
    }

    #[test]
    fn senders_have_separate_buckets() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = limiter(&clock, 1, 1.0);
        assert_eq!(limiter.try_acquire("a"), Ok(()));
        assert!(limiter.try_acquire("a").is_err());
        assert_eq!(limiter.try_acquire("b"), Ok(()));
    }

    #[test]
    fn refill_stops_at_capacity() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = limiter(&clock, 2, 60.0);
        assert_eq!(limiter.try_acquire("a"), Ok(()));
        clock.advance(Duration::from_secs(3600));
        assert_eq!(limiter.try_acquire("a"), Ok(()));
        assert_eq!(limiter.try_acquire("a"), Ok(()));
        assert!(limiter.try_acquire("a").is_err());
    }

    #[test]
    fn zero_rate_never_refills() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = limiter(&clock, 1, 0.0);
        assert_eq!(limiter.try_acquire("a"), Ok(()));
        assert_eq!(limiter.try_acquire("a"), Err(Duration::MAX));
    }

    #[test]
    fn full_buckets_are_dropped_at_the_bound() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = limiter(&clock, 1, 60.0);
        for index in 0..MAX_TRACKED_SENDERS {
            assert_eq!(limiter.try_acquire(&format!("s{index}")), Ok(()));
        }
        assert_eq!(limiter.tracked(), MAX_TRACKED_SENDERS);
        clock.advance(Duration::from_secs(2));
        assert_eq!(limiter.try_acquire("new"), Ok(()));
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn busy_buckets_evict_least_recent() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = limiter(&clock, 1, 1.0);
        for index in 0..MAX_TRACKED_SENDERS {
            assert_eq!(limiter.try_acquire(&format!("s{index}")), Ok(()));
            clock.advance(Duration::from_millis(1));
        }
        assert_eq!(limiter.try_acquire("new"), Ok(()));
        assert_eq!(limiter.tracked(), MAX_TRACKED_SENDERS);
        // s0 was the least recently used, so its bucket went and it starts afresh.
        assert_eq!(limiter.try_acquire("s0"), Ok(()));
        assert!(limiter.try_acquire("s2").is_err());
    }
}
