//! [`Sharded`]: a hash map split into shards that grow one at a time.
//!
//! A `HashMap` grows by moving every entry into a table twice the size, in
//! one call. The policy's user maps grow while handshakes provision users,
//! under the policy's write lock, so every reader waits for the move: 42 ms
//! at the growth point of 114,688 users and 62 ms at 229,376 in the load
//! benchmark (bench/README.md). Split into
//! [`SHARDS`] maps, a growth moves one shard's entries, and since a key's
//! shard comes from its hash, the shards reach their growth points at
//! different times (a few hundred inserts apart), each under its own lock.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::HashState;

/// How many maps a [`Sharded`] splits into: a power of two, so that a shard
/// is picked by the top bits of the key's hash.
pub const SHARDS: usize = 64;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

/// A hash map whose entries are spread over [`SHARDS`] maps by the key's
/// hash; it reads and writes like one map.
pub struct Sharded<K, V> {
    /// Picks the shard; the shards hash with their own seeds, so which
    /// shard a key is in says nothing of where it sits within it.
    pick: HashState,
    shards: Box<[HashMap<K, V, HashState>]>,
}

impl<K, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded {
            pick: HashState::default(),
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
        }
    }
}

impl<K, V> Sharded<K, V> {
    pub fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }
}

impl<K, V> fmt::Debug for Sharded<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sharded")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn index<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // Lossless: the shift leaves SHARD_BITS bits.
        (self.pick.hash_one(key) >> (u64::BITS - SHARD_BITS)) as usize
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &HashMap<K, V, HashState> {
        &self.shards[self.index(key)]
    }

    fn shard_mut<Q: Hash + ?Sized>(&mut self, key: &Q) -> &mut HashMap<K, V, HashState> {
        let i = self.index(key);
        &mut self.shards[i]
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).get(key)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard_mut(key).get_mut(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.shard_mut(&key).insert(key, value)
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard_mut(key).remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_and_writes_like_one_map() {
        let mut map: Sharded<String, u32> = Sharded::default();
        for i in 0..1_000 {
            assert_eq!(map.insert(format!("user{i}@acme.example"), i), None);
        }
        assert_eq!(map.len(), 1_000);
        assert_eq!(map.get("user7@acme.example"), Some(&7));
        assert_eq!(map.insert("user7@acme.example".into(), 70), Some(7));
        *map.get_mut("user8@acme.example").unwrap() += 1;
        assert_eq!(map.get("user8@acme.example"), Some(&9));
        assert_eq!(map.remove("user9@acme.example"), Some(9));
        assert_eq!(map.remove("user9@acme.example"), None);
        assert_eq!(map.get("user9@acme.example"), None);
        assert_eq!(map.get("nobody@acme.example"), None);
        assert_eq!(map.len(), 999);
    }

    /// Keys land evenly in every shard, whatever the seeds: 64,000 keys
    /// are 1,000 a shard on average, with a standard deviation of ~32.
    #[test]
    fn keys_spread_over_every_shard() {
        let mut map: Sharded<String, ()> = Sharded::default();
        for i in 0..64_000 {
            map.insert(format!("user{i}@acme.example"), ());
        }
        for (i, shard) in map.shards.iter().enumerate() {
            assert!(
                (800..=1_200).contains(&shard.len()),
                "shard {i} holds {} of 64,000 keys",
                shard.len()
            );
        }
    }

    /// What the shards are for: no insert moves more than a small share of
    /// the entries, and the moves of different shards happen apart, each
    /// in its own insert (each under its own write lock in the policy).
    #[test]
    fn growing_moves_one_shard_at_a_time() {
        let mut map: Sharded<i64, ()> = Sharded::default();
        let capacity = |m: &Sharded<i64, ()>| -> Vec<usize> {
            m.shards.iter().map(HashMap::capacity).collect()
        };
        let mut before = capacity(&map);
        let mut growths = Vec::new(); // (insert number, entries moved)
        for id in 0..300_000 {
            map.insert(id, ());
            let after = capacity(&map);
            let grown: Vec<usize> = (0..SHARDS).filter(|&i| after[i] != before[i]).collect();
            assert!(grown.len() <= 1, "insert {id} grew {} shards", grown.len());
            if let Some(&i) = grown.first() {
                growths.push((id, map.shards[i].len() - 1));
            }
            before = after;
        }
        let largest = growths.iter().map(|&(_, moved)| moved).max().unwrap();
        assert!(
            largest < 300_000 / 16,
            "a growth moved {largest} entries of 300,000"
        );
        // Sequential ids (new users' ids are) must not line their shards'
        // growths up: the last round of growths spans thousands of inserts.
        let last_round: Vec<i64> = growths
            .iter()
            .rev()
            .take(SHARDS)
            .map(|&(id, _)| id)
            .collect();
        let span = last_round.first().unwrap() - last_round.last().unwrap();
        assert!(
            span > 1_000,
            "the last {SHARDS} growths spanned {span} inserts"
        );
    }
}
