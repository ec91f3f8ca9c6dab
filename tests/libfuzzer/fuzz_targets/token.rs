#![no_main]
//! The license token verifier, two ways: the raw token as a player sends it
//! (base64, JSON, signature), and the input as a payload that is signed first,
//! so mutations get past the signature check into the entitlement rules.

use std::sync::{Arc, LazyLock};

use berth::ids::{ComKeyId, KeySystem, LicenseType, Secret32};
use berth::token::{ComKey, ComKeys};

static KEYS: LazyLock<(Arc<ComKey>, ComKeys)> = LazyLock::new(|| {
    let id: uuid::Uuid = "11111111-2222-4333-8444-555555555555".parse().unwrap();
    let key = Arc::new(ComKey::new(ComKeyId(id), Secret32([9; 32])));
    (key.clone(), ComKeys::from_iter([(key.id, key)]))
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (key, keys) = &*KEYS;
    let now = time::macros::datetime!(2026-06-01 00:00 UTC);
    let tolerance = time::Duration::minutes(5);
    let _ = berth::token::verify(&String::from_utf8_lossy(data), keys, now, tolerance);
    if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) {
        let signed = key.sign_token(&payload);
        if let Ok(entitlement) = berth::token::verify(&signed, keys, now, tolerance) {
            // What the log writer does with a single-use token's last instant.
            let _ = entitlement.usable_until.map(berth::ids::format_instant);
            let _ = entitlement.grant(&[], LicenseType::Temporary, KeySystem::ClearKey, "10.1.2.3".parse().unwrap(), |_| None);
        }
    }
});
