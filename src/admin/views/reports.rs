//! The reports page: every exported report with its counts, upload state and
//! verification; the export form or when the next month can be exported; and
//! how long the log keeps licenses.

use maud::{Markup, html};
use time::OffsetDateTime;

use super::{Notice, csrf_field, notice, page};
use crate::admin::session::Session;
use crate::ids::{Month, counted};
use crate::store::{CheckpointRecord, PruneMark, ReportRecord};

/// One exported report and what `report verify` says of its file.
pub struct ReportRow {
    pub record: ReportRecord,
    pub verified: bool,
    pub verdict: String,
}

/// What the reports page shows.
pub struct ReportsView<'a> {
    pub reports: &'a [ReportRow],
    pub next: Month,
    pub now: OffsetDateTime,
    pub upload_configured: bool,
    pub auto_export: bool,
    /// Months of licenses the log keeps besides the current one (0: all).
    pub keep_months: u32,
    pub pruned: Option<&'a PruneMark>,
    /// The newest checkpoint made, and the newest uploaded.
    pub checkpoints: (Option<&'a CheckpointRecord>, Option<&'a CheckpointRecord>),
}

fn checkpoints(v: &ReportsView<'_>) -> Markup {
    let (made, uploaded) = v.checkpoints;
    let describe = |c: &CheckpointRecord| format!("{} (row {})", c.made_at, c.seq);
    html! {
        section aria-labelledby="cp-h" {
            h2 id="cp-h" { "Checkpoints" }
            p { "A signed checkpoint of the license log leaves the box with every upload, ahead of the reports; the vendor checks each report against them." }
            dl.facts {
                dt { "Last made" }
                dd { (made.map_or_else(|| "none yet".to_owned(), describe)) }
                dt { "Last uploaded" }
                dd {
                    @match (uploaded, v.upload_configured) {
                        (Some(c), _) => (describe(c)),
                        (None, false) => "none (no upload address is configured)",
                        (None, true) => span.bad { "none yet" },
                    }
                    @if let Some(error) = made.filter(|c| c.uploaded_at.is_none()).and_then(|c| c.last_error.as_deref()) {
                        " · last attempt: " (error)
                    }
                }
            }
        }
    }
}

fn upload_state(r: &ReportRecord, upload_configured: bool) -> Markup {
    html! {
        @match (&r.uploaded_at, upload_configured) {
            (Some(at), _) => span.ok { "uploaded " (at) },
            (None, false) => "not uploaded (no upload address is configured)",
            (None, true) if r.upload_attempts == 0 => "waiting to upload",
            (None, true) => {
                span.bad { "not uploaded yet" }
                " (" (counted(r.upload_attempts, "attempt")) "; last: " (r.last_error.as_deref().unwrap_or("–"))
                "; next " (r.next_attempt_at.as_deref().unwrap_or("soon")) ")"
            },
        }
    }
}

fn report_row(row: &ReportRow, upload_configured: bool) -> Markup {
    let r = &row.record;
    html! {
        tr {
            td { (r.sequence) } td { (r.month) } td { (r.licenses) } td { (r.active_users) } td { (r.generated_at) }
            td { (upload_state(r, upload_configured)) }
            td class=(if row.verified { "ok" } else { "bad" }) { (if row.verified { "OK" } else { "FAILED" }) ": " (row.verdict) }
            td {
                a href={ "/reports/" (r.sequence) "/download" } download=(r.file_name)
                    aria-label={ "Download report " (r.sequence) " (" (r.month) ")" } { (r.file_name) }
            }
        }
    }
}

fn export_section(session: &Session, v: &ReportsView<'_>) -> Markup {
    let by_itself = html! {
        @if v.auto_export {
            "berth also exports each finished month by itself and uploads it when an upload address is configured."
        } @else {
            "Automatic export is off (" code { "auto_export = false" } " under " code { "[reports]" }
            " in the configuration): a finished month waits until it is exported here or with " code { "berth report export" } "."
        }
    };
    let next = v.next;
    html! {
        @if !session.is_admin() {
            p { "Exporting a month needs an admin account." }
        } @else {
            section aria-labelledby="exp-h" {
                h2 id="exp-h" { "Export a month" }
                @if next.end() > v.now {
                    p id="next-report" {
                        "Nothing to export yet: the next report is for " (next) ", which can be exported once that month ends, at 00:00 UTC on "
                        (next.end().date()) ". " (by_itself)
                    }
                } @else {
                    form method="post" action="/reports/export" id="export" {
                        (csrf_field(session))
                        label for="month" { "Month (the next report is for " (next) "; reports go month by month, after the month has ended)" }
                        input type="month" id="month" name="month" value=(next) required pattern="[0-9]{4}-[0-9]{2}";
                        button type="submit" { "Export" }
                    }
                    p { (by_itself) }
                }
            }
        }
    }
}

/// How long the license log keeps licenses, and what was pruned: the reports
/// are what is left of a pruned month on this box.
fn retention(v: &ReportsView<'_>) -> Markup {
    html! {
        section aria-labelledby="ret-h" {
            h2 id="ret-h" { "Old licenses" }
            p id="retention" {
                @if v.keep_months == 0 {
                    "The license log keeps every license (" code { "keep_months = 0" } " under " code { "[log]" }
                    " in the configuration); " code { "berth log prune" } " removes the months whose reports are here."
                } @else {
                    "The license log keeps this month and the " (counted(v.keep_months, "month"))
                    " before it; an older month's licenses are removed once its report is here and verifies"
                    (if v.upload_configured { " and has been uploaded" } else { "" }) "."
                }
                @if let Some(m) = v.pruned {
                    " Removed so far: the months through " (m.through_month) " (on " (m.day())
                    "); their licenses are in the reports above, so keep the files."
                }
            }
        }
    }
}

pub fn reports(session: &Session, v: &ReportsView<'_>, message: Option<&Notice>) -> String {
    let body = html! {
        (notice(message))
        section aria-labelledby="rep-h" {
            h2 id="rep-h" { "Exported reports" }
            div.scroll { table id="reports" {
                thead { tr {
                    th { "Sequence" } th { "Month" } th { "Licenses" } th { "Active users" }
                    th { "Generated (UTC)" } th { "Upload" } th { "Verification" } th { "File" }
                } }
                tbody {
                    @for row in v.reports { (report_row(row, v.upload_configured)) }
                    @if v.reports.is_empty() { tr { td colspan="8" { "No report has been exported yet." } } }
                }
            } }
        }
        (checkpoints(v))
        (export_section(session, v))
        (retention(v))
    };
    page("Reports", Some(session), body)
}
