//! FIFO: evict the object stored longest ago; hits change nothing. The
//! baseline the lazy-promotion algorithms (SIEVE, S3-FIFO) improve on, and
//! libCacheSim's `FIFO`. No parameters.

use super::list::{Links, Queue};
use super::Order;

/// One insertion queue, newest at the head.
#[derive(Debug, Clone)]
pub(super) struct Fifo {
    links: Links,
    queue: Queue,
}

impl Fifo {
    pub fn new() -> Self {
        Self { links: Links::default(), queue: Queue::EMPTY }
    }
}

impl<K> Order<K> for Fifo {
    fn insert(&mut self, slot: u32, _bytes: u64, _recalled: bool) {
        self.links.push_head(&mut self.queue, slot);
    }

    fn hit(&mut self, _slot: u32) {}

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
    fn a_hit_does_not_save_the_oldest_object() {
        let mut c = Cache::new(Eviction::Fifo, 100);
        c.insert(0u32, (), 40);
        c.insert(1, (), 40);
        assert!(c.lookup(&0)); // LRU would now evict 1
        c.insert(2, (), 40);
        assert!(!c.contains(&0));
        assert!(c.contains(&1) && c.contains(&2));
    }
}
