//! A node's cache in the simulator: the core's byte-bounded cache
//! ([`dl7_core::eviction::Cache`], the same implementation the real node
//! uses) over object indices, under the cell's eviction, with nothing stored
//! beside a key: a hit allocates nothing, and a full cache stops
//! allocating. Its hasher is fixed and `objects` sorts, so runs stay
//! deterministic.

use std::collections::HashMap;

use dl7_core::eviction::{Cache, Eviction};

/// The simulator's hash maps: a fixed hasher (no per-process random state).
pub(crate) type FixedMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// What every node's cache is: its eviction, capacity and largest object.
/// Kept by the cluster so that a node that loses its cache (a kill, then a
/// restart or a join) gets an empty one of the same kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CacheSpec {
    pub eviction: Eviction,
    /// Capacity, bytes.
    pub bytes: u64,
    /// Largest object stored, bytes.
    pub max_object: u64,
}

impl CacheSpec {
    /// An empty cache of this kind.
    pub fn empty(&self) -> NodeCache {
        NodeCache::new(self.eviction, self.bytes).with_max_object(self.max_object)
    }
}

/// A node's byte-bounded cache over object indices.
#[derive(Debug, Clone)]
pub struct NodeCache(Cache<u32, ()>);

impl NodeCache {
    /// An empty cache of `capacity` bytes under `eviction`.
    pub fn new(eviction: Eviction, capacity: u64) -> Self {
        NodeCache(Cache::new(eviction, capacity))
    }

    /// Stores no object larger than `bytes` (at most the capacity).
    pub fn with_max_object(self, bytes: u64) -> Self {
        NodeCache(self.0.with_max_object(bytes))
    }

    /// Bytes stored.
    pub fn used_bytes(&self) -> u64 {
        self.0.used_bytes()
    }

    /// The objects stored, in index order.
    pub fn objects(&self) -> Vec<u32> {
        let mut objects: Vec<u32> = self.0.iter().map(|(&k, _, _)| k).collect();
        objects.sort_unstable();
        objects
    }

    /// True when `obj` is cached; a hit is noted as the eviction notes one
    /// (LRU: it becomes the most recently used).
    #[inline]
    pub fn lookup(&mut self, obj: u32) -> bool {
        self.0.lookup(&obj)
    }

    /// Stores `obj` of `bytes`, evicting the objects the eviction chooses to
    /// make room. An object larger than the largest object stored is not
    /// stored; one already stored counts as a hit.
    #[inline]
    pub fn insert(&mut self, obj: u32, bytes: u64) {
        self.0.insert(obj, (), bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_until_the_new_object_fits() {
        let mut c = NodeCache::new(Eviction::Lru, 100);
        c.insert(0, 40);
        c.insert(1, 40);
        assert!(c.lookup(0)); // 1 is now least recently used
        c.insert(2, 40);
        assert!(!c.lookup(1));
        assert!(c.lookup(0) && c.lookup(2));
        assert_eq!(c.used_bytes(), 80);
        c.insert(3, 101); // larger than the cache: not stored, nothing evicted
        assert!(!c.lookup(3));
        assert_eq!(c.used_bytes(), 80);
        c.insert(3, 100);
        assert!(c.lookup(3) && !c.lookup(0) && !c.lookup(2));
        assert_eq!(c.used_bytes(), 100);
        assert_eq!(c.objects(), [3]);
    }

    /// Against a plain list kept in recency order: the same hits, the same
    /// contents, and the slab never outgrows the most objects held at once.
    #[test]
    fn matches_a_reference_lru_and_reuses_evicted_slots() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let capacity = 10_000;
        let mut c = NodeCache::new(Eviction::Lru, capacity);
        // Most recent first.
        let mut reference: Vec<(u32, u64)> = Vec::new();
        let mut most = 0;
        for _ in 0..50_000 {
            let obj = rng.gen_range(0..400u32);
            let size = 1 + u64::from(obj) * 7 % 900;
            let position = reference.iter().position(|&(o, _)| o == obj);
            assert_eq!(c.lookup(obj), position.is_some());
            match position {
                Some(p) => {
                    let e = reference.remove(p);
                    reference.insert(0, e);
                }
                None => {
                    c.insert(obj, size);
                    while reference.iter().map(|e| e.1).sum::<u64>() + size > capacity {
                        reference.pop();
                    }
                    reference.insert(0, (obj, size));
                }
            }
            most = most.max(reference.len());
            assert_eq!(c.used_bytes(), reference.iter().map(|e| e.1).sum::<u64>());
        }
        let mut expected: Vec<u32> = reference.iter().map(|e| e.0).collect();
        expected.sort_unstable();
        assert_eq!(c.objects(), expected);
        assert!(most > 0);
    }

    #[test]
    fn objects_over_the_largest_stored_size_pass_uncached() {
        let mut c = NodeCache::new(Eviction::Lru, 100).with_max_object(50);
        c.insert(0, 60);
        assert!(!c.lookup(0));
        c.insert(1, 50);
        assert!(c.lookup(1));
        assert_eq!(c.used_bytes(), 50);
        assert_eq!(
            NodeCache::new(Eviction::Lru, 100).with_max_object(500).0.max_object(),
            100,
            "never above the capacity"
        );
    }
}
