//! The license log's hash chain (SPEC section 5), shared by the log writer, `berth
//! log verify` and the report verifier.
//!
//! Architecture Invariant: pure; no I/O.

use crate::crypto::Sha256;
use crate::ids::hex;

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One log row's fields, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    pub seq: i64,
    pub issued_at: &'a str,
    pub key_system: &'a str,
    pub kids: &'a str,
    pub license_type: &'a str,
    pub user_hash: &'a str,
    pub token_id: &'a str,
    pub com_key_id: &'a str,
}

/// `row_hash = hex(SHA-256(prev_hash + "|" + seq + "|" + issued_at + ... + com_key_id))`.
pub fn row_hash(prev_hash: &str, row: &Row<'_>) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    let seq = row.seq.to_string();
    for field in [
        seq.as_str(),
        row.issued_at,
        row.key_system,
        row.kids,
        row.license_type,
        row.user_hash,
        row.token_id,
        row.com_key_id,
    ] {
        h.update(b"|");
        h.update(field.as_bytes());
    }
    hex(&h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_spec_formula() {
        let row = Row {
            seq: 1,
            issued_at: "2026-11-01T00:00:00.000Z",
            key_system: "clearkey",
            kids: "9eb4050d-e44b-4802-932e-27d75083e266",
            license_type: "temporary",
            user_hash: "",
            token_id: "",
            com_key_id: "d631e5a4-00f7-427a-9166-63914e70df91",
        };
        let text = format!(
            "{GENESIS}|1|2026-11-01T00:00:00.000Z|clearkey|9eb4050d-e44b-4802-932e-27d75083e266|temporary|||d631e5a4-00f7-427a-9166-63914e70df91"
        );
        assert_eq!(
            row_hash(GENESIS, &row),
            crate::crypto::sha256_hex(text.as_bytes())
        );
    }
}
