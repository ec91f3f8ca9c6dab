//! Setting up an installation and finding its parts: `berth init`'s checked
//! values and what it creates, the master key, the data dir's lock, backups
//! and restores.
//!
//! Architecture Invariant: no printing and no argument parsing; the CLI turns
//! what these return into lines for people.

use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::accounts::{hash_password, new_com_key, new_password};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::{self, MasterKey, SigningKey, sha256_hex};
use crate::ids::{Secret32, format_instant};
use crate::store::{Db, Installation, VesselType};

mod restore;

pub use restore::{Restored, restore};

use crate::ids::ParseError;

/// An installation's id: 1 to 64 letters, digits, `-`, `_` or `.`, not
/// starting with `.` (it names a folder in the ground receiver's store, where
/// `..` would be the folder above and `.incoming` the uploads in flight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationId(String);

impl std::str::FromStr for InstallationId {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<InstallationId, ParseError> {
        let id = text.trim();
        if id.is_empty()
            || id.len() > 64
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || id.starts_with('.')
        {
            return Err(ParseError(
                "must be 1 to 64 characters of letters, digits, '-', '_' or '.', not starting with '.'"
                    .into(),
            ));
        }
        Ok(InstallationId(id.to_owned()))
    }
}

impl InstallationId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A vessel's name: 1 to 200 printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VesselName(String);

impl std::str::FromStr for VesselName {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<VesselName, ParseError> {
        let name = text.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(ParseError("must be 1 to 200 printable characters".into()));
        }
        Ok(VesselName(name.to_owned()))
    }
}

/// What `berth init` is asked to create, checked.
#[derive(Debug, Clone)]
pub struct NewInstallation {
    pub id: InstallationId,
    pub vessel_type: VesselType,
    pub vessel_name: VesselName,
    /// The first crew admin's user name.
    pub admin_user: String,
}

impl NewInstallation {
    /// The values given, each falling back on the config's `[installation]`.
    pub fn from_given(
        config: &Config,
        (id, vessel_type, vessel_name): (Option<&str>, Option<VesselType>, Option<&str>),
        admin_user: &str,
    ) -> anyhow::Result<NewInstallation> {
        let given = |flag: Option<&str>, configured: &str, what: &str| {
            flag.or((!configured.is_empty()).then_some(configured))
                .map(str::to_owned)
                .ok_or_else(|| {
                    anyhow!(
                        "--{what} is required (or installation.{} in the config)",
                        what.replace('-', "_")
                    )
                })
        };
        let vessel_type = match vessel_type {
            Some(t) => t,
            None => given(None, &config.installation.vessel_type, "vessel-type")?
                .parse()
                .map_err(|e: ParseError| anyhow!(e))?,
        };
        Ok(NewInstallation {
            id: given(id, &config.installation.id, "installation-id")?
                .parse()
                .map_err(|e: ParseError| anyhow!("--installation-id {e}"))?,
            vessel_type,
            vessel_name: given(vessel_name, &config.installation.vessel_name, "vessel-name")?
                .parse()
                .map_err(|e: ParseError| anyhow!("--vessel-name {e}"))?,
            admin_user: admin_user.to_owned(),
        })
    }
}

/// What `berth init` made; the secrets in it are shown once and never again.
#[derive(Debug, serde::Serialize)]
pub struct Initialised {
    pub installation_id: String,
    pub vessel_type: &'static str,
    pub vessel_name: String,
    pub data_dir: PathBuf,
    pub master_key_file: PathBuf,
    pub com_key_id: String,
    pub com_key_secret: String,
    pub admin_user: String,
    pub admin_password: String,
    pub signing_key_sha256: String,
}

impl Initialised {
    /// What `init --json` prints: everything, but with a secrets file the
    /// secret and password are only in that file.
    pub fn json(&self, secrets_file: Option<&Path>) -> serde_json::Value {
        let mut shown = serde_json::to_value(self).expect("an installation serialises");
        if let Some(path) = secrets_file {
            shown["com_key_secret"] = serde_json::Value::Null;
            shown["admin_password"] = serde_json::Value::Null;
            shown["secrets_file"] = path.display().to_string().into();
        }
        shown
    }

