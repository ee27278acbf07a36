//! GDSF, Greedy-Dual-Size-Frequency (Cherkasova: "Improving WWW Proxies
//! Performance with Greedy-Dual-Size-Frequency Caching Policy", HP Labs
//! HPL-98-69, 1998).
//!
//! Each object has a priority `H = L + freq * cost / size`, set when it is
//! stored (`freq = 1`) and on every hit (`freq + 1`, with the `L` of that
//! moment); the victim is the object with the smallest `H`, and `L` becomes
//! the victim's `H`. Small, often requested objects are kept over big ones,
//! and `L`, which only grows, ages out objects whose count was earned long
//! ago. Parameters: `cost = 1` (optimise the hit ratio, not bytes or
//! latency); a size of 0 counts as 1. Equal priorities go to the object
//! stored or hit longest ago, as in libCacheSim's `GDSF` (which scales
//! `cost` to 1e6: the same order but for floating-point rounding).
//!
//! As in the paper (and Cao and Irani's GreedyDual-Size before it), the
//! requested object is always stored: victims are chosen among the cached
//! objects until it fits. libCacheSim's `GDSF` (the `libcachesim` 0.3.5
//! package) inserts it first and then evicts until the cache fits, so a new
//! object whose `H` is the smallest is its own victim, a size-aware
//! admission that this does not do; `.ci/libcachesim-check.py` reports GDSF
//! beside the others without asserting it.
//!
//! An indexed binary min-heap of slots keeps the order: O(log n) per insert,
//! hit and eviction, and its arrays are reused, so once the cache has held
//! its most objects nothing allocates.

use std::cmp::Ordering;

use super::Order;

const NOWHERE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Meta {
    priority: f64,
    /// When the priority was last set: the tie-break.
    seq: u64,
    freq: u64,
    bytes: u64,
    /// Index in the heap.
    pos: u32,
}

const EMPTY: Meta = Meta { priority: 0.0, seq: 0, freq: 0, bytes: 0, pos: NOWHERE };

/// The heap and the inflation value `L`.
#[derive(Debug, Clone)]
pub(super) struct Gdsf {
    /// `L`: the priority of the last victim.
    inflation: f64,
    clock: u64,
    heap: Vec<u32>,
    meta: Vec<Meta>,
}

impl Gdsf {
    pub fn new() -> Self {
        Self { inflation: 0.0, clock: 0, heap: Vec::new(), meta: Vec::new() }
    }

    /// The inflation value `L` (for tests and diagnostics).
    #[cfg(test)]
    pub fn inflation(&self) -> f64 {
        self.inflation
    }

    fn prioritise(&mut self, slot: u32) {
        let m = &mut self.meta[slot as usize];
        m.priority = self.inflation + m.freq as f64 / m.bytes.max(1) as f64;
        m.seq = self.clock;
        self.clock += 1;
    }

    #[inline]
    fn less(&self, a: u32, b: u32) -> bool {
        let (a, b) = (&self.meta[a as usize], &self.meta[b as usize]);
        match a.priority.total_cmp(&b.priority) {
            Ordering::Equal => a.seq < b.seq,
            o => o == Ordering::Less,
        }
    }

    fn place(&mut self, i: usize, slot: u32) {
        self.heap[i] = slot;
        self.meta[slot as usize].pos = i as u32;
    }

    fn sift_up(&mut self, mut i: usize) {
        let slot = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(slot, self.heap[parent]) {
                break;
            }
            self.place(i, self.heap[parent]);
            i = parent;
        }
        self.place(i, slot);
    }

    fn sift_down(&mut self, mut i: usize) {
        let slot = self.heap[i];
        let n = self.heap.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.less(self.heap[right], self.heap[left]) { right } else { left };
            if !self.less(self.heap[child], slot) {
                break;
            }
            self.place(i, self.heap[child]);
            i = child;
        }
        self.place(i, slot);
    }

    fn take(&mut self, slot: u32) {
        let i = self.meta[slot as usize].pos as usize;
        let last = self.heap.pop().expect("the slot is in the heap");
        if i < self.heap.len() {
            self.place(i, last);
            self.sift_up(i);
            let i = self.meta[last as usize].pos as usize;
            self.sift_down(i);
        }
        self.meta[slot as usize].pos = NOWHERE;
    }
}

