//! A byte-bounded LRU cache of whole objects, one per server, sized by what
//! it holds rather than by the catalog: a hash map from object index to a
//! slot of a slab of nodes, and an intrusive recency list through the slab.
//! A hit allocates nothing; an insertion reuses the slot of an evicted
//! object, so a full cache stops allocating. Nothing iterates the map in
//! an order that reaches a result (`objects` sorts), and its hasher is
//! fixed, so runs stay deterministic.

use std::collections::HashMap;

/// The simulator's hash maps: a fixed hasher (no per-process random state).
pub(crate) type FixedMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    size: u64,
    obj: u32,
    prev: u32,
    next: u32,
}

/// Byte-bounded LRU over object indices.
#[derive(Debug, Clone)]
pub struct LruCache {
    capacity: u64,
    /// Largest object stored (Squid's `maximum_object_size`).
    max_object: u64,
    used: u64,
    /// Object index -> its slot in `nodes`.
    slots: FixedMap<u32, u32>,
    nodes: Vec<Node>,
    /// Slots of evicted objects, reused first.
    free: Vec<u32>,
    /// Most recently used slot.
    head: u32,
    /// Least recently used slot.
    tail: u32,
}

impl LruCache {
    /// An empty cache of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            max_object: capacity,
            used: 0,
            slots: FixedMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NONE,
            tail: NONE,
        }
    }

    /// Stores no object larger than `bytes` (at most the capacity).
    pub fn with_max_object(mut self, bytes: u64) -> Self {
        self.max_object = bytes.min(self.capacity);
        self
    }

    /// Bytes stored.
    pub fn used_bytes(&self) -> u64 {
        self.used
    }

    /// The objects stored, in index order.
    pub fn objects(&self) -> Vec<u32> {
        let mut objects: Vec<u32> = self.slots.keys().copied().collect();
        objects.sort_unstable();
        objects
    }

    /// True when `obj` is cached; a hit makes it the most recently used.
    #[inline]
    pub fn lookup(&mut self, obj: u32) -> bool {
        let Some(&slot) = self.slots.get(&obj) else { return false };
        self.touch(slot);
        true
    }

    /// Stores `obj` of `bytes`, evicting least recently used objects to make
    /// room. An object larger than the largest object stored is not stored.
    pub fn insert(&mut self, obj: u32, bytes: u64) {
        if let Some(&slot) = self.slots.get(&obj) {
            self.touch(slot);
            return;
        }
        if bytes > self.max_object {
            return;
        }
        while self.used + bytes > self.capacity {
            let victim = self.tail;
            self.unlink(victim);
            let Node { size, obj, .. } = self.nodes[victim as usize];
            self.slots.remove(&obj);
            self.used -= size;
            self.free.push(victim);
        }
        let node = Node { size: bytes, obj, prev: NONE, next: NONE };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot as usize] = node;
                slot
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.slots.insert(obj, slot);
        self.used += bytes;
        self.push_front(slot);
    }

    #[inline]
    fn touch(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.push_front(slot);
        }
    }

    #[inline]
    fn unlink(&mut self, slot: u32) {
        let Node { prev, next, .. } = self.nodes[slot as usize];
        if prev == NONE {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NONE {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    #[inline]
    fn push_front(&mut self, slot: u32) {
        let head = self.head;
        let node = &mut self.nodes[slot as usize];
        node.prev = NONE;
        node.next = head;
        if head != NONE {
            self.nodes[head as usize].prev = slot;
        }
        self.head = slot;
        if self.tail == NONE {
            self.tail = slot;
        }
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
        assert!(c.nodes.len() <= most, "{} slots for at most {most} objects", c.nodes.len());
    }

    #[test]
    fn objects_over_the_largest_stored_size_pass_uncached() {
        let mut c = LruCache::new(100).with_max_object(50);
        c.insert(0, 60);
        assert!(!c.lookup(0));
        c.insert(1, 50);
        assert!(c.lookup(1));
        assert_eq!(c.used_bytes(), 50);
        assert_eq!(LruCache::new(100).with_max_object(500).max_object, 100, "never above the capacity");
    }
}
