-- Signed checkpoints leave the box (issue 28): each one made is recorded here
-- after its files are on the disk, and waits in this outbox until the
-- receiver has it. They go ahead of the reports at every upload pass.
CREATE TABLE IF NOT EXISTS checkpoints (
    file_name       TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL,
    row_hash        TEXT NOT NULL,
    made_at         TEXT NOT NULL,
    uploaded_at     TEXT,
    upload_attempts INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TEXT
);
CREATE INDEX IF NOT EXISTS checkpoints_made_at ON checkpoints (made_at);

-- When berth served (issue 28, coverage): one row per run of `berth serve`,
-- its last sign of life refreshed every minute, its stop when it stopped
-- cleanly. A run without a stop ended (a crash, a power cut) at last_seen_at.
CREATE TABLE IF NOT EXISTS serving_periods (
    started_at   TEXT PRIMARY KEY,
    last_seen_at TEXT NOT NULL,
    stopped_at   TEXT
);

-- When the license log could not be written (a full disk, an I/O error): the
-- writer records the stretch once it can write again, so the month's report
-- shows the gap instead of a quiet spell.
CREATE TABLE IF NOT EXISTS log_outages (
    started_at TEXT NOT NULL,
    ended_at   TEXT NOT NULL,
    reason     TEXT NOT NULL
);
