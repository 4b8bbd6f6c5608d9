-- A record's row no longer holds its day and its sort key: both follow from
-- what it holds already. Every sort key the service writes is the record's
-- `date_created` to the second (`YYYY-MM-DDTHH:MM:SSZ`), a `|`, and the SID
-- that orders it within its second: its key, or the key's part after the
-- `/` for a conference participant (`<conference>/<call>`); migration 0016
-- read `at` from that time, and the day is `at`'s. The two columns were 66
-- of a row's 160 bytes, written to the table and to the WAL by every load
-- (see docs/decisions.md); the service now computes them where it shows
-- them (src/db/deletions.rs) and an export orders a second's records by the
-- key's SID (src/db/records/postgres.rs).
--
-- A dropped column keeps its place in every row written after it (as a
-- NULL), so the table is made again, its columns ordered to waste no
-- alignment padding, its rows in the order an export reads them.
CREATE TABLE records_compact (
    at BIGINT NOT NULL,
    seg BIGINT NOT NULL,
    set_id INTEGER NOT NULL,
    ord INTEGER NOT NULL,
    part SMALLINT NOT NULL,
    rest_deleted BOOLEAN NOT NULL DEFAULT FALSE,
    export_deleted BOOLEAN NOT NULL DEFAULT FALSE,
    record_key TEXT COLLATE "C" NOT NULL
);
INSERT INTO records_compact (at, seg, set_id, ord, part, rest_deleted, export_deleted, record_key)
    SELECT at, seg, set_id, ord, part, rest_deleted, export_deleted, record_key
    FROM records ORDER BY set_id, at, sort_key;
DROP TABLE records;
ALTER TABLE records_compact RENAME TO records;
CREATE INDEX records_by_key_0 ON records USING hash (record_key) WHERE part = 0;
CREATE INDEX records_by_key_1 ON records USING hash (record_key) WHERE part = 1;
CREATE INDEX records_by_time ON records (set_id, at);
