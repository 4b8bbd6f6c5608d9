//! PostgreSQL's binary `COPY` format, the two ways the record path uses it:
//! rows of `records` written for `COPY … FROM STDIN (FORMAT binary)`, and
//! one-column rows (a day's lines) read from `COPY (SELECT line …) TO STDOUT
//! (FORMAT binary)`. The format: an 11-byte signature, a 32-bit flags word
//! and a 32-bit header extension length (and that many bytes); then each row
//! as a 16-bit field count followed by each field's 32-bit length (-1 for
//! NULL) and its bytes, all big-endian; then a field count of -1.
//! <https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>

use crate::domain::record::Record;

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

/// One row of `records (set_id, record_key, day, sort_key, line,
/// rest_deleted, export_deleted)`.
pub(super) fn record_row(buf: &mut Vec<u8>, set_id: i32, r: &Record, flags: (bool, bool)) {
    buf.extend_from_slice(&7i16.to_be_bytes());
    buf.extend_from_slice(&4i32.to_be_bytes());
    buf.extend_from_slice(&set_id.to_be_bytes());
    text(buf, r.key.as_bytes());
    // A day's text is 10 bytes; formatting it in place saves an allocation a row.
    let day_at = buf.len();
    buf.extend_from_slice(&0i32.to_be_bytes());
    {
        use std::io::Write;
        write!(buf, "{}", r.day).expect("writing to a Vec cannot fail");
    }
    let day_len = (buf.len() - day_at - 4) as i32;
    buf[day_at..day_at + 4].copy_from_slice(&day_len.to_be_bytes());
    text(buf, r.sort_key.as_bytes());
    text(buf, r.line.as_bytes());
    for flag in [flags.0, flags.1] {
        buf.extend_from_slice(&1i32.to_be_bytes());
        buf.push(u8::from(flag));
    }
}

fn text(buf: &mut Vec<u8>, bytes: &[u8]) {
    // A line is bounded by max_line_bytes, far below 2 GiB.
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// What a binary `COPY` stream of lines held that it should not.
#[derive(Debug, thiserror::Error)]
#[error("unexpected binary COPY data from PostgreSQL: {0}")]
pub struct FormatError(&'static str);

/// Reads a binary `COPY` stream of one-column rows (lines), arriving in
/// pieces cut anywhere, into lines each followed by a newline.
#[derive(Default)]
pub(super) struct LineDecoder {
    /// Bytes of a row (or of the header) whose end has not arrived yet.
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
}

impl LineDecoder {
    /// Appends the lines of every complete row in `data` (after what was
    /// pending) to `out`; returns how many.
    pub(super) fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<u64, FormatError> {
        if self.pending.is_empty() {
            let (used, lines) = self.parse(data, out)?;
            self.pending.extend_from_slice(&data[used..]);
            return Ok(lines);
        }
        let mut joined = std::mem::take(&mut self.pending);
        joined.extend_from_slice(data);
        let (used, lines) = self.parse(&joined, out)?;
        joined.drain(..used);
        self.pending = joined;
        Ok(lines)
    }

    /// Checks that the stream ended where the format says it ends.
    pub(super) fn finish(&self) -> Result<(), FormatError> {
        match (self.ended, self.pending.is_empty()) {
            (true, true) => Ok(()),
            (true, false) => Err(FormatError("bytes after the trailer")),
            (false, _) => Err(FormatError("the stream stopped before its trailer")),
        }
    }

    /// Parses complete rows from the start of `buf`: returns the bytes used
    /// and the lines appended.
    fn parse(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Result<(usize, u64), FormatError> {
        let mut at = 0;
        let mut lines = 0;
        if !self.header_read {
            if buf.len() < HEADER_LEN {
                return Ok((0, 0));
            }
            if &buf[..11] != SIGNATURE {
                return Err(FormatError("no PGCOPY signature"));
            }
            let extension = be_i32(&buf[15..19]);
            let Ok(extension) = usize::try_from(extension) else {
                return Err(FormatError("a negative header extension length"));
            };
            if buf.len() < HEADER_LEN + extension {
                return Ok((0, 0));
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
            if fields != 1 {
                return Err(FormatError("a row of more than one column"));
            }
            if buf.len() < at + 6 {
                break;
            }
            let Ok(len) = usize::try_from(be_i32(&buf[at + 2..at + 6])) else {
                return Err(FormatError("a NULL line"));
            };
            if buf.len() < at + 6 + len {
                break;
            }
            out.extend_from_slice(&buf[at + 6..at + 6 + len]);
            out.push(b'\n');
            lines += 1;
            at += 6 + len;
        }
        Ok((at, lines))
    }
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A binary COPY stream of one-column rows.
    fn stream(lines: &[Vec<u8>]) -> Vec<u8> {
        let mut buf = Vec::new();
        header(&mut buf);
        for line in lines {
            buf.extend_from_slice(&1i16.to_be_bytes());
            text(&mut buf, line);
        }
        trailer(&mut buf);
        buf
    }

    proptest! {
        #[test]
        fn lines_come_out_whole_wherever_the_stream_is_cut(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let bytes = stream(&lines);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut decoder = LineDecoder::default();
            let mut out = Vec::new();
            let mut count = 0;
            for pair in cuts.windows(2) {
                count += decoder.feed(&bytes[pair[0]..pair[1]], &mut out).unwrap();
            }
            decoder.finish().unwrap();
            let expected: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
            prop_assert_eq!(out, expected);
            prop_assert_eq!(count, lines.len() as u64);
        }
    }

    #[test]
    fn a_stream_cut_short_or_malformed_is_an_error() {
        let bytes = stream(&[b"one".to_vec(), b"two".to_vec()]);
        let mut decoder = LineDecoder::default();
        decoder
            .feed(&bytes[..bytes.len() - 2], &mut Vec::new())
            .unwrap();
        assert!(decoder.finish().is_err(), "no trailer yet");

        let mut two_columns = Vec::new();
        header(&mut two_columns);
        two_columns.extend_from_slice(&2i16.to_be_bytes());
        let err = LineDecoder::default()
            .feed(&two_columns, &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("more than one column"));

        let err = LineDecoder::default()
            .feed(b"NOTACOPYSTREAMATALL", &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("signature"));
    }
}
