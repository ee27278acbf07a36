//! A byte-bounded LRU cache of response bodies, keyed by URL path.
//!
//! The `lru` crate keeps the recency order (O(1) touch and evict); this type
//! adds the byte budget: inserting evicts least-recently-used entries until
//! the new entry fits, and an entry larger than the whole budget is not stored.
//! It must not fetch, lock or know about HTTP; the node wraps it in a mutex.

use bytes::Bytes;
use lru::LruCache;

/// One cached object, ready to be written to a client.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The stored body (gzip-compressed when `gzip`).
    pub body: Bytes,
    /// Its type: the `Content-Type` to answer with, and whether the distiller works on it.
    pub content_type: dl7_traces::ContentType,
    /// Catalog object id, as the origin reported it.
    pub object_id: Option<u32>,
    /// The body is gzip-compressed (the distill stage ran).
    pub gzip: bool,
    /// The origin's end-to-end header lines, written with every hit.
    pub stored: Bytes,
}

/// LRU order with a byte budget.
pub struct ByteLru {
    entries: LruCache<String, Entry>,
    bytes: u64,
    capacity: u64,
}

impl ByteLru {
    /// An empty cache that holds at most `capacity` body bytes.
    pub fn new(capacity: u64) -> Self {
        Self { entries: LruCache::unbounded(), bytes: 0, capacity }
    }

    /// The entry for `path`, marked most recently used.
    pub fn get(&mut self, path: &str) -> Option<Entry> {
        self.entries.get(path).cloned()
    }

    /// Stores `entry`, evicting least recently used entries until it fits.
    /// An entry larger than the budget is not stored (false); storing a path
    /// already present only makes it the most recently used, as the
    /// simulator's cache does: the same order in both engines.
    pub fn insert(&mut self, path: &str, entry: Entry) -> bool {
        let size = entry.body.len() as u64;
        if self.entries.get(path).is_some() {
            return true;
        }
        if size > self.capacity {
            return false;
        }
        while self.bytes + size > self.capacity {
            match self.entries.pop_lru() {
                Some((_, old)) => self.bytes -= old.body.len() as u64,
                None => break,
            }
        }
        self.bytes += size;
        self.entries.put(path.to_string(), entry);
        true
    }

    /// Body bytes stored.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Objects stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(path, entry)` from most to least recently used.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry {
            body: Bytes::from(vec![0u8; n]),
            content_type: dl7_traces::ContentType::Gif,
            object_id: None,
            gzip: false,
            stored: Bytes::new(),
        }
    }

    #[test]
    fn evicts_least_recently_used_until_the_new_entry_fits() {
        let mut c = ByteLru::new(100);
        assert!(c.insert("/a", entry(40)));
        assert!(c.insert("/b", entry(40)));
        assert!(c.get("/a").is_some()); // /b is now the LRU one
        assert!(c.insert("/c", entry(40)));
        assert!(c.get("/b").is_none());
        assert!(c.get("/a").is_some() && c.get("/c").is_some());
        assert_eq!(c.bytes(), 80);
    }

    #[test]
    fn oversized_entries_are_not_stored_and_a_second_insert_only_touches() {
        let mut c = ByteLru::new(100);
        assert!(!c.insert("/big", entry(101)));
        assert!(c.insert("/a", entry(10)));
        assert!(c.insert("/b", entry(50)));
        assert!(c.insert("/a", entry(30))); // present: touched, not replaced
        assert_eq!((c.len(), c.bytes()), (2, 60));
        assert!(c.insert("/c", entry(50))); // evicts /b, the least recently used
        assert!(c.get("/b").is_none() && c.get("/a").is_some());
    }

    /// The simulator's cache test (`sim/src/model/cache.rs`), step for step:
    /// the same sequence leaves the same contents in both engines.
    #[test]
    fn the_simulators_sequence_gives_the_simulators_contents() {
        let mut c = ByteLru::new(100);
        c.insert("/0", entry(40));
        c.insert("/1", entry(40));
        assert!(c.get("/0").is_some());
        c.insert("/2", entry(40));
        assert!(c.get("/1").is_none());
        assert!(c.get("/0").is_some() && c.get("/2").is_some());
        assert_eq!(c.bytes(), 80);
        c.insert("/3", entry(101));
        assert!(c.get("/3").is_none());
        assert_eq!(c.bytes(), 80);
        c.insert("/3", entry(100));
        assert!(c.get("/3").is_some() && c.get("/0").is_none() && c.get("/2").is_none());
        assert_eq!(c.bytes(), 100);
    }
}
