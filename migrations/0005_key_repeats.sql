-- HLS players fetch a key again and again (video.js for every segment, hls.js
-- on level switches and retries). A second fetch of the same key with the same
-- token, while the token is valid, is delivered but is not a license: it adds
-- no log row and counts here, per day, as a repeat.
ALTER TABLE usage_daily ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0;

-- Which (token, key) pairs received their key, and until when a fetch again
-- is a repeat. `digest` is the first 16 bytes of SHA-256 over the token's
-- signature and the KID (hex): neither the token nor the user is kept.
CREATE TABLE IF NOT EXISTS key_deliveries (
    digest       TEXT PRIMARY KEY,
    usable_until TEXT NOT NULL
) WITHOUT ROWID;
