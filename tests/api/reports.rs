//! Monthly reports: export, verification by berth and by the openssl CLI, the
//! tamper catalogue, month boundaries, clocks that jump, hostile zips, and the
//! vendor's fleet summary.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth::ids::Month;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::helpers::*;

/// One Clear Key license per user on 5 October 2026, an hour apart from 10:00.
async fn october_5th(app: &TestApp, users: &[&str]) {
    for (i, user) in users.iter().enumerate() {
        let at = datetime!(2026-10-05 10:00 UTC) + time::Duration::hours(i as i64);
        license_at(app, at, Some(user), false).await;
    }
}

/// The error of an export that must be refused.
fn refused(app: &TestApp, month: &str, now: OffsetDateTime) -> String {
    let month: Month = month.parse().unwrap();
    berth::report::export(&mut app.db(), month, now, false, &reports_dir(app))
        .expect_err("the export is refused")
        .to_string()
}

fn csv_lines(files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    String::from_utf8(files["licenses.csv"].clone())
        .unwrap()
        .split_inclusive('\n')
        .map(str::to_owned)
        .collect()
}

/// October with several users and key systems, licenses at the edges of the
/// month (September exported first: reports go month by month), October
/// exported by the CLI; the app, the file and the CLI's `--json` answer.
async fn october_exported() -> (TestApp, PathBuf, Value) {
    let app = spawn_app().await;
    app.installed_at(datetime!(2026-09-30 12:00 UTC));
    license_at(&app, datetime!(2026-09-30 23:59:59.999 UTC), Some("early"), false).await;
    license_at(&app, datetime!(2026-10-01 00:00:00.000 UTC), Some("alice"), false).await;
    license_at(&app, datetime!(2026-10-10 12:00 UTC), Some("alice"), false).await;
    license_at(&app, datetime!(2026-10-10 12:01 UTC), Some("bob"), true).await;
    license_at(&app, datetime!(2026-10-20 08:00 UTC), None, false).await;
    license_at(&app, datetime!(2026-10-31 23:59:59.999 UTC), Some("carol"), false).await;
    license_at(&app, datetime!(2026-11-01 00:00:00.000 UTC), Some("dave"), false).await;

    // September first (reports go month by month), then October from the CLI.
    export(&app, "2026-09", datetime!(2026-10-01 00:00 UTC));
    let out = app.berth(&[
        "report",
        "export",
        "--month",
        "2026-10",
        "--out",
        app.dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = PathBuf::from(exported["file"].as_str().unwrap());
    assert_eq!(
        file.file_name().unwrap().to_str().unwrap(),
        "berth-report-test-vessel-2026-10-2.zip"
    );
    (app, file, exported)
}

/// The report's file and counts: the licenses stamped inside the month.
#[actix_web::test]
async fn a_month_exports_with_the_counts_of_its_own_licenses() {
    let (_app, file, exported) = october_exported().await;
    assert_eq!(
        file.file_name().unwrap().to_str().unwrap(),
        "berth-report-test-vessel-2026-10-2.zip"
    );
    let r = &exported["report"];
    assert_eq!(r["counts"]["licenses"], 5);
    assert_eq!(r["counts"]["active_users"], 3);
    assert_eq!(r["counts"]["licenses_without_user"], 1);
    assert_eq!(r["counts"]["by_key_system"], json!({ "clearkey": 4, "hls": 1 }));
    assert_eq!(r["counts"]["by_day"]["2026-10-01"], 1);
    assert_eq!(r["counts"]["by_day"]["2026-10-31"], 1);
    assert_eq!(r["counts"]["by_day"].as_object().unwrap().len(), 31);
    assert_eq!(r["active"], true);
    assert_eq!(r["log"]["first_seq"], 2);
    assert_eq!(r["log"]["last_seq"], 6);
    assert_eq!(r["clock_anomalies"]["count"], 0);
    assert_eq!(r["report"]["sequence"], 2);
}

/// berth verifies it, with the key it carries and with the vendor's copy.
#[actix_web::test]
async fn berth_verifies_an_exported_report() {
    let (app, file, _) = october_exported().await;
    let out = verify(&app, &file, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK "));

    // And with the key as the vendor holds it: the public key of this installation.
    std::fs::write(
        app.dir.path().join("expected.pem"),
        app.db().signing_key().unwrap().public_pem(),
    )
    .unwrap();
    let out = verify(
        &app,
        &file,
        &["--pubkey", app.dir.path().join("expected.pem").to_str().unwrap()],
    );
    assert!(out.status.success());
}

/// The recipe anyone can run without berth: openssl for the signature,
/// sha256sum for the files.
#[actix_web::test]
async fn openssl_and_sha256sum_verify_an_exported_report() {
    let (app, file, _) = october_exported().await;
    let dir = app.dir.path().join("unzipped");
    std::fs::create_dir(&dir).unwrap();
    for (name, bytes) in read_zip(&file) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    // The recipe anyone can run without berth.
    let status = Command::new("openssl")
        .current_dir(&dir)
        .args([
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "signer.pem",
            "-rawin",
            "-in",
            "manifest.json",
            "-sigfile",
            "manifest.sig",
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    for name in ["report.json", "licenses.csv"] {
        let sum = Command::new("sha256sum")
            .current_dir(&dir)
            .arg(name)
            .output()
            .unwrap();
        let hash = String::from_utf8_lossy(&sum.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        assert_eq!(manifest["files"][name], hash, "{name}");
    }
    let csv = std::fs::read_to_string(dir.join("licenses.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "header + 5 rows");
}

/// The manual's chain recipe, exactly as written there; a row rewritten
/// along a separator no longer matches its hash.
#[actix_web::test]
async fn the_manuals_chain_recipe_recomputes_an_exported_chain() {
    let (app, file, exported) = october_exported().await;
    let r = &exported["report"];
    let dir = app.dir.path().join("unzipped");
    std::fs::create_dir(&dir).unwrap();
    for (name, bytes) in read_zip(&file) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let csv = std::fs::read_to_string(dir.join("licenses.csv")).unwrap();
    // The manual's chain recipe, exactly as written there.
    let recipe = readme_recipe("<!-- chain-recipe -->");
    let run = |dir: &Path| {
        Command::new("sh")
            .current_dir(dir)
            .args(["-c", &recipe])
            .output()
            .unwrap()
    };
    let out = run(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "chain ok, last row_hash {}",
            r["log"]["last_row_hash"].as_str().unwrap()
        )
    );
    // The ambiguity a separator allowed: a user hash that takes the start of
    // the token id. Rewritten so, the row no longer matches its hash.
    let shifted = csv.replacen(",,", ",|", 1);
    if shifted != csv {
        std::fs::write(dir.join("licenses.csv"), &shifted).unwrap();
        let out = run(&dir);
        assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        std::fs::write(dir.join("licenses.csv"), &csv).unwrap();
    }
}

/// A month that has not ended is refused without --partial; exporting one
/// again returns the same file.
#[actix_web::test]
async fn exports_of_unfinished_or_exported_months() {
    let (app, _, _) = october_exported().await;
    // A month that has not ended is refused without --partial.
    let out = app.berth(&["report", "export", "--month", "2099-01"]);
    expect_failure(&out, "2099-01 has not ended");
    // Exporting October again returns the same file.
    let again = app.berth(&["report", "export", "--month", "2026-10"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already exported"));
}

/// Three months exported, for tampering with: October (4 licenses),
/// November (1), December (none), and the installation's signing key (what
/// an operator who extracted it would hold).
struct Exported {
    app: TestApp,
    october: PathBuf,
    november: PathBuf,
    december: PathBuf,
    key: berth::crypto::SigningKey,
}

async fn three_months() -> Exported {
    let app = spawn_app().await;
    app.installed_at(datetime!(2026-10-01 08:00 UTC));
    october_5th(&app, &["a", "b", "c", "d"]).await;
    let october = export(&app, "2026-10", datetime!(2026-11-01 00:00 UTC));
    license_at(&app, datetime!(2026-11-05 10:00 UTC), Some("e"), false).await;
    let november = export(&app, "2026-11", datetime!(2026-12-01 00:00 UTC));
    let december = export(&app, "2026-12", datetime!(2027-01-01 00:00 UTC));
    let key = app.db().signing_key().unwrap();
    Exported {
        app,
        october,
        november,
        december,
        key,
    }
}

#[actix_web::test]
async fn a_report_edited_without_the_key_fails_its_manifest() {
    let t = three_months().await;
    // Edited without the signing key: the manifest no longer matches.
    let f = tampered(&t.app, &t.october, "csv-edited.zip", |files| {
        let text = String::from_utf8(files["licenses.csv"].clone())
            .unwrap()
            .replacen("clearkey", "hls", 1);
        files.insert("licenses.csv".into(), text.into_bytes());
    });
    expect_failure(&verify(&t.app, &f, &[]), "licenses.csv");
}

#[actix_web::test]
async fn rows_deleted_edited_or_inserted_break_the_chain_even_re_signed() {
    let t = three_months().await;
    // With the signing key (an operator who extracted it), the chain still tells.
    let f = tampered(&t.app, &t.october, "row-deleted.zip", |files| {
        let mut lines = csv_lines(files);
        lines.remove(2);
        files.insert("licenses.csv".into(), lines.concat().into_bytes());
        resign(files, &t.key);
    });
    expect_failure(&verify(&t.app, &f, &[]), "deleted");
    let f = tampered(&t.app, &t.october, "row-edited.zip", |files| {
        let mut lines = csv_lines(files);
        lines[2] = lines[2].replacen("temporary", "persistent-license", 1);
        files.insert("licenses.csv".into(), lines.concat().into_bytes());
        resign(files, &t.key);
    });
    expect_failure(&verify(&t.app, &f, &[]), "edited");
    let f = tampered(&t.app, &t.october, "row-inserted.zip", |files| {
        let mut lines = csv_lines(files);
        let copy = lines[2].clone();
        lines.insert(2, copy);
        files.insert("licenses.csv".into(), lines.concat().into_bytes());
        resign(files, &t.key);
    });
    expect_failure(&verify(&t.app, &f, &[]), "inserted");
}

/// Counts that disagree with the rows, a month the date type cannot end and
/// sequence numbers at the ends of i64 are refused, not a panic.
#[actix_web::test]
async fn counts_months_and_sequences_a_key_holder_forged_are_refused() {
    let t = three_months().await;
    let f = tampered(&t.app, &t.october, "count-edited.zip", |files| {
        edit_report(files, |r| r["counts"]["licenses"] = json!(2));
    });
    expect_failure(&verify(&t.app, &f, &[]), "report.json");
    let f = tampered(&t.app, &t.october, "count-edited-resigned.zip", |files| {
        edit_report(files, |r| r["counts"]["licenses"] = json!(2));
        resign(files, &t.key);
    });
    expect_failure(&verify(&t.app, &f, &[]), "counts.licenses");
    // A month the date type cannot end (signed by whoever holds a key): refused, not a panic.
    let f = tampered(&t.app, &t.october, "month-9999.zip", |files| {
        edit_report(files, |r| r["period"]["month"] = json!("9999-12"));
        resign(files, &t.key);
    });
    expect_failure(&verify(&t.app, &f, &[]), "period.month is not YYYY-MM");
    // Sequence numbers at the end of i64: refused, not an overflow.
    let f = tampered(&t.app, &t.october, "seq-max.zip", |files| {
        let mut lines = csv_lines(files);
        let rest = lines[1].split_once(',').unwrap().1.to_owned();
        lines[1] = format!("{},{rest}", i64::MAX);
        files.insert("licenses.csv".into(), lines.concat().into_bytes());
        edit_report(files, |r| r["log"]["first_seq"] = json!(i64::MAX));
        resign(files, &t.key);
    });
    expect_failure(&verify(&t.app, &f, &[]), "seq too large");
    let f = tampered(&t.app, &t.october, "seq-min.zip", |files| {
        files.insert("licenses.csv".into(), csv_lines(files)[0].clone().into_bytes());
        edit_report(files, |r| r["log"]["first_seq"] = json!(i64::MIN));
        resign(files, &t.key);
    });
    expect_failure(&verify(&t.app, &f, &[]), "rows missing at the end");
}

/// A changed manifest, another installation's key (caught with --pubkey),
/// a file added or removed.
#[actix_web::test]
async fn manifests_keys_and_files_that_are_not_the_reports_are_refused() {
    let t = three_months().await;
    let f = tampered(&t.app, &t.october, "manifest-edited.zip", |files| {
        let text = String::from_utf8(files["manifest.json"].clone())
            .unwrap()
            .replace("\"files\"", "\"files\" ");
        files.insert("manifest.json".into(), text.into_bytes());
    });
    expect_failure(&verify(&t.app, &f, &[]), "manifest.sig");

    // Signed by another installation's key: fine alone, caught with --pubkey.
    let other = berth::crypto::SigningKey::generate();
    let f = tampered(&t.app, &t.october, "other-key.zip", |files| {
        edit_report(files, |r| {
            r["installation"]["public_key_sha256"] = json!(berth::crypto::sha256_hex(&other.public_der()))
        });
        files.insert("signer.pem".into(), other.public_pem().into_bytes());
        resign(files, &other);
    });
    std::fs::write(t.app.dir.path().join("vessel.pem"), t.key.public_pem()).unwrap();
    expect_failure(
        &verify(
            &t.app,
            &f,
            &["--pubkey", t.app.dir.path().join("vessel.pem").to_str().unwrap()],
        ),
        "another key",
    );

    let f = tampered(&t.app, &t.october, "file-added.zip", |files| {
        files.insert("notes.txt".into(), b"hello".to_vec());
    });
    expect_failure(&verify(&t.app, &f, &[]), "unexpected file");
    let f = tampered(&t.app, &t.october, "file-removed.zip", |files| {
        files.remove("signer.pem");
    });
    expect_failure(&verify(&t.app, &f, &[]), "signer.pem is missing");
}

#[actix_web::test]
async fn consecutive_reports_link_and_a_gap_or_replay_is_named() {
    let t = three_months().await;
    // Linking: consecutive reports verify; a gap or a replay is named.
    let ok = verify(&t.app, &t.november, &["--previous", t.october.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    expect_failure(
        &verify(&t.app, &t.december, &["--previous", t.october.to_str().unwrap()]),
        "missing",
    );
    expect_failure(
        &verify(&t.app, &t.october, &["--previous", t.november.to_str().unwrap()]),
        "does not follow",
    );
}

#[actix_web::test]
async fn empty_months_and_clocks_that_jump_back() {
    let app = spawn_app().await;
    app.installed_at(datetime!(2026-09-14 09:00 UTC));
    // An empty month still exports, inactive, with zero counts.
    let september = export(&app, "2026-09", datetime!(2026-10-01 00:00 UTC));
    let report = berth::report::verify_file(&september, None).unwrap().report;
    assert!(!report.active);
    assert_eq!(report.counts.licenses, 0);
    assert_eq!((report.log.first_seq, report.log.last_seq), (1, 0));

    license_at(&app, datetime!(2026-10-10 10:00 UTC), Some("a"), false).await;
    license_at(&app, datetime!(2026-10-12 10:00 UTC), Some("b"), false).await;
    let october = export(&app, "2026-10", datetime!(2026-11-01 00:00 UTC));
    // November: the clock is set back into October for one license, then fixed.
    license_at(&app, datetime!(2026-11-05 10:00 UTC), Some("c"), false).await;
    license_at(&app, datetime!(2026-10-20 10:00 UTC), Some("d"), false).await;
    license_at(&app, datetime!(2026-11-06 10:00 UTC), Some("e"), false).await;
    let out = app.berth(&["stats", "--month", "2026-10", "--json"]);
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        stats["counts"]["clock_anomalies"], 1,
        "berth stats shows the jump"
    );
    let out = app.berth(&["stats", "--month", "2026-10"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "month:                  2026-10\n\
         licenses:               3\n\
         active users:           3\n\
         licenses without user:  0\n\
         repeat key fetches:     0 (HLS keys fetched again with the same token: delivered, not licenses)\n\
         clock anomalies:        1 (licenses stamped earlier than the one before; the clock was set back)\n\
         by key system:\n\
         \x20 clearkey    3\n\
         \x20 hls         0\n\
         by day:\n\
         \x20 2026-10-10  1\n\
         \x20 2026-10-12  1\n\
         \x20 2026-10-20  1\n"
    );
    let november = export(&app, "2026-11", datetime!(2026-12-01 00:00 UTC));
    let report = berth::report::verify_file(&november, None).unwrap().report;
    assert_eq!(
        report.counts.licenses, 3,
        "the late row counts once, in the report that holds it"
    );
    assert_eq!(report.clock_anomalies.count, 1);
    assert_eq!(report.clock_anomalies.outside_month, 1);
    assert_eq!(report.clock_anomalies.first_seqs, vec![4]);
    assert_eq!(report.counts.by_day["2026-10-20"], 1);
    let out = verify(&app, &november, &["--previous", october.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let total: u64 = [&september, &october, &november]
        .iter()
        .map(|f| {
            berth::report::verify_file(f, None)
                .unwrap()
                .report
                .counts
                .licenses
        })
        .sum();
    assert_eq!(total as i64, app.log_rows(), "no row dropped or counted twice");
    // Skipping a month is refused.
    let err = refused(&app, "2027-01", datetime!(2027-02-01 00:00 UTC));
    assert!(err.contains("2026-12"), "{err}");
}

/// The first report is the installation's first month: a typo'd year would
/// begin the chain of reports a year early, and a later month would bill the
/// licenses before it in the wrong month.
#[actix_web::test]
async fn the_first_report_is_the_installations_first_month() {
    let app = spawn_app().await;
    app.installed_at(datetime!(2026-10-20 09:00 UTC));
    license_at(&app, datetime!(2026-10-21 10:00 UTC), Some("a"), false).await;
    license_at(&app, datetime!(2026-11-02 10:00 UTC), Some("b"), false).await;
    let now = datetime!(2026-12-01 08:00 UTC);
    for month in ["2025-10", "2026-09", "2026-11"] {
        let err = refused(&app, month, now);
        assert!(
            err.contains("the first report to export is 2026-10"),
            "{month}: {err}"
        );
    }
    assert!(berth::report::due_months(&app.db(), now).unwrap().first() == Some(&"2026-10".parse().unwrap()));
    assert!(
        std::fs::read_dir(reports_dir(&app))
            .unwrap()
            .flatten()
            .all(|e| { e.file_name().to_string_lossy().starts_with('.') }),
        "a refused export leaves no report behind"
    );
    let out = app.berth(&["report", "export", "--month", "2026-11"]);
    expect_failure(&out, "the first report to export is 2026-10");
    let october = export(&app, "2026-10", now);
    let november = export(&app, "2026-11", now);
    for (file, licenses) in [(&october, 1), (&november, 1)] {
        let report = berth::report::verify_file(file, None).unwrap().report;
        assert_eq!(report.counts.licenses, licenses);
        assert_eq!(report.clock_anomalies.count, 0);
    }
}

/// `report export --due` (the monthly timer) exports every month that has
/// ended without a report, in order, and says what is next when none has.
#[actix_web::test]
async fn export_due_catches_up_every_finished_month() {
    let app = spawn_app().await;
    let this_month = Month::of(OffsetDateTime::now_utc());
    let two_ago = this_month.previous().previous();
    app.installed_at(two_ago.start() + time::Duration::days(3));
    license_at(&app, two_ago.start() + time::Duration::days(4), Some("a"), false).await;
    let out = app.berth(&["report", "export", "--due"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("exported ")
            && lines[0].contains(&format!("({two_ago}: 1 license, 1 active user, sequence 1)")),
        "{text}"
    );
    assert!(
        lines[1].contains(&format!(
            "({}: 0 licenses, 0 active users, sequence 2)",
            two_ago.next()
        )),
        "{text}"
    );

    let out = app.berth(&["report", "export", "--due"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "nothing to export: the next report, for {this_month}, can be exported once that month ends ({})\n",
            berth::ids::format_instant(this_month.end())
        )
    );
    let out = app.berth(&["report", "export", "--due", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exported"], json!([]));
    assert_eq!(v["next"], this_month.to_string());
    assert_eq!(report_list(&app).len(), 2);
    let out = app.berth(&["report", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("  by hand  ").count(), 2, "{text}");
    assert!(
        text.ends_with(&format!(
            "no upload address is configured ([upload] url): take the files from {} to the ground\n",
            reports_dir(&app).display()
        )),
        "{text}"
    );

    // --due takes no month and no --partial; export needs one or the other.
    for args in [
        &["report", "export", "--due", "--month", "2026-10"][..],
        &["report", "export", "--due", "--partial"],
        &["report", "export"],
    ] {
        assert_eq!(app.berth(args).status.code(), Some(2), "{args:?}");
    }
}

/// The server's automatic export wakes at the turn of the month, not only
/// every `check_interval_secs` (an hour here): October is exported in the
/// first seconds of November.
#[actix_web::test]
async fn the_automatic_export_runs_as_the_month_ends() {
    let mut app = spawn_app_with(|c| c.reports.check_interval_secs = 3600).await;
    app.installed_at(datetime!(2026-10-01 08:00 UTC));
    license_at(&app, datetime!(2026-10-05 10:00 UTC), Some("a"), false).await;
    app.stop().await;
    app.clock.set(datetime!(2026-10-31 23:59:59.500 UTC));
    app.start().await;
    // Let the first pass (nothing has ended yet) run and go to sleep.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(report_list(&app).is_empty());
    app.clock.set(datetime!(2026-11-01 00:00:00.200 UTC));
    let mut waited = 0;
    while report_list(&app).is_empty() && waited < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let listed = report_list(&app);
    assert_eq!(listed.len(), 1, "October was exported as November began");
    assert_eq!(listed[0]["month"], "2026-10");
}

/// A box whose clock was set right only after `init` (it said 30 November
/// when it was October): the license stamped before November counts in
/// November's report, as a clock anomaly, and no report starts before the
/// installation.
#[actix_web::test]
async fn a_clock_set_after_init_counts_earlier_licenses_in_the_first_report() {
    let app = spawn_app().await;
    app.installed_at(datetime!(2026-11-30 23:00 UTC));
    license_at(&app, datetime!(2026-10-05 10:00 UTC), Some("a"), false).await;
    license_at(&app, datetime!(2026-11-30 23:30 UTC), Some("b"), false).await;
    let err = refused(&app, "2026-10", datetime!(2026-11-01 00:00 UTC));
    assert!(err.contains("the first report to export is 2026-11"), "{err}");
    assert!(
        berth::report::due_months(&app.db(), datetime!(2026-11-01 00:00 UTC))
            .unwrap()
            .is_empty()
    );
    let november = export(&app, "2026-11", datetime!(2026-12-01 00:00 UTC));
    let report = berth::report::verify_file(&november, None).unwrap().report;
    assert_eq!(report.counts.licenses, 2);
    assert_eq!(report.clock_anomalies.outside_month, 1);
    assert_eq!(report.clock_anomalies.first_seqs, vec![1]);
}

/// `good` with its report.json replaced by 200 MB of spaces, deflated to
/// under 2 MB: a zip bomb.
fn write_zip_bomb(good: &Path, bomb: &Path) {
    let mut files = read_zip(good);
    files.remove("report.json");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(bomb).unwrap());
    let deflate =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in &files {
        zip.start_file(name.as_str(), deflate).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.start_file("report.json", deflate.large_file(true)).unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..200 {
        zip.write_all(&chunk).unwrap();
    }
    zip.finish().unwrap();
}

#[actix_web::test]
async fn hostile_zips_get_a_clear_error() {
    let app = spawn_app().await;
    app.installed_at(datetime!(2026-10-01 08:00 UTC));
    license_at(&app, datetime!(2026-10-05 10:00 UTC), Some("a"), false).await;
    let good = export(&app, "2026-10", datetime!(2026-11-01 00:00 UTC));
    let key = app.db().signing_key().unwrap();
    let dir = app.dir.path();

    std::fs::write(dir.join("not-a.zip"), b"PK\x03\x04 this is not a zip").unwrap();
    expect_failure(&verify(&app, &dir.join("not-a.zip"), &[]), "not a zip");
    expect_failure(&verify(&app, &dir.join("missing.zip"), &[]), "cannot open");
    expect_failure(&verify(&app, dir, &[]), "is a directory, not a report zip");

    let traversal = tampered(&app, &good, "traversal.zip", |files| {
        files.insert("../../etc/passwd".into(), b"root".to_vec());
    });
    expect_failure(&verify(&app, &traversal, &[]), "unexpected file");
    assert!(!Path::new("/etc/passwd.berth").exists());

    // A zip bomb: report.json inflating to 200 MB of spaces.
    let bomb = dir.join("bomb.zip");
    write_zip_bomb(&good, &bomb);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 2_000_000);
    expect_failure(&verify(&app, &bomb, &[]), "larger than");

    // A CSV with one endless line, correctly signed.
    let endless = tampered(&app, &good, "endless.zip", |files| {
        files.insert("licenses.csv".into(), vec![b'x'; 3 << 20]);
        resign(files, &key);
    });
    expect_failure(&verify(&app, &endless, &[]), "more than its 1 rows can take");

    let bad_json = tampered(&app, &good, "bad-json.zip", |files| {
        files.insert("report.json".into(), b"{\"schema\": [1, 2".to_vec());
        resign(files, &key);
    });
    expect_failure(&verify(&app, &bad_json, &[]), "not a valid report");

    let junk = [
        &traversal,
        &bomb,
        &endless,
        &bad_json,
        &good,
        &dir.join("not-a.zip"),
    ];
    fleet_summary_over_junk(&app, &junk);
}

/// fleet summary over hostile zips and one good report: problems listed,
/// nothing counted twice, no crash, nothing written; a path that is not there
/// (a typo) is an error, not an empty summary.
fn fleet_summary_over_junk(app: &TestApp, junk: &[&PathBuf]) {
    let dir = app.dir.path();
    let junk_dir = dir.join("junk");
    std::fs::create_dir(&junk_dir).unwrap();
    for f in junk {
        std::fs::copy(f, junk_dir.join(f.file_name().unwrap())).unwrap();
    }
    let before: Vec<_> = std::fs::read_dir(&junk_dir).unwrap().collect();
    let summary = fleet_json(&app.berth(&["fleet", "summary", junk_dir.to_str().unwrap(), "--json"]));
    assert_eq!(summary["counted_reports"], 1);
    assert_eq!(summary["problems"].as_array().unwrap().len(), junk.len() - 1);
    assert_eq!(
        summary["months"]["2026-10"]["aircraft"]["active_installations"],
        1
    );
    assert_eq!(std::fs::read_dir(&junk_dir).unwrap().count(), before.len());

    let typo = dir.join("reprots");
    let out = app.berth(&[
        "fleet",
        "summary",
        junk_dir.to_str().unwrap(),
        typo.to_str().unwrap(),
    ]);
    expect_failure(&out, "reprots: no such file or directory");
    assert!(out.stdout.is_empty());
}

/// Vendor side: several installations of several vessel types, with an invalid
/// and a duplicate report mixed in.
/// Five installations (two aircraft, a ship, a train, a bus), all active in
/// October and the two aircraft in November, their reports in one folder
/// with a duplicate copy, a tampered report and symbolic links (two back to
/// the folder itself, one to a report); and the public keys of the first
/// four. Made once for the tests below.
struct FiveVessels {
    fleet: tempfile::TempDir,
    keys: tempfile::TempDir,
}

fn five_vessels() -> &'static FiveVessels {
    static FLEET: std::sync::OnceLock<FiveVessels> = std::sync::OnceLock::new();
    FLEET.get_or_init(|| {
        // Its own thread and runtime: each test runs on a runtime of its own.
        std::thread::spawn(|| actix_web::rt::System::new().block_on(make_five_vessels()))
            .join()
            .unwrap()
    })
}

async fn make_five_vessels() -> FiveVessels {
    let fleet = tempfile::tempdir().unwrap();
    let kinds = ["aircraft", "aircraft", "ship", "train", "bus"];
    let mut apps = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let app = spawn_app_with(|_| {}).await;
        // Re-label the vessel type directly: spawn_app makes aircraft.
        let conn = rusqlite::Connection::open(app.db_path()).unwrap();
        conn.execute(
            "UPDATE installation SET vessel_type = ?1, installation_id = ?2",
            [*kind, &format!("v{i}")],
        )
        .unwrap();
        drop(conn);
        app.installed_at(datetime!(2026-10-01 08:00 UTC));
        // Every installation is active in October; only the first two in November.
        license_at(&app, datetime!(2026-10-03 10:00 UTC), Some("p1"), false).await;
        license_at(&app, datetime!(2026-10-04 10:00 UTC), Some("p2"), false).await;
        if i < 2 {
            license_at(&app, datetime!(2026-11-04 10:00 UTC), Some("p1"), false).await;
        }
        let oct = export(&app, "2026-10", datetime!(2026-11-01 00:00 UTC));
        let nov = export(&app, "2026-11", datetime!(2026-12-01 00:00 UTC));
        for f in [&oct, &nov] {
            std::fs::copy(f, fleet.path().join(f.file_name().unwrap())).unwrap();
        }
        apps.push((app, oct));
    }
    // A duplicate copy and a tampered report.
    let (first_app, first_oct) = &apps[0];
    std::fs::copy(first_oct, fleet.path().join("copy-of-oct.zip")).unwrap();
    let bad = tampered(first_app, &apps[2].1, "tampered.zip", |files| {
        let text = String::from_utf8(files["licenses.csv"].clone()).unwrap();
        assert!(text.contains(",temporary,"));
        let text = text.replacen(",temporary,", ",persistent-license,", 1);
        files.insert("licenses.csv".into(), text.into_bytes());
    });
    std::fs::copy(&bad, fleet.path().join("tampered.zip")).unwrap();
    // Symbolic links: two back to the directory itself (not followed: the walk
    // once went on forever) and one to a report (a copy, counted once).
    std::os::unix::fs::symlink(fleet.path(), fleet.path().join("loop")).unwrap();
    std::os::unix::fs::symlink(fleet.path(), fleet.path().join("again")).unwrap();
    // (The link points at the fleet's own copy: the installations' data dirs
    // go when this fixture returns.)
    let kept_oct = fleet.path().join(first_oct.file_name().unwrap());
    std::os::unix::fs::symlink(&kept_oct, fleet.path().join("linked-oct.zip")).unwrap();

    let keys = tempfile::tempdir().unwrap();
    for (app, _) in &apps[..4] {
        let id = app.db().installation().unwrap().id;
        std::fs::write(
            keys.path().join(format!("{id}.pem")),
            app.db().signing_key().unwrap().public_pem(),
        )
        .unwrap();
    }
    FiveVessels { fleet, keys }
}

fn summary_of_five() -> Value {
    fleet_json(&berth(&[
        "fleet",
        "summary",
        five_vessels().fleet.path().to_str().unwrap(),
        "--json",
    ]))
}

#[test]
fn fleet_summary_counts_active_installations_by_type_and_month() {
    let s = summary_of_five();
    let oct = &s["months"]["2026-10"];
    assert_eq!(oct["aircraft"]["active_installations"], 2);
    assert_eq!(oct["aircraft"]["licenses"], 4);
    assert_eq!(oct["ship"]["active_installations"], 1);
    assert_eq!(oct["train"]["active_installations"], 1);
    assert_eq!(oct["bus"]["active_installations"], 1);
    let nov = &s["months"]["2026-11"];
    assert_eq!(nov["aircraft"]["active_installations"], 2);
    assert_eq!(nov["ship"]["active_installations"], 0);
    assert_eq!(nov["ship"]["reporting_installations"], 1);
    assert_eq!(s["counted_reports"], 10);
}

/// A duplicate copy is named; a tampered report is a problem that names no
/// installation (its claim is not trusted); links back to the folder are not
/// followed.
#[test]
fn fleet_summary_names_duplicates_and_tampered_reports() {
    let s = summary_of_five();
    let problems = s["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["problem"].as_str().unwrap().contains("duplicate")),
        "{problems:?}"
    );
    let tampered_problem = problems
        .iter()
        .find(|p| p["file"].as_str().unwrap().ends_with("tampered.zip"))
        .expect("the tampered report is a problem");
    assert_eq!(
        tampered_problem["problem"],
        "licenses.csv row 1: row_hash does not match the row (the row was edited)"
    );
    // A report that fails verification names no installation: its claim is not trusted.
    assert_eq!(tampered_problem["installation"], Value::Null);
}

/// --pubkeys: a report whose installation is not known is not counted; the
/// problems are not lost with --csv.
#[test]
fn fleet_summary_with_known_keys_counts_only_known_installations() {
    let f = five_vessels();
    let out = berth(&[
        "fleet",
        "summary",
        f.fleet.path().to_str().unwrap(),
        "--pubkeys",
        f.keys.path().to_str().unwrap(),
        "--csv",
    ]);
    assert_eq!(out.status.code(), Some(1), "problems exit 1");
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(csv.contains("2026-10,aircraft,2,2,4,4,\n"), "{csv}");
    assert!(
        !csv.contains("2026-10,bus"),
        "the bus has no key in --pubkeys: {csv}"
    );
    // The problems are not lost with --csv: in rows of their own (the last
    // column), and on stderr.
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(csv.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    assert!(
        rows.iter()
            .any(|r| r[0].is_empty() && r[6].contains("tampered.zip")),
        "{csv}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tampered.zip") && stderr.contains("(v4)"),
        "{stderr}"
    );
}

/// Requests a receiver got: request line, headers, body.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A minimal HTTP receiver on a socket: records each request's path, headers
/// and body, answers 200.
fn start_receiver(listener: std::net::TcpListener) -> Received {
    start_receiver_with(listener, None)
}

/// [`start_receiver`], speaking TLS with `tls` when given (a handshake that
/// fails records nothing).
fn start_receiver_with(listener: std::net::TcpListener, tls: Option<openssl::ssl::SslAcceptor>) -> Received {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            match &tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream) {
                        receive_one(stream, &store);
                    }
                }
                None => receive_one(stream, &store),
            }
        }
    });
    received
}

fn receive_one<S: std::io::Read + std::io::Write>(stream: S, store: &Received) {
    use std::io::BufRead as _;
    {
        {
            let mut reader = std::io::BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                return;
            }
            let mut headers = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                headers.push_str(&line);
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            store
                .lock()
                .unwrap()
                .push((request_line.trim().to_owned(), headers, body));
            let mut stream = reader.into_inner();
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.flush();
        }
    }
}

/// Moves the server's clock on by `step` (with a moment for the server to
/// act) until `done`, at most `times` times.
async fn advance_until(app: &TestApp, times: usize, step: time::Duration, mut done: impl FnMut() -> bool) {
    for _ in 0..times {
        if done() {
            return;
        }
        app.clock.set(app.clock_now() + step);
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The receiver got each exported report once, as a zip, byte for byte.
fn assert_received_as_exported(app: &TestApp, receiver: &Received) {
    let got = receiver.lock().unwrap();
    assert_eq!(got.len(), 2, "each report arrives exactly once");
    for (line, headers, body) in got.iter() {
        let name = line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches("/incoming/");
        assert!(
            line.starts_with("PUT /incoming/berth-report-test-vessel-"),
            "{line}"
        );
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("content-type: application/zip")
        );
        assert_eq!(
            body,
            &std::fs::read(reports_dir(app).join(name)).unwrap(),
            "byte-identical"
        );
    }
}

#[actix_web::test]
async fn reports_upload_exactly_once_across_outages_and_restarts() {
    // The receiver's port is known but nothing listens on it yet: the vessel is offline.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut app = spawn_app_with(|c| {
        c.upload.url = format!("http://127.0.0.1:{port}/incoming/");
        c.upload.allow_plain_http = true;
        c.upload.retry_min_secs = 1;
        c.upload.retry_max_secs = 2;
        c.reports.check_interval_secs = 1;
    })
    .await;
    let token = app.token(&[KID_A], json!({}));
    for _ in 0..3 {
        assert_eq!(
            post_license(&app, Some(&token), &clearkey_body(&[KID_A], "temporary"))
                .await
                .0,
            200
        );
    }
    // Two months close: the server exports both by itself and tries to upload.
    let start = OffsetDateTime::now_utc();
    let later = Month::of(start).next().next().start() + time::Duration::days(3);
    app.clock.set(later);
    advance_until(&app, 100, time::Duration::minutes(1), || {
        let listed = report_list(&app);
        listed.len() == 2 && listed[0]["upload_attempts"].as_i64().unwrap() >= 2
    })
    .await;
    let listed = report_list(&app);
    assert_eq!(listed.len(), 2, "both closed months exported: {listed:?}");
    assert!(
        listed.iter().all(|r| r["uploaded_at"].is_null()),
        "nothing is marked uploaded while offline"
    );
    assert!(listed[0]["last_error"].as_str().is_some());
    assert_eq!(listed[0]["licenses"], 3);

    // The receiver comes up.
    let receiver = start_receiver(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    let all_uploaded = || report_list(&app).iter().all(|r| !r["uploaded_at"].is_null());
    advance_until(&app, 100, time::Duration::minutes(1), all_uploaded).await;
    assert!(
        report_list(&app).iter().all(|r| !r["uploaded_at"].is_null()),
        "{:?}",
        report_list(&app)
    );
    assert_received_as_exported(&app, &receiver);

    // A restart does not send them again (the checkpoint made at shutdown
    // goes, once).
    app.stop().await;
    app.start().await;
    advance_until(&app, 10, time::Duration::minutes(5), || false).await;
    let sent = |prefix: &str| {
        let got = receiver.lock().unwrap();
        got.iter()
            .filter(|(line, ..)| line.starts_with(&format!("PUT /incoming/{prefix}")))
            .count()
    };
    assert_eq!(sent("berth-report-"), 2);
    assert_eq!(sent("berth-checkpoint-test-vessel-3-"), 1);
    let out = app.berth(&["report", "upload"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no upload.url in the CLI's default config"
    );
}

/// A receiver (the ground's upload endpoint, as a test double) that answers
/// over TLS and wants a client certificate issued by `client_ca`: its port
/// and what it received.
fn mutual_tls_receiver(cert: &Path, key: &Path, client_ca: &Path) -> (u16, Received) {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    acceptor.set_private_key_file(key, SslFiletype::PEM).unwrap();
    acceptor.set_certificate_chain_file(cert).unwrap();
    acceptor.set_ca_file(client_ca).unwrap();
    acceptor.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (port, start_receiver_with(listener, Some(acceptor.build())))
}

#[actix_web::test]
async fn reports_upload_over_tls_only_to_a_trusted_receiver_with_a_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let receiver_dir = certs.path().join("receiver");
    let client_dir = certs.path().join("client");
    std::fs::create_dir_all(&receiver_dir).unwrap();
    std::fs::create_dir_all(&client_dir).unwrap();
    let (server_cert, server_key) = self_signed(&receiver_dir);
    let (client_cert, client_key) = self_signed(&client_dir);
    let (port, received) = mutual_tls_receiver(&server_cert, &server_key, &client_cert);

    let app = spawn_app().await;
    let month = Month::of(OffsetDateTime::now_utc()).previous();
    app.installed_at(month.start());
    let month = month.to_string();
    let out = app.berth(&["report", "export", "--month", &month]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let upload = |extra: &str| {
        let config = app.dir.path().join("upload.toml");
        std::fs::write(
            &config,
            format!("[upload]\nurl = \"https://127.0.0.1:{port}/incoming/\"\nretry_min_secs = 1\n{extra}"),
        )
        .unwrap();
        app.berth(&["report", "upload", "--config", config.to_str().unwrap()])
    };
    let pending = |app: &TestApp| {
        let list = report_list(app);
        list.iter().filter(|r| r["uploaded_at"].is_null()).count()
    };

    // A receiver berth cannot authenticate gets nothing.
    let out = upload("");
    assert_ne!(
        out.status.code(),
        Some(0),
        "untrusted receiver: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Trusted, but without a client certificate: refused by the receiver.
    let out = upload(&format!("ca_file = {:?}\n", server_cert));
    assert_ne!(out.status.code(), Some(0), "no client certificate");
    assert!(received.lock().unwrap().is_empty());
    assert_eq!(pending(&app), 1);
    // A client key that does not match its certificate is a clear error.
    let out = upload(&format!(
        "ca_file = {:?}\nclient_cert = {:?}\nclient_key = {:?}\n",
        server_cert, client_cert, server_key
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = upload(&format!(
        "ca_file = {:?}\nclient_cert = {:?}\nclient_key = {:?}\n",
        server_cert, client_cert, client_key
    ));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(pending(&app), 0);
    let got = received.lock().unwrap();
    assert_eq!(got.len(), 1);
    let name = app.db().reports().unwrap()[0].file_name.clone();
    assert_eq!(got[0].0, format!("PUT /incoming/{name} HTTP/1.1"));
    assert_eq!(
        got[0].2,
        std::fs::read(reports_dir(&app).join(&name)).unwrap(),
        "byte-identical over TLS"
    );
}

/// A log edited behind berth's back is not exported: the reading thread stops
/// at the broken row while the deflating thread is mid-file, the error names
/// the row, and no zip (nor a temporary file) is left in the reports folder.
#[actix_web::test]
async fn a_broken_log_is_not_exported() {
    let app = spawn_app().await;
    app.installed_at(datetime!(2026-10-01 08:00 UTC));
    october_5th(&app, &["a", "b", "c"]).await;
    app.tamper("DROP TRIGGER license_log_no_update; UPDATE license_log SET license_type = 'persistent' WHERE seq = 2;");
    let out = app.berth(&["report", "export", "--month", "2026-10"]);
    expect_failure(&out, "the license log is broken at row 2");
    let left: Vec<_> = std::fs::read_dir(reports_dir(&app))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name != ".export.lock")
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert!(report_list(&app).is_empty());
}

/// The shell block that follows `marker` in the operator's manual.
fn readme_recipe(marker: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/doc/manual.md")).unwrap();
    let after = &readme[readme.find(marker).expect(marker)..];
    let start = after.find("```sh\n").unwrap() + "```sh\n".len();
    after[start..start + after[start..].find("```").unwrap()].to_owned()
}

/// A vessel with September, October and November 2026 exported (one license
/// each): the three reports.
async fn three_reports() -> (TestApp, [PathBuf; 3]) {
    let app = spawn_app().await;
    app.installed_at(datetime!(2026-09-01 08:00 UTC));
    license_at(&app, datetime!(2026-09-03 10:00 UTC), Some("p1"), false).await;
    license_at(&app, datetime!(2026-10-03 10:00 UTC), Some("p1"), false).await;
    license_at(&app, datetime!(2026-11-03 10:00 UTC), Some("p2"), false).await;
    let sep = export(&app, "2026-09", datetime!(2026-10-01 00:00 UTC));
    let oct = export(&app, "2026-10", datetime!(2026-11-01 00:00 UTC));
    let nov = export(&app, "2026-11", datetime!(2026-12-01 00:00 UTC));
    (app, [sep, oct, nov])
}

/// `fleet summary --json` over a directory holding these reports (with
/// `--pubkeys` when given).
fn summary_of(app: &TestApp, reports: &[&PathBuf], pubkeys: Option<&Path>) -> Value {
    let fleet = tempfile::tempdir().unwrap();
    for f in reports {
        std::fs::copy(f, fleet.path().join(f.file_name().unwrap())).unwrap();
    }
    let mut args = vec!["fleet", "summary", fleet.path().to_str().unwrap(), "--json"];
    if let Some(keys) = pubkeys {
        args.extend(["--pubkeys", keys.to_str().unwrap()]);
    }
    fleet_json(&app.berth(&args))
}

/// The problem a summary names for the file whose name ends so.
fn problem_of(summary: &Value, file: &Path) -> String {
    let file = file.file_name().unwrap().to_string_lossy();
    summary["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["file"].as_str().unwrap().ends_with(&*file))
        .map(|p| p["problem"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Issue 25: fleet summary counts a report only when its signer is
/// established. A consistent report signed by some other key for the same
/// installation and month does not push the genuine one out.
#[actix_web::test]
async fn fleet_summary_counts_only_reports_of_an_established_signer() {
    let (app, [sep, oct, nov]) = three_reports().await;
    let other = berth::crypto::SigningKey::generate();
    let forged = tampered(&app, &oct, "forged-oct.zip", |files| {
        edit_report(files, |r| {
            r["installation"]["public_key_sha256"] = json!(berth::crypto::sha256_hex(&other.public_der()));
            r["counts"]["licenses"] = json!(1);
        });
        files.insert("signer.pem".into(), other.public_pem().into_bytes());
        resign(files, &other);
    });
    let all = [&sep, &oct, &nov, &forged];
    let s = summary_of(&app, &all, None);
    assert_eq!(s["counted_reports"], 0, "{s}");
    assert!(problem_of(&s, &forged).contains("--pubkeys"), "{s}");
    assert!(problem_of(&s, &oct).contains("--pubkeys"), "{s}");
    // With the registered key the genuine reports count and the forged one does not.
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(
        keys.path().join("test-vessel.pem"),
        app.db().signing_key().unwrap().public_pem(),
    )
    .unwrap();
    let s = summary_of(&app, &all, Some(keys.path()));
    assert_eq!(s["counted_reports"], 3, "{s}");
    assert_eq!(s["months"]["2026-10"]["aircraft"]["licenses"], 1);
    assert!(problem_of(&s, &forged).contains("another key"), "{s}");
}

/// Issue 25: a November whose link to October is broken (re-signed by the
/// box's own key after its previous-report hash was changed) is not counted;
/// nor is a report whose previous one is missing.
#[actix_web::test]
async fn fleet_summary_counts_only_reports_whose_link_holds() {
    let (app, [sep, oct, nov]) = three_reports().await;
    let key = app.db().signing_key().unwrap();
    let relinked = tampered(&app, &nov, "relinked-nov.zip", |files| {
        edit_report(files, |r| {
            r["report"]["previous_report_sha256"] = json!("00".repeat(32))
        });
        resign(files, &key);
    });
    let s = summary_of(&app, &[&sep, &oct, &relinked], None);
    assert_eq!(s["counted_reports"], 2, "{s}");
    assert!(s["months"]["2026-11"].is_null(), "{s}");
    assert!(problem_of(&s, &relinked).contains("link"), "{s}");
    let s = summary_of(&app, &[&sep, &nov], None);
    assert_eq!(s["counted_reports"], 1, "{s}");
    assert!(problem_of(&s, &nov).contains("report 2"), "{s}");
}