    /// What `init` prints for people.
    pub fn text(&self, secrets_file: Option<&Path>) -> String {
        let mut text = format!(
            "created installation {} ({}, {}) in {}\n\
             master key:            {} (back it up separately from the database)\n\
             signing key sha256:    {}\n\
             communication key id:  {}\n",
            self.installation_id,
            self.vessel_type,
            self.vessel_name,
            self.data_dir.display(),
            self.master_key_file.display(),
            self.signing_key_sha256,
            self.com_key_id
        );
        match secrets_file {
            Some(path) => text.push_str(&format!(
                "The communication secret and the crew password are in {} (mode 0600): read it, give the secret to the onboard portal, then remove the file.\n",
                path.display()
            )),
            None => text.push_str(&format!(
                "communication secret:  {}\ncrew admin:            {} / {}\n\
                 The secret and password are shown only now; give the secret to the onboard portal.\n",
                self.com_key_secret, self.admin_user, self.admin_password
            )),
        }
        text
    }
}

/// Creates a new installation in the config's data dir; refuses, changing
/// nothing, if one exists.
pub fn create(config: &Config, new: &NewInstallation, clock: &dyn Clock) -> anyhow::Result<Initialised> {
    let data_dir = &config.data_dir;
    if data_dir.join(crate::store::DB_FILE).exists() {
        bail!(
            "an installation already exists in {}; nothing was changed",
            data_dir.display()
        );
    }
    let now = clock.now();
    if now < crate::clock::EARLIEST_PLAUSIBLE {
        bail!(
            "the clock says {}, which is before berth existed: set it (timedatectl set-time 'YYYY-MM-DD HH:MM:SS') \
             and run init again, because the monthly reports begin at the month of init",
            format_instant(now)
        );
    }
    create_private_dir(data_dir)?;
    let master_path = master_key_path(config);
    let master = if master_path.exists() {
        MasterKey::load(&master_path)?
    } else {
        let key = MasterKey::generate();
        key.write_new(&master_path)
            .with_context(|| format!("writing the master key to {}", master_path.display()))?;
        key
    };
    let mut db = Db::open_migrating(data_dir, Arc::new(master))?;
    let signing_key = SigningKey::generate();
    let (com_key_id, com_secret) = new_com_key();
    let password = new_password();
    db.add_com_key(&com_key_id, &com_secret, now)?;
    db.add_user(
        &new.admin_user,
        &hash_password(&password)?,
        crate::ids::Role::Admin,
        now,
    )?;
    db.create_installation(
        &Installation {
            id: new.id.0.clone(),
            vessel_type: new.vessel_type,
            vessel_name: new.vessel_name.0.clone(),
            created_at: crate::ids::Timestamp::new(now),
            public_key_der: signing_key.public_der(),
        },
        &signing_key,
        &Secret32(crypto::random()),
    )?;
    // The key pair key providers encrypt CPIX for (`keys delivery-cert`).
    crate::provisioning::delivery_key(&mut db, now)?;
    Ok(Initialised {
        installation_id: new.id.0.clone(),
        vessel_type: new.vessel_type.as_str(),
        vessel_name: new.vessel_name.0.clone(),
        data_dir: data_dir.clone(),
        master_key_file: master_path,
        com_key_id: com_key_id.to_string(),
        com_key_secret: STANDARD.encode(com_secret.0),
        admin_user: new.admin_user.clone(),
        admin_password: password,
        signing_key_sha256: sha256_hex(&signing_key.public_der()),
    })
}

/// Creates the data dir with mode 0700 (or tightens an empty existing one).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting permissions of {}", dir.display()))
}

/// A new file only its owner can read; an existing one is never overwritten.
pub fn create_private_file(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                anyhow!("{} exists; refusing to overwrite it", path.display())
            }
            _ => anyhow!("cannot create {}: {e}", path.display()),
        })
}

/// Writes what `init` made to a secrets file and syncs it to the disk.
pub fn write_secrets(file: &mut std::fs::File, path: &Path, done: &Initialised) -> anyhow::Result<()> {
    use std::io::Write as _;
    writeln!(
        file,
        "# berth installation {}: shown only here. Give the communication key id\n\
         # and secret to the onboard portal, keep the password, then remove this file.\n\
         communication_key_id = {}\ncommunication_secret = {}\ncrew_admin = {}\ncrew_password = {}",
        done.installation_id, done.com_key_id, done.com_key_secret, done.admin_user, done.admin_password
    )
    .and_then(|()| file.sync_all())
    .and_then(|()| crate::durable::sync_parent(path))
    .with_context(|| format!("writing the secrets to {}", path.display()))
}

/// The master key path for a config, honouring a systemd credential.
pub fn master_key_path(config: &Config) -> PathBuf {
    config.master_key_path(crate::systemd::credentials_directory().as_deref())
}

pub fn load_master_key(path: &Path) -> anyhow::Result<Arc<MasterKey>> {
    Ok(Arc::new(MasterKey::load(path)?))
}

