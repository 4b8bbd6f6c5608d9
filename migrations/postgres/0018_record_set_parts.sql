-- How many transactions have written each part of a record set (see
-- src/db/records/parts.rs): every writer counts itself here under the
-- part's advisory lock, and a bulk load that has been the only writer of a
-- part since it was empty skips looking up the keys it has not stored.
-- Every set that exists already counts as written, so that no load takes
-- it for empty.
CREATE TABLE record_set_parts (
    set_id INTEGER NOT NULL,
    part SMALLINT NOT NULL,
    writes BIGINT NOT NULL,
    PRIMARY KEY (set_id, part)
);
INSERT INTO record_set_parts (set_id, part, writes)
    SELECT id, part, 1 FROM record_sets CROSS JOIN (VALUES (0), (1)) AS parts (part);
