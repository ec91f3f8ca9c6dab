#![no_main]
//! The JSON and CPIX key importers (`berth keys import`, the admin UI's upload).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let clear = berth::keyfile::Recipient {
        delivery: None,
        signers: &[],
        now: time::OffsetDateTime::UNIX_EPOCH,
    };
    let _ = berth::keyfile::parse(data, &clear);
});
