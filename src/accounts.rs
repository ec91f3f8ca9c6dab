//! Crew accounts and communication keys: the rules and the fresh secrets that
//! the CLI and the admin UI share, so both make them the same way.

use argon2::PasswordHasher as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use time::OffsetDateTime;

use crate::crypto;
use crate::ids::{ComKeyId, Secret32};
use crate::store::Db;

pub use crate::ids::{Role, UnknownRole};

/// Why a crew account cannot be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("a user name must be 1 to 64 characters without spaces")]
    BadName,
}

/// A user name as stored: trimmed, 1 to 64 characters, no spaces or controls.
pub fn check_user_name(name: &str) -> Result<&str, AccountError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(AccountError::BadName);
    }
    Ok(name)
}

/// A generated password: 120 random bits, 20 URL-safe characters.
pub fn new_password() -> String {
    URL_SAFE_NO_PAD.encode(crypto::random::<15>())
}

/// An argon2id PHC string for the password.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// A random (version 4) UUID.
pub fn new_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(crypto::random()).into_uuid()
}

/// A new communication key: a random id and a 256-bit secret.
pub fn new_com_key() -> (ComKeyId, Secret32) {
    (ComKeyId(new_uuid()), Secret32(crypto::random()))
}

/// A secret from a file or, without one, from standard input: one line, its
/// trailing newline dropped; never from the command line.
pub fn read_secret(file: Option<&std::path::Path>, what: &str) -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    let read = match file {
        Some(path) => std::fs::File::open(path)
            .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
            .map_err(|e| anyhow::anyhow!("reading {what} from {}: {e}", path.display()))?,
        None => std::io::stdin()
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|e| anyhow::anyhow!("reading {what} from standard input: {e}"))?,
    };
    if read >= 64 * 1024 {
        anyhow::bail!("{what} is longer than 64 KiB");
    }
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        anyhow::bail!("{what} is empty");
    }
    Ok(line.to_owned())
}

/// What a crew or communication-key command did, for people (`Display`) and
/// for `--json` (`Serialize`); secrets in it are shown this once.
pub mod done {
    use std::fmt;

    use serde::Serialize;

    #[derive(Serialize)]
    pub struct UserAdded {
        pub user: String,
        pub role: super::Role,
        pub password: String,
    }

    impl fmt::Display for UserAdded {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            writeln!(
                f,
                "added {} {} with password {} (shown only now)",
                self.role, self.user, self.password
            )
        }
    }

    #[derive(Serialize)]
    pub struct PasswordSet {
        pub user: String,
        pub password: String,
    }

    impl fmt::Display for PasswordSet {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            writeln!(
                f,
                "new password for {}: {} (shown only now)",
                self.user, self.password
            )
        }
    }

    #[derive(Serialize)]
    pub struct Users {
        pub users: Vec<crate::store::CrewUser>,
    }

    impl fmt::Display for Users {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for u in &self.users {
                writeln!(f, "{:<24} {:<8} created {}", u.name, u.role, u.created_at)?;
            }
            Ok(())
        }
    }

    #[derive(Serialize)]
    pub struct ComKeyMade {
        pub com_key_id: String,
        pub com_key_secret: String,
    }

    impl fmt::Display for ComKeyMade {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            writeln!(f, "communication key id:  {}", self.com_key_id)?;
            writeln!(f, "communication secret:  {}", self.com_key_secret)?;
            writeln!(f, "The secret is shown only now.")
        }
    }

    #[derive(Serialize)]
    pub struct ComKey {
        pub id: String,
        pub created_at: crate::ids::Timestamp,
        pub last_used_at: Option<String>,
    }

    #[derive(Serialize)]
    pub struct ComKeys {
        pub com_keys: Vec<ComKey>,
    }

    impl fmt::Display for ComKeys {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for k in &self.com_keys {
                writeln!(f, "{}  created {}", k.id, k.created_at)?;
            }
            Ok(())
        }
    }
}

