//! The license log page: filter by day range, KID and key system; keyset
//! pagination (fast at any depth); the filtered rows as CSV.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use time::Date;
use time::macros::format_description;

use super::{AdminState, html, signed_in, views, with_db};
use crate::chunks::ChunkWriter;
use crate::store::{Db, LogCursor, LogFilter};

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

fn parse_query(req: &HttpRequest) -> Result<LogQuery, super::BadAddress> {
    let query = super::PageQuery::parse(req.query_string())?;
    let from = parse_day("From", query.get("from"))?;
    let to = parse_day("To", query.get("to"))?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err("From is after To.".to_owned().into());
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
                .map_err(|_| "Key system is clearkey, hls or fairplay.".to_owned())?,
        ),
    };
    let at = query.get("at");
    let seq = query.get("seq").parse::<i64>();
    let cursor = match (query.get("dir"), seq) {
        ("", _) => LogCursor::Newest,
        ("older", Ok(seq)) if at.len() <= 40 => LogCursor::Older(at.to_owned(), seq),
        ("newer", Ok(seq)) if at.len() <= 40 => LogCursor::Newer(at.to_owned(), seq),
        _ => {
            return Err("The page address is not valid; start again from the first page."
                .to_owned()
                .into());
        }
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
    let session = match signed_in(&req, &state).await {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let query = match parse_query(&req) {
        Ok(q) => q,
        Err(why) => {
            let view = views::LogView {
                filter: &LogFilter::default(),
                query: "",
                keys: &[],
                rows: None,
                pruned: None,
                error: Some(&why.0),
            };
            return html(StatusCode::BAD_REQUEST, views::log(&session, &view));
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
        Some(Ok((rows, count, keys, pruned))) => {
            let view = views::LogView {
                filter: &filter,
                query: &filter_query(&filter),
                keys: &keys,
                rows: Some((&rows, count)),
                pruned: pruned.as_ref(),
                error: None,
            };
            html(StatusCode::OK, views::log(&session, &view))
        }
        _ => super::unavailable("The license log"),
    }
}

/// The filtered rows as CSV, in the columns of a report's `licenses.csv`,
/// streamed from a snapshot of the log (millions of rows need no memory).
pub async fn csv(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if let Err(answer) = signed_in(&req, &state).await {
        return *answer;
    }
    let query = match parse_query(&req) {
        Ok(q) => q,
        Err(why) => return html(StatusCode::BAD_REQUEST, views::forbidden(&why.0)),
    };
    let filter = query.filter;
    let name = format!(
        "berth-log-{}-{}.csv",
        filter.from.map_or_else(|| "start".to_owned(), |d| d.to_string()),
        filter.to.map_or_else(|| "now".to_owned(), |d| d.to_string())
    );
    let (data_dir, master) = (state.data_dir.clone(), state.master.clone());
    let body = super::body::spawn(&req, "berth-log-csv", None, move |chunks| {
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
