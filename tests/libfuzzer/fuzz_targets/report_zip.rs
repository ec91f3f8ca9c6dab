#![no_main]
//! The report-zip verifier (`berth report verify`, `berth fleet summary`): the
//! vendor runs it on files from boxes it does not trust.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = berth::report::verify_reader(std::io::Cursor::new(data), None);
});
