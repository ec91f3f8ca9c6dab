//! The reports page: every exported report with its counts, upload state and
//! `report verify` result; export a month; download a zip.

use std::time::SystemTime;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use time::OffsetDateTime;

use super::pages::{self, csrf_field, esc, notice};
use super::session::Session;
use super::{AdminState, Notice, admin_action, html, notice_status, signed_in, with_db};
use crate::ids::{Month, counted};
use crate::store::{PruneMark, ReportRecord};

/// A `report verify` result, valid while the file keeps its size and time.
#[derive(Clone)]
pub struct Verification {
    size: u64,
    modified: Option<SystemTime>,
    ok: bool,
    text: String,
}

fn reports_dir(state: &AdminState) -> std::path::PathBuf {
    state.data_dir.join("reports")
}

/// Verifies the report's file as `berth report verify --pubkey` would, and
/// checks that it is the file this installation recorded; cached per file.
fn verify(state: &AdminState, r: &ReportRecord, public_key_der: &[u8]) -> (bool, String) {
    let path = reports_dir(state).join(&r.file_name);
    let Ok(meta) = std::fs::metadata(&path) else {
        return (
            false,
            format!("the file {} is missing from the reports folder", r.file_name),
        );
    };
    let (size, modified) = (meta.len(), meta.modified().ok());
    if let Some(v) = state.verified.lock().expect("verified lock").get(&r.sequence)
        && v.size == size
        && v.modified == modified
    {
        return (v.ok, v.text.clone());
    }
    let (ok, text) = match crate::report::verify_file(&path, None) {
        Err(e) => (false, e.to_string()),
        Ok(v) if v.public_key_der != public_key_der => {
            (false, "it was signed by another installation".to_owned())
        }
        Ok(v) if v.manifest_sha256 != r.manifest_sha256 => (
            false,
            "it is not the file that was exported (its manifest differs)".to_owned(),
        ),
        Ok(v) if v.report.counts.licenses == 0 => (
            true,
            "signature, manifest, hash chain and counts check out (no licenses that month)".to_owned(),
        ),
        Ok(v) => (
            true,
            format!(
                "signature, manifest, hash chain and counts check out ({}, rows {}..{})",
                counted(v.report.counts.licenses, "license"),
                v.report.log.first_seq,
                v.report.log.last_seq
            ),
        ),
    };
    state.verified.lock().expect("verified lock").insert(
        r.sequence,
        Verification {
            size,
            modified,
            ok,
            text: text.clone(),
        },
    );
    (ok, text)
}

pub async fn page(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    match signed_in(&req, &state) {
        Ok(session) => answer(&state, &session, None).await,
        Err(answer) => *answer,
    }
}

async fn answer(state: &web::Data<AdminState>, session: &Session, notice: Notice) -> HttpResponse {
    let listed = with_db(state, |db| {
        Ok::<_, crate::report::ExportError>((
            db.reports()?,
            db.installation()?,
            crate::report::next_month(db)?,
            db.prune_mark()?,
        ))
    })
    .await;
    let Some(Ok((reports, installation, next, pruned))) = listed else {
        return super::unavailable("The reports");
    };
    let verified = web::block({
        let state = state.clone();
        move || {
            reports
                .into_iter()
                .rev()
                .map(|r| {
                    let v = verify(&state, &r, &installation.public_key_der);
                    (r, v)
                })
                .collect::<Vec<_>>()
        }
    })
    .await
    .unwrap_or_default();
    let now = state.service.clock().now();
    html(
        notice_status(&notice),
        render(
            session,
            &verified,
            state,
            (next, now),
            pruned.as_ref(),
            notice.as_ref(),
        ),
    )
}

