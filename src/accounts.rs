//! Crew accounts and communication keys: the rules and the fresh secrets that
//! the CLI and the admin UI share, so both make them the same way.

use argon2::PasswordHasher as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto;
use crate::ids::{ComKeyId, Secret32};

/// What a crew account may be.
pub const ROLES: [&str; 2] = ["admin", "viewer"];

/// Why a crew account cannot be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("a user name must be 1 to 64 characters without spaces")]
    BadName,
    #[error("a role is admin or viewer")]
    BadRole,
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

pub fn check_role(role: &str) -> Result<&str, AccountError> {
    ROLES
        .iter()
        .find(|r| **r == role)
        .copied()
        .ok_or(AccountError::BadRole)
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
        assert_eq!(check_role("viewer"), Ok("viewer"));
        assert!(check_role("root").is_err());
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
