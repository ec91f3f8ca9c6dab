//! Monthly usage reports (SPEC section 6): export (build, zip, sign), verify,
//! and the vendor's fleet summary.
//!
//! A report covers a contiguous stretch of the one hash chain: every row after
//! the previous report's last row, up to the newest row stamped before the end
//! of its month. With an honest clock that is exactly "every row whose
//! `issued_at` is in the month"; when a clock was set back, a row is counted in
//! the report that contains it and listed under `clock_anomalies`, so no row is
//! ever dropped or counted twice, and consecutive reports link hash to hash.
//!
//! Architecture Invariant: no HTTP. SQL only through `store`, crypto only
//! through `crypto`.

pub mod bill;
pub mod checkpoint;
pub mod evidence;
mod export;
mod fleet;
mod prune;
mod schedule;
pub mod text;
mod upload;
mod verify;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ParseError, Timestamp};

pub use export::{ExportError, Exported, export, file_name};
pub use fleet::{
    Checks, FleetSummary, Problem, SummaryArgs, collect, load_pubkeys, summarize, summarize_paths,
};
pub use prune::{PruneError, Pruned, prune};
pub use schedule::{due_months, ended_from, export_due, next_month, report_task};
pub use text::Exports;
pub use upload::{UploadError, UploadPass, Uploader};
pub use verify::{
    MAX_ZIP, RowHashes, Verified, VerifyError, read_report_json, read_verified, verify_file,
    verify_file_watching, verify_link, verify_reader, verify_watching,
};

/// Version 2: the chain's fields are netstrings ([`crate::chain::row_hash`]), and
/// `repeat_fetches` is reported. Version 3 adds `titles` (per-KID counts),
/// `checkpoints` (those made in the month) and `coverage` (when berth served).
pub const SCHEMA: &str = "berth.usage-report/3";
/// The schema before, still verified (with the fields it has).
pub const SCHEMA_2: &str = "berth.usage-report/2";
pub const CSV_HEADER: [&str; 10] = [
    "seq",
    "issued_at",
    "key_system",
    "kids",
    "license_type",
    "user_hash",
    "token_id",
    "com_key_id",
    "prev_hash",
    "row_hash",
];

/// Writes one log row as a `licenses.csv` record (CRLF, the header's order).
pub fn write_csv_row<W: std::io::Write>(
    csv: &mut csv::Writer<W>,
    r: &crate::store::LogRow,
) -> csv::Result<()> {
    csv.write_record([
        r.seq.to_string().as_str(),
        &r.issued_at,
        &r.key_system,
        &r.kids,
        &r.license_type,
        &r.user_hash,
        &r.token_id,
        &r.com_key_id,
        &r.prev_hash,
        &r.row_hash,
    ])
}

/// A `licenses.csv` writer: the header, then [`write_csv_row`] per row.
pub fn csv_writer<W: std::io::Write>(out: W) -> csv::Result<csv::Writer<W>> {
    let mut csv = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    csv.write_record(CSV_HEADER)?;
    Ok(csv)
}
/// The files a report zip holds, no more and no fewer.
pub const FILES: [&str; 5] = [
    "report.json",
    "licenses.csv",
    "manifest.json",
    "manifest.sig",
    "signer.pem",
];
/// How many anomalous sequence numbers `report.json` lists.
pub const ANOMALIES_LISTED: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportJson {
    pub schema: String,
    pub installation: InstallationJson,
    pub period: Period,
    pub partial: bool,
    pub active: bool,
    pub counts: CountsJson,
    /// HLS keys fetched again with the same token in the month: delivered and
    /// not counted as licenses (no log rows, so the box's own figure).
    pub repeat_fetches: u64,
    pub clock_anomalies: ClockAnomalies,
    pub log: LogRange,
    pub report: ReportMeta,
    pub software: Software,
    /// Schema 3: licenses and active users per KID, with the key's label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub titles: Option<BTreeMap<String, TitleCounts>>,
    /// Schema 3: the checkpoints made in the month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<Vec<CheckpointRef>>,
    /// Schema 3: when berth was serving in the month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
}

/// One title's (KID's) counts in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TitleCounts {
    /// The key's label on the box when the report was made (the box's word).
    pub label: String,
    pub licenses: u64,
    pub active_users: u64,
}

/// A checkpoint as a report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRef {
    pub seq: i64,
    pub row_hash: String,
    pub made_at: String,
}