/// Adds a crew user with a fresh password.
pub fn add_user(db: &mut Db, name: &str, role: Role, now: OffsetDateTime) -> anyhow::Result<done::UserAdded> {
    let name = check_user_name(name)?;
    let password = new_password();
    db.add_user(name, &hash_password(&password)?, role, now)?;
    Ok(done::UserAdded {
        user: name.to_owned(),
        role,
        password,
    })
}

/// Gives a crew user a fresh password.
pub fn new_password_for(db: &mut Db, name: &str) -> anyhow::Result<done::PasswordSet> {
    let password = new_password();
    if !db.set_password(name, &hash_password(&password)?)? {
        anyhow::bail!("no crew user {name:?}");
    }
    Ok(done::PasswordSet {
        user: name.to_owned(),
        password,
    })
}

pub fn users(db: &Db) -> anyhow::Result<done::Users> {
    Ok(done::Users {
        users: db.list_users()?,
    })
}

/// Adds a communication key the portal already has; the secret is base64 text.
pub fn add_com_key(db: &mut Db, id: &ComKeyId, secret: &str, now: OffsetDateTime) -> anyhow::Result<()> {
    let bytes = crate::ids::decode_b64_any(secret)
        .ok_or_else(|| anyhow::anyhow!("the communication secret is not base64"))?;
    let secret: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("the communication secret must be 32 bytes (44 base64 characters)"))?;
    Ok(db.add_com_key(id, &Secret32(secret), now)?)
}

/// Makes and stores a new communication key; its secret is shown once.
pub fn generate_com_key(db: &mut Db, now: OffsetDateTime) -> anyhow::Result<done::ComKeyMade> {
    let (id, secret) = new_com_key();
    db.add_com_key(&id, &secret, now)?;
    Ok(done::ComKeyMade {
        com_key_id: id.to_string(),
        com_key_secret: base64::engine::general_purpose::STANDARD.encode(secret.0),
    })
}

pub fn com_keys(db: &Db) -> anyhow::Result<done::ComKeys> {
    let keys = db.list_com_keys()?.into_iter();
    Ok(done::ComKeys {
        com_keys: keys
            .map(|k| done::ComKey {
                id: k.id.to_string(),
                created_at: k.created_at,
                last_used_at: k.last_used_at,
            })
            .collect(),
    })
}

/// The communication key to sign with: the one asked for, or the oldest.
pub fn com_key(db: &Db, wanted: Option<ComKeyId>) -> anyhow::Result<crate::token::ComKey> {
    let keys = db.com_keys()?;
    let found = match wanted {
        Some(wanted) => keys.into_iter().find(|(id, _)| *id == wanted),
        None => keys.into_iter().next(),
    };
    match (found, wanted) {
        (Some((id, secret)), _) => Ok(crate::token::ComKey::new(id, secret)),
        (None, Some(wanted)) => anyhow::bail!("no communication key {wanted}"),
        (None, None) => anyhow::bail!("there is no communication key: run `berth comkey generate`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_trimmed_and_bounded() {
        assert_eq!(check_user_name("  crew1 "), Ok("crew1"));
        assert!(check_user_name("").is_err());
        assert!(check_user_name("two words").is_err());
        assert!(check_user_name("bell\u{7}").is_err());
        assert!(check_user_name(&"x".repeat(65)).is_err());
        assert!(check_user_name(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn roles_are_admin_or_viewer() {
        assert_eq!("viewer".parse::<Role>(), Ok(Role::Viewer));
        assert_eq!("root".parse::<Role>(), Err(UnknownRole));
        assert_eq!("admin".parse::<Role>().map(Role::as_str), Ok("admin"));
    }

    #[test]
    fn passwords_verify_against_their_hash() {
        let password = new_password();
        assert_eq!(password.len(), 20);
        let hash = hash_password(&password).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert_ne!(new_password(), password);
    }
}
