//! The vendor's registry of installations (a TOML file): what each
//! installation is, said by the vendor rather than by the box. The receiver,
//! `fleet summary` and `fleet bill` take it with `--registry`.
//!
//! ```toml
//! [installations.a320-d-aine]
//! vessel_type = "aircraft"
//! public_key = "keys/a320-d-aine.pem"   # optional; relative to this file
//! first_sequence = 7                     # optional; a box moved from another receiver
//! ```
//!
//! Without a registry, an installation's vessel type is pinned by its first
//! stored (or counted) report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::crypto::PublicKey;
use crate::installation::InstallationId;
use crate::store::VesselType;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    installations: BTreeMap<String, EntryFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    vessel_type: String,
    public_key: Option<PathBuf>,
    first_sequence: Option<i64>,
}

/// One registered installation.
#[derive(Debug, Clone)]
pub struct Registered {
    pub vessel_type: VesselType,
    /// The installation's report key (Ed25519, DER).
    pub public_key: Option<Vec<u8>>,
    /// The sequence its first report on this receiver must have (1 unless
    /// the box moved here from another receiver).
    pub first_sequence: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub installations: BTreeMap<String, Registered>,
}

impl Registry {
    /// Reads and checks a registry: known vessel types, valid installation
    /// ids, readable keys, sequences from 1.
    pub fn load(path: &Path) -> anyhow::Result<Registry> {
        let context = |e: String| anyhow::anyhow!("the registry {}: {e}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| context(e.to_string()))?;
        let file: RegistryFile = toml::from_str(&text).map_err(|e| context(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut installations = BTreeMap::new();
        for (id, entry) in file.installations {
            let at = |e: String| context(format!("installations.{id}: {e}"));
            id.parse::<InstallationId>().map_err(|e| at(e.to_string()))?;
            let vessel_type: VesselType = entry
                .vessel_type
                .parse()
                .map_err(|e: crate::ids::ParseError| at(e.0))?;
            let public_key = entry
                .public_key
                .map(|p| PublicKey::load(&base.join(p)).map(|k| k.der()))
                .transpose()
                .map_err(|e| at(e.to_string()))?;
            let first_sequence = entry.first_sequence.unwrap_or(1);
            if first_sequence < 1 {
                return Err(at("first_sequence must be 1 or more".into()));
            }
            installations.insert(
                id,
                Registered {
                    vessel_type,
                    public_key,
                    first_sequence,
                },
            );
        }
        Ok(Registry { installations })
    }

    pub fn get(&self, installation: &str) -> Option<&Registered> {
        self.installations.get(installation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_and_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.toml");
        let write = |text: &str| std::fs::write(&path, text).unwrap();
        write("[installations.ship-1]\nvessel_type = \"ship\"\nfirst_sequence = 3\n");
        let registry = Registry::load(&path).unwrap();
        let ship = registry.get("ship-1").unwrap();
        assert_eq!((ship.vessel_type, ship.first_sequence), (VesselType::Ship, 3));
        for (bad, says) in [
            (
                "[installations.ship-1]\nvessel_type = \"yacht\"\n",
                "installations.ship-1",
            ),
            (
                "[installations.\"..\"]\nvessel_type = \"ship\"\n",
                "installations...",
            ),
            (
                "[installations.x]\nvessel_type = \"ship\"\nfirst_sequence = 0\n",
                "first_sequence",
            ),
            (
                "[installations.x]\nvessel_type = \"ship\"\nprice = 1\n",
                "unknown field",
            ),
            (
                "[installations.x]\nvessel_type = \"ship\"\npublic_key = \"none.pem\"\n",
                "installations.x",
            ),
        ] {
            write(bad);
            let err = Registry::load(&path).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
