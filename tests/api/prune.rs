//! `berth log prune`: the rows of reported months go, the chain and the reports
//! stay checkable, and nothing goes that is not in a signed report on the box.

use std::path::Path;

use serde_json::Value;
use time::macros::datetime;

use crate::helpers::*;

fn prune(app: &TestApp, before: &str) -> std::process::Output {
    app.berth(&["log", "prune", "--before", before])
}

fn out(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn seqs(app: &TestApp) -> Vec<i64> {
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let mut stmt = conn.prepare("SELECT seq FROM license_log ORDER BY seq").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// September (3 licenses), October (2) and November (2), on a box set up in
/// September.
async fn three_months(app: &TestApp) {
    app.installed_at(datetime!(2026-09-01 08:00 UTC));
    for (i, user) in ["a", "b", "c"].iter().enumerate() {
        license_at(
            app,
            datetime!(2026-09-10 10:00 UTC) + time::Duration::hours(i as i64),
            Some(user),
            false,
        )
        .await;
    }
    license_at(app, datetime!(2026-10-02 10:00 UTC), Some("a"), false).await;
    license_at(app, datetime!(2026-10-30 10:00 UTC), Some("d"), true).await;
    license_at(app, datetime!(2026-11-03 10:00 UTC), Some("a"), false).await;
    license_at(app, datetime!(2026-11-04 10:00 UTC), None, false).await;
}

/// The crew's license log and reports page say where the pruned rows went.
async fn the_crew_is_told_what_was_pruned(app: &TestApp) {
    let cookie = crate::helpers::session(app).await;
    let (status, page) = crate::helpers::get(app, &cookie, "/log?from=2026-09-01").await;
    assert_eq!(status, 200);
    assert!(page.contains("7 licenses match."), "{page}");
    assert!(
        page.contains("The licenses of the months through 2026-10 were pruned from this log on "),
        "{page}"
    );
    assert!(page.contains("(every row before #5)"), "{page}");
    let (_, page) = crate::helpers::get(app, &cookie, "/reports").await;
    assert!(
        page.contains("The license log keeps every license (<code>keep_months = 0</code>")
            && page.contains("Removed so far: the months through 2026-10 (on "),
        "{page}"
    );
}

/// After a prune through October, the log goes on: a new license, November's
/// report linking to October's, a second prune by JSON, and the rows above
/// the line append-only as before.
async fn the_log_goes_on_after_a_prune(app: &TestApp, oct: &Path) {
    license_at(app, datetime!(2026-11-20 10:00 UTC), Some("e"), false).await;
    assert_eq!(seqs(app), [5, 6, 7, 8]);
    let nov = export(app, "2026-11", datetime!(2026-12-01 00:00 UTC));
    let checked = verify(app, &nov, &["--previous", oct.to_str().unwrap(), "--json"]);
    let report: Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert_eq!(report["report"]["counts"]["licenses"], 3);
    assert!(out(&app.berth(&["log", "verify"])).starts_with("license log intact: 4 rows"));

    // Again: nothing more to remove. Then November too, by JSON.
    assert!(out(&prune(app, "2026-11")).starts_with("removed 0 licenses; the log now begins at row 5"));
    let json: Value = serde_json::from_str(&out(
        &app.berth(&["log", "prune", "--before", "2026-12", "--json"])
    ))
    .unwrap();
    assert_eq!(json["removed"], 3);
    assert_eq!(json["first_seq"], 8);
    assert_eq!(seqs(app), [8]);

    // Above the line the log is append-only as before.
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let err = conn
        .execute("DELETE FROM license_log WHERE seq = 8", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[actix_web::test]
async fn pruning_removes_reported_months_and_keeps_the_chain() {
    let app = spawn_admin_app().await;
    three_months(&app).await;

    // Nothing goes before its report exists.
    expect_failure(&prune(&app, "2026-10"), "2026-09 has no report yet");
    let sep = export(&app, "2026-09", datetime!(2026-10-01 00:00 UTC));
    let oct = export(&app, "2026-10", datetime!(2026-11-01 00:00 UTC));
    expect_failure(&prune(&app, "2026-12"), "2026-11 has no report yet");
    assert_eq!(seqs(&app), [1, 2, 3, 4, 5, 6, 7]);

    // Before the installation's first month there is nothing to prune.
    assert_eq!(
        out(&prune(&app, "2026-09")).trim(),
        "nothing to prune before 2026-09"
    );

    // September and October go, but for October's last row: the chain goes on
    // from its hash.
    let text = out(&prune(&app, "2026-11"));
    assert!(
        text.starts_with("removed 4 licenses; the log now begins at row 5 (the months through 2026-10"),
        "{text}"
    );
    assert_eq!(seqs(&app), [5, 6, 7]);
    let verified = out(&app.berth(&["log", "verify"]));
    assert!(
        verified.starts_with("license log intact: 3 rows\n(rows before 5 were pruned on "),
        "{verified}"
    );
    let json: Value = serde_json::from_str(&out(&app.berth(&["log", "verify", "--json"]))).unwrap();
    assert_eq!(json["first_seq"], 5);
    assert_eq!(json["last_seq"], 7);
    assert_eq!(json["pruned_through"], "2026-10");

    // The counts of the pruned months stay (they are aggregates), as do the
    // reports, which still verify and link.
    let stats: Value =
        serde_json::from_str(&out(&app.berth(&["stats", "--month", "2026-09", "--json"]))).unwrap();
    assert_eq!(stats["counts"]["licenses"], 3);
    assert_eq!(stats["counts"]["active_users"], 3);
    assert!(
        verify(&app, &oct, &["--previous", sep.to_str().unwrap()])
            .status
            .success()
    );

    the_crew_is_told_what_was_pruned(&app).await;
    the_log_goes_on_after_a_prune(&app, &oct).await;
}

#[actix_web::test]
async fn pruning_needs_the_signed_report_on_the_box() {
    let app = spawn_app().await;
    three_months(&app).await;
    let sep = export(&app, "2026-09", datetime!(2026-10-01 00:00 UTC));
    let kept = app.dir.path().join("kept.zip");
    std::fs::rename(&sep, &kept).unwrap();

    // The zip is gone: its rows stay.
    expect_failure(&prune(&app, "2026-10"), "the report for 2026-09 does not verify");
    // A zip edited after export: its rows stay.
    let edited = tampered(&app, &kept, "edited.zip", |files| {
        let csv = String::from_utf8(files["licenses.csv"].clone()).unwrap();
        files.insert(
            "licenses.csv".into(),
            csv.replacen(",temporary,", ",persistent-license,", 1)
                .into_bytes(),
        );
    });
    std::fs::copy(&edited, &sep).unwrap();
    expect_failure(&prune(&app, "2026-10"), "the report for 2026-09 does not verify");
    // Another month's valid report under September's name: its rows stay.
    let oct = export(&app, "2026-10", datetime!(2026-11-01 00:00 UTC));
    std::fs::copy(&oct, &sep).unwrap();
    expect_failure(
        &prune(&app, "2026-10"),
        "is not the report berth exported for 2026-09",
    );
    assert_eq!(seqs(&app), [1, 2, 3, 4, 5, 6, 7]);

    // With an upload address, a report must have reached the ground first.
    std::fs::copy(&kept, &sep).unwrap();
    let with_upload = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .arg("--data-dir")
            .arg(app.data_dir())
            .env_remove("BERTH_CONFIG")
            .env("BERTH_UPLOAD_URL", "https://ground.example/reports/")
            .output()
            .unwrap()
    };
    expect_failure(
        &with_upload(&["log", "prune", "--before", "2026-10"]),
        "the report for 2026-09 has not been uploaded yet",
    );
    assert_eq!(seqs(&app).len(), 7);
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute("UPDATE reports SET uploaded_at = '2026-10-02T00:00:00.000Z'", [])
        .unwrap();
    assert!(out(&with_upload(&["log", "prune", "--before", "2026-10"])).starts_with("removed 2 licenses"));
    assert_eq!(seqs(&app), [3, 4, 5, 6, 7]);
    assert!(reports_dir(&app).join(sep.file_name().unwrap()).exists());
}

#[actix_web::test]
async fn a_prune_cut_short_is_finished_and_a_broken_start_is_caught() {
    let app = spawn_app().await;
    three_months(&app).await;
    export(&app, "2026-09", datetime!(2026-10-01 00:00 UTC));
    export(&app, "2026-10", datetime!(2026-11-01 00:00 UTC));
    let row5_prev: String = rusqlite::Connection::open(app.db_path())
        .unwrap()
        .query_row("SELECT prev_hash FROM license_log WHERE seq = 5", [], |r| {
            r.get(0)
        })
        .unwrap();

    // A power cut after the line was recorded and the first rows removed.
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute(
        "INSERT INTO log_pruned VALUES (1, 5, ?1, '2026-10', 2, '2026-11-02T00:00:00.000Z')",
        [&row5_prev],
    )
    .unwrap();
    conn.execute("DELETE FROM license_log WHERE seq < 3", []).unwrap();
    assert!(out(&app.berth(&["log", "verify"])).starts_with("license log intact: 5 rows"));
    assert!(out(&prune(&app, "2026-11")).starts_with("removed 2 licenses; the log now begins at row 5"));
    assert_eq!(seqs(&app), [5, 6, 7]);

    // The first kept row must carry the hash recorded when the rows before it went.
    conn.execute("UPDATE log_pruned SET prev_hash = ?1", [&"0".repeat(64)])
        .unwrap();
    let broken = app.berth(&["log", "verify"]);
    expect_failure(
        &broken,
        "row 5: prev_hash does not match the hash recorded when the rows before it were pruned",
    );
    conn.execute("UPDATE log_pruned SET prev_hash = ?1", [&row5_prev])
        .unwrap();
    // And the log must begin at the line: a row removed at it shows.
    conn.execute_batch("DROP TRIGGER license_log_no_delete; DELETE FROM license_log WHERE seq = 5;")
        .unwrap();
    expect_failure(
        &app.berth(&["log", "verify"]),
        "the log begins at row 6, but only the rows before row 5 were pruned",
    );
}

/// `log.keep_months`: the server exports the ended months and prunes those
/// older than the months it keeps, by itself.
#[actix_web::test]
async fn the_server_prunes_months_older_than_it_keeps() {
    let mut app = spawn_app_with(|c| {
        c.reports.check_interval_secs = 3600;
        c.log.keep_months = 1;
    })
    .await;
    three_months(&app).await;
    app.stop().await;
    app.clock.set(datetime!(2026-11-15 12:00 UTC));
    app.with_admin = true;
    app.start().await;
    // September goes (but for its last row, which the chain goes on from);
    // October, the month kept besides November, stays.
    let mut waited = 0;
    while seqs(&app).len() == 7 && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(seqs(&app), [3, 4, 5, 6, 7]);
    let listed: Vec<String> = app.db().reports().unwrap().into_iter().map(|r| r.month).collect();
    assert_eq!(listed, ["2026-09", "2026-10"]);
    assert!(out(&app.berth(&["log", "verify"])).starts_with("license log intact: 5 rows"));
    // The crew see how long licenses are kept, and what went.
    let cookie = crate::helpers::session(&app).await;
    let (_, page) = crate::helpers::get(&app, &cookie, "/reports").await;
    let retention = crate::helpers::between(&page, "<p id=\"retention\">", "</p>");
    assert_eq!(
        retention,
        "The license log keeps this month and the 1 month before it; an older month's licenses are removed \
         once its report is here and verifies. Removed so far: the months through 2026-09 (on 2026-11-15); \
         their licenses are in the reports above, so keep the files."
    );
}
