//! What parsing and normalising costs a load, without storing: reads an
//! NDJSON file of Messages (a day file's lines, as `bench/export.sh`
//! downloads them) into memory, then times `normalize_line` over every line
//! on one thread, the way `bulkexport ingest` runs it. Prints the best of
//! ROUNDS (default 3), the time per line and a CRC-32 of what came out
//! (record keys, days, sort keys, lines), which two versions must agree on.
//!
//! ```sh
//! cargo run --release --example parse_lines -- lines.jsonl [ROUNDS]
//! ```

use std::time::Instant;

use bulkexport::domain::record::normalize_line;
use bulkexport::domain::ResourceType;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: parse_lines FILE.jsonl [ROUNDS]")?;
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let text = std::fs::read_to_string(&path)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    // The account of the first line, so that every line is accepted.
    let account = serde_json::from_str::<serde_json::Value>(lines.first().ok_or("no lines")?)?
        ["account_sid"]
        .as_str()
        .ok_or("the first line has no account_sid")?
        .to_string();
    let mut best = f64::MAX;
    for round in 1..=rounds {
        let started = Instant::now();
        let (mut bytes, mut crc) = (0usize, crc32fast::Hasher::new());
        for line in &lines {
            let record = normalize_line(ResourceType::Messages, &account, line)?;
            for part in [&record.line, &record.sort_key, &record.key] {
                bytes += part.len();
                crc.update(part.as_bytes());
            }
            crc.update(record.day.to_string().as_bytes());
        }
        let s = started.elapsed().as_secs_f64();
        best = best.min(s);
        // The same input must give the same bytes in every version.
        println!(
            "round {round}: {s:.3} s ({bytes} bytes out, CRC-32 {:08x})",
            crc.finalize()
        );
    }
    println!(
        "best: {best:.3} s for {} lines, {:.2} µs a line",
        lines.len(),
        best * 1e6 / lines.len() as f64
    );
    Ok(())
}
