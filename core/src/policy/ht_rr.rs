//! `ht_rr` and `ht_rr_shared`: Kwak & Chung's hash table filled by round
//! robin (KIPS Trans. A 13(7), 2006): "the server number for a hash value is
//! fixed at run time using round robin".
//!
//! `b = md5_64(url) mod B` with `B` = parameter `buckets` (default 65536); an
//! empty bucket is assigned `servers[rr++ mod N]` on its first use and keeps
//! it. Stateful: the instance owns its table and counter.
//!
//! **Reading of the paper (uncertain, documented):** in the distributed
//! architecture every server ran its own dispatcher, so under `ht_rr` each
//! dispatcher keeps its *own* table and counter (one instance per node): the
//! same URL can get different owners at different receivers, which spreads
//! and replicates hot objects. `ht_rr_shared` is the same type; engines give
//! all dispatchers one instance because [`PolicyKind::shared_by_default`]
//! says so. Which of the two the paper measured is not stated; report both.
//!
//! `candidates` is the default: the bucket's owner, then the following
//! server indices (asking for candidates assigns an empty bucket, as a pick
//! would).

use std::sync::atomic::{AtomicU32, Ordering};

use super::{Policy, PolicyKind, State};
use crate::{LoadView, Membership, RequestKey, ServerId};

/// The paper-era default table size.
pub const DEFAULT_BUCKETS: usize = 65536;

/// Upper bound on `buckets` (64 Mi buckets = 256 MiB).
pub const MAX_BUCKETS: usize = 1 << 26;

const EMPTY: u32 = u32::MAX;

/// The round-robin-filled hash table.
#[derive(Debug)]
pub struct HashTableRr {
    kind: PolicyKind,
    table: Vec<AtomicU32>,
    n: u32,
    counter: AtomicU32,
}

impl HashTableRr {
    /// `kind` is `HtRr` or `HtRrShared` (only the name and the engine's
    /// sharing decision differ). `buckets` must be at least 1.
    pub fn new(kind: PolicyKind, members: &Membership, buckets: usize) -> Self {
        let table = (0..buckets.max(1)).map(|_| AtomicU32::new(EMPTY)).collect();
        Self { kind, table, n: members.len() as u32, counter: AtomicU32::new(0) }
    }

    /// Buckets assigned so far.
    pub fn assigned(&self) -> usize {
        self.table.iter().filter(|s| s.load(Ordering::Relaxed) != EMPTY).count()
    }
}

impl Policy for HashTableRr {
    fn kind(&self) -> PolicyKind {
        self.kind
    }
    fn state(&self) -> State {
        State::Stateful
    }
    fn servers(&self) -> usize {
        self.n as usize
    }
    fn describe(&self) -> String {
        format!("buckets={}", self.table.len())
    }
    #[inline]
    fn pick(&self, key: &RequestKey, _: &dyn LoadView) -> ServerId {
        let b = (key.md5_64() % self.table.len() as u64) as usize;
        let slot = &self.table[b];
        let owner = slot.load(Ordering::Relaxed);
        if owner != EMPTY {
            return ServerId(owner);
        }
        // Two threads filling one bucket at once: the first to store wins and
        // both answer its server (the loser's counter step is skipped).
        let fresh = self.counter.fetch_add(1, Ordering::Relaxed) % self.n;
        match slot.compare_exchange(EMPTY, fresh, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => ServerId(fresh),
            Err(winner) => ServerId(winner),
        }
    }
}
