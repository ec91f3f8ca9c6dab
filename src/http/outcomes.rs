//! Counters of license API answers by key system and outcome, and a latency
//! histogram, for `/metrics` and the dashboard. Lock-free: the hot path only
//! adds to atomics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::Histogram;
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

pub struct Outcomes {
    counts: [[AtomicU64; CODES.len()]; 2],
    latency: Histogram,
}

impl Default for Outcomes {
    fn default() -> Outcomes {
        Outcomes {
            counts: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: Histogram::default(),
        }
    }
}

impl Outcomes {
    pub fn record(&self, key_system: KeySystem, code: &str, latency: Duration) {
        let ks = KeySystem::ALL.iter().position(|k| *k == key_system).unwrap_or(0);
        if let Some(i) = CODES.iter().position(|c| *c == code) {
            self.counts[ks][i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency.record(latency);
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

    /// The request latency histogram.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }
}

/// Free space on the data dir's filesystem, for the dashboard.
pub fn disk_free_bytes(dir: &std::path::Path) -> Option<u64> {
    rustix::fs::statvfs(dir)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}
