//! Issue 28 (first part): signed checkpoints of the chain's head, and reports
//! checked against them.

use std::path::Path;

use berth::ids::Month;
use serde_json::Value;

use crate::helpers::*;

async fn licenses(app: &TestApp, n: usize) {
    for _ in 0..n {
        licensed(app).await;
    }
}

fn verify_against(app: &TestApp, report: &Path, checkpoints: &Path) -> std::process::Output {
    app.berth(&[
        "report",
        "verify",
        report.to_str().unwrap(),
        "--checkpoints",
        checkpoints.to_str().unwrap(),
    ])
}

/// Licenses, a backup, more licenses, a checkpoint that leaves the box (at
/// row 6), the genuine report of the month kept; then the backup restored
/// with --force, more licenses, and the month exported again.
struct RolledBack {
    app: TestApp,
    in_month: time::OffsetDateTime,
    /// Where the checkpoint went (the ground).
    ground: std::path::PathBuf,
    checkpoint_file: std::path::PathBuf,
    kept: std::path::PathBuf,
    rolled_back: std::path::PathBuf,
}

async fn rolled_back() -> RolledBack {
    let mut app = spawn_app().await;
    let month = Month::of(app.clock_now()).previous();
    app.installed_at(month.start());
    let in_month = month.start() + time::Duration::days(3);
    app.clock.set(in_month);
    licenses(&app, 3).await;
    let backup = app.dir.path().join("backup.db");
    let out = app.berth(&["backup", "--out", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    licenses(&app, 3).await;
    // The checkpoint as the real binary makes it; it leaves the box.
    let ground = app.dir.path().join("ground");
    let out = app.berth(&["log", "checkpoint", "--out", ground.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["seq"], 6);
    let checkpoint_file = std::path::PathBuf::from(made["file"].as_str().unwrap());
    let genuine = export(&app, &month.to_string(), month.end() + time::Duration::hours(1));
    let kept = app.dir.path().join("genuine.zip");
    std::fs::copy(&genuine, &kept).unwrap();
    let out = verify_against(&app, &kept, &ground);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Roll back, go on, export the month again.
    app.stop().await;
    let out = app.berth(&["restore", backup.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(&genuine).unwrap();
    app.start().await;
    app.clock.set(in_month + time::Duration::hours(1));
    licenses(&app, 3).await;
    let rolled_back = export(&app, &month.to_string(), month.end() + time::Duration::hours(1));
    let out = app.berth(&["report", "verify", rolled_back.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "on its own it verifies: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    RolledBack {
        app,
        in_month,
        ground,
        checkpoint_file,
        kept,
        rolled_back,
    }
}

/// Anyone can check a checkpoint with openssl and the installation's public
/// key; the genuine report passes against it.
#[actix_web::test]
async fn a_checkpoint_checks_with_openssl_and_the_genuine_report_passes() {
    let r = rolled_back().await;
    // Anyone can check it with openssl and the installation's public key.
    let pem = r.app.dir.path().join("signer.pem");
    std::fs::write(&pem, r.app.db().signing_key().unwrap().public_pem()).unwrap();
    let json = r.checkpoint_file.clone();
    let openssl = std::process::Command::new("openssl")
        .args([
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            pem.to_str().unwrap(),
            "-rawin",
            "-in",
        ])
        .arg(&json)
        .arg("-sigfile")
        .arg(json.with_extension("sig"))
        .output()
        .unwrap();
    assert!(
        openssl.status.success(),
        "{}",
        String::from_utf8_lossy(&openssl.stdout)
    );

    let out = verify_against(&r.app, &r.kept, &r.ground);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The report of the rolled-back log verifies on its own and fails against
/// the checkpoint that left the box.
#[actix_web::test]
async fn a_log_rolled_back_below_a_checkpoint_is_caught() {
    let r = rolled_back().await;
    let out = verify_against(&r.app, &r.rolled_back, &r.ground);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("row 6 differs from checkpoint"), "{stderr}");
}

/// A report that ends before a checkpoint made in its month fails; a
/// checkpoint of the rolled-back log disagrees with the genuine report.
#[actix_web::test]
async fn a_report_ending_before_a_checkpoint_of_its_month_fails() {
    let r = rolled_back().await;
    // A checkpoint made in the month, past where a report ends.
    let later = r.app.dir.path().join("later");
    berth::report::checkpoint::make(
        &r.app.db(),
        r.in_month + time::Duration::hours(2),
        r.app.data_dir(),
        Some(&later),
    )
    .unwrap();
    licenses(&r.app, 1).await;
    let checkpoint_set = r.app.dir.path().join("after-restore");
    berth::report::checkpoint::make(
        &r.app.db(),
        r.in_month + time::Duration::hours(3),
        r.app.data_dir(),
        Some(&checkpoint_set),
    )
    .unwrap();
    let out = verify_against(&r.app, &r.rolled_back, &checkpoint_set);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the report ends at row 6, before checkpoint"),
        "{stderr}"
    );
    // A checkpoint of the rolled-back log at row 6 disagrees with the genuine
    // report: the two logs forked there, and no one report passes both.
    let out = verify_against(&r.app, &r.kept, &later);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("row 6 differs"));
}

/// The vendor holding both: a fork, named and counted once; with the
/// checkpoint that left the box, the rolled-back report is out and the
/// genuine one is what counts.
#[actix_web::test]
async fn the_vendor_names_the_fork_and_counts_the_genuine_report() {
    let r = rolled_back().await;
    // The vendor holding both: a fork, named and counted once; with the
    // checkpoint that left the box, the rolled-back report is out and the
    // genuine one is what counts.
    let fleet = r.app.dir.path().join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::copy(&r.kept, fleet.join("genuine.zip")).unwrap();
    std::fs::copy(&r.rolled_back, fleet.join("rolled-back.zip")).unwrap();
    let summary = |extra: &[&str]| -> Value {
        let mut args = vec!["fleet", "summary", "--json", fleet.to_str().unwrap()];
        args.extend(extra);
        fleet_json(&r.app.berth(&args))
    };
    let s = summary(&[]);
    assert_eq!(s["counted_reports"], 1);
    let forks = s["forks"].as_array().unwrap();
    assert_eq!(forks.len(), 1, "{s}");
    assert_eq!(forks[0]["reports"].as_array().unwrap().len(), 2, "{s}");
    let s = summary(&["--checkpoints", r.ground.to_str().unwrap()]);
    assert_eq!(
        (&s["counted_reports"], &s["checkpoints_checked"]),
        (&Value::from(1), &Value::from(1)),
        "{s}"
    );
    assert_eq!(s["forks"], serde_json::json!([]), "{s}");
    let problem = s["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["file"].as_str().unwrap().ends_with("rolled-back.zip"));
    assert!(
        problem.unwrap()["problem"]
            .as_str()
            .unwrap()
            .contains("row 6 differs"),
        "{s}"
    );
}

/// `berth serve` makes a checkpoint every `log.checkpoint_interval_secs` and
/// one more at shutdown, of the head as it stands once the log is flushed.
#[actix_web::test]
async fn serve_makes_checkpoints_on_a_schedule_and_at_shutdown() {
    let mut app = spawn_app_with(|c| c.log.checkpoint_interval_secs = 1).await;
    let dir = app.data_dir().join("checkpoints");
    let count = || {
        std::fs::read_dir(&dir).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count()
        })
    };
    licensed(&app).await;
    for _ in 0..40 {
        if count() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(count() >= 1, "no checkpoint within 4 s");
    licenses(&app, 2).await;
    let before = count();
    app.stop().await;
    assert_eq!(count(), before + 1, "one more at shutdown");
    let newest = berth::report::checkpoint::load(&dir)
        .unwrap()
        .into_iter()
        .last()
        .unwrap();
    assert_eq!(newest.checkpoint.seq, 3);
    assert_eq!(newest.checkpoint.installation, "test-vessel");
}
