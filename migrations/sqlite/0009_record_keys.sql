-- A record's key hash (see 0007) moves from an index on `records` to a table
-- of its own, mapping (key_hash, set_id) to the record's rowid. Inserted with
-- the row, a random hash went anywhere in the index, and that search cost
-- more than the rest of the row's storing. Apart, the writer inserts a
-- batch's rows in input order (appends to the table and the day index) and
-- their keys sorted by hash, each beside the one before. On 1M rows
-- (bench/sqlite-keys.sh, the `sqlite3` shell) storing took 2.1-2.4 s of CPU
-- with the index, 1.2-1.3 s with this table and 0.7 s with no key at all;
-- sorting the rows by hash instead gave 1.7-2.5 s, as the day index then
-- takes them out of order. The hash leads, so that comparing two entries is
-- almost always one integer comparison. Rows stored without a hash (their
-- hash held by another key of the set) have no entry; a small partial index
-- finds them.
CREATE TABLE record_keys (
    key_hash INTEGER NOT NULL,
    set_id INTEGER NOT NULL,
    row INTEGER NOT NULL,
    PRIMARY KEY (key_hash, set_id)
) WITHOUT ROWID;
INSERT INTO record_keys (key_hash, set_id, row)
SELECT key_hash, set_id, rowid FROM records WHERE key_hash IS NOT NULL ORDER BY key_hash, set_id;

DROP INDEX records_by_key;
CREATE INDEX records_unhashed ON records (set_id) WHERE key_hash IS NULL;

-- Whatever removes a row removes its key.
CREATE TRIGGER records_key_gone AFTER DELETE ON records WHEN old.key_hash IS NOT NULL
BEGIN
    DELETE FROM record_keys WHERE key_hash = old.key_hash AND set_id = old.set_id AND row = old.rowid;
END;
