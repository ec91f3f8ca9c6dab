//! `berth ground serve`, the vendor's receiver: real TLS with certificates
//! made by the openssl command line, the real binary on both sides.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth::ids::Month;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::*;

/// A vessel with reports for the two months before this one (sequences 1, 2).
async fn vessel_with_two_reports() -> (TestApp, Vec<PathBuf>) {
    let app = spawn_app().await;
    let this = Month::of(OffsetDateTime::now_utc());
    let (first, second) = (this.previous().previous(), this.previous());
    app.installed_at(first.start());
    license_at(&app, first.start() + time::Duration::days(3), Some("u1"), false).await;
    license_at(&app, second.start() + time::Duration::days(3), Some("u2"), false).await;
    let mut files = Vec::new();
    for month in [first, second] {
        let out = app.berth(&["report", "export", "--month", &month.to_string()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        files.push(reports_dir(&app).join(berth::report::file_name(
            "test-vessel",
            month,
            files.len() as i64 + 1,
            false,
        )));
    }
    (app, files)
}

/// The ground receiver with a vessel's two reports stored by the vessel's
/// own uploader, as the timer runs it; and another installation's
/// certificate from the same CA.
struct Uploaded {
    dir: tempfile::TempDir,
    pki: Pki,
    vessel: (PathBuf, PathBuf),
    other: (PathBuf, PathBuf),
    ground: Ground,
    app: TestApp,
    files: Vec<PathBuf>,
}

async fn uploaded() -> Uploaded {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vessel = pki.issue("vessel", "test-vessel", None);
    let other = pki.issue("other", "other-vessel", Some("DNS:other-vessel"));
    let ground = ground(&pki, &dir.path().join("store"), None);
    let (app, files) = vessel_with_two_reports().await;
    let config = upload_config(&app, &pki, ground.port, (&vessel.0, &vessel.1));
    let out = app.berth(&["report", "upload", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Uploaded {
        dir,
        pki,
        vessel,
        other,
        ground,
        app,
        files,
    }
}

#[actix_web::test]
async fn the_ground_stores_a_vessels_reports_as_sent_and_pins_its_key() {
    let u = uploaded().await;
    assert!(report_list(&u.app).iter().all(|r| !r["uploaded_at"].is_null()));
    for file in &u.files {
        let stored = u.ground.store.join("test-vessel").join(name_of(file));
        assert_eq!(std::fs::read(stored).unwrap(), std::fs::read(file).unwrap());
    }
    let pinned = std::fs::read_to_string(u.ground.store.join("test-vessel/signer.pem")).unwrap();
    assert_eq!(pinned, u.app.db().signing_key().unwrap().public_pem());
}

/// The same bytes again are stored already; other bytes under a stored
/// name, another installation's certificate or name, names that disagree or
/// are not a report's, and other methods are refused.
#[actix_web::test]
async fn resends_conflicts_and_foreign_names_get_their_status() {
    let u = uploaded().await;
    let (pki, ground, files) = (&u.pki, &u.ground, &u.files);
    let first = std::fs::read(&files[0]).unwrap();
    let name = name_of(&files[0]);
    let me = (u.vessel.0.as_path(), u.vessel.1.as_path());
    // The same bytes again: stored already, 200.
    assert_eq!(put(pki, ground.port, me, &name, &first).unwrap().0, 200);
    // Other bytes under a stored name: 409.
    let (status, body) = put(pki, ground.port, me, &name, b"PK not the report").unwrap();
    assert_eq!(
        (
            status,
            body["reason"].as_str().unwrap().contains("different report")
        ),
        (409, true),
        "{body}"
    );
    // Another installation's certificate: 403, whichever name it sends.
    let theirs = (u.other.0.as_path(), u.other.1.as_path());
    let (status, body) = put(pki, ground.port, theirs, &name, &first).unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("not installation test-vessel's"),
        "{body}"
    );
    // This certificate with another installation's name: 403.
    let renamed = name.replace("test-vessel", "other-vessel");
    assert_eq!(put(pki, ground.port, me, &renamed, &first).unwrap().0, 403);
    // The name in the URL and the header must agree; a name must be a report's.
    let head =
        format!("PUT /reports/{name} HTTP/1.1\r\nContent-Type: application/zip\r\nX-Berth-Report: {renamed}");
    assert_eq!(send(pki, ground.port, Some(me), &head, &first).unwrap().0, 400);
    assert_eq!(
        put(pki, ground.port, me, "..%2F..%2Fetc%2Fpasswd", &first)
            .unwrap()
            .0,
        400
    );
    assert_eq!(
        put(
            pki,
            ground.port,
            me,
            "berth-report-test-vessel-2026-01-1-partial.zip",
            &first
        )
        .unwrap()
        .0,
        400
    );
    let head = "GET /reports/x HTTP/1.1";
    assert_eq!(send(pki, ground.port, Some(me), head, b"").unwrap().0, 405);
}

/// No client certificate, or one the CA did not issue: no connection.
#[actix_web::test]
async fn a_vessel_without_the_fleets_certificate_cannot_connect() {
    let u = uploaded().await;
    let (pki, ground, dir) = (&u.pki, &u.ground, u.dir.path());
    let first = std::fs::read(&u.files[0]).unwrap();
    let name = name_of(&u.files[0]);
    let head = format!("PUT /reports/{name} HTTP/1.1\r\nContent-Type: application/zip");
    assert!(send(pki, ground.port, None, &head, &first).is_err());
    let rogue_dir = dir.join("rogue");
    std::fs::create_dir_all(&rogue_dir).unwrap();
    let rogue = Pki::new(&rogue_dir).issue("rogue", "test-vessel", None);
    assert!(send(pki, ground.port, Some((&rogue.0, &rogue.1)), &head, &first).is_err());
}

#[actix_web::test]
async fn a_report_signed_by_another_key_is_refused_and_not_kept() {
    let u = uploaded().await;
    let (pki, ground, app, files) = (&u.pki, &u.ground, &u.app, &u.files);
    let name = name_of(&files[0]);
    let me = (u.vessel.0.as_path(), u.vessel.1.as_path());
    // A report signed by another key than the one the installation's first
    // report pinned: 422, and nothing stored.
    let key = berth::crypto::SigningKey::generate();
    let third_name = name.replace("-1.zip", "-3.zip");
    let forged = tampered(app, &files[1], "forged.zip", |files| {
        edit_report(files, |r| {
            r["report"]["sequence"] = json!(3);
            r["installation"]["public_key_sha256"] = json!(berth::crypto::sha256_hex(&key.public_der()));
        });
        files.insert("signer.pem".into(), key.public_pem().into_bytes());
        resign(files, &key);
    });
    let (status, body) = put(pki, ground.port, me, &third_name, &std::fs::read(forged).unwrap()).unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("does not verify"),
        "{body}"
    );
    assert!(!ground.store.join("test-vessel").join(&third_name).exists());
    let left: Vec<_> = std::fs::read_dir(ground.store.join(".incoming"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "refused uploads are not kept: {left:?}");
}

#[actix_web::test]
async fn the_vendors_monthly_run_counts_and_bills_the_stored_reports() {
    let u = uploaded().await;
    let (ground, dir) = (&u.ground, u.dir.path());
    // The vendor's monthly run on the store: the two reports are counted.
    let out = berth(&["fleet", "summary", "--json", ground.store.to_str().unwrap()]);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["counted_reports"], 2, "{summary}");
    let prices = dir.join("prices.toml");
    std::fs::write(&prices, "currency = \"EUR\"\nbasis = \"installations\"\n[vessel_types.aircraft]\ntiers = [{ unit_price = 250 }]\n").unwrap();
    let out = berth(&[
        "fleet",
        "bill",
        "--json",
        "--prices",
        prices.to_str().unwrap(),
        ground.store.to_str().unwrap(),
    ]);
    let bill: Value = serde_json::from_slice(&out.stdout).unwrap();
    let totals: Vec<&Value> = bill["months"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| &m["total"])
        .collect();
    assert_eq!(totals, [&json!("250.00"), &json!("250.00")], "{bill}");
}

#[actix_web::test]
async fn a_refused_upload_stays_in_the_vessels_outbox_with_the_grounds_reason() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vessel = pki.issue("vessel", "test-vessel", None);
    // The vendor registered another key for this installation.
    let pubkeys = dir.path().join("pubkeys");
    std::fs::create_dir_all(&pubkeys).unwrap();
    let registered = berth::crypto::SigningKey::generate();
    std::fs::write(pubkeys.join("test-vessel.pem"), registered.public_pem()).unwrap();
    let ground = ground(&pki, &dir.path().join("store"), Some(&pubkeys));
    let (app, files) = vessel_with_two_reports().await;

    let config = upload_config(&app, &pki, ground.port, (&vessel.0, &vessel.1));
    let out = app.berth(&["report", "upload", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let list = report_list(&app);
    assert!(
        list.iter().all(|r| r["uploaded_at"].is_null()),
        "both stay in the outbox"
    );
    let error = list[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("422") && error.contains("does not verify"),
        "{error}"
    );
    assert!(
        std::fs::read_dir(ground.store.join("test-vessel")).is_err(),
        "nothing stored"
    );

    // Once the vendor registers the vessel's real key, the same reports go.
    std::fs::write(
        pubkeys.join("test-vessel.pem"),
        app.db().signing_key().unwrap().public_pem(),
    )
    .unwrap();
    let out = app.berth(&["report", "upload", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stored: Vec<String> = std::fs::read_dir(ground.store.join("test-vessel"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        stored.iter().filter(|n| n.ends_with(".zip")).count(),
        stored.iter().filter(|n| n.ends_with(".zip.received")).count(),
        "every report with its time of receipt: {stored:?}"
    );
    assert_eq!(stored.iter().filter(|n| n.ends_with(".zip")).count(), 2);
    // An installation the vendor has no key for is not one of its vessels.
    let stranger = pki.issue("stranger", "stranger", None);
    let (status, body) = put(
        &pki,
        ground.port,
        (&stranger.0, &stranger.1),
        "berth-report-stranger-2026-01-1.zip",
        b"x",
    )
    .unwrap();
    assert_eq!(status, 403, "{body}");
    // A chain does not start late: report 2 as the first upload is refused,
    // then the reports go in order.
    let fresh = ground_fresh_store(&pki, dir.path(), &pubkeys);
    let second = std::fs::read(&files[1]).unwrap();
    let me = (vessel.0.as_path(), vessel.1.as_path());
    let (status, body) = put(&pki, fresh.port, me, &name_of(&files[1]), &second).unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("starts at report 1"),
        "{body}"
    );
    let first = std::fs::read(&files[0]).unwrap();
    assert_eq!(
        put(&pki, fresh.port, me, &name_of(&files[0]), &first).unwrap().0,
        201
    );
    assert_eq!(
        put(&pki, fresh.port, me, &name_of(&files[1]), &second).unwrap().0,
        201
    );
}

fn ground_fresh_store(pki: &Pki, dir: &Path, pubkeys: &Path) -> Ground {
    ground(pki, &dir.join("fresh-store"), Some(pubkeys))
}

/// The receiver killed while a report is on its way in (a power cut, as far
/// as a process can tell): the store holds no part of it, the next start
/// clears what was half-written, and the whole report then goes in.
#[actix_web::test]
async fn a_receiver_killed_mid_upload_keeps_the_whole_report_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vessel = pki.issue("vessel", "test-vessel", None);
    let store = dir.path().join("store");
    let mut g = ground(&pki, &store, None);
    let (_app, files) = vessel_with_two_reports().await;
    let bytes = std::fs::read(&files[0]).unwrap();
    let name = name_of(&files[0]);

    let connector = berth::crypto::tls_connector(Some(&pki.ca()), Some((&vessel.0, &vessel.1))).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let mut tls = connector.connect("127.0.0.1", tcp).unwrap();
    let head = format!(
        "PUT /reports/{name} HTTP/1.1\r\nHost: ground\r\nContent-Type: application/zip\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(&bytes[..bytes.len() / 2]).unwrap();
    tls.flush().unwrap();
    let incoming = store.join(".incoming");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&incoming).unwrap().count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never reached the disk"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    g.child.kill().unwrap();
    g.child.wait().unwrap();
    assert!(!store.join("test-vessel").join(&name).exists());
    assert!(!store.join("test-vessel").exists(), "not even the pin");

    let g = ground(&pki, &store, None);
    assert_eq!(
        std::fs::read_dir(&incoming).unwrap().count(),
        0,
        "cleared at start"
    );
    let me = (vessel.0.as_path(), vessel.1.as_path());
    assert_eq!(put(&pki, g.port, me, &name, &bytes).unwrap().0, 201);
    assert_eq!(
        std::fs::read(store.join("test-vessel").join(&name)).unwrap(),
        bytes
    );
}

/// Issue 28 end to end, the shared part: berth served from the 1st to the
/// 6th of last month (a clean stop), two licenses and a checkpoint on the
/// 3rd, the month exported, and one upload pass to a real receiver.
struct Shipped {
    dir: tempfile::TempDir,
    pki: Pki,
    vessel: (PathBuf, PathBuf),
    ground: Ground,
    app: TestApp,
    month: Month,
    /// The first upload pass's `--json` answer.
    pass: Value,
    config: PathBuf,
}

impl Shipped {
    /// An instant of the month: day `d` (from 1), hour `h`.
    fn day(&self, d: i64, h: i64) -> OffsetDateTime {
        self.month.start() + time::Duration::days(d - 1) + time::Duration::hours(h)
    }

    fn checkpoints(&self) -> PathBuf {
        self.ground.store.join("test-vessel/checkpoints")
    }

    fn kept(&self) -> Vec<String> {
        std::fs::read_dir(self.checkpoints())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// The report as the ground keeps it, by file name.
    fn report_files(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        let name = berth::report::file_name("test-vessel", self.month, 1, false);
        crate::helpers::read_zip(&self.ground.store.join("test-vessel").join(&name))
    }
}

async fn shipped() -> Shipped {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vessel = pki.issue("vessel", "test-vessel", None);
    let ground = ground(&pki, &dir.path().join("store"), None);
    let app = spawn_app().await;
    let month = Month::of(OffsetDateTime::now_utc()).previous();
    app.installed_at(month.start());
    let day = |d: i64, h: i64| month.start() + time::Duration::days(d - 1) + time::Duration::hours(h);
    let db = app.db();
    let at = |t| berth::ids::format_instant(t);
    db.serving_started(&at(day(1, 0))).unwrap();
    db.serving_seen(&at(day(1, 0)), &at(day(6, 0)), true).unwrap();
    license_at(&app, day(3, 10), Some("u1"), false).await;
    license_at(&app, day(3, 11), Some("u2"), false).await;
    berth::report::checkpoint::make(&db, day(3, 12), app.data_dir(), None).unwrap();
    let out = app.berth(&["report", "export", "--month", &month.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = upload_config(&app, &pki, ground.port, (&vessel.0, &vessel.1));
    let out = app.berth(&["report", "upload", "--json", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pass = serde_json::from_slice(&out.stdout).unwrap();
    Shipped {
        dir,
        pki,
        vessel,
        ground,
        app,
        month,
        pass,
        config,
    }
}

/// A checkpoint made in the month leaves the box ahead of the month's
/// report, the ground keeps it with its receipt, and it is sent once.
#[actix_web::test]
async fn checkpoints_leave_ahead_of_reports_once() {
    let s = shipped().await;
    let uploaded: Vec<&str> = s.pass["uploaded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(uploaded.len(), 2, "{}", s.pass);
    assert!(
        uploaded[0].starts_with("berth-checkpoint-test-vessel-2-"),
        "the checkpoint goes first: {}",
        s.pass
    );
    assert!(uploaded[1].starts_with("berth-report-test-vessel-"), "{}", s.pass);
    assert_eq!(
        s.kept().len(),
        3,
        "the checkpoint, its signature and its time of receipt: {:?}",
        s.kept()
    );
    let out = s.app.berth(&[
        "report",
        "upload",
        "--json",
        "--config",
        s.config.to_str().unwrap(),
    ]);
    let pass: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pass["uploaded"], json!([]), "{pass}");
}

/// The report lists the checkpoint, counts per title and says when berth served.
#[actix_web::test]
async fn the_report_lists_titles_checkpoints_and_coverage() {
    let s = shipped().await;
    let report: Value = serde_json::from_slice(&s.report_files()["report.json"]).unwrap();
    assert_eq!(report["schema"], "berth.usage-report/3");
    assert_eq!(
        report["titles"][KID_A],
        json!({ "label": "A", "licenses": 2, "active_users": 2 })
    );
    assert_eq!(report["checkpoints"].as_array().unwrap().len(), 1);
    assert_eq!(report["checkpoints"][0]["seq"], 2);
    let at = |t| berth::ids::format_instant(t);
    assert_eq!(
        report["coverage"]["serving"],
        json!([{ "start": at(s.day(1, 0)), "end": at(s.day(6, 0)), "clean_stop": true }])
    );
    assert_eq!(report["coverage"]["log_unavailable"], json!([]));
}

/// The vendor's summary of the store checks the report against the
/// checkpoint, totals the titles, and names long stretches without one.
#[actix_web::test]
async fn the_vendors_summary_checks_checkpoints_and_names_the_gaps() {
    let s = shipped().await;
    let store = s.ground.store.to_str().unwrap();
    let summary = |extra: &[&str]| -> Value {
        let mut args = vec!["fleet", "summary", "--json", store, "--checkpoints", store];
        args.extend(extra);
        let out = berth(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let sum = summary(&[]);
    assert_eq!(
        (&sum["counted_reports"], &sum["checkpoints_checked"]),
        (&json!(1), &json!(1)),
        "{sum}"
    );
    assert_eq!(sum["titles"][s.month.to_string()][KID_A]["licenses"], 2, "{sum}");
    // 60 hours before the checkpoint and 60 after it, each over a day.
    let withheld = sum["withheld"].as_array().unwrap();
    assert_eq!(withheld.len(), 2, "{sum}");
    assert_eq!(
        (&withheld[0]["installation"], &withheld[0]["hours"]),
        (&json!("test-vessel"), &json!(60))
    );
    assert_eq!(
        summary(&["--max-checkpoint-gap-hours", "72"])["withheld"],
        json!([])
    );
}

/// The manual's check of a checkpoint with plain openssl and grep, run as
/// written on the stored checkpoint and report.
#[actix_web::test]
async fn the_manuals_checkpoint_check_runs_as_written() {
    let s = shipped().await;
    let manual = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/doc/manual.md");
    let readme = std::fs::read_to_string(manual).unwrap();
    let section = readme.split("### What the vendor can trust").nth(1).unwrap();
    let block = section
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let work = s.dir.path().join("readme-check");
    std::fs::create_dir_all(&work).unwrap();
    let kept = s.kept();
    let stem = kept
        .iter()
        .find(|n| n.ends_with(".json"))
        .unwrap()
        .trim_end_matches(".json")
        .to_owned();
    for ext in ["json", "sig"] {
        let from = s.checkpoints().join(format!("{stem}.{ext}"));
        std::fs::copy(from, work.join(format!("{stem}.{ext}"))).unwrap();
    }
    let files = s.report_files();
    std::fs::write(work.join("signer.pem"), &files["signer.pem"]).unwrap();
    std::fs::write(work.join("licenses.csv"), &files["licenses.csv"]).unwrap();
    let script = block
        .replace("berth-checkpoint-ac-001-42-20261003T120000Z", &stem)
        .replace("'^42,'", "'^2,'");
    let out = Command::new("bash")
        .args(["-euc", &script])
        .current_dir(&work)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checkpoint: Value =
        serde_json::from_slice(&std::fs::read(work.join(format!("{stem}.json"))).unwrap()).unwrap();
    assert!(printed.contains("Signature Verified Successfully"), "{printed}");
    assert!(
        printed.contains(checkpoint["row_hash"].as_str().unwrap()),
        "{printed}"
    );
}

/// A checkpoint bundle that was changed on the way is refused.
#[actix_web::test]
async fn a_checkpoint_changed_on_the_way_is_refused() {
    let s = shipped().await;
    let me = (s.vessel.0.as_path(), s.vessel.1.as_path());
    let kept = s.kept();
    let json_name = kept.iter().find(|n| n.ends_with(".json")).unwrap();
    let stored = s.checkpoints().join(json_name);
    let mut forged = std::collections::BTreeMap::new();
    let text = std::fs::read_to_string(&stored)
        .unwrap()
        .replace("\"seq\": 2", "\"seq\": 1");
    forged.insert("checkpoint.json".to_owned(), text.into_bytes());
    forged.insert(
        "checkpoint.sig".to_owned(),
        std::fs::read(stored.with_extension("sig")).unwrap(),
    );
    forged.insert(
        "signer.pem".to_owned(),
        s.app.db().signing_key().unwrap().public_pem().into_bytes(),
    );
    let path = s.dir.path().join("forged.zip");
    crate::helpers::write_zip(&path, &forged);
    let forged_name = json_name.replace("-2-", "-1-").replace(".json", ".zip");
    let head = format!("PUT /reports/{forged_name} HTTP/1.1\r\nContent-Type: application/zip");
    let (status, body) = send(
        &s.pki,
        s.ground.port,
        Some(me),
        &head,
        &std::fs::read(&path).unwrap(),
    )
    .unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("checkpoint.sig is not"),
        "{body}"
    );
}
