//! LRU: evict the object used least recently. A hit moves the object to the
//! head of one queue; the victim is the tail. This is the simulator's and the
//! real node's cache before issue 21, step for step (the tests replay a
//! sequence against a plain list), so results from before and after the move
//! to [`Cache`](super::Cache) agree. No parameters.

use super::list::{Links, Queue};
use super::Order;

/// One recency queue, most recently used at the head.
#[derive(Debug, Clone)]
pub(super) struct Lru {
    links: Links,
    queue: Queue,
}

impl Lru {
    pub fn new() -> Self {
        Self { links: Links::default(), queue: Queue::EMPTY }
    }
}

impl<K> Order<K> for Lru {
    fn insert(&mut self, slot: u32, _bytes: u64, _recalled: bool) {
        self.links.push_head(&mut self.queue, slot);
    }

    fn hit(&mut self, slot: u32) {
        self.links.move_to_head(&mut self.queue, slot);
    }

    fn evict(&mut self) -> u32 {
        self.links.pop_tail(&mut self.queue)
    }

    fn remove(&mut self, slot: u32) {
        self.links.unlink(&mut self.queue, slot);
    }
}

#[cfg(test)]
mod tests {
    use crate::eviction::{Cache, Eviction};

    #[test]
    fn a_hit_saves_an_object_from_eviction() {
        let mut c = Cache::new(Eviction::Lru, 100);
        c.insert(0u32, (), 40);
        c.insert(1, (), 40);
        assert!(c.lookup(&0)); // 1 is now the least recently used
        c.insert(2, (), 40);
        assert!(!c.contains(&1));
        assert!(c.contains(&0) && c.contains(&2));
    }

    /// Against a plain list kept in recency order, with the simulator's
    /// sequence shape (its `matches_a_reference_lru_and_reuses_evicted_slots`):
    /// the same hit or miss on every request, the same bytes after every
    /// request, the same contents at the end, and no more slots than the
    /// most objects held at once.
    #[test]
    fn matches_a_reference_lru_request_for_request() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let capacity = 10_000;
        let max_object = 800;
        let mut c = Cache::new(Eviction::Lru, capacity).with_max_object(max_object);
        // Most recent first.
        let mut reference: Vec<(u32, u64)> = Vec::new();
        let mut most = 0;
        for _ in 0..50_000 {
            let obj = rng.gen_range(0..400u32);
            let size = 1 + u64::from(obj) * 7 % 900;
            let position = reference.iter().position(|&(o, _)| o == obj);
            assert_eq!(c.lookup(&obj), position.is_some());
            match position {
                Some(p) => {
                    let e = reference.remove(p);
                    reference.insert(0, e);
                }
                None if size > max_object => {
                    c.insert(obj, (), size);
                }
                None => {
                    c.insert(obj, (), size);
                    while reference.iter().map(|e| e.1).sum::<u64>() + size > capacity {
                        reference.pop();
                    }
                    reference.insert(0, (obj, size));
                }
            }
            // A second insert of a present object only touches it.
            if rng.gen_bool(0.1) {
                if let Some(&(o, s)) = reference.last() {
                    c.insert(o, (), s + 1);
                    let e = reference.pop().unwrap();
                    reference.insert(0, e);
                }
            }
            most = most.max(reference.len());
            assert_eq!(c.used_bytes(), reference.iter().map(|e| e.1).sum::<u64>());
        }
        let mut expected: Vec<u32> = reference.iter().map(|e| e.0).collect();
        expected.sort_unstable();
        let mut held: Vec<u32> = c.iter().map(|(&k, _, _)| k).collect();
        held.sort_unstable();
        assert_eq!(held, expected);
        assert!(c.slots() <= most, "{} slots for at most {most} objects", c.slots());
    }
}
