-- Day-file lines of records loaded in bulk live outside the database, in
-- append-only segment files beside it (`<database>-lines/<id>.seg`, see
-- src/db/lines.rs): inside it, each line was written twice (the WAL, then the
-- checkpoint), which was most of a bulk load's I/O. Such a row keeps an empty
-- `line` and says where its line is: the segment, the offset and the length
-- (the line is followed by a newline there). Rows stored before keep their line.
ALTER TABLE records ADD COLUMN line_seg INTEGER;
ALTER TABLE records ADD COLUMN line_off INTEGER;
ALTER TABLE records ADD COLUMN line_len INTEGER;

-- One row per segment file. Only the writer holding the file's lock appends
-- to it; bytes past `committed_len` belong to no committed row (a writer that
-- died or rolled back) and the next writer cuts them off.
CREATE TABLE line_segments (
    id INTEGER PRIMARY KEY,
    committed_len INTEGER NOT NULL DEFAULT 0
);

-- Ranges of segments that no row uses any more (replaced or deleted records),
-- written in the transaction that stopped using them. A sweep erases them
-- (punches holes) once no reader that could still see the old rows is left.
-- AUTOINCREMENT: a sweep removes the ids it erased, which must never name
-- a range added meanwhile.
CREATE TABLE line_garbage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seg INTEGER NOT NULL,
    off INTEGER NOT NULL,
    len INTEGER NOT NULL
);
