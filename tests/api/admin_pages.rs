//! The crew admin UI's pages beyond sign-in: the license log, reports,
//! communication keys, crew users, expiring sessions and TLS, over real HTTP.

use std::time::Duration;

use awc::http::StatusCode;
use serde_json::json;
use time::macros::datetime;

use crate::helpers::*;

/// Delivers one Clear Key license for `kid` to `user`; panics unless 200.
async fn deliver(app: &TestApp, kid: &str, user: &str) {
    let token = app.token(&[kid], json!({ "session": { "user_id": user } }));
    let (s, b, _) = post_license(app, Some(&token), &clearkey_body(&[kid], "temporary")).await;
    assert_eq!(s, 200, "{b}");
}

/// Delivers one HLS key for `kid`.
async fn deliver_hls(app: &TestApp, kid: &str) {
    let token = app.token(&[kid], json!({}));
    let res = crew_client()
        .get(app.url(&format!("/hls/key/{kid}?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// The `<tbody>` of the license log table.
fn log_rows(body: &str) -> usize {
    between(body, "<table id=\"log\">", "</table>")
        .matches("<tr><td>")
        .count()
}

/// A crew app with four licenses over two days: A and B on 30 October,
/// A by Clear Key and A by HLS on 2 November; and a signed-in crew cookie.
async fn four_licenses_over_two_days() -> (TestApp, String) {
    let app = spawn_admin_app().await;
    app.clock.set(datetime!(2026-10-30 12:00 UTC));
    deliver(&app, KID_A, "u1").await;
    deliver(&app, KID_B, "u2").await;
    app.clock.set(datetime!(2026-11-02 08:00 UTC));
    deliver(&app, KID_A, "u1").await;
    deliver_hls(&app, KID_A).await;
    let cookie = session(&app).await;
    (app, cookie)
}

#[actix_web::test]
async fn the_license_log_lists_newest_first_and_filters_by_kid() {
    let (app, cookie) = four_licenses_over_two_days().await;
    let (s, body) = get(&app, &cookie, "/log").await;
    assert_eq!(s, 200);
    assert_eq!(log_rows(&body), 4);
    assert!(body.contains("aria-current=\"page\">License log"));
    assert!(body.find("2026-11-02T08").unwrap() < body.find("2026-10-30T12").unwrap());

    let (_, body) = get(&app, &cookie, &format!("/log?kid={KID_B}")).await;
    assert_eq!(log_rows(&body), 1);
    assert!(
        body.contains(&format!(
            "<td><code>{KID_B}</code> <span class=\"kid-label\">B</span></td>"
        )),
        "a KID shows with its label"
    );
    assert!(
        body.contains(&format!("<option value=\"{KID_A}\">A</option>")),
        "the KID field suggests the known KIDs by label"
    );
    assert!(
        body.contains("1 license matches."),
        "counted from the per-KID aggregates"
    );
    let (_, body) = get(&app, &cookie, "/log?kid=00000000-0000-4000-8000-000000000000").await;
    assert!(body.contains("0 licenses match.") && body.contains("No licenses match."));
    let (_, body) = get(
        &app,
        &cookie,
        &format!("/log?from=2026-11-01&kid={}", KID_A.replace('-', "")),
    )
    .await;
    assert_eq!(log_rows(&body), 2, "a KID as 32 hex digits works too");
}

#[actix_web::test]
async fn the_license_log_filters_by_day_and_key_system() {
    let (app, cookie) = four_licenses_over_two_days().await;
    let (_, body) = get(&app, &cookie, &format!("/log?kid={KID_A}&key_system=clearkey")).await;
    assert_eq!(log_rows(&body), 2);
    assert!(body.contains("2 licenses match."));
    let (_, body) = get(&app, &cookie, &format!("/log?kid={KID_A}&to=2026-10-31")).await;
    assert!(body.contains("1 license matches."));
    let (_, body) = get(&app, &cookie, "/log?key_system=hls").await;
    assert_eq!(log_rows(&body), 1);
    assert!(body.contains("1 license matches."));

    let (_, body) = get(&app, &cookie, "/log?from=2026-10-30&to=2026-10-31&key_system=any").await;
    assert_eq!(log_rows(&body), 2);
    assert!(body.contains("2 licenses match."));
    assert!(
        body.contains("value=\"2026-10-30\""),
        "the filter stays in the form"
    );
    assert!(body.contains("/log.csv?from=2026-10-30&amp;to=2026-10-31"));
    let (_, body) = get(&app, &cookie, "/log?to=2026-10-29").await;
    assert!(body.contains("No licenses match."));
}

/// A label is the key file's text: shown, never run.
#[actix_web::test]
async fn the_license_log_shows_a_hostile_label_as_text() {
    let app = spawn_admin_app().await;
    let hostile = "33333333-4444-4555-8666-777777777777";
    let mut db = app.db();
    db.import_keys(
        &[berth::ids::NewKey {
            kid: hostile.parse().unwrap(),
            key: berth::ids::ContentKey([9; 16]),
            label: "<script>alert(1)</script>\"><b>".into(),
            period: None,
        }],
        app.clock_now(),
    )
    .unwrap();
    drop(db);
    deliver(&app, hostile, "u3").await;
    let cookie = session(&app).await;
    let (_, body) = get(&app, &cookie, "/log").await;
    assert!(
        !body.contains("<script>alert") && !body.contains("\"><b>"),
        "{body}"
    );
    assert_eq!(
        body.matches("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;b&gt;")
            .count(),
        2,
        "in the table and in the suggestions"
    );
}

#[actix_web::test]
async fn the_license_log_refuses_bad_filters_clearly() {
    let app = spawn_admin_app().await;
    let cookie = session(&app).await;
    for (query, message) in [
        ("from=yesterday", "From is not a date"),
        ("to=2026-02-30", "To is not a date"),
        ("from=2026-11-02&to=2026-11-01", "From is after To"),
        ("kid=%3Cscript%3Ealert(1)%3C/script%3E", "KID is not a UUID"),
        ("key_system=widevine", "Key system is clearkey, hls or fairplay"),
        ("dir=older", "page address is not valid"),
        (
            "dir=older&seq=1&at=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "page address is not valid",
        ),
        ("dir=sideways&seq=1&at=x", "page address is not valid"),
        ("from=%FF%FE", "From is not a date"),
    ] {
        let (s, body) = get(&app, &cookie, &format!("/log?{query}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}");
        assert!(body.contains(message), "{query}: {body}");
        assert!(!body.contains("<script>alert"), "{query}");
        let (s, _) = get(&app, &cookie, &format!("/log.csv?{query}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}");
    }
    // The first and last days there are: an answer, not a crash.
    deliver(&app, KID_A, "u1").await;
    for query in [
        "from=0000-01-01&to=9999-12-31".to_owned(),
        format!("from=0000-01-01&to=9999-12-31&kid={KID_A}&key_system=clearkey"),
        "to=0000-01-01".to_owned(),
        "from=9999-12-31".to_owned(),
        "dir=older&seq=9223372036854775807&at=9999-12-31T23:59:59.999Z".to_owned(),
        "dir=newer&seq=-9223372036854775808&at=0000-01-01T00:00:00.000Z".to_owned(),
    ] {
        let (s, body) = get(&app, &cookie, &format!("/log?{query}")).await;
        assert_eq!(s, 200, "{query}: {body}");
        let (s, _) = get(&app, &cookie, &format!("/log.csv?{query}")).await;
        assert_eq!(s, 200, "{query}");
    }
    let (_, body) = get(&app, &cookie, "/log?from=0000-01-01&to=9999-12-31").await;
    assert!(body.contains("1 license matches."), "{body}");

    // Without a session: to the sign-in page, for the CSV too.
    let (s, _) = get(&app, "", "/log").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, _) = get(&app, "", "/log.csv").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
}

/// `/log.csv?{query}`: its `Content-Disposition` and its body; panics unless 200.
async fn log_csv(app: &TestApp, cookie: &str, query: &str) -> (String, String) {
    let mut res = crew_client()
        .get(app.admin_url(&format!("/log.csv?{query}")))
        .insert_header(("Cookie", cookie.to_owned()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{query}");
    let disposition = res
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = String::from_utf8(res.body().limit(1 << 20).await.unwrap().to_vec()).unwrap();
    (disposition, body)
}

/// The target of the pager link with this `rel`.
fn link(body: &str, rel: &str) -> String {
    let before = body.split(&format!("\" rel=\"{rel}\"")).next().unwrap();
    before.rsplit("<a href=\"").next().unwrap().replace("&amp;", "&")
}

#[actix_web::test]
async fn the_license_log_pages_by_keyset_and_exports_csv() {
    let app = spawn_admin_app().await;
    for i in 0..57 {
        deliver(&app, if i % 3 == 0 { KID_B } else { KID_A }, &format!("u{i}")).await;
    }
    let cookie = session(&app).await;
    let (_, first) = get(&app, &cookie, "/log").await;
    assert_eq!(log_rows(&first), 50);
    assert!(
        !first.contains("rel=\"prev\""),
        "the first page has no newer page"
    );
    let older = link(&first, "next");
    let (s, second) = get(&app, &cookie, &older).await;
    assert_eq!(s, 200, "{older}");
    assert_eq!(log_rows(&second), 7);
    assert!(
        !second.contains("rel=\"next\""),
        "the last page has no older page"
    );
    assert!(second.contains("<td>1</td>"), "row 1 is on the last page");
    let newer = link(&second, "prev");
    let (_, back) = get(&app, &cookie, &newer).await;
    assert_eq!(log_rows(&back), 50);
    assert!(back.contains("<td>57</td>") && back.contains("<td>8</td>"));

    // The CSV holds exactly the filtered rows, in the report's columns.
    let (disposition, csv) = log_csv(&app, &cookie, &format!("kid={KID_B}")).await;
    assert!(disposition.starts_with("attachment; filename=\"berth-log-"));
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "seq,issued_at,key_system,kids,license_type,user_hash,token_id,com_key_id,prev_hash,row_hash"
    );
    assert_eq!(lines.len(), 1 + 19);
    assert!(lines[1..].iter().all(|l| l.contains(KID_B)));
    assert!(lines[1].starts_with("1,"), "oldest first");
    // The CSV's rows are the log's rows, hashes and all.
    let db = app.db();
    let stored = db.last_licenses(57).unwrap();
    let row_1 = stored.iter().find(|r| r.seq == 1).unwrap();
    assert!(lines[1].ends_with(&format!("{},{}", row_1.prev_hash, row_1.row_hash)));
}

/// The keys page's rows as (title, KID) in the order shown.
fn key_rows(body: &str) -> Vec<(String, String)> {
    between(body, "<tbody>", "</tbody>")
        .split("<tr><td>")
        .skip(1)
        .filter(|row| row.contains("<code class=\"kid\">"))
        .map(|row| {
            let title = row.split("</td>").next().unwrap().to_owned();
            (title, between(row, "<code class=\"kid\">", "</code>").to_owned())
        })
        .collect()
}

/// Four keys, two of them added in October (\"coral Reef\" and one without
/// a title); KID_A licensed in October only, in November KID_B three times
/// and coral once. The app, a crew session, and the two KIDs.
async fn four_titles() -> (TestApp, String, &'static str, &'static str) {
    let app = spawn_admin_app().await;
    let (coral, untitled) = (
        "11111111-2222-4333-8444-555555555555",
        "22222222-3333-4444-8555-666666666666",
    );
    app.clock.set(datetime!(2026-10-20 12:00 UTC));
    let mut db = app.db();
    let new_key = |kid: &str, label: &str| berth::ids::NewKey {
        kid: kid.parse().unwrap(),
        key: berth::ids::ContentKey([7; 16]),
        label: label.into(),
        period: None,
    };
    db.import_keys(&[new_key(coral, "coral Reef")], app.clock_now())
        .unwrap();
    app.clock.set(datetime!(2026-10-21 12:00 UTC));
    db.import_keys(&[new_key(untitled, "")], app.clock_now()).unwrap();
    drop(db);
    // KID_A was watched last month only; this month KID_B most, then coral.
    deliver(&app, KID_A, "u1").await;
    app.clock.set(datetime!(2026-11-02 12:00 UTC));
    for user in ["u1", "u2", "u3"] {
        deliver(&app, KID_B, user).await;
    }
    deliver(&app, coral, "u4").await;

    let cookie = session(&app).await;
    (app, cookie, coral, untitled)
}

fn order(body: &str) -> Vec<String> {
    key_rows(body).into_iter().map(|(_, kid)| kid).collect()
}

/// By title, by this or another month's licenses, by last licensed, by
/// added; each with its links to the log.
#[actix_web::test]
async fn the_keys_page_lists_keys_in_the_order_chosen() {
    let (app, cookie, coral, untitled) = four_titles().await;
    // By title, A to Z and ignoring case; a key without a title comes last.
    let (s, body) = get(&app, &cookie, "/keys").await;
    assert_eq!(s, 200);
    assert_eq!(order(&body), [KID_A, KID_B, coral, untitled]);
    assert_eq!(
        key_rows(&body)[3],
        (
            "<span class=\"none\">no title</span>".to_owned(),
            untitled.to_owned()
        ),
        "a key without a title says so instead of an empty cell"
    );
    assert!(body.contains("Content keys (4)"));
    assert!(body.contains("<option value=\"title\" selected>"));
    // Most licensed this month first (the dashboard links here).
    let (_, body) = get(&app, &cookie, "/keys?sort=watched").await;
    assert_eq!(order(&body), [KID_B, coral, KID_A, untitled]);
    assert!(body.contains("<option value=\"watched\" selected>"));
    let (_, dashboard) = get(&app, &cookie, "/").await;
    assert!(dashboard.contains("<a href=\"/keys?sort=watched\">"));
    assert!(dashboard.contains("<a href=\"/keys?sort=watched&amp;month=2026-10\">last month</a>"));
    assert!(body.contains("<th>Licenses in 2026-11</th>") && body.contains("value=\"2026-11\""));
    assert!(body.contains(&format!(
        "<a href=\"/log?kid={KID_B}&amp;from=2026-11-01&amp;to=2026-11-30\">3</a>"
    )));
    // Another month: its counts, its order, and links to its days in the log.
    let (s, body) = get(&app, &cookie, "/keys?sort=watched&month=2026-10").await;
    assert_eq!(s, 200);
    assert_eq!(order(&body), [KID_A, KID_B, coral, untitled]);
    assert!(body.contains("<th>Licenses in 2026-10</th>") && body.contains("value=\"2026-10\""));
    assert!(body.contains(&format!(
        "<a href=\"/log?kid={KID_A}&amp;from=2026-10-01&amp;to=2026-10-31\">1</a>"
    )));
    let (_, body) = get(&app, &cookie, "/keys?sort=watched&month=2026-09").await;
    assert!(!body.contains("/log?kid="), "nothing licensed in September");
    // Most recently licensed first (a tie by title), never licensed last.
    let (_, body) = get(&app, &cookie, "/keys?sort=last").await;
    assert_eq!(order(&body), [KID_B, coral, KID_A, untitled]);
    assert!(body.contains("<td>2026-10-21</td>") && body.contains("<td>never</td>"));
    // Most recently added first.
    let (_, body) = get(&app, &cookie, "/keys?sort=added").await;
    assert_eq!(
        order(&body),
        [KID_A, KID_B, untitled, coral],
        "A and B came with the installation"
    );
    assert!(body.contains("<td title=\"2026-10-21T12:00:00.000Z\">2026-10-21 12:00</td>"));
}

/// Found by a piece of the title or the KID, any case, the order kept;
/// nothing found says so; hostile text is shown, never run.
#[actix_web::test]
async fn the_keys_page_finds_a_title_or_kid() {
    let (app, cookie, coral, _) = four_titles().await;
    // Found by a piece of the title, any case, with the order kept.
    let (_, body) = get(&app, &cookie, "/keys?q=+REEF+&sort=watched").await;
    assert_eq!(key_rows(&body), [("coral Reef".to_owned(), coral.to_owned())]);
    assert!(body.contains("Content keys: 1 of 4 matches \u{201c}REEF\u{201d}"));
    assert!(body.contains("value=\"REEF\"") && body.contains("<a href=\"/keys\">Show all keys</a>"));
    // Or by a piece of the KID, with or without its dashes.
    let (_, body) = get(
        &app,
        &cookie,
        &format!("/keys?q={}", &KID_B.replace('-', "")[4..20]),
    )
    .await;
    assert_eq!(order(&body), [KID_B]);
    let (_, body) = get(&app, &cookie, "/keys?q=4802-932E").await;
    assert_eq!(order(&body), [KID_A]);
    // Nothing found says so; hostile text is shown, never run.
    let (s, body) = get(&app, &cookie, "/keys?q=%3Cscript%3Ealert(1)%3C/script%3E%22%3E").await;
    assert_eq!(s, 200);
    assert!(key_rows(&body).is_empty() && body.contains("No key's title or KID contains that."));
    assert!(
        !body.contains("<script>alert") && body.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;")
    );
}

/// A search too long, an order or a month that does not exist: 400, the
/// reason, and the whole list.
#[actix_web::test]
async fn the_keys_page_refuses_bad_addresses_and_shows_the_whole_list() {
    let (app, cookie, _, _) = four_titles().await;
    // A search too long or an order that does not exist: 400, the reason, and the whole list.
    let (s, body) = get(&app, &cookie, &format!("/keys?q={}", "x".repeat(101))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("The search is longer than 100 characters."));
    assert_eq!(order(&body).len(), 4);
    let (s, body) = get(&app, &cookie, "/keys?sort=%00%ff").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("The order is title, watched, last or added."));
    for month in ["2026-13", "9999-12", "%3Cb%3E", "2026-1", &"9".repeat(5000)] {
        let (s, body) = get(&app, &cookie, &format!("/keys?month={month}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{month}");
        assert!(body.contains("The month is written YYYY-MM, for example 2026-11."));
        assert!(!body.contains("<b>"));
        assert_eq!(order(&body).len(), 4);
    }
    let (s, _) = get(&app, &cookie, &format!("/keys?q={}", "x".repeat(100))).await;
    assert_eq!(s, 200, "100 characters are fine");
}

/// KID_A on three days, KID_B only on the first and last, and a day of
/// KID_B alone between them, which the KID_A pages must pass over; then one
/// license for both KIDs. The app and a crew session.
async fn four_days_of_two_kids() -> (TestApp, String) {
    let app = spawn_admin_app().await;
    // KID_A on three days, KID_B only on the first and last, and a day of
    // KID_B alone between them, which the KID_A pages must pass over.
    let days = [
        (datetime!(2026-10-30 12:00 UTC), 30, 5),
        (datetime!(2026-10-31 12:00 UTC), 0, 7),
        (datetime!(2026-11-01 12:00 UTC), 40, 0),
        (datetime!(2026-11-02 12:00 UTC), 30, 20),
    ];
    for (at, a, b) in days {
        app.clock.set(at);
        for i in 0..a {
            deliver(&app, KID_A, &format!("a{i}")).await;
        }
        for i in 0..b {
            deliver(&app, KID_B, &format!("b{i}")).await;
        }
    }
    // One license for both KIDs counts under each.
    let token = app.token(&[KID_A, KID_B], json!({}));
    let (s, b, _) = post_license(&app, Some(&token), &clearkey_body(&[KID_A, KID_B], "temporary")).await;
    assert_eq!(s, 200, "{b}");
    let cookie = session(&app).await;

    (app, cookie)
}

/// The sequence numbers of a log page's rows, in the page's order.
fn seqs(body: &str) -> Vec<u64> {
    between(body, "<tbody>", "</tbody>")
        .split("<tr><td>")
        .skip(1)
        .map(|r| r.split("</td>").next().unwrap().parse().unwrap())
        .collect()
}

/// The keys page counts each KID's licenses this month (a license for
/// both counts under each) and links to them in the log.
#[actix_web::test]
async fn the_keys_page_counts_a_kids_licenses_and_links_to_them() {
    let (app, cookie) = four_days_of_two_kids().await;
    // The keys page counts each KID's licenses this month and links to them.
    let (_, keys) = get(&app, &cookie, "/keys").await;
    assert!(keys.contains("<th>Licenses in 2026-11</th>"), "{keys}");
    assert!(keys.contains(&format!(
        "<a href=\"/log?kid={KID_A}&amp;from=2026-11-01&amp;to=2026-11-30\">71</a></td><td>2026-11-02</td>"
    )));
    assert!(keys.contains(&format!(
        "<a href=\"/log?kid={KID_B}&amp;from=2026-11-01&amp;to=2026-11-30\">21</a></td><td>2026-11-02</td>"
    )));
    let (_, listed) = get(
        &app,
        &cookie,
        &format!("/log?kid={KID_A}&from=2026-11-01&to=2026-11-30"),
    )
    .await;
    assert!(listed.contains("71 licenses match."));
}

/// The license log pages a KID across the days it was licensed on, both
/// ways, every row once.
#[actix_web::test]
async fn the_license_log_pages_a_kid_across_the_days_it_was_licensed_on() {
    let (app, cookie) = four_days_of_two_kids().await;
    let (_, first) = get(&app, &cookie, &format!("/log?kid={KID_A}")).await;
    assert!(first.contains("101 licenses match."));
    assert_eq!(log_rows(&first), 50);
    assert!(!first.contains("2026-10-31T"), "no KID_A row on the 31st");
    let (_, second) = get(&app, &cookie, &link(&first, "next")).await;
    assert_eq!(log_rows(&second), 50);
    assert!(second.contains("2026-11-01T") && second.contains("2026-10-30T"));
    let (_, third) = get(&app, &cookie, &link(&second, "next")).await;
    assert_eq!(log_rows(&third), 1);
    assert!(third.contains("<td>1</td>"), "the oldest row comes last");
    assert!(!third.contains("rel=\"next\""));
    let (_, back) = get(&app, &cookie, &link(&third, "prev")).await;
    assert_eq!(seqs(&back), seqs(&second));
    let (_, top) = get(&app, &cookie, &link(&back, "prev")).await;
    assert_eq!(seqs(&top), seqs(&first));
    assert!(!top.contains("rel=\"prev\""), "back at the newest page");
    // Every KID_A row once, over the three pages.
    let mut all: Vec<u64> = [&first, &second, &third].iter().flat_map(|b| seqs(b)).collect();
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first, no row twice");
    all.sort_unstable();
    assert_eq!(all.len(), 101);
}

/// A day range pages the same way; the CSV holds a KID's rows, oldest first.
#[actix_web::test]
async fn the_license_log_pages_a_day_range_and_downloads_a_kids_rows() {
    let (app, cookie) = four_days_of_two_kids().await;
    // A day range pages the same way (its bounds give way to the cursor's).
    let (_, first) = get(&app, &cookie, "/log?from=2026-10-30&to=2026-11-01").await;
    assert!(first.contains("82 licenses match."));
    let (_, second) = get(&app, &cookie, &link(&first, "next")).await;
    assert_eq!(log_rows(&second), 32);
    assert_eq!(seqs(&second), (1..=32).rev().collect::<Vec<_>>());
    let (_, back) = get(&app, &cookie, &link(&second, "prev")).await;
    assert_eq!(seqs(&back), (33..=82).rev().collect::<Vec<_>>());
    assert!(!back.contains("rel=\"prev\""));

    let (_, body) = get(
        &app,
        &cookie,
        &format!("/log?kid={KID_B}&from=2026-10-31&to=2026-11-01"),
    )
    .await;
    assert!(body.contains("7 licenses match."));
    assert_eq!(log_rows(&body), 7);

    let (_, csv) = log_csv(&app, &cookie, &format!("kid={KID_B}")).await;
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).skip(1).collect();
    assert_eq!(lines.len(), 5 + 7 + 20 + 1);
    let csv_seqs: Vec<u64> = lines
        .iter()
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        csv_seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest first across the days"
    );
}

/// Makes licenses in October 2026, then sets the clock to November.
async fn app_with_a_finished_month() -> TestApp {
    let app = spawn_admin_app().await;
    app.installed_at(datetime!(2026-10-01 08:00 UTC));
    app.clock.set(datetime!(2026-10-15 09:00 UTC));
    for user in ["a", "b", "a"] {
        deliver(&app, KID_A, user).await;
    }
    app.clock.set(datetime!(2026-11-03 10:00 UTC));
    app
}

/// Before any export: the dashboard shows the finished month, the reports
/// page suggests it, and a month that has not ended, nonsense and a forged
/// form are refused with a reason.
#[actix_web::test]
async fn a_finished_month_is_shown_suggested_and_bad_exports_refused() {
    let app = app_with_a_finished_month().await;
    let cookie = session(&app).await;
    let (_, dashboard) = get(&app, &cookie, "/").await;
    assert!(
        dashboard.contains(
            "<div class=\"n bad\">2026-10</div><div><span class=\"bad\">has ended and has no report yet"
        ),
        "the dashboard shows a finished month without a report: {dashboard}"
    );
    let (s, body) = get(&app, &cookie, "/reports").await;
    assert_eq!(s, 200);
    assert!(body.contains("No report has been exported yet."));
    assert!(body.contains("value=\"2026-10\""), "the first month is suggested");
    let token = csrf(&body);

    // A month that has not ended, and nonsense, are refused with a reason.
    let (s, body) = post(
        &app,
        &cookie,
        "/reports/export",
        &[("csrf", &token), ("month", "2026-11")],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("has not ended yet"), "{body}");
    for bad in ["2026-13", "october", "", "2026-10-01"] {
        let (s, body) = post(
            &app,
            &cookie,
            "/reports/export",
            &[("csrf", &token), ("month", bad)],
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(body.contains("Month is not a month"), "{bad}");
    }
    let (s, _) = post(
        &app,
        &cookie,
        "/reports/export",
        &[("csrf", "forged"), ("month", "2026-10")],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// The crew's signed-in session, and the reports page's form token, on an
/// app whose finished month was exported from the page.
async fn exported_from_the_page(app: &TestApp) -> (String, String) {
    let cookie = session(app).await;
    let (_, body) = get(app, &cookie, "/reports").await;
    let token = csrf(&body);
    let (s, body) = post(
        app,
        &cookie,
        "/reports/export",
        &[("csrf", &token), ("month", "2026-10")],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    (cookie, token)
}

/// The export: the row checked, what comes next said, the dashboard's card
/// and JSON, and exporting again changes nothing.
#[actix_web::test]
async fn admins_export_a_finished_month_from_the_reports_page() {
    let app = app_with_a_finished_month().await;
    let cookie = session(&app).await;
    let (_, body) = get(&app, &cookie, "/reports").await;
    let token = csrf(&body);
    let (s, body) = post(
        &app,
        &cookie,
        "/reports/export",
        &[("csrf", &token), ("month", "2026-10")],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains("Exported 2026-10 as report 1 (3 licenses, 2 active users)."),
        "{body}"
    );
    let row = between(&body, "<table id=\"reports\">", "</table>");
    assert!(
        row.contains("<td>1</td><td>2026-10</td><td>3</td><td>2</td>"),
        "{row}"
    );
    assert!(row.contains("OK: signature, manifest, hash chain and counts check out (3 licenses, rows 1..3)"));
    assert!(row.contains("not uploaded (no upload address is configured)"));
    assert!(
        body.contains(
            "Nothing to export yet: the next report is for 2026-11, which can be exported \
             once that month ends, at 00:00 UTC on 2026-12-01. berth also exports each \
             finished month by itself"
        ),
        "the page says what comes next instead of a form that would be refused: {body}"
    );
    assert!(!body.contains("action=\"/reports/export\""));
    let (_, dashboard) = get(&app, &cookie, "/").await;
    assert!(
        dashboard.contains(
            "<div class=\"n\">2026-10</div><div>next: 2026-11 when it ends; no upload address: \
             download them from <a href=\"/reports\">Reports</a></div>"
        ),
        "{dashboard}"
    );
    let (_, json) = get(&app, &cookie, "/dashboard.json").await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["reports"]["last"]["month"], "2026-10");
    assert!(
        json.get("reports_card").is_none(),
        "no HTML in the JSON: the script takes a changed card from the page itself"
    );
    assert!(
        dashboard.contains("id=\"licenses\" data-month=\"2026-11\""),
        "the script reloads the page when the month it shows has ended"
    );
    // Exporting it again changes nothing.
    let (_, body) = post(
        &app,
        &cookie,
        "/reports/export",
        &[("csrf", &token), ("month", "2026-10")],
    )
    .await;
    assert!(body.contains("2026-10 was exported before, as report 1."));
}

/// The download is the signed zip, byte for byte, and it verifies; a report
/// changed on disk shows as failed.
#[actix_web::test]
async fn admins_download_the_signed_report_and_see_it_checked() {
    let app = app_with_a_finished_month().await;
    let (cookie, _) = exported_from_the_page(&app).await;
    // The download is the signed zip, byte for byte, and it verifies.
    let mut res = crew_client()
        .get(app.admin_url("/reports/1/download"))
        .insert_header(("Cookie", cookie.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("content-type").unwrap(), "application/zip");
    let zip = res.body().limit(16 << 20).await.unwrap().to_vec();
    let file_name = app.db().reports().unwrap()[0].file_name.clone();
    let on_disk = std::fs::read(app.data_dir().join("reports").join(&file_name)).unwrap();
    assert_eq!(zip, on_disk);
    // A HEAD says what the GET sends, its length and name, without the bytes.
    let mut head = crew_client()
        .head(app.admin_url("/reports/1/download"))
        .insert_header(("Cookie", cookie.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    for name in ["content-type", "content-length", "content-disposition"] {
        assert_eq!(head.headers().get(name), res.headers().get(name), "HEAD: {name}");
    }
    assert_eq!(
        res.headers().get("content-length").unwrap(),
        &on_disk.len().to_string()
    );
    assert!(head.body().await.unwrap().is_empty());
    let verified = berth::report::verify_reader(std::io::Cursor::new(zip), None).unwrap();
    assert_eq!(verified.report.counts.licenses, 3);
    for missing in [
        "/reports/2/download",
        "/reports/abc/download",
        "/reports/-1/download",
    ] {
        let (s, _) = get(&app, &cookie, missing).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{missing}");
    }
    let (s, _) = get(&app, "", "/reports/1/download").await;
    assert_eq!(s, StatusCode::SEE_OTHER, "downloads need a session");

    // A report changed on disk shows as failed.
    let path = app.data_dir().join("reports").join(&file_name);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let (_, body) = get(&app, &cookie, "/reports").await;
    assert!(body.contains("class=\"bad\">FAILED: "), "{body}");
}

#[actix_web::test]
async fn viewers_see_reports_but_cannot_export() {
    let app = app_with_a_finished_month().await;
    let password = add_user(&app, "maria", "viewer");
    let cookie = session_as(&app, "maria", &password).await;
    let (s, body) = get(&app, &cookie, "/reports").await;
    assert_eq!(s, 200);
    assert!(!body.contains("action=\"/reports/export\""));
    let (s, _) = post(
        &app,
        &cookie,
        "/reports/export",
        &[("csrf", &csrf(&body)), ("month", "2026-10")],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(app.db().reports().unwrap().is_empty());
    // Viewers do not see the crew users page at all.
    let (s, _) = get(&app, &cookie, "/users").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(!body.contains("href=\"/users\""), "nor its link");
}

#[actix_web::test]
async fn communication_keys_are_generated_shown_once_used_and_removed() {
    let app = spawn_admin_app().await;
    let cookie = session(&app).await;
    let (s, body) = get(&app, &cookie, "/comkeys").await;
    assert_eq!(s, 200);
    assert!(body.contains(&app.com_key_id) && body.contains("Communication keys (1)"));
    assert!(body.contains("<td>never</td>"));
    let (s, body) = post(&app, &cookie, "/comkeys/generate", &[("csrf", &csrf(&body))]).await;
    assert_eq!(s, 200);
    let id = between(&body, "Generated communication key ", ".").to_owned();
    let secret = between(&body, "Secret (base64)</th><td><code class=\"once\">", "<").to_owned();
    let secret = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &secret).unwrap();
    assert_eq!(secret.len(), 32);

    // A token signed with the new key works at once, and the key shows as used:
    // to the minute, written by the first license of each minute.
    let minute = app
        .clock_now()
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap();
    let last_used = |body: &str| {
        between(body, &format!("<tr><td><code>{id}</code></td>"), "</tr>")
            .split("<td>")
            .nth(2)
            .unwrap_or_default()
            .trim_end_matches("</td>")
            .to_owned()
    };
    let mut payload = app.payload(&[KID_A], json!({}));
    payload["com_key_id"] = json!(id);
    let token = sign_hs256(&secret, &payload);
    for (second, shown) in [(10, 10), (40, 10), (70, 70)] {
        app.clock.set(minute + time::Duration::seconds(second));
        let (s, b, _) = license_a(&app, &token).await;
        assert_eq!(s, 200, "{b}");
        let (_, body) = get(&app, &cookie, "/comkeys").await;
        assert!(body.contains("Communication keys (2)"));
        assert!(
            !body.contains("class=\"once\""),
            "the secret is never shown again"
        );
        let expected = berth::ids::format_instant(minute + time::Duration::seconds(shown));
        assert_eq!(last_used(&body), expected, "a license at {second} s");
    }

    let (s, body) = post(
        &app,
        &cookie,
        "/comkeys/remove",
        &[("csrf", &csrf(&body)), ("id", &id)],
    )
    .await;
    assert_eq!(s, 200);
    assert!(body.contains(&format!("Removed communication key {id}.")));
    let token = sign_hs256(&secret, &{
        payload["id"] = json!(uuid_like());
        payload
    });
    let (s, b, h) = license_a(&app, &token).await;
    assert_error(s, &b, &h, 401, "token_invalid");
    let (s, body) = post(
        &app,
        &cookie,
        "/comkeys/remove",
        &[("csrf", &csrf(&body)), ("id", "not-a-uuid")],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("That is not a communication key id."));
}

#[actix_web::test]
async fn viewers_list_communication_keys_but_cannot_generate_them() {
    let app = spawn_admin_app().await;
    let password = add_user(&app, "maria", "viewer");
    let viewer = session_as(&app, "maria", &password).await;
    let (s, body) = get(&app, &viewer, "/comkeys").await;
    assert_eq!(s, 200);
    assert!(!body.contains("action=\"/comkeys/generate\""));
    let (s, _) = post(&app, &viewer, "/comkeys/generate", &[("csrf", &csrf(&body))]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// Kim added as a viewer from the users page and signed in: the app, the
/// admin's session, the page's form token, kim's password and session.
async fn kim_added() -> (TestApp, String, String, String, String) {
    let app = spawn_admin_app().await;
    let cookie = session(&app).await;
    let (s, body) = get(&app, &cookie, "/users").await;
    assert_eq!(s, 200);
    assert!(body.contains("<td>admin</td><td>admin</td>"));
    let token = csrf(&body);

    let (s, body) = post(
        &app,
        &cookie,
        "/users/add",
        &[("csrf", &token), ("name", "kim"), ("role", "viewer")],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let password = between(&body, "Password</th><td><code class=\"once\">", "<").to_owned();
    let kim = session_as(&app, "kim", &password).await;
    let (s, _) = get(&app, &kim, "/").await;
    assert_eq!(s, 200);

    (app, cookie, token, password, kim)
}

#[actix_web::test]
async fn admins_add_crew_users_who_can_then_sign_in() {
    kim_added().await;
}

/// Bad names and roles, a name taken, and oversized forms are refused;
/// without the CSRF token nothing is done.
#[actix_web::test]
async fn crew_user_forms_that_cannot_be_done_are_refused() {
    let (app, cookie, token, _, _) = kim_added().await;
    for (name, role, why) in [
        ("two words", "viewer", "without spaces"),
        ("", "viewer", "without spaces"),
        ("kim", "viewer", "already exists"),
        ("root", "superuser", "a role is admin or viewer"),
        (&"x".repeat(65), "admin", "without spaces"),
    ] {
        let (s, body) = post(
            &app,
            &cookie,
            "/users/add",
            &[("csrf", &token), ("name", name), ("role", role)],
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(body.contains(why), "{name}: {body}");
    }
    // Oversized forms are refused before they are read.
    let huge = "y".repeat(64 * 1024);
    let (s, body) = post(
        &app,
        &cookie,
        "/users/add",
        &[("csrf", &token), ("name", &huge), ("role", "admin")],
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body.contains("<title>Form refused")
            && body.contains("larger than this address takes (16 KiB at most)"),
        "a page of the UI, not a line of text: {body}"
    );
    assert!(
        !page(&app, &cookie, "/users").await.contains("yyyy"),
        "nobody was added"
    );

    // The same actions without the CSRF token do nothing.
    let (s, _) = post(&app, &cookie, "/users/add", &[("name", "eve"), ("role", "admin")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = post(
        &app,
        &cookie,
        "/users/add",
        &[("csrf", "x"), ("name", "eve"), ("role", "admin")],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(app.db().user_credentials("eve").unwrap().is_none());
}

/// A new password ends kim's sessions and the old password stops working;
/// nobody removes themselves; removing kim ends kim's session.
#[actix_web::test]
async fn a_new_password_or_removal_ends_a_crew_users_sessions() {
    let (app, cookie, token, password, kim) = kim_added().await;
    // A new password ends kim's sessions; the old password stops working.
    let (s, body) = post(
        &app,
        &cookie,
        "/users/passwd",
        &[("csrf", &token), ("name", "kim")],
    )
    .await;
    assert_eq!(s, 200);
    let new_password = between(&body, "Password</th><td><code class=\"once\">", "<").to_owned();
    assert_ne!(new_password, password);
    let (s, _) = get(&app, &kim, "/").await;
    assert_eq!(s, StatusCode::SEE_OTHER, "kim's session ended");
    assert_eq!(
        crate::helpers::sign_in(&app, "kim", &password).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let kim = session_as(&app, "kim", &new_password).await;

    // Nobody removes themselves; removing kim ends kim's session.
    let (s, body) = post(
        &app,
        &cookie,
        "/users/remove",
        &[("csrf", &token), ("name", "admin")],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("You cannot remove your own account"));
    let (s, body) = post(
        &app,
        &cookie,
        "/users/remove",
        &[("csrf", &token), ("name", "kim")],
    )
    .await;
    assert_eq!(s, 200);
    assert!(body.contains("Removed kim"));
    let (s, _) = get(&app, &kim, "/").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, _) = post(
        &app,
        &cookie,
        "/users/remove",
        &[("csrf", &token), ("name", "kim")],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[actix_web::test]
async fn an_account_removed_by_the_cli_is_signed_out() {
    let app = spawn_admin_app().await;
    let password = add_user(&app, "maria", "viewer");
    let cookie = session_as(&app, "maria", &password).await;
    assert_eq!(get(&app, &cookie, "/keys").await.0, 200);
    assert!(app.berth(&["user", "remove", "maria"]).status.success());
    assert_eq!(get(&app, &cookie, "/keys").await.0, StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn sessions_expire_after_the_idle_time() {
    let app = spawn_admin_app_with(|c| c.admin.session_idle_secs = 1).await;
    let cookie = session(&app).await;
    assert_eq!(get(&app, &cookie, "/").await.0, 200);
    actix_web::rt::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(get(&app, &cookie, "/").await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        get(&app, &cookie, "/dashboard.json").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn every_page_answers_with_its_content() {
    let app = spawn_admin_app().await;
    deliver(&app, KID_A, "u").await;
    let cookie = session(&app).await;
    for (path, content) in [
        ("/", "Licenses per day"),
        ("/keys", "Content keys (2)"),
        ("/log", "Download these rows as CSV"),
        ("/reports", "Export a month"),
        ("/comkeys", "Generate a new communication key"),
        ("/users", "Add a crew user"),
    ] {
        let (s, body) = get(&app, &cookie, path).await;
        assert_eq!(s, 200, "{path}");
        assert!(body.contains(content), "{path}");
        // Every page has the navigation, a labelled form field per input, and
        // no script but the compiled-in one.
        assert!(body.contains("<nav aria-label=\"pages\">"), "{path}");
        for id in body
            .split("<input id=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
        {
            assert!(
                body.contains(&format!("<label for=\"{id}\"")),
                "{path}: input {id} has no label"
            );
        }
        assert!(!body.contains("<script>"), "{path}");
        // The license listener serves none of it.
        assert_eq!(
            crew_client().get(app.url(path)).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
    for path in ["/log.csv", "/reports/1/download", "/comkeys", "/users"] {
        assert_eq!(
            crew_client().get(app.url(path)).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
}

#[actix_web::test]
async fn the_admin_listener_speaks_tls_with_secure_cookies() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let mut app = spawn_admin_app_with(|c| {
        c.admin.tls_cert = cert.clone();
        c.admin.tls_key = key.clone();
    })
    .await;
    let addr = app.server().admin_addr().unwrap();

    let client = crate::tls::trusting(&cert);
    let res = client.get(format!("https://{addr}/login")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let nonce = set_cookie(res.headers(), "berth_login").unwrap();
    assert!(nonce.contains("Secure") && nonce.contains("HttpOnly"), "{nonce}");

    // Plain HTTP on the TLS port gets no page.
    let plain = crew_client()
        .get(format!("http://{addr}/login"))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // A certificate that does not match its key is refused at start-up.
    let mut config = app.config.clone();
    let other = tempfile::tempdir().unwrap();
    let (_, wrong_key) = self_signed(other.path());
    config.admin.tls_key = wrong_key;
    let master =
        berth::installation::load_master_key(&berth::installation::master_key_path(&config)).unwrap();
    app.stop().await;
    let started = berth::server::start(
        &config,
        berth::server::Startup {
            master,
            clock: app.clock.clone(),
            license_listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            admin_listener: Some(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
            workers: Some(1),
        },
    )
    .await;
    let error = format!("{:#}", started.err().expect("refused"));
    assert!(error.contains("does not match"), "{error}");
}

/// The keys page shows the delivery certificate key providers encrypt for
/// (subject, fingerprint, expiry) and serves it; a key's rotation period
/// shows beside it. The reports page shows the last checkpoint made and
/// uploaded.
#[actix_web::test]
async fn the_keys_page_shows_the_delivery_certificate_and_the_reports_page_the_checkpoints() {
    let app = spawn_admin_app().await;
    let mut db = app.db();
    let periodic = berth::ids::NewKey {
        kid: "33333333-2222-4333-8444-555555555555".parse().unwrap(),
        key: berth::ids::ContentKey([5; 16]),
        label: "Live channel".into(),
        period: Some("period 7".into()),
    };
    db.import_keys(&[periodic], app.clock_now()).unwrap();
    let certificate = berth::provisioning::delivery_certificate(&mut db, app.clock_now()).unwrap();
    let cookie = session(&app).await;
    let (s, body) = get(&app, &cookie, "/keys").await;
    assert_eq!(s, 200);
    for shown in [
        "Delivery certificate",
        "CN=test-vessel, O=Test Aircraft, OU=berth key delivery",
        certificate.info.sha256_fingerprint.as_str(),
        certificate.info.not_after.as_str(),
        "href=\"/keys/delivery-cert.pem\"",
        "<td>period 7</td>",
    ] {
        assert!(body.contains(shown), "{shown} on the keys page: {body}");
    }
    let (s, pem) = get(&app, &cookie, "/keys/delivery-cert.pem").await;
    assert_eq!((s.as_u16(), pem.as_str()), (200, certificate.pem.as_str()));
    assert_eq!(
        awc::Client::builder()
            .disable_redirects()
            .finish()
            .get(app.admin_url("/keys/delivery-cert.pem"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SEE_OTHER,
        "signed-in crew only"
    );

    // (spawn_admin_app restarted the server, which made a checkpoint at shutdown.)
    let at = app.clock_now() + time::Duration::hours(1);
    let made = berth::report::checkpoint::make(&db, at, app.data_dir(), None).unwrap();
    let (_, body) = get(&app, &cookie, "/reports").await;
    let shown = format!(
        "<dt>Last made</dt><dd>{} (row {})</dd>",
        berth::ids::format_instant(at),
        made.seq
    );
    assert!(body.contains(&shown), "{body}");
    assert!(body.contains("none (no upload address is configured)"), "{body}");
}
