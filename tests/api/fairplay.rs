//! FairPlay Streaming: SPCs made and CKCs opened by an independent device
//! side (tests/api/fairplay_client.py, Python's `cryptography`, written from
//! the published layout), WebKit's public test key and ASk, and a real
//! berth. No browser on Linux plays FairPlay, so no player is in the loop.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::helpers::*;

/// WebKit's test ASk, which goes with `fairplay/webkit-test-key.pem`.
const ASK: &str = "1a09d27bc2241afa82ea2458e6e8e6a3";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/fairplay_client.py")
}

fn python(dir: &Path, args: &[&str]) -> std::process::Output {
    run_in(
        dir,
        "/usr/bin/python3",
        &[&[script().to_str().unwrap()], args].concat(),
    )
}

/// A content provider's credentials, and the device side that uses them.
pub struct Fps {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ask: PathBuf,
}

impl Fps {
    /// WebKit's test key (RSA-1024, SPC version 1) in a certificate made
    /// here, or a fresh RSA-2048 key (SPC version 2).
    pub fn new(dir: &Path, bits: u32) -> Fps {
        let webkit = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/fairplay/webkit-test-key.pem");
        let mut args = vec!["credentials", "--out-cert", "fps.der", "--out-key", "fps.pem"];
        let bits_text = bits.to_string();
        if bits == 1024 {
            args.extend(["--key", webkit.to_str().unwrap()]);
        } else {
            args.extend(["--bits", &bits_text]);
        }
        python(dir, &args);
        std::fs::write(dir.join("ask.txt"), format!("{ASK}\n")).unwrap();
        Fps {
            dir: dir.to_path_buf(),
            cert: dir.join("fps.der"),
            key: dir.join("fps.pem"),
            ask: dir.join("ask.txt"),
        }
    }

    pub fn import_into(&self, app: &TestApp) -> std::process::Output {
        app.berth(&[
            "fairplay",
            "credentials",
            "import",
            "--certificate",
            self.cert.to_str().unwrap(),
            "--private-key",
            self.key.to_str().unwrap(),
            "--ask-file",
            self.ask.to_str().unwrap(),
        ])
    }

    /// An SPC for `asset`; its session (SK, R1, the seed) stays with the device.
    pub fn spc(&self, name: &str, asset: &str, extra: &[&str]) -> Vec<u8> {
        let out = format!("{name}.spc");
        let session = format!("{name}.json");
        let mut args = vec!["spc", "--cert", "fps.der", "--ask", ASK, "--asset", asset];
        args.extend(["--out", &out, "--session", &session]);
        args.extend(extra);
        python(&self.dir, &args);
        std::fs::read(self.dir.join(out)).unwrap()
    }

