//! `p2c`: the power of two choices over rendezvous hashing. The two best HRW
//! servers for the URL are the candidates; the one with fewer in-flight
//! requests wins, and on a tie the HRW winner (so with no load it is exactly
//! `hrw`). Keeps locality (each URL lives on at most two servers) while
//! halving hot spots. Reads the load, hence stateful in the sense of [`State`].
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
        State::Stateful
    }
    fn servers(&self) -> usize {
        self.hrw.len()
    }
    fn pick(&mut self, key: &RequestKey, load: &dyn LoadView) -> ServerId {
        match self.hrw.top_two(key.url()) {
            (first, Some(second)) if load.inflight(second) < load.inflight(first) => second,
            (first, _) => first,
        }
    }
    fn candidates(&mut self, key: &RequestKey, load: &dyn LoadView, max: usize, out: &mut Vec<ServerId>) {
        self.hrw.ranking(key.url(), max.max(2), out);
        if out.len() >= 2 && load.inflight(out[1]) < load.inflight(out[0]) {
            out.swap(0, 1);
        }
        out.truncate(max);
    }
}
