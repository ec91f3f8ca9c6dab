//! The ground receiver: a small openssl CA, `berth ground serve` on port 0,
//! and requests over mutual TLS.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::*;

pub fn openssl(args: &[&str], dir: &Path) {
    run_in(dir, "openssl", args);
}

/// A small CA as the README sets one up, and certificates it issues.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        let mut args = vec![
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=berth test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ];
        args.extend(ec);
        openssl(&args, dir);
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    /// A certificate for `cn` signed by the CA (`san` as `-addext` takes it).
    pub fn issue(&self, name: &str, cn: &str, san: Option<&str>) -> (PathBuf, PathBuf) {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subject = format!("/CN={cn}");
        let mut req = vec![
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &subject,
            "-keyout",
            &key,
            "-out",
            &csr,
        ];
        let ext = san.map(|s| format!("subjectAltName={s}"));
        if let Some(ext) = &ext {
            req.extend(["-addext", ext.as_str()]);
        }
        openssl(&req, &self.dir);
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-copy_extensions",
                "copyall",
                "-out",
                &crt,
            ],
            &self.dir,
        );
        (self.dir.join(crt), self.dir.join(key))
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
}

pub struct Ground {
    pub child: Child,
    pub port: u16,
    pub store: PathBuf,
}

impl Drop for Ground {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `berth ground serve` on port 0 with the PKI's server certificate.
pub fn ground(pki: &Pki, store: &Path, pubkeys: Option<&Path>) -> Ground {
    let pubkeys = pubkeys.map(|p| p.to_str().unwrap().to_owned());
    let mut extra = Vec::new();
    if let Some(p) = &pubkeys {
        extra.extend(["--pubkeys", p.as_str()]);
    }
    ground_with(pki, store, &extra)
}

/// The same, with more arguments.
pub fn ground_with(pki: &Pki, store: &Path, extra: &[&str]) -> Ground {
    use std::io::BufRead as _;
    let (cert, key) = (pki.dir.join("ground.crt"), pki.dir.join("ground.key"));
    if !cert.exists() {
        pki.issue("ground", "ground.example", Some("IP:127.0.0.1"));
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["ground", "serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(store);
    command
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--client-ca")
        .arg(pki.ca());
    let mut child = command
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("berth ground serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok());
    let port = port.unwrap_or_else(|| panic!("berth ground serve did not start: {line:?}"));
    Ground {
        child,
        port,
        store: store.to_path_buf(),
    }
}

/// One HTTP/1.1 request over TLS (trusting the PKI's CA), with a client
/// certificate when given; `Err` when the connection is refused.
pub fn send(
    pki: &Pki,
    port: u16,
    client: Option<(&Path, &Path)>,
    head: &str,
    body: &[u8],
) -> Result<(u16, Value), String> {
    let connector = berth::crypto::tls_connector(Some(&pki.ca()), client).map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let mut tls = connector.connect("127.0.0.1", tcp).map_err(|e| e.to_string())?;
    let request = format!(
        "{head}\r\nHost: ground\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    tls.write_all(body).map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or(answer.clone())?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// PUT of a report file as berth's uploader sends it.
pub fn put(
    pki: &Pki,
    port: u16,
    client: (&Path, &Path),
    name: &str,
    bytes: &[u8],
) -> Result<(u16, Value), String> {
    let head =
        format!("PUT /reports/{name} HTTP/1.1\r\nContent-Type: application/zip\r\nX-Berth-Report: {name}");
    send(pki, port, Some(client), &head, bytes)
}

pub fn upload_config(app: &TestApp, pki: &Pki, port: u16, client: (&Path, &Path)) -> PathBuf {
    let config = app.dir.path().join("upload.toml");
    let text = format!(
        "[upload]\nurl = \"https://127.0.0.1:{port}/reports/\"\nretry_min_secs = 1\nca_file = {:?}\nclient_cert = {:?}\nclient_key = {:?}\n",
        pki.ca(),
        client.0,
        client.1
    );
    std::fs::write(&config, text).unwrap();
    config
}

pub fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}