/// When berth served in the month, as the box recorded it: each run of
/// `berth serve` clipped to the month (`clean_stop` false: it ended at its
/// last sign of life, a crash or a power cut), and each start whose time was
/// earlier than the previous run's last sign of life (a clock set back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Coverage {
    pub serving: Vec<ServingInterval>,
    /// Stretches the license log could not be written (requests got 503).
    pub log_unavailable: Vec<LogUnavailable>,
    pub clock_set_back: Vec<ClockSetBack>,
}

/// A stretch the license log could not be written, as the signed report
/// says it (its own type: a storage rename cannot change a signed format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogUnavailable {
    pub start: String,
    pub end: String,
    pub reason: String,
}

impl From<crate::store::LogOutage> for LogUnavailable {
    fn from(o: crate::store::LogOutage) -> LogUnavailable {
        LogUnavailable {
            start: o.start,
            end: o.end,
            reason: o.reason,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingInterval {
    pub start: String,
    pub end: String,
    pub clean_stop: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockSetBack {
    pub started_at: String,
    pub previous_last_seen_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationJson {
    pub id: String,
    pub vessel_type: String,
    pub vessel_name: String,
    pub public_key_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub month: String,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CountsJson {
    pub licenses: u64,
    pub active_users: u64,
    pub licenses_without_user: u64,
    pub by_key_system: BTreeMap<String, u64>,
    pub by_day: BTreeMap<String, u64>,
}

/// Rows stamped earlier than the row before them (a clock set back), and rows
/// stamped outside the report's month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClockAnomalies {
    pub count: u64,
    pub first_seqs: Vec<i64>,
    pub outside_month: u64,
}

/// Where the report's rows sit in the installation's hash chain. An empty
/// report has `last_seq = first_seq - 1` and `first_prev_hash = last_row_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRange {
    pub first_seq: i64,
    pub last_seq: i64,
    pub first_prev_hash: String,
    pub last_row_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportMeta {
    pub sequence: i64,
    pub generated_at: String,
    pub previous_report_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Software {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeMap<String, String>,
}

/// Recounts rows as they stream past, for export and for verification alike,
/// so both sides count by the same rules.
pub(crate) struct Tally {
    month: crate::ids::Month,
    counts: CountsJson,
    users: std::collections::HashSet<String>,
    anomalies: ClockAnomalies,
    previous_issued_at: Option<Timestamp>,
    /// KID -> licenses and the users who had them.
    titles: std::collections::HashMap<String, (u64, std::collections::HashSet<String>)>,
}

impl Tally {
    pub(crate) fn new(month: crate::ids::Month, previous_issued_at: Option<Timestamp>) -> Tally {
        let empty = crate::store::Counts::empty(month);
        Tally {
            month,
            counts: CountsJson {
                by_key_system: empty.by_key_system,
                by_day: empty.by_day,
                ..CountsJson::default()
            },
            users: std::collections::HashSet::new(),
            anomalies: ClockAnomalies::default(),
            previous_issued_at,
            titles: std::collections::HashMap::new(),
        }
    }

    /// Counts one row. Allocates only for what it has not seen before (a
    /// passenger, a day or key system outside the month): a report has millions
    /// of rows. A stamp not as berth writes it is refused, and the row not
    /// counted: berth wrote no such row.
    pub(crate) fn add(
        &mut self,
        seq: i64,
        issued_at: &str,
        key_system: &str,
        kids: &str,
        user_hash: &str,
    ) -> Result<(), ParseError> {
        let stamp = Timestamp::from_stamp(issued_at)?;
        self.counts.licenses += 1;
        for kid in kids.split(';').filter(|k| !k.is_empty()) {
            let title = match self.titles.get_mut(kid) {
                Some(title) => title,
                None => self.titles.entry(kid.to_owned()).or_default(),
            };
            title.0 += 1;
            if !user_hash.is_empty() && !title.1.contains(user_hash) {
                title.1.insert(user_hash.to_owned());
            }
        }
        count_in(&mut self.counts.by_key_system, key_system);
        // A stamp's first ten bytes are its day (from_stamp checked its shape).
        count_in(&mut self.counts.by_day, &issued_at[..10]);
        if user_hash.is_empty() {
            self.counts.licenses_without_user += 1;
        } else if !self.users.contains(user_hash) {
            self.users.insert(user_hash.to_owned());
        }
        let went_back = self.previous_issued_at.is_some_and(|p| stamp < p);
        let outside = crate::ids::Month::of(stamp.at()) != self.month;
        if outside {
            self.anomalies.outside_month += 1;
        }
        if went_back || outside {
            self.anomalies.count += 1;
            if self.anomalies.first_seqs.len() < ANOMALIES_LISTED {
                self.anomalies.first_seqs.push(seq);
            }
        }
        self.previous_issued_at = Some(stamp);
        Ok(())
    }

    pub(crate) fn finish(mut self) -> (CountsJson, ClockAnomalies, BTreeMap<String, TitleCounts>) {
        self.counts.active_users = self.users.len() as u64;
        let titles = self
            .titles
            .into_iter()
            .map(|(kid, (licenses, users))| {
                let counts = TitleCounts {
                    label: String::new(),
                    licenses,
                    active_users: users.len() as u64,
                };
                (kid, counts)
            })
            .collect();
        (self.counts, self.anomalies, titles)
    }
}

fn count_in(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

/// `berth log verify`: the chain walked row by row, then the log compared
/// with every report exported from it.
pub fn verify_log(
    db: &crate::store::Db,
    data_dir: &std::path::Path,
) -> Result<Result<crate::store::ChainSummary, crate::store::ChainProblem>, crate::store::StoreError> {
    match db.verify_log()? {
        Ok(chain) => Ok(check_log_against_reports(db, data_dir, chain.last_seq)?.map(|()| chain)),
        Err(problem) => Ok(Err(problem)),
    }
}

/// Where a signed report says the log stood: the last row it covered.
struct ReportedEnd {
    what: String,
    last_seq: i64,
    last_row_hash: String,
}

/// Checks that every row a report covered is still in the log, unchanged up
/// to that report's `last_row_hash`: deleting the newest rows (with the
/// triggers dropped, as root can) is otherwise invisible to the chain, which
/// only links each row to the one before it. The reports come from the
/// database's records and from the report files in `dir` (a record can be
/// deleted as easily as a row), and the box's own signed checkpoints in
/// `<data_dir>/checkpoints` (a checkpoint still there names rows deleted back
/// past it). `last_seq` is where the intact chain ends.
pub fn check_log_against_reports(
    db: &crate::store::Db,
    data_dir: &std::path::Path,
    last_seq: i64,
) -> Result<Result<(), crate::store::ChainProblem>, crate::store::StoreError> {
    let dir = &data_dir.join("reports");
    let mut ends: Vec<ReportedEnd> = db
        .reports()?
        .into_iter()
        .map(|r| ReportedEnd {
            what: format!("report {} ({})", r.sequence, r.month),
            last_seq: r.last_seq,
            last_row_hash: r.last_row_hash,
        })
        .collect();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let is_report = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("berth-report-") && n.ends_with(".zip"));
        if let (true, Ok(verified)) = (is_report, verify_file(&path, None)) {
            let log = verified.report.log;
            ends.push(ReportedEnd {
                what: format!("report file {}", path.display()),
                last_seq: log.last_seq,
                last_row_hash: log.last_row_hash,
            });
        }
    }
    let own_key = db.signing_key()?.public_der();
    for c in checkpoint::load(&data_dir.join("checkpoints")).unwrap_or_default() {
        if c.signed_by(&own_key) {
            ends.push(ReportedEnd {
                what: format!("checkpoint {}", c.path.display()),
                last_seq: c.checkpoint.seq,
                last_row_hash: c.checkpoint.row_hash.clone(),
            });
        }
    }
    let first_kept = db.prune_mark()?.map_or(1, |m| m.first_seq);
    for end in ends.iter().filter(|e| e.last_seq >= 1) {
        if end.last_seq > last_seq {
            return Ok(Err(crate::store::ChainProblem {
                seq: last_seq + 1,
                what: format!(
                    "the log ends at row {last_seq}, but {} covered rows up to {} (rows were removed from the end)",
                    end.what, end.last_seq
                ),
            }));
        }
        if end.last_seq < first_kept {
            continue;
        }
        let mut found = None;
        db.for_each_log_row::<crate::store::StoreError>(end.last_seq, end.last_seq, |r| {
            found = Some(r.row_hash.clone());
            Ok(())
        })?;
        if found.as_deref() != Some(end.last_row_hash.as_str()) {
            return Ok(Err(crate::store::ChainProblem {
                seq: end.last_seq,
                what: format!(
                    "the row differs from the one {} signed (row_hash {}): the log was rewritten",
                    end.what, end.last_row_hash
                ),
            }));
        }
    }
    Ok(Ok(()))
}

/// `report verify FILE [--previous FILE] [--checkpoints DIR]`: the report,
/// that it follows on from the previous one, and that it passes through the
/// checkpoints, when given; each problem names its file.
pub fn verify_with_previous(
    file: &std::path::Path,
    (previous, checkpoints): (Option<&std::path::Path>, Option<&std::path::Path>),
    expected: Option<&crate::crypto::PublicKey>,
) -> anyhow::Result<Verified> {
    let verified = verify_file(file, expected).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if let Some(previous) = previous {
        let before = verify_file(previous, expected)
            .map_err(|e| anyhow::anyhow!("previous report {}: {e}", previous.display()))?;
        verify_link(&before, &verified).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    if let Some(dir) = checkpoints {
        checkpoint::check(file, &verified, &checkpoint::load(dir)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    Ok(verified)
}

/// `report upload [FILE]`: a pass over the outbox now, ignoring the backoff.
pub fn upload_now(
    config: &crate::config::Config,
    file: Option<&str>,
    now: time::OffsetDateTime,
) -> anyhow::Result<UploadPass> {
    if config.upload.url.is_empty() {
        anyhow::bail!(
            "no upload.url is configured; reports are in {}",
            config.data_dir.join("reports").display()
        );
    }
    if let Some(name) = file {
        let name = std::path::Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !crate::installation::open_db(config)?
            .reports()?
            .iter()
            .any(|r| r.file_name == name)
        {
            anyhow::bail!("{name} is not an exported report of this installation (see `berth report list`)");
        }
    }
    actix_web::rt::System::new().block_on(async {
        Uploader::new(&config.upload)?
            .upload_pending(config, now, true)
            .await
    })
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    /// `report.json` of schema 3 with every field present, as the vendor's
    /// tools read it. The report types are the signed format's own: renaming
    /// a field (here or in the store) fails this test instead of changing
    /// what vessels sign.
    #[test]
    fn the_signed_report_schema_is_pinned() {
        let pinned = serde_json::json!({
            "schema": SCHEMA,
            "installation": { "id": "a320-1", "vessel_type": "aircraft", "vessel_name": "A320", "public_key_sha256": "ab" },
            "period": { "month": "2026-11", "start": "2026-11-01T00:00:00.000Z", "end": "2026-12-01T00:00:00.000Z" },
            "partial": false,
            "active": true,
            "counts": { "licenses": 2, "active_users": 1, "licenses_without_user": 0,
                        "by_key_system": { "clearkey": 2 }, "by_day": { "2026-11-03": 2 } },
            "repeat_fetches": 1,
            "clock_anomalies": { "count": 0, "first_seqs": [], "outside_month": 0 },
            "log": { "first_seq": 1, "last_seq": 2, "first_prev_hash": "00", "last_row_hash": "ff" },
            "report": { "sequence": 1, "generated_at": "2026-12-01T00:05:00.000Z", "previous_report_sha256": null },
            "software": { "name": "berth", "version": "0.1.0" },
            "titles": { "9eb4050d-e44b-4802-932e-27d75083e266": { "label": "Film", "licenses": 2, "active_users": 1 } },
            "checkpoints": [ { "seq": 2, "row_hash": "ff", "made_at": "2026-11-03T12:00:00.000Z" } ],
            "coverage": {
                "serving": [ { "start": "2026-11-03T00:00:00.000Z", "end": "2026-11-04T00:00:00.000Z", "clean_stop": true } ],
                "log_unavailable": [ { "start": "2026-11-03T10:00:00.000Z", "end": "2026-11-03T10:05:00.000Z", "reason": "disk full" } ],
                "clock_set_back": [ { "started_at": "2026-11-03T00:00:00.000Z", "previous_last_seen_at": "2026-11-03T01:00:00.000Z" } ]
            }
        });
        let report: ReportJson = serde_json::from_value(pinned.clone()).unwrap();
        assert_eq!(serde_json::to_value(&report).unwrap(), pinned);
    }
}
