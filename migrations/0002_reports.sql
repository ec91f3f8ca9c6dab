-- Monthly usage reports and their upload outbox (SPEC section 6).

CREATE TABLE reports (
    sequence        INTEGER PRIMARY KEY,
    month           TEXT NOT NULL UNIQUE,
    file_name       TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    zip_sha256      TEXT NOT NULL,
    first_seq       INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL,
    last_row_hash   TEXT NOT NULL,
    licenses        INTEGER NOT NULL,
    active_users    INTEGER NOT NULL,
    generated_at    TEXT NOT NULL,
    -- Upload outbox: NULL until a receiver answered 2xx.
    uploaded_at     TEXT,
    upload_attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT
);

-- Rows stamped earlier than the row before them (a vessel clock set back), per
-- month of the row's own stamp; shown by `berth stats`.
ALTER TABLE usage_monthly ADD COLUMN clock_anomalies INTEGER NOT NULL DEFAULT 0;
