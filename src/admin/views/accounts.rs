//! The communication keys and crew users pages, with a secret shown once in a
//! box of its own after the action that made it.

use maud::{Markup, html};

use super::{Notice, csrf_field, notice, page, script};
use crate::admin::session::Session;
use crate::store::ComKeyInfo;

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
                    form.inline method="post" action="/comkeys/remove"
                        data-confirm={ "Remove communication key " (id) "? Tokens signed with it stop working at once." } {
                        (csrf_field(session))
                        input type="hidden" name="id" value=(id);
                        button type="submit" aria-label={ "Remove communication key " (id) } { "Remove" }
                    }
                }
            }
        }
    }
}

pub fn com_keys(
    session: &Session,
    keys: &[ComKeyInfo],
    message: Option<&Notice>,
    shown: Option<&Shown>,
) -> String {
    let body = html! {
        (notice(message))
        (shown_box(shown))
        section aria-labelledby="ck-h" {
            h2 id="ck-h" { "Communication keys (" (keys.len()) ")" }
            p { "The portal signs license tokens with one of these; berth never shows a stored secret." }
            div.scroll { table id="comkeys" {
                thead { tr { th { "Id" } th { "Created (UTC)" } th { "Last used (UTC, to the minute)" } th {} } }
                tbody {
                    @for k in keys { (com_key_row(session, k)) }
                    @if keys.is_empty() { tr { td colspan="4" { "No communication keys: no token can be verified." } } }
                }
            } }
        }
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

fn user_row(session: &Session, (name, role, created): &(String, String, String)) -> Markup {
    html! {
        tr {
            td { (name) } td { (role) } td { (created) }
            td {
                form.inline method="post" action="/users/passwd" data-confirm={ "Give " (name) " a new password? The old one stops working." } {
                    (csrf_field(session))
                    input type="hidden" name="name" value=(name);
                    button type="submit" aria-label={ "New password for " (name) } { "New password" }
                }
                " "
                @if *name == session.user { "(you)" } @else {
                    form.inline method="post" action="/users/remove" data-confirm={ "Remove crew user " (name) "? They are signed out at once." } {
                        (csrf_field(session))
                        input type="hidden" name="name" value=(name);
                        button type="submit" aria-label={ "Remove crew user " (name) } { "Remove" }
                    }
                }
            }
        }
    }
}

pub fn users(
    session: &Session,
    users: &[(String, String, String)],
    message: Option<&Notice>,
    shown: Option<&Shown>,
) -> String {
    let body = html! {
        (notice(message))
        (shown_box(shown))
        section aria-labelledby="users-h" {
            h2 id="users-h" { "Crew users (" (users.len()) ")" }
            p { "Admins can do everything; viewers can look but change nothing." }
            div.scroll { table id="users" {
                thead { tr { th { "Name" } th { "Role" } th { "Created (UTC)" } th {} } }
                tbody { @for user in users { (user_row(session, user)) } }
            } }
        }
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
