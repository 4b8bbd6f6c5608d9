//! PostgreSQL's binary `COPY` format, the ways the record path uses it: rows
//! of `records` and `line_segments` written for `COPY … FROM STDIN (FORMAT
//! binary)`, and a day's `(seg, ord)` pairs read from `COPY (SELECT seg, ord
//! …) TO STDOUT (FORMAT binary)`. The format: an 11-byte signature, a 32-bit flags word
//! and a 32-bit header extension length (and that many bytes); then each row
//! as a 16-bit field count followed by each field's 32-bit length (-1 for
//! NULL) and its bytes, all big-endian; then a field count of -1.
//! <https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>

use crate::domain::record::Record;
use crate::domain::Day;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags and an empty header extension.
const HEADER_LEN: usize = 19;

/// The header every binary `COPY` stream starts with.
pub(super) fn header(buf: &mut Vec<u8>) {
    buf.extend_from_slice(SIGNATURE);
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
}

/// The trailer every binary `COPY` stream ends with.
pub(super) fn trailer(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i16).to_be_bytes());
}

/// One row of `records (at, seg, set_id, ord, part, rest_deleted,
/// export_deleted, record_key)`: the record's line is line `ord` of segment
/// `seg`. Its day and sort key follow from its second and its key
/// (migration `0019_records_without_derived_columns.sql`).
pub(super) fn record_row(
    buf: &mut Vec<u8>,
    set_id: i32,
    r: &Record,
    (seg, ord): (i64, i32),
    flags: (bool, bool),
    part: i16,
) {
    buf.extend_from_slice(&8i16.to_be_bytes());
    int8(buf, r.second());
    int8(buf, seg);
    int4(buf, set_id);
    int4(buf, ord);
    buf.extend_from_slice(&2i32.to_be_bytes());
    buf.extend_from_slice(&part.to_be_bytes());
    for flag in [flags.0, flags.1] {
        buf.extend_from_slice(&1i32.to_be_bytes());
        buf.push(u8::from(flag));
    }
    text(buf, r.key.as_bytes());
}

/// One row of `line_segments (id, set_id, day, lines, data)`.
pub(super) fn segment_row(
    buf: &mut Vec<u8>,
    id: i64,
    set_id: i32,
    on: Day,
    lines: i32,
    data: &[u8],
) {
    buf.extend_from_slice(&5i16.to_be_bytes());
    int8(buf, id);
    int4(buf, set_id);
    day(buf, on);
    int4(buf, lines);
    text(buf, data);
}

fn int4(buf: &mut Vec<u8>, v: i32) {
    buf.extend_from_slice(&4i32.to_be_bytes());
    buf.extend_from_slice(&v.to_be_bytes());
}

fn int8(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&v.to_be_bytes());
}

