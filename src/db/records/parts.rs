//! What a PostgreSQL bulk load knows about each part of its record set
//! between its batches, so that a load into an empty part skips looking up
//! keys that cannot be stored yet.
//!
//! Every writer's transaction counts itself in `record_set_parts.writes`
//! (migration `0018_record_set_parts.sql`) under the part's advisory lock.
//! A load whose first transaction in a part counts 1 found the part empty;
//! while each of its later transactions counts exactly one more than its
//! previous one, nobody else has written to the part in between, so a key
//! is stored there only if this load stored it. The load remembers its
//! keys in a Bloom filter ([`KeyFilter`]): a key the filter has not seen
//! is new and needs no lookup; any other key (one written earlier in the
//! load, or a false positive) is looked up as before. Once another writer
//! shows up, the load looks every key up for the rest of its life.
//! Deletions only remove rows, so they cannot make a skipped lookup wrong.

use foldhash::fast::RandomState;
use std::hash::BuildHasher;

/// What a load knows about one part of its set (see the module's comment).
#[derive(Default)]
pub(super) struct PartState {
    /// The part's write count after this load's last commit in it.
    writes: Option<i64>,
    /// The part held only this load's keys at that commit.
    alone: bool,
    /// The keys this load stored in the part, while `alone`.
    keys: KeyFilter,
}

impl PartState {
    /// Whether the transaction that counted `writes` finds the part as this
    /// load left it, holding only keys this load stored.
    pub(super) fn alone_at(&self, writes: i64) -> bool {
        match self.writes {
            None => writes == 1,
            Some(before) => self.alone && writes == before + 1,
        }
    }

    /// Whether `key` may be stored in the part, when [`Self::alone_at`].
    pub(super) fn may_hold(&self, key: &str) -> bool {
        self.keys.may_contain(key)
    }

    /// Records the commit of a transaction that counted `writes` and stored
    /// `keys`.
    pub(super) fn committed<'a>(
        &mut self,
        writes: i64,
        alone: bool,
        keys: impl Iterator<Item = &'a str>,
    ) {
        self.writes = Some(writes);
        self.alone = alone;
        if alone {
            for key in keys {
                self.keys.insert(key);
            }
        } else {
            self.keys = KeyFilter::default();
        }
    }
}

/// Bits of a [`KeyFilter`]: 2 MiB, a false positive in about 1,600 keys at
/// 500,000 keys (a 1M-record load's share of one part), one in 37 at 2M.
const FILTER_BITS: usize = 1 << 24;
/// Bits set for each key.
const PROBES: usize = 3;

/// A Bloom filter of keys, allocated at the first insert. It answers "maybe"
/// for every key inserted; a false "maybe" only costs a lookup.
#[derive(Default)]
pub(super) struct KeyFilter {
    words: Vec<u64>,
    hasher: RandomState,
}

impl KeyFilter {
    /// The bits of `key`: three positions from the two halves of one 64-bit
    /// hash (Kirsch and Mitzenmacher's double hashing).
    fn positions(&self, key: &str) -> [usize; PROBES] {
        let hash = self.hasher.hash_one(key);
        let (a, b) = (hash & 0xffff_ffff, (hash >> 32) | 1);
        std::array::from_fn(|i| (a.wrapping_add(i as u64 * b) % FILTER_BITS as u64) as usize)
    }

    pub(super) fn insert(&mut self, key: &str) {
        if self.words.is_empty() {
            self.words = vec![0; FILTER_BITS / 64];
        }
        for bit in self.positions(key) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    pub(super) fn may_contain(&self, key: &str) -> bool {
        !self.words.is_empty()
            && self
                .positions(key)
                .iter()
                .all(|&bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_holds_every_key_it_was_given_and_few_others() {
        let mut filter = KeyFilter::default();
        assert!(!filter.may_contain("SM0"), "an empty filter holds nothing");
        let keys: Vec<String> = (0..100_000).map(|n| format!("SM{n:032x}")).collect();
        for key in &keys {
            filter.insert(key);
        }
        assert!(keys.iter().all(|k| filter.may_contain(k)));
        let others = (100_000..200_000)
            .filter(|n| filter.may_contain(&format!("SM{n:032x}")))
            .count();
        assert!(others < 100, "{others} false positives in 100,000");
    }

    #[test]
    fn a_part_is_the_loads_own_only_while_its_writes_follow_on() {
        let mut part = PartState::default();
        assert!(part.alone_at(1), "the first write to a part finds it empty");
        assert!(!part.alone_at(2), "another writer came first");
        part.committed(1, true, ["SM1"].into_iter());
        assert!(part.may_hold("SM1"));
        assert!(part.alone_at(2));
        assert!(!part.alone_at(3), "another writer wrote in between");
        part.committed(3, false, ["SM2"].into_iter());
        assert!(!part.alone_at(4), "once shared, always looked up");
        assert!(!part.may_hold("SM1"), "the filter is dropped");
    }
}
