//! A report zip of a `report.json` and a `licenses.csv`, hashed into its
//! manifest and signed, as an operator holding a signing key could make one:
//! how both fuzzers get mutations past the signature. Shared by
//! `tests/fuzz/main.rs` and `tests/libfuzzer/fuzz_targets/report_zip.rs`.

use std::io::{Cursor, Write as _};

use berth::crypto::{SigningKey, sha256_hex};

pub fn signed_zip(signer: &SigningKey, report: &[u8], csv: &[u8]) -> Vec<u8> {
    let manifest = format!(
        r#"{{"files":{{"report.json":"{}","licenses.csv":"{}"}}}}"#,
        sha256_hex(report),
        sha256_hex(csv)
    );
    let (signature, pem) = (signer.sign(manifest.as_bytes()), signer.public_pem());
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let files: [(&str, &[u8]); 5] = [
        ("report.json", report),
        ("licenses.csv", csv),
        ("manifest.json", manifest.as_bytes()),
        ("manifest.sig", &signature),
        ("signer.pem", pem.as_bytes()),
    ];
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in files {
        zip.start_file(name, stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}
