//! Hostile input: none of it may produce a 500, a panic, or a log row.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn hostile_tokens() {
    let app = spawn_app().await;
    let body = clearkey_body(&[KID_A], "temporary");
    let good = app.token(&[KID_A], json!({}));
    let payload = app.payload(&[KID_A], json!({}));
    let (_, rest) = good.split_once('.').unwrap();
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let mut hostile = vec![
        good[..good.len() / 2].to_owned(),
        format!("{good}.extra"),
        format!("{good}{}", "A".repeat(40_000)),
        format!("{none_header}.{}.", URL_SAFE_NO_PAD.encode(payload.to_string())),
        format!("{none_header}.{rest}"),
        sign_with(&app.com_secret, r#"{"alg":"HS512","typ":"JWT"}"#, &payload),
        sign_hs256(&[7u8; 32], &payload),
        sign_with(&app.com_secret, r#"{"alg":"HS256","crit":["exp"]}"#, &payload),
        "....".to_owned(),
        "\u{1F600}.\u{1F600}.\u{1F600}".to_owned(),
    ];
    // A JSON bomb in the payload, correctly signed.
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    hostile.push(format!(
        "{}.{}.AAAA",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(
            "{{\"version\":1,\"com_key_id\":\"{}\",\"message\":{deep}}}",
            app.com_key_id
        ))
    ));
    let mut wrong_types = payload.clone();
    wrong_types["message"]["content_keys_source"] = json!({ "inline": "everything" });
    hostile.push(app.sign(&wrong_types));
    let mut both = payload.clone();
    both["message"]["content_keys_source"] = json!({ "inline": [], "license_request": {} });
    hostile.push(app.sign(&both));
    // Issue 25: what berth cannot honour in content_keys_source, a policy it
    // cannot enforce on a stored key, and field names made to forge log lines.
    for source in [
        json!({ "license_request": { "seed_id": "11111111-2222-4333-8444-555555555555" } }),
        json!({ "license_request": "everything" }),
        json!({ "inline": [ { "id": KID_A, "iv": "AAAAAAAAAAAAAAAAAAAAAA==", "seed_id": 1 } ] }),
        json!({ "stored": [ { "id": KID_A, "usage_policy": "undefined" } ] }),
        json!({ "stored": [ { "id": KID_A, "x\nINFO berth::license: outcome=\"ok\" key_system=\"clearkey\" kids=1 seq=1": 1 } ] }),
        json!({ "stored": [ { "id": KID_A, "\u{1b}[2J\r\u{0}": 1 } ] }),
        json!({ "stored": [ { "id": [KID_A] } ] }),
    ] {
        let mut unsupported = payload.clone();
        unsupported["message"]["content_keys_source"] = source;
        hostile.push(app.sign(&unsupported));
    }
    for token in &hostile {
        let (status, answer, headers) = post_license(&app, Some(token), &body).await;
        assert!(
            status == 401 || status == 403 || status == 400,
            "{status} {answer}"
        );
        assert_ne!(status, 500);
        assert!(headers.get("x-axdrm-errormessage").is_some());
    }
    // In the query string too (HLS), as far as a URI can carry them.
    for token in hostile.iter().filter(|t| t.len() < 8000) {
        let encoded: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
        let res = client()
            .get(app.url(&format!("/hls/key/{KID_A}?token={encoded}")))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    assert_eq!(app.log_rows(), 0);
}

/// "Never expires" written as the last instant there is: a license, once
/// for a single-use token; an instant past it in UTC: a clear 401. (The first
/// made every worker that met it panic and drop the connection.)
#[actix_web::test]
async fn tokens_at_the_edges_of_time() {
    let app = spawn_app().await;
    let body = clearkey_body(&[KID_A], "temporary");
    let single_use = json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } });
    let mut forever = app.payload(&[KID_A], single_use);
    forever["expiration_date"] = json!("9999-12-31T23:59:59Z");
    let forever = app.sign(&forever);
    let (status, answer, _) = post_license(&app, Some(&forever), &body).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer, _) = post_license(&app, Some(&forever), &body).await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("token_reused")));
    let license_forever = app.token(
        &[KID_A],
        json!({ "license": { "expiration_datetime": "9999-12-31T23:59:59.999999999Z" } }),
    );
    assert_eq!(post_license(&app, Some(&license_forever), &body).await.0, 200);
    for (field, at) in [
        ("expiration_date", "9999-12-31T23:59:59-00:01"),
        ("begin_date", "9999-12-31T23:59:59-00:01"),
        ("expiration_date", "0000-01-01T00:00:00+23:59:59"),
        ("expiration_date", "10000-01-01T00:00:00Z"),
    ] {
        let mut payload = app.payload(&[KID_A], json!({}));
        payload[field] = json!(at);
        let (status, answer, _) = post_license(&app, Some(&app.sign(&payload)), &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("token_invalid")),
            "{at}"
        );
        assert!(answer["message"].as_str().unwrap().contains(field), "{answer}");
    }
    assert_eq!(app.log_rows(), 2);
}

