//! `berth fleet bill` against bills worked out by hand, on real reports.

use serde_json::{Value, json};
use time::macros::datetime;

use crate::helpers::*;

/// One installation of `kind` with the given October and November licenses
/// (one per user named; a name twice is two licenses for one user); both
/// months' reports are copied into `fleet`.
async fn installation(
    fleet: &std::path::Path,
    id: &str,
    kind: &str,
    october: &[&str],
    november: &[&str],
) -> TestApp {
    let app = spawn_app().await;
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute(
        "UPDATE installation SET vessel_type = ?1, installation_id = ?2",
        [kind, id],
    )
    .unwrap();
    drop(conn);
    app.installed_at(datetime!(2026-10-01 08:00 UTC));
    for (i, user) in october.iter().enumerate() {
        let at = datetime!(2026-10-03 10:00 UTC) + time::Duration::hours(i as i64);
        license_at(&app, at, Some(user), false).await;
    }
    for (i, user) in november.iter().enumerate() {
        let at = datetime!(2026-11-03 10:00 UTC) + time::Duration::hours(i as i64);
        license_at(&app, at, Some(user), false).await;
    }
    for (month, at) in [
        ("2026-10", datetime!(2026-11-01 00:00 UTC)),
        ("2026-11", datetime!(2026-12-01 00:00 UTC)),
    ] {
        let file = export(&app, month, at);
        std::fs::copy(&file, fleet.join(file.file_name().unwrap())).unwrap();
    }
    app
}

fn bill(fleet: &std::path::Path, prices: &str, extra: &[&str]) -> std::process::Output {
    // A price file of its own: the tests below share one fleet and run at once.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), prices).unwrap();
    let mut args = vec![
        "fleet",
        "bill",
        "--prices",
        file.path().to_str().unwrap(),
        fleet.to_str().unwrap(),
    ];
    args.extend(extra);
    berth(&args)
}

fn bill_json(fleet: &std::path::Path, prices: &str) -> Value {
    fleet_json(&bill(fleet, prices, &["--json"]))
}

fn line(vessel_type: &str, basis: &str, quantity: u64, tier: u64, unit_price: &str, amount: &str) -> Value {
    json!({ "vessel_type": vessel_type, "basis": basis, "quantity": quantity, "tier": tier, "unit_price": unit_price, "amount": amount })
}

/// The fleet the bills below are worked out for, made once: October, three
/// aircraft active (5 licenses, 4 users), the train, the bus; November, two
/// aircraft (2 licenses, 2 users), the train, with a3 and the bus reporting
/// but inactive; and a tampered copy of a3's November report, never billed.
fn fleet() -> std::path::PathBuf {
    static FLEET: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    FLEET
        .get_or_init(|| {
            // Its own thread and runtime: each test runs on a runtime of its own.
            std::thread::spawn(|| actix_web::rt::System::new().block_on(make_fleet()))
                .join()
                .unwrap()
        })
        .path()
        .join("fleet")
}

async fn make_fleet() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let fleet = root.path().join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    // October: three aircraft active (5 licenses, 4 users), the train, the bus.
    // November: two aircraft (2 licenses, 2 users), the train; a3 and the bus
    // report but are inactive.
    let a1 = installation(&fleet, "a1", "aircraft", &["p1", "p1", "p2"], &["p1"]).await;
    installation(&fleet, "a2", "aircraft", &["p1"], &["p1"]).await;
    let a3 = installation(&fleet, "a3", "aircraft", &["p1"], &[]).await;
    installation(&fleet, "t1", "train", &["p1"], &["p1"]).await;
    installation(&fleet, "b1", "bus", &["p1"], &[]).await;
    // A tampered report is never billed.
    let a3_nov = fleet.join("berth-report-a3-2026-11-2.zip");
    let bad = tampered(&a3, &a3_nov, "tampered.zip", |files| {
        let text = String::from_utf8(files["report.json"].clone()).unwrap();
        files.insert(
            "report.json".into(),
            text.replace("\"active\": false", "\"active\": true").into_bytes(),
        );
    });
    std::fs::copy(&bad, fleet.join("tampered.zip")).unwrap();
    drop(a1);
    root
}

/// The prices most bills below use: per active installation, volume tiers.
const PRICES: &str = r#"
currency = "EUR"
basis = "installations"
[vessel_types.aircraft]
tiers = [ { up_to = 2, unit_price = 250.0 }, { up_to = 3, unit_price = 200.0 }, { unit_price = 150.0 } ]
[vessel_types.train]
tiers = [ { unit_price = 99.99 } ]
[vessel_types.bus]
tiers = [ { unit_price = "10.005" } ]
"#;

const AIRCRAFT_TIERS: &str =
    "{ up_to = 2, unit_price = 250.0 }, { up_to = 3, unit_price = 200.0 }, { unit_price = 150.0 }";

