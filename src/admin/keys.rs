//! The keys page: list (never a key), import a JSON or CPIX file, remove.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::ids::Month;

use super::{
    AdminState, Notice, admin_action, html, notice_status, pages, session::Session, signed_in, with_db,
};

pub async fn page(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    match signed_in(&req, &state) {
        Ok(session) => answer(&state, &session, None).await,
        Err(answer) => *answer,
    }
}

async fn answer(state: &web::Data<AdminState>, session: &Session, notice: Notice) -> HttpResponse {
    let month = Month::of(state.service.clock().now());
    let listed = with_db(state, move |db| -> Result<_, crate::store::StoreError> {
        let keys = db.list_keys()?;
        let since = month.start().date();
        let usage = keys
            .iter()
            .map(|k| db.kid_usage(&k.kid, since))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((keys, usage))
    })
    .await;
    match listed {
        Some(Ok((keys, usage))) => html(
            notice_status(&notice),
            pages::keys(session, &keys, &usage, month, notice.as_ref()),
        ),
        _ => super::unavailable("The key store"),
    }
}

#[derive(Deserialize)]
pub struct ImportForm {
    csrf: String,
    content: String,
}

pub async fn import(
    req: HttpRequest,
    form: web::Form<ImportForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let form = form.into_inner();
    let session = match admin_action(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let now = state.service.clock().now();
    let outcome = with_db(&state, move |db| -> Result<crate::store::ImportOutcome, String> {
        let keys = crate::keyfile::parse(form.content.as_bytes()).map_err(|e| e.0)?;
        db.import_keys(&keys, now).map_err(|e| e.to_string())
    })
    .await;
    let notice = match outcome {
        Some(Ok(o)) => {
            tracing::info!(user = %session.user, added = o.added, unchanged = o.unchanged, "keys imported from the admin UI");
            state.service.keys().reload().await;
            (true, format!("Imported {o}."))
        }
        Some(Err(why)) => (false, format!("Nothing was imported: {why}")),
        None => (
            false,
            "Nothing was imported: the import did not finish.".to_owned(),
        ),
    };
    answer(&state, &session, Some(notice)).await
}

#[derive(Deserialize)]
pub struct RemoveForm {
    csrf: String,
    kid: String,
}

pub async fn remove(
    req: HttpRequest,
    form: web::Form<RemoveForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let form = form.into_inner();
    let session = match admin_action(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let notice = match form.kid.parse::<crate::ids::Kid>() {
        Err(_) => (false, "That is not a KID.".to_owned()),
        Ok(kid) => match with_db(&state, move |db| db.remove_key(&kid)).await {
            Some(Ok(true)) => {
                tracing::info!(user = %session.user, %kid, "key removed from the admin UI");
                state.service.keys().reload().await;
                (true, format!("Removed key {kid}."))
            }
            Some(Ok(false)) => (false, format!("There is no key {kid}.")),
            _ => (false, "The key could not be removed.".to_owned()),
        },
    };
    answer(&state, &session, Some(notice)).await
}
