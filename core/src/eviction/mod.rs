//! # Which object does a full cache drop?
//!
//! One byte-bounded cache, [`Cache`], with the eviction algorithm chosen by
//! an [`Eviction`]: the simulator's nodes use it with object indices as keys
//! (`Cache<u32, ()>`), the real node with its cache keys and response
//! entries (`Cache<String, Entry>`), so that an algorithm means the same in
//! both engines. It must not know about HTTP (what may be stored, for how
//! long: the real node decides that around it), time, or I/O.
//!
//! | name | algorithm | a hit | parameters |
//! |---|---|---|---|
//! | `lru` (default) | [`lru`]: least recently used | moves the object to the head | none |
//! | `fifo` | [`fifo`]: first in, first out | nothing | none |
//! | `sieve` | [`sieve`], NSDI '24 | sets a visited bit | none |
//! | `s3fifo` | [`s3fifo`], SOSP '23 | raises a 2-bit counter | S 10%, M 90%, ghost 90% of the bytes, move to M at 2 hits |
//! | `gdsf` | [`gdsf`], Cherkasova 1998 | raises the priority, O(log n) | cost 1 |
//!
//! What every algorithm shares, in [`Cache`]:
//! - sizes are bytes; the cache never holds more than its capacity;
//! - admission: an object larger than [`Cache::with_max_object`] (at most
//!   the capacity) is not stored, and nothing is evicted for it (S3-FIFO
//!   also refuses an object not smaller than its small queue);
//! - inserting a key already cached counts as a hit and keeps the stored
//!   value (the simulator's and the real node's caches did so before);
//! - eviction runs until the new object fits;
//! - determinism: a fixed hasher (foldhash's `FixedState`), no randomness,
//!   and nothing iterates the index; [`Cache::iter`] walks slots, whose order
//!   is a function of the operations only;
//! - a hit allocates nothing, and an insertion reuses the slot of an evicted
//!   object, so once the cache (and S3-FIFO's ghost) has held its most
//!   objects nothing allocates (`tests/eviction_no_alloc.rs` counts).
//!
//! ```
//! use dl7_core::eviction::{Cache, Eviction, Inserted};
//! let mut cache: Cache<String, &str> = Cache::new("sieve".parse().unwrap(), 100);
//! assert_eq!(cache.insert("/a".to_string(), "body a", 60), Inserted::Stored);
//! assert_eq!(cache.get("/a"), Some(&"body a")); // a hit: /a is visited
//! cache.insert("/b".to_string(), "body b", 30);
//! cache.insert("/c".to_string(), "body c", 30); // full: the hand skips /a, evicts /b
//! assert!(cache.contains("/a") && !cache.contains("/b"));
//! assert_eq!(cache.insert("/big".to_string(), "", 101), Inserted::NotAdmitted);
//! assert_eq!(cache.eviction(), Eviction::Sieve);
//! ```
//!
//! ## How to add an algorithm
//! 1. Write `eviction/<name>.rs`: a module doc citing its source and stating
//!    its parameters, a type implementing the slot-level `Order` trait (a
//!    hit and an insertion must not allocate once the cache is full), and
//!    one test per characteristic behaviour on a hand-worked sequence.
//! 2. Add a variant to [`Eviction`] (and to `ALL` and `name`), to
//!    `AnyOrder` and its `dispatch!` macro, and a row to the table above.
//! 3. Add it to `tests/eviction_no_alloc.rs`, `examples/replay_eviction.rs`
//!    and, if libCacheSim has it, `.ci/libcachesim-check.py`.

pub mod fifo;
pub mod gdsf;
mod list;
pub mod lru;
pub mod s3fifo;
pub mod sieve;

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::str::FromStr;

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An eviction algorithm, by the name experiment files use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Eviction {
    /// Least recently used ([`lru`]).
    #[default]
    Lru,
    /// First in, first out ([`fifo`]).
    Fifo,
    /// SIEVE, NSDI '24 ([`sieve`]).
    Sieve,
    /// S3-FIFO, SOSP '23 ([`s3fifo`]).
    S3Fifo,
    /// Greedy-Dual-Size-Frequency, Cherkasova 1998 ([`gdsf`]).
    Gdsf,
}

