//! A byte-bounded LRU cache of whole objects, one per server. Objects are
//! catalog indices, so the recency list is intrusive (two index arrays) and
//! a hit or an insertion allocates nothing.

const NONE: u32 = u32::MAX;

/// Byte-bounded LRU over object indices `0..objects`.
#[derive(Debug, Clone)]
pub struct LruCache {
    capacity: u64,
    /// Largest object stored (Squid's `maximum_object_size`).
    max_object: u64,
    used: u64,
    prev: Vec<u32>,
    next: Vec<u32>,
    present: Vec<bool>,
    size: Vec<u64>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
}

impl LruCache {
    /// An empty cache of `capacity` bytes for objects `0..objects`.
    pub fn new(capacity: u64, objects: usize) -> Self {
        Self {
            capacity,
            max_object: capacity,
            used: 0,
            prev: vec![NONE; objects],
            next: vec![NONE; objects],
            present: vec![false; objects],
            size: vec![0; objects],
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
        (0..self.present.len() as u32).filter(|&o| self.present[o as usize]).collect()
    }

    /// True when `obj` is cached; a hit makes it the most recently used.
    #[inline]
    pub fn lookup(&mut self, obj: u32) -> bool {
        if !self.present[obj as usize] {
            return false;
        }
        if self.head != obj {
            self.unlink(obj);
            self.push_front(obj);
        }
        true
    }

    /// Stores `obj` of `bytes`, evicting least recently used objects to make
    /// room. An object larger than the largest object stored is not stored.
    pub fn insert(&mut self, obj: u32, bytes: u64) {
        if self.present[obj as usize] {
            self.lookup(obj);
            return;
        }
        if bytes > self.max_object {
            return;
        }
        while self.used + bytes > self.capacity {
            let victim = self.tail;
            self.unlink(victim);
            self.present[victim as usize] = false;
            self.used -= self.size[victim as usize];
        }
        self.present[obj as usize] = true;
        self.size[obj as usize] = bytes;
        self.used += bytes;
        self.push_front(obj);
    }

    fn unlink(&mut self, obj: u32) {
        let (p, n) = (self.prev[obj as usize], self.next[obj as usize]);
        if p == NONE {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NONE {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
    }

    fn push_front(&mut self, obj: u32) {
        self.prev[obj as usize] = NONE;
        self.next[obj as usize] = self.head;
        if self.head != NONE {
            self.prev[self.head as usize] = obj;
        }
        self.head = obj;
        if self.tail == NONE {
            self.tail = obj;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_until_the_new_object_fits() {
        let mut c = LruCache::new(100, 4);
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
    }

    #[test]
    fn objects_over_the_largest_stored_size_pass_uncached() {
        let mut c = LruCache::new(100, 3).with_max_object(50);
        c.insert(0, 60);
        assert!(!c.lookup(0));
        c.insert(1, 50);
        assert!(c.lookup(1));
        assert_eq!(c.used_bytes(), 50);
        assert_eq!(LruCache::new(100, 1).with_max_object(500).max_object, 100, "never above the capacity");
    }
}
