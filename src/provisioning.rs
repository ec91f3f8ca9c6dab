//! What the box is given, as the CLI and the crew UI handle it: a content-key
//! file imported into the store, all or nothing, and the list of keys (never a
//! key); the vessel's delivery key pair and its certificate; FairPlay's
//! credentials.

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;

use std::path::{Path, PathBuf};

use crate::crypto::{CertificateInfo, DeliveryKey};
use crate::store::{Db, DeliverySource, ImportOutcome};

/// What an import did, and what the file's keys looked like.
#[derive(Serialize)]
pub struct Imported {
    pub added: usize,
    pub unchanged: usize,
    /// Keys that look like placeholders (sixteen zero bytes): imported, and said.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl fmt::Display for Imported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = ImportOutcome {
            added: self.added,
            unchanged: self.unchanged,
        };
        writeln!(f, "imported {outcome}")
    }
}

/// Reads a key file (at most `keyfile::MAX_KEY_FILE`) and imports it.
pub fn import_file(
    db: &mut Db,
    path: &std::path::Path,
    signers: &[PathBuf],
    now: OffsetDateTime,
) -> anyhow::Result<Imported> {
    use anyhow::Context as _;
    use std::io::Read as _;
    let limit = crate::keyfile::MAX_KEY_FILE;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() > limit {
        anyhow::bail!("{} is larger than {} MiB", path.display(), limit / (1024 * 1024));
    }
    import(db, &bytes, signers, now).with_context(|| format!("reading keys from {}", path.display()))
}

/// Parses a key file (berth JSON or DASH-IF CPIX, clear or encrypted for this
/// vessel, signed by one of `signers` when any are named) and imports every
/// key in it, or none.
pub fn import(
    db: &mut Db,
    file: &[u8],
    signers: &[PathBuf],
    now: OffsetDateTime,
) -> anyhow::Result<Imported> {
    // A JSON key file is never encrypted: only a CPIX document may need the
    // delivery key pair (made on first use).
    let is_json = file
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let delivery = if is_json {
        None
    } else {
        Some(delivery_key(db, now)?)
    };
    let signers = load_signers(signers)?;
    let recipient = crate::keyfile::Recipient {
        delivery: delivery.as_ref(),
        signers: &signers,
        now,
    };
    let keys = crate::keyfile::parse(file, &recipient)?;
    let outcome = db.import_keys(&keys, now)?;
    Ok(Imported {
        added: outcome.added,
        unchanged: outcome.unchanged,
        warnings: crate::keyfile::warnings(&keys),
    })
}

#[derive(Serialize)]
pub struct Key {
    pub kid: String,
    pub label: String,
    pub added_at: crate::ids::Timestamp,
    /// The key rotation period its CPIX document gave it.
    pub period: Option<String>,
}

/// Every content key: KID, label, when it was added.
#[derive(Serialize)]
pub struct Keys {
    pub keys: Vec<Key>,
}

impl fmt::Display for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<36}  {:<24}  {:<12}  label", "kid", "added", "period")?;
        for k in &self.keys {
            let period = k.period.as_deref().unwrap_or("-");
            writeln!(
                f,
                "{:<36}  {:<24}  {:<12}  {}",
                k.kid, k.added_at, period, k.label
            )?;
        }
        Ok(())
    }
}

pub fn list(db: &Db) -> anyhow::Result<Keys> {
    let keys = db.list_keys()?.into_iter();
    Ok(Keys {
        keys: keys
            .map(|k| Key {
                kid: k.kid.to_string(),
                label: k.label,
                added_at: k.added_at,
                period: k.period,
            })
            .collect(),
    })
}

/// The KIDs of `kids` that the store does not have.
pub fn unknown(db: &Db, kids: &[crate::ids::Kid]) -> anyhow::Result<Vec<crate::ids::Kid>> {
    let known = db.list_keys()?;
    Ok(kids
        .iter()
        .filter(|kid| !known.iter().any(|k| k.kid == **kid))
        .copied()
        .collect())
}

/// The vessel's delivery key pair; one is made (RSA-3072, a self-signed
/// certificate naming the installation and vessel) if it has none yet.
pub fn delivery_key(db: &mut Db, now: OffsetDateTime) -> anyhow::Result<DeliveryKey> {
    if let Some(key) = db.delivery_key()? {
        return Ok(key);
    }
    let installation = db.installation()?;
    let key = DeliveryKey::generate(&installation.id, &installation.vessel_name, now)?;
    db.set_delivery_key(&key, DeliverySource::Generated, now)?;
    Ok(key)
}

/// The trusted CPIX signers' certificates (DER), from PEM files.
pub fn load_signers(paths: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut certificates = Vec::new();
    for path in paths {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("keys.cpix_signers: reading {}: {e}", path.display()))?;
        let found = crate::crypto::delivery::certificates_from_pem(&pem)
            .map_err(|e| anyhow::anyhow!("keys.cpix_signers: {}: {e}", path.display()))?;
        certificates.extend(found);
    }
    Ok(certificates)
}

/// The delivery certificate, for the key provider.
#[derive(Serialize)]
pub struct DeliveryCertificate {
    #[serde(flatten)]
    pub info: CertificateInfo,
    pub pem: String,
}

impl fmt::Display for DeliveryCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.pem)
    }
}

/// The delivery certificate, read without opening the private key (the crew
/// keys page shows it on every load); the key pair is made if there is none.
pub fn delivery_certificate(db: &mut Db, now: OffsetDateTime) -> anyhow::Result<DeliveryCertificate> {
    let der = match db.delivery_certificate()? {
        Some(der) => der,
        None => delivery_key(db, now)?.certificate_der(),
    };
    Ok(DeliveryCertificate {
        info: crate::crypto::delivery::certificate_info(&der)?,
        pem: crate::crypto::delivery::certificate_pem(&der)?,
    })
}

