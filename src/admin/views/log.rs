//! The license log page: the filter form, the count, a page of rows with the
//! KIDs' titles, and links to the newer and older pages.

use maud::{Markup, html};

use super::page;
use crate::admin::session::Session;
use crate::ids::counted;
use crate::store::{KeyInfo, LogFilter, LogPage, LogRow, PruneMark};

/// What the log page shows.
pub struct LogView<'a> {
    pub filter: &'a LogFilter,
    /// The filter as a query string, for the CSV link and the pages.
    pub query: &'a str,
    /// Every key, for the KIDs' titles and the KID field's suggestions.
    pub keys: &'a [KeyInfo],
    /// A page of rows and how many match in all; None when the query was refused.
    pub rows: Option<(&'a LogPage, i64)>,
    pub pruned: Option<&'a PruneMark>,
    /// Why the query was refused.
    pub error: Option<&'a str>,
}

fn filter_form(v: &LogView<'_>) -> Markup {
    let f = v.filter;
    let key_system = f.key_system.map(|k| k.as_str());
    html! {
        form.filters method="get" action="/log" aria-label="Filter the license log" {
            div { label for="from" { "From (UTC day)" } input type="date" id="from" name="from" value=(f.from.map(|d| d.to_string()).unwrap_or_default()); }
            div { label for="to" { "To (UTC day)" } input type="date" id="to" name="to" value=(f.to.map(|d| d.to_string()).unwrap_or_default()); }
            div {
                label for="kid" { "KID" }
                input id="kid" name="kid" size="38" list="known-kids" placeholder="9eb4050d-e44b-4802-932e-27d75083e266"
                    value=(f.kid.map(|k| k.to_string()).unwrap_or_default());
                datalist id="known-kids" {
                    @for k in v.keys { option value=(k.kid) { (k.label) } }
                }
            }
            div {
                label for="key_system" { "Key system" }
                select id="key_system" name="key_system" {
                    option value="any" { "any" }
                    @for system in crate::ids::KeySystem::ALL {
                        option value=(system.as_str()) selected[key_system == Some(system.as_str())] { (system.as_str()) }
                    }
                }
            }
            div { button type="submit" { "Show" } }
            div { a href={ "/log.csv?" (v.query) } id="csv" download { "Download these rows as CSV" } }
        }
    }
}

fn log_row(r: &LogRow, labels: &std::collections::HashMap<String, &str>) -> Markup {
    html! {
        tr {
            td { (r.seq) } td { (r.issued_at) } td { (r.key_system) }
            td {
                @for (i, kid) in r.kids.split(';').enumerate() {
                    @if i > 0 { br; }
                    code { (kid) }
                    @if let Some(label) = labels.get(kid) { " " span.kid-label { (label) } }
                }
            }
            td { (r.license_type) }
            td {
                @if r.user_hash.is_empty() { "–" } @else {
                    code title=(r.user_hash) { (r.user_hash.get(..8).unwrap_or("")) "…" }
                }
            }
            td { code { (r.token_id) } }
            td { code title=(r.com_key_id) { (r.com_key_id.get(..8).unwrap_or("")) "…" } }
        }
    }
}

/// A link to the page before or after, or an empty place holder.
fn page_link(query: &str, dir: &str, row: Option<&LogRow>, label: &str, rel: &str) -> Markup {
    let separator = if query.is_empty() { "" } else { "&" };
    html! {
        @match row {
            Some(r) => a href={ "/log?" (query) (separator) "dir=" (dir) "&at=" (r.issued_at) "&seq=" (r.seq) } rel=(rel) { (label) },
            None => span {},
        }
    }
}

fn rows_section(v: &LogView<'_>, page_rows: &LogPage, n: i64) -> Markup {
    let labels = crate::admin::labels_by_kid(v.keys);
    html! {
        p id="match-count" { (counted(n, "license")) " " (if n == 1 { "matches" } else { "match" }) "." }
        @if let Some(mark) = v.pruned {
            p id="pruned" class="notice" {
                "The licenses of the months through " (mark.through_month) " were pruned from this log on "
                (mark.day()) " (every row before #" (mark.first_seq) "): they are in those months' signed reports ("
                a href="/reports" { "Reports" } "). The count above includes them; the list and the CSV do not."
            }
        }
        div.scroll { table id="log" {
            thead { tr {
                th { "#" } th { "Time (UTC)" } th { "Key system" } th { "KIDs" } th { "Type" } th { "User" } th { "Token id" } th { "Com key" }
            } }
            tbody {
                @for r in &page_rows.rows { (log_row(r, &labels)) }
                @if page_rows.rows.is_empty() { tr { td colspan="8" { "No licenses match." } } }
            }
        } }
        nav.pager aria-label="pages of the log" {
            (page_link(v.query, "newer", page_rows.rows.first().filter(|_| page_rows.has_newer), "« Newer", "prev"))
            (page_link(v.query, "older", page_rows.rows.last().filter(|_| page_rows.has_older), "Older »", "next"))
        }
    }
}

pub fn log(session: &Session, v: &LogView<'_>) -> String {
    let body = html! {
        @if let Some(error) = v.error { p.notice.error role="alert" { (error) } }
        (filter_form(v))
        @if let Some((page_rows, n)) = v.rows { (rows_section(v, page_rows, n)) }
    };
    page("License log", Some(session), body)
}
