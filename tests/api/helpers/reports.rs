//! Reports: licenses at chosen times, exports, the zips opened, changed and
//! re-signed as an operator holding the signing key could.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use berth::ids::Month;
use serde_json::Value;
use time::OffsetDateTime;

use super::*;

pub async fn license_at(app: &TestApp, at: OffsetDateTime, user: Option<&str>, hls: bool) {
    app.clock.set(at);
    let session = match user {
        Some(u) => json!({ "user_id": u }),
        None => json!({}),
    };
    let token = app.token(&[KID_A], json!({ "session": session }));
    let status = if hls {
        client()
            .get(app.url(&format!("/hls/key/{KID_A}?token={token}")))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    } else {
        post_license(app, Some(&token), &clearkey_body(&[KID_A], "temporary"))
            .await
            .0
    };
    assert_eq!(status, 200);
}

pub fn reports_dir(app: &TestApp) -> PathBuf {
    app.data_dir().join("reports")
}

pub fn export(app: &TestApp, month: &str, now: OffsetDateTime) -> PathBuf {
    let month: Month = month.parse().unwrap();
    berth::report::export(&mut app.db(), month, now, false, &reports_dir(app))
        .expect("export")
        .path
}

pub fn verify(app: &TestApp, file: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["report", "verify", file.to_str().unwrap()];
    args.extend(extra);
    app.berth(&args)
}

pub fn read_zip(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        out.insert(f.name().unwrap().into_owned(), bytes);
    }
    out
}

pub fn write_zip(path: &Path, files: &BTreeMap<String, Vec<u8>>) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in files {
        zip.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// Re-hashes and re-signs a report with `key`, as an operator holding the
/// installation's signing key could.
pub fn resign(files: &mut BTreeMap<String, Vec<u8>>, key: &berth::crypto::SigningKey) {
    let manifest = json!({ "files": {
        "licenses.csv": berth::crypto::sha256_hex(&files["licenses.csv"]),
        "report.json": berth::crypto::sha256_hex(&files["report.json"]),
    }});
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    files.insert("manifest.sig".into(), key.sign(&bytes));
    files.insert("manifest.json".into(), bytes);
}

pub fn tampered(
    app: &TestApp,
    original: &Path,
    name: &str,
    change: impl FnOnce(&mut BTreeMap<String, Vec<u8>>),
) -> PathBuf {
    let mut files = read_zip(original);
    change(&mut files);
    let path = app.dir.path().join(name);
    write_zip(&path, &files);
    path
}

/// Edits the zip's report.json (as JSON) in place.
pub fn edit_report(files: &mut BTreeMap<String, Vec<u8>>, edit: impl FnOnce(&mut Value)) {
    let mut report: Value = serde_json::from_slice(&files["report.json"]).unwrap();
    edit(&mut report);
    files.insert("report.json".into(), serde_json::to_vec_pretty(&report).unwrap());
}

pub fn expect_failure(out: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure naming {needle:?}, got {err}"
    );
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

pub fn report_list(app: &TestApp) -> Vec<Value> {
    let out = app.berth(&["report", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["reports"].as_array().unwrap().clone()
}
