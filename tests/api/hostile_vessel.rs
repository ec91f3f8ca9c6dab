//! Issue 33: the bill and the receiver against the box's own operator, who
//! is root on the box, sets its clock (here with libfaketime), holds its report
//! key and its client certificate, and signs what it likes with them. Through
//! the real receiver with certificates made by openssl; the bill by the real
//! binary with the ground's clock set past the months billed.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth::ids::Month;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::*;

/// `berth` with its clock set by libfaketime (`at`: "YYYY-MM-DD hh:mm:ss", UTC).
fn berth_at(at: &str, args: &[&str]) -> std::process::Output {
    Command::new("faketime")
        .arg(at)
        .arg(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env("TZ", "UTC")
        .env_remove("BERTH_CONFIG")
        .output()
        .expect("faketime (Debian's faketime package)")
}

/// A vessel of its own id and type on a fresh test installation.
async fn vessel(id: &str, vessel_type: &str, since: OffsetDateTime) -> TestApp {
    let app = spawn_app().await;
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute(
        "UPDATE installation SET installation_id = ?1, vessel_type = ?2",
        [id, vessel_type],
    )
    .unwrap();
    drop(conn);
    app.installed_at(since);
    app
}

fn upload(app: &TestApp, pki: &Pki, ground: &Ground, cert: &(PathBuf, PathBuf)) -> std::process::Output {
    let config = upload_config(app, pki, ground.port, (&cert.0, &cert.1));
    app.berth(&["report", "upload", "--json", "--config", config.to_str().unwrap()])
}

fn export(app: &TestApp, month: Month) {
    let out = app.berth(&["report", "export", "--month", &month.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

const PRICES: &str = "currency = \"EUR\"\nbasis = \"licenses\"\n[vessel_types.aircraft]\ntiers = [{ unit_price = 1 }]\n[vessel_types.ship]\ntiers = [{ unit_price = 1000 }]\n[vessel_types.bus]\ntiers = [{ unit_price = 10 }]\n";

/// `fleet bill --json` of a store, run with the ground's clock at `at`.
fn bill_at(dir: &Path, store: &Path, at: &str) -> (std::process::Output, Value) {
    let prices = dir.join("prices.toml");
    std::fs::write(&prices, PRICES).unwrap();
    let out = berth_at(
        at,
        &[
            "fleet",
            "bill",
            "--json",
            "--prices",
            prices.to_str().unwrap(),
            store.to_str().unwrap(),
        ],
    );
    let bill = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out, bill)
}

fn quantity(bill: &Value, month: Month, vessel_type: &str) -> u64 {
    bill["months"][month.to_string()]["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["vessel_type"] == vessel_type)
        .map_or(0, |l| l["quantity"].as_u64().unwrap())
}

fn problems_of<'a>(bill: &'a Value, installation: &str) -> Vec<&'a str> {
    bill["not_billed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["installation"] == installation)
        .map(|p| p["problem"].as_str().unwrap())
        .collect()
}

/// `n` licenses a minute apart from `from`, the box's clock set there: its
/// tokens say so too (the portal on the box signs them).
async fn serve_with_the_clock_at(app: &TestApp, from: OffsetDateTime, n: i64) {
    for i in 0..n {
        let at = from + time::Duration::minutes(i);
        app.clock.set(at);
        let mut payload = app.payload(&[KID_A], json!({}));
        payload["expiration_date"] = json!(rfc3339(at + time::Duration::hours(1)));
        let token = app.sign(&payload);
        let (status, body, _) = post_license(app, Some(&token), &clearkey_body(&[KID_A], "temporary")).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Exports `month` and uploads it with a certificate issued to `id`.
fn export_and_upload(app: &TestApp, month: Month, pki: &Pki, ground: &Ground, id: &str) {
    export(app, month);
    let cert = pki.issue(id, id, None);
    let out = upload(app, pki, ground, &cert);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Noon of `at`'s day, as libfaketime takes it.
fn noon_of(at: OffsetDateTime) -> String {
    format!("{} 12:00:00", &berth::ids::format_instant(at)[..10])
}

/// 3 licenses with a true clock, 50 with the clock at 2099 and a checkpoint
/// of row 53 signed then: the month's report holds 3, and the 50 sit in a
/// month never reported. The bill still holds 53 for it (the checkpoint
/// arrived this month by the receiver's clock), names the clock that is
/// ahead, and exits 1; the honest twin that served 53 is billed 53 with no
/// problem.
#[actix_web::test]
async fn a_clock_set_forward_does_not_take_licenses_off_the_bill() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let store = dir.path().join("store");
    let ground = ground(&pki, &store, None);
    let this = Month::of(OffsetDateTime::now_utc());
    let month = this.previous();
    let day = |d: i64| month.start() + time::Duration::days(d);

    let hostile = vessel("hostile-vessel", "aircraft", month.start()).await;
    for i in 0..3 {
        license_at(&hostile, day(2) + time::Duration::hours(i), Some("p"), false).await;
    }
    serve_with_the_clock_at(&hostile, time::macros::datetime!(2099-01-05 10:00 UTC), 50).await;
    let data_dir = hostile.data_dir().to_str().unwrap().to_owned();
    let out = berth_at(
        "2099-01-05 12:00:00",
        &["log", "checkpoint", "--data-dir", &data_dir],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("row 53"));
    export_and_upload(&hostile, month, &pki, &ground, "hostile-vessel");

    let honest = vessel("honest-vessel", "aircraft", month.start()).await;
    for i in 0..53 {
        license_at(&honest, day(2) + time::Duration::minutes(i), Some("p"), false).await;
    }
    export_and_upload(&honest, month, &pki, &ground, "honest-vessel");

    // Billed once this month (when the checkpoint arrived) has ended.
    let at = noon_of(this.end() + time::Duration::days(1));
    let (out, bill) = bill_at(dir.path(), &store, &at);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(quantity(&bill, month, "aircraft"), 3 + 53, "{bill}");
    assert_eq!(
        quantity(&bill, this, "aircraft"),
        50,
        "the 50 the checkpoint proves: {bill}"
    );
    let named = problems_of(&bill, "hostile-vessel");
    assert!(named.iter().any(|p| p.contains("clock ahead")), "{named:?}");
    assert!(
        named
            .iter()
            .any(|p| p.contains("50 licenses a checkpoint proves")),
        "{named:?}"
    );
    assert!(problems_of(&bill, "honest-vessel").is_empty(), "{bill}");

    // Before this month has ended, the run names the clock all the same.
    let (out, bill) = bill_at(dir.path(), &store, &noon_of(OffsetDateTime::now_utc()));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(quantity(&bill, month, "aircraft"), 56, "{bill}");
}

/// A ship on the ground: one report (of the month before last) uploaded,
/// and a checkpoint made on the box, as the receiver holds them.
struct ShipOnGround {
    dir: tempfile::TempDir,
    pki: Pki,
    store: PathBuf,
    ground: Ground,
    app: TestApp,
    cert: (PathBuf, PathBuf),
    /// The checkpoint's file and what it says.
    checkpoint: (PathBuf, berth::report::checkpoint::Checkpoint),
    made_at: OffsetDateTime,
}

async fn ship_on_ground() -> ShipOnGround {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let store = dir.path().join("store");
    let ground = ground(&pki, &store, None);
    let before = Month::of(OffsetDateTime::now_utc()).previous().previous();
    let app = vessel("ship-1", "ship", before.start()).await;
    let cert = pki.issue("ship", "ship-1", None);
    license_at(&app, before.start() + time::Duration::days(3), Some("p"), false).await;
    license_at(&app, before.start() + time::Duration::days(4), Some("p"), false).await;
    let made_at = before.start() + time::Duration::days(5);
    let checkpoint =
        berth::report::checkpoint::make_in(&app.db(), made_at, &app.data_dir().join("checkpoints")).unwrap();
    export(&app, before);
    let out = upload(&app, &pki, &ground, &cert);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ShipOnGround {
        dir,
        pki,
        store,
        ground,
        app,
        cert,
        checkpoint,
        made_at,
    }
}

impl ShipOnGround {
    /// The ship's checkpoint edited and signed with the vessel's own key, as
    /// it likes, stamped `stamp_from` and padded with `pad` spaces: its bundle's
    /// name and bytes.
    fn forged(&self, edit: &dyn Fn(&mut Value), stamp_from: OffsetDateTime, pad: usize) -> (String, Vec<u8>) {
        let (path, checkpoint) = &self.checkpoint;
        let key = self.app.db().signing_key().unwrap();
        let mut json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        json["made_at"] = json!(berth::ids::format_instant(stamp_from));
        edit(&mut json);
        let mut bytes = serde_json::to_vec(&json).unwrap();
        bytes.extend(std::iter::repeat_n(b' ', pad));
        let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        let name = format!(
            "berth-checkpoint-ship-1-{}-{}.json",
            checkpoint.seq,
            stamp_from.format(&format).unwrap()
        );
        let work = self.dir.path().join("forge");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join(&name), &bytes).unwrap();
        std::fs::write(work.join(&name).with_extension("sig"), key.sign(&bytes)).unwrap();
        let bundle = berth::report::checkpoint::bundle(&work, &name, &key.public_pem()).unwrap();
        (berth::report::checkpoint::bundle_name(&name), bundle)
    }

    /// PUTs a checkpoint bundle as the ship: the status and the answer.
    fn put_checkpoint(&self, name: &str, bytes: &[u8]) -> (u16, Value) {
        let head = format!(
            "PUT /reports/{name} HTTP/1.1\r\nContent-Type: application/zip\r\nX-Berth-Checkpoint: {name}"
        );
        let me = (self.cert.0.as_path(), self.cert.1.as_path());
        send(&self.pki, self.ground.port, Some(me), &head, bytes).unwrap()
    }

    /// How many files with this extension the receiver keeps in `under`.
    fn kept(&self, under: &str, extension: &str) -> usize {
        std::fs::read_dir(self.store.join(under))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == extension)
            })
            .count()
    }
}

/// The receiver holds a vessel to the checkpoints it already holds: a second
/// checkpoint of a row with another hash (whatever its name) is 409, a name
/// whose stamp is not the checkpoint's time is 422, the same row again stores
/// nothing (a flood of them stores one), and a padded checkpoint is 413.
#[actix_web::test]
async fn the_receiver_refuses_checkpoints_that_contradict_what_it_holds() {
    let ship = ship_on_ground().await;
    let later = ship.made_at + time::Duration::minutes(1);
    let other_hash = |j: &mut Value| j["row_hash"] = json!("ab".repeat(32));
    let (name, bundle) = ship.forged(&other_hash, later, 0);
    let (status, body) = ship.put_checkpoint(&name, &bundle);
    assert_eq!(status, 409, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("contradict"), "{body}");
    // The name's stamp must be the checkpoint's own time.
    let (name, bundle) = ship.forged(&|_| {}, later, 0);
    let wrong = name.replace(&name[name.len() - 20..name.len() - 4], "20990101T000000Z");
    let (status, body) = ship.put_checkpoint(&wrong, &bundle);
    assert_eq!(status, 422, "{body}");
    // The same row again, under fifty names: stored once.
    for n in 0..50 {
        let (name, bundle) = ship.forged(&|_| {}, later + time::Duration::seconds(n), 0);
        assert_eq!(ship.put_checkpoint(&name, &bundle).0, 200);
    }
    assert_eq!(ship.kept("ship-1/checkpoints", "json"), 1);
    // Padded past what a checkpoint takes.
    let (name, bundle) = ship.forged(&|j: &mut Value| j["seq"] = json!(0), later, 4000);
    let (status, body) = ship.put_checkpoint(&name.replace("-2-", "-0-"), &bundle);
    assert_eq!(status, 413, "{body}");
}

/// A report that changes the vessel's type (the ship says it is a bus, and
/// would be billed as one) is refused naming both types, and not stored.
#[actix_web::test]
async fn the_receiver_refuses_a_report_that_changes_the_vessels_type() {
    let ship = ship_on_ground().await;
    let month = Month::of(OffsetDateTime::now_utc()).previous();
    let conn = rusqlite::Connection::open(ship.app.db_path()).unwrap();
    conn.execute("UPDATE installation SET vessel_type = 'bus'", [])
        .unwrap();
    drop(conn);
    license_at(
        &ship.app,
        month.start() + time::Duration::days(3),
        Some("p"),
        false,
    )
    .await;
    export(&ship.app, month);
    let out = upload(&ship.app, &ship.pki, &ship.ground, &ship.cert);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("\"bus\"") && err.contains("\"ship\""), "{err}");
    assert_eq!(ship.kept("ship-1", "zip"), 1, "only the ship's report is stored");
}

