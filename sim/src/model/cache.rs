//! A node's cache in the simulator: the core's byte-bounded cache
//! ([`dl7_core::eviction::Cache`], the same implementation the real node
//! uses) over object indices, with nothing stored beside a key: a hit
//! allocates nothing, and a full cache stops allocating. Its hasher is
//! fixed and `objects` sorts, so runs stay deterministic.

use std::collections::HashMap;

use dl7_core::eviction::{Cache, Eviction};

/// The simulator's hash maps: a fixed hasher (no per-process random state).
pub(crate) type FixedMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// A node's byte-bounded LRU over object indices.
#[derive(Debug, Clone)]
pub struct LruCache(Cache<u32, ()>);

impl LruCache {
    /// An empty cache of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        LruCache(Cache::new(Eviction::Lru, capacity))
    }

    /// Stores no object larger than `bytes` (at most the capacity).
    pub fn with_max_object(self, bytes: u64) -> Self {
        LruCache(self.0.with_max_object(bytes))
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

    /// True when `obj` is cached; a hit makes it the most recently used.
    #[inline]
    pub fn lookup(&mut self, obj: u32) -> bool {
        self.0.lookup(&obj)
    }

    /// Stores `obj` of `bytes`, evicting least recently used objects to make
    /// room. An object larger than the largest object stored is not stored;
    /// one already stored only becomes the most recently used.
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
        let mut c = LruCache::new(100);
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
        let mut c = LruCache::new(capacity);
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
        let mut c = LruCache::new(100).with_max_object(50);
        c.insert(0, 60);
        assert!(!c.lookup(0));
        c.insert(1, 50);
        assert!(c.lookup(1));
        assert_eq!(c.used_bytes(), 50);
        assert_eq!(LruCache::new(100).with_max_object(500).0.max_object(), 100, "never above the capacity");
    }
}
