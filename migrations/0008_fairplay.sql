-- The content provider's FairPlay Streaming credentials (one set per
-- installation): the FPS certificate (public, DER), its private key
-- (PKCS#8 DER) and the ASk, both sealed under the master key like every
-- other secret.
CREATE TABLE IF NOT EXISTS fairplay_credentials (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    certificate_der BLOB NOT NULL,
    key_sealed      BLOB NOT NULL,
    ask_sealed      BLOB NOT NULL,
    imported_at     TEXT NOT NULL
);