/// What a delivery key import did.
#[derive(Serialize)]
pub struct DeliveryKeyImported {
    pub certificate: CertificateInfo,
}

impl fmt::Display for DeliveryKeyImported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.certificate;
        writeln!(
            f,
            "imported the delivery key pair: {} (SHA-256 {}, valid until {})",
            c.subject, c.sha256_fingerprint, c.not_after
        )?;
        writeln!(
            f,
            "CPIX documents encrypted for the previous certificate can no longer be imported."
        )
    }
}

/// Replaces the delivery key pair with a PKCS#12 file's.
pub fn import_delivery_key(
    db: &mut Db,
    file: &Path,
    password: &str,
    now: OffsetDateTime,
) -> anyhow::Result<DeliveryKeyImported> {
    let der = std::fs::read(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    if der.len() > 1024 * 1024 {
        anyhow::bail!("{} is larger than 1 MiB: not a PKCS#12 key file", file.display());
    }
    let key =
        DeliveryKey::from_pkcs12(&der, password).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    // Key providers refuse to encrypt for an expired, not yet valid, SHA-1
    // signed or weak certificate, as berth refuses such a signer: the
    // working key pair is kept.
    let certificate = crate::crypto::delivery::check_certificate(&key.certificate_der(), now)
        .map_err(|e| anyhow::anyhow!("{}: {e}; the delivery key pair in use is kept", file.display()))?;
    db.set_delivery_key(&key, DeliverySource::Imported, now)?;
    Ok(DeliveryKeyImported { certificate })
}

/// The FairPlay certificate, as the CLI and the crew keys page show it.
#[derive(Serialize)]
pub struct FairPlayCertificate {
    #[serde(flatten)]
    pub info: CertificateInfo,
    /// The SPC version devices send for it: 1 for RSA-1024, 2 for RSA-2048.
    pub spc_version: u32,
    pub imported_at: String,
}

impl fmt::Display for FairPlayCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "FairPlay certificate: {}", self.info.subject)?;
        writeln!(f, "  SHA-256:     {}", self.info.sha256_fingerprint)?;
        writeln!(
            f,
            "  key:         RSA-{} (SPC version {})",
            self.info.rsa_bits.unwrap_or(0),
            self.spc_version
        )?;
        writeln!(f, "  valid until: {}", self.info.not_after)?;
        writeln!(f, "  imported:    {}", self.imported_at)
    }
}

/// The imported FairPlay certificate, if any (read without opening the
/// private key or the ASk).
pub fn fairplay_certificate(db: &Db) -> anyhow::Result<Option<FairPlayCertificate>> {
    let Some((der, imported_at)) = db.fairplay_certificate()? else {
        return Ok(None);
    };
    let info = crate::crypto::delivery::certificate_info(&der)?;
    Ok(Some(FairPlayCertificate {
        spc_version: if info.rsa_bits == Some(1024) { 1 } else { 2 },
        info,
        imported_at,
    }))
}

/// Where the three parts of a FairPlay deployment package are.
pub struct FairPlayFiles<'a> {
    pub certificate: &'a Path,
    pub private_key: &'a Path,
    pub ask: Option<&'a Path>,
}

fn read_small(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {what} {}: {e}", path.display()))?;
    if bytes.len() > 64 * 1024 {
        anyhow::bail!("{} is larger than 64 KiB: not {what}", path.display());
    }
    Ok(bytes)
}

/// Imports a content provider's FPS credentials, sealed under the master
/// key; they replace any others, and a running server takes them with its
/// next key reload. The certificate must be valid now.
pub fn import_fairplay_credentials(
    db: &mut Db,
    files: FairPlayFiles<'_>,
    now: OffsetDateTime,
) -> anyhow::Result<FairPlayCertificate> {
    use crate::fairplay::{Ask, Credentials, CredentialsError};
    let Some(ask_path) = files.ask else {
        anyhow::bail!(CredentialsError::NoAsk);
    };
    let mut ask_text = read_small(ask_path, "the ASk")?;
    if ask_text.trim_ascii().is_empty() {
        anyhow::bail!(CredentialsError::NoAsk);
    }
    let ask = Ask::parse(&ask_text);
    crate::crypto::wipe(&mut ask_text);
    let ask = ask.map_err(|e| anyhow::anyhow!("{}: {e}", ask_path.display()))?;
    let mut certificate = read_small(files.certificate, "an FPS certificate")?;
    if certificate.starts_with(b"-----BEGIN") {
        certificate = crate::crypto::delivery::certificates_from_pem(&certificate)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("{} holds no certificate", files.certificate.display()))?;
    }
    let mut key_bytes = read_small(files.private_key, "a private key")?;
    let key = crate::crypto::fairplay::ProviderKey::new(&certificate, &key_bytes);
    crate::crypto::wipe(&mut key_bytes);
    let key = key.map_err(|e| anyhow::anyhow!("{}", CredentialsError::Key(e)))?;
    let info = crate::crypto::delivery::certificate_info(&certificate)?;
    let validity = crate::crypto::delivery::certificate_validity(&certificate)?;
    if now > validity.1 || now < validity.0 {
        anyhow::bail!(
            "the FPS certificate {} is not valid now (valid until {}); the credentials in use are kept",
            info.subject,
            info.not_after
        );
    }
    db.set_fairplay_credentials(&Credentials { key, ask }, now)?;
    fairplay_certificate(db)?.ok_or_else(|| anyhow::anyhow!("the FairPlay credentials were not stored"))
}
