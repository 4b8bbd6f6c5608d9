//! How the layout of the records table decides what a bulk load costs in
//! SQLite, without the service around it: reads a day file's JSON lines (as
//! `bench/export.sh` downloads them) and times storing them in a fresh
//! database per layout, the way `db::RecordWriter` does (one prepared insert
//! per row, 16 KiB pages, WAL, a 64 MiB cache, a commit every 250,000 rows).
//!
//! ```sh
//! cargo run --release --example sqlite_layouts -- lines.jsonl [LAYOUT…]
//! ```
//!
//! Each layout runs in its own database under the system's temp directory;
//! run it more than once, and alternate, on a busy machine.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

/// (name, schema, insert of ?1 set, ?2 hash, ?3 key, ?4 day, ?5 sort key, ?6 line).
const LAYOUTS: &[(&str, &str, &str)] = &[
    (
        "text-key",
        "CREATE TABLE r (account_sid TEXT, resource_type TEXT, record_key TEXT, day TEXT, sort_key TEXT, line TEXT, \
         PRIMARY KEY (account_sid, resource_type, record_key)); \
         CREATE INDEX r_day ON r (account_sid, resource_type, day, sort_key);",
        // ?1 and ?2 (set and hash) go unused: SQLite numbers parameters up to the highest.
        "INSERT INTO r VALUES ('AC00000000000000000000000000000000', 'Messages', ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
    ),
    (
        "set-hash",
        "CREATE TABLE r (set_id INTEGER, key_hash INTEGER, record_key TEXT, day TEXT, sort_key TEXT, line TEXT); \
         CREATE UNIQUE INDEX r_key ON r (set_id, key_hash); CREATE INDEX r_day ON r (set_id, day, sort_key);",
        "INSERT INTO r VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
    ),
    (
        "no-index",
        "CREATE TABLE r (set_id INTEGER, key_hash INTEGER, record_key TEXT, day TEXT, sort_key TEXT, line TEXT);",
        "INSERT INTO r VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    ),
    (
        "set-hash-positions",
        "CREATE TABLE r (set_id INTEGER, key_hash INTEGER, record_key TEXT, day TEXT, sort_key TEXT, position INTEGER); \
         CREATE UNIQUE INDEX r_key ON r (set_id, key_hash); CREATE INDEX r_day ON r (set_id, day, sort_key);",
        "INSERT INTO r VALUES (?1, ?2, ?3, ?4, ?5, length(?6)) ON CONFLICT DO NOTHING",
    ),
];

/// The text of `"name":"…"` in a day-file line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let pattern = format!("\"{name}\":\"");
    let start = line.find(&pattern).expect("a Messages day-file line") + pattern.len();
    let len = line[start..].find('"').expect("a closed string");
    &line[start..start + len]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .ok_or("usage: sqlite_layouts FILE.jsonl [LAYOUT…]")?;
    let wanted: Vec<String> = args.collect();
    let text = std::fs::read_to_string(&file)?;
    let rows: Vec<(i64, String, String, &str)> = text
        .lines()
        .map(|line| {
            let sid = field(line, "sid");
            let mut h = DefaultHasher::new();
            sid.hash(&mut h);
            let sort_key = format!("{}|{sid}", field(line, "date_created"));
            (h.finish() as i64, sid.to_string(), sort_key, line)
        })
        .collect();
    println!("{} rows from {file}", rows.len());
    let dir = std::env::temp_dir().join("sqlite-layouts");
    std::fs::create_dir_all(&dir)?;
    for (name, schema, insert) in LAYOUTS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let path = dir.join(format!("{name}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch(
            "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA cache_size = -65536;",
        )?;
        conn.execute_batch(schema)?;
        let start = Instant::now();
        {
            let mut stmt = conn.prepare(insert)?;
            conn.execute_batch("BEGIN IMMEDIATE")?;
            for (n, (hash, sid, sort_key, line)) in rows.iter().enumerate() {
                let day = &sort_key[..10];
                stmt.execute((1, hash, sid, day, sort_key, line))?;
                if (n + 1) % 250_000 == 0 {
                    conn.execute_batch("COMMIT; BEGIN IMMEDIATE")?;
                }
            }
            conn.execute_batch("COMMIT")?;
        }
        drop(conn); // the last connection checkpoints the WAL into the file
        println!("{name:<20} {:6.2} s", start.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&dir).and_then(|()| std::fs::create_dir_all(&dir));
    }
    Ok(())
}
