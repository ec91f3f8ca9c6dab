//! Server-rendered pages. Every value from the database or the request goes
//! through [`esc`]; the only script is `/static/admin.js`.

use serde_json::Value;

use super::session::Session;
use crate::ids::counted;

/// Escapes text for HTML element content and quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2733;background:#f4f6f8}
header{background:#14324a;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
header h1{font-size:1.1rem;margin:0;flex:1}
main{padding:1rem;max-width:1200px;margin:auto}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:.8rem}
.card{background:#fff;border-radius:6px;padding:.8rem 1rem;box-shadow:0 1px 2px #0002}
.card .n{font-size:1.6rem;font-weight:600;white-space:nowrap}
.ok{color:#146c2e}.bad{color:#a4161a;font-weight:600}
table{width:100%;border-collapse:collapse;background:#fff;margin-top:.5rem}
td,th{padding:.35rem .5rem;border-bottom:1px solid #dde3e8;text-align:left;font-size:.9rem}
code{font-size:.85rem;word-break:break-all}
code.kid,code.nowrap{white-space:nowrap;word-break:normal}
.kid-label{display:block;color:#4a5561;font-size:.85rem}
.none{color:#4a5561;font-style:italic}
form.inline{display:inline}
button,input,select{font:inherit;padding:.35rem .6rem}
label{display:block;margin:.6rem 0 .2rem}
:focus-visible{outline:3px solid #f0a202;outline-offset:2px}
.login{max-width:340px;margin:10vh auto;background:#fff;padding:1.5rem;border-radius:8px;box-shadow:0 1px 3px #0003}
.error{color:#a4161a}
svg{background:#fff;border-radius:6px;width:100%;height:auto}
header nav{display:flex;gap:.2rem .9rem;flex-wrap:wrap;align-items:center}
header a{color:#fff}header a[aria-current]{font-weight:700;text-decoration-thickness:3px}
.scroll{overflow-x:auto;max-width:100%}
.notice{padding:.5rem .8rem;border-radius:6px;background:#fff;border-left:5px solid currentColor}
.filters{display:flex;flex-wrap:wrap;gap:.3rem 1rem;align-items:end;background:#fff;padding:.6rem 1rem;border-radius:6px}
.filters label{margin:0}.filters div{display:flex;flex-direction:column}
.pager{display:flex;justify-content:space-between;margin:.6rem 0}
.secret{background:#fff7d6;border:2px solid #f0a202;padding:.8rem 1rem;border-radius:6px}
textarea{max-width:100%;box-sizing:border-box}
";

/// The pages in the navigation bar; admin-only ones carry `true`.
const NAV: [(&str, &str, bool); 6] = [
    ("/", "Dashboard", false),
    ("/keys", "Keys", false),
    ("/log", "License log", false),
    ("/reports", "Reports", false),
    ("/comkeys", "Communication keys", false),
    ("/users", "Crew users", true),
];

pub fn page(title: &str, session: Option<&Session>, body: &str) -> String {
    let nav = match session {
        Some(s) => {
            let links: String = NAV
                .iter()
                .filter(|(_, _, admin_only)| !admin_only || s.is_admin())
                .map(|(href, label, _)| {
                    let current = if *label == title {
                        " aria-current=\"page\""
                    } else {
                        ""
                    };
                    format!("<a href=\"{href}\"{current}>{label}</a>")
                })
                .collect();
            format!(
                "<nav aria-label=\"pages\">{links}</nav>\
                 <nav aria-label=\"account\" class=\"account\"><span>{} ({})</span> \
                 <form class=\"inline\" method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Sign out</button></form></nav>",
                esc(&s.user),
                esc(&s.role),
                esc(&s.csrf)
            )
        }
        None => String::new(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · berth</title><style>{STYLE}</style></head><body><header><h1>berth · {}</h1>{nav}</header><main>{body}</main></body></html>",
        esc(title),
        esc(title)
    )
}

/// The result of an action, above the page.
pub fn notice(notice: Option<&(bool, String)>) -> String {
    notice.map_or(String::new(), |(ok, text)| {
        format!(
            "<p class=\"notice {}\" role=\"status\">{}</p>",
            if *ok { "ok" } else { "error" },
            esc(text)
        )
    })
}

/// A hidden CSRF field for a form.
pub fn csrf_field(session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&session.csrf)
    )
}

pub fn login(nonce: &str, error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    });
    let body = format!(
        "<form class=\"login\" method=\"post\" action=\"/login\"><h2>Crew sign-in</h2>{error}\
         <input type=\"hidden\" name=\"nonce\" value=\"{}\">\
         <label for=\"user\">User name</label><input id=\"user\" name=\"user\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <p><button type=\"submit\">Sign in</button></p></form>",
        esc(nonce)
    );
    page("Sign in", None, &body)
}

pub fn not_found() -> String {
    page(
        "Not found",
        None,
        "<p>There is nothing at this address. <a href=\"/\">Go to the dashboard</a>.</p>",
    )
}

pub fn forbidden(why: &str) -> String {
    page(
        "Not allowed",
        None,
        &format!(
            "<p class=\"error\">{}</p><p><a href=\"/\">Back to the dashboard</a></p>",
            esc(why)
        ),
    )
}

fn num(v: &Value) -> String {
    v.as_u64().map_or_else(|| "–".to_owned(), |n| n.to_string())
}

/// The licenses-per-day chart: one bar per day of the month, inline SVG.
pub fn chart(by_day: &serde_json::Map<String, Value>) -> String {
    let max = by_day
        .values()
        .filter_map(Value::as_u64)
        .max()
        .unwrap_or(0)
        .max(1);
    let width = 24 * by_day.len().max(1);
    let mut bars = String::new();
    for (i, (day, n)) in by_day.iter().enumerate() {
        let n = n.as_u64().unwrap_or(0);
        let h = (n * 120 / max) as usize;
        bars.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"18\" height=\"{h}\" fill=\"#2a6f97\"><title>{}: {n}</title></rect>\
             <text x=\"{}\" y=\"148\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            i * 24 + 3,
            130 - h,
            esc(day),
            i * 24 + 12,
            esc(day.get(8..).unwrap_or(""))
        ));
    }
    format!(
        "<svg id=\"chart\" viewBox=\"0 0 {width} 152\" role=\"img\" aria-label=\"Licenses per day this month\">{bars}</svg>"
    )
}

/// Bytes for people: "51.1 GB", "820 MB".
fn size(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{} MB", bytes / 1_000_000)
    }
}

/// The dashboard's estimate of what the free disk holds.
fn room_for(days: u64) -> String {
    match days {
        0..=1 => "less than a day of licenses at this month's rate".to_owned(),
        2..=3650 => format!("room for about {days} days of licenses at this month's rate"),
        _ => "room for more than ten years of licenses at this month's rate".to_owned(),
    }
}

/// "2026-12-01T02:42:48.892Z" as ("02:42:48", "2026-12-01").
fn clock(now: &str) -> (String, String) {
    match (now.get(11..19), now.get(..10)) {
        (Some(time), Some(date)) => (esc(time), esc(date)),
        _ => (esc(now), String::new()),
    }
}

/// The dashboard's monthly-reports card: a finished month without a report
/// stands out; otherwise the last report, the next, and how uploads go.
pub fn reports_card(r: &Value) -> String {
    if r.is_null() {
        return "<div class=\"n\">?</div>".to_owned();
    }
    let due: Vec<&str> = r["due"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut lines = Vec::new();
    let head = if let Some(first) = due.first() {
        let what = if due.len() == 1 {
            "has ended and has no report yet".to_owned()
        } else {
            format!("{} finished months have no report yet, from this one", due.len())
        };
        lines.push(format!("<span class=\"bad\">{what}</span>"));
        lines.push(if r["auto_export"] == true {
            "berth exports finished months by itself; if this stays, see <a href=\"/reports\">Reports</a> and the service log".to_owned()
        } else {
            "automatic export is off: <a href=\"/reports\">export it on the Reports page</a>".to_owned()
        });
        format!("<div class=\"n bad\">{}</div>", esc(first))
    } else {
        let last = r["last"]["month"]
            .as_str()
            .map_or_else(|| "none yet".to_owned(), esc);
        if let Some(next) = r["next"].as_str() {
            lines.push(format!("next: {} when it ends", esc(next)));
        }
        format!("<div class=\"n\">{last}</div>")
    };
    let not_uploaded = r["not_uploaded"].as_u64().unwrap_or(0);
    if r["upload_configured"] != true {
        if r["last"].is_object() {
            lines.push("no upload address: download them from <a href=\"/reports\">Reports</a>".to_owned());
        }
    } else if let Some(error) = r["upload_error"].as_str().filter(|_| not_uploaded > 0) {
        lines.push(format!(
            "<span class=\"bad\">{} not uploaded; the last try failed: {}</span>",
            counted(not_uploaded, "report"),
            esc(error)
        ));
    } else if not_uploaded > 0 {
        lines.push(format!("{} waiting to upload", counted(not_uploaded, "report")));
    } else if r["last"].is_object() {
        lines.push("all uploaded".to_owned());
    }
    format!("{head}<div>{}</div>", lines.join("; "))
}

pub fn dashboard(session: &Session, d: &Value) -> String {
    let health = &d["health"];
    let healthy = health["status"] == "ok";
    let problems: Vec<String> = health["problems"].as_array().map_or_else(Vec::new, |p| {
        p.iter().filter_map(|x| x.as_str()).map(esc).collect()
    });
    let counts = &d["counts"];
    let inst = &d["installation"];
    let free = d["disk_free_bytes"].as_u64();
    let days_left = d["disk_days_left"].as_u64();
    let disk_low = free.is_some_and(|b| b < 1_000_000_000) || days_left.is_some_and(|n| n < 30);
    let disk = format!(
        "<div class=\"n{}\">{}</div><div>{}</div>",
        if disk_low { " bad" } else { "" },
        free.map_or("?".to_owned(), size),
        days_left.map_or(String::new(), room_for)
    );
    let month = esc(d["month"].as_str().unwrap_or(""));
    let reports = reports_card(&d["reports"]);
    let (clock_time, clock_date) = clock(health["clock"]["now"].as_str().unwrap_or(""));
    let mut last = String::new();
    for r in d["last_licenses"].as_array().into_iter().flatten() {
        last.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>delivered</td></tr>",
            num(&r["seq"]),
            esc(r["issued_at"].as_str().unwrap_or("")),
            esc(r["key_system"].as_str().unwrap_or("")),
            esc(r["kids"].as_str().unwrap_or("")),
            esc(r["titles"].as_str().unwrap_or(""))
        ));
    }
    let mut denials = String::new();
    for denial in d["denials"].as_array().into_iter().flatten() {
        denials.push_str(&format!(
            "<tr><td><code class=\"nowrap\">{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(denial["code"].as_str().unwrap_or("")),
            num(&denial["count"]),
            esc(denial["meaning"].as_str().unwrap_or(""))
        ));
    }
    if denials.is_empty() {
        denials.push_str("<tr><td colspan=\"3\">none since the service started</td></tr>");
    }
    let empty = serde_json::Map::new();
    let body = format!(
        "<section aria-labelledby=\"health\"><h2 id=\"health\">Health</h2><div class=\"cards\">\
         <div class=\"card\"><div>Service</div><div class=\"n {}\" id=\"status\">{}</div><div id=\"problems\">{}</div></div>\
         <div class=\"card\"><div>Licenses in {month}</div><div class=\"n\" id=\"licenses\" data-month=\"{month}\">{}</div></div>\
         <div class=\"card\"><div>Active users</div><div class=\"n\" id=\"active-users\">{}</div></div>\
         <div class=\"card\"><div>Licenses without user</div><div class=\"n\" id=\"without-user\">{}</div></div>\
         <div class=\"card\"><div>Repeat key fetches</div><div class=\"n\" id=\"repeat-fetches\">{}</div><div>delivered, not counted</div></div>\
         <div class=\"card\"><div>Disk free</div>{disk}</div>\
         <div class=\"card\" id=\"reports-card\"><div>Monthly report</div><div id=\"reports-now\">{reports}</div></div>\
         <div class=\"card\"><div>Clock (UTC)</div><div class=\"n\" id=\"clock\">{clock_time}</div><div id=\"clock-date\">{clock_date}</div><div>{}</div></div></div></section>\
         <section aria-labelledby=\"chart-h\"><h2 id=\"chart-h\">Licenses per day</h2><div id=\"chart-box\">{}</div>\
         <p><a href=\"/keys?sort=watched\">Which titles are licensed most this month</a> \
         (<a href=\"/keys?sort=watched&amp;month={}\">last month</a>)</p></section>\
         <section aria-labelledby=\"id-h\"><h2 id=\"id-h\">Installation</h2><div class=\"scroll\"><table><tr><th scope=\"row\">Id</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Vessel</th><td>{} ({})</td></tr><tr><th scope=\"row\">Signing key SHA-256</th><td><code>{}</code></td></tr>{}</table></div></section>\
         <section aria-labelledby=\"last-h\"><h2 id=\"last-h\">Last licenses</h2><div class=\"scroll\"><table><thead><tr><th>#</th><th>Time (UTC)</th><th>Key system</th><th>KIDs</th><th>Title</th><th>Outcome</th></tr></thead><tbody id=\"last\">{last}</tbody></table></div></section>\
         <section aria-labelledby=\"den-h\"><h2 id=\"den-h\">Refused requests since the service started</h2><div class=\"scroll\"><table><thead><tr><th>Code</th><th>Count</th><th>What it usually means</th></tr></thead><tbody id=\"denials\">{denials}</tbody></table></div></section>\
         <script src=\"/static/admin.js\"></script>",
        if healthy { "ok" } else { "bad" },
        if healthy { "OK" } else { "PROBLEM" },
        problems.join("; "),
        num(&counts["licenses"]),
        num(&counts["active_users"]),
        num(&counts["licenses_without_user"]),
        num(&counts["repeat_fetches"]),
        if health["clock"]["behind_log"] == true {
            "<span class=\"bad\">behind the newest license: check the clock</span>"
        } else {
            ""
        },
        chart(counts["by_day"].as_object().unwrap_or(&empty)),
        d["month"]
            .as_str()
            .and_then(|m| m.parse::<crate::ids::Month>().ok())
            .map_or(String::new(), |m| m.previous().to_string()),
        esc(inst["id"].as_str().unwrap_or("")),
        esc(inst["vessel_name"].as_str().unwrap_or("")),
        esc(inst["vessel_type"].as_str().unwrap_or("")),
        esc(inst["signing_key_sha256"].as_str().unwrap_or("")),
        certificate_rows(&d["certificates"]) + &origins_row(d["any_origin"] == true),
    );
    page("Dashboard", Some(session), &body)
}

/// A warning while any web page may call the license API.
fn origins_row(any_origin: bool) -> String {
    if !any_origin {
        return String::new();
    }
    "<tr><th scope=\"row\">Player pages</th><td class=\"bad\" id=\"any-origin\">any web page may fetch keys: \
     set <code>[license] allowed_origins</code> to the portal's origin and restart berth</td></tr>"
        .to_owned()
}

/// The listeners' TLS certificates and when they expire, in red within 30
/// days: an expired one makes browsers refuse the listener.
fn certificate_rows(certificates: &Value) -> String {
    let mut rows = String::new();
    for c in certificates.as_array().into_iter().flatten() {
        let date = c["expires"].as_str().unwrap_or("").get(..10).unwrap_or("");
        let text = if c["expired"] == true {
            format!("expired on {date}: browsers refuse it; install a new one and restart berth")
        } else {
            let when = match c["days_left"].as_i64().unwrap_or(0) {
                0 => "today".to_owned(),
                1 => "tomorrow".to_owned(),
                n => format!("in {n} days"),
            };
            let renew = if c["soon"] == true {
                "; install a new one before then and restart berth"
            } else {
                ""
            };
            format!("expires {date} ({when}){renew}")
        };
        rows.push_str(&format!(
            "<tr><th scope=\"row\">{} certificate</th><td{}>{}</td></tr>",
            esc(c["listener"].as_str().unwrap_or("")),
            if c["soon"] == true { " class=\"bad\"" } else { "" },
            esc(&text)
        ));
    }
    rows
}

/// The keys page: the keys `view` finds (of `total`), in its order, each with its
/// title, KID, use in the month shown and dates (never a key); a form to find and order
/// them; and for admins an import form and a remove button per key.
pub fn keys(
    session: &Session,
    listed: &[(crate::store::KeyInfo, crate::store::KidUsage)],
    total: usize,
    view: &super::keys::KeyView,
    month: crate::ids::Month,
    message: Option<&(bool, String)>,
) -> String {
    let message = notice(message);
    let csrf = esc(&session.csrf);
    let mut rows = String::new();
    let first = month.start().date();
    let last_day = month.end().date().previous_day().unwrap_or(first);
    for (k, used) in listed {
        let licenses = match used.licenses {
            0 => "0".to_owned(),
            n => format!(
                "<a href=\"/log?kid={}&amp;from={first}&amp;to={last_day}\">{n}</a>",
                k.kid
            ),
        };
        let last = used.last_day.as_deref().map_or("never".to_owned(), esc);
        let remove = if session.is_admin() {
            format!(
                "<form class=\"inline\" method=\"post\" action=\"/keys/remove\" data-confirm=\"Remove key {kid}? Players can no longer get it.\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"kid\" value=\"{kid}\">\
                 <button type=\"submit\" aria-label=\"Remove key {kid}\">Remove</button></form>",
                kid = esc(&k.kid.to_string())
            )
        } else {
            String::new()
        };
        // Added to the minute; the full time (milliseconds) on hover.
        let added = k.added_at.get(..16).unwrap_or(&k.added_at).replace('T', " ");
        let title = if k.label.is_empty() {
            "<span class=\"none\">no title</span>".to_owned()
        } else {
            esc(&k.label)
        };
        rows.push_str(&format!(
            "<tr><td>{title}</td><td><code class=\"kid\">{}</code></td><td>{licenses}</td><td>{last}</td><td title=\"{}\">{}</td><td>{remove}</td></tr>",
            esc(&k.kid.to_string()),
            esc(&k.added_at),
            esc(&added),
        ));
    }
    if rows.is_empty() {
        let none = if total == 0 {
            "No content keys yet."
        } else {
            "No key's title or KID contains that."
        };
        rows.push_str(&format!("<tr><td colspan=\"6\">{none}</td></tr>"));
    }
    let orders: String = super::keys::KeyOrder::ALL
        .iter()
        .map(|(order, value, name)| {
            let selected = if *order == view.order { " selected" } else { "" };
            format!("<option value=\"{value}\"{selected}>{name}</option>")
        })
        .collect();
    let (heading, show_all) = if view.search.is_empty() {
        (format!("Content keys ({total})"), String::new())
    } else {
        (
            format!(
                "Content keys: {} of {total} {} \u{201c}{}\u{201d}",
                listed.len(),
                if listed.len() == 1 { "matches" } else { "match" },
                esc(&view.search)
            ),
            "<div><a href=\"/keys\">Show all keys</a></div>".to_owned(),
        )
    };
    let find = format!(
        "<form class=\"filters\" method=\"get\" action=\"/keys\" role=\"search\" aria-label=\"Find content keys\">\
         <div><label for=\"q\">Title or KID contains</label><input type=\"search\" id=\"q\" name=\"q\" size=\"30\" maxlength=\"100\" value=\"{}\"></div>\
         <div><label for=\"sort\">Order</label><select id=\"sort\" name=\"sort\">{orders}</select></div>\
         <div><label for=\"month\">Licenses in the month</label><input type=\"month\" id=\"month\" name=\"month\" value=\"{month}\" min=\"1970-01\" max=\"9998-12\"></div>\
         <div><button type=\"submit\">Show</button></div>{show_all}</form>",
        esc(&view.search)
    );
    let import = if session.is_admin() {
        format!(
            "<section aria-labelledby=\"imp-h\"><h2 id=\"imp-h\">Import keys</h2>\
             <form method=\"post\" action=\"/keys/import\" id=\"import\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"keyfile\">Key file (berth JSON or DASH-IF CPIX with clear keys)</label><input type=\"file\" id=\"keyfile\" accept=\".json,.xml,.cpix\">\
             <label for=\"content\">or paste its contents</label><textarea id=\"content\" name=\"content\" rows=\"6\" cols=\"80\" required></textarea>\
             <p><button type=\"submit\">Import</button> All keys of a file are imported, or none.</p></form></section>"
        )
    } else {
        "<p>Importing and removing keys needs an admin account.</p>".to_owned()
    };
    let body = format!(
        "{message}<section aria-labelledby=\"keys-h\"><h2 id=\"keys-h\">{heading}</h2>{find}\
         <div class=\"scroll\"><table><thead><tr><th>Title (label)</th><th>KID</th><th>Licenses in {month}</th><th>Last licensed (UTC day)</th><th>Added (UTC)</th><th></th></tr></thead><tbody>{rows}</tbody></table></div></section>{import}\
         <script src=\"/static/admin.js\"></script>"
    );
    page("Keys", Some(session), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            esc("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn the_dashboard_says_sizes_days_and_times_for_people() {
        assert_eq!(size(51_080_000_000), "51.1 GB");
        assert_eq!(size(820_400_000), "820 MB");
        assert_eq!(room_for(0), "less than a day of licenses at this month's rate");
        assert_eq!(
            room_for(45),
            "room for about 45 days of licenses at this month's rate"
        );
        assert_eq!(
            room_for(40_000),
            "room for more than ten years of licenses at this month's rate"
        );
        assert_eq!(
            clock("2026-12-01T02:42:48.892Z"),
            ("02:42:48".to_owned(), "2026-12-01".to_owned())
        );
        assert_eq!(clock("<b>"), ("&lt;b&gt;".to_owned(), String::new()));
    }

    #[test]
    fn the_reports_card_says_what_is_late_and_how_uploads_go() {
        let card = |r: Value| reports_card(&r);
        let due = serde_json::json!({
            "due": ["2026-10"], "next": "2026-10", "auto_export": true, "last": null,
            "upload_configured": false, "not_uploaded": 0, "upload_error": null,
        });
        assert_eq!(
            card(due.clone()),
            "<div class=\"n bad\">2026-10</div><div><span class=\"bad\">has ended and has no report yet</span>; \
             berth exports finished months by itself; if this stays, see <a href=\"/reports\">Reports</a> and the service log</div>"
        );
        let mut off = due.clone();
        off["auto_export"] = false.into();
        off["due"] = serde_json::json!(["2026-10", "2026-11"]);
        assert!(card(off).starts_with(
            "<div class=\"n bad\">2026-10</div><div><span class=\"bad\">2 finished months have no report yet, from this one</span>; \
             automatic export is off: <a href=\"/reports\">export it on the Reports page</a>"
        ));
        let done = serde_json::json!({
            "due": [], "next": "2026-12", "auto_export": true,
            "last": {"month": "2026-11", "sequence": 2},
            "upload_configured": true, "not_uploaded": 0, "upload_error": null,
        });
        assert_eq!(
            card(done.clone()),
            "<div class=\"n\">2026-11</div><div>next: 2026-12 when it ends; all uploaded</div>"
        );
        let mut waiting = done.clone();
        waiting["not_uploaded"] = 1.into();
        assert!(card(waiting.clone()).ends_with("; 1 report waiting to upload</div>"));
        waiting["not_uploaded"] = 2.into();
        waiting["upload_error"] = "<refused> by the receiver".into();
        assert!(card(waiting).ends_with(
            "<span class=\"bad\">2 reports not uploaded; the last try failed: &lt;refused&gt; by the receiver</span></div>"
        ));
        let mut none = done;
        none["last"] = Value::Null;
        none["upload_configured"] = false.into();
        assert_eq!(
            card(none),
            "<div class=\"n\">none yet</div><div>next: 2026-12 when it ends</div>"
        );
        assert_eq!(card(Value::Null), "<div class=\"n\">?</div>");
    }
}
