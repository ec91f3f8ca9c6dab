//! The communication keys and crew users pages, with a secret shown once in a
//! box of its own after the action that made it.

use maud::{Markup, html};

use super::{Listing, Notice, confirmed_button, csrf_field, notice, page, script};
use crate::admin::session::Session;
use crate::store::{ComKeyInfo, CrewUser};

/// A secret to show once, after the action that made it.
pub struct Shown {
    pub what: &'static str,
    pub pairs: Vec<(&'static str, String)>,
}

fn shown_box(shown: Option<&Shown>) -> Markup {
    html! {
        @if let Some(s) = shown {
            section.secret aria-labelledby="once-h" {
                h2 id="once-h" { (s.what) }
                table {
                    @for (name, value) in &s.pairs {
                        tr { th scope="row" { (name) } td { code.once { (value) } } }
                    }
                }
                p { strong { "Copy it now: it is shown only this once." } " berth keeps only an encrypted or hashed copy." }
            }
        }
    }
}

fn com_key_row(session: &Session, k: &ComKeyInfo) -> Markup {
    let id = k.id.to_string();
    html! {
        tr {
            td { code { (id) } } td { (k.created_at) } td { (k.last_used_at.as_deref().unwrap_or("never")) }
            td {
                @if session.is_admin() {
                    (confirmed_button(
                        session,
                        "/comkeys/remove",
                        &format!("Remove communication key {id}? Tokens signed with it stop working at once."),
                        ("id", &id),
                        ("Remove", &format!("Remove communication key {id}")),
                    ))
                }
            }
        }
    }
}

/// What an action left to show above the page it returns to: its notice,
/// and a secret it made.
#[derive(Default, Clone, Copy)]
pub struct After<'a> {
    pub notice: Option<&'a Notice>,
    pub shown: Option<&'a Shown>,
}

pub fn com_keys(session: &Session, keys: &[ComKeyInfo], after: After<'_>) -> String {
    let body = html! {
        (notice(after.notice))
        (shown_box(after.shown))
        (Listing {
            id: "ck-h",
            heading: format!("Communication keys ({})", keys.len()),
            note: "The portal signs license tokens with one of these; berth never shows a stored secret.",
            table_id: "comkeys",
            columns: &["Id", "Created (UTC)", "Last used (UTC, to the minute)", ""],
        }
        .render(html! {
            @for k in keys { (com_key_row(session, k)) }
            @if keys.is_empty() { tr { td colspan="4" { "No communication keys: no token can be verified." } } }
        }))
        @if session.is_admin() {
            form method="post" action="/comkeys/generate" id="generate" {
                (csrf_field(session))
                p { button type="submit" { "Generate a new communication key" } " Give its id and secret to the portal that signs license tokens." }
            }
        } @else {
            p { "Generating and removing communication keys needs an admin account." }
        }
        (script())
    };
    page("Communication keys", Some(session), body)
}

fn user_row(session: &Session, user: &CrewUser) -> Markup {
    let name = &user.name;
    html! {
        tr {
            td { (name) } td { (user.role) } td { (user.created_at) }
            td {
                (confirmed_button(
                    session,
                    "/users/passwd",
                    &format!("Give {name} a new password? The old one stops working."),
                    ("name", name),
                    ("New password", &format!("New password for {name}")),
                ))
                " "
                @if *name == session.user { "(you)" } @else {
                    (confirmed_button(
                        session,
                        "/users/remove",
                        &format!("Remove crew user {name}? They are signed out at once."),
                        ("name", name),
                        ("Remove", &format!("Remove crew user {name}")),
                    ))
                }
            }
        }
    }
}

pub fn users(session: &Session, users: &[CrewUser], after: After<'_>) -> String {
    let listing = Listing {
        id: "users-h",
        heading: format!("Crew users ({})", users.len()),
        note: "Admins can do everything; viewers can look but change nothing.",
        table_id: "users",
        columns: &["Name", "Role", "Created (UTC)", ""],
    };
    let body = html! {
        (notice(after.notice))
        (shown_box(after.shown))
        (listing.render(html! { @for user in users { (user_row(session, user)) } }))
        section aria-labelledby="add-h" {
            h2 id="add-h" { "Add a crew user" }
            form method="post" action="/users/add" id="add-user" {
                (csrf_field(session))
                label for="name" { "User name (no spaces)" }
                input id="name" name="name" required maxlength="64" autocomplete="off";
                label for="role" { "Role" }
                select id="role" name="role" {
                    option value="viewer" { "viewer (read only)" }
                    option value="admin" { "admin" }
                }
                p { button type="submit" { "Add user" } " berth makes the password and shows it once." }
            }
        }
        (script())
    };
    page("Crew users", Some(session), body)
}
