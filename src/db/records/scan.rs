//! Reading one day's lines from SQLite and its segments for an export.

use crate::db::lines::{LineReader, Lines};
use crate::db::Result;
use crate::domain::{Day, ResourceType};

/// One day's lines in order, each followed by a newline, read from the SQLite
/// file and its line segments on the calling thread through one statement
/// (one snapshot) and handed to `chunk` in pieces of at least `chunk_bytes`.
/// Returns the number of records, or stops early (returning what was read)
/// when `chunk` returns false.
///
/// Exports use this instead of the sqlx pool: sqlx's SQLite driver moves each
/// row (or each aggregated page) through its worker thread, which cost about
/// five times SQLite's own scan; a day export is one long sequential read that
/// belongs on a blocking thread. rusqlite links the same libsqlite3-sys as sqlx.
/// Lines that follow each other in a segment (a day loaded in order) are read
/// as one range, straight into the chunk.
pub fn scan_day_sqlite(
    file: &std::path::Path,
    account_sid: &str,
    rt: ResourceType,
    day: Day,
    chunk_bytes: usize,
    mut chunk: impl FnMut(Vec<u8>) -> bool,
) -> Result<u64> {
    use rusqlite::{Connection, OpenFlags};
    // Before the query: no sweep erases what its rows point at until it is done.
    let mut lines = Lines::beside(file).reader()?;
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let mut stmt = conn.prepare(
        "SELECT line, line_seg, line_off, line_len FROM records WHERE set_id = (SELECT id FROM record_sets \
         WHERE account_sid = ?1 AND resource_type = ?2) AND day = ?3 AND NOT export_deleted ORDER BY sort_key",
    )?;
    let mut rows = stmt.query((account_sid, rt.as_str(), day.to_string()))?;
    let mut records = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes + 64 * 1024);
    // A range of one segment (start, end) not read into `buf` yet.
    let mut pending: Option<(i64, i64, i64)> = None;
    while let Some(row) = rows.next()? {
        match row.get::<_, Option<i64>>(1)? {
            Some(seg) => {
                let (off, len): (i64, i64) = (row.get(2)?, row.get(3)?);
                match &mut pending {
                    Some((s, _, end)) if *s == seg && *end == off => *end = off + len + 1,
                    _ => {
                        read_pending(&mut lines, pending.take(), &mut buf)?;
                        pending = Some((seg, off, off + len + 1));
                    }
                }
            }
            None => {
                read_pending(&mut lines, pending.take(), &mut buf)?;
                if let rusqlite::types::ValueRef::Text(line) = row.get_ref(0)? {
                    buf.extend_from_slice(line);
                }
                buf.push(b'\n');
            }
        }
        records += 1;
        let waiting = pending.map_or(0, |(_, start, end)| (end - start) as usize);
        if buf.len() + waiting >= chunk_bytes {
            read_pending(&mut lines, pending.take(), &mut buf)?;
            let full = std::mem::replace(&mut buf, Vec::with_capacity(chunk_bytes + 64 * 1024));
            if !chunk(full) {
                return Ok(records);
            }
        }
    }
    read_pending(&mut lines, pending, &mut buf)?;
    if !buf.is_empty() {
        chunk(buf);
    }
    Ok(records)
}

fn read_pending(
    lines: &mut LineReader,
    pending: Option<(i64, i64, i64)>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    if let Some((seg, start, end)) = pending {
        lines.read(seg, start, (end - start) as usize, buf)?;
    }
    Ok(())
}
