//! S3-FIFO (Yang, Zhang, Qiu, Yue, Rashmi: "FIFO queues are all you need
//! for cache eviction", SOSP '23), as libCacheSim's `S3FIFO` implements it
//! (`libCacheSim/cache/eviction/S3FIFO.c` in the `libcachesim` 0.3.5 Python
//! package, with its default parameters), so that
//! `.ci/libcachesim-check.py` finds the same hit on every request.
//!
//! Three FIFO queues:
//! - **S**, small, 10% of the cache bytes (`floor(0.1 * capacity)`), where
//!   new objects start: most objects are requested once and should leave
//!   quickly without pushing anything out of M;
//! - **M**, main, the other 90%;
//! - **G**, ghost, keys only, bounded in *bytes* like libCacheSim's ghost:
//!   the objects it remembers total at most `floor(0.9 * capacity)` bytes
//!   (each counted at its size), oldest forgotten first.
//!
//! Each cached object has a frequency counter, 0 on insertion and raised by
//! every hit up to 3 (two bits: libCacheSim counts further but caps at 3
//! where the count is used, which is the same). Then:
//! - a miss whose key is in G is forgotten by G and inserted into M; any
//!   other is inserted into S, except that until the cache first evicts,
//!   one arriving when S already holds its 10% goes to M (libCacheSim's
//!   `S3FIFO.c`; its `S3FIFOv0.c`, the paper's version, fills S instead:
//!   this keeps the objects that filled the cache out of S, where the first
//!   evictions would drop them all);
//! - eviction takes from M when M holds more than its 90% or S is empty, and
//!   from S otherwise;
//! - evicting from S: the tail moves to the head of M, with its counter reset
//!   to 0, if it was hit at least twice while in S (libCacheSim's
//!   `move-to-main-threshold=2`, the paper's `freq > 1`); else it leaves the
//!   cache and its key enters G. This repeats until one object has left;
//! - evicting from M: a tail with a count above 0 goes back to the head with
//!   the count lowered by one; the first with 0 leaves (a 2-bit CLOCK).
//!
//! Admission: an object is stored only if it is smaller than S
//! (libCacheSim's `S3FIFO_insert` drops an object of S's size or more). One
//! difference, on purpose: for an object of exactly S's size libCacheSim
//! first evicts to make room and then drops it; this evicts nothing.
//!
//! A hit costs one counter write; S and M are intrusive lists over the
//! cache's slots, and G is a slab with its own index and free list, so once
//! G has held its most entries nothing allocates.

use std::hash::Hash;

use hashbrown::HashTable;

use super::list::{Links, Queue, NIL};
use super::Order;

/// S's share of the cache bytes (libCacheSim's `small-size-ratio`).
pub const SMALL_RATIO: f64 = 0.1;
/// G's byte budget as a share of the cache bytes (libCacheSim's `ghost-size-ratio`).
pub const GHOST_RATIO: f64 = 0.9;
/// Hits while in S that earn a move to M (libCacheSim's `move-to-main-threshold`).
pub const MOVE_TO_MAIN: u8 = 2;
/// The counter saturates here.
const MAX_FREQ: u8 = 3;

#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    bytes: u64,
    freq: u8,
    in_small: bool,
}

/// S, M and G.
#[derive(Debug, Clone)]
pub(super) struct S3Fifo<K> {
    links: Links,
    small: Queue,
    main: Queue,
    small_bytes: u64,
    main_bytes: u64,
    small_capacity: u64,
    main_capacity: u64,
    meta: Vec<Meta>,
    ghost: Ghost<K>,
    /// The last victim left through S, so its key goes to G.
    victim_from_small: bool,
    /// The cache has evicted once: from now on every new object starts in S.
    has_evicted: bool,
}

impl<K> S3Fifo<K> {
    pub fn new(capacity: u64) -> Self {
        // Truncated as libCacheSim's `(int64_t)` cast does, so the queue sizes agree to the byte.
        let small_capacity = (capacity as f64 * SMALL_RATIO) as u64;
        Self {
            links: Links::default(),
            small: Queue::EMPTY,
            main: Queue::EMPTY,
            small_bytes: 0,
            main_bytes: 0,
            small_capacity,
            main_capacity: capacity - small_capacity,
            meta: Vec::new(),
            ghost: Ghost::new((capacity as f64 * GHOST_RATIO) as u64),
            victim_from_small: false,
            has_evicted: false,
        }
    }