fn render(
    session: &Session,
    reports: &[(ReportRecord, (bool, String))],
    state: &AdminState,
    (next, now): (Month, OffsetDateTime),
    pruned: Option<&PruneMark>,
    message: Option<&(bool, String)>,
) -> String {
    let (upload_configured, auto_export) = (state.upload_configured, state.auto_export);
    let mut rows = String::new();
    for (r, (ok, text)) in reports {
        let upload = match (&r.uploaded_at, upload_configured) {
            (Some(at), _) => format!("<span class=\"ok\">uploaded {}</span>", esc(at)),
            (None, false) => "not uploaded (no upload address is configured)".to_owned(),
            (None, true) if r.upload_attempts == 0 => "waiting to upload".to_owned(),
            (None, true) => format!(
                "<span class=\"bad\">not uploaded yet</span> ({}; last: {}; next {})",
                counted(r.upload_attempts, "attempt"),
                esc(r.last_error.as_deref().unwrap_or("–")),
                esc(r.next_attempt_at.as_deref().unwrap_or("soon"))
            ),
        };
        rows.push_str(&format!(
            "<tr><td>{seq}</td><td>{month}</td><td>{licenses}</td><td>{users}</td><td>{generated}</td><td>{upload}</td>\
             <td class=\"{class}\">{verdict}: {text}</td>\
             <td><a href=\"/reports/{seq}/download\" download=\"{file}\" aria-label=\"Download report {seq} ({month})\">{file}</a></td></tr>",
            seq = r.sequence,
            month = esc(&r.month),
            licenses = r.licenses,
            users = r.active_users,
            generated = esc(&r.generated_at),
            class = if *ok { "ok" } else { "bad" },
            verdict = if *ok { "OK" } else { "FAILED" },
            text = esc(text),
            file = esc(&r.file_name),
        ));
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"8\">No report has been exported yet.</td></tr>");
    }
    let by_itself = if auto_export {
        "berth also exports each finished month by itself and uploads it when an upload address is configured."
    } else {
        "Automatic export is off (<code>auto_export = false</code> under <code>[reports]</code> in the configuration): \
         a finished month waits until it is exported here or with <code>berth report export</code>."
    };
    let export = if session.is_admin() && next.end() > now {
        format!(
            "<section aria-labelledby=\"exp-h\"><h2 id=\"exp-h\">Export a month</h2>\
             <p id=\"next-report\">Nothing to export yet: the next report is for {next}, \
             which can be exported once that month ends, at 00:00 UTC on {ends}. {by_itself}</p></section>",
            ends = next.end().date(),
        )
    } else if session.is_admin() {
        format!(
            "<section aria-labelledby=\"exp-h\"><h2 id=\"exp-h\">Export a month</h2>\
             <form method=\"post\" action=\"/reports/export\" id=\"export\">{}\
             <label for=\"month\">Month (the next report is for {next}; reports go month by month, after the month has ended)</label>\
             <input type=\"month\" id=\"month\" name=\"month\" value=\"{next}\" required pattern=\"[0-9]{{4}}-[0-9]{{2}}\">\
             <button type=\"submit\">Export</button></form>\
             <p>{by_itself}</p></section>",
            csrf_field(session)
        )
    } else {
        "<p>Exporting a month needs an admin account.</p>".to_owned()
    };
    let body = format!(
        "{}<section aria-labelledby=\"rep-h\"><h2 id=\"rep-h\">Exported reports</h2>\
         <div class=\"scroll\"><table id=\"reports\"><thead><tr><th>Sequence</th><th>Month</th><th>Licenses</th><th>Active users</th>\
         <th>Generated (UTC)</th><th>Upload</th><th>Verification</th><th>File</th></tr></thead><tbody>{rows}</tbody></table></div></section>{export}{}",
        notice(message),
        retention(state.keep_months, upload_configured, pruned)
    );
    pages::page("Reports", Some(session), &body)
}