impl Eviction {
    /// Every algorithm, in the order results list them.
    pub const ALL: &'static [Eviction] =
        &[Eviction::Lru, Eviction::Fifo, Eviction::Sieve, Eviction::S3Fifo, Eviction::Gdsf];

    /// The name used in experiment files and results.
    pub fn name(self) -> &'static str {
        match self {
            Eviction::Lru => "lru",
            Eviction::Fifo => "fifo",
            Eviction::Sieve => "sieve",
            Eviction::S3Fifo => "s3fifo",
            Eviction::Gdsf => "gdsf",
        }
    }
}

impl fmt::Display for Eviction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not an [`Eviction`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown eviction `{0}` (valid: lru, fifo, sieve, s3fifo, gdsf)")]
pub struct UnknownEviction(pub String);

impl FromStr for Eviction {
    type Err = UnknownEviction;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|e| e.name() == name).ok_or_else(|| UnknownEviction(name.to_string()))
    }
}

/// What [`Cache::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The object is stored now (other objects may have been evicted).
    Stored,
    /// The key was cached already: counted as a hit, the stored value kept
    /// and the one passed in dropped.
    AlreadyCached,
    /// Too large to store (the largest object stored, or S3-FIFO's small
    /// queue); nothing was evicted.
    NotAdmitted,
}

/// What a [`Cache`] asks of its eviction algorithm. The cache owns keys,
/// values, sizes and the index; an algorithm sees slot numbers (dense, a
/// freed one reused first) and, to remember keys after eviction (S3-FIFO's
/// ghost), the keys of its victims.
trait Order<K> {
    /// Whether an object of `bytes` may be stored at all.
    fn admits(&self, _bytes: u64) -> bool {
        true
    }
    /// Before `key` (not cached) is inserted, with its hash: true when the
    /// algorithm remembers it from an earlier eviction, which it then forgets.
    fn recall(&mut self, _hash: u64, _key: &K) -> bool {
        false
    }
    /// `slot` holds a new object of `bytes`; `recalled` is what `recall` said.
    fn insert(&mut self, slot: u32, bytes: u64, recalled: bool);
    /// The object in `slot` was requested.
    fn hit(&mut self, slot: u32);
    /// Chooses the next victim and forgets its slot; called only when an
    /// object is stored.
    fn evict(&mut self) -> u32;
    /// The last victim's key, hash and size, after the cache dropped its value.
    fn evicted(&mut self, _hash: u64, _key: K, _bytes: u64) {}
    /// The object in `slot` is removed by the caller, not evicted.
    fn remove(&mut self, slot: u32);
}

/// The algorithms, dispatched by a `match` (no boxing, and the compiler sees
/// through each arm).
#[derive(Debug, Clone)]
enum AnyOrder<K> {
    Lru(lru::Lru),
    Fifo(fifo::Fifo),
    Sieve(sieve::Sieve),
    S3Fifo(s3fifo::S3Fifo<K>),
    Gdsf(gdsf::Gdsf),
}

macro_rules! dispatch {
    ($self:expr, $o:ident => $call:expr) => {
        match $self {
            AnyOrder::Lru($o) => $call,
            AnyOrder::Fifo($o) => $call,
            AnyOrder::Sieve($o) => $call,
            AnyOrder::S3Fifo($o) => $call,
            AnyOrder::Gdsf($o) => $call,
        }
    };
}

impl<K: Hash + Eq> Order<K> for AnyOrder<K> {
    #[inline]
    fn admits(&self, bytes: u64) -> bool {
        dispatch!(self, o => Order::<K>::admits(o, bytes))
    }
    #[inline]
    fn recall(&mut self, hash: u64, key: &K) -> bool {
        dispatch!(self, o => o.recall(hash, key))
    }
    #[inline]
    fn insert(&mut self, slot: u32, bytes: u64, recalled: bool) {
        dispatch!(self, o => Order::<K>::insert(o, slot, bytes, recalled))
    }
    #[inline]
    fn hit(&mut self, slot: u32) {
        dispatch!(self, o => Order::<K>::hit(o, slot))
    }
    #[inline]
    fn evict(&mut self) -> u32 {
        dispatch!(self, o => Order::<K>::evict(o))
    }
    #[inline]
    fn evicted(&mut self, hash: u64, key: K, bytes: u64) {
        dispatch!(self, o => o.evicted(hash, key, bytes))
    }
    #[inline]
    fn remove(&mut self, slot: u32) {
        dispatch!(self, o => Order::<K>::remove(o, slot))
    }
}

