//! The keys page: find a film by title or KID, see how much each is watched,
//! import a JSON or CPIX file, remove (never a key).

use std::cmp::Reverse;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::ids::Month;
use crate::store::{KeyInfo, KidUsage};

use super::{
    AdminAction, AdminState, Notice, csrf_forms, html, notice_status, session::Session, signed_in, views,
    with_db,
};

/// The longest search text the page accepts (a title or a KID is far shorter).
const MAX_SEARCH: usize = 100;

/// The order the keys are listed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyOrder {
    /// By title, A to Z (keys without a title last, by KID).
    #[default]
    Title,
    /// Most licenses in the month shown first: what passengers are watching.
    Watched,
    /// Most recently licensed first; never-licensed keys last.
    LastLicensed,
    /// Most recently imported first.
    Added,
}

impl KeyOrder {
    /// Every order, with its query value and what the page calls it.
    pub const ALL: [(KeyOrder, &'static str, &'static str); 4] = [
        (KeyOrder::Title, "title", "Title, A to Z"),
        (KeyOrder::Watched, "watched", "Most licensed in the month"),
        (KeyOrder::LastLicensed, "last", "Most recently licensed"),
        (KeyOrder::Added, "added", "Most recently added"),
    ];
}

/// What the page shows: the keys whose title or KID contains `search`, in
/// `order`, with their licenses in `month` (None: the current one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyView {
    pub search: String,
    pub order: KeyOrder,
    pub month: Option<Month>,
}

fn parse_view(query: &str) -> Result<KeyView, super::BadAddress> {
    let query = super::PageQuery::parse(query)?;
    let search = query.get("q");
    if search.chars().count() > MAX_SEARCH {
        return Err(format!("The search is longer than {MAX_SEARCH} characters.").into());
    }
    let order = match query.get("sort") {
        "" => KeyOrder::default(),
        text => KeyOrder::ALL
            .iter()
            .find(|(_, value, _)| *value == text)
            .map(|(order, _, _)| *order)
            .ok_or_else(|| "The order is title, watched, last or added.".to_owned())?,
    };
    let month = match query.get("month") {
        "" => None,
        text => Some(
            text.parse()
                .map_err(|_| "The month is written YYYY-MM, for example 2026-11.".to_owned())?,
        ),
    };
    Ok(KeyView {
        search: search.to_owned(),
        order,
        month,
    })
}

/// Whether a key's title or KID contains the search, ignoring case; a KID
/// matches with or without its dashes.
fn matcher(search: &str) -> impl Fn(&KeyInfo) -> bool + use<> {
    let text = search.to_lowercase();
    let hex = text.replace('-', "");
    move |key| {
        text.is_empty()
            || key.label.to_lowercase().contains(&text)
            || crate::ids::hex(&key.kid.0).contains(&hex)
    }
}

/// Puts the keys in the view's order; ties go by title, then KID.
fn sort(listed: &mut [(KeyInfo, KidUsage)], order: KeyOrder) {
    let title = |k: &KeyInfo| (k.label.is_empty(), k.label.to_lowercase(), k.kid.to_string());
    match order {
        KeyOrder::Title => listed.sort_by_cached_key(|(k, _)| title(k)),
        KeyOrder::Watched => listed.sort_by_cached_key(|(k, u)| (Reverse(u.licenses), title(k))),
        KeyOrder::LastLicensed => listed.sort_by_cached_key(|(k, u)| (Reverse(u.last_day.clone()), title(k))),
        KeyOrder::Added => listed.sort_by_cached_key(|(k, _)| (Reverse(k.added_at), title(k))),
    }
}

pub async fn page(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let session = match signed_in(&req, &state).await {
        Ok(session) => session,
        Err(answer) => return *answer,
    };
    match parse_view(req.query_string()) {
        Ok(view) => answer(&state, &session, &view, None).await,
        Err(why) => {
            // The whole list, under what was wrong with the address.
            let mut listed = answer(&state, &session, &KeyView::default(), Some(Notice::Failed(why.0))).await;
            *listed.status_mut() = StatusCode::BAD_REQUEST;
            listed
        }
    }
}

