-- berth schema, version 1. Released migrations are never edited; add a new file.

-- The one installation this database belongs to. Secrets are AES-256-GCM sealed
-- under the master key, which lives outside the database.
CREATE TABLE installation (
    singleton          INTEGER PRIMARY KEY CHECK (singleton = 1),
    installation_id    TEXT NOT NULL,
    vessel_type        TEXT NOT NULL CHECK (vessel_type IN ('aircraft', 'train', 'ship', 'bus', 'other')),
    vessel_name        TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    signing_key_sealed BLOB NOT NULL,
    public_key_der     BLOB NOT NULL,
    pepper_sealed      BLOB NOT NULL
);

CREATE TABLE content_keys (
    kid        BLOB PRIMARY KEY CHECK (length(kid) = 16),
    key_sealed BLOB NOT NULL,
    label      TEXT NOT NULL DEFAULT '',
    added_at   TEXT NOT NULL
);

CREATE TABLE com_keys (
    id            TEXT PRIMARY KEY,
    secret_sealed BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT
);

-- Bumped whenever content or communication keys change, so a running server
-- notices keys imported by the CLI.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('key_generation', '0');

-- The append-only, hash-chained license log (SPEC section 5).
CREATE TABLE license_log (
    seq          INTEGER PRIMARY KEY,
    issued_at    TEXT NOT NULL,
    key_system   TEXT NOT NULL,
    kids         TEXT NOT NULL,
    license_type TEXT NOT NULL,
    user_hash    TEXT NOT NULL,
    token_id     TEXT NOT NULL,
    com_key_id   TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    row_hash     TEXT NOT NULL
);
CREATE INDEX license_log_issued_at ON license_log (issued_at);

CREATE TRIGGER license_log_no_update BEFORE UPDATE ON license_log
BEGIN SELECT RAISE(ABORT, 'the license log is append-only'); END;
CREATE TRIGGER license_log_no_delete BEFORE DELETE ON license_log
BEGIN SELECT RAISE(ABORT, 'the license log is append-only'); END;

-- Ids of single-use tokens (prevent_drm_message_reuse) that have been spent.
CREATE TABLE used_tokens (
    token_id     TEXT PRIMARY KEY,
    usable_until TEXT
) WITHOUT ROWID;

-- Aggregates maintained in the same transaction as the log rows, so that
-- statistics never scan the log.
CREATE TABLE usage_daily (
    day          TEXT NOT NULL,
    key_system   TEXT NOT NULL,
    licenses     INTEGER NOT NULL,
    without_user INTEGER NOT NULL,
    PRIMARY KEY (day, key_system)
) WITHOUT ROWID;

CREATE TABLE usage_users (
    month     TEXT NOT NULL,
    user_hash TEXT NOT NULL,
    PRIMARY KEY (month, user_hash)
) WITHOUT ROWID;

CREATE TABLE usage_monthly (
    month        TEXT PRIMARY KEY,
    active_users INTEGER NOT NULL
) WITHOUT ROWID;

-- Crew accounts for the admin UI; passwords as argon2 PHC strings.
CREATE TABLE crew_users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at    TEXT NOT NULL
);
