//! The license log page: filter by day range, KID and key system; keyset
//! pagination (fast at any depth); the filtered rows as CSV.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use time::Date;
use time::macros::format_description;

use super::pages::{self, esc};
use super::session::Session;
use super::{AdminState, html, signed_in, with_db};
use crate::chunks::ChunkWriter;
use crate::ids::counted;
use crate::store::{Db, KeyInfo, LogCursor, LogFilter, LogPage, PruneMark};

const PAGE_SIZE: usize = 50;

/// The page's query: the filter and where the page starts.
struct LogQuery {
    filter: LogFilter,
    cursor: LogCursor,
}

fn parse_day(field: &str, value: &str) -> Result<Option<Date>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    Date::parse(value, format_description!("[year]-[month]-[day]"))
        .map(Some)
        .map_err(|_| format!("{field} is not a date like 2026-11-23."))
}

fn parse_query(req: &HttpRequest) -> Result<LogQuery, String> {
    let query = super::PageQuery::parse(req.query_string())?;
    let from = parse_day("From", query.get("from"))?;
    let to = parse_day("To", query.get("to"))?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err("From is after To.".to_owned());
    }
    let kid = match query.get("kid") {
        "" => None,
        text => Some(
            text.parse()
                .map_err(|_| "KID is not a UUID or 32 hex digits.".to_owned())?,
        ),
    };
    let key_system = match query.get("key_system") {
        "" | "any" => None,
        text => Some(
            text.parse()
                .map_err(|_| "Key system is clearkey or hls.".to_owned())?,
        ),
    };
    let at = query.get("at");
    let seq = query.get("seq").parse::<i64>();
    let cursor = match (query.get("dir"), seq) {
        ("", _) => LogCursor::Newest,
        ("older", Ok(seq)) if at.len() <= 40 => LogCursor::Older(at.to_owned(), seq),
        ("newer", Ok(seq)) if at.len() <= 40 => LogCursor::Newer(at.to_owned(), seq),
        _ => return Err("The page address is not valid; start again from the first page.".to_owned()),
    };
    Ok(LogQuery {
        filter: LogFilter {
            from,
            to,
            kid,
            key_system,
        },
        cursor,
    })
}

/// The filter as a query string (values are validated, so only `&` needs care).
fn filter_query(f: &LogFilter) -> String {
    let mut parts = Vec::new();
    if let Some(d) = f.from {
        parts.push(format!("from={d}"));
    }
    if let Some(d) = f.to {
        parts.push(format!("to={d}"));
    }
    if let Some(k) = &f.kid {
        parts.push(format!("kid={k}"));
    }
    if let Some(ks) = f.key_system {
        parts.push(format!("key_system={}", ks.as_str()));
    }
    parts.join("&")
}

pub async fn page(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let session = match signed_in(&req, &state) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let query = match parse_query(&req) {
        Ok(q) => q,
        Err(why) => {
            return html(
                StatusCode::BAD_REQUEST,
                render(&session, &LogFilter::default(), &[], None, None, Some(&why)),
            );
        }
    };
    let filter = query.filter.clone();
    let result = with_db(&state, move |db: &mut Db| {
        let page = db.log_page(&query.filter, &query.cursor, PAGE_SIZE)?;
        let count = db.count_filtered(&query.filter)?;
        let keys = db.list_keys()?;
        let pruned = db.prune_mark()?;
        Ok::<_, crate::store::StoreError>((page, count, keys, pruned))
    })
    .await;
    match result {
        Some(Ok((rows, count, keys, pruned))) => html(
            StatusCode::OK,
            render(
                &session,
                &filter,
                &keys,
                Some((&rows, count)),
                pruned.as_ref(),
                None,
            ),
        ),
        _ => super::unavailable("The license log"),
    }
}