    fn evict_main(&mut self) -> u32 {
        loop {
            let tail = self.main.tail;
            assert_ne!(tail, NIL, "S3-FIFO: eviction from an empty cache");
            let m = &mut self.meta[tail as usize];
            if m.freq > 0 {
                m.freq -= 1;
                self.links.move_to_head(&mut self.main, tail);
            } else {
                self.links.unlink(&mut self.main, tail);
                self.main_bytes -= m.bytes;
                self.victim_from_small = false;
                return tail;
            }
        }
    }

    /// The victim from S, or none when every object in S earned its move to M.
    fn evict_small(&mut self) -> Option<u32> {
        while self.small_bytes > 0 {
            let tail = self.links.pop_tail(&mut self.small);
            let m = &mut self.meta[tail as usize];
            self.small_bytes -= m.bytes;
            if m.freq >= MOVE_TO_MAIN {
                m.freq = 0;
                m.in_small = false;
                self.main_bytes += m.bytes;
                self.links.push_head(&mut self.main, tail);
            } else {
                self.victim_from_small = true;
                return Some(tail);
            }
        }
        None
    }
}

impl<K: Hash + Eq> Order<K> for S3Fifo<K> {
    fn admits(&self, bytes: u64) -> bool {
        bytes < self.small_capacity
    }

    fn recall(&mut self, hash: u64, key: &K) -> bool {
        self.ghost.forget(hash, key)
    }

    fn insert(&mut self, slot: u32, bytes: u64, recalled: bool) {
        let i = slot as usize;
        if i >= self.meta.len() {
            self.meta.resize(i + 1, Meta::default());
        }
        let to_main = recalled || (!self.has_evicted && self.small_bytes >= self.small_capacity);
        self.meta[i] = Meta { bytes, freq: 0, in_small: !to_main };
        if to_main {
            self.main_bytes += bytes;
            self.links.push_head(&mut self.main, slot);
        } else {
            self.small_bytes += bytes;
            self.links.push_head(&mut self.small, slot);
        }
    }

    fn hit(&mut self, slot: u32) {
        let m = &mut self.meta[slot as usize];
        m.freq = (m.freq + 1).min(MAX_FREQ);
    }

    fn evict(&mut self) -> u32 {
        self.has_evicted = true;
        loop {
            if self.main_bytes > self.main_capacity || self.small_bytes == 0 {
                return self.evict_main();
            }
            if let Some(victim) = self.evict_small() {
                return victim;
            }
        }
    }

    fn evicted(&mut self, hash: u64, key: K, bytes: u64) {
        if self.victim_from_small {
            self.ghost.remember(hash, key, bytes);
        }
    }

    fn remove(&mut self, slot: u32) {
        let m = self.meta[slot as usize];
        if m.in_small {
            self.small_bytes -= m.bytes;
            self.links.unlink(&mut self.small, slot);
        } else {
            self.main_bytes -= m.bytes;
            self.links.unlink(&mut self.main, slot);
        }
    }
}

#[derive(Debug, Clone)]
struct Remembered<K> {
    key: K,
    hash: u64,
    bytes: u64,
}

/// G: keys of objects evicted from S, oldest forgotten first, bounded in bytes.
#[derive(Debug, Clone)]
struct Ghost<K> {
    capacity: u64,
    bytes: u64,
    index: HashTable<u32>,
    entries: Vec<Option<Remembered<K>>>,
    free: Vec<u32>,
    links: Links,
    queue: Queue,
}

impl<K> Ghost<K> {
    fn new(capacity: u64) -> Self {
        Self {
            capacity,
            bytes: 0,
            index: HashTable::new(),
            entries: Vec::new(),
            free: Vec::new(),
            links: Links::default(),
            queue: Queue::EMPTY,
        }
    }
}

impl<K: Eq> Ghost<K> {
    /// True when `key` was remembered; it no longer is.
    fn forget(&mut self, hash: u64, key: &K) -> bool {
        let entries = &self.entries;
        let found = self
            .index
            .find_entry(hash, |&e| entries[e as usize].as_ref().is_some_and(|r| r.hash == hash && r.key == *key));
        match found {
            Ok(entry) => {
                let (e, _) = entry.remove();
                self.links.unlink(&mut self.queue, e);
                self.release(e);
                true
            }
            Err(_) => false,
        }
    }

