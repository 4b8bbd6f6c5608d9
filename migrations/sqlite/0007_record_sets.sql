-- Records are keyed by a small integer set (account, resource type) and a
-- 64-bit hash of the record's key instead of the key's text: the text key
-- index took about 85 bytes an entry, so a load of random SIDs touched more
-- index pages than the writer's cache holds; the hash index takes about 10
-- bytes an entry and halved the time to store a record. The hash is not
-- unique: the writer keeps (set_id, key_hash) unique and stores a record whose
-- hash another key of its set already holds with key_hash NULL; lookups check
-- record_key. The hash (db::records::key_hash) is the 8 hex digits after the
-- key's two-letter prefix, then the 8 that end 8 characters before its end.
CREATE TABLE record_sets (
    id INTEGER PRIMARY KEY,
    account_sid TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    UNIQUE (account_sid, resource_type)
);
INSERT INTO record_sets (account_sid, resource_type)
SELECT DISTINCT account_sid, resource_type FROM records ORDER BY account_sid, resource_type;

CREATE TABLE records_by_set (
    set_id INTEGER NOT NULL,
    key_hash INTEGER,
    record_key TEXT NOT NULL,
    day TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    line TEXT NOT NULL,
    rest_deleted BOOLEAN NOT NULL DEFAULT FALSE,
    export_deleted BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO records_by_set (set_id, key_hash, record_key, day, sort_key, line, rest_deleted, export_deleted)
SELECT set_id, CASE WHEN ROW_NUMBER() OVER (PARTITION BY set_id, key_hash ORDER BY record_key) = 1 THEN key_hash END,
       record_key, day, sort_key, line, rest_deleted, export_deleted
FROM (
    SELECT s.id AS set_id, r.record_key, r.day, r.sort_key, r.line, r.rest_deleted, r.export_deleted,
        (((instr('0123456789abcdef', lower(substr(r.record_key, 3, 1))) - 1) & 15) << 60) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, 4, 1))) - 1) & 15) << 56) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, 5, 1))) - 1) & 15) << 52) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, 6, 1))) - 1) & 15) << 48) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, 7, 1))) - 1) & 15) << 44) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, 8, 1))) - 1) & 15) << 40) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, 9, 1))) - 1) & 15) << 36) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, 10, 1))) - 1) & 15) << 32) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, -16, 1))) - 1) & 15) << 28) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, -15, 1))) - 1) & 15) << 24) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, -14, 1))) - 1) & 15) << 20) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, -13, 1))) - 1) & 15) << 16) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, -12, 1))) - 1) & 15) << 12) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, -11, 1))) - 1) & 15) << 8) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, -10, 1))) - 1) & 15) << 4) |
        (((instr('0123456789abcdef', lower(substr(r.record_key, -9, 1))) - 1) & 15) << 0) AS key_hash
    FROM records r JOIN record_sets s ON s.account_sid = r.account_sid AND s.resource_type = r.resource_type
)
ORDER BY set_id, day, sort_key;

DROP TABLE records;
ALTER TABLE records_by_set RENAME TO records;
CREATE UNIQUE INDEX records_by_key ON records (set_id, key_hash);
CREATE INDEX records_by_day ON records (set_id, day, sort_key);
