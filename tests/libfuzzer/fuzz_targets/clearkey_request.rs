#![no_main]
//! The Clear Key license request parser (`POST /clearkey` bodies).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = berth::clearkey::parse_request(data);
});
