#![no_main]
//! The report-zip verifier (`berth report verify`, `berth fleet summary`): the
//! vendor runs it on files from boxes it does not trust. Two kinds of input:
//! the zip's bytes as they are (a mutation rarely gets past the signature),
//! and (an input that starts with `{`) `report.json`, a NUL byte,
//! `licenses.csv`, which this target hashes and
//! signs into a zip as an operator holding a signing key could, so mutations
//! reach what the verifier reads after the signature.

use std::io::{Cursor, Write as _};
use std::sync::LazyLock;

use berth::crypto::{SigningKey, sha256_hex};

/// A key for fuzzing only; `seeds/report_zip/resigned.bin` names its public half.
static SIGNER: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::from_pkcs8_der(include_bytes!("../report-signer.der")).unwrap());

fn signed_zip(report: &[u8], csv: &[u8]) -> Vec<u8> {
    let manifest = format!(
        r#"{{"files":{{"report.json":"{}","licenses.csv":"{}"}}}}"#,
        sha256_hex(report),
        sha256_hex(csv)
    );
    let (signature, pem) = (SIGNER.sign(manifest.as_bytes()), SIGNER.public_pem());
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let files: [(&str, &[u8]); 5] = [
        ("report.json", report),
        ("licenses.csv", csv),
        ("manifest.json", manifest.as_bytes()),
        ("manifest.sig", &signature),
        ("signer.pem", pem.as_bytes()),
    ];
    for (name, bytes) in files {
        zip.start_file(name, zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored)).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if !data.starts_with(b"{") {
        let _ = berth::report::verify_reader(Cursor::new(data), None);
    } else if let Some(nul) = data.iter().position(|b| *b == 0) {
        let zip = signed_zip(&data[..nul], &data[nul + 1..]);
        let _ = berth::report::verify_reader(Cursor::new(zip), None);
    }
});