#[derive(Debug, Clone)]
struct Stored<K, V> {
    key: K,
    value: V,
    bytes: u64,
}

/// A byte-bounded cache of values of `V` under keys of `K`, evicting by an
/// [`Eviction`] algorithm. See the [module](self) for what every algorithm
/// shares.
#[derive(Debug, Clone)]
pub struct Cache<K, V> {
    eviction: Eviction,
    capacity: u64,
    /// Largest object stored (Squid's `maximum_object_size`).
    max_object: u64,
    used: u64,
    len: usize,
    hasher: FixedState,
    /// Slot numbers, hashed by their key: each key is stored once, in its slot.
    index: HashTable<u32>,
    slots: Vec<Option<Stored<K, V>>>,
    /// Slots of evicted or removed objects, reused first.
    free: Vec<u32>,
    order: AnyOrder<K>,
}

impl<K: Hash + Eq, V> Cache<K, V> {
    /// An empty cache of `capacity` bytes that evicts by `eviction` and
    /// stores any object that fits.
    pub fn new(eviction: Eviction, capacity: u64) -> Self {
        let order = match eviction {
            Eviction::Lru => AnyOrder::Lru(lru::Lru::new()),
            Eviction::Fifo => AnyOrder::Fifo(fifo::Fifo::new()),
            Eviction::Sieve => AnyOrder::Sieve(sieve::Sieve::new()),
            Eviction::S3Fifo => AnyOrder::S3Fifo(s3fifo::S3Fifo::new(capacity)),
            Eviction::Gdsf => AnyOrder::Gdsf(gdsf::Gdsf::new()),
        };
        Self {
            eviction,
            capacity,
            max_object: capacity,
            used: 0,
            len: 0,
            hasher: FixedState::default(),
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            order,
        }
    }

    /// Stores no object larger than `bytes` (at most the capacity).
    pub fn with_max_object(mut self, bytes: u64) -> Self {
        self.max_object = bytes.min(self.capacity);
        self
    }

    /// The eviction algorithm.
    pub fn eviction(&self) -> Eviction {
        self.eviction
    }

    /// Most bytes held.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Largest object stored.
    pub fn max_object(&self) -> u64 {
        self.max_object
    }

    /// Bytes held.
    pub fn used_bytes(&self) -> u64 {
        self.used
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value under `key`, as a request for it: a hit updates the
    /// algorithm's order.
    #[inline]
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.find(key)?;
        self.order.hit(slot);
        self.slots[slot as usize].as_ref().map(|s| &s.value)
    }

