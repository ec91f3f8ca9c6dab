-- Licenses per UTC day, key system and KID (a license for several KIDs counts
-- once under each), kept by the log writer in the same transaction as the
-- rows. The admin license log's KID filter reads it to visit only the days a
-- KID was licensed on and to count its matches, instead of scanning the log.
CREATE TABLE usage_kid_daily (
    kid        TEXT NOT NULL,
    day        TEXT NOT NULL,
    key_system TEXT NOT NULL,
    licenses   INTEGER NOT NULL,
    PRIMARY KEY (kid, day, key_system)
) WITHOUT ROWID;

-- The rows logged before this table existed are counted into it by
-- `count_licenses_per_kid` in src/store/migrate.rs, in the same transaction.
