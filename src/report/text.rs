//! Reports as lines for people: what `berth report` and `berth fleet summary`
//! print. The CLI writes these; nothing here writes.

use std::fmt::Write as _;
use std::path::Path;

use super::{FleetSummary, Problem, ReportJson};
use crate::ids::counted;
use crate::store::{Counts, ReportRecord};

/// "exported FILE (MONTH: N licenses, M active users, sequence S)", and a
/// warning line when the report lists clock anomalies.
pub fn exported(path: &Path, new: bool, r: &ReportJson) -> String {
    let verb = if new { "exported" } else { "already exported" };
    let mut text = format!(
        "{verb} {} ({}: {}, {}, sequence {}{})",
        path.display(),
        r.period.month,
        counted(r.counts.licenses, "license"),
        counted(r.counts.active_users, "active user"),
        r.report.sequence,
        if r.partial { ", partial preview" } else { "" }
    );
    if r.clock_anomalies.count > 0 {
        let _ = write!(
            text,
            "\nwarning: {} clock anomalies (first at rows {:?}); see the manual on clocks",
            r.clock_anomalies.count, r.clock_anomalies.first_seqs
        );
    }
    text
}

/// `report verify`'s line for a report that checks out.
pub fn verified(file: &Path, r: &ReportJson) -> String {
    format!(
        "OK {}: installation {} ({}), {}, sequence {}, {}, {}, rows {}..{}{}",
        file.display(),
        r.installation.id,
        r.installation.vessel_type,
        r.period.month,
        r.report.sequence,
        counted(r.counts.licenses, "license"),
        counted(r.counts.active_users, "active user"),
        r.log.first_seq,
        r.log.last_seq,
        if r.partial { " (partial preview)" } else { "" }
    )
}

/// One exported report, as `report list --json` shows it.
#[derive(Debug, serde::Serialize)]
pub struct Listed<'a> {
    pub sequence: i64,
    pub month: &'a str,
    pub file: &'a str,
    pub licenses: i64,
    pub active_users: i64,
    pub generated_at: &'a str,
    pub uploaded_at: Option<&'a str>,
    pub upload_attempts: i64,
    pub last_error: Option<&'a str>,
}

pub fn listed(r: &ReportRecord) -> Listed<'_> {
    Listed {
        sequence: r.sequence,
        month: &r.month,
        file: &r.file_name,
        licenses: r.licenses,
        active_users: r.active_users,
        generated_at: &r.generated_at,
        uploaded_at: r.uploaded_at.as_deref(),
        upload_attempts: r.upload_attempts,
        last_error: r.last_error.as_deref(),
    }
}

/// `report list`: a table of the exported reports and their upload state;
/// `by_hand` when no upload address is configured (the files are in `dir`).
pub fn list(reports: &[ReportRecord], by_hand: bool, dir: &Path) -> String {
    let mut text = format!(
        "{:>4}  {:<8} {:>9} {:>7}  {:<10} file\n",
        "seq", "month", "licenses", "users", "upload"
    );
    for r in reports {
        let state = match (&r.uploaded_at, &r.last_error) {
            (Some(_), _) => "uploaded".to_owned(),
            (None, Some(_)) => format!("retrying ({})", r.upload_attempts),
            (None, None) if by_hand => "by hand".to_owned(),
            (None, None) => "pending".to_owned(),
        };
        let _ = writeln!(
            text,
            "{:>4}  {:<8} {:>9} {:>7}  {:<10} {}",
            r.sequence, r.month, r.licenses, r.active_users, state, r.file_name
        );
    }
    if by_hand && reports.iter().any(|r| r.uploaded_at.is_none()) {
        let _ = writeln!(
            text,
            "no upload address is configured ([upload] url): take the files from {} to the ground",
            dir.display()
        );
    }
    text
}

/// A report the fleet summary did not count, or counted with a remark.
pub fn problem(p: &Problem) -> String {
    format!(
        "problem: {} ({}): {}",
        shown(&p.file),
        shown(p.installation.as_deref().unwrap_or("?")),
        shown(&p.problem)
    )
}

