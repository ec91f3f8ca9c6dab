//! Counters of license API answers by key system and outcome, and a latency
//! histogram, for `/metrics` and the dashboard. Lock-free: the hot path only
//! adds to atomics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::Histogram;
use crate::ids::KeySystem;

/// Declares [`Outcome`]: each answer of the license API with its code (in
/// the JSON body, the log and `/metrics`), its HTTP status, and what it
/// usually means for the crew reading the dashboard, in one place.
macro_rules! outcomes {
    ($($variant:ident => $code:literal, $status:literal, $meaning:literal;)*) => {
        /// An answer of the license API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Outcome {
            $($variant,)*
        }

        impl Outcome {
            /// Every outcome, in the order `/metrics` lists them.
            pub const ALL: [Outcome; [$($code),*].len()] = [$(Outcome::$variant),*];

            /// The code in the JSON body, the log and `/metrics`.
            pub fn code(self) -> &'static str {
                match self {
                    $(Outcome::$variant => $code,)*
                }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> u16 {
                match self {
                    $(Outcome::$variant => $status,)*
                }
            }

            /// The likely cause and where to look, for the crew (empty for `ok`).
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Outcome::$variant => $meaning,)*
                }
            }
        }
    };
}

outcomes! {
    Ok => "ok", 200, "";
    BadRequest => "bad_request", 400,
        "The request was not a valid Clear Key request or HLS key URL: a player or app bug, or someone probing.";
    TokenMissing => "token_missing", 401,
        "The player sent no license token: the portal or the player app is not set up to pass one.";
    TokenInvalid => "token_invalid", 401,
        "The token is damaged, signed with another secret, or names a communication key this box does not have: compare the portal's key with the Communication keys page.";
    TokenExpired => "token_expired", 401,
        "The token's end date has passed: the portal issued it too long ago, or this box's clock is ahead (see Clock).";
    TokenNotYetValid => "token_not_yet_valid", 401,
        "The token's start date has not come yet: the portal's clock or this box's clock is wrong (see Clock).";
    KeyNotEntitled => "key_not_entitled", 403,
        "The token does not allow the film the player asked for: the portal's entitlement and the film's KIDs disagree.";
    KeyUnknown => "key_unknown", 403,
        "The film's content key is not on this box: import it on the Keys page.";
    PersistenceNotAllowed => "persistence_not_allowed", 403,
        "The player asked for an offline (persistent) license that the token does not allow.";
    TokenReused => "token_reused", 403,
        "A single-use token came back (often a player retrying or reloading): the portal should mint a new token per playback.";
    IpNotAllowed => "ip_not_allowed", 403,
        "The seat's network address is outside the addresses the token allows.";
    UnsupportedEntitlement => "unsupported_entitlement", 403,
        "The token asks for a restriction berth cannot enforce (a concurrency limit, output protection), so berth refuses rather than ignore it; the service log (journalctl -u berth) names the field.";
    BodyTooLarge => "body_too_large", 413,
        "A request body over 64 KiB: not a real player.";
    RateLimited => "rate_limited", 429,
        "One address sent more requests than the configured rate allows.";
    KeySystemUnsupported => "key_system_unsupported", 501,
        "A Widevine, PlayReady or other request berth does not serve (it serves Clear Key, HLS keys and FairPlay): the player is set up for a DRM this box does not have.";
    LogUnavailable => "log_unavailable", 503,
        "The license could not be written to the log (disk full, database locked), so no key was given: passengers cannot play; see Service and Disk free.";
    ServerUnavailable => "server_unavailable", 503,
        "berth could not take a FairPlay request it would otherwise have answered: it could not start the threads that open SPCs (the service log says why), or it was stopping. Nothing was logged and no key was given; the player may try again.";
    FairPlayNotConfigured => "fairplay_not_configured", 501,
        "An Apple device asked for a FairPlay license, and no FairPlay credentials are imported: see `berth fairplay credentials import`.";
    SpcMalformed => "spc_malformed", 400,
        "A FairPlay request whose SPC is cut short, too long or damaged: a player bug, or someone probing.";
    SpcVersionUnsupported => "spc_version_unsupported", 400,
        "A FairPlay SPC of a version berth does not read (it reads 1 and 2).";
    SpcProtocolUnsupported => "spc_protocol_unsupported", 400,
        "A FairPlay SPC asks for a protocol version berth does not speak (it speaks 1).";
    SpcWrongCertificate => "spc_wrong_certificate", 400,
        "A FairPlay SPC made for another FPS certificate: the app has another server's certificate (compare the FairPlay certificate on the Keys page).";
    SpcSessionKey => "spc_session_key", 400,
        "A FairPlay SPC whose session key does not open with the imported private key: the credentials' key and certificate may not belong together.";
    SpcIntegrityFailed => "spc_integrity_failed", 400,
        "A FairPlay SPC failed its integrity check: the imported ASk is wrong for the certificate, or the SPC was altered.";
    AssetIdInvalid => "asset_id_invalid", 400,
        "The FairPlay asset id (the skd:// URI) names no KID: check the playlist's EXT-X-KEY URI against the forms in the reference.";
    OutputNotAllowed => "output_not_allowed", 403,
        "The passenger tried to show the film over AirPlay or an AV adapter, which the token's FairPlay policy does not allow.";
    NotFound => "not_found", 404,
        "A request for a path the license API does not have: a player with a wrong license URL.";
    MethodNotAllowed => "method_not_allowed", 405,
        "A request with the wrong HTTP method on a license path.";
}

pub struct Outcomes {
    counts: [[AtomicU64; Outcome::ALL.len()]; KeySystem::ALL.len()],
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
    pub fn record(&self, key_system: KeySystem, outcome: Outcome, latency: Duration) {
        let ks = KeySystem::ALL.iter().position(|k| *k == key_system).unwrap_or(0);
        self.counts[ks][outcome as usize].fetch_add(1, Ordering::Relaxed);
        self.latency.record(latency);
    }

    /// Non-zero counters as ((key system, outcome), n).
    pub fn snapshot(&self) -> Vec<((&'static str, Outcome), u64)> {
        let mut out = Vec::new();
        for (ks, row) in KeySystem::ALL.iter().zip(&self.counts) {
            for (outcome, n) in Outcome::ALL.iter().zip(row) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    out.push(((ks.as_str(), *outcome), n));
                }
            }
        }
        out
    }

    /// Refusals, every key system together, most frequent first.
    pub fn denials(&self) -> Vec<(Outcome, u64)> {
        let mut by_code: BTreeMap<Outcome, u64> = BTreeMap::new();
        for ((_, outcome), n) in self.snapshot() {
            if outcome != Outcome::Ok {
                *by_code.entry(outcome).or_default() += n;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_words_for_the_crew_and_a_refusing_status() {
        for outcome in Outcome::ALL.into_iter().filter(|o| *o != Outcome::Ok) {
            assert!(
                outcome.meaning().len() > 20,
                "{outcome:?} has no meaning for the dashboard"
            );
            assert!(outcome.status() >= 400, "{outcome:?}");
        }
        assert_eq!((Outcome::Ok.meaning(), Outcome::Ok.status()), ("", 200));
        let codes: std::collections::BTreeSet<_> = Outcome::ALL.iter().map(|o| o.code()).collect();
        assert_eq!(codes.len(), Outcome::ALL.len(), "one code each");
    }
}
