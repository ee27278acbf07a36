//! `lard`: locality-aware request distribution (Pai et al., ASPLOS 1998; the
//! same rule as Linux IPVS `lblc`). A table maps each URL to a server:
//! * a URL seen for the first time goes to the least-loaded server;
//! * a URL whose server is overloaded (`inflight > t_high` while some server
//!   has `inflight < t_low`, or `inflight >= 2 * t_high`) is moved to the
//!   least-loaded server;
//! * otherwise it stays where it is.
//!
//! `t_low` and `t_high` default to LARD's 25 and 65 connections.
//!
//! Choices (documented): the table key is `md5_64(url)` (a URL's identity;
//! two URLs colliding in 64 bits would share a server, which is harmless);
//! the table is a `HashMap` created at build with room for
//! [`INITIAL_CAPACITY`] URLs and an identity hasher (the key is already a
//! uniform hash, and no seeded hasher is needed for determinism), so it
//! allocates only when it grows (amortised doubling), never in steady state.
//! Ties for least loaded are broken by a rotating start index, so that with
//! no load (tools, tests) new URLs are spread round robin instead of all
//! landing on server 0. Stateful: the instance owns the table and the
//! rotation. `lardr` (replicas for hot URLs) is not implemented.
//!
//! `candidates`: the pick, then the other servers by ascending load (ties by
//! index).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};

use super::seen::Seen;
use super::{Policy, PolicyKind, State};
use crate::{LoadView, Membership, RequestKey, ServerId};

/// LARD's `T_low`.
pub const DEFAULT_T_LOW: u64 = 25;
/// LARD's `T_high`.
pub const DEFAULT_T_HIGH: u64 = 65;
/// URLs the table holds before its first growth.
pub const INITIAL_CAPACITY: usize = 4096;

/// Passes a u64 key (already an MD5 prefix) through unchanged.
#[derive(Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The LARD dispatcher's table and thresholds.
#[derive(Debug)]
pub struct Lard {
    /// The table and the rotation: one lock per pick, as LARD's single
    /// front-end dispatcher has (a shared table is the policy).
    state: Mutex<Table>,
    n: u32,
    t_low: u64,
    t_high: u64,
}

#[derive(Debug)]
struct Table {
    owners: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
    rotation: u32,
}

impl Lard {
    /// An empty table with room for [`INITIAL_CAPACITY`] URLs.
    pub fn new(members: &Membership, t_low: u64, t_high: u64) -> Self {
        let owners = HashMap::with_capacity_and_hasher(INITIAL_CAPACITY, Default::default());
        Self { state: Mutex::new(Table { owners, rotation: 0 }), n: members.len() as u32, t_low, t_high }
    }

    /// URLs in the table.
    pub fn urls(&self) -> usize {
        self.table().owners.len()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere cannot leave the table half-written: every update
        // is one insert.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Table {
    /// Least-loaded server (ties from the rotating start) and the minimum load.
    fn least_loaded(&mut self, n: u32, load: &dyn LoadView) -> (u32, u64) {
        let start = self.rotation % n;
        self.rotation = self.rotation.wrapping_add(1);
        let mut best = (start, load.inflight(ServerId(start)));
        for i in 1..n {
            let s = (start + i) % n;
            let l = load.inflight(ServerId(s));
            if l < best.1 {
                best = (s, l);
            }
        }
        best
    }
}

impl Policy for Lard {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Lard
    }
    fn state(&self) -> State {
        State::Stateful
    }
    fn servers(&self) -> usize {
        self.n as usize
    }
    fn describe(&self) -> String {
        format!("t_low={} t_high={}", self.t_low, self.t_high)
    }
    fn pick(&self, key: &RequestKey, load: &dyn LoadView) -> ServerId {
        let url = key.md5_64();
        let mut table = self.table();
        let chosen = match table.owners.get(&url).copied() {
            None => table.least_loaded(self.n, load).0,
            Some(owner) => {
                let l = load.inflight(ServerId(owner));
                if l >= 2 * self.t_high {
                    table.least_loaded(self.n, load).0
                } else if l > self.t_high {
                    let (least, min_load) = table.least_loaded(self.n, load);
                    if min_load < self.t_low {
                        least
                    } else {
                        owner
                    }
                } else {
                    owner
                }
            }
        };
        table.owners.insert(url, chosen);
        ServerId(chosen)
    }
    fn walk(&self, key: &RequestKey, load: &dyn LoadView, visit: &mut dyn FnMut(ServerId) -> bool) {
        let first = self.pick(key, load);
        if !visit(first) {
            return;
        }
        // The others by ascending (load, index): each step selects the least
        // not listed yet, so the walk needs no buffer (and a load that moves
        // meanwhile cannot list a server twice).
        let mut listed = Seen::new(self.n as usize);
        listed.insert(first.0);
        for _ in 1..self.n {
            let next = (0..self.n).filter(|&s| !listed.contains(s)).min_by_key(|&s| (load.inflight(ServerId(s)), s));
            let Some(next) = next else { return };
            listed.insert(next);
            if !visit(ServerId(next)) {
                return;
            }
        }
    }
}
