//! SIEVE (Zhang, Yang, Yue, Vigfusson, Rashmi: "SIEVE is Simpler than LRU:
//! an Efficient Turn-Key Eviction Algorithm for Web Caches", NSDI '24).
//!
//! One FIFO queue, new objects at the head, and one visited bit per object
//! that a hit sets. A hand walks from the tail towards the head: it clears
//! the bit of each visited object it passes and evicts the first unvisited
//! one, then stays where it stopped (wrapping to the tail past the head).
//! A hit therefore costs one bit write, no list move: objects that stay
//! popular are skipped in place while new, unrequested ones are sifted out
//! near the head. No parameters; as in the paper and libCacheSim's `Sieve`,
//! a new object starts unvisited and the hand starts at the tail.

use super::list::{Links, Queue, NIL};
use super::Order;

/// The queue, the hand and the visited bits.
#[derive(Debug, Clone)]
pub(super) struct Sieve {
    links: Links,
    queue: Queue,
    /// The next object the hand looks at; [`NIL`]: start again at the tail.
    hand: u32,
    visited: Vec<bool>,
}

impl Sieve {
    pub fn new() -> Self {
        Self { links: Links::default(), queue: Queue::EMPTY, hand: NIL, visited: Vec::new() }
    }
}

impl<K> Order<K> for Sieve {
    fn insert(&mut self, slot: u32, _bytes: u64, _recalled: bool) {
        let i = slot as usize;
        if i >= self.visited.len() {
            self.visited.resize(i + 1, false);
        }
        self.visited[i] = false;
        self.links.push_head(&mut self.queue, slot);
    }

    fn hit(&mut self, slot: u32) {
        self.visited[slot as usize] = true;
    }

    fn evict(&mut self) -> u32 {
        let mut s = if self.hand == NIL { self.queue.tail } else { self.hand };
        // Terminates: every pass clears bits, so after at most one full turn
        // the hand meets an unvisited object.
        while self.visited[s as usize] {
            self.visited[s as usize] = false;
            s = self.links.newer(s);
            if s == NIL {
                s = self.queue.tail;
            }
        }
        self.hand = self.links.newer(s);
        self.links.unlink(&mut self.queue, s);
        s
    }

    fn remove(&mut self, slot: u32) {
        if self.hand == slot {
            self.hand = self.links.newer(slot);
        }
        self.links.unlink(&mut self.queue, slot);
    }
}

#[cfg(test)]
mod tests {
    use crate::eviction::{Cache, Eviction};

    /// LRU would keep the just-inserted 3 and evict 1 (the least recently
    /// used); SIEVE keeps 1, visited, and drops the new, unvisited 3.
    #[test]
    fn keeps_a_visited_object_that_lru_would_evict() {
        let mut c = Cache::new(Eviction::Sieve, 3);
        for k in 0u32..3 {
            c.insert(k, (), 1);
        }
        assert!(c.lookup(&1) && c.lookup(&2));
        c.insert(3, (), 1); // the hand evicts 0, the only unvisited object
        assert!(!c.contains(&0));
        assert!(c.lookup(&2)); // 1 is now the least recently used
        c.insert(4, (), 1); // hand at 1: clears 1 and 2, wraps, evicts 3
        assert!(c.contains(&1) && c.contains(&2) && c.contains(&4));
        assert!(!c.contains(&3));
    }

    #[test]
    fn the_hand_stays_where_it_stopped() {
        let mut c = Cache::new(Eviction::Sieve, 4);
        for k in 0u32..4 {
            c.insert(k, (), 1);
        }
        c.lookup(&0);
        c.insert(4, (), 1); // clears 0, evicts 1; the hand rests on 2
        assert!(!c.contains(&1));
        c.lookup(&0); // visited again, but behind the hand
        c.insert(5, (), 1); // evicts 2, not from the tail again
        assert!(!c.contains(&2) && c.contains(&0) && c.contains(&3));
    }
}
