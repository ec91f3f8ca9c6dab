//! The only place with SQL: opening and migrating the database, the installation
//! identity, the key stores, crew accounts, usage statistics, and the license log
//! writer (group commit on its own thread).
//!
//! Architecture Invariant: no HTTP, no token rules. Secrets enter and leave this
//! module in clear only as typed values; on disk they are always sealed under the
//! master key, with the row's identity bound as associated data.

mod batch;
mod browse;
mod chain_check;
mod coverage;
mod fairplay;
mod log;
mod migrate;
mod prune;
mod refresher;
mod reports;
mod sealed_keys;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;

use crate::crypto::{CryptoError, MasterKey, SigningKey};
use crate::ids::{ComKeyId, KeySystem, Kid, Month, Role, Secret32, Timestamp, format_instant};

pub use browse::{KidUsage, LogCursor, LogFilter, LogPage};
pub use chain_check::{ChainProblem, ChainSummary, verify_chain};
pub use coverage::{CheckpointRecord, LogOutage, ServingPeriod};
pub use log::{
    AppendError, Appended, Courier, FindCourier, LogEntry, LogHandle, LogWriter, Outcome, Repeatable, Reply,
    WriterConfig, WriterHealth,
};
pub use migrate::{LATEST as SCHEMA_VERSION, reads_the_log};
pub use prune::PruneMark;
pub use refresher::{KeyRefresher, RefresherLink, load_keys};
pub use reports::{LogRow, OutboxEntry, ReportRecord};
pub use sealed_keys::DeliverySource;

pub const DB_FILE: &str = "berth.db";

/// What a license adds to the database, its indexes and aggregates included
/// (measured: 2,986,787 licenses in 1.14 GB after a checkpoint, 382 bytes each;
/// rounded up), for the dashboard's estimate of the days the disk holds.
pub const LOG_BYTES_PER_LICENSE: u64 = 400;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error(
        "the database has schema version {database}, newer than this berth ({binary}); refusing to touch it"
    )]
    TooNew { database: i64, binary: i64 },
    #[error("no installation here: run `berth init` first")]
    NotInitialised,
    /// The database has migrations to apply; they run once, at start.
    #[error(
        "the database has schema version {database} and this berth {binary}: run `berth migrate` (or start `berth serve`) first"
    )]
    NotMigrated { database: i64, binary: i64 },
    /// A stored value berth could not have written (a KID of the wrong
    /// length, a date that is not one): said for the operator, with what it is.
    #[error("the database holds {0}")]
    Unreadable(String),
    /// A content key already stored with a different value.
    #[error("key {0} is already stored with a different value; nothing was imported")]
    KeyConflict(Kid),
    #[error("crew user {0:?} already exists")]
    UserExists(String),
    #[error("communication key {0} already exists")]
    ComKeyExists(ComKeyId),
    /// The log was already pruned beyond the mark asked for.
    #[error("the log was already pruned up to row {through}, beyond {asked}")]
    AlreadyPruned { through: i64, asked: i64 },
    #[error("{} is in use by another process", .0.display())]
    InUse(PathBuf),
    #[error("{} is not a berth database", .0.display())]
    NotBerth(PathBuf),
    #[error("the path {} is not UTF-8", .0.display())]
    PathNotUtf8(PathBuf),
    #[error("could not switch {} to WAL mode (got {mode})", .path.display())]
    NoWal { path: PathBuf, mode: String },
    #[error("applying migration {name}: {source}")]
    Migration {
        name: &'static str,
        source: rusqlite::Error,
    },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    /// SQLite says the file is not a database, or a corrupt one.
    #[error(
        "{path} is damaged ({detail}): stop berth and restore the last backup with `berth restore FILE --force`, which keeps the damaged file"
    )]
    Damaged { path: String, detail: String },
    /// A license log row berth could not have written.
    #[error("license log row {seq}: {what}")]
    BadRow { seq: i64, what: String },
}

/// Opens a connection with berth's pragmas: WAL, `synchronous=FULL`, a busy timeout.
pub fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let damaged = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::Damaged {
                path: path.display().to_string(),
                detail: e.to_string(),
            }
        }
        _ => StoreError::Sqlite(e),
    };
    let conn = Connection::open(path).map_err(damaged)?;
    conn.busy_timeout(busy_timeout)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(damaged)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Vessel types that billing prices differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VesselType {
    Aircraft,
    Train,
    Ship,
    Bus,
    Other,
}