    /// The CKC opened by the device that made SPC `name`.
    pub fn open(&self, name: &str, ckc: &[u8]) -> Value {
        let path = self.dir.join(format!("{name}.ckc"));
        std::fs::write(&path, ckc).unwrap();
        let session = format!("{name}.json");
        let out = python(
            &self.dir,
            &["ckc", "--ckc", path.to_str().unwrap(), "--session", &session],
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A berth with the test credentials imported (and taken up by the server).
pub async fn fairplay_app(bits: u32) -> (TestApp, Fps) {
    let app = spawn_app().await;
    let fps = Fps::new(app.dir.path(), bits);
    let out = fps.import_into(&app);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The key refresher takes the credentials within 250 ms.
    for _ in 0..40 {
        if client()
            .get(app.url("/fairplay/certificate"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (app, fps)
}

/// POSTs `body` to `/fairplay/license` with the token in `X-AxDRM-Message`.
pub async fn post_spc(app: &TestApp, token: Option<&str>, body: Vec<u8>) -> (u16, Vec<u8>, Value) {
    let mut req = client().post(app.url("/fairplay/license"));
    if let Some(t) = token {
        req = req.insert_header(("X-AxDRM-Message", t));
    }
    let mut res = req.send_body(body).await.expect("request");
    let status = res.status().as_u16();
    let bytes = res.body().limit(1 << 20).await.expect("body").to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, bytes, json)
}

/// Wraps an SPC or unwraps a CKC for one request form.
type Bytes = fn(&[u8]) -> Vec<u8>;

fn skd(kid: &str) -> String {
    format!("skd://{kid}")
}

#[actix_web::test]
async fn the_certificate_is_served_as_imported_and_not_counted() {
    let (app, fps) = fairplay_app(1024).await;
    let mut res = client()
        .get(app.url("/fairplay/certificate"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/pkix-cert"
    );
    let body = res.body().await.unwrap();
    assert_eq!(body.to_vec(), std::fs::read(&fps.cert).unwrap());
    assert_eq!(app.log_rows(), 0, "a certificate fetch is not a license");
}

#[actix_web::test]
async fn a_ckc_carries_the_key_r1_and_the_blocks_the_spc_asked_back_in_every_form() {
    let (app, fps) = fairplay_app(1024).await;
    let forms: [(&str, Bytes, Bytes); 4] = [
        ("raw", |spc| spc.to_vec(), |ckc| ckc.to_vec()),
        (
            "base64",
            |spc| STANDARD.encode(spc).into_bytes(),
            |ckc| STANDARD.decode(ckc).unwrap(),
        ),
        (
            "form",
            |spc| {
                format!(
                    "spc={}&assetId={KID_A}",
                    STANDARD.encode(spc).replace('+', "%2B").replace('/', "%2F")
                )
                .into_bytes()
            },
            |ckc| {
                let text = std::str::from_utf8(ckc).unwrap();
                let inner = text
                    .strip_prefix("<ckc>")
                    .and_then(|t| t.strip_suffix("</ckc>"))
                    .expect("<ckc>");
                STANDARD.decode(inner).unwrap()
            },
        ),
        (
            "json",
            |spc| json!({ "spc": STANDARD.encode(spc) }).to_string().into_bytes(),
            |ckc| {
                let v: Value = serde_json::from_slice(ckc).unwrap();
                STANDARD.decode(v["ckc"].as_str().unwrap()).unwrap()
            },
        ),
    ];
    for (i, (name, wrap, unwrap)) in forms.into_iter().enumerate() {
        let spc = fps.spc(name, &skd(KID_A), &[]);
        let body = wrap(&spc);
        let token = app.token(&[KID_A], json!({}));
        let (status, answer, json) = post_spc(&app, Some(&token), body).await;
        assert_eq!(status, 200, "{name}: {json}");
        let opened = fps.open(name, &unwrap(&answer));
        assert_eq!(opened["version"], 1);
        assert_eq!(opened["key"], berth::ids::hex(&KEY_A), "{name}");
        assert_eq!(opened["iv"], "00".repeat(16), "no IV in the asset id: zeros");
        assert_eq!(opened["r1_matches"], true);
        assert_eq!(opened["returned_as_asked"], true, "{opened}");
        assert_eq!(
            (&opened["duration"], &opened["hdcp"]),
            (&Value::Null, &Value::Null)
        );
        assert_eq!(app.log_rows(), i as i64 + 1, "one CKC, one license");
    }
}

#[actix_web::test]
async fn an_spc_version_2_for_a_2048_bit_certificate_gets_its_key() {
    let (app, fps) = fairplay_app(2048).await;
    let spc = fps.spc("v2", &skd(KID_B), &[]);
    assert_eq!(&spc[..4], &[0, 0, 0, 2]);
    let (status, ckc, json) = post_spc(&app, Some(&app.token(&[KID_B], json!({}))), spc).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(fps.open("v2", &ckc)["key"], berth::ids::hex(&KEY_B));
}

#[actix_web::test]
async fn the_asset_id_forms_packagers_write_name_the_key_and_a_given_iv_is_delivered() {
    let (app, fps) = fairplay_app(1024).await;
    let iv = "d5fbd6b82ed93e4ef98ae40931ee33b7";
    let bare = KID_A.replace('-', "");
    let forms = [
        (format!("skd://{bare}:{iv}"), iv.to_owned()),
        (format!("skd://fps.example.com/;{KID_A}"), "00".repeat(16)),
        (
            format!("skd://{}", STANDARD.encode(berth_kid(KID_A))),
            "00".repeat(16),
        ),
        (bare.to_uppercase(), "00".repeat(16)),
    ];
    for (i, (asset, want_iv)) in forms.iter().enumerate() {
        let name = format!("asset{i}");
        let spc = fps.spc(&name, asset, &[]);
        let (status, ckc, json) = post_spc(&app, Some(&app.token(&[KID_A], json!({}))), spc).await;
        assert_eq!(status, 200, "{asset}: {json}");
        let opened = fps.open(&name, &ckc);
        assert_eq!(
            (opened["key"].as_str().unwrap(), opened["iv"].as_str().unwrap()),
            (berth::ids::hex(&KEY_A).as_str(), want_iv.as_str()),
            "{asset}"
        );
    }
}

fn berth_kid(text: &str) -> [u8; 16] {
    kid(text).0
}
