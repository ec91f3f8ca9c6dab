-- Keys that arrive sealed (encrypted CPIX). The vessel's delivery key pair:
-- key providers encrypt content keys for its certificate. The private key
-- (PKCS#8 DER) is sealed under the master key like every other secret; the
-- certificate is public. `source` is 'generated' (by berth) or 'imported'
-- (a PKCS#12 the vendor issued).
CREATE TABLE IF NOT EXISTS delivery_key (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    key_sealed      BLOB NOT NULL,
    certificate_der BLOB NOT NULL,
    source          TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
-- content_keys.period (a key rotation period from CPIX, for people) is added
-- by the migration's Rust step, only where it is missing.
