-- Pruning the license log (`berth log prune`): the rows of months whose signed
-- reports are on the box may be removed, oldest first. The chain then begins at
-- the first row kept; this table records it and the hash of the row before it
-- (the last one removed), so that `berth log verify` checks the chain from there.
-- IF [NOT] EXISTS: a database whose version was set back by hand (the tests do)
-- may already hold them.
CREATE TABLE IF NOT EXISTS log_pruned (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    -- Every row with a lower seq may be removed; none at or above it.
    first_seq       INTEGER NOT NULL CHECK (first_seq >= 1),
    -- The prev_hash of row first_seq: the row_hash of the last row removed.
    prev_hash       TEXT NOT NULL,
    -- The last month whose rows were removed, and its report's sequence.
    through_month   TEXT NOT NULL,
    report_sequence INTEGER NOT NULL,
    pruned_at       TEXT NOT NULL
);

-- The log stays append-only above the recorded line.
DROP TRIGGER IF EXISTS license_log_no_delete;
CREATE TRIGGER license_log_no_delete BEFORE DELETE ON license_log
WHEN old.seq >= coalesce((SELECT first_seq FROM log_pruned), 1)
BEGIN SELECT RAISE(ABORT, 'the license log is append-only'); END;