    /// True when `key` is cached, as a request for it (see [`get`](Self::get)).
    #[inline]
    pub fn lookup<Q>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The value under `key`, without counting a request.
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.find(key)?;
        self.slots[slot as usize].as_ref().map(|s| &s.value)
    }

    /// True when `key` is cached, without counting a request.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(key).is_some()
    }

    /// Stores `value` of `bytes` under `key`, evicting until it fits. A key
    /// already cached counts as a hit and keeps its value; an object too
    /// large is not stored and evicts nothing.
    pub fn insert(&mut self, key: K, value: V, bytes: u64) -> Inserted {
        let hash = self.hasher.hash_one(&key);
        if let Some(slot) = self.find_hashed(hash, &key) {
            self.order.hit(slot);
            return Inserted::AlreadyCached;
        }
        if bytes > self.max_object || !self.order.admits(bytes) {
            return Inserted::NotAdmitted;
        }
        // Before evicting: evictions may push this very key out of S3-FIFO's ghost.
        let recalled = self.order.recall(hash, &key);
        while self.used + bytes > self.capacity {
            let victim = self.order.evict();
            let (hash, stored) = self.take(victim);
            self.order.evicted(hash, stored.key, stored.bytes);
        }
        let stored = Some(Stored { key, value, bytes });
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = stored;
                slot
            }
            None => {
                self.slots.push(stored);
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, slot, |&s| hasher.hash_one(&occupied(slots, s).key));
        self.used += bytes;
        self.len += 1;
        self.order.insert(slot, bytes, recalled);
        Inserted::Stored
    }

    /// Takes `key` out of the cache (an invalidation, not an eviction: no
    /// algorithm remembers it) and returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.find(key)?;
        self.order.remove(slot);
        Some(self.take(slot).1.value)
    }

    /// `(key, value, bytes)` of every object held, in slot order: not an
    /// eviction order, but the same for the same operations.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V, u64)> {
        self.slots.iter().flatten().map(|s| (&s.key, &s.value, s.bytes))
    }

    /// Slots allocated, held or free (for the tests that bound memory).
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn find<Q>(&self, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find_hashed(self.hasher.hash_one(key), key)
    }

    #[inline]
    fn find_hashed<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slots = &self.slots;
        self.index.find(hash, |&s| occupied(slots, s).key.borrow() == key).copied()
    }

    /// Empties `slot` (already out of the algorithm's order) and returns its
    /// key's hash and its contents.
    fn take(&mut self, slot: u32) -> (u64, Stored<K, V>) {
        let stored = self.slots[slot as usize].take().expect("a victim's slot is occupied");
        let hash = self.hasher.hash_one(&stored.key);
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.used -= stored.bytes;
        self.len -= 1;
        self.free.push(slot);
        (hash, stored)
    }
}