#[actix_web::test]
async fn hostile_bodies() {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    let bomb = format!("{}{}", "{\"a\":".repeat(3000), "}".repeat(3000));
    let arrays = format!("{{\"kids\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<Vec<u8>> = vec![
        bomb.into_bytes(),
        arrays.into_bytes(),
        br#"{"kids":["nrQFDeRLSAKTLifXUIPiZg"],"type":"temporary"#.to_vec(),
        br#"{"kids":["nrQF DeRL"]}"#.to_vec(),
        b"{\"kids\":[\"\xff\xfe\"]}".to_vec(),
        vec![b'{'; 60_000],
        br#"{"kids":null}"#.to_vec(),
        br#"{"kids":["nrQFDeRLSAKTLifXUIPiZg"],"type":null}"#.to_vec(),
    ];
    for body in bodies {
        let mut res = client()
            .post(app.url("/clearkey"))
            .insert_header(("X-AxDRM-Message", token.as_str()))
            .send_body(body)
            .await
            .unwrap();
        let status = res.status().as_u16();
        let json: serde_json::Value = res.json().limit(1 << 20).await.unwrap();
        assert!(status == 400 || status == 200, "{status} {json}");
        if status == 400 {
            assert_eq!(json["error"], "bad_request");
        }
    }
    // A 1 MB body.
    let mut res = client()
        .post(app.url("/clearkey"))
        .insert_header(("X-AxDRM-Message", token.as_str()))
        .send_body(vec![b'x'; 1 << 20])
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let _ = res.body().await;
    // Only the one null-type request above is a valid license request.
    assert_eq!(app.log_rows(), 1);
}

#[actix_web::test]
async fn hostile_http() {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    let results = actix_web::rt::task::spawn_blocking({
        let addr = app.addr;
        move || {
            let fake = TestAppAddr(addr);
            let mut out = Vec::new();
            // HTTP/1.0.
            out.push(fake.raw(b"GET /healthz HTTP/1.0\r\n\r\n"));
            // Invalid UTF-8 in the token header and the path.
            out.push(fake.raw(b"POST /clearkey HTTP/1.1\r\nHost: x\r\nX-AxDRM-Message: \xff\xfe\xfd\r\nContent-Length: 35\r\nConnection: close\r\n\r\n{\"kids\":[\"nrQFDeRLSAKTLifXUIPiZg\"]}"));
            out.push(fake.raw(b"GET /hls/key/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
            // A 64 KiB header.
            let mut big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
            big.extend(vec![b'a'; 64 * 1024]);
            big.extend(b"\r\nConnection: close\r\n\r\n");
            out.push(fake.raw(&big));
            // A 1 MiB header.
            let mut huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
            huge.extend(vec![b'a'; 1 << 20]);
            huge.extend(b"\r\nConnection: close\r\n\r\n");
            out.push(fake.raw(&huge));
            // Pipelining: two requests in one write.
            out.push(fake.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
            // A token that is UTF-8 but not ASCII, and an Authorization header
            // whose 7th byte falls inside a character (where "Bearer " would end).
            let body = "{\"kids\":[\"nrQFDeRLSAKTLifXUIPiZg\"]}";
            for header in ["X-AxDRM-Message: ey\u{e4}.\u{e9}.\u{fc}", "Authorization: Beare\u{20ac}x abc"] {
                let request = format!(
                    "POST /clearkey HTTP/1.1\r\nHost: x\r\n{header}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                out.push(fake.raw(request.as_bytes()));
            }
            // Bodies cut short: the client closes its side after 22 of 35
            // declared bytes, or inside a chunk.
            let cut = "{\"kids\":[\"nrQFDeRLSAKT";
            for framing in ["Content-Length: 35\r\n\r\n", "Transfer-Encoding: chunked\r\n\r\n23\r\n"] {
                out.push(fake.cut_short(&format!(
                    "POST /clearkey HTTP/1.1\r\nHost: x\r\nX-AxDRM-Message: {token}\r\n{framing}{cut}"
                )));
            }
            out
        }
    })
    .await
    .unwrap();
    assert!(
        results[0].starts_with("HTTP/1.0 200") || results[0].starts_with("HTTP/1.1 200"),
        "{}",
        &results[0]
    );
    assert!(results[1].starts_with("HTTP/1.1 401"), "{}", &results[1]);
    assert!(results[2].starts_with("HTTP/1.1 4"), "{}", &results[2]);
    // 64 KiB of header is within what berth reads; 1 MiB is refused or cut off.
    assert!(
        results[3].starts_with("HTTP/1.1 200") || results[3].starts_with("HTTP/1.1 4"),
        "{:.80}",
        &results[3]
    );
    assert!(!results[4].starts_with("HTTP/1.1 200"), "{:.80}", &results[4]);
    assert_eq!(results[5].matches("HTTP/1.1 200").count(), 2, "{}", &results[5]);
    assert!(results[6].starts_with("HTTP/1.1 401"), "{}", &results[6]);
    assert!(results[6].contains("token_invalid"), "{}", &results[6]);
    assert!(results[7].starts_with("HTTP/1.1 401"), "{}", &results[7]);
    assert!(results[7].contains("token_missing"), "{}", &results[7]);
    for cut in &results[8..10] {
        assert!(cut.starts_with("HTTP/1.1 400"), "{cut}");
        assert!(
            cut.contains("the request body ended before it was complete"),
            "{cut}"
        );
        assert!(!cut.contains("None"), "{cut}");
    }
    for r in &results {
        assert!(!r.contains(" 500 "), "{r:.200}");
    }
    // And berth still serves.
    licensed(&app).await;
}

/// Raw HTTP on a socket, for what a well-behaved client library will not send.
struct TestAppAddr(std::net::SocketAddr);

impl TestAppAddr {
    fn raw(&self, request: &[u8]) -> String {
        self.exchange(request, false)
    }

    /// The request, then this side of the connection closed: whatever
    /// it declared that did not come has been cut off.
    fn cut_short(&self, request: &str) -> String {
        self.exchange(request.as_bytes(), true)
    }

    fn exchange(&self, request: &[u8], then_close: bool) -> String {
        let mut stream = TcpStream::connect(self.0).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = stream.write_all(request);
        if then_close {
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}
