//! Content keys as the CLI and the crew UI handle them: a key file imported
//! into the store, all or nothing, and the list of keys (never a key).

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;

use crate::store::{Db, ImportOutcome};

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
pub fn import_file(db: &mut Db, path: &std::path::Path, now: OffsetDateTime) -> anyhow::Result<Imported> {
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
    import(db, &bytes, now).with_context(|| format!("reading keys from {}", path.display()))
}

/// Parses a key file (berth JSON or DASH-IF CPIX) and imports every key in
/// it, or none.
pub fn import(db: &mut Db, file: &[u8], now: OffsetDateTime) -> anyhow::Result<Imported> {
    let keys = crate::keyfile::parse(file)?;
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
    pub added_at: String,
}

/// Every content key: KID, label, when it was added.
#[derive(Serialize)]
pub struct Keys {
    pub keys: Vec<Key>,
}

impl fmt::Display for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<36}  {:<24}  label", "kid", "added")?;
        for k in &self.keys {
            writeln!(f, "{:<36}  {:<24}  {}", k.kid, k.added_at, k.label)?;
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
