#![no_main]
//! The CPIX reader with a trusted signer configured (`[keys] cpix_signers`):
//! whatever the bytes, nothing unsigned is imported. The seeds in
//! seeds/cpix_trusted/ were signed by cpix-signer.der's key (made for fuzzing
//! and thrown away) over exactly the keys in SIGNED, with the signature over the
//! document, over the lists, both, in UTF-16, and the UTF-7 construction that
//! once hid an attacker's list from the verifier. Any other key that comes
//! back imported is a bypass of the trusted signer.

use std::sync::LazyLock;

const SIGNED: [(&str, [u8; 16]); 2] = [
    (
        "c0ffee00-1111-4222-8333-444444444444",
        [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
    ),
    (
        "d0ffee00-1111-4222-8333-444444444444",
        [0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10],
    ),
];

static SIGNERS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| vec![include_bytes!("../cpix-signer.der").to_vec()]);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let recipient = berth::keyfile::Recipient {
        delivery: None,
        signers: &SIGNERS,
        now: time::OffsetDateTime::now_utc(),
    };
    if let Ok(keys) = berth::keyfile::parse(data, &recipient) {
        for key in keys {
            assert!(
                SIGNED
                    .iter()
                    .any(|(kid, value)| key.kid.to_string() == *kid && key.key.0 == *value),
                "a key no trusted signature covers was imported: {}",
                key.kid
            );
        }
    }
});