async fn answer(
    state: &web::Data<AdminState>,
    session: &Session,
    view: &KeyView,
    notice: Option<Notice>,
) -> HttpResponse {
    let month = view
        .month
        .unwrap_or_else(|| Month::of(state.service.clock().now()));
    let wanted = matcher(&view.search);
    let now = state.service.clock().now();
    let listed = with_db(state, move |db| -> anyhow::Result<_> {
        let delivery = crate::provisioning::delivery_certificate(db, now)?;
        let fairplay = crate::provisioning::fairplay_certificate(db)?;
        let keys = db.list_keys()?;
        let total = keys.len();
        let listed = keys
            .into_iter()
            .filter(|k| wanted(k))
            .map(|k| {
                let usage = db.kid_usage(&k.kid, month)?;
                Ok((k, usage))
            })
            .collect::<Result<Vec<_>, crate::store::StoreError>>()?;
        Ok((listed, total, delivery, fairplay))
    })
    .await;
    match listed {
        Some(Ok((mut listed, total, delivery, fairplay))) => {
            sort(&mut listed, view.order);
            let shown = views::keys::Shown {
                listed: &listed,
                total,
                view,
                month,
                delivery: &delivery,
                fairplay: fairplay.as_ref(),
            };
            html(
                notice_status(notice.as_ref()),
                views::keys(session, &shown, notice.as_ref()),
            )
        }
        _ => super::unavailable("The key store"),
    }
}

#[derive(Deserialize)]
pub struct ImportForm {
    csrf: String,
    content: String,
}

csrf_forms!(ImportForm, RemoveForm);

pub async fn import(action: AdminAction<ImportForm>, state: web::Data<AdminState>) -> HttpResponse {
    let AdminAction { session, form } = action;
    let now = state.service.clock().now();
    let signers = state.cpix_signers.clone();
    let outcome = with_db(&state, move |db| {
        crate::provisioning::import(db, form.content.as_bytes(), &signers, now)
    })
    .await;
    let notice = match outcome {
        Some(Ok(o)) => {
            tracing::info!(user = %session.user, added = o.added, unchanged = o.unchanged, "keys imported from the admin UI");
            state.service.keys().reload().await;
            let warned: String = o.warnings.iter().map(|w| format!(" Warning: {w}.")).collect();
            let what = crate::store::ImportOutcome {
                added: o.added,
                unchanged: o.unchanged,
            };
            Notice::Done(format!("Imported {what}.{warned}"))
        }
        Some(Err(why)) => Notice::Failed(format!("Nothing was imported: {why}")),
        None => Notice::Failed("Nothing was imported: the import did not finish.".to_owned()),
    };
    answer(&state, &session, &KeyView::default(), Some(notice)).await
}

#[derive(Deserialize)]
pub struct RemoveForm {
    csrf: String,
    kid: String,
}

/// The delivery certificate as a file, for the key provider.
pub async fn delivery_certificate(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if let Err(answer) = signed_in(&req, &state).await {
        return *answer;
    }
    let now = state.service.clock().now();
    let found = with_db(&state, move |db| -> anyhow::Result<_> {
        let installation = db.installation()?.id;
        Ok((
            installation,
            crate::provisioning::delivery_certificate(db, now)?.pem,
        ))
    })
    .await;
    match found {
        Some(Ok((installation, pem))) => HttpResponse::Ok()
            .content_type("application/x-pem-file")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"berth-delivery-{installation}.pem\""),
            ))
            .body(pem),
        _ => super::unavailable("The delivery certificate"),
    }
}

pub async fn remove(action: AdminAction<RemoveForm>, state: web::Data<AdminState>) -> HttpResponse {
    let AdminAction { session, form } = action;
    let notice = match form.kid.parse::<crate::ids::Kid>() {
        Err(_) => Notice::Failed("That is not a KID.".to_owned()),
        Ok(kid) => match with_db(&state, move |db| db.remove_key(&kid)).await {
            Some(Ok(true)) => {
                tracing::info!(user = %session.user, %kid, "key removed from the admin UI");
                state.service.keys().reload().await;
                Notice::Done(format!("Removed key {kid}."))
            }
            Some(Ok(false)) => Notice::Failed(format!("There is no key {kid}.")),
            _ => Notice::Failed("The key could not be removed.".to_owned()),
        },
    };
    answer(&state, &session, &KeyView::default(), Some(notice)).await
}
