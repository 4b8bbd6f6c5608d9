-- Records belong to record sets (an account's records of one resource type)
-- and are found by a hash index on their key, as on SQLite: the text primary
-- key (account_sid, resource_type, record_key), about 85 bytes an entry and
-- inserted in random order, cost more than the rows themselves on a bulk
-- load. Writers of one set take its advisory lock, so a key stays unique
-- without a unique index (see src/db/records/postgres.rs).
CREATE TABLE record_sets (
    id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_sid TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    UNIQUE (account_sid, resource_type)
);
INSERT INTO record_sets (account_sid, resource_type)
    SELECT DISTINCT account_sid, resource_type FROM records ORDER BY 1, 2;

ALTER TABLE records RENAME TO records_by_account;
CREATE TABLE records (
    set_id INTEGER NOT NULL,
    record_key TEXT COLLATE "C" NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    sort_key TEXT COLLATE "C" NOT NULL,
    line TEXT NOT NULL,
    rest_deleted BOOLEAN NOT NULL DEFAULT FALSE,
    export_deleted BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO records (set_id, record_key, day, sort_key, line, rest_deleted, export_deleted)
    SELECT s.id, r.record_key, r.day, r.sort_key, r.line, r.rest_deleted, r.export_deleted
    FROM records_by_account r JOIN record_sets s USING (account_sid, resource_type)
    ORDER BY s.id, r.day, r.sort_key;
DROP TABLE records_by_account;

-- A hash index holds a 4-byte hash of each key, not the key.
CREATE INDEX records_by_key ON records USING hash (record_key);
-- The order an export reads.
CREATE INDEX records_by_day ON records (set_id, day, sort_key);