/// The peak resident memory of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// One enrolled vessel with an exported report, its certificate, and a
/// receiver with a short idle timeout.
struct Bomber {
    dir: tempfile::TempDir,
    pki: Pki,
    store: PathBuf,
    ground: Ground,
    _app: TestApp,
    report: PathBuf,
    cert: (PathBuf, PathBuf),
}

async fn bomber() -> Bomber {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let store = dir.path().join("store");
    let ground = ground_with(&pki, &store, &["--body-idle-secs", "2"]);
    let month = Month::of(OffsetDateTime::now_utc()).previous();
    let app = vessel("bomber", "bus", month.start()).await;
    license_at(&app, month.start() + time::Duration::days(3), Some("p"), false).await;
    export(&app, month);
    let report = std::fs::read_dir(reports_dir(&app))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "zip"))
        .unwrap();
    let cert = pki.issue("bomber", "bomber", None);

    Bomber {
        dir,
        pki,
        store,
        ground,
        _app: app,
        report,
        cert,
    }
}

/// A zip whose directory lists 60,000 entries and a signed-looking report
/// whose licenses.csv inflates to 1 GiB of blank lines are refused before
/// they are read: the receiver's peak memory stays under 200 MB.
#[actix_web::test]
async fn zip_bombs_are_refused_before_they_are_read() {
    let b = bomber().await;
    let (dir, pki, ground, report) = (&b.dir, &b.pki, &b.ground, &b.report);
    let me = (b.cert.0.as_path(), b.cert.1.as_path());
    let name = name_of(report);
    // Made by Python's zipfile, streamed, not by berth's code.
    let maker = dir.path().join("bombs.py");
    std::fs::write(
        &maker,
        r#"import sys, zipfile
kind, original, out = sys.argv[1:4]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    if kind == "entries":
        for i in range(60000):
            z.writestr(f"e{i}", b"")
    else:
        with zipfile.ZipFile(original) as o:
            for name in o.namelist():
                data = o.read(name)
                if name != "licenses.csv":
                    z.writestr(name, data)
                    continue
                with z.open("licenses.csv", "w", force_zip64=True) as f:
                    f.write(data)
                    for _ in range(1024):
                        f.write(b"\r\n" * (512 * 1024))
"#,
    )
    .unwrap();
    for (kind, says) in [("entries", "60000 files"), ("padding", "rows can take")] {
        let bomb = dir.path().join(format!("{kind}.zip"));
        run_in(
            dir.path(),
            "/usr/bin/python3",
            &[
                maker.to_str().unwrap(),
                kind,
                report.to_str().unwrap(),
                bomb.to_str().unwrap(),
            ],
        );
        let bytes = std::fs::read(&bomb).unwrap();
        let (status, body) = put(pki, ground.port, me, &name, &bytes).unwrap();
        assert_eq!(status, 422, "{kind}: {body}");
        assert!(body["reason"].as_str().unwrap().contains(says), "{kind}: {body}");
    }
    let peak = peak_rss(ground.child.id());
    assert!(
        peak < 200_000_000,
        "the receiver's peak RSS: {} MB",
        peak / 1_000_000
    );
}