#[inline]
fn occupied<K, V>(slots: &[Option<Stored<K, V>>], slot: u32) -> &Stored<K, V> {
    slots[slot as usize].as_ref().expect("indexed slots are occupied")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_both_ways() {
        for &e in Eviction::ALL {
            assert_eq!(e.name().parse::<Eviction>(), Ok(e));
            assert_eq!(e.to_string(), e.name());
        }
        assert_eq!(Eviction::default(), Eviction::Lru);
    }

    #[test]
    fn an_unknown_name_lists_the_valid_ones() {
        let err = "arc".parse::<Eviction>().unwrap_err();
        assert_eq!(err.to_string(), "unknown eviction `arc` (valid: lru, fifo, sieve, s3fifo, gdsf)");
    }

    #[test]
    fn serde_uses_the_same_lowercase_names() {
        #[derive(Deserialize, Serialize)]
        struct C {
            eviction: Eviction,
        }
        let c: C = toml::from_str("eviction = \"s3fifo\"").unwrap();
        assert_eq!(c.eviction, Eviction::S3Fifo);
        assert_eq!(toml::to_string(&C { eviction: Eviction::Gdsf }).unwrap().trim(), "eviction = \"gdsf\"");
        assert!(toml::from_str::<C>("eviction = \"S3FIFO\"").is_err());
    }

    /// A pseudo-random mix of requests, insertions and removals with sizes
    /// from 1 to 300 bytes into a 2,000-byte cache.
    fn churn(eviction: Eviction, mut check: impl FnMut(&Cache<u32, u32>)) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut c = Cache::new(eviction, 2_000).with_max_object(250);
        for _ in 0..20_000 {
            let key = rng.gen_range(0..300u32);
            let size = 1 + u64::from(key.wrapping_mul(2_654_435_761) % 300);
            match rng.gen_range(0..10) {
                0 => {
                    c.remove(&key);
                }
                _ => {
                    if !c.lookup(&key) {
                        c.insert(key, key, size);
                    }
                }
            }
            check(&c);
        }
    }

    #[test]
    fn capacity_is_never_exceeded() {
        for &e in Eviction::ALL {
            churn(e, |c| assert!(c.used_bytes() <= c.capacity(), "{e}: {} bytes", c.used_bytes()));
        }
    }

    #[test]
    fn bytes_and_length_agree_with_the_objects_held() {
        for &e in Eviction::ALL {
            churn(e, |c| {
                assert_eq!(c.iter().map(|(_, _, b)| b).sum::<u64>(), c.used_bytes(), "{e}");
                assert_eq!(c.iter().count(), c.len(), "{e}");
                assert!(c.iter().all(|(k, v, _)| k == v && c.contains(k)), "{e}");
            });
        }
    }

    #[test]
    fn objects_over_the_largest_stored_size_are_not_stored_and_evict_nothing() {
        for &e in Eviction::ALL {
            let mut c = Cache::new(e, 1_000).with_max_object(50);
            assert_eq!(c.insert(0u32, (), 50), Inserted::Stored, "{e}");
            assert_eq!(c.insert(1, (), 51), Inserted::NotAdmitted, "{e}");
            assert!(c.contains(&0) && !c.contains(&1), "{e}");
            assert_eq!(c.used_bytes(), 50, "{e}");
        }
        assert_eq!(Cache::<u32, ()>::new(Eviction::Lru, 100).with_max_object(500).max_object(), 100);
    }

    #[test]
    fn an_object_larger_than_the_cache_is_not_stored() {
        for &e in Eviction::ALL {
            let mut c = Cache::new(e, 100);
            c.insert(0u32, (), 5);
            assert_eq!(c.insert(1, (), 101), Inserted::NotAdmitted, "{e}");
            assert!(c.contains(&0) && c.used_bytes() == 5, "{e}");
        }
    }

    #[test]
    fn inserting_a_cached_key_keeps_its_value_and_size() {
        for &e in Eviction::ALL {
            let mut c = Cache::new(e, 100);
            c.insert("/a".to_string(), 1, 5);
            assert_eq!(c.insert("/a".to_string(), 2, 7), Inserted::AlreadyCached, "{e}");
            assert_eq!((c.peek("/a"), c.used_bytes(), c.len()), (Some(&1), 5, 1), "{e}");
        }
    }

    #[test]
    fn remove_returns_the_value_and_frees_its_bytes() {
        for &e in Eviction::ALL {
            let mut c = Cache::new(e, 100);
            c.insert("/a".to_string(), 1, 5);
            c.insert("/b".to_string(), 2, 6);
            assert_eq!(c.remove("/a"), Some(1), "{e}");
            assert_eq!(c.remove("/a"), None, "{e}");
            assert_eq!((c.used_bytes(), c.len(), c.peek("/b")), (6, 1, Some(&2)), "{e}");
        }
    }

    /// Hits and hit bytes of 50,000 requests (a skewed LCG stream over
    /// 5,000 objects of 100 to 999 bytes) into 150,000 bytes, pinned. LRU,
    /// FIFO, SIEVE and S3-FIFO are libCacheSim 0.3.5's numbers on the same
    /// stream; GDSF's are those of a separate heap-with-lazy-deletion model
    /// of the paper's rule (libCacheSim's, which stores a new object before
    /// evicting: 8,695 hits, 3,359,952 bytes).
    #[test]
    fn golden_hits_on_a_fixed_stream() {
        let mut x = 7u64;
        let stream: Vec<(u32, u64)> = (0..50_000)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                let key = (u * u * 5_000.0) as u32;
                (key, 100 + u64::from(key.wrapping_mul(2_654_435_761) % 900))
            })
            .collect();
        let golden = [
            (Eviction::Lru, 5_755, 2_766_316),
            (Eviction::Fifo, 5_286, 2_591_214),
            (Eviction::Sieve, 8_492, 4_318_593),
            (Eviction::S3Fifo, 9_283, 4_697_973),
            (Eviction::Gdsf, 8_677, 3_353_714),
        ];
        for (e, hits, hit_bytes) in golden {
            let mut c = Cache::new(e, 150_000);
            let (mut h, mut hb) = (0u64, 0u64);
            for &(key, bytes) in &stream {
                if c.lookup(&key) {
                    h += 1;
                    hb += bytes;
                } else {
                    c.insert(key, (), bytes);
                }
            }
            assert_eq!((h, hb), (hits, hit_bytes), "{e}");
        }
    }
}
