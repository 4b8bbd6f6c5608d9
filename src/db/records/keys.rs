//! The 64-bit hash that leads from a record key to its row (`record_keys`).

/// Each byte's value in [`key_hash`]: hex digits (either case) their own,
/// anything else 15.
static NIBBLES: [u8; 256] = {
    let mut t = [15u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// The 64-bit index key of a record key: the 8 hex digits after its
/// two-letter prefix, then the 8 that end 8 characters before its end (for a
/// Participant, "CF…/CA…", the first from the conference and the second from
/// the call). Other characters count as 15 (upper-case hex as lower-case).
/// Migration `0007_record_sets.sql` computes the same in SQL for the rows it
/// moves; keys that share a hash are told apart by `record_key`.
pub(crate) fn key_hash(key: &str) -> i64 {
    let b = key.as_bytes();
    let nibble = |i: Option<usize>| -> u64 {
        i.and_then(|i| b.get(i))
            .map_or(0, |&c| u64::from(NIBBLES[usize::from(c)]))
    };
    let mut h = 0u64;
    for j in 0..8 {
        h = (h << 4) | nibble(Some(2 + j));
    }
    for j in 0..8 {
        h = (h << 4) | nibble((b.len() + j).checked_sub(16));
    }
    h as i64
}
