//! The FairPlay Streaming credentials: the certificate in the clear, the
//! private key and the ASk sealed under the master key.

use rusqlite::{OptionalExtension as _, params};
use time::OffsetDateTime;

use super::{Db, StoreError};
use crate::crypto::fairplay::ProviderKey;
use crate::fairplay::{Ask, Credentials};
use crate::ids::format_instant;

const KEY_CONTEXT: &[u8] = b"berth fairplay private key";
const ASK_CONTEXT: &[u8] = b"berth fairplay ask";

impl Db {
    /// Stores the credentials, replacing any others; the running server
    /// picks them up with the keys.
    pub fn set_fairplay_credentials(
        &mut self,
        credentials: &Credentials,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO fairplay_credentials
                 (singleton, certificate_der, key_sealed, ask_sealed, imported_at)
             VALUES (1, ?1, ?2, ?3, ?4)",
            params![
                credentials.key.certificate_der(),
                self.master.seal(KEY_CONTEXT, &credentials.key.pkcs8_der()),
                self.master.seal(ASK_CONTEXT, &credentials.ask.0),
                format_instant(now)
            ],
        )?;
        Self::bump_key_generation(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// The credentials, opened, if any were imported.
    pub fn fairplay_credentials(&self) -> Result<Option<Credentials>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT certificate_der, key_sealed, ask_sealed FROM fairplay_credentials",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((certificate, key_sealed, ask_sealed)) = row else {
            return Ok(None);
        };
        let mut pkcs8 = self.master.open(KEY_CONTEXT, &key_sealed)?;
        let key = ProviderKey::new(&certificate, &pkcs8);
        crate::crypto::wipe(&mut pkcs8);
        let key =
            key.map_err(|e| StoreError::Unreadable(format!("FairPlay credentials that do not load: {e}")))?;
        let ask = Ask(self.master.open_array(ASK_CONTEXT, &ask_sealed)?);
        Ok(Some(Credentials { key, ask }))
    }

    /// The FPS certificate (DER) alone, with when it was imported: public,
    /// so showing it opens no secret.
    pub fn fairplay_certificate(&self) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT certificate_der, imported_at FROM fairplay_credentials",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}
