//! PostgreSQL's line segments: a record's day-file line is kept in a row of
//! `line_segments` with the lines of the records stored beside it, and the
//! record's row says which line of which segment is its own (`seg`, `ord`).
//!
//! - **Made by the writer.** A batch's records of one part (see
//!   `postgres::PARTS`) go in day and sort-key order into segments of one day
//!   and at most [`SEGMENT_BYTES`] of lines (a longer line has one of its
//!   own), compressed with LZ4 by the service, in the transaction that
//!   copies the rows in. A day's file then reads its segments in the order
//!   they were written, each once, when its records arrived in order.
//! - **Format.** The first byte says how the rest holds the lines, each
//!   followed by a newline: [`RAW`] as they are (migration
//!   `0015_line_segments.sql` moved the lines kept in rows so), [`LZ4`] as an
//!   LZ4 block after its decompressed size (32 bits, little-endian).
//! - **Erased when freed.** The transaction that deletes or replaces a
//!   record counts its line dead (`dead`) and empties it in the segment; a
//!   segment whose lines are all dead is deleted. Line numbers never change.
//! - **Read in one snapshot.** An export reads a day's places with `COPY` on
//!   one connection and their segments on another that shares its snapshot
//!   (`pg_export_snapshot`), so a segment changed after the export began is
//!   read as it was.

use std::collections::{HashMap, HashSet, VecDeque};

use super::pgcopy::{FormatError, Place};
use crate::db::Result;
use crate::domain::record::Record;
use crate::domain::Day;

/// Bytes of lines a segment holds at most (unless one line is longer).
pub(super) const SEGMENT_BYTES: usize = 256 * 1024;

/// The lines as they are.
const RAW: u8 = 0;
/// An LZ4 block after its decompressed size.
const LZ4: u8 = 1;

/// The decompressed size a segment may claim: a line is bounded far below.
const MAX_DECODED: usize = 256 << 20;

/// A new segment: its day, how many lines it holds, and its stored form.
pub(super) struct NewSegment {
    pub(super) day: Day,
    pub(super) lines: i32,
    pub(super) data: Vec<u8>,
}

/// Puts the records of `batch` that `part` lists (sorted here by day and
/// sort key) into segments, each encoded as soon as it is full: returns them
/// with each record's place, in the new order of `part`, as (index of its
/// segment, line number). One buffer gathers each segment's lines and one
/// takes LZ4's output, for all the segments: a fresh buffer a segment, zeroed
/// for LZ4 and kept at LZ4's bound, cost a load's writer about 10% of its
/// time in page faults and `memset`.
pub(super) fn build(batch: &[Record], part: &mut [usize]) -> (Vec<NewSegment>, Vec<(usize, i32)>) {
    part.sort_unstable_by(|&a, &b| {
        let (a, b) = (&batch[a], &batch[b]);
        (a.day, &a.sort_key).cmp(&(b.day, &b.sort_key))
    });
    let mut segments: Vec<NewSegment> = Vec::new();
    let mut places = Vec::with_capacity(part.len());
    let mut raw: Vec<u8> = Vec::with_capacity(SEGMENT_BYTES);
    let mut scratch = Vec::new();
    for r in part.iter().map(|&i| &batch[i]) {
        let fits = segments
            .last()
            .is_some_and(|s| s.day == r.day && raw.len() + r.line.len() < SEGMENT_BYTES);
        if !fits {
            if let Some(last) = segments.last_mut() {
                last.data = encode_with(&raw, &mut scratch);
                raw.clear();
            }
            segments.push(NewSegment {
                day: r.day,
                lines: 0,
                data: Vec::new(),
            });
        }
        let index = segments.len() - 1;
        let s = &mut segments[index];
        raw.extend_from_slice(r.line.as_bytes());
        raw.push(b'\n');
        places.push((index, s.lines));
        s.lines += 1;
    }
    if let Some(last) = segments.last_mut() {
        last.data = encode_with(&raw, &mut scratch);
    }
    (segments, places)
}

/// A segment's stored form of `raw` (lines each followed by a newline).
pub(super) fn encode(raw: &[u8]) -> Vec<u8> {
    encode_with(raw, &mut Vec::new())
}

