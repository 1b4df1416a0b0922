//! Token buckets per key (a client network for the unauthenticated endpoints, an account for
//! the ceremonies a session opens), so guessing or flooding costs time. Time is passed in.
//!
//! Each request costs O(1): one bucket is looked up and refilled. Forgetting is amortised: a
//! bucket left alone for a refill period (the time an empty bucket takes to fill) is full
//! again, and a full bucket is the same as none, so buckets live in two generations that swap
//! every period; whatever was not touched for a whole period goes with the older generation.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    /// Sustained requests per minute per key.
    pub per_minute: u32,
    /// Requests allowed at once before the rate applies.
    pub burst: u32,
}

/// Most keys with a bucket in the current generation. A key beyond it is refused until the
/// generation turns over: under a flood from this many networks at once, failing closed for
/// newcomers is the lesser harm than memory without bound.
const MAX_TRACKED: usize = 100_000;

pub(crate) struct Limiter<K> {
    limit: RateLimit,
    state: Mutex<Generations<K>>,
}

struct Generations<K> {
    current: HashMap<K, Bucket>,
    previous: HashMap<K, Bucket>,
    turned: Instant,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Copy> Limiter<K> {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        Limiter {
            limit,
            state: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
                turned: now,
            }),
        }
    }

    fn burst(&self) -> f64 {
        f64::from(self.limit.burst.max(1))
    }

    fn rate_per_sec(&self) -> f64 {
        f64::from(self.limit.per_minute) / 60.0
    }

    /// How long an empty bucket takes to fill (forever without a rate).
    fn refill(&self) -> Duration {
        let rate = self.rate_per_sec();
        if rate > 0.0 {
            Duration::try_from_secs_f64(self.burst() / rate).unwrap_or(Duration::MAX)
        } else {
            Duration::MAX
        }
    }

    pub(crate) fn allow(&self, key: K, now: Instant) -> bool {
        let Ok(mut g) = self.state.lock() else {
            return false;
        };
        if now.saturating_duration_since(g.turned) >= self.refill() {
            // Dropping the older generation is the amortised part: it holds at most the keys
            // that made requests during one period.
            g.previous = std::mem::take(&mut g.current);
            g.turned = now;
        }
        let burst = self.burst();
        let bucket = match g.current.get(&key) {
            Some(b) => *b,
            None => {
                if g.current.len() >= MAX_TRACKED {
                    return false;
                }
                g.previous.remove(&key).unwrap_or(Bucket {
                    tokens: burst,
                    at: now,
                })
            }
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        let mut tokens = (bucket.tokens + elapsed * self.rate_per_sec()).min(burst);
        let allowed = tokens >= 1.0;
        if allowed {
            tokens -= 1.0;
        }
        g.current.insert(key, Bucket { tokens, at: now });
        allowed
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        let g = self.state.lock().unwrap();
        g.current.len() + g.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request a second, `burst` at once.
    fn per_second(burst: u32, t: Instant) -> Limiter<u32> {
        Limiter::new(
            RateLimit {
                per_minute: 60,
                burst,
            },
            t,
        )
    }

    #[test]
    fn bursts_then_refills_per_key() {
        let t = Instant::now();
        let l = per_second(3, t);
        let (a, b) = (1u32, 2u32);
        assert!((0..3).all(|_| l.allow(a, t)));
        assert!(!l.allow(a, t));
        assert!(l.allow(b, t));
        assert!(!l.allow(a, t + Duration::from_millis(500)));
        assert!(l.allow(a, t + Duration::from_millis(1600)));
    }

    #[test]
    fn idle_keys_are_forgotten_without_losing_a_limit() {
        let t = Instant::now();
        let l = per_second(2, t);
        // Refill takes two seconds. A thousand one-off keys, then two periods of one key only.
        for k in 0..1000u32 {
            assert!(l.allow(k, t));
        }
        assert!(l.allow(5000, t + Duration::from_secs(2)));
        assert!(l.allow(5000, t + Duration::from_secs(4)));
        assert_eq!(l.tracked(), 1, "the one-off keys were dropped");

        // A key drained just before a turn keeps its debt across it (forgetting it would hand
        // it a fresh burst).
        let ms = |n| t + Duration::from_millis(n);
        assert!(l.allow(7, ms(5900)) && l.allow(7, ms(5900)));
        assert!(
            !l.allow(7, ms(6000)),
            "the generation turned, the key is still limited"
        );
        assert!(l.allow(7, ms(7500)));
    }
}
