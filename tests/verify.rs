//! The report verifier (`report::verify_reader`), refusal by refusal: each
//! test changes one thing in a report made by a real berth (the fuzzers'
//! seed, signed with a key for testing only) and checks the refusal's kind
//! and words. The receiver, `report verify` and `fleet` all rely on them.

use std::io::{Cursor, Write as _};

use berth::crypto::SigningKey;
use berth::report::{VerifyError, verify_reader};
use serde_json::{Value, json};

#[path = "fuzz/signed_zip.rs"]
mod signed_zip;

fn signer() -> SigningKey {
    SigningKey::from_pkcs8_der(include_bytes!("libfuzzer/report-signer.der")).unwrap()
}

/// The seed's `report.json` and `licenses.csv` (a report of three licenses).
fn seed() -> (Value, String) {
    let bytes = include_bytes!("libfuzzer/seeds/report_zip/resigned.bin");
    let nul = bytes.iter().position(|b| *b == 0).unwrap();
    (
        serde_json::from_slice(&bytes[..nul]).unwrap(),
        String::from_utf8(bytes[nul + 1..].to_vec()).unwrap(),
    )
}

fn signed(report: &Value, csv: &str) -> Vec<u8> {
    signed_zip::signed_zip(
        &signer(),
        &serde_json::to_vec_pretty(report).unwrap(),
        csv.as_bytes(),
    )
}

/// A zip of these files, as they are (no manifest made for them).
fn raw_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in files {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// The files of a zip, by name.
fn files_of(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut bytes).unwrap();
            (f.name().unwrap().into_owned(), bytes)
        })
        .collect()
}

/// One change to a report's `report.json` and `licenses.csv`.
type Change = dyn Fn(&mut Value, &mut String);

fn refused(bytes: &[u8]) -> VerifyError {
    verify_reader(Cursor::new(bytes), None).expect_err("refused")
}

fn says(error: &VerifyError, words: &str) {
    assert!(error.to_string().contains(words), "{words:?} not in: {error}");
}

#[test]
fn the_seed_verifies() {
    let (report, csv) = seed();
    let verified = verify_reader(Cursor::new(signed(&report, &csv)), None).unwrap();
    assert_eq!(verified.report.counts.licenses, 3);
}

#[test]
fn what_is_not_a_report_zip_is_malformed() {
    let (report, csv) = seed();
    let e = refused(b"not a zip at all");
    assert!(matches!(e, VerifyError::Malformed(_)));
    says(&e, "not a zip");
    // Many entries: refused from the directory's end record, before it is read.
    let many: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("f{i}"), vec![])).collect();
    let many: Vec<(&str, &[u8])> = many.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    says(&refused(&raw_zip(&many)), "lists 20 files");
    // A file too many, and one missing.
    let mut files = files_of(&signed(&report, &csv));
    files.push(("extra.txt".into(), b"x".to_vec()));
    let named: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    says(&refused(&raw_zip(&named)), "unexpected file \"extra.txt\"");
    let without: Vec<(&str, &[u8])> = named
        .iter()
        .copied()
        .filter(|(n, _)| *n != "signer.pem")
        .collect();
    let without: Vec<(&str, &[u8])> = without.into_iter().filter(|(n, _)| *n != "extra.txt").collect();
    says(&refused(&raw_zip(&without)), "signer.pem is missing");
    // licenses.csv padded past what its rows can take.
    let padded = format!("{csv}{}", "\r\n".repeat(40_000));
    let e = refused(&signed(&report, &padded));
    assert!(matches!(e, VerifyError::Malformed(_)));
    says(&e, "rows can take");
}

#[test]
fn a_signature_that_does_not_hold_is_a_signature_error() {
    let (report, csv) = seed();
    let good = signed(&report, &csv);
    // Another expected key.
    let other = SigningKey::generate();
    let e = verify_reader(
        Cursor::new(&good),
        Some(&berth::crypto::PublicKey::from_der(&other.public_der()).unwrap()),
    )
    .unwrap_err();
    assert!(matches!(e, VerifyError::Signature(_)));
    says(&e, "another key");
    // The signature over another manifest.
    let mut files = files_of(&good);
    for (name, bytes) in &mut files {
        if name == "manifest.sig" {
            bytes[0] ^= 1;
        }
    }
    let named: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let e = refused(&raw_zip(&named));
    assert!(matches!(e, VerifyError::Signature(_)));
    says(&e, "not a valid signature");
}

