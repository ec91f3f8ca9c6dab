-- HLS players fetch a key again and again (video.js for every segment, hls.js
-- on level switches and retries). A second fetch of the same key with the same
-- token, while the token is valid, is delivered but is not a license: it adds
-- no log row and counts here, per day, as a repeat.
-- usage_daily.repeats is added by the migration's Rust step, which adds it
-- only where it is missing (a database whose version was set back by hand, as
-- the tests do, already has it; SQLite has no ADD COLUMN IF NOT EXISTS).

-- Which (token, key) pairs received their key, and until when a fetch again
-- is a repeat. `digest` is the first 16 bytes of SHA-256 over the token's
-- signature and the KID (hex): neither the token nor the user is kept.
CREATE TABLE IF NOT EXISTS key_deliveries (
    digest       TEXT PRIMARY KEY,
    usable_until TEXT NOT NULL
) WITHOUT ROWID;
