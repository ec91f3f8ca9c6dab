#![no_main]
//! The report-zip verifier (`berth report verify`, `berth fleet summary`): the
//! vendor runs it on files from boxes it does not trust. Two kinds of input:
//! the zip's bytes as they are (a mutation rarely gets past the signature),
//! and (an input that starts with `{`) `report.json`, a NUL byte and
//! `licenses.csv`, which this target signs into a zip as an operator holding a
//! signing key could, so that mutations reach what the verifier reads after
//! the signature.

use std::io::Cursor;
use std::sync::LazyLock;

use berth::crypto::SigningKey;

#[path = "../../fuzz/signed_zip.rs"]
mod signed_zip;

/// A key for fuzzing only; `seeds/report_zip/resigned.bin` names its public half.
static SIGNER: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::from_pkcs8_der(include_bytes!("../report-signer.der")).unwrap());

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if !data.starts_with(b"{") {
        let _ = berth::report::verify_reader(Cursor::new(data), None);
    } else if let Some(nul) = data.iter().position(|b| *b == 0) {
        let zip = signed_zip::signed_zip(&SIGNER, &data[..nul], &data[nul + 1..]);
        let _ = berth::report::verify_reader(Cursor::new(zip), None);
    }
});
