#![no_main]
//! The JSON and CPIX key importers (`berth keys import`, the admin UI's upload),
//! as a vessel with a delivery key reads them: seeds/key_file/sealed.xml is
//! encrypted for delivery-cert.der (a key for fuzzing only) and signed, so
//! mutations reach the decryption and the signature check.

use std::sync::LazyLock;

static DELIVERY: LazyLock<berth::crypto::DeliveryKey> = LazyLock::new(|| {
    berth::crypto::DeliveryKey::from_der(include_bytes!("../delivery-key.der"), include_bytes!("../delivery-cert.der"))
        .expect("the fuzzing delivery key loads")
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let recipient = berth::keyfile::Recipient {
        delivery: Some(&DELIVERY),
        signers: &[],
        now: time::OffsetDateTime::now_utc(),
    };
    let _ = berth::keyfile::parse(data, &recipient);
});