    fn remember(&mut self, hash: u64, key: K, bytes: u64) {
        if bytes > self.capacity {
            return;
        }
        while self.bytes + bytes > self.capacity {
            let oldest = self.links.pop_tail(&mut self.queue);
            let h = self.entries[oldest as usize].as_ref().expect("queued ghost entries are occupied").hash;
            if let Ok(entry) = self.index.find_entry(h, |&e| e == oldest) {
                entry.remove();
            }
            self.release(oldest);
        }
        let remembered = Some(Remembered { key, hash, bytes });
        let e = match self.free.pop() {
            Some(e) => {
                self.entries[e as usize] = remembered;
                e
            }
            None => {
                self.entries.push(remembered);
                (self.entries.len() - 1) as u32
            }
        };
        self.bytes += bytes;
        self.links.push_head(&mut self.queue, e);
        let entries = &self.entries;
        self.index.insert_unique(hash, e, |&e| entries[e as usize].as_ref().map_or(0, |r| r.hash));
    }

    fn release(&mut self, e: u32) {
        if let Some(r) = self.entries[e as usize].take() {
            self.bytes -= r.bytes;
        }
        self.free.push(e);
    }
}

#[cfg(test)]
mod tests {
    use crate::eviction::{Cache, Eviction};

    /// Capacity 100: S holds 10 bytes, M 90; 20 objects of 5 bytes fill it,
    /// 0 and 1 in S, 2..20 in M (see the next test). Objects 0..18 are hit
    /// twice, 18 and 19 never.
    fn warmed(eviction: Eviction) -> Cache<u32, ()> {
        let mut c = Cache::new(eviction, 100);
        for k in 0..20 {
            c.insert(k, (), 5);
        }
        for k in 0..18 {
            c.lookup(&k);
            c.lookup(&k);
        }
        c
    }

    /// Until the first eviction, objects past S's 10% go to M, so the
    /// objects that filled the cache are not the first ones dropped.
    #[test]
    fn objects_that_fill_the_cache_past_the_small_share_go_to_main() {
        let mut c = Cache::new(Eviction::S3Fifo, 100);
        for k in 0..30 {
            c.insert(k, (), 5);
        }
        assert!(!c.contains(&0) && !c.contains(&1), "S's first two left through S");
        assert!((2..20).all(|k| c.contains(&k)), "M's eighteen were not touched");
        assert!(c.contains(&28) && c.contains(&29) && c.len() == 20);
    }

    /// A stream of objects requested once passes through S and never
    /// displaces what M holds, where LRU loses everything to it.
    #[test]
    fn one_hit_wonders_leave_through_the_small_queue() {
        let mut s3 = warmed(Eviction::S3Fifo);
        let mut lru = warmed(Eviction::Lru);
        for k in 100..1000 {
            s3.insert(k, (), 5);
            lru.insert(k, (), 5);
        }
        assert!((0..18).all(|k| s3.contains(&k)), "the hit objects stayed in M");
        assert!(s3.contains(&998) && s3.contains(&999) && s3.len() == 20);
        assert!((0..18).all(|k| !lru.contains(&k)));
    }

    #[test]
    fn a_key_remembered_by_the_ghost_goes_straight_to_main() {
        let mut c = Cache::new(Eviction::S3Fifo, 100);
        for k in 0..21 {
            c.insert(k, (), 5); // 20 fills the cache: 0, in S and never hit, leaves into G
        }
        assert!(!c.contains(&0));
        c.insert(0, (), 5); // from G into M, never hit since
        for k in 100..1000 {
            c.insert(k, (), 5);
        }
        assert!(c.contains(&0), "in M, a stream through S leaves it alone");
        assert!(!c.contains(&1));
    }

    #[test]
    fn main_reinserts_a_hit_object_and_evicts_the_first_unhit() {
        let mut c = Cache::new(Eviction::S3Fifo, 100);
        for k in 0..20 {
            c.insert(k, (), 5); // 0 and 1 fill S, 2..20 go to M
        }
        c.lookup(&2); // M's oldest, hit once
        c.insert(20, (), 5);
        c.insert(21, (), 5); // full: 0, then 1, leave S unhit
        c.lookup(&20);
        c.lookup(&20);
        c.insert(22, (), 5); // 20 moves to M, now over its 90 bytes; 21 leaves S
        c.insert(23, (), 5); // from M: 2 goes round again, its hit spent; 3 leaves
        assert!(c.contains(&2) && c.contains(&20) && !c.contains(&3));
        assert_eq!(c.used_bytes(), 100);
    }

    #[test]
    fn objects_not_smaller_than_the_small_queue_are_not_stored() {
        let mut c = Cache::new(Eviction::S3Fifo, 100);
        c.insert(0, (), 10);
        assert!(!c.contains(&0));
        c.insert(1, (), 9);
        assert!(c.contains(&1));
    }
}
