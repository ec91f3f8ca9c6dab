//! `GET /healthz` on a running berth: `berth healthcheck` for monitoring scripts
//! without curl, and `serve`'s own start-up probe before it says READY.

use std::net::SocketAddr;
use std::time::Duration;

/// Why a probe got no health report.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("could not reach {addr}: {why}")]
    Unreachable { addr: SocketAddr, why: String },
    #[error("{addr} did not answer HTTP{hint}")]
    NotHttp { addr: SocketAddr, hint: &'static str },
    #[error("setting up TLS for the probe: {0}")]
    Tls(#[from] crate::crypto::CryptoError),
}

/// Asks `addr` for `/healthz`, over TLS when the license API speaks it.
/// `Ok((healthy, body))` when it answered at all.
///
/// Over TLS the certificate is not verified: it names the host the players
/// use, not this address, and the probe sends no secret and trusts the answer
/// only for an exit code.
pub async fn probe_healthz(mut addr: SocketAddr, tls: bool) -> Result<(bool, String), ProbeError> {
    // A listener on every address answers on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = Duration::from_secs(5);
    let mut connector = awc::Connector::new().timeout(timeout);
    if tls {
        connector = connector.openssl(crate::crypto::unverified_tls_connector()?);
    }
    let client = awc::Client::builder()
        .connector(connector)
        .timeout(timeout)
        .disable_redirects()
        .finish();
    let scheme = if tls { "https" } else { "http" };
    let not_http = ProbeError::NotHttp {
        addr,
        hint: if tls {
            ""
        } else {
            " (if it speaks HTTPS, license.tls_cert is not set here)"
        },
    };
    let mut response = match client.get(format!("{scheme}://{addr}/healthz")).send().await {
        Ok(response) => response,
        Err(awc::error::SendRequestError::Connect(awc::error::ConnectError::Io(e))) => {
            return Err(ProbeError::Unreachable {
                addr,
                why: e.to_string(),
            });
        }
        Err(awc::error::SendRequestError::Connect(e)) if tls => {
            return Err(ProbeError::Unreachable {
                addr,
                why: format!("no TLS handshake: {e}"),
            });
        }
        Err(_) => return Err(not_http),
    };
    let body = response.body().limit(1024 * 1024).await.map_err(|_| not_http)?;
    Ok((
        response.status().is_success(),
        String::from_utf8_lossy(&body).trim().to_owned(),
    ))
}
