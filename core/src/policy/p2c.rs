//! `p2c`: the power of two choices over rendezvous hashing. The two best HRW
//! servers for the URL are the candidates; the one with fewer in-flight
//! requests wins, and on a tie the HRW winner (so with no load it is exactly
//! `hrw`). Keeps locality (each URL lives on at most two servers) while
//! halving hot spots. Reads the load and holds nothing mutable: load-aware in
//! the sense of [`State`].
//!
//! `candidates` is the HRW ranking with the first two swapped when the
//! second is less loaded, so its first entry is always the pick.

use super::hrw::Hrw;
use super::{Policy, PolicyKind, State};
use crate::{LoadView, Membership, RequestKey, ServerId};

/// Two-choice HRW.
#[derive(Debug, Clone)]
pub struct PowerOfTwo {
    hrw: Hrw,
}

impl PowerOfTwo {
    /// Builds the underlying HRW ranking.
    pub fn new(members: &Membership) -> Self {
        Self { hrw: Hrw::new(members) }
    }
}

impl Policy for PowerOfTwo {
    fn kind(&self) -> PolicyKind {
        PolicyKind::P2c
    }
    fn state(&self) -> State {
        State::LoadAware
    }
    fn servers(&self) -> usize {
        self.hrw.len()
    }
    fn pick(&self, key: &RequestKey, load: &dyn LoadView) -> ServerId {
        match self.hrw.top_two(key.url()) {
            (first, Some(second)) if load.inflight(second) < load.inflight(first) => second,
            (first, _) => first,
        }
    }
    fn walk(&self, key: &RequestKey, load: &dyn LoadView, visit: &mut dyn FnMut(ServerId) -> bool) {
        let (first, second) = match self.hrw.top_two(key.url()) {
            (first, Some(second)) if load.inflight(second) < load.inflight(first) => (second, first),
            (first, Some(second)) => (first, second),
            (only, None) => {
                visit(only);
                return;
            }
        };
        if !visit(first) || !visit(second) {
            return;
        }
        self.hrw.ranked(key.url(), &mut |s| s == first || s == second || visit(s));
    }
}