/// A body that stops sending is cut off, with nothing left half-written, and
/// an upload that would leave the disk low is refused with 507.
#[actix_web::test]
async fn a_stalled_body_and_a_low_disk_are_refused() {
    let b = bomber().await;
    let (pki, store, ground, report) = (&b.pki, &b.store, &b.ground, &b.report);
    let me = (b.cert.0.as_path(), b.cert.1.as_path());
    let name = name_of(report);
    // A body that stops sending is cut off.
    let connector = berth::crypto::tls_connector(Some(&pki.ca()), Some(me)).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", ground.port)).unwrap();
    let mut tls = connector.connect("127.0.0.1", tcp).unwrap();
    let started = std::time::Instant::now();
    write!(
        tls,
        "PUT /reports/{name} HTTP/1.1\r\nHost: ground\r\nContent-Type: application/zip\r\nContent-Length: 1000\r\n\r\nP"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert!(
        std::fs::read_dir(store.join(".incoming"))
            .unwrap()
            .next()
            .is_none(),
        "nothing left half-written"
    );

    // Nothing is taken that would leave the disk low.
    let ground = ground_with(pki, store, &["--min-free-mb", "1000000000"]);
    let (status, body) = put(pki, ground.port, me, &name, &std::fs::read(report).unwrap()).unwrap();
    assert_eq!(status, 507, "{body}");
    let (status, _) = send(pki, ground.port, Some(me), "GET /healthz HTTP/1.1", b"").unwrap();
    assert_eq!(status, 200);
}

/// Text a vessel wrote is data, never layout: a title label or a vessel type
/// holding a newline cannot add a row or a line to the summary's text or
/// CSV, and one vessel cannot name a title for the fleet.
#[actix_web::test]
async fn what_a_vessel_writes_cannot_forge_the_vendors_output() {
    let fleet = tempfile::tempdir().unwrap();
    let month = Month::of(OffsetDateTime::now_utc()).previous();
    let forged = "the counted reports pass through 99 checkpoints";
    for (id, label, vessel_type) in [
        (
            "liar",
            format!("Film' || char(10) || '{forged}"),
            "bus".to_owned(),
        ),
        ("typist", "Film".to_owned(), format!("bus\n{month} ship 9 9 9 9")),
        ("one", "Film".to_owned(), "bus".to_owned()),
        ("two", "Film".to_owned(), "bus".to_owned()),
    ] {
        let app = vessel(id, "bus", month.start()).await;
        app.tamper(&format!("UPDATE content_keys SET label = '{label}'"));
        license_at(&app, month.start() + time::Duration::days(2), Some("p"), false).await;
        export(&app, month);
        let key = app.db().signing_key().unwrap();
        for e in std::fs::read_dir(reports_dir(&app)).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "zip") {
                continue;
            }
            // The vessel type is re-signed into the report with the box's key.
            let edited = tampered(&app, &path, "edited.zip", |files| {
                edit_report(files, |r| {
                    r["installation"]["vessel_type"] = json!(vessel_type.clone())
                });
                resign(files, &key);
            });
            std::fs::copy(&edited, fleet.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let dir = fleet.path().to_str().unwrap();
    let out = berth(&["fleet", "summary", dir]);
    assert_eq!(out.status.code(), Some(1), "the unknown type is a problem");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with(forged) || l.starts_with(&format!("{month} ship"))),
        "{text}"
    );
    assert!(text.contains("\\n"), "the newlines are shown escaped: {text}");
    let titles = text
        .lines()
        .find(|l| l.contains(&KID_A.to_lowercase()) || l.contains("Film"))
        .unwrap();
    assert!(
        titles.trim_end().ends_with("Film"),
        "the label most vessels give: {titles}"
    );
    let out = berth(&["fleet", "summary", dir, "--csv"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(csv.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    assert!(rows.iter().all(|r| r.len() == 7), "{csv}");
    assert!(rows.iter().all(|r| r[1].is_empty() || r[1] == *"bus"), "{csv}");
    let bus = rows.iter().find(|r| r[1] == *"bus").unwrap();
    assert_eq!(&bus[4], "3", "the three vessels of a known type: {csv}");
}