/// Opens an existing installation's database.
pub fn open_db(config: &Config) -> anyhow::Result<Db> {
    let db_path = config.data_dir.join(crate::store::DB_FILE);
    if !db_path.exists() {
        bail!(
            "no installation in {}: run `berth init` first",
            config.data_dir.display()
        );
    }
    let master = load_master_key(&master_key_path(config))?;
    let db = Db::open_migrating(&config.data_dir, master)?;
    db.installation()?;
    Ok(db)
}

/// Holds `<data_dir>/berth.lock` for as long as the process runs: one `serve`
/// per data dir, and `restore` only while none runs.
pub fn lock_data_dir(data_dir: &Path, what: &str) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("berth.lock");
    let file = std::fs::File::create(&path).with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "berth is running on {} ({what}); stop it first",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// A consistent copy of the database at `out`, private and on the disk; the
/// installation's id and its number of licenses.
/// What `berth backup` wrote.
#[derive(Debug, serde::Serialize)]
pub struct BackedUp {
    pub backed_up: String,
    pub installation_id: String,
    pub licenses: i64,
}

impl std::fmt::Display for BackedUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "backed up installation {} ({}) to {}; back up the master key separately",
            self.installation_id,
            crate::ids::counted(self.licenses, "license"),
            self.backed_up
        )
    }
}

pub fn backup(db: &Db, out: &Path) -> anyhow::Result<BackedUp> {
    // Created empty and private first (VACUUM INTO fills an empty file), so
    // the copy is never readable by others, not even for a moment, and two
    // backups to one path cannot both write it.
    let file = create_private_file(out)?;
    // SQLite does not sync what VACUUM INTO writes: a stick pulled (or the
    // power cut) after "backed up" must not find an empty file.
    let written = db.backup_to(out).map_err(anyhow::Error::from).and_then(|()| {
        file.sync_all()
            .and_then(|()| crate::durable::sync_parent(out))
            .with_context(|| format!("writing {} to the disk", out.display()))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    let (installation_id, licenses) = Db::inspect(out)?;
    Ok(BackedUp {
        backed_up: out.display().to_string(),
        installation_id,
        licenses,
    })
}

/// What `berth migrate` did.
#[derive(serde::Serialize)]
pub struct Migrated {
    pub applied: Vec<&'static str>,
    pub schema_version: i64,
}

impl std::fmt::Display for Migrated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.applied.is_empty() {
            true => writeln!(
                f,
                "the database is up to date (schema version {})",
                self.schema_version
            ),
            false => writeln!(f, "applied {}", self.applied.join(", ")),
        }
    }
}

/// The migrations `migrate` will apply, with a word when one reads the whole
/// log (on years of licenses that takes a while); None when there are none.
pub fn pending_migrations(config: &Config) -> anyhow::Result<Option<String>> {
    let pending = Db::pending_migrations(&config.data_dir)?;
    if pending.is_empty() {
        return Ok(None);
    }
    let slow = pending.iter().any(|name| crate::store::reads_the_log(name));
    let note = " (on a long license log this takes a while: about a second per million licenses)";
    Ok(Some(format!(
        "{}{}",
        pending.join(", "),
        if slow { note } else { "" }
    )))
}

pub fn migrate(config: &Config) -> anyhow::Result<Migrated> {
    Ok(Migrated {
        applied: Db::migrate_only(&config.data_dir)?,
        schema_version: crate::store::SCHEMA_VERSION,
    })
}

/// What `berth init` made and where its secrets went.
pub struct InitDone {
    pub done: Initialised,
    /// The file holding the secret and the password, when asked for one.
    pub secrets_file: Option<PathBuf>,
}

impl serde::Serialize for InitDone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.done.json(self.secrets_file.as_deref()).serialize(serializer)
    }
}

impl std::fmt::Display for InitDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.done.text(self.secrets_file.as_deref()))
    }
}

/// `berth init`: creates the installation; with `secrets_file`, the secret
/// and the password go to that new private file, which is opened before the
/// installation exists, so that secrets shown nowhere else are never made
/// without a place to keep them.
pub fn init(
    config: &Config,
    new: anyhow::Result<NewInstallation>,
    secrets_file: Option<&Path>,
    clock: &dyn Clock,
) -> anyhow::Result<InitDone> {
    let mut secrets = secrets_file
        .map(|path| create_private_file(path).map(|file| (path, file)))
        .transpose()?;
    let done = match new.and_then(|new| create(config, &new, clock)) {
        Ok(done) => done,
        Err(e) => {
            if let Some((path, _)) = &secrets {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    if let Some((path, file)) = &mut secrets {
        write_secrets(file, path, &done)?;
    }
    Ok(InitDone {
        done,
        secrets_file: secrets_file.map(Path::to_owned),
    })
}
