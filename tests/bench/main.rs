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
                };
                let log = log.clone();
                pending.push(tokio::spawn(async move { log.append(entry).await }));
            }
            for p in pending {
                p.await.unwrap().expect("appended");
            }
            done += n;
        }
    });
    drop(log);
    writer.join();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "FILL rows={rows} month={month} seconds={secs:.1} rows_per_s={:.0}",
        rows as f64 / secs
    );
}
