//! Counters of license API answers by key system and outcome, and a latency
//! histogram, for `/metrics` and the dashboard. Lock-free: the hot path only
//! adds to atomics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::ids::KeySystem;

/// Every outcome code the license API answers with.
pub const CODES: [&str; 18] = [
    "ok",
    "bad_request",
    "token_missing",
    "token_invalid",
    "token_expired",
    "token_not_yet_valid",
    "key_not_entitled",
    "key_unknown",
    "persistence_not_allowed",
    "token_reused",
    "ip_not_allowed",
    "unsupported_entitlement",
    "body_too_large",
    "rate_limited",
    "key_system_unsupported",
    "log_unavailable",
    "not_found",
    "method_not_allowed",
];

/// Latency bucket bounds in seconds.
pub const BUCKETS: [f64; 9] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

pub struct Outcomes {
    counts: [[AtomicU64; CODES.len()]; 2],
    buckets: [AtomicU64; BUCKETS.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for Outcomes {
    fn default() -> Outcomes {
        Outcomes {
            counts: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Outcomes {
    pub fn record(&self, key_system: KeySystem, code: &str, latency: Duration) {
        let ks = KeySystem::ALL.iter().position(|k| *k == key_system).unwrap_or(0);
        if let Some(i) = CODES.iter().position(|c| *c == code) {
            self.counts[ks][i].fetch_add(1, Ordering::Relaxed);
        }
        let secs = latency.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_us
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Non-zero counters as ((key system, outcome), n).
    pub fn snapshot(&self) -> Vec<((&'static str, &'static str), u64)> {
        let mut out = Vec::new();
        for (ks, row) in KeySystem::ALL.iter().zip(&self.counts) {
            for (code, n) in CODES.iter().zip(row) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    out.push(((ks.as_str(), *code), n));
                }
            }
        }
        out
    }

    /// Refusals by code, both key systems together.
    pub fn denials(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for ((_, code), n) in self.snapshot() {
            if code != "ok" {
                *out.entry(code).or_default() += n;
            }
        }
        out
    }

    /// Cumulative buckets, the sum in seconds, and the count.
    pub fn latency(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let buckets = BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(b, n)| (*b, n.load(Ordering::Relaxed)))
            .collect();
        (
            buckets,
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            self.count.load(Ordering::Relaxed),
        )
    }
}

/// Free space on the data dir's filesystem, for the dashboard.
pub fn disk_free_bytes(dir: &std::path::Path) -> Option<u64> {
    rustix::fs::statvfs(dir)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}
