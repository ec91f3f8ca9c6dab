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

/// What a refusal usually means, in words for the crew reading the dashboard:
/// the likely cause and where to look. Empty for `ok` and unknown codes.
pub fn meaning(code: &str) -> &'static str {
    match code {
        "bad_request" => {
            "The request was not a valid Clear Key request or HLS key URL: a player or app bug, or someone probing."
        }
        "token_missing" => {
            "The player sent no license token: the portal or the player app is not set up to pass one."
        }
        "token_invalid" => {
            "The token is damaged, signed with another secret, or names a communication key this box does not have: compare the portal's key with the Communication keys page."
        }
        "token_expired" => {
            "The token's end date has passed: the portal issued it too long ago, or this box's clock is ahead (see Clock)."
        }
        "token_not_yet_valid" => {
            "The token's start date has not come yet: the portal's clock or this box's clock is wrong (see Clock)."
        }
        "key_not_entitled" => {
            "The token does not allow the film the player asked for: the portal's entitlement and the film's KIDs disagree."
        }
        "key_unknown" => "The film's content key is not on this box: import it on the Keys page.",
        "persistence_not_allowed" => {
            "The player asked for an offline (persistent) license that the token does not allow."
        }
        "token_reused" => {
            "A single-use token came back (often a player retrying or reloading): the portal should mint a new token per playback."
        }
        "ip_not_allowed" => "The seat's network address is outside the addresses the token allows.",
        "unsupported_entitlement" => {
            "The token asks for a restriction berth cannot enforce (a concurrency limit, output protection), so berth refuses rather than ignore it; the service log (journalctl -u berth) names the field."
        }
        "body_too_large" => "A request body over 64 KiB: not a real player.",
        "rate_limited" => "One address sent more requests than the configured rate allows.",
        "key_system_unsupported" => {
            "A Widevine, PlayReady or other non-Clear-Key request: the player is set up for a DRM this box does not serve."
        }
        "log_unavailable" => {
            "The license could not be written to the log (disk full, database locked), so no key was given: passengers cannot play; see Service and Disk free."
        }
        "not_found" => {
            "A request for a path the license API does not have: a player with a wrong license URL."
        }
        "method_not_allowed" => "A request with the wrong HTTP method on a license path.",
        _ => "",
    }
}

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

    /// Refusals by code, both key systems together, most frequent first.
    pub fn denials(&self) -> Vec<(&'static str, u64)> {
        let mut by_code: BTreeMap<&str, u64> = BTreeMap::new();
        for ((_, code), n) in self.snapshot() {
            if code != "ok" {
                *by_code.entry(code).or_default() += n;
            }
        }
        let mut out: Vec<_> = by_code.into_iter().collect();
        out.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_words_for_the_crew() {
        for code in CODES.iter().filter(|c| **c != "ok") {
            assert!(
                meaning(code).len() > 20,
                "{code} has no meaning for the dashboard"
            );
        }
        assert_eq!(meaning("ok"), "");
        assert_eq!(meaning("<script>"), "");
    }
}
