//! The dashboard: one typed [`Dashboard`] serves the page and `dashboard.json`,
//! which the page's script polls.

use std::collections::BTreeMap;

use maud::{Markup, html};
use serde::Serialize;

use super::{page, script};
use crate::admin::session::Session;
use crate::health::Health;
use crate::ids::{Month, counted};
use crate::store::Counts;

/// Everything the dashboard shows, and `dashboard.json` as its script reads it.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub health: Health,
    pub disk_free_bytes: Option<u64>,
    /// How many days of licenses the free disk holds at this month's rate.
    pub disk_days_left: Option<u64>,
    pub installation: Option<InstallationView>,
    pub month: Month,
    /// None when the database could not say.
    pub counts: Option<Counts>,
    pub last_licenses: Vec<LastLicense>,
    /// Refusals since start, most frequent first.
    pub denials: Vec<DenialView>,
    /// None when the database could not say.
    pub reports: Option<ReportsStatus>,
    /// `[license] allowed_origins` has `"*"`: any web page may fetch keys.
    pub any_origin: bool,
    pub certificates: Vec<CertificateView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstallationView {
    pub id: String,
    pub vessel_type: &'static str,
    pub vessel_name: String,
    pub signing_key_sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastLicense {
    pub seq: i64,
    pub issued_at: String,
    pub key_system: String,
    pub kids: String,
    /// The titles of the KIDs that have one, joined by "; ".
    pub titles: String,
    pub license_type: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DenialView {
    pub code: &'static str,
    pub count: u64,
    pub meaning: &'static str,
}

/// Where the monthly reports stand.
#[derive(Debug, Clone, Serialize)]
pub struct ReportsStatus {
    /// Months that have ended without a report, oldest first.
    pub due: Vec<Month>,
    pub next: Month,
    pub auto_export: bool,
    pub last: Option<LastReport>,
    pub upload_configured: bool,
    pub not_uploaded: usize,
    /// Why the newest failing upload failed.
    pub upload_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastReport {
    pub month: String,
    pub sequence: i64,
}

/// A listener's TLS certificate and when it expires.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateView {
    pub listener: &'static str,
    pub expires: String,
    /// Calendar days (UTC), so that 1 is tomorrow.
    pub days_left: i64,
    pub expired: bool,
    /// Within 30 days: shown in red.
    pub soon: bool,
}

/// Bytes for people: "51.1 GB", "820 MB".
fn size(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{} MB", bytes / 1_000_000)
    }
}

/// The dashboard's estimate of what the free disk holds.
fn room_for(days: u64) -> String {
    match days {
        0..=1 => "less than a day of licenses at this month's rate".to_owned(),
        2..=3650 => format!("room for about {days} days of licenses at this month's rate"),
        _ => "room for more than ten years of licenses at this month's rate".to_owned(),
    }
}

/// "2026-12-01T02:42:48.892Z" as ("02:42:48", "2026-12-01").
fn clock(now: &str) -> (&str, &str) {
    match (now.get(11..19), now.get(..10)) {
        (Some(time), Some(date)) => (time, date),
        _ => (now, ""),
    }
}

/// The licenses-per-day chart: one bar per day of the month, inline SVG.
fn chart(by_day: &BTreeMap<String, u64>) -> Markup {
    let max = by_day.values().copied().max().unwrap_or(0).max(1);
    let width = 24 * by_day.len().max(1);
    html! {
        svg id="chart" viewBox=(format!("0 0 {width} 152")) role="img" aria-label="Licenses per day this month" {
            @for (i, (day, n)) in by_day.iter().enumerate() {
                @let h = (n * 120 / max) as usize;
                rect x=(i * 24 + 3) y=(130 - h) width="18" height=(h) fill="#2a6f97" {
                    title { (day) ": " (n) }
                }
                text x=(i * 24 + 12) y="148" font-size="9" text-anchor="middle" { (day.get(8..).unwrap_or("")) }
            }
        }
    }
}

/// The monthly-reports card: a finished month without a report stands out;
/// otherwise the last report, the next, and how uploads go.
pub fn reports_card(r: Option<&ReportsStatus>) -> Markup {
    let Some(r) = r else {
        return html! { div.n { "?" } };
    };
    let mut lines: Vec<Markup> = Vec::new();
    let head = if let Some(first) = r.due.first() {
        let what = if r.due.len() == 1 {
            "has ended and has no report yet".to_owned()
        } else {
            format!(
                "{} finished months have no report yet, from this one",
                r.due.len()
            )
        };
        lines.push(html! { span.bad { (what) } });
        lines.push(if r.auto_export {
            html! { "berth exports finished months by itself; if this stays, see " a href="/reports" { "Reports" } " and the service log" }
        } else {
            html! { "automatic export is off: " a href="/reports" { "export it on the Reports page" } }
        });
        html! { div.n.bad { (first) } }
    } else {
        lines.push(html! { "next: " (r.next) " when it ends" });
        match &r.last {
            Some(last) => html! { div.n { (last.month) } },
            None => html! { div.n { "none yet" } },
        }
    };
    if !r.upload_configured {
        if r.last.is_some() {
            lines.push(html! { "no upload address: download them from " a href="/reports" { "Reports" } });
        }
    } else if let Some(error) = r.upload_error.as_ref().filter(|_| r.not_uploaded > 0) {
        lines.push(html! {
            span.bad { (counted(r.not_uploaded, "report")) " not uploaded; the last try failed: " (error) }
        });
    } else if r.not_uploaded > 0 {
        lines.push(html! { (counted(r.not_uploaded, "report")) " waiting to upload" });
    } else if r.last.is_some() {
        lines.push(html! { "all uploaded" });
    }
    html! {
        (head)
        div {
            @for (i, line) in lines.iter().enumerate() {
                @if i > 0 { "; " }
                (line)
            }
        }
    }
}

/// The listeners' TLS certificates and when they expire, in red within 30
/// days: an expired one makes browsers refuse the listener.
fn certificate_rows(certificates: &[CertificateView]) -> Markup {
    html! {
        @for c in certificates {
            @let date = c.expires.get(..10).unwrap_or("");
            @let text = if c.expired {
                format!("expired on {date}: browsers refuse it; install a new one and restart berth")
            } else {
                let when = match c.days_left {
                    0 => "today".to_owned(),
                    1 => "tomorrow".to_owned(),
                    n => format!("in {n} days"),
                };
                let renew = if c.soon { "; install a new one before then and restart berth" } else { "" };
                format!("expires {date} ({when}){renew}")
            };
            tr {
                th scope="row" { (c.listener) " certificate" }
                td class=[c.soon.then_some("bad")] { (text) }
            }
        }
    }
}

/// A warning while any web page may call the license API.
fn origins_row(any_origin: bool) -> Markup {
    html! {
        @if any_origin {
            tr {
                th scope="row" { "Player pages" }
                td.bad id="any-origin" {
                    "any web page may fetch keys: set " code { "[license] allowed_origins" }
                    " to the portal's origin and restart berth"
                }
            }
        }
    }
}

fn health_card(d: &Dashboard) -> Markup {
    let healthy = d.health.is_ok();
    html! {
        div.card {
            div { "Service" }
            div class={ "n " (if healthy { "ok" } else { "bad" }) } id="status" { (if healthy { "OK" } else { "PROBLEM" }) }
            div id="problems" { (d.health.problems.join("; ")) }
        }
    }
}

fn count_cards(d: &Dashboard) -> Markup {
    let figure = |n: Option<u64>| n.map_or_else(|| "–".to_owned(), |n| n.to_string());
    let counts = d.counts.as_ref();
    html! {
        div.card { div { "Licenses in " (d.month) } div.n id="licenses" data-month=(d.month) { (figure(counts.map(|c| c.licenses))) } }
        div.card { div { "Active users" } div.n id="active-users" { (figure(counts.map(|c| c.active_users))) } }
        div.card { div { "Licenses without user" } div.n id="without-user" { (figure(counts.map(|c| c.licenses_without_user))) } }
        div.card {
            div { "Repeat key fetches" }
            div.n id="repeat-fetches" { (figure(counts.map(|c| c.repeat_fetches))) }
            div { "delivered, not counted" }
        }
    }
}

fn disk_card(d: &Dashboard) -> Markup {
    let low =
        d.disk_free_bytes.is_some_and(|b| b < 1_000_000_000) || d.disk_days_left.is_some_and(|n| n < 30);
    html! {
        div.card {
            div { "Disk free" }
            div class={ "n" @if low { " bad" } } { (d.disk_free_bytes.map_or("?".to_owned(), size)) }
            div { (d.disk_days_left.map_or(String::new(), room_for)) }
        }
    }
}

fn clock_card(d: &Dashboard) -> Markup {
    let (time, date) = clock(&d.health.clock.now);
    html! {
        div.card {
            div { "Clock (UTC)" }
            div.n id="clock" { (time) }
            div id="clock-date" { (date) }
            div {
                @if d.health.clock.behind_log {
                    span.bad { "behind the newest license: check the clock" }
                }
            }
        }
    }
}

fn installation_table(d: &Dashboard) -> Markup {
    let i = d.installation.as_ref();
    html! {
        div.scroll {
            table {
                tr { th scope="row" { "Id" } td { (i.map_or("", |i| &i.id)) } }
                tr { th scope="row" { "Vessel" } td { (i.map_or("", |i| &i.vessel_name)) " (" (i.map_or("", |i| i.vessel_type)) ")" } }
                tr { th scope="row" { "Signing key SHA-256" } td { code { (i.map_or("", |i| &i.signing_key_sha256)) } } }
                (certificate_rows(&d.certificates))
                (origins_row(d.any_origin))
            }
        }
    }
}

fn last_licenses(d: &Dashboard) -> Markup {
    html! {
        @for r in &d.last_licenses {
            tr {
                td { (r.seq) } td { (r.issued_at) } td { (r.key_system) }
                td { code { (r.kids) } } td { (r.titles) } td { "delivered" }
            }
        }
    }
}

fn denial_rows(d: &Dashboard) -> Markup {
    html! {
        @for denial in &d.denials {
            tr { td { code.nowrap { (denial.code) } } td { (denial.count) } td { (denial.meaning) } }
        }
        @if d.denials.is_empty() {
            tr { td colspan="3" { "none since the service started" } }
        }
    }
}

pub fn render(session: &Session, d: &Dashboard) -> String {
    let empty = BTreeMap::new();
    let by_day = d.counts.as_ref().map_or(&empty, |c| &c.by_day);
    let body = html! {
        section aria-labelledby="health" {
            h2 id="health" { "Health" }
            div.cards {
                (health_card(d))
                (count_cards(d))
                (disk_card(d))
                div.card id="reports-card" { div { "Monthly report" } div id="reports-now" { (reports_card(d.reports.as_ref())) } }
                (clock_card(d))
            }
        }
        section aria-labelledby="chart-h" {
            h2 id="chart-h" { "Licenses per day" }
            div id="chart-box" { (chart(by_day)) }
            p {
                a href="/keys?sort=watched" { "Which titles are licensed most this month" } " "
                "(" a href={ "/keys?sort=watched&month=" (d.month.previous()) } { "last month" } ")"
            }
        }
        section aria-labelledby="id-h" { h2 id="id-h" { "Installation" } (installation_table(d)) }
        section aria-labelledby="last-h" {
            h2 id="last-h" { "Last licenses" }
            div.scroll { table {
                thead { tr { th { "#" } th { "Time (UTC)" } th { "Key system" } th { "KIDs" } th { "Title" } th { "Outcome" } } }
                tbody id="last" { (last_licenses(d)) }
            } }
        }
        section aria-labelledby="den-h" {
            h2 id="den-h" { "Refused requests since the service started" }
            div.scroll { table {
                thead { tr { th { "Code" } th { "Count" } th { "What it usually means" } } }
                tbody id="denials" { (denial_rows(d)) }
            } }
        }
        (script())
    };
    page("Dashboard", Some(session), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_says_sizes_days_and_times_for_people() {
        assert_eq!(size(51_080_000_000), "51.1 GB");
        assert_eq!(size(820_400_000), "820 MB");
        assert_eq!(room_for(0), "less than a day of licenses at this month's rate");
        assert_eq!(
            room_for(45),
            "room for about 45 days of licenses at this month's rate"
        );
        assert_eq!(
            room_for(40_000),
            "room for more than ten years of licenses at this month's rate"
        );
        assert_eq!(clock("2026-12-01T02:42:48.892Z"), ("02:42:48", "2026-12-01"));
        assert_eq!(clock("<b>"), ("<b>", ""));
    }

    fn status(
        due: &[&str],
        auto_export: bool,
        last: Option<&str>,
        upload: bool,
        not_uploaded: usize,
        error: Option<&str>,
    ) -> ReportsStatus {
        ReportsStatus {
            due: due.iter().map(|m| m.parse().unwrap()).collect(),
            next: due.first().copied().unwrap_or("2026-12").parse().unwrap(),
            auto_export,
            last: last.map(|m| LastReport {
                month: m.into(),
                sequence: 2,
            }),
            upload_configured: upload,
            not_uploaded,
            upload_error: error.map(str::to_owned),
        }
    }

    #[test]
    fn the_reports_card_says_what_is_late_and_how_uploads_go() {
        let card = |r: Option<&ReportsStatus>| reports_card(r).into_string();
        assert_eq!(
            card(Some(&status(&["2026-10"], true, None, false, 0, None))),
            "<div class=\"n bad\">2026-10</div><div><span class=\"bad\">has ended and has no report yet</span>; \
             berth exports finished months by itself; if this stays, see <a href=\"/reports\">Reports</a> and the service log</div>"
        );
        assert!(card(Some(&status(&["2026-10", "2026-11"], false, None, false, 0, None))).starts_with(
            "<div class=\"n bad\">2026-10</div><div><span class=\"bad\">2 finished months have no report yet, from this one</span>; \
             automatic export is off: <a href=\"/reports\">export it on the Reports page</a>"
        ));
        assert_eq!(
            card(Some(&status(&[], true, Some("2026-11"), true, 0, None))),
            "<div class=\"n\">2026-11</div><div>next: 2026-12 when it ends; all uploaded</div>"
        );
        assert!(
            card(Some(&status(&[], true, Some("2026-11"), true, 1, None)))
                .ends_with("; 1 report waiting to upload</div>")
        );
        assert!(
            card(Some(&status(&[], true, Some("2026-11"), true, 2, Some("<refused> by the receiver"))))
                .ends_with("; <span class=\"bad\">2 reports not uploaded; the last try failed: &lt;refused&gt; by the receiver</span></div>")
        );
        assert_eq!(
            card(Some(&status(&[], true, None, false, 0, None))),
            "<div class=\"n\">none yet</div><div>next: 2026-12 when it ends</div>"
        );
        assert_eq!(card(None), "<div class=\"n\">?</div>");
    }
}
