-- A record's key belongs to one of two parts of its set (`part`, see
-- `part_of` in src/db/records/postgres.rs), and each part has a hash index
-- of its own. Every insert into a hash index takes its metapage's lock to
-- count the entry: the two writers of a batch (one a part) queued on that
-- one page of `records_by_key` for most of a load (see docs/decisions.md).
--
-- The part is the lowest bit of the record key's 64-bit hash
-- (src/db/records/keys.rs): the byte 9 from the key's end as a hex digit
-- (either case), any other byte counting as 15; a key of fewer than 9 bytes
-- is in part 0. A change of type with USING rewrites the table once (as in
-- migration 0016) and rebuilds its time index in bulk.
CREATE FUNCTION pg_temp.key_part(key TEXT) RETURNS SMALLINT LANGUAGE SQL IMMUTABLE AS $$
    SELECT (CASE
        WHEN b IS NULL THEN 0
        WHEN b BETWEEN 48 AND 57 THEN b % 2
        WHEN b BETWEEN 65 AND 70 OR b BETWEEN 97 AND 102 THEN (b + 1) % 2
        ELSE 1
    END)::SMALLINT
    FROM (SELECT CASE WHEN octet_length(key) >= 9
                 THEN get_byte(textsend(key), octet_length(key) - 9) END AS b) AS byte
$$;
DROP INDEX records_by_key;
ALTER TABLE records ADD COLUMN part SMALLINT;
ALTER TABLE records ALTER COLUMN part SET DATA TYPE SMALLINT USING pg_temp.key_part(record_key);
ALTER TABLE records ALTER COLUMN part SET NOT NULL;
CREATE INDEX records_by_key_0 ON records USING hash (record_key) WHERE part = 0;
CREATE INDEX records_by_key_1 ON records USING hash (record_key) WHERE part = 1;
DROP FUNCTION pg_temp.key_part(TEXT);