/// [`encode`], compressing into `scratch` (grown to LZ4's bound for `raw`
/// when shorter) and returning a buffer of the stored form's own size.
fn encode_with(raw: &[u8], scratch: &mut Vec<u8>) -> Vec<u8> {
    let bound = lz4_flex::block::get_maximum_output_size(raw.len());
    if scratch.len() < bound {
        scratch.resize(bound, 0);
    }
    let written = lz4_flex::block::compress_into(raw, &mut scratch[..bound])
        .expect("the buffer has LZ4's bound for this input");
    let mut out = Vec::with_capacity(5 + written);
    out.push(LZ4);
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&scratch[..written]);
    out
}

/// A segment's lines, decompressed, with where each starts.
pub(super) struct Decoded {
    bytes: Vec<u8>,
    /// Where each line starts, and after the last, where it would.
    starts: Vec<u32>,
}

impl Decoded {
    pub(super) fn new(data: &[u8]) -> std::result::Result<Decoded, FormatError> {
        let bytes = match data.split_first() {
            Some((&RAW, rest)) => rest.to_vec(),
            Some((&LZ4, rest)) if rest.len() >= 4 => {
                let size = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
                if size > MAX_DECODED {
                    return Err(FormatError("a segment larger than a segment can be"));
                }
                let mut bytes = vec![0u8; size];
                match lz4_flex::block::decompress_into(&rest[4..], &mut bytes) {
                    Ok(n) if n == size => bytes,
                    _ => return Err(FormatError("a segment that does not decompress")),
                }
            }
            _ => return Err(FormatError("a segment of an unknown format")),
        };
        if bytes.last().is_some_and(|&b| b != b'\n') {
            return Err(FormatError("a segment whose last line has no newline"));
        }
        let mut starts = Vec::with_capacity(bytes.len() / 256 + 2);
        starts.push(0);
        starts.extend(memchr::memchr_iter(b'\n', &bytes).map(|i| i as u32 + 1));
        Ok(Decoded { bytes, starts })
    }

    /// Line `ord`, without its newline.
    pub(super) fn line(&self, ord: i32) -> std::result::Result<&[u8], FormatError> {
        let i = usize::try_from(ord).map_err(|_| FormatError("a negative line number"))?;
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(&a), Some(&b)) => Ok(&self.bytes[a as usize..b as usize - 1]),
            _ => Err(FormatError("a line number past the segment's end")),
        }
    }

    fn lines(&self) -> usize {
        self.starts.len() - 1
    }

    /// The lines with those of `ords` emptied; None when every line is then empty.
    fn without(&self, ords: &HashSet<i32>) -> Option<Vec<u8>> {
        let mut raw = Vec::with_capacity(self.bytes.len());
        let mut kept = false;
        for i in 0..self.lines() {
            let line = self.line(i as i32).expect("a line of this segment");
            if !ords.contains(&(i as i32)) && !line.is_empty() {
                raw.extend_from_slice(line);
                kept = true;
            }
            raw.push(b'\n');
        }
        kept.then_some(raw)
    }
}