/// Per active installation, volume tiers: October's 3 aircraft fall in the
/// second tier (200.00 each), November's 2 in the first, at its boundary.
/// 10.005 rounds half away from zero to 10.01; the unit price is shown with
/// the places it was given. The tampered report is not billed.
#[test]
fn installations_are_billed_by_volume_tiers() {
    let b = bill_json(&fleet(), PRICES);
    assert_eq!(b["currency"], "EUR");
    assert_eq!(
        b["months"]["2026-10"],
        json!({ "lines": [
            line("aircraft", "installations", 3, 2, "200.00", "600.00"),
            line("bus", "installations", 1, 1, "10.005", "10.01"),
            line("train", "installations", 1, 1, "99.99", "99.99"),
        ], "total": "710.00" })
    );
    assert_eq!(
        b["months"]["2026-11"],
        json!({ "lines": [
            line("aircraft", "installations", 2, 1, "250.00", "500.00"),
            line("bus", "installations", 0, 1, "10.005", "0.00"),
            line("train", "installations", 1, 1, "99.99", "99.99"),
        ], "total": "599.99" })
    );
    let not_billed = b["not_billed"].as_array().unwrap();
    assert_eq!(not_billed.len(), 1, "{not_billed:?}");
    assert!(not_billed[0]["file"].as_str().unwrap().ends_with("tampered.zip"));
}

/// Per license: October's 5 aircraft licenses cross into the second tier.
#[test]
fn licenses_are_billed_across_tiers() {
    let prices = PRICES.replace("installations", "licenses").replace(
        AIRCRAFT_TIERS,
        "{ up_to = 4, unit_price = \"1.10\" }, { unit_price = 0.75 }",
    );
    let b = bill_json(&fleet(), &prices);
    assert_eq!(
        b["months"]["2026-10"]["lines"][0],
        line("aircraft", "licenses", 5, 2, "0.75", "3.75")
    );
    assert_eq!(b["months"]["2026-10"]["total"], "113.75");
    assert_eq!(
        b["months"]["2026-11"]["lines"][0],
        line("aircraft", "licenses", 2, 1, "1.10", "2.20")
    );
    assert_eq!(b["months"]["2026-11"]["total"], "102.19");
}

/// Per active user, one month, as CSV for a billing system; the tampered
/// report is not billed: the run says so, exits 1, and the CSV carries it in
/// its own row. The table for people says the same.
#[test]
fn active_users_as_csv_and_the_table_for_people() {
    let users = PRICES.replace("installations", "active_users").replace(
        AIRCRAFT_TIERS,
        "{ up_to = 3, unit_price = 2 }, { unit_price = 1 }",
    );
    let out = bill(&fleet(), &users, &["--month", "2026-10", "--csv"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.starts_with(
            "month,vessel_type,basis,quantity,tier,unit_price,amount,currency,problem\n\
             2026-10,aircraft,active_users,4,2,1.00,4.00,EUR,\n\
             2026-10,bus,active_users,1,1,10.005,10.01,EUR,\n\
             2026-10,train,active_users,1,1,99.99,99.99,EUR,\n\
             2026-10,total,,,,,114.00,EUR,\n\
             ,,,,,,,,"
        ),
        "{csv}"
    );
    assert!(csv.lines().last().unwrap().contains("tampered.zip"), "{csv}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not billed"));

    let out = bill(&fleet(), PRICES, &["--month", "2026-11"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("aircraft") && text.contains("500.00") && text.contains("599.99 EUR"),
        "{text}"
    );
    assert!(!text.contains("2026-10"), "{text}");
}

/// A vessel type with reports but no price is a problem for the
/// installations of that type, not a zero and not the whole fleet's bill; a
/// price near the decimal type's largest is a clear error, never a panic; a
/// broken price file says where.
#[test]
fn prices_that_cannot_bill_are_named() {
    let unpriced = PRICES.replace(
        "[vessel_types.bus]\ntiers = [ { unit_price = \"10.005\" } ]\n",
        "",
    );
    let b = fleet_json(&bill(&fleet(), &unpriced, &["--json"]));
    assert_eq!(b["months"]["2026-10"]["total"], "699.99", "the others are billed");
    let problems: Vec<&Value> = b["not_billed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["problem"].as_str().unwrap().contains("\"bus\" has no price"))
        .collect();
    assert_eq!(problems.len(), 1, "{b}");
    let huge = PRICES.replace(
        "unit_price = 200.0",
        "unit_price = \"79228162514264337593543950335\"",
    );
    let out = bill(&fleet(), &huge, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too large to compute exactly"), "{err}");
    let out = bill(&fleet(), &PRICES.replace("up_to = 3", "up_to = 2"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tier 2 ends at 2"), "{err}");
}
