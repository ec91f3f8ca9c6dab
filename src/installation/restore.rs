//! `berth restore`: a backup in the database's place, with berth stopped.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};

use crate::clock::{Clock as _, SystemClock};
use crate::config::Config;
use crate::ids::counted;
use crate::store::Db;

/// What a restore did.
#[derive(Debug, serde::Serialize)]
pub struct Restored {
    /// The backup restored from.
    pub restored: String,
    pub installation_id: String,
    pub licenses: i64,
    /// The name the unreadable database was kept under, when it was replaced.
    pub kept_unreadable: Option<String>,
}

impl std::fmt::Display for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "restored installation {} ({}) from {}",
            self.installation_id,
            crate::ids::counted(self.licenses, "license"),
            self.restored
        )?;
        if let Some(kept) = &self.kept_unreadable {
            write!(f, "; the unreadable database is kept as {kept}")?;
        }
        writeln!(f)
    }
}

/// What the data dir holds now, as berth reads it: `None` when there is no
/// database, `Some(Err)` when it is there but cannot be read (the usual
/// reason to restore at all).
type Current = Option<Result<(String, i64), crate::store::StoreError>>;

/// Puts the backup `file` in the database's place. Refuses a backup of
/// another installation, and one with fewer licenses than the current log or
/// in place of a database that cannot be read unless `force`; an unreadable
/// database is kept beside, with its WAL.
pub fn restore(config: &Config, file: &Path, force: bool) -> anyhow::Result<Restored> {
    let _lock = super::lock_data_dir(&config.data_dir, "a restore needs it stopped")?;
    let (backup_id, backup_rows) =
        Db::inspect(file).with_context(|| format!("reading {}", file.display()))?;
    let current_path = db_file(config, "");
    let current: Current = current_path.exists().then(|| Db::inspect(&current_path));
    check_replaceable(&current, &current_path, file, &backup_id, backup_rows, force)?;
    let tmp = db_file(config, ".restoring");
    std::fs::copy(file, &tmp).with_context(|| format!("copying {}", file.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    // The copy is on the disk before it takes the database's name, and the
    // name before the restore says it is done: a power cut leaves the old
    // database or the whole new one.
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {} to the disk", tmp.display()))?;
    let kept = set_current_aside(config, &current, &current_path)?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(db_file(config, suffix));
    }
    std::fs::rename(&tmp, &current_path)?;
    crate::durable::sync_parent(&current_path)
        .with_context(|| format!("writing {} to the disk", current_path.display()))?;
    // Opening it checks the master key and applies any newer migrations.
    drop(super::open_db(config)?);
    Ok(Restored {
        restored: file.display().to_string(),
        installation_id: backup_id,
        licenses: backup_rows,
        kept_unreadable: kept,
    })
}

/// The database file, and the files beside it ("-wal", "-shm", ...).
fn db_file(config: &Config, suffix: &str) -> std::path::PathBuf {
    config.data_dir.join(format!("{}{suffix}", crate::store::DB_FILE))
}

fn check_replaceable(
    current: &Current,
    current_path: &Path,
    file: &Path,
    backup_id: &str,
    backup_rows: i64,
    force: bool,
) -> anyhow::Result<()> {
    match current {
        Some(Err(e)) if !force => bail!(
            "the current database {} cannot be read ({e}); `berth restore --force` puts the backup in its place and keeps it as {}.unreadable-<time>",
            current_path.display(),
            crate::store::DB_FILE
        ),
        Some(Ok((id, _))) if id != backup_id => {
            bail!(
                "{} belongs to installation {backup_id}, this is {id}",
                file.display()
            )
        }
        Some(Ok((_, rows))) if *rows > backup_rows && !force => bail!(
            "the current log holds {}, the backup only {backup_rows}: restoring would lose {} (use --force if that is really wanted)",
            counted(*rows, "license"),
            counted(rows - backup_rows, "acknowledged license")
        ),
        _ => Ok(()),
    }
}

/// Folds a readable database's WAL into it (a power cut between removing the
/// WAL and the rename must not lose its commits), or moves an unreadable one
/// aside with its WAL, for whoever wants to look into it later; returns the
/// name it was kept under.
fn set_current_aside(
    config: &Config,
    current: &Current,
    current_path: &Path,
) -> anyhow::Result<Option<String>> {
    match current {
        Some(Ok(_)) => {
            Db::fold_wal(current_path)
                .with_context(|| format!("checkpointing {}", current_path.display()))?;
            Ok(None)
        }
        Some(Err(_)) => {
            let stamp = SystemClock.now().format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))?;
            let name = format!("{}.unreadable-{stamp}", crate::store::DB_FILE);
            for suffix in ["", "-wal", "-shm"] {
                let from = db_file(config, suffix);
                if from.exists() {
                    std::fs::rename(&from, config.data_dir.join(format!("{name}{suffix}")))
                        .with_context(|| format!("moving {} aside", from.display()))?;
                }
            }
            Ok(Some(name))
        }
        None => Ok(None),
    }
}
