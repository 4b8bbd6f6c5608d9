//! Parallel gzip that writes one gzip member, as pigz does: the input is cut
//! into chunks, each compressed to raw deflate on its own thread (primed with
//! the previous chunk's last 32 KiB as its dictionary, so the ratio stays that
//! of a single stream) and ended with a sync flush, so the blocks join into
//! one deflate stream. One header, one CRC-32 and length trailer. Decoders
//! that stop after the first member (flate2's `GzDecoder`, several others)
//! therefore read the whole file.
//!
//! Written here because no maintained crate offers single-member parallel
//! gzip on a streaming, bounded-memory input (gzp writes the same format but
//! needs its own thread-pool runtime and offers no dictionary priming on our
//! zlib-rs backend).

use std::collections::BTreeMap;
use std::sync::mpsc;

use flate2::{Compress, Compression, FlushCompress};

const WINDOW: usize = 32 * 1024;
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

struct Job {
    seq: u64,
    data: Vec<u8>,
    dictionary: Vec<u8>,
}

/// Compresses one chunk to raw deflate ending on a byte boundary (sync flush),
/// with `c` reset first: each compressing thread keeps one deflate state (a
/// few hundred KiB of tables) for all its chunks rather than making and
/// freeing one a chunk, which left the allocator's heap fragmented and the
/// service's peak RSS growing with the size of the day.
fn deflate_chunk(c: &mut Compress, dictionary: &[u8], data: &[u8]) -> std::io::Result<Vec<u8>> {
    c.reset();
    if !dictionary.is_empty() {
        c.set_dictionary(dictionary)
            .map_err(std::io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 3 + 1024);
    let mut consumed = 0usize;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(4096));
        }
        let before_in = c.total_in();
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(std::io::Error::other)?;
        consumed += (c.total_in() - before_in) as usize;
        // As with zlib's deflate: the flush is complete once all input is
        // consumed and the call did not fill the output buffer.
        if consumed == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    Ok(out)
}

/// Single-member gzip of every chunk received, compressed on `threads` threads,
/// written in order to `out`. At most `2 × threads` chunks are in flight. The
/// compressing threads run at background priority (see [`crate::background::lower_priority`]).
pub fn compress_parallel(
    chunks: impl Iterator<Item = Vec<u8>>,
    threads: usize,
    level: u32,
    mut out: impl FnMut(Vec<u8>) -> bool,
) -> std::io::Result<()> {
    let threads = threads.max(1);
    if !out(HEADER.to_vec()) {
        return Ok(());
    }
    let mut crc = crc32fast::Hasher::new();
    let mut total: u64 = 0;
    std::thread::scope(|scope| -> std::io::Result<()> {
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
        let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
        let (done_tx, done_rx) = mpsc::channel::<(u64, std::io::Result<Vec<u8>>)>();
        for _ in 0..threads {
            let rx = job_rx.clone();
            let tx = done_tx.clone();
            scope.spawn(move || {
                crate::background::lower_priority();
                let mut c = Compress::new(Compression::new(level), false);
                loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    if tx
                        .send((job.seq, deflate_chunk(&mut c, &job.dictionary, &job.data)))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut pending: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let (mut sent, mut next_out) = (0u64, 0u64);
        let mut tail: Vec<u8> = Vec::new();
        let mut emit = |pending: &mut BTreeMap<u64, Vec<u8>>, next_out: &mut u64| -> bool {
            while let Some(block) = pending.remove(next_out) {
                *next_out += 1;
                if !out(block) {
                    return false;
                }
            }
            true
        };
        for data in chunks {
            crc.update(&data);
            total += data.len() as u64;
            let dictionary = std::mem::take(&mut tail);
            tail = data[data.len().saturating_sub(WINDOW)..].to_vec();
            if tail.len() < WINDOW && !dictionary.is_empty() {
                let keep = WINDOW - tail.len();
                let mut joined = dictionary[dictionary.len().saturating_sub(keep)..].to_vec();
                joined.extend_from_slice(&tail);
                tail = joined;
            }
            job_tx
                .send(Job {
                    seq: sent,
                    data,
                    dictionary,
                })
                .map_err(|_| std::io::Error::other("compressor gone"))?;
            sent += 1;
            while sent - next_out > 2 * threads as u64 {
                let (seq, block) = done_rx
                    .recv()
                    .map_err(|_| std::io::Error::other("compressor gone"))?;
                pending.insert(seq, block?);
                if !emit(&mut pending, &mut next_out) {
                    return Ok(());
                }
            }
        }
        drop(job_tx);
        while next_out < sent {
            let (seq, block) = done_rx
                .recv()
                .map_err(|_| std::io::Error::other("compressor gone"))?;
            pending.insert(seq, block?);
            if !emit(&mut pending, &mut next_out) {
                return Ok(());
            }
        }
        Ok(())
    })?;
    // The final, empty block closes the deflate stream; then CRC-32 and length.
    let mut end = deflate_final()?;
    end.extend_from_slice(&crc.finalize().to_le_bytes());
    end.extend_from_slice(&(total as u32).to_le_bytes());
    out(end);
    Ok(())
}

fn deflate_final() -> std::io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(64);
    c.compress_vec(&[], &mut out, FlushCompress::Finish)
        .map_err(std::io::Error::other)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(n: usize) -> Vec<u8> {
        let mut s = Vec::new();
        let mut x: u64 = 7;
        while s.len() < n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s.extend_from_slice(
                format!(
                    "{{\"sid\":\"SM{:032x}\",\"n\":{},\"body\":\"hello world {}\"}}\n",
                    x,
                    x % 97,
                    x % 13
                )
                .as_bytes(),
            );
        }
        s
    }

    fn gz(data: &[u8], chunk: usize, threads: usize) -> Vec<u8> {
        let mut file = Vec::new();
        let chunks = data.chunks(chunk).map(<[u8]>::to_vec).collect::<Vec<_>>();
        compress_parallel(chunks.into_iter(), threads, 6, |b| {
            file.extend_from_slice(&b);
            true
        })
        .expect("compressed");
        file
    }

    #[test]
    fn one_member_that_single_member_decoders_read_whole() {
        let data = sample(3_000_000);
        let file = gz(&data, 256 * 1024, 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&file[..])
            .read_to_end(&mut back)
            .expect("valid gzip");
        assert_eq!(back, data);
        assert_eq!(
            gz(&data, 256 * 1024, 1),
            file,
            "the bytes do not depend on the thread count"
        );
        let mut reference = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        std::io::Write::write_all(&mut reference, &data).expect("write");
        let single = reference.finish().expect("finish");
        assert!(
            (file.len() as f64) < single.len() as f64 * 1.03,
            "{} vs {}",
            file.len(),
            single.len()
        );
    }

    #[test]
    fn any_chunk_size_round_trips() {
        let data = sample(400_000);
        for chunk in [1, 100, 1000, 4096, 65_536, 1_000_000] {
            let file = gz(&data[..data.len().min(chunk * 50)], chunk, 2);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&file[..])
                .read_to_end(&mut back)
                .expect("valid gzip");
            assert_eq!(back, &data[..data.len().min(chunk * 50)], "chunk {chunk}");
        }
    }

    #[test]
    fn empty_input_is_an_empty_gzip() {
        let file = gz(&[], 1024, 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&file[..])
            .read_to_end(&mut back)
            .expect("valid gzip");
        assert!(back.is_empty());
    }
}
