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
        p.file,
        p.installation.as_deref().unwrap_or("?"),
        p.problem
    )
}

impl FleetSummary {
    /// The counts per month and vessel type as CSV, for a billing import.
    pub fn csv(&self) -> String {
        let mut text =
            "month,vessel_type,active_installations,reporting_installations,licenses,active_users\n"
                .to_owned();
        for (month, types) in &self.months {
            for (vessel, c) in types {
                let _ = writeln!(
                    text,
                    "{month},{vessel},{},{},{},{}",
                    c.active_installations, c.reporting_installations, c.licenses, c.active_users
                );
            }
        }
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
                    "{month:<8} {vessel:<9} {:>7} {:>9} {:>10} {:>8}",
                    c.active_installations, c.reporting_installations, c.licenses, c.active_users
                );
            }
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