/// Text a vessel wrote, as data in a line of output: control characters
/// (a newline, an escape sequence) written escaped, so that it can never start
/// a line or a row of its own.
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// One CSV record per RFC 4180 (quoted where a field needs it, CRLF-free
/// fields kept whole), with every field that a spreadsheet would take for a
/// formula (`=`, `+`, `-`, `@`, tab, carriage return first) led by `'`.
pub fn csv_record(fields: &[&str]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let guarded: Vec<std::borrow::Cow<'_, str>> = fields
        .iter()
        .map(|f| {
            if f.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{f}").into()
            } else {
                (*f).into()
            }
        })
        .collect();
    let _ = writer.write_record(guarded.iter().map(|f| f.as_ref()));
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The problems as CSV records of `columns` fields: all empty but the last,
/// which names the installation, the file and the problem.
pub fn csv_problems(problems: &[Problem], columns: usize) -> String {
    problems
        .iter()
        .map(|p| {
            let text = format!(
                "{}: {}: {}",
                p.installation.as_deref().unwrap_or("?"),
                p.file,
                p.problem
            );
            let mut fields = vec![""; columns - 1];
            fields.push(&text);
            csv_record(&fields)
        })
        .collect()
}

impl std::fmt::Display for FleetSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

impl FleetSummary {
    /// The counts per month and vessel type as CSV, for a billing import;
    /// then the problems, one a row in the last column.
    pub fn csv(&self) -> String {
        let mut text =
            "month,vessel_type,active_installations,reporting_installations,licenses,active_users,problem\n"
                .to_owned();
        for (month, types) in &self.months {
            for (vessel, c) in types {
                text.push_str(&csv_record(&[
                    month,
                    vessel,
                    &c.active_installations.to_string(),
                    &c.reporting_installations.to_string(),
                    &c.licenses.to_string(),
                    &c.active_users.to_string(),
                    "",
                ]));
            }
        }
        text.push_str(&csv_problems(&self.problems, 7));
        text
    }

    /// The summary for people: what was counted, the table, every problem.
    pub fn text(&self) -> String {
        let mut text = format!(
            "{} files, {} reports counted, {} not counted or with problems (listed below)\n",
            self.files,
            self.counted_reports,
            self.problems.len()
        );
        let _ = writeln!(
            text,
            "{:<8} {:<9} {:>7} {:>9} {:>10} {:>8}",
            "month", "vessel", "active", "reporting", "licenses", "users"
        );
        for (month, types) in &self.months {
            for (vessel, c) in types {
                let _ = writeln!(
                    text,
                    "{:<8} {:<9} {:>7} {:>9} {:>10} {:>8}",
                    shown(month),
                    shown(vessel),
                    c.active_installations,
                    c.reporting_installations,
                    c.licenses,
                    c.active_users
                );
            }
        }
        for (month, titles) in self.titles.iter().filter(|(_, t)| !t.is_empty()) {
            let _ = writeln!(
                text,
                "titles in {month}: {:<36} {:>10} {:>8}  label",
                "kid", "licenses", "users"
            );
            for (kid, t) in titles {
                let _ = writeln!(
                    text,
                    "{:<21}{:<36} {:>10} {:>8}  {}",
                    "",
                    shown(kid),
                    t.licenses,
                    t.active_users,
                    shown(&t.label)
                );
            }
        }
        if self.checkpoints_checked > 0 {
            let _ = writeln!(
                text,
                "the counted reports pass through {} checkpoints",
                self.checkpoints_checked
            );
        }
        for f in &self.forks {
            let _ = writeln!(
                text,
                "fork: installation {} has {} different reports with sequence {} ({}), counted once from {}: {}",
                shown(&f.installation),
                f.reports.len(),
                f.sequence,
                shown(&f.month),
                shown(&f.counted),
                shown(&f.reports.join(", "))
            );
        }
        for w in &self.withheld {
            let _ = writeln!(
                text,
                "withheld checkpoints: installation {}: {} from {} to {} ({} hours; {})",
                shown(&w.installation),
                w.what,
                w.from,
                w.to,
                w.hours,
                shown(&w.file)
            );
        }
        for p in &self.problems {
            let _ = writeln!(text, "{}", problem(p));
        }
        text
    }
}