/// How long the license log keeps licenses, and what was pruned: the reports
/// are what is left of a pruned month on this box.
fn retention(keep_months: u32, upload_configured: bool, pruned: Option<&PruneMark>) -> String {
    let kept = if keep_months == 0 {
        "The license log keeps every license (<code>keep_months = 0</code> under <code>[log]</code> in the \
         configuration); <code>berth log prune</code> removes the months whose reports are here."
            .to_owned()
    } else {
        format!(
            "The license log keeps this month and the {} before it; an older month's licenses are removed \
             once its report is here and verifies{}.",
            counted(keep_months, "month"),
            if upload_configured {
                " and has been uploaded"
            } else {
                ""
            }
        )
    };
    let done = pruned.map_or(String::new(), |m| {
        format!(
            " Removed so far: the months through {} (on {}); their licenses are in the reports above, \
             so keep the files.",
            esc(&m.through_month),
            esc(m.day())
        )
    });
    format!(
        "<section aria-labelledby=\"ret-h\"><h2 id=\"ret-h\">Old licenses</h2><p id=\"retention\">{kept}{done}</p></section>"
    )
}

#[derive(Deserialize)]
pub struct ExportForm {
    csrf: String,
    month: String,
}

pub async fn export(
    req: HttpRequest,
    form: web::Form<ExportForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let form = form.into_inner();
    let session = match admin_action(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let Ok(month) = form.month.trim().parse::<Month>() else {
        return answer(
            &state,
            &session,
            Some((false, "Month is not a month like 2026-10.".to_owned())),
        )
        .await;
    };
    let now = state.service.clock().now();
    let dir = reports_dir(&state);
    let exported = with_db(&state, move |db| {
        crate::report::export(db, month, now, false, &dir)
    })
    .await;
    let notice = match exported {
        Some(Ok(e)) if e.new => {
            tracing::info!(user = %session.user, %month, sequence = e.report.report.sequence, "report exported from the admin UI");
            (
                true,
                format!(
                    "Exported {month} as report {} ({}, {}).",
                    e.report.report.sequence,
                    counted(e.report.counts.licenses, "license"),
                    counted(e.report.counts.active_users, "active user")
                ),
            )
        }
        Some(Ok(e)) => (
            true,
            format!(
                "{month} was exported before, as report {}.",
                e.report.report.sequence
            ),
        ),
        Some(Err(e)) => (false, format!("Nothing was exported: {e}")),
        None => (
            false,
            "Nothing was exported: the export did not finish.".to_owned(),
        ),
    };
    answer(&state, &session, Some(notice)).await
}

/// The report's zip, streamed from the reports folder.
pub async fn download(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    if let Err(answer) = signed_in(&req, &state) {
        return *answer;
    }
    let not_found = || html(StatusCode::NOT_FOUND, super::pages::not_found());
    let Ok(sequence) = path.into_inner().parse::<i64>() else {
        return not_found();
    };
    let Some(Ok(reports)) = with_db(&state, |db| db.reports()).await else {
        return super::unavailable("The reports");
    };
    let Some(r) = reports.into_iter().find(|r| r.sequence == sequence) else {
        return not_found();
    };
    // The name comes from our own database, but a path never leaves the folder.
    if r.file_name.contains(['/', '\\', '"']) || r.file_name.starts_with('.') {
        return not_found();
    }
    let file = match std::fs::File::open(reports_dir(&state).join(&r.file_name)) {
        Ok(f) => f,
        Err(_) => return not_found(),
    };
    let size = file.metadata().map(|m| m.len()).ok();
    let body = super::body::spawn("berth-report-download", size, move |chunks| {
        use std::io::Read as _;
        let mut file = file;
        loop {
            let mut chunk = vec![0; super::body::CHUNK];
            match file.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    if !chunks.send(chunk) {
                        return;
                    }
                }
                Err(e) => return chunks.fail(e.to_string()),
            }
        }
    });
    match body {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/zip")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", r.file_name),
            ))
            .body(body),
        Err(_) => super::unavailable("The report"),
    }
}
