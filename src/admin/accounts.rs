//! Communication keys (list, generate with the secret shown once, remove) and
//! crew users (admin only: add, new password, remove), as the CLI does them.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::session::Session;
use super::views::{self, Shown};
use super::{AdminAction, AdminState, Notice, csrf_forms, html, notice_status, signed_in, with_db};
use crate::accounts;
use crate::ids::ComKeyId;

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

csrf_forms!(CsrfOnly, RemoveComKeyForm, AddUserForm, NameForm);

pub async fn com_keys_page(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    match signed_in(&req, &state).await {
        Ok(session) => com_keys_answer(&state, &session, None, None).await,
        Err(answer) => *answer,
    }
}

async fn com_keys_answer(
    state: &web::Data<AdminState>,
    session: &Session,
    notice: Option<Notice>,
    shown: Option<Shown>,
) -> HttpResponse {
    match with_db(state, |db| db.list_com_keys()).await {
        Some(Ok(list)) => html(
            notice_status(notice.as_ref()),
            views::com_keys(
                session,
                &list,
                views::After {
                    notice: notice.as_ref(),
                    shown: shown.as_ref(),
                },
            ),
        ),
        _ => super::unavailable("The communication keys"),
    }
}

pub async fn generate_com_key(action: AdminAction<CsrfOnly>, state: web::Data<AdminState>) -> HttpResponse {
    let AdminAction { session, .. } = action;
    let now = state.service.clock().now();
    let (notice, shown) = match with_db(&state, move |db| accounts::generate_com_key(db, now)).await {
        Some(Ok(made)) => {
            let id = made.com_key_id;
            tracing::info!(user = %session.user, %id, "communication key generated from the admin UI");
            state.service.keys().reload().await;
            let notice = Notice::Done(format!("Generated communication key {id}."));
            let shown = Shown {
                what: "New communication key",
                pairs: vec![("Id", id), ("Secret (base64)", made.com_key_secret)],
            };
            (notice, Some(shown))
        }
        _ => (
            Notice::Failed("No key was generated: the database refused it.".to_owned()),
            None,
        ),
    };
    com_keys_answer(&state, &session, Some(notice), shown).await
}

#[derive(Deserialize)]
pub struct RemoveComKeyForm {
    csrf: String,
    id: String,
}

pub async fn remove_com_key(
    action: AdminAction<RemoveComKeyForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let AdminAction { session, form } = action;
    let notice = match form.id.parse::<ComKeyId>() {
        Err(_) => Notice::Failed("That is not a communication key id.".to_owned()),
        Ok(id) => match with_db(&state, move |db| db.remove_com_key(&id)).await {
            Some(Ok(true)) => {
                tracing::info!(user = %session.user, %id, "communication key removed from the admin UI");
                state.service.keys().reload().await;
                Notice::Done(format!("Removed communication key {id}."))
            }
            Some(Ok(false)) => Notice::Failed(format!("There is no communication key {id}.")),
            _ => Notice::Failed("The communication key could not be removed.".to_owned()),
        },
    };
    com_keys_answer(&state, &session, Some(notice), None).await
}

/// The crew users page is for admins only, even to look at.
async fn admin_only(req: &HttpRequest, state: &web::Data<AdminState>) -> Result<Session, Box<HttpResponse>> {
    let session = signed_in(req, state).await?;
    if !session.is_admin() {
        return Err(Box::new(html(
            StatusCode::FORBIDDEN,
            views::forbidden("The crew users page needs an admin account."),
        )));
    }
    Ok(session)
}

pub async fn users_page(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    match admin_only(&req, &state).await {
        Ok(session) => users_answer(&state, &session, None, None).await,
        Err(answer) => *answer,
    }
}

async fn users_answer(
    state: &web::Data<AdminState>,
    session: &Session,
    notice: Option<Notice>,
    shown: Option<Shown>,
) -> HttpResponse {
    match with_db(state, |db| db.list_users()).await {
        Some(Ok(users)) => html(
            notice_status(notice.as_ref()),
            views::users(
                session,
                &users,
                views::After {
                    notice: notice.as_ref(),
                    shown: shown.as_ref(),
                },
            ),
        ),
        _ => super::unavailable("The crew accounts"),
    }
}

#[derive(Deserialize)]
pub struct AddUserForm {
    csrf: String,
    name: String,
    role: String,
}

pub async fn add_user(action: AdminAction<AddUserForm>, state: web::Data<AdminState>) -> HttpResponse {
    let AdminAction { session, form } = action;
    let now = state.service.clock().now();
    let added = with_db(&state, move |db| {
        let role = form.role.parse::<accounts::Role>()?;
        accounts::add_user(db, &form.name, role, now)
    })
    .await;
    let (notice, shown) = match added {
        Some(Ok(added)) => {
            tracing::info!(user = %session.user, added = %added.user, role = %added.role, "crew user added from the admin UI");
            let notice = Notice::Done(format!("Added {}.", added.user));
            let shown = Shown {
                what: "New crew user",
                pairs: vec![
                    ("User name", added.user),
                    ("Role", added.role.to_string()),
                    ("Password", added.password),
                ],
            };
            (notice, Some(shown))
        }
        Some(Err(e)) => (Notice::Failed(format!("No user was added: {e}.")), None),
        None => (Notice::Failed("No user was added.".to_owned()), None),
    };
    users_answer(&state, &session, Some(notice), shown).await
}

#[derive(Deserialize)]
pub struct NameForm {
    csrf: String,
    name: String,
}

pub async fn new_password(
    req: HttpRequest,
    action: AdminAction<NameForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let AdminAction { session, form } = action;
    let password = accounts::new_password();
    let changed = with_db(&state, {
        let (name, password) = (form.name.clone(), password.clone());
        move |db| -> anyhow::Result<bool> {
            Ok(db.set_password(&name, &accounts::hash_password(&password)?)?)
        }
    })
    .await;
    let name = form.name;
    let (notice, shown) = match changed {
        Some(Ok(true)) => {
            state.sessions.end_sessions_of(&name, &req);
            tracing::info!(user = %session.user, changed = %name, "crew password changed from the admin UI");
            let notice = Notice::Done(format!("{name} has a new password; their other sessions ended."));
            let shown = Shown {
                what: "New password",
                pairs: vec![("User name", name), ("Password", password)],
            };
            (notice, Some(shown))
        }
        Some(Ok(false)) => (Notice::Failed(format!("There is no crew user {name}.")), None),
        _ => (Notice::Failed("The password was not changed.".to_owned()), None),
    };
    users_answer(&state, &session, Some(notice), shown).await
}

pub async fn remove_user(
    req: HttpRequest,
    action: AdminAction<NameForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let AdminAction { session, form } = action;
    let name = form.name;
    let notice = if name == session.user {
        Notice::Failed("You cannot remove your own account; another admin can.".to_owned())
    } else {
        let removed = with_db(&state, {
            let name = name.clone();
            move |db| db.remove_user(&name)
        })
        .await;
        match removed {
            Some(Ok(true)) => {
                state.sessions.end_sessions_of(&name, &req);
                tracing::info!(user = %session.user, removed = %name, "crew user removed from the admin UI");
                Notice::Done(format!("Removed {name}; their sessions ended."))
            }
            Some(Ok(false)) => Notice::Failed(format!("There is no crew user {name}.")),
            _ => Notice::Failed("The user was not removed.".to_owned()),
        }
    };
    users_answer(&state, &session, Some(notice), None).await
}