/// `berth stats` for people: the month's counts.
pub fn stats(month: crate::ids::Month, counts: &Counts) -> String {
    let mut text = format!(
        "month:                  {month}\n\
         licenses:               {}\n\
         active users:           {}\n\
         licenses without user:  {}\n\
         repeat key fetches:     {} (HLS keys fetched again with the same token: delivered, not licenses)\n",
        counts.licenses, counts.active_users, counts.licenses_without_user, counts.repeat_fetches
    );
    if counts.clock_anomalies > 0 {
        let _ = writeln!(
            text,
            "clock anomalies:        {} (licenses stamped earlier than the one before; the clock was set back)",
            counts.clock_anomalies
        );
    }
    text.push_str("by key system:\n");
    for (system, n) in &counts.by_key_system {
        let _ = writeln!(text, "  {system:<10}  {n}");
    }
    text.push_str("by day:\n");
    for (day, n) in counts.by_day.iter().filter(|(_, n)| **n > 0) {
        let _ = writeln!(text, "  {day}  {n}");
    }
    text
}

/// `log verify` on an intact log: for people and for `--json`.
#[derive(serde::Serialize)]
pub struct LogIntact {
    pub ok: bool,
    pub rows: u64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub pruned_through: Option<String>,
    #[serde(skip)]
    pruned: Option<(i64, String)>,
}

impl LogIntact {
    pub fn new(chain: &crate::store::ChainSummary) -> LogIntact {
        LogIntact {
            ok: true,
            rows: chain.rows,
            first_seq: chain.first_seq,
            last_seq: chain.last_seq,
            pruned_through: chain.pruned.as_ref().map(|m| m.through_month.clone()),
            pruned: chain.pruned.as_ref().map(|m| (m.first_seq, m.day().to_owned())),
        }
    }
}

impl std::fmt::Display for LogIntact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "license log intact: {}", counted(self.rows, "row"))?;
        if let (Some((first_seq, day)), Some(through)) = (&self.pruned, &self.pruned_through) {
            writeln!(
                f,
                "(rows before {first_seq} were pruned on {day}: the months through {through}, kept in their signed reports)"
            )?;
        }
        Ok(())
    }
}

/// `log prune`'s result.
#[derive(serde::Serialize)]
pub struct LogPruned {
    pub removed: u64,
    pub first_seq: Option<i64>,
    pub pruned_through: Option<String>,
    #[serde(skip)]
    before: crate::ids::Month,
    #[serde(skip)]
    dir: std::path::PathBuf,
}

impl LogPruned {
    pub fn new(pruned: &super::Pruned, before: crate::ids::Month, dir: &Path) -> LogPruned {
        LogPruned {
            removed: pruned.removed,
            first_seq: pruned.mark.as_ref().map(|m| m.first_seq),
            pruned_through: pruned.mark.as_ref().map(|m| m.through_month.clone()),
            before,
            dir: dir.to_owned(),
        }
    }
}

impl std::fmt::Display for LogPruned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.first_seq, &self.pruned_through) {
            (Some(first_seq), Some(through)) => writeln!(
                f,
                "removed {}; the log now begins at row {first_seq} (the months through {through} are in the signed reports in {})",
                counted(self.removed, "license"),
                self.dir.display()
            ),
            _ => writeln!(f, "nothing to prune before {}", self.before),
        }
    }
}

/// `report export`'s reports (one month, or every month due), and with `--due`
/// the month that comes next.
pub struct Exports {
    pub exported: Vec<(std::path::PathBuf, super::Exported)>,
    /// With `--due`: the next month to export.
    pub next: Option<crate::ids::Month>,
}