/// A day's text, 10 bytes, formatted in place (an allocation a row saved).
fn day(buf: &mut Vec<u8>, d: Day) {
    use std::io::Write;
    let at = buf.len();
    buf.extend_from_slice(&0i32.to_be_bytes());
    write!(buf, "{d}").expect("writing to a Vec cannot fail");
    let len = (buf.len() - at - 4) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn text(buf: &mut Vec<u8>, bytes: &[u8]) {
    // A line is bounded by max_line_bytes, far below 2 GiB.
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// What a binary `COPY` stream or a line segment held that it should not.
#[derive(Debug, thiserror::Error)]
#[error("unexpected data from PostgreSQL: {0}")]
pub struct FormatError(pub(super) &'static str);

/// Where a record's line is: line `ord` of segment `seg`.
pub(super) type Place = (i64, i32);

/// Reads a binary `COPY` stream of `(seg BIGINT, ord INTEGER)` rows, arriving
/// in pieces cut anywhere.
#[derive(Default)]
pub(super) struct PlaceDecoder {
    /// Bytes of a row (or of the header) whose end has not arrived yet.
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
}

/// A row's size: field count, then two fields of a length and 8 and 4 bytes.
const PLACE_ROW: usize = 2 + 4 + 8 + 4 + 4;

impl PlaceDecoder {
    /// Appends the places of every complete row in `data` (after what was
    /// pending) to `out`.
    pub(super) fn feed(&mut self, data: &[u8], out: &mut Vec<Place>) -> Result<(), FormatError> {
        if self.pending.is_empty() {
            let used = self.parse(data, out)?;
            self.pending.extend_from_slice(&data[used..]);
            return Ok(());
        }
        let mut joined = std::mem::take(&mut self.pending);
        joined.extend_from_slice(data);
        let used = self.parse(&joined, out)?;
        joined.drain(..used);
        self.pending = joined;
        Ok(())
    }

    /// Checks that the stream ended where the format says it ends.
    pub(super) fn finish(&self) -> Result<(), FormatError> {
        match (self.ended, self.pending.is_empty()) {
            (true, true) => Ok(()),
            (true, false) => Err(FormatError("bytes after the trailer")),
            (false, _) => Err(FormatError("the stream stopped before its trailer")),
        }
    }

    /// Parses complete rows from the start of `buf`: returns the bytes used.
    fn parse(&mut self, buf: &[u8], out: &mut Vec<Place>) -> Result<usize, FormatError> {
        let mut at = 0;
        if !self.header_read {
            if buf.len() < HEADER_LEN {
                return Ok(0);
            }
            if &buf[..11] != SIGNATURE {
                return Err(FormatError("no PGCOPY signature"));
            }
            let extension = be_i32(&buf[15..19]);
            let Ok(extension) = usize::try_from(extension) else {
                return Err(FormatError("a negative header extension length"));
            };
            if buf.len() < HEADER_LEN + extension {
                return Ok(0);
            }
            at = HEADER_LEN + extension;
            self.header_read = true;
        }
        while !self.ended && buf.len() >= at + 2 {
            let fields = i16::from_be_bytes([buf[at], buf[at + 1]]);
            if fields == -1 {
                self.ended = true;
                at += 2;
                break;
            }
            if fields != 2 {
                return Err(FormatError("a row of other than two columns"));
            }
            if buf.len() < at + PLACE_ROW {
                break;
            }
            let row = &buf[at + 2..at + PLACE_ROW];
            if be_i32(&row[..4]) != 8 || be_i32(&row[12..16]) != 4 {
                return Err(FormatError("a place that is not a BIGINT and an INTEGER"));
            }
            let seg = i64::from_be_bytes(row[4..12].try_into().expect("8 bytes"));
            out.push((seg, be_i32(&row[16..20])));
            at += PLACE_ROW;
        }
        Ok(at)
    }
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A binary COPY stream of `(seg, ord)` rows.
    fn stream(places: &[Place]) -> Vec<u8> {
        let mut buf = Vec::new();
        header(&mut buf);
        for &(seg, ord) in places {
            buf.extend_from_slice(&2i16.to_be_bytes());
            int8(&mut buf, seg);
            int4(&mut buf, ord);
        }
        trailer(&mut buf);
        buf
    }

    proptest! {
        #[test]
        fn places_come_out_whole_wherever_the_stream_is_cut(
            places in proptest::collection::vec((any::<i64>(), any::<i32>()), 0..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let bytes = stream(&places);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut decoder = PlaceDecoder::default();
            let mut out = Vec::new();
            for pair in cuts.windows(2) {
                decoder.feed(&bytes[pair[0]..pair[1]], &mut out).unwrap();
            }
            decoder.finish().unwrap();
            prop_assert_eq!(out, places);
        }
    }

    #[test]
    fn a_stream_cut_short_or_malformed_is_an_error() {
        let bytes = stream(&[(1, 0), (2, 5)]);
        let mut decoder = PlaceDecoder::default();
        decoder
            .feed(&bytes[..bytes.len() - 2], &mut Vec::new())
            .unwrap();
        assert!(decoder.finish().is_err(), "no trailer yet");

        let mut one_column = Vec::new();
        header(&mut one_column);
        one_column.extend_from_slice(&1i16.to_be_bytes());
        let err = PlaceDecoder::default()
            .feed(&one_column, &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("other than two columns"));

        let err = PlaceDecoder::default()
            .feed(b"NOTACOPYSTREAMATALL", &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("signature"));
    }
}
