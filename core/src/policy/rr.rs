//! `rr`: round robin, `i = counter++ mod N`. The paper's no-hashing reference:
//! every server may cache every URL. Stateful: each dispatcher owns a counter.

use std::sync::atomic::{AtomicU32, Ordering};

use super::{Policy, PolicyKind, State};
use crate::{LoadView, Membership, RequestKey, ServerId};

/// A per-instance round-robin counter.
pub struct RoundRobin {
    n: u32,
    counter: AtomicU32,
}

impl RoundRobin {
    /// A counter starting at server 0.
    pub fn new(members: &Membership) -> Self {
        Self { n: members.len() as u32, counter: AtomicU32::new(0) }
    }
}

impl Policy for RoundRobin {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Rr
    }
    fn state(&self) -> State {
        State::Stateful
    }
    fn servers(&self) -> usize {
        self.n as usize
    }
    fn pick(&self, _: &RequestKey, _: &dyn LoadView) -> ServerId {
        // Relaxed: only the counter's own sequence matters (fetch_add wraps).
        ServerId(self.counter.fetch_add(1, Ordering::Relaxed) % self.n)
    }
}
