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
