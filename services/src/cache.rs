//! The owner's store of responses: a byte-bounded cache of response bodies
//! with their stored fields ([`ByteCache`]), keyed by the effective request
//! URI, and around it what an HTTP cache keeps beside its entries
//! ([`HttpCache`]): the `Vary` fields of each URI's responses (so that a
//! request finds its variant under a secondary key), and the URIs whose
//! last answer could not be stored (hit-for-pass: their requests go to the
//! origin at once instead of queueing behind a fill that will not be shared).
//!
//! The core's cache keeps the eviction order and the byte budget: inserting
//! evicts the entries the node's eviction chooses (LRU by default; FIFO,
//! SIEVE, S3-FIFO or GDSF, [`dl7_core::eviction`]) until the new entry
//! fits, and an entry larger than the whole budget is not stored.
//! It must not fetch, lock or decide what HTTP allows ([`crate::rfc9111`]
//! does); the node wraps it in a mutex.

use std::collections::HashMap;

use bytes::Bytes;
use dl7_core::eviction::{Cache, Eviction, Inserted};

use crate::rfc9111::Freshness;

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
    /// The stored response's status.
    pub status: u16,
    /// How long it is fresh, and how old it was when it came.
    pub freshness: Freshness,
}

/// An eviction order with a byte budget: the core's cache
/// ([`dl7_core::eviction::Cache`]), the same implementation the simulator's
/// nodes use, so that both engines keep and evict the same objects.
pub struct ByteCache {
    entries: Cache<String, Entry>,
}

impl ByteCache {
    /// An empty cache that holds at most `capacity` body bytes and drops what `eviction` chooses.
    pub fn new(eviction: Eviction, capacity: u64) -> Self {
        Self { entries: Cache::new(eviction, capacity) }
    }

    /// The entry for `path`, its hit noted (LRU: it becomes the most recently used).
    pub fn get(&mut self, path: &str) -> Option<Entry> {
        self.entries.get(path).cloned()
    }

    /// Stores `entry`, evicting the entries the eviction chooses until it
    /// fits. An entry larger than the budget is not stored (false); storing
    /// a path already present counts as a hit and keeps the stored entry, as
    /// the simulator's cache does: the same order in both engines.
    pub fn insert(&mut self, path: &str, entry: Entry) -> bool {
        let size = entry.body.len() as u64;
        !matches!(self.entries.insert(path.to_string(), entry, size), Inserted::NotAdmitted)
    }

    /// Replaces the entry for `path` (a refill or a 304's update after a
    /// validation), or stores it when absent; false when it does not fit at all.
    pub fn replace(&mut self, path: &str, entry: Entry) -> bool {
        self.remove(path);
        self.insert(path, entry)
    }

    /// Drops the entry for `path` (an invalidation); true when there was one.
    pub fn remove(&mut self, path: &str) -> bool {
        self.entries.remove(path).is_some()
    }

    /// Body bytes stored.
    pub fn bytes(&self) -> u64 {
        self.entries.used_bytes()
    }

    /// Objects stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(path, entry)`, in the cache's storage order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter().map(|(k, v, _)| (k, v))
    }
}

/// Most URIs [`HttpCache`] remembers `Vary` fields or a pass for; past
/// it, those notes are forgotten (a variant is then fetched again, never
/// served wrongly: generations only grow).
const MAX_NOTES: usize = 1 << 16;

/// Seconds a URI whose answer could not be stored goes straight to the
/// origin (Varnish's hit-for-pass default, 120 s).
pub const PASS_FOR_S: u64 = 120;

/// The entries and what an HTTP cache notes beside them.
pub struct HttpCache {
    /// The entries, under [`HttpCache::key`]s.
    pub entries: ByteCache,
    /// URI -> the `Vary` fields of its responses and its generation (bumped when it is invalidated).
    vary: HashMap<String, (Bytes, u64)>,
    /// The next generation handed out: variants of an invalidated URI are never found again.
    next_gen: u64,
    /// URI -> until when (Unix seconds) its requests pass.
    pass: HashMap<String, u64>,
}

impl HttpCache {
    /// An empty cache of at most `capacity` body bytes, dropping what `eviction` chooses.
    pub fn new(eviction: Eviction, capacity: u64) -> Self {
        HttpCache {
            entries: ByteCache::new(eviction, capacity),
            vary: HashMap::new(),
            next_gen: 1,
            pass: HashMap::new(),
        }
    }

    /// The `Vary` fields `uri`'s responses vary on, if they do.
    pub fn vary(&self, uri: &str) -> Option<&Bytes> {
        self.vary.get(uri).map(|(v, _)| v)
    }

    /// The key of a response of `uri` varying on fields whose request
    /// values are `secondary` ([`crate::rfc9111::secondary_key`]): `uri`
    /// itself when it does not vary.
    pub fn key(&self, uri: &str, secondary: &[u8], out: &mut String) {
        out.clear();
        out.push_str(uri);
        if let Some((_, generation)) = self.vary.get(uri) {
            out.push('\0');
            out.push_str(itoa::Buffer::new().format(*generation));
            // Field names and values are visible ASCII or obs-text; kept as they are.
            out.push_str(&String::from_utf8_lossy(secondary));
        }
    }

    /// Notes that `uri`'s responses vary on `fields` (empty: they do not).
    pub fn set_vary(&mut self, uri: &str, fields: Bytes) {
        if fields.is_empty() {
            if self.vary.contains_key(uri) {
                self.vary.remove(uri);
            }
            return;
        }
        if self.vary.get(uri).is_some_and(|(v, _)| *v == fields) {
            return;
        }
        if self.vary.len() >= MAX_NOTES {
            self.vary.clear();
        }
        let generation = self.next_gen;
        self.next_gen += 1;
        self.vary.insert(uri.to_string(), (fields, generation));
    }

    /// True while `uri`'s requests pass (its last answer was not storable).
    pub fn passes(&self, uri: &str, now: u64) -> bool {
        self.pass.get(uri).is_some_and(|&until| now < until)
    }

    /// `uri`'s requests pass until `until`; or, with `None`, no longer.
    pub fn set_pass(&mut self, uri: &str, until: Option<u64>) {
        match until {
            Some(t) => {
                if self.pass.len() >= MAX_NOTES {
                    self.pass.clear();
                }
                self.pass.insert(uri.to_string(), t);
            }
            None => {
                if self.pass.contains_key(uri) {
                    self.pass.remove(uri);
                }
            }
        }
    }

    /// Invalidates `uri` (RFC 9111 section 4.4): its entry and every
    /// variant of it (a new generation). True when anything was held.
    pub fn invalidate(&mut self, uri: &str) -> bool {
        let mut held = self.entries.remove(uri);
        if let Some((_, generation)) = self.vary.get_mut(uri) {
            *generation = self.next_gen;
            self.next_gen += 1;
            held = true;
        }
        held
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
            status: 200,
            freshness: Freshness::default(),
        }
    }

    #[test]
    fn evicts_least_recently_used_until_the_new_entry_fits() {
        let mut c = ByteCache::new(Eviction::Lru, 100);
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
        let mut c = ByteCache::new(Eviction::Lru, 100);
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
        let mut c = ByteCache::new(Eviction::Lru, 100);
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
