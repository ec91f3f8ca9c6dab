//! Token buckets per license token and client address for the license API.
//!
//! Keyed by the pair, never by the address alone: a portal or a NAT may put a
//! whole cabin behind one address (thousands of passengers' own tokens), and a
//! seatback fleet may share one token from hundreds of addresses; neither is
//! one client. One token replayed in a loop from one address is.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Clients tracked at most; idle ones are forgotten first.
const MAX_TRACKED: usize = 100_000;

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    /// Keyed by a keyed hash of (token signature, address): the token itself is
    /// not kept, and nobody outside can aim two clients at one bucket.
    /// Its keys are already keyed hashes: foldhash, not SipHash again.
    buckets: Mutex<HashMap<u64, (f64, Instant), foldhash::fast::RandomState>>,
    hasher: std::collections::hash_map::RandomState,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second,
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::default()),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// `Ok` to go ahead, or the whole seconds to wait. A token is told apart by
    /// its signature (its last part), which is unique to it and short to hash,
    /// read as verification reads it: white space around the token does not
    /// count, so no spelling of one token is another client. (Verification
    /// takes the signature only in its one base64url spelling, and query
    /// values reach here percent-decoded.)
    pub fn check(&self, token: &str, client: IpAddr, now: Instant) -> Result<(), u64> {
        let token = token.trim();
        let signature = token.rsplit('.').next().unwrap_or(token);
        let key = self.hasher.hash_one((signature, client.to_canonical()));
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            let full = self.burst;
            let rate = self.per_second;
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < full);
            if buckets.len() >= MAX_TRACKED {
                buckets.clear();
            }
        }
        let (tokens, at) = buckets.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_the_rate() {
        let limiter = RateLimiter::new(2.0, 3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("h.p.sig", ip, t0).is_ok());
        }
        assert_eq!(limiter.check("h.p.sig", ip, t0), Err(1));
        assert!(limiter.check("h.p.sig", "10.0.0.2".parse().unwrap(), t0).is_ok());
        assert!(limiter.check("h.p.other", ip, t0).is_ok());
        assert_eq!(
            limiter.check(" h.p.sig\t\n", ip, t0),
            Err(1),
            "the same token, spelled otherwise"
        );
        assert!(
            limiter
                .check("h.p.sig", ip, t0 + Duration::from_millis(600))
                .is_ok()
        );
    }

    #[test]
    fn one_address_with_many_tokens_is_many_clients() {
        let limiter = RateLimiter::new(2.0, 40);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..20_000 {
            assert!(limiter.check(&format!("h.p.passenger{i}"), ip, t0).is_ok());
        }
    }
}
