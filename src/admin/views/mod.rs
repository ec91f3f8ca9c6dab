//! The crew UI's pages, as maud templates: every value interpolated into a page
//! is escaped at compile time, and the only script is `/static/admin.js`.
//!
//! Architecture Invariant: views take typed data and return markup; they read
//! no database and no request.

mod accounts;
mod dashboard;
pub mod keys;
mod log;
mod reports;

use maud::{DOCTYPE, Markup, html};

use super::session::Session;

pub use accounts::{After, Shown, com_keys, users};
pub use dashboard::{
    CertificateView, Dashboard, DenialView, InstallationView, LastLicense, LastReport, ReportsStatus,
    render as dashboard,
};
pub use keys::keys;
pub use log::{LogView, log};
pub use reports::{ReportRow, ReportsView, reports};

/// The result of an action, shown above the page it returns to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Done(String),
    Failed(String),
}

impl Notice {
    pub fn failed(&self) -> bool {
        matches!(self, Notice::Failed(_))
    }
}

/// The pages in the navigation bar; admin-only ones carry `true`.
const NAV: [(&str, &str, bool); 6] = [
    ("/", "Dashboard", false),
    ("/keys", "Keys", false),
    ("/log", "License log", false),
    ("/reports", "Reports", false),
    ("/comkeys", "Communication keys", false),
    ("/users", "Crew users", true),
];

/// A whole page: head, header with the navigation for a signed-in crew member,
/// and the body.
pub fn page(title: &str, session: Option<&Session>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · berth" }
                link rel="stylesheet" href="/static/admin.css";
                link rel="icon" href="/static/icon.svg" type="image/svg+xml";
            }
            body {
                header {
                    h1 { "berth · " (title) }
                    @if let Some(s) = session {
                        nav aria-label="pages" {
                            @for (href, label, admin_only) in NAV {
                                @if !admin_only || s.is_admin() {
                                    a href=(href) aria-current=[(label == title).then_some("page")] { (label) }
                                }
                            }
                        }
                        nav aria-label="account" class="account" {
                            span { (s.user) " (" (s.role) ")" } " "
                            form.inline method="post" action="/logout" {
                                (csrf_field(s))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
    .into_string()
}

/// The result of an action, above the page.
pub fn notice(notice: Option<&Notice>) -> Markup {
    html! {
        @match notice {
            Some(Notice::Done(text)) => p.notice.ok role="status" { (text) },
            Some(Notice::Failed(text)) => p.notice.error role="status" { (text) },
            None => {},
        }
    }
}

/// A hidden CSRF field for a form.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A button that posts one value after the crew member confirms (`data-confirm`,
/// asked by the page's script): removing a key, a user, a password.
pub fn confirmed_button(
    session: &Session,
    action: &str,
    confirm: &str,
    (field, value): (&str, &str),
    (text, label): (&str, &str),
) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=(confirm) {
            (csrf_field(session))
            input type="hidden" name=(field) value=(value);
            button type="submit" aria-label=(label) { (text) }
        }
    }
}

/// A section that lists things in a table, under a heading with their count.
pub struct Listing<'a> {
    /// The heading's id, for `aria-labelledby`.
    pub id: &'a str,
    pub heading: String,
    pub note: &'a str,
    pub table_id: &'a str,
    pub columns: &'a [&'a str],
}

impl Listing<'_> {
    pub fn render(&self, rows: Markup) -> Markup {
        html! {
            section aria-labelledby=(self.id) {
                h2 id=(self.id) { (self.heading) }
                p { (self.note) }
                div.scroll { table id=(self.table_id) {
                    thead { tr { @for column in self.columns { th { (column) } } } }
                    tbody { (rows) }
                } }
            }
        }
    }
}

/// The page's one script.
fn script() -> Markup {
    html! { script src="/static/admin.js" {} }
}

pub fn login(nonce: &str, error: Option<&str>) -> String {
    let body = html! {
        form.login method="post" action="/login" {
            h2 { "Crew sign-in" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            input type="hidden" name="nonce" value=(nonce);
            label for="user" { "User name" }
            input id="user" name="user" autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input id="password" name="password" type="password" autocomplete="current-password" required;
            p { button type="submit" { "Sign in" } }
        }
    };
    page("Sign in", None, body)
}

pub fn not_found() -> String {
    page(
        "Not found",
        None,
        html! { p { "There is nothing at this address. " a href="/" { "Go to the dashboard" } "." } },
    )
}

pub fn method_not_allowed(allow: &str) -> String {
    page(
        "Not allowed here",
        None,
        html! {
            p { "This address takes " (allow) " requests only. " a href="/" { "Go to the dashboard" } "." }
        },
    )
}

pub fn forbidden(why: &str) -> String {
    refused("Not allowed", why)
}

/// A request the UI turned away, and why, with the way back.
pub fn refused(title: &str, why: &str) -> String {
    page(
        title,
        None,
        html! {
            p.error { (why) }
            p { a href="/" { "Back to the dashboard" } }
        },
    )
}
