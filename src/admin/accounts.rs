//! Communication keys (list, generate with the secret shown once, remove) and
//! crew users (admin only: add, new password, remove), as the CLI does them.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::pages::{csrf_field, esc, notice, page};
use super::session::Session;
use super::{AdminState, Notice, admin_action, html, notice_status, signed_in, with_db};
use crate::accounts;
use crate::ids::ComKeyId;
use crate::store::ComKeyInfo;

/// A secret to show once, in a box of its own, after the action that made it.
struct Shown {
    what: &'static str,
    pairs: Vec<(&'static str, String)>,
}

fn shown_html(shown: Option<&Shown>) -> String {
    shown.map_or(String::new(), |s| {
        let rows: String = s
            .pairs
            .iter()
            .map(|(k, v)| format!("<tr><th scope=\"row\">{k}</th><td><code class=\"once\">{}</code></td></tr>", esc(v)))
            .collect();
        format!(
            "<section class=\"secret\" aria-labelledby=\"once-h\"><h2 id=\"once-h\">{}</h2><table>{rows}</table>\
             <p><strong>Copy it now: it is shown only this once.</strong> berth keeps only an encrypted or hashed copy.</p></section>",
            s.what
        )
    })
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn com_keys_page(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    match signed_in(&req, &state) {
        Ok(session) => com_keys_answer(&state, &session, None, None).await,
        Err(answer) => *answer,
    }
}

async fn com_keys_answer(
    state: &web::Data<AdminState>,
    session: &Session,
    notice: Notice,
    shown: Option<Shown>,
) -> HttpResponse {
    match with_db(state, |db| db.list_com_keys()).await {
        Some(Ok(list)) => html(
            notice_status(&notice),
            render_com_keys(session, &list, notice.as_ref(), shown.as_ref()),
        ),
        _ => super::unavailable("The communication keys"),
    }
}

fn render_com_keys(
    session: &Session,
    keys: &[ComKeyInfo],
    message: Option<&(bool, String)>,
    shown: Option<&Shown>,
) -> String {
    let mut rows = String::new();
    for k in keys {
        let remove = if session.is_admin() {
            format!(
                "<form class=\"inline\" method=\"post\" action=\"/comkeys/remove\" \
                 data-confirm=\"Remove communication key {id}? Tokens signed with it stop working at once.\">{}\
                 <input type=\"hidden\" name=\"id\" value=\"{id}\"><button type=\"submit\" aria-label=\"Remove communication key {id}\">Remove</button></form>",
                csrf_field(session),
                id = esc(&k.id.to_string())
            )
        } else {
            String::new()
        };
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{remove}</td></tr>",
            esc(&k.id.to_string()),
            esc(&k.created_at),
            esc(k.last_used_at.as_deref().unwrap_or("never")),
        ));
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"4\">No communication keys: no token can be verified.</td></tr>");
    }
    let generate = if session.is_admin() {
        format!(
            "<form method=\"post\" action=\"/comkeys/generate\" id=\"generate\">{}\
             <p><button type=\"submit\">Generate a new communication key</button> \
             Give its id and secret to the portal that signs license tokens.</p></form>",
            csrf_field(session)
        )
    } else {
        "<p>Generating and removing communication keys needs an admin account.</p>".to_owned()
    };
    let body = format!(
        "{}{}<section aria-labelledby=\"ck-h\"><h2 id=\"ck-h\">Communication keys ({})</h2>\
         <p>The portal signs license tokens with one of these; berth never shows a stored secret.</p>\
         <div class=\"scroll\"><table id=\"comkeys\"><thead><tr><th>Id</th><th>Created (UTC)</th><th>Last used (UTC, to the minute)</th><th></th></tr></thead>\
         <tbody>{rows}</tbody></table></div></section>{generate}<script src=\"/static/admin.js\"></script>",
        notice(message),
        shown_html(shown),
        keys.len()
    );
    page("Communication keys", Some(session), &body)
}

