//! Content keys and the vessel's delivery key pair, sealed under the master key.

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::{Db, ImportOutcome, KeyInfo, StoreError};
use crate::crypto::{DeliveryKey, ct_eq};
use crate::ids::NewKey;
use crate::ids::{ContentKey, Kid, Timestamp, format_instant};

fn kid_context(kid: &Kid) -> Vec<u8> {
    [b"berth content key ".as_slice(), &kid.0].concat()
}

/// A KID as the store keeps it (16 bytes).
fn stored_kid(bytes: Vec<u8>) -> Result<Kid, StoreError> {
    Ok(Kid(bytes.try_into().map_err(|_| {
        StoreError::Unreadable("a KID that is not 16 bytes".into())
    })?))
}

const DELIVERY_KEY_CONTEXT: &[u8] = b"berth delivery key";

/// Where the delivery key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverySource {
    Generated,
    Imported,
}

impl DeliverySource {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliverySource::Generated => "generated",
            DeliverySource::Imported => "imported",
        }
    }
}

impl Db {
    /// Imports keys all-or-nothing. A key already stored with the same value is
    /// left alone; a different value for a known KID fails the whole import.
    pub fn import_keys(&mut self, keys: &[NewKey], now: OffsetDateTime) -> Result<ImportOutcome, StoreError> {
        let master = Arc::clone(&self.master);
        let tx = self.conn.transaction()?;
        let mut outcome = ImportOutcome::default();
        {
            let mut find = tx.prepare("SELECT key_sealed FROM content_keys WHERE kid = ?1")?;
            let mut insert = tx.prepare(
                "INSERT INTO content_keys (kid, key_sealed, label, added_at, period) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let added_at = format_instant(now);
            for new in keys {
                let existing: Option<Vec<u8>> = find.query_row([&new.kid.0[..]], |r| r.get(0)).optional()?;
                match existing {
                    Some(sealed) => {
                        let stored: [u8; 16] = master.open_array(&kid_context(&new.kid), &sealed)?;
                        if !ct_eq(&stored, &new.key.0) {
                            return Err(StoreError::KeyConflict(new.kid));
                        }
                        outcome.unchanged += 1;
                    }
                    None => {
                        let sealed = master.seal(&kid_context(&new.kid), &new.key.0);
                        insert.execute(params![&new.kid.0[..], sealed, new.label, added_at, new.period])?;
                        outcome.added += 1;
                    }
                }
            }
        }
        if outcome.added > 0 {
            Self::bump_key_generation(&tx)?;
        }
        tx.commit()?;
        Ok(outcome)
    }

    pub fn remove_key(&mut self, kid: &Kid) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute("DELETE FROM content_keys WHERE kid = ?1", [&kid.0[..]])?;
        Self::bump_key_generation(&tx)?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Every content key, decrypted (for the server's in-memory cache).
    pub fn content_keys(&self) -> Result<Vec<(Kid, ContentKey)>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT kid, key_sealed FROM content_keys")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (kid, sealed) = row?;
            let kid = stored_kid(kid)?;
            let key = self.master.open_array(&kid_context(&kid), &sealed)?;
            out.push((kid, ContentKey(key)));
        }
        Ok(out)
    }

    pub fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT kid, label, added_at, period FROM content_keys ORDER BY added_at, kid")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Timestamp>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        rows.map(|row| {
            let (kid, label, added_at, period) = row?;
            let kid = stored_kid(kid)?;
            Ok(KeyInfo {
                kid,
                label,
                added_at,
                period,
            })
        })
        .collect()
    }

    /// The vessel's delivery key pair, when it has one.
    pub fn delivery_key(&self) -> Result<Option<DeliveryKey>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .conn
            .query_row("SELECT key_sealed, certificate_der FROM delivery_key", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((sealed, certificate)) = row else {
            return Ok(None);
        };
        let pkcs8 = self.master.open(DELIVERY_KEY_CONTEXT, &sealed)?;
        Ok(Some(DeliveryKey::from_der(&pkcs8, &certificate)?))
    }

    /// The delivery certificate (DER) alone: public, stored in the clear, so
    /// showing it opens no secret.
    pub fn delivery_certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT certificate_der FROM delivery_key", [], |r| r.get(0))
            .optional()?)
    }

    /// Stores `key` as the vessel's delivery key pair, replacing any other.
    pub fn set_delivery_key(
        &mut self,
        key: &DeliveryKey,
        source: DeliverySource,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO delivery_key (singleton, key_sealed, certificate_der, source, created_at)
             VALUES (1, ?1, ?2, ?3, ?4)",
            params![
                self.master.seal(DELIVERY_KEY_CONTEXT, &key.pkcs8_der()),
                key.certificate_der(),
                source.as_str(),
                format_instant(now)
            ],
        )?;
        Ok(())
    }
}