/// Counts freed lines (`freed`: segment and line number) dead and erases
/// them: a segment left with no live line is deleted, any other rewritten
/// without them. Inside the transaction that freed them.
pub(super) async fn erase(conn: &mut sqlx::PgConnection, freed: &[Place]) -> Result<()> {
    if freed.is_empty() {
        return Ok(());
    }
    let mut by_seg: HashMap<i64, HashSet<i32>> = HashMap::new();
    for &(seg, ord) in freed {
        by_seg.entry(seg).or_default().insert(ord);
    }
    let (ids, counts): (Vec<i64>, Vec<i32>) = by_seg
        .iter()
        .map(|(&id, ords)| (id, ords.len() as i32))
        .unzip();
    let counted: Vec<(i64, i32, i32)> = sqlx::query_as(
        "UPDATE line_segments s SET dead = s.dead + f.n FROM UNNEST($1::bigint[], $2::int[]) AS f(id, n) \
         WHERE s.id = f.id RETURNING s.id, s.lines, s.dead",
    )
    .bind(&ids)
    .bind(&counts)
    .fetch_all(&mut *conn)
    .await?;
    let mut gone: Vec<i64> = Vec::new();
    let mut rewrite: Vec<i64> = Vec::new();
    for (id, lines, dead) in counted {
        if dead >= lines {
            gone.push(id);
        } else {
            rewrite.push(id);
        }
    }
    if !rewrite.is_empty() {
        let stored: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT id, data FROM line_segments WHERE id = ANY($1)")
                .bind(&rewrite)
                .fetch_all(&mut *conn)
                .await?;
        // Decoded and encoded again on a blocking thread (about 1 ms a
        // segment), not on the async workers that answer requests.
        let (ids, data, emptied) = super::on_blocking_thread(move || {
            let mut ids = Vec::new();
            let mut data = Vec::new();
            let mut emptied = Vec::new();
            for (id, stored) in stored {
                let decoded = Decoded::new(&stored)?;
                match decoded.without(&by_seg[&id]) {
                    Some(raw) => {
                        ids.push(id);
                        data.push(encode(&raw));
                    }
                    None => emptied.push(id),
                }
            }
            Ok::<_, crate::db::Error>((ids, data, emptied))
        })
        .await??;
        gone.extend(emptied);
        if !ids.is_empty() {
            sqlx::query(
                "UPDATE line_segments s SET data = f.data FROM UNNEST($1::bigint[], $2::bytea[]) AS f(id, data) \
                 WHERE s.id = f.id",
            )
            .bind(&ids)
            .bind(&data)
            .execute(&mut *conn)
            .await?;
        }
    }
    if !gone.is_empty() {
        sqlx::query("DELETE FROM line_segments WHERE id = ANY($1)")
            .bind(&gone)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Segments an export keeps decoded after using them: about 8 MB.
const CACHED: usize = 32;
/// Places resolved at a time, at most: about 0.5 MB of lines, so that the
/// export's chunks stay near their size.
const WINDOW: usize = 1024;
/// Segments fetched at a time, at most (never more than [`CACHED`]).
const FETCH: usize = 16;

/// A window of places and the segments they need that the assembler does
/// not hold yet.
pub(super) struct Work {
    segments: Vec<(i64, Vec<u8>)>,
    places: Vec<Place>,
}

/// Gathers a day's places, in file order, into windows and fetches the
/// segments each needs (through a connection in the export's snapshot); the
/// [`assemble`] thread decodes them and writes the lines. Both keep the same
/// [`CACHED`] segments: the newest, dropped oldest first after each window.
pub(super) struct Resolver {
    /// The segments the assembler holds, oldest first.
    held: VecDeque<i64>,
    window: Vec<Place>,
    missing: Vec<i64>,
}

impl Resolver {
    pub(super) fn new() -> Resolver {
        Resolver {
            held: VecDeque::with_capacity(CACHED + FETCH),
            window: Vec::with_capacity(WINDOW),
            missing: Vec::with_capacity(FETCH),
        }
    }

    /// Takes the next place; true when the window is full and wants resolving.
    pub(super) fn push(&mut self, place: Place) -> bool {
        if !self.held.contains(&place.0) && !self.missing.contains(&place.0) {
            self.missing.push(place.0);
        }
        self.window.push(place);
        self.window.len() >= WINDOW || self.missing.len() >= FETCH
    }

    /// The window taken so far, with the segments it needs fetched; None
    /// when it is empty.
    pub(super) async fn resolve(&mut self, conn: &mut sqlx::PgConnection) -> Result<Option<Work>> {
        if self.window.is_empty() {
            return Ok(None);
        }
        let mut segments: Vec<(i64, Vec<u8>)> = Vec::new();
        if !self.missing.is_empty() {
            segments = sqlx::query_as("SELECT id, data FROM line_segments WHERE id = ANY($1)")
                .bind(&self.missing)
                .fetch_all(&mut *conn)
                .await?;
            if segments.len() != self.missing.len() {
                return Err(FormatError("a record whose segment is missing").into());
            }
            self.missing.clear();
        }
        self.held.extend(segments.iter().map(|(id, _)| *id));
        while self.held.len() > CACHED {
            self.held.pop_front();
        }
        let places = std::mem::replace(&mut self.window, Vec::with_capacity(WINDOW));
        Ok(Some(Work { segments, places }))
    }
}

/// Decodes the segments of each [`Work`] and writes its lines, each followed
/// by a newline, to `sink` in chunks of about `chunk_bytes`; returns the
/// number of lines, or where it stopped when `sink` closed. On a thread of
/// its own at background priority (`crate::background`), as compression is.
pub(super) fn assemble(
    mut work: tokio::sync::mpsc::Receiver<Work>,
    sink: tokio::sync::mpsc::Sender<Vec<u8>>,
    chunk_bytes: usize,
) -> std::result::Result<u64, FormatError> {
    let mut held: HashMap<i64, Decoded> = HashMap::with_capacity(CACHED + FETCH);
    let mut order: VecDeque<i64> = VecDeque::with_capacity(CACHED + FETCH);
    let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes + (1 << 20));
    let mut lines = 0u64;
    while let Some(Work { segments, places }) = work.blocking_recv() {
        for (id, data) in segments {
            held.insert(id, Decoded::new(&data)?);
            order.push_back(id);
        }
        for (seg, ord) in places {
            let segment = held
                .get(&seg)
                .ok_or(FormatError("a record whose segment is missing"))?;
            buf.extend_from_slice(segment.line(ord)?);
            buf.push(b'\n');
            lines += 1;
        }
        while order.len() > CACHED {
            if let Some(old) = order.pop_front() {
                held.remove(&old);
            }
        }
        if buf.len() >= chunk_bytes {
            let full = std::mem::replace(&mut buf, Vec::with_capacity(chunk_bytes + (1 << 20)));
            if sink.blocking_send(full).is_err() {
                return Ok(lines);
            }
        }
    }
    if !buf.is_empty() {
        let _ = sink.blocking_send(buf);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_back_from_either_format_and_erased_lines_are_empty() {
        let raw = b"{\"a\":1}\n\n{\"b\":\"two\"}\n".to_vec();
        let lz4 = Decoded::new(&encode(&raw)).unwrap();
        let mut plain = vec![RAW];
        plain.extend_from_slice(&raw);
        let plain = Decoded::new(&plain).unwrap();
        for d in [&lz4, &plain] {
            assert_eq!(d.lines(), 3);
            assert_eq!(d.line(0).unwrap(), b"{\"a\":1}");
            assert_eq!(d.line(1).unwrap(), b"");
            assert_eq!(d.line(2).unwrap(), b"{\"b\":\"two\"}");
            assert!(d.line(3).is_err());
            assert!(d.line(-1).is_err());
        }
        let kept = lz4.without(&HashSet::from([0])).unwrap();
        assert_eq!(kept, b"\n\n{\"b\":\"two\"}\n");
        assert!(lz4.without(&HashSet::from([0, 2])).is_none());
    }

    #[test]
    fn a_batch_goes_into_segments_of_one_day_in_sort_order() {
        let record = |day: &str, sort: &str, len: usize| {
            let mut r = Record::empty();
            r.day = day.parse().unwrap();
            r.sort_key = sort.to_string();
            r.key = format!("{day}{sort}");
            r.line = sort.repeat(len);
            r
        };
        let records = [
            record("2024-06-02", "a", 10),
            record("2024-06-01", "c", SEGMENT_BYTES / 2),
            record("2024-06-01", "b", SEGMENT_BYTES / 2),
            record("2024-06-01", "d", SEGMENT_BYTES * 2),
            record("2024-06-01", "a", 3),
        ];
        let mut part: Vec<usize> = (0..records.len()).collect();
        let (made, places) = build(&records, &mut part);
        let refs: Vec<&Record> = part.iter().map(|&i| &records[i]).collect();
        let sorted: Vec<&str> = refs.iter().map(|r| r.sort_key.as_str()).collect();
        assert_eq!(sorted, ["a", "b", "c", "d", "a"]);
        // a and b fit together; c would pass the size; d is longer than a
        // segment and has one of its own; the next day starts another.
        assert_eq!(places, [(0, 0), (0, 1), (1, 0), (2, 0), (3, 0)]);
        let lines: Vec<i32> = made.iter().map(|s| s.lines).collect();
        assert_eq!(lines, [2, 1, 1, 1]);
        for (r, &(segment, ord)) in refs.iter().zip(&places) {
            let decoded = Decoded::new(&made[segment].data).unwrap();
            assert_eq!(decoded.line(ord).unwrap(), r.line.as_bytes());
        }
    }

    #[test]
    fn damaged_segments_are_errors() {
        let good = encode(b"one\ntwo\n");
        for bad in [
            Vec::new(),
            vec![9, 1, 2],
            good[..good.len() - 1].to_vec(),
            vec![LZ4, 255, 255, 255, 255, 0],
            vec![RAW, b'x'],
        ] {
            assert!(Decoded::new(&bad).is_err(), "{bad:?}");
        }
    }
}
