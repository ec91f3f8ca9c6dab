//! The keys page: the keys a search finds, in the order chosen, each with its
//! title, KID, use in the month shown and dates (never a key); a form to find
//! and order them; and for admins an import form and a remove button per key.

use maud::{Markup, html};

use super::{Notice, confirmed_button, csrf_field, notice, page, script};
use crate::admin::keys::{KeyOrder, KeyView};
use crate::admin::session::Session;
use crate::ids::Month;
use crate::provisioning::{DeliveryCertificate, FairPlayCertificate};
use crate::store::{KeyInfo, KidUsage};

/// What the keys page shows.
pub struct Shown<'a> {
    pub listed: &'a [(KeyInfo, KidUsage)],
    pub total: usize,
    pub view: &'a KeyView,
    pub month: Month,
    pub delivery: &'a DeliveryCertificate,
    /// The FairPlay certificate, if credentials are imported.
    pub fairplay: Option<&'a FairPlayCertificate>,
}

fn row(session: &Session, key: &KeyInfo, used: &KidUsage, month: Month) -> Markup {
    let first = month.start().date();
    let last_day = month.end().date().previous_day().unwrap_or(first);
    let kid = key.kid.to_string();
    // Added to the minute (`YYYY-MM-DD HH:MM`); the full time (milliseconds) on hover.
    let stamp = key.added_at.to_string();
    let added = stamp[..16].replace('T', " ");
    html! {
        tr {
            td {
                @if key.label.is_empty() { span.none { "no title" } } @else { (key.label) }
            }
            td { code.kid { (kid) } }
            td { (key.period.as_deref().unwrap_or("")) }
            td {
                @if used.licenses == 0 { "0" } @else {
                    a href={ "/log?kid=" (kid) "&from=" (first) "&to=" (last_day) } { (used.licenses) }
                }
            }
            td { (used.last_day.as_deref().unwrap_or("never")) }
            td title=(stamp) { (added) }
            td {
                @if session.is_admin() {
                    (confirmed_button(
                        session,
                        "/keys/remove",
                        &format!("Remove key {kid}? Players can no longer get it."),
                        ("kid", &kid),
                        ("Remove", &format!("Remove key {kid}")),
                    ))
                }
            }
        }
    }
}

fn find_form(view: &KeyView, month: Month) -> Markup {
    html! {
        form.filters method="get" action="/keys" role="search" aria-label="Find content keys" {
            div {
                label for="q" { "Title or KID contains" }
                input type="search" id="q" name="q" size="30" maxlength="100" value=(view.search);
            }
            div {
                label for="sort" { "Order" }
                select id="sort" name="sort" {
                    @for (order, value, name) in KeyOrder::ALL {
                        option value=(value) selected[order == view.order] { (name) }
                    }
                }
            }
            div {
                label for="month" { "Licenses in the month" }
                input type="month" id="month" name="month" value=(month) min="1970-01" max="9998-12";
            }
            div { button type="submit" { "Show" } }
            @if !view.search.is_empty() {
                div { a href="/keys" { "Show all keys" } }
            }
        }
    }
}

fn import_form(session: &Session) -> Markup {
    html! {
        @if session.is_admin() {
            section aria-labelledby="imp-h" {
                h2 id="imp-h" { "Import keys" }
                form method="post" action="/keys/import" id="import" {
                    (csrf_field(session))
                    label for="keyfile" { "Key file (berth JSON, or DASH-IF CPIX: clear, or encrypted for this vessel's delivery certificate)" }
                    input type="file" id="keyfile" accept=".json,.xml,.cpix";
                    label for="content" { "or paste its contents" }
                    textarea id="content" name="content" rows="6" cols="80" required {}
                    p { button type="submit" { "Import" } " All keys of a file are imported, or none." }
                }
            }
        } @else {
            p { "Importing and removing keys needs an admin account." }
        }
    }
}

fn delivery(certificate: &DeliveryCertificate) -> Markup {
    let c = &certificate.info;
    html! {
        section aria-labelledby="delivery-h" {
            h2 id="delivery-h" { "Delivery certificate" }
            p { "Key providers encrypt CPIX documents for this certificate; only this box can read the keys in them." }
            dl.facts {
                dt { "Subject" } dd { (c.subject) }
                dt { "SHA-256 fingerprint" } dd { code { (c.sha256_fingerprint) } }
                dt { "Valid until (UTC)" } dd { (c.not_after) }
            }
            p { a href="/keys/delivery-cert.pem" download { "Download the certificate (PEM)" } }
        }
    }
}

fn fairplay(certificate: Option<&FairPlayCertificate>) -> Markup {
    html! {
        section aria-labelledby="fairplay-h" {
            h2 id="fairplay-h" { "FairPlay certificate" }
            @match certificate {
                None => p {
                    "No FairPlay credentials: Apple devices cannot get FairPlay licenses here. "
                    "Import them with " code { "berth fairplay credentials import" } "."
                },
                Some(fps) => {
                    p { "Apple devices fetch this certificate before they ask for a FairPlay license." }
                    dl.facts {
                        dt { "Subject" } dd { (fps.info.subject) }
                        dt { "SHA-256 fingerprint" } dd { code { (fps.info.sha256_fingerprint) } }
                        dt { "Key" } dd { "RSA-" (fps.info.rsa_bits.unwrap_or(0)) " (SPC version " (fps.spc_version) ")" }
                        dt { "Valid until (UTC)" } dd { (fps.info.not_after) }
                        dt { "Imported (UTC)" } dd { (fps.imported_at) }
                    }
                }
            }
        }
    }
}

pub fn keys(session: &Session, shown: &Shown<'_>, message: Option<&Notice>) -> String {
    let Shown {
        listed,
        total,
        view,
        month,
        delivery: certificate,
        fairplay: fps,
    } = *shown;
    let heading = if view.search.is_empty() {
        format!("Content keys ({total})")
    } else {
        format!(
            "Content keys: {} of {total} {} \u{201c}{}\u{201d}",
            listed.len(),
            if listed.len() == 1 { "matches" } else { "match" },
            view.search
        )
    };
    let body = html! {
        (notice(message))
        section aria-labelledby="keys-h" {
            h2 id="keys-h" { (heading) }
            (find_form(view, month))
            div.scroll { table {
                thead { tr {
                    th { "Title (label)" } th { "KID" } th { "Key period" } th { "Licenses in " (month) }
                    th { "Last licensed (UTC day)" } th { "Added (UTC)" } th {}
                } }
                tbody {
                    @for (key, used) in listed { (row(session, key, used, month)) }
                    @if listed.is_empty() {
                        tr { td colspan="7" {
                            (if total == 0 { "No content keys yet." } else { "No key's title or KID contains that." })
                        } }
                    }
                }
            } }
        }
        (import_form(session))
        (delivery(certificate))
        (fairplay(fps))
        (script())
    };
    page("Keys", Some(session), body)
}