impl VesselType {
    pub fn as_str(self) -> &'static str {
        match self {
            VesselType::Aircraft => "aircraft",
            VesselType::Train => "train",
            VesselType::Ship => "ship",
            VesselType::Bus => "bus",
            VesselType::Other => "other",
        }
    }
}

impl std::str::FromStr for VesselType {
    type Err = crate::ids::ParseError;
    fn from_str(s: &str) -> Result<VesselType, crate::ids::ParseError> {
        Ok(match s {
            "aircraft" => VesselType::Aircraft,
            "train" => VesselType::Train,
            "ship" => VesselType::Ship,
            "bus" => VesselType::Bus,
            "other" => VesselType::Other,
            _ => {
                return Err(crate::ids::ParseError(format!(
                    "{s:?} is not a vessel type (aircraft, train, ship, bus, other)"
                )));
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct Installation {
    pub id: String,
    pub vessel_type: VesselType,
    pub vessel_name: String,
    pub created_at: Timestamp,
    pub public_key_der: Vec<u8>,
}

/// A crew account as the crew and the CLI see it (never its password hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrewUser {
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
}

impl rusqlite::types::ToSql for Role {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

/// A communication key id as the store keeps it (a UUID's text).
fn stored_com_key_id(text: &str) -> Result<ComKeyId, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Unreadable("a communication key id that is not a UUID".into()))
}

/// A column's text parsed as `T`; text that does not parse is an error.
fn parsed<T>(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .as_str()?
        .parse()
        .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
}

impl rusqlite::types::FromSql for Role {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Role> {
        parsed(value)
    }
}

impl rusqlite::types::FromSql for Timestamp {
    /// Any RFC 3339 text (berth writes [`format_instant`]'s form).
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Timestamp> {
        parsed(value)
    }
}

#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub kid: Kid,
    pub label: String,
    pub added_at: Timestamp,
    /// The key rotation period a CPIX document gave it, for people.
    pub period: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ComKeyInfo {
    pub id: ComKeyId,
    pub created_at: Timestamp,
    /// The minute (`YYYY-MM-DDTHH:MM`) it last signed a license's token.
    pub last_used_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportOutcome {
    pub added: usize,
    pub unchanged: usize,
}

/// "1 new key (2 already present)", for the CLI and the admin UI.
impl std::fmt::Display for ImportOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let added = crate::ids::counted(self.added, "new key");
        write!(f, "{added} ({} already present)", self.unchanged)
    }
}

/// The counts of SPEC section 6 for one month.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub licenses: u64,
    pub active_users: u64,
    pub licenses_without_user: u64,
    pub by_key_system: BTreeMap<String, u64>,
    pub by_day: BTreeMap<String, u64>,
    /// Batches of licenses stamped earlier than the license before them.
    pub clock_anomalies: u64,
    /// HLS keys fetched again with the same token: delivered, not licenses.
    pub repeat_fetches: u64,
}

impl Counts {
    pub fn empty(month: Month) -> Counts {
        Counts {
            licenses: 0,
            active_users: 0,
            licenses_without_user: 0,
            // Clear Key and HLS always, as every report has listed them;
            // a key system added later (FairPlay) once it has a license, so
            // that a report without one reads, and verifies, as before.
            by_key_system: [KeySystem::ClearKey, KeySystem::Hls]
                .iter()
                .map(|k| (k.as_str().to_owned(), 0))
                .collect(),
            by_day: month.days().into_iter().map(|d| (d, 0)).collect(),
            clock_anomalies: 0,
            repeat_fetches: 0,
        }
    }
}

fn com_key_context(id: &ComKeyId) -> Vec<u8> {
    format!("berth communication key {id}").into_bytes()
}

const SIGNING_KEY_CONTEXT: &[u8] = b"berth signing key";
const PEPPER_CONTEXT: &[u8] = b"berth user pepper";

/// A connection to an installation's database, with the master key to open its
/// secrets.
pub struct Db {
    conn: Connection,
    master: Arc<MasterKey>,
    path: PathBuf,
}

impl Db {
    /// Opens the existing, migrated database in `data_dir`; one that is not
    /// there, or has migrations to apply, is an error naming what to do.
    pub fn open(data_dir: &Path, master: Arc<MasterKey>) -> Result<Db, StoreError> {
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::NotInitialised);
        }
        let conn = connect(&path, Duration::from_secs(5))?;
        let database: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let binary = migrate::LATEST;
        match database.cmp(&binary) {
            std::cmp::Ordering::Greater => Err(StoreError::TooNew { database, binary }),
            std::cmp::Ordering::Less => Err(StoreError::NotMigrated { database, binary }),
            std::cmp::Ordering::Equal => Ok(Db { conn, master, path }),
        }
    }

    /// Opens the database in `data_dir`, creating it and applying pending
    /// migrations: what a process does once, at its start (`init`, `migrate`,
    /// `serve`, each CLI command). Everything after opens it with [`Db::open`].
    pub fn open_migrating(data_dir: &Path, master: Arc<MasterKey>) -> Result<Db, StoreError> {
        Db::open_counting(data_dir, master, None)
    }

    /// The migrations the database in `data_dir` has yet to apply, by name.
    pub fn pending_migrations(data_dir: &Path) -> Result<Vec<&'static str>, StoreError> {
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return Ok(migrate::pending(0));
        }
        let conn = connect(&path, Duration::from_secs(5))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        Ok(migrate::pending(version))
    }

    /// `open`, with SQLite adding one to `steps` every 100,000 or so of its
    /// virtual-machine steps while it migrates, so that a supervisor can tell
    /// a long migration (one that fills a table from the whole license log)
    /// from a stuck one.
    pub fn open_counting(
        data_dir: &Path,
        master: Arc<MasterKey>,
        steps: Option<Arc<std::sync::atomic::AtomicU64>>,
    ) -> Result<Db, StoreError> {
        let path = data_dir.join(DB_FILE);
        let created = !path.exists();
        let mut conn = connect(&path, Duration::from_secs(5))?;
        if created {
            // SQLite gives the WAL and shared-memory files the database's mode.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
                StoreError::Io {
                    what: format!("restricting {}", path.display()),
                    source,
                }
            })?;
        }
        if let Some(steps) = steps {
            conn.progress_handler(
                100_000,
                Some(move || {
                    steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    false
                }),
            )?;
            migrate::migrate(&mut conn)?;
            conn.progress_handler(0, None::<fn() -> bool>)?;
        } else {
            migrate::migrate(&mut conn)?;
        }
        Ok(Db { conn, master, path })
    }

    /// Applies pending migrations on an open database (for `berth migrate`).
    pub fn migrate_only(data_dir: &Path) -> Result<Vec<&'static str>, StoreError> {
        let mut conn = connect(&data_dir.join(DB_FILE), Duration::from_secs(5))?;
        migrate::migrate(&mut conn)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn master(&self) -> &Arc<MasterKey> {
        &self.master
    }

    pub fn has_installation(&self) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM installation", [], |_| Ok(()))
            .optional()?
            .is_some())
    }

    pub fn create_installation(
        &mut self,
        installation: &Installation,
        signing_key: &SigningKey,
        pepper: &Secret32,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO installation (singleton, installation_id, vessel_type, vessel_name,
                 created_at, signing_key_sealed, public_key_der, pepper_sealed)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                installation.id,
                installation.vessel_type.as_str(),
                installation.vessel_name,
                installation.created_at.to_string(),
                self.master.seal(SIGNING_KEY_CONTEXT, &signing_key.to_pkcs8_der()),
                signing_key.public_der(),
                self.master.seal(PEPPER_CONTEXT, &pepper.0),
            ],
        )?;
        Ok(())
    }

    pub fn installation(&self) -> Result<Installation, StoreError> {
        self.conn
            .query_row(
                "SELECT installation_id, vessel_type, vessel_name, created_at, public_key_der
                 FROM installation",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                },
            )
            .optional()?
            .map(|(id, vt, vessel_name, created_at, public_key_der)| {
                Ok(Installation {
                    id,
                    vessel_type: vt
                        .parse()
                        .map_err(|e: crate::ids::ParseError| StoreError::Unreadable(e.0))?,
                    vessel_name,
                    created_at,
                    public_key_der,
                })
            })
            .unwrap_or(Err(StoreError::NotInitialised))
    }

    fn sealed_installation_field(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        self.conn
            .query_row(&format!("SELECT {column} FROM installation"), [], |r| r.get(0))
            .optional()?
            .ok_or(StoreError::NotInitialised)
    }

    pub fn pepper(&self) -> Result<Secret32, StoreError> {
        let sealed = self.sealed_installation_field("pepper_sealed")?;
        Ok(Secret32(self.master.open_array(PEPPER_CONTEXT, &sealed)?))
    }

    pub fn signing_key(&self) -> Result<SigningKey, StoreError> {
        let sealed = self.sealed_installation_field("signing_key_sealed")?;
        let der = self.master.open(SIGNING_KEY_CONTEXT, &sealed)?;
        Ok(SigningKey::from_pkcs8_der(&der)?)
    }

    fn bump_key_generation(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        tx.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'key_generation'",
            [],
        )?;
        Ok(())
    }

    /// A number that changes whenever content or communication keys change.
    pub fn key_generation(&self) -> Result<i64, StoreError> {
        let value: String =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'key_generation'", [], |r| {
                    r.get(0)
                })?;
        value
            .parse()
            .map_err(|_| StoreError::Unreadable("a meta.key_generation that is not a number".into()))
    }

    pub fn add_com_key(
        &mut self,
        id: &ComKeyId,
        secret: &Secret32,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let exists = tx
            .query_row("SELECT 1 FROM com_keys WHERE id = ?1", [id.to_string()], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        if exists {
            return Err(StoreError::ComKeyExists(*id));
        }
        tx.execute(
            "INSERT INTO com_keys (id, secret_sealed, created_at) VALUES (?1, ?2, ?3)",
            params![
                id.to_string(),
                self.master.seal(&com_key_context(id), &secret.0),
                format_instant(now)
            ],
        )?;
        Self::bump_key_generation(&tx)?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove_com_key(&mut self, id: &ComKeyId) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute("DELETE FROM com_keys WHERE id = ?1", [id.to_string()])?;
        Self::bump_key_generation(&tx)?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Every communication key, decrypted.
    pub fn com_keys(&self) -> Result<Vec<(ComKeyId, Secret32)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, secret_sealed FROM com_keys ORDER BY created_at")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, sealed) = row?;
            let id = stored_com_key_id(&id)?;
            out.push((
                id,
                Secret32(self.master.open_array(&com_key_context(&id), &sealed)?),
            ));
        }
        Ok(out)
    }

    pub fn list_com_keys(&self) -> Result<Vec<ComKeyInfo>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, created_at, last_used_at FROM com_keys ORDER BY created_at")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Timestamp>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (id, created_at, last_used_at) = row?;
            let id = stored_com_key_id(&id)?;
            Ok(ComKeyInfo {
                id,
                created_at,
                last_used_at,
            })
        })
        .collect()
    }

    pub fn add_user(
        &mut self,
        name: &str,
        password_hash: &str,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO crew_users (name, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, password_hash, role, format_instant(now)],
        )?;
        if n == 0 {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        Ok(())
    }

    pub fn set_password(&mut self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE crew_users SET password_hash = ?2 WHERE name = ?1",
            params![name, password_hash],
        )?;
        Ok(n > 0)
    }

    pub fn remove_user(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM crew_users WHERE name = ?1", [name])?
            > 0)
    }

    /// A crew account's password hash and role; `None` for a role berth does
    /// not know (such an account signs no one in).
    pub fn user_credentials(&self, name: &str) -> Result<Option<(String, Option<Role>)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT password_hash, role FROM crew_users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get::<_, String>(1)?.parse().ok())),
            )
            .optional()?)
    }

    /// The newest license log rows, newest first.
    pub fn last_licenses(&self, limit: i64) -> Result<Vec<reports::LogRow>, StoreError> {
        let last = self.last_seq()?;
        let mut rows = Vec::new();
        self.for_each_log_row::<StoreError>((last - limit + 1).max(1), last, |r| {
            rows.push(r.clone());
            Ok(())
        })?;
        rows.reverse();
        Ok(rows)
    }

    /// The crew accounts, by name.
    pub fn list_users(&self) -> Result<Vec<CrewUser>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, role, created_at FROM crew_users ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(CrewUser {
                name: r.get(0)?,
                role: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The counts for one month, from the aggregates kept beside the log.
    pub fn counts(&self, month: Month) -> Result<Counts, StoreError> {
        let mut counts = Counts::empty(month);
        let first_day = month.start().date().to_string();
        let end_day = month.end().date().to_string();
        let mut stmt = self.conn.prepare_cached(
            "SELECT day, key_system, licenses, without_user, repeats FROM usage_daily
             WHERE day >= ?1 AND day < ?2",
        )?;
        let mut rows = stmt.query(params![first_day, end_day])?;
        while let Some(row) = rows.next()? {
            let day: String = row.get(0)?;
            let key_system: String = row.get(1)?;
            let licenses = row.get::<_, i64>(2)?.max(0) as u64;
            let without_user = row.get::<_, i64>(3)?.max(0) as u64;
            counts.licenses += licenses;
            counts.licenses_without_user += without_user;
            counts.repeat_fetches += row.get::<_, i64>(4)?.max(0) as u64;
            *counts.by_key_system.entry(key_system).or_default() += licenses;
            *counts.by_day.entry(day).or_default() += licenses;
        }
        let (users, anomalies) = self
            .conn
            .query_row(
                "SELECT active_users, clock_anomalies FROM usage_monthly WHERE month = ?1",
                [month.to_string()],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()?
            .unwrap_or((0, 0));
        counts.active_users = users.max(0) as u64;
        counts.clock_anomalies = anomalies.max(0) as u64;
        Ok(counts)
    }

    /// The newest `issued_at` in the log, if any (for clock sanity checks).
    pub fn newest_issued_at(&self) -> Result<Option<Timestamp>, StoreError> {
        let newest: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT seq, issued_at FROM license_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        newest.map(|(seq, text)| log::instant(seq, &text)).transpose()
    }

    /// Walks the whole hash chain.
    pub fn verify_log(&self) -> Result<Result<ChainSummary, ChainProblem>, StoreError> {
        verify_chain(self)
    }

    /// Writes a consistent copy of the database to `out` while others keep
    /// reading and writing (`VACUUM INTO` reads one snapshot).
    pub fn backup_to(&self, out: &Path) -> Result<(), StoreError> {
        let target = out
            .to_str()
            .ok_or_else(|| StoreError::PathNotUtf8(out.to_path_buf()))?;
        self.conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// Folds the WAL of the database at `path` into the database file and
    /// empties it (synced), so that removing the WAL afterwards loses nothing:
    /// `berth restore` must not leave a new database beside an old WAL, nor an
    /// old database without the commits its WAL held.
    pub fn fold_wal(path: &Path) -> Result<(), StoreError> {
        let conn = connect(path, Duration::from_secs(5))?;
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(StoreError::InUse(path.to_path_buf()));
        }
        Ok(())
    }

    /// The installation id and the newest log row of a database file, without
    /// migrating it (for `berth restore`).
    pub fn inspect(path: &Path) -> Result<(String, i64), StoreError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > migrate::LATEST {
            return Err(StoreError::TooNew {
                database: version,
                binary: migrate::LATEST,
            });
        }
        let id: String = conn
            .query_row("SELECT installation_id FROM installation", [], |r| r.get(0))
            .map_err(|_| StoreError::NotBerth(path.to_path_buf()))?;
        let last: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM license_log", [], |r| r.get(0))?;
        Ok((id, last))
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::ImportOutcome;

    #[test]
    fn an_import_outcome_counts_in_words() {
        let one = ImportOutcome {
            added: 1,
            unchanged: 0,
        };
        let more = ImportOutcome {
            added: 2,
            unchanged: 1,
        };
        let none = ImportOutcome {
            added: 0,
            unchanged: 3,
        };
        assert_eq!(one.to_string(), "1 new key (0 already present)");
        assert_eq!(more.to_string(), "2 new keys (1 already present)");
        assert_eq!(none.to_string(), "0 new keys (3 already present)");
    }

    /// After `fold_wal` the database file alone holds every commit, so the WAL
    /// beside it can go (what `berth restore` does before it swaps the files).
    #[test]
    fn fold_wal_leaves_every_commit_in_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        let writer = super::connect(&path, std::time::Duration::from_secs(1)).unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);")
            .unwrap();
        let rows_in_the_file_alone = |name: &str| {
            let copy = dir.path().join(name);
            std::fs::copy(&path, &copy).unwrap();
            rusqlite::Connection::open(&copy)
                .unwrap()
                .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
        };
        assert!(
            rows_in_the_file_alone("before.db").is_err(),
            "the commits are in the WAL only"
        );
        super::Db::fold_wal(&path).unwrap();
        assert_eq!(rows_in_the_file_alone("after.db").unwrap(), 3);
        assert_eq!(
            std::fs::metadata(dir.path().join("berth.db-wal")).unwrap().len(),
            0
        );
    }
}