impl<K> Order<K> for Gdsf {
    fn insert(&mut self, slot: u32, bytes: u64, _recalled: bool) {
        let i = slot as usize;
        if i >= self.meta.len() {
            self.meta.resize(i + 1, EMPTY);
        }
        self.meta[i] = Meta { freq: 1, bytes, ..EMPTY };
        self.prioritise(slot);
        self.heap.push(slot);
        self.sift_up(self.heap.len() - 1);
    }

    fn hit(&mut self, slot: u32) {
        self.meta[slot as usize].freq += 1;
        self.prioritise(slot);
        // Only down: `L` never falls and `freq` grew, so the priority did not
        // fall, and the newer `seq` breaks a tie upwards too.
        self.sift_down(self.meta[slot as usize].pos as usize);
    }

    fn evict(&mut self) -> u32 {
        let victim = *self.heap.first().expect("GDSF: eviction from an empty cache");
        self.inflation = self.meta[victim as usize].priority;
        self.take(victim);
        victim
    }

    fn remove(&mut self, slot: u32) {
        self.take(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eviction::{Cache, Eviction};

    /// LRU would drop 1, the least recently used, and keep the big 0.
    #[test]
    fn evicts_the_big_object_first() {
        let mut c = Cache::new(Eviction::Gdsf, 100);
        c.insert(1u32, (), 10); // H = 1/10
        c.insert(2, (), 10);
        c.insert(0, (), 60); // H = 1/60, the smallest
        c.insert(3, (), 30); // 110 bytes: one eviction
        assert!(!c.contains(&0));
        assert!(c.contains(&1) && c.contains(&2) && c.contains(&3));
        assert_eq!(c.used_bytes(), 50);
    }

    #[test]
    fn hits_raise_a_priority_above_a_smaller_objects() {
        let mut c = Cache::new(Eviction::Gdsf, 100);
        c.insert(0u32, (), 50); // H = 1/50
        c.insert(1, (), 40); // H = 1/40
        c.lookup(&0);
        c.lookup(&0); // H = 3/50 > 1/40
        c.insert(2, (), 20);
        assert!(c.contains(&0) && !c.contains(&1));
    }

    #[test]
    fn the_inflation_value_is_the_last_victims_priority() {
        let mut g = Gdsf::new();
        <Gdsf as Order<u32>>::insert(&mut g, 0, 4, false);
        <Gdsf as Order<u32>>::insert(&mut g, 1, 2, false);
        assert_eq!(<Gdsf as Order<u32>>::evict(&mut g), 0);
        assert_eq!(g.inflation(), 0.25);
        <Gdsf as Order<u32>>::insert(&mut g, 0, 4, false); // H = 0.25 + 0.25 = 0.5, as 1's
        assert_eq!(<Gdsf as Order<u32>>::evict(&mut g), 1, "a tie goes to the older");
        assert_eq!(g.inflation(), 0.5);
    }

    /// Against a linear scan for the smallest (H, seq): the same victims.
    #[test]
    fn the_heap_pops_what_a_scan_would() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut g = Gdsf::new();
        let mut held: Vec<u32> = Vec::new();
        let mut free: Vec<u32> = Vec::new();
        let mut next = 0;
        for _ in 0..20_000 {
            match rng.gen_range(0..4) {
                0 | 1 => {
                    let slot = free.pop().unwrap_or_else(|| {
                        next += 1;
                        next - 1
                    });
                    <Gdsf as Order<u32>>::insert(&mut g, slot, rng.gen_range(1..100), false);
                    held.push(slot);
                }
                2 if !held.is_empty() => {
                    let slot = held[rng.gen_range(0..held.len())];
                    <Gdsf as Order<u32>>::hit(&mut g, slot);
                }
                _ if !held.is_empty() => {
                    let expected = *held
                        .iter()
                        .min_by(|&&a, &&b| {
                            let (a, b) = (&g.meta[a as usize], &g.meta[b as usize]);
                            a.priority.total_cmp(&b.priority).then(a.seq.cmp(&b.seq))
                        })
                        .unwrap();
                    assert_eq!(<Gdsf as Order<u32>>::evict(&mut g), expected);
                    held.retain(|&s| s != expected);
                    free.push(expected);
                }
                _ => {}
            }
        }
    }
}