#[test]
fn signed_contents_that_disagree_with_themselves_are_contents_errors() {
    let (report, csv) = seed();
    // report.json changed after the manifest was signed.
    let mut files = files_of(&signed(&report, &csv));
    let mut edited = report.clone();
    edited["counts"]["licenses"] = json!(300);
    for (name, bytes) in &mut files {
        if name == "report.json" {
            *bytes = serde_json::to_vec_pretty(&edited).unwrap();
        }
    }
    let named: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    says(&refused(&raw_zip(&named)), "report.json edited");
    // Re-signed, each of these is still refused, by name.
    let cases: Vec<(&str, Box<Change>)> = vec![
        (
            "has schema",
            Box::new(|r, _| r["schema"] = json!("berth.usage-report/9")),
        ),
        (
            "names another signing key",
            Box::new(|r, _| r["installation"]["public_key_sha256"] = json!("00")),
        ),
        (
            "not YYYY-MM",
            Box::new(|r, _| r["period"]["month"] = json!("2026-13")),
        ),
        (
            "counts.licenses is 4, but licenses.csv has 3",
            Box::new(|r, _| r["counts"]["licenses"] = json!(4)),
        ),
        (
            "row_hash does not match",
            Box::new(|_, c| *c = c.replacen("ac4651463035", "bc4651463035", 1)),
        ),
        (
            "expected header",
            Box::new(|_, c| *c = c.replacen("seq,issued_at", "sequence,issued_at", 1)),
        ),
        (
            "rows missing at the end",
            Box::new(|r, _| r["log"]["last_seq"] = json!(4)),
        ),
        ("must have titles", Box::new(|r, _| r["titles"] = json!({}))),
    ];
    for (words, change) in cases {
        let (mut report, mut csv) = seed();
        change(&mut report, &mut csv);
        let e = refused(&signed(&report, &csv));
        assert!(matches!(e, VerifyError::Contents(_)), "{words}: {e:?}");
        says(&e, words);
    }
}

#[test]
fn a_report_that_does_not_follow_its_predecessor_is_a_link_error() {
    let (report, csv) = seed();
    let first = verify_reader(Cursor::new(signed(&report, &csv)), None).unwrap();
    let mut next = report.clone();
    next["report"]["sequence"] = json!(2);
    next["report"]["previous_report_sha256"] = json!("00");
    next["log"]["first_seq"] = json!(4);
    next["log"]["last_seq"] = json!(3);
    next["log"]["first_prev_hash"] = report["log"]["last_row_hash"].clone();
    next["period"] =
        json!({ "month": "2026-12", "start": "2026-12-01T00:00:00Z", "end": "2027-01-01T00:00:00Z" });
    let days: serde_json::Map<String, Value> =
        (1..=31).map(|d| (format!("2026-12-{d:02}"), json!(0))).collect();
    next["counts"] = json!({ "licenses": 0, "active_users": 0, "licenses_without_user": 0,
        "by_key_system": { "clearkey": 0, "hls": 0 }, "by_day": days });
    next["active"] = json!(false);
    let header = csv.lines().next().unwrap().to_owned() + "\n";
    let second = verify_reader(Cursor::new(signed(&next, &header)), None);
    let second = match second {
        Ok(v) => v,
        Err(e) => panic!("the empty next month verifies on its own: {e}"),
    };
    let e = berth::report::verify_link(&first, &second).unwrap_err();
    assert!(matches!(e, VerifyError::Link(_)), "{e:?}");
}

/// The seed with its last row stamped `issued_at`, that row's hash made again
/// from the chain's rule in the reference (netstrings of prev_hash, seq and
/// the fields, SHA-256), not from berth's code, and the report re-signed.
fn last_row_stamped(issued_at: &str) -> Vec<u8> {
    let (mut report, csv) = seed();
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    let last = lines.last_mut().unwrap();
    let mut fields: Vec<String> = last.split(',').map(str::to_owned).collect();
    fields[1] = issued_at.into();
    let chained: String = std::iter::once(&fields[8])
        .chain(&fields[..8])
        .map(|field| format!("{}:{field},", field.len()))
        .collect();
    let hash: String = openssl::sha::sha256(chained.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fields[9] = hash.clone();
    *last = fields.join(",");
    report["log"]["last_row_hash"] = json!(hash);
    signed(&report, &(lines.join("\n") + "\n"))
}

/// A row whose hash holds but whose `issued_at` is not a stamp as berth writes
/// it (here the same instant written with an offset, which sorts and slices
/// differently as text) is refused: berth wrote no such row, and its day and
/// month could not be counted as the box means them.
#[test]
fn a_row_stamped_otherwise_than_berth_stamps_is_a_contents_error() {
    let e = refused(&last_row_stamped("2026-11-24T00:19:16.247+01:00"));
    assert!(matches!(e, VerifyError::Contents(_)), "{e:?}");
    says(
        &e,
        "licenses.csv row 3: issued_at is not a stamp as berth writes it",
    );
    // Berth's own form, a millisecond on, verifies: the hash is the chain's.
    let own = last_row_stamped("2026-11-23T23:19:16.248Z");
    verify_reader(Cursor::new(own), None).expect("berth's own stamp verifies");
}