/// The page; `keys` give the KIDs their labels (film titles, as imported) in
/// the table and in the KID field's suggestions.
fn render(
    session: &Session,
    f: &LogFilter,
    keys: &[KeyInfo],
    rows: Option<(&LogPage, i64)>,
    pruned: Option<&PruneMark>,
    error: Option<&str>,
) -> String {
    let value = |v: Option<String>| esc(&v.unwrap_or_default());
    let selected = |ks: &str| {
        if f.key_system.map(|k| k.as_str()) == Some(ks) {
            " selected"
        } else {
            ""
        }
    };
    let query = filter_query(f);
    let labels = super::labels_by_kid(keys);
    let mut suggestions = String::from("<datalist id=\"known-kids\">");
    for k in keys {
        suggestions.push_str(&format!("<option value=\"{}\">{}</option>", k.kid, esc(&k.label)));
    }
    suggestions.push_str("</datalist>");
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"notice error\" role=\"alert\">{}</p>", esc(e))
    });
    let mut body = format!(
        "{error}<form class=\"filters\" method=\"get\" action=\"/log\" aria-label=\"Filter the license log\">\
         <div><label for=\"from\">From (UTC day)</label><input type=\"date\" id=\"from\" name=\"from\" value=\"{}\"></div>\
         <div><label for=\"to\">To (UTC day)</label><input type=\"date\" id=\"to\" name=\"to\" value=\"{}\"></div>\
         <div><label for=\"kid\">KID</label><input id=\"kid\" name=\"kid\" size=\"38\" list=\"known-kids\" placeholder=\"9eb4050d-e44b-4802-932e-27d75083e266\" value=\"{}\">{suggestions}</div>\
         <div><label for=\"key_system\">Key system</label><select id=\"key_system\" name=\"key_system\">\
         <option value=\"any\">any</option><option value=\"clearkey\"{}>clearkey</option><option value=\"hls\"{}>hls</option></select></div>\
         <div><button type=\"submit\">Show</button></div>\
         <div><a href=\"/log.csv?{}\" id=\"csv\" download>Download these rows as CSV</a></div></form>",
        value(f.from.map(|d| d.to_string())),
        value(f.to.map(|d| d.to_string())),
        value(f.kid.map(|k| k.to_string())),
        selected("clearkey"),
        selected("hls"),
        esc(&query),
    );
    if let Some((page_rows, n)) = rows {
        let verb = if n == 1 { "matches" } else { "match" };
        body.push_str(&format!(
            "<p id=\"match-count\">{} {verb}.</p>",
            counted(n, "license")
        ));
        if let Some(mark) = pruned {
            body.push_str(&format!(
                "<p id=\"pruned\" class=\"notice\">The licenses of the months through {} were pruned \
                 from this log on {} (every row before #{}): they are in those months' signed reports \
                 (<a href=\"/reports\">Reports</a>). The count above includes them; the list and the CSV do not.</p>",
                esc(&mark.through_month),
                esc(mark.day()),
                mark.first_seq
            ));
        }
        let mut table = String::new();
        for r in &page_rows.rows {
            let user = if r.user_hash.is_empty() {
                "–".to_owned()
            } else {
                format!(
                    "<code title=\"{0}\">{1}…</code>",
                    esc(&r.user_hash),
                    esc(r.user_hash.get(..8).unwrap_or(""))
                )
            };
            table.push_str(&format!(
                "<tr><td>{seq}</td><td>{at}</td><td>{ks}</td><td>{kids}</td><td>{lt}</td><td>{user}</td>\
                 <td><code>{token}</code></td><td><code title=\"{com}\">{com_short}…</code></td></tr>",
                seq = r.seq,
                at = esc(&r.issued_at),
                ks = esc(&r.key_system),
                kids = r
                    .kids
                    .split(';')
                    .map(|kid| match labels.get(kid) {
                        Some(label) => format!(
                            "<code>{}</code> <span class=\"kid-label\">{}</span>",
                            esc(kid),
                            esc(label)
                        ),
                        None => format!("<code>{}</code>", esc(kid)),
                    })
                    .collect::<Vec<_>>()
                    .join("<br>"),
                lt = esc(&r.license_type),
                token = esc(&r.token_id),
                com = esc(&r.com_key_id),
                com_short = esc(r.com_key_id.get(..8).unwrap_or("")),
            ));
        }
        if table.is_empty() {
            table.push_str("<tr><td colspan=\"8\">No licenses match.</td></tr>");
        }
        let link = |dir: &str, r: Option<&crate::store::LogRow>, label: &str, rel: &str| match r {
            Some(r) => format!(
                "<a href=\"/log?{}{}dir={dir}&amp;at={}&amp;seq={}\" rel=\"{rel}\">{label}</a>",
                esc(&query),
                if query.is_empty() { "" } else { "&amp;" },
                esc(&r.issued_at),
                r.seq
            ),
            None => "<span></span>".to_owned(),
        };
        let newer = link(
            "newer",
            page_rows.rows.first().filter(|_| page_rows.has_newer),
            "« Newer",
            "prev",
        );
        let older = link(
            "older",
            page_rows.rows.last().filter(|_| page_rows.has_older),
            "Older »",
            "next",
        );
        body.push_str(&format!(
            "<div class=\"scroll\"><table id=\"log\"><thead><tr><th>#</th><th>Time (UTC)</th><th>Key system</th><th>KIDs</th><th>Type</th><th>User</th><th>Token id</th><th>Com key</th></tr></thead>\
             <tbody>{table}</tbody></table></div><nav class=\"pager\" aria-label=\"pages of the log\">{newer}{older}</nav>"
        ));
    }
    pages::page("License log", Some(session), &body)
}

/// The filtered rows as CSV, in the columns of a report's `licenses.csv`,
/// streamed from a snapshot of the log (millions of rows need no memory).
pub async fn csv(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if let Err(answer) = signed_in(&req, &state) {
        return *answer;
    }
    let query = match parse_query(&req) {
        Ok(q) => q,
        Err(why) => return html(StatusCode::BAD_REQUEST, super::pages::forbidden(&why)),
    };
    let filter = query.filter;
    let name = format!(
        "berth-log-{}-{}.csv",
        filter.from.map_or_else(|| "start".to_owned(), |d| d.to_string()),
        filter.to.map_or_else(|| "now".to_owned(), |d| d.to_string())
    );
    let (data_dir, master) = (state.data_dir.clone(), state.master.clone());
    let body = super::body::spawn("berth-log-csv", None, move |chunks| {
        let mut out = ChunkWriter::new(super::body::CHUNK, |chunk| chunks.send(chunk));
        let written = (|| -> anyhow::Result<()> {
            let db = Db::open(&data_dir, master)?;
            let mut csv = crate::report::csv_writer(&mut out)?;
            db.for_each_filtered::<anyhow::Error>(&filter, |r| {
                Ok(crate::report::write_csv_row(&mut csv, &r)?)
            })?;
            Ok(csv.flush()?)
        })();
        match written {
            Ok(()) => {}
            Err(why) => {
                tracing::warn!(error = %why, "license log CSV export cut short");
                chunks.fail(why.to_string());
            }
        }
    });
    match body {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ))
            .body(body),
        Err(_) => super::unavailable("The license log"),
    }
}
