//! The reports page: every exported report with its counts, upload state and
//! `report verify` result; export a month; download a zip.

use std::time::SystemTime;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::session::Session;
use super::{AdminAction, AdminState, Notice, csrf_forms, html, notice_status, signed_in, views, with_db};
use crate::ids::{Month, counted};
use crate::store::ReportRecord;

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
    match signed_in(&req, &state).await {
        Ok(session) => answer(&state, &session, None).await,
        Err(answer) => *answer,
    }
}

async fn answer(state: &web::Data<AdminState>, session: &Session, notice: Option<Notice>) -> HttpResponse {
    let listed = with_db(state, |db| {
        Ok::<_, crate::report::ExportError>((
            db.reports()?,
            db.installation()?,
            crate::report::next_month(db)?,
            db.prune_mark()?,
            db.last_checkpoints()?,
        ))
    })
    .await;
    let Some(Ok((reports, installation, next, pruned, checkpoints))) = listed else {
        return super::unavailable("The reports");
    };
    let verified = web::block({
        let state = state.clone();
        move || {
            reports
                .into_iter()
                .rev()
                .map(|record| {
                    let (verified, verdict) = verify(&state, &record, &installation.public_key_der);
                    views::ReportRow {
                        record,
                        verified,
                        verdict,
                    }
                })
                .collect::<Vec<_>>()
        }
    })
    .await
    .unwrap_or_default();
    let view = views::ReportsView {
        reports: &verified,
        next,
        now: state.service.clock().now(),
        upload_configured: state.upload_configured,
        auto_export: state.auto_export,
        keep_months: state.keep_months,
        pruned: pruned.as_ref(),
        checkpoints: (checkpoints.0.as_ref(), checkpoints.1.as_ref()),
    };
    html(
        notice_status(notice.as_ref()),
        views::reports(session, &view, notice.as_ref()),
    )
}

#[derive(Deserialize)]
pub struct ExportForm {
    csrf: String,
    month: String,
}

csrf_forms!(ExportForm);

pub async fn export(action: AdminAction<ExportForm>, state: web::Data<AdminState>) -> HttpResponse {
    let AdminAction { session, form } = action;
    let Ok(month) = form.month.trim().parse::<Month>() else {
        return answer(
            &state,
            &session,
            Some(Notice::Failed("Month is not a month like 2026-10.".to_owned())),
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
            Notice::Done(format!(
                "Exported {month} as report {} ({}, {}).",
                e.report.report.sequence,
                counted(e.report.counts.licenses, "license"),
                counted(e.report.counts.active_users, "active user")
            ))
        }
        Some(Ok(e)) => Notice::Done(format!(
            "{month} was exported before, as report {}.",
            e.report.report.sequence
        )),
        Some(Err(e)) => Notice::Failed(format!("Nothing was exported: {e}")),
        None => Notice::Failed("Nothing was exported: the export did not finish.".to_owned()),
    };
    answer(&state, &session, Some(notice)).await
}

/// The report's zip, streamed from the reports folder.
pub async fn download(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    if let Err(answer) = signed_in(&req, &state).await {
        return *answer;
    }
    let not_found = || html(StatusCode::NOT_FOUND, views::not_found());
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
    let body = super::body::spawn(&req, "berth-report-download", size, move |chunks| {
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