impl Exports {
    /// Exports `month`, or with `due` every month that has ended without a
    /// report; each copied into `out` when given.
    pub fn run(
        db: &mut crate::store::Db,
        (month, due): (Option<crate::ids::Month>, bool),
        now: time::OffsetDateTime,
        partial: bool,
        dir: &Path,
        out: Option<&Path>,
    ) -> anyhow::Result<Exports> {
        let months = match month {
            Some(month) => vec![month],
            None => super::due_months(db, now)?,
        };
        let mut exported = Vec::new();
        for month in months {
            let done = super::export(db, month, now, partial, dir)?;
            exported.push((copy_into(&done.path, out)?, done));
        }
        let next = if due { Some(super::next_month(db)?) } else { None };
        Ok(Exports { exported, next })
    }

    fn item(path: &Path, done: &super::Exported) -> serde_json::Value {
        serde_json::json!({ "file": path, "new": done.new, "report": done.report })
    }
}

/// Copies an exported report into `out`, if given; the path to show.
fn copy_into(path: &Path, out: Option<&Path>) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context as _;
    let Some(out) = out else {
        return Ok(path.to_owned());
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let target = out.join(path.file_name().expect("a report has a file name"));
    std::fs::copy(path, &target).with_context(|| format!("copying the report to {}", target.display()))?;
    Ok(target)
}

impl serde::Serialize for Exports {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items: Vec<_> = self
            .exported
            .iter()
            .map(|(path, done)| Exports::item(path, done))
            .collect();
        match self.next {
            Some(next) => serde_json::json!({ "exported": items, "next": next.to_string() }),
            None => items.into_iter().last().unwrap_or(serde_json::Value::Null),
        }
        .serialize(serializer)
    }
}

impl std::fmt::Display for Exports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (path, done) in &self.exported {
            writeln!(f, "{}", exported(path, done.new, &done.report))?;
        }
        match self.next {
            Some(next) if self.exported.is_empty() => writeln!(
                f,
                "nothing to export: the next report, for {next}, can be exported once that month ends ({})",
                crate::ids::format_instant(next.end())
            ),
            _ => Ok(()),
        }
    }
}

/// `report verify`'s answer for a report that checks out.
#[derive(serde::Serialize)]
pub struct Verified<'a> {
    ok: bool,
    file: &'a Path,
    report: ReportJson,
}

impl Verified<'_> {
    pub fn new(file: &Path, report: ReportJson) -> Verified<'_> {
        Verified {
            ok: true,
            file,
            report,
        }
    }
}

impl std::fmt::Display for Verified<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", verified(self.file, &self.report))
    }
}

/// `report list`: the exported reports and their upload state.
pub struct List {
    reports: Vec<ReportRecord>,
    by_hand: bool,
    dir: std::path::PathBuf,
}

impl List {
    pub fn new(reports: Vec<ReportRecord>, config: &crate::config::Config) -> List {
        List {
            reports,
            by_hand: config.upload.url.is_empty(),
            dir: config.data_dir.join("reports"),
        }
    }
}

impl serde::Serialize for List {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let reports: Vec<_> = self.reports.iter().map(listed).collect();
        serde_json::json!({ "reports": reports }).serialize(serializer)
    }
}

impl std::fmt::Display for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&list(&self.reports, self.by_hand, &self.dir))
    }
}

impl serde::Serialize for super::UploadPass {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let failed: Vec<_> = self
            .failed
            .iter()
            .map(|(name, why)| (name, why.to_string()))
            .collect();
        serde_json::json!({ "uploaded": self.uploaded, "failed": failed }).serialize(serializer)
    }
}

impl std::fmt::Display for super::UploadPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for name in &self.uploaded {
            writeln!(f, "uploaded {name}")?;
        }
        if self.uploaded.is_empty() && self.failed.is_empty() {
            writeln!(f, "nothing to upload")?;
        }
        Ok(())
    }
}

/// `berth stats`: a month's counts, live.
#[derive(serde::Serialize)]
pub struct Stats {
    month: String,
    counts: Counts,
}

impl Stats {
    pub fn of(db: &crate::store::Db, month: crate::ids::Month) -> Result<Stats, crate::store::StoreError> {
        Ok(Stats {
            month: month.to_string(),
            counts: db.counts(month)?,
        })
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let month = self.month.parse().map_err(|_| std::fmt::Error)?;
        f.write_str(&stats(month, &self.counts))
    }
}
