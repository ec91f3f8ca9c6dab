//! Benchmark helpers, run by `tests/bench/run` (never by `cargo test`): fills an
//! installation's license log with realistic rows through berth's own log
//! writer (hash chain, aggregates, group commit), for the stats and export
//! measurements at 1 M and 10 M rows.
//!
//! `BENCH_DATA_DIR=... BENCH_ROWS=1000000 BENCH_MONTH=2026-10 cargo test --release --test bench -- --ignored fill --nocapture`

use std::sync::Arc;
use std::time::Instant;

use berth::clock::FixedClock;
use berth::ids::{ComKeyId, KeySystem, Kid, LicenseType, Month};
use berth::store::{LogEntry, LogWriter, WriterConfig};

#[test]
#[ignore = "a benchmark fixture; run by tests/bench/run"]
fn fill() {
    let data_dir = std::path::PathBuf::from(std::env::var("BENCH_DATA_DIR").expect("BENCH_DATA_DIR"));
    let rows: u64 = std::env::var("BENCH_ROWS").expect("BENCH_ROWS").parse().unwrap();
    let month: Month = std::env::var("BENCH_MONTH")
        .expect("BENCH_MONTH")
        .parse()
        .unwrap();
    let days = month.days().len() as u64;
    let clock = Arc::new(FixedClock::new(month.start()));
    let config = WriterConfig {
        queue_capacity: 65_536,
        max_batch: 8_192,
        ..WriterConfig::default()
    };
    let (writer, log) = LogWriter::start(&data_dir.join("berth.db"), config, clock.clone()).unwrap();
    let kids: Vec<Kid> = (0..50u8).map(|i| Kid([i; 16])).collect();
    let com_key = ComKeyId(uuid::Uuid::from_bytes([7; 16]));
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let chunk = 32_768u64;
        let mut done = 0u64;
        while done < rows {
            let n = chunk.min(rows - done);
            // Spread rows evenly over the month's days and seconds.
            let at = month.start() + time::Duration::seconds(((done * days * 86_400) / rows) as i64);
            clock.set(at);
            let mut pending = Vec::with_capacity(n as usize);
            for i in done..done + n {
                let user = i % 40_000;
                let mut user_hash = [0u8; 16];
                user_hash[..8].copy_from_slice(&user.to_be_bytes());
                let entry = LogEntry {
                    key_system: if i % 10 == 0 {
                        KeySystem::Hls
                    } else {
                        KeySystem::ClearKey
                    },
                    kids: vec![kids[(i % 50) as usize]],
                    license_type: LicenseType::Temporary,
                    user_hash: (i % 20 != 0).then_some(user_hash),
                    token_id: Some(format!("{:032x}", i)),
                    com_key_id: com_key,
                    single_use: None,
                    repeatable: None,
                };
                let log = log.clone();
                pending.push(tokio::spawn(async move {
                    log.append(entry, std::time::Duration::from_secs(60)).await
                }));
            }
            for p in pending {
                p.await.unwrap().expect("appended");
            }
            done += n;
        }
    });
    drop(log);
    writer.join();
    // The rows are the installation's history, so it dates from their month
    // (its first report is for the month it was set up in).
    rusqlite::Connection::open(data_dir.join("berth.db"))
        .unwrap()
        .execute(
            "UPDATE installation SET created_at = min(created_at, ?1)",
            [berth::ids::format_instant(month.start())],
        )
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "FILL rows={rows} month={month} seconds={secs:.1} rows_per_s={:.0}",
        rows as f64 / secs
    );
}

/// Installation `n` of the fleet fixture: set up, a year of monthly
/// reports (five licenses a month; every fifth vessel idles in odd months),
/// each copied to `out`.
fn one_installation(n: usize, out: &std::path::Path) {
    use berth::installation::{NewInstallation, create as create_installation};
    let kinds = [
        berth::store::VesselType::Aircraft,
        berth::store::VesselType::Ship,
        berth::store::VesselType::Train,
        berth::store::VesselType::Bus,
    ];
    let work = tempfile::tempdir().unwrap();
    let config = berth::config::Config {
        data_dir: work.path().join("d"),
        ..Default::default()
    };
    let args = NewInstallation {
        id: format!("fleet-{n:04}").parse().unwrap(),
        vessel_type: kinds[n % 4],
        vessel_name: format!("Vessel {n}").parse().unwrap(),
        admin_user: "admin".into(),
    };
    let clock = Arc::new(FixedClock::new(time::macros::datetime!(2026-01-01 00:00 UTC)));
    create_installation(&config, &args, &*clock).unwrap();
    let master = berth::installation::load_master_key(&config.data_dir.join("master.key")).unwrap();
    let mut db = berth::store::Db::open(&config.data_dir, master).unwrap();
    let (writer, log) = LogWriter::start(db.path(), WriterConfig::default(), clock.clone()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut month: Month = "2026-01".parse().unwrap();
    for _ in 0..12 {
        // Most vessels are active; every fifth idles in odd months.
        let active = !n.is_multiple_of(5) || u8::from(month.start().month()).is_multiple_of(2);
        if active {
            clock.set(month.start() + time::Duration::days(3));
            runtime.block_on(async {
                for i in 0..5u8 {
                    log.append(
                        LogEntry {
                            key_system: KeySystem::ClearKey,
                            kids: vec![Kid([i; 16])],
                            license_type: LicenseType::Temporary,
                            user_hash: Some([i; 16]),
                            token_id: None,
                            com_key_id: ComKeyId(uuid::Uuid::from_bytes([1; 16])),
                            single_use: None,
                            repeatable: None,
                        },
                        std::time::Duration::from_secs(30),
                    )
                    .await
                    .unwrap();
                }
            });
        }
        let done = berth::report::export(
            &mut db,
            month,
            month.end(),
            false,
            &config.data_dir.join("reports"),
        )
        .unwrap();
        std::fs::copy(&done.path, out.join(done.path.file_name().unwrap())).unwrap();
        month = month.next();
    }
    drop(log);
    writer.join();
}

/// 1,000 installations × 12 monthly reports (`BENCH_FLEET_DIR`), for timing
/// `berth fleet summary` the way the vendor runs it.
#[test]
#[ignore = "a benchmark fixture; run by tests/bench/run"]
fn fleet_fixture() {
    let out = std::path::PathBuf::from(std::env::var("BENCH_FLEET_DIR").expect("BENCH_FLEET_DIR"));
    let installations: usize = std::env::var("BENCH_INSTALLATIONS").map_or(1000, |v| v.parse().unwrap());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for part in 0..2 {
            let out = &out;
            scope.spawn(move || {
                for n in (part..installations).step_by(2) {
                    one_installation(n, out);
                }
            });
        }
    });
    println!(
        "FLEET installations={installations} zips={} seconds={:.1}",
        installations * 12,
        started.elapsed().as_secs_f64()
    );
}