pub async fn generate_com_key(
    req: HttpRequest,
    form: web::Form<CsrfOnly>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let session = match admin_action(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let (id, secret) = accounts::new_com_key();
    let secret_b64 = STANDARD.encode(secret.0);
    let now = state.service.clock().now();
    let (notice, shown) = match with_db(&state, move |db| db.add_com_key(&id, &secret, now)).await {
        Some(Ok(())) => {
            tracing::info!(user = %session.user, %id, "communication key generated from the admin UI");
            state.service.keys().reload().await;
            let shown = Shown {
                what: "New communication key",
                pairs: vec![("Id", id.to_string()), ("Secret (base64)", secret_b64)],
            };
            ((true, format!("Generated communication key {id}.")), Some(shown))
        }
        _ => (
            (false, "No key was generated: the database refused it.".to_owned()),
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
    req: HttpRequest,
    form: web::Form<RemoveComKeyForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let form = form.into_inner();
    let session = match admin_action(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let notice = match form.id.parse::<ComKeyId>() {
        Err(_) => (false, "That is not a communication key id.".to_owned()),
        Ok(id) => match with_db(&state, move |db| db.remove_com_key(&id)).await {
            Some(Ok(true)) => {
                tracing::info!(user = %session.user, %id, "communication key removed from the admin UI");
                state.service.keys().reload().await;
                (true, format!("Removed communication key {id}."))
            }
            Some(Ok(false)) => (false, format!("There is no communication key {id}.")),
            _ => (false, "The communication key could not be removed.".to_owned()),
        },
    };
    com_keys_answer(&state, &session, Some(notice), None).await
}

/// The crew users page is for admins only, even to look at.
fn admin_only(req: &HttpRequest, state: &AdminState) -> Result<Session, Box<HttpResponse>> {
    let session = signed_in(req, state)?;
    if !session.is_admin() {
        return Err(Box::new(html(
            StatusCode::FORBIDDEN,
            super::pages::forbidden("The crew users page needs an admin account."),
        )));
    }
    Ok(session)
}

pub async fn users_page(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    match admin_only(&req, &state) {
        Ok(session) => users_answer(&state, &session, None, None).await,
        Err(answer) => *answer,
    }
}

async fn users_answer(
    state: &web::Data<AdminState>,
    session: &Session,
    notice: Notice,
    shown: Option<Shown>,
) -> HttpResponse {
    match with_db(state, |db| db.list_users()).await {
        Some(Ok(users)) => html(
            notice_status(&notice),
            render_users(session, &users, notice.as_ref(), shown.as_ref()),
        ),
        _ => super::unavailable("The crew accounts"),
    }
}

fn render_users(
    session: &Session,
    users: &[(String, String, String)],
    message: Option<&(bool, String)>,
    shown: Option<&Shown>,
) -> String {
    let csrf = csrf_field(session);
    let mut rows = String::new();
    for (name, role, created) in users {
        let name = esc(name);
        let remove = if *name == esc(&session.user) {
            "(you)".to_owned()
        } else {
            format!(
                "<form class=\"inline\" method=\"post\" action=\"/users/remove\" data-confirm=\"Remove crew user {name}? They are signed out at once.\">{csrf}\
                 <input type=\"hidden\" name=\"name\" value=\"{name}\"><button type=\"submit\" aria-label=\"Remove crew user {name}\">Remove</button></form>"
            )
        };
        rows.push_str(&format!(
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>\
             <form class=\"inline\" method=\"post\" action=\"/users/passwd\" data-confirm=\"Give {name} a new password? The old one stops working.\">{csrf}\
             <input type=\"hidden\" name=\"name\" value=\"{name}\"><button type=\"submit\" aria-label=\"New password for {name}\">New password</button></form> {remove}</td></tr>",
            esc(role),
            esc(created),
        ));
    }
    let body = format!(
        "{}{}<section aria-labelledby=\"users-h\"><h2 id=\"users-h\">Crew users ({})</h2>\
         <p>Admins can do everything; viewers can look but change nothing.</p>\
         <div class=\"scroll\"><table id=\"users\"><thead><tr><th>Name</th><th>Role</th><th>Created (UTC)</th><th></th></tr></thead><tbody>{rows}</tbody></table></div></section>\
         <section aria-labelledby=\"add-h\"><h2 id=\"add-h\">Add a crew user</h2><form method=\"post\" action=\"/users/add\" id=\"add-user\">{csrf}\
         <label for=\"name\">User name (no spaces)</label><input id=\"name\" name=\"name\" required maxlength=\"64\" autocomplete=\"off\">\
         <label for=\"role\">Role</label><select id=\"role\" name=\"role\"><option value=\"viewer\">viewer (read only)</option><option value=\"admin\">admin</option></select>\
         <p><button type=\"submit\">Add user</button> berth makes the password and shows it once.</p></form></section>\
         <script src=\"/static/admin.js\"></script>",
        notice(message),
        shown_html(shown),
        users.len()
    );
    page("Crew users", Some(session), &body)
}

#[derive(Deserialize)]
pub struct AddUserForm {
    csrf: String,
    name: String,
    role: String,
}

pub async fn add_user(
    req: HttpRequest,
    form: web::Form<AddUserForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let form = form.into_inner();
    let session = match admin_action(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let (notice, shown) = match accounts::check_user_name(&form.name)
        .and_then(|n| Ok((n.to_owned(), accounts::check_role(&form.role)?.to_owned())))
    {
        Err(why) => ((false, format!("No user was added: {why}.")), None),
        Ok((name, role)) => {
            let password = accounts::new_password();
            let now = state.service.clock().now();
            let added = with_db(&state, {
                let (name, role, password) = (name.clone(), role.clone(), password.clone());
                move |db| -> anyhow::Result<()> {
                    Ok(db.add_user(&name, &accounts::hash_password(&password)?, &role, now)?)
                }
            })
            .await;
            match added {
                Some(Ok(())) => {
                    tracing::info!(user = %session.user, added = %name, %role, "crew user added from the admin UI");
                    let notice = (true, format!("Added {name}."));
                    let shown = Shown {
                        what: "New crew user",
                        pairs: vec![("User name", name), ("Role", role), ("Password", password)],
                    };
                    (notice, Some(shown))
                }
                Some(Err(e)) => ((false, format!("No user was added: {e}.")), None),
                None => ((false, "No user was added.".to_owned()), None),
            }
        }
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
    form: web::Form<NameForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let form = form.into_inner();
    let session = match admin_action(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
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
            let notice = (
                true,
                format!("{name} has a new password; their other sessions ended."),
            );
            let shown = Shown {
                what: "New password",
                pairs: vec![("User name", name), ("Password", password)],
            };
            (notice, Some(shown))
        }
        Some(Ok(false)) => ((false, format!("There is no crew user {name}.")), None),
        _ => ((false, "The password was not changed.".to_owned()), None),
    };
    users_answer(&state, &session, Some(notice), shown).await
}

pub async fn remove_user(
    req: HttpRequest,
    form: web::Form<NameForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let form = form.into_inner();
    let session = match admin_action(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let name = form.name;
    let notice = if name == session.user {
        (
            false,
            "You cannot remove your own account; another admin can.".to_owned(),
        )
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
                (true, format!("Removed {name}; their sessions ended."))
            }
            Some(Ok(false)) => (false, format!("There is no crew user {name}.")),
            _ => (false, "The user was not removed.".to_owned()),
        }
    };
    users_answer(&state, &session, Some(notice), None).await
}
