//! A reusable "already listed" bit set for `candidates`: sized once at build,
//! cleared after each use by walking the few ids that were set, so building a
//! fallback list allocates nothing beyond the caller's `Vec`.

use crate::ServerId;

/// One bit per server.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    bits: Vec<u64>,
}

impl Seen {
    pub(crate) fn new(servers: usize) -> Self {
        Self { bits: vec![0; servers.div_ceil(64)] }
    }

    /// Marks `id`; true if it was not marked before.
    #[inline]
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
        let fresh = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        fresh
    }

    /// Unmarks exactly the ids in `listed` (the ones this walk inserted).
    pub(crate) fn clear(&mut self, listed: &[ServerId]) {
        for id in listed {
            self.bits[id.index() / 64] = 0;
        }
    }
}

/// Pushes `id` to `out` unless already listed; true when `out` reached `max`.
#[inline]
pub(crate) fn push_distinct(seen: &mut Seen, out: &mut Vec<ServerId>, id: u32, max: usize) -> bool {
    if seen.insert(id) {
        out.push(ServerId(id));
    }
    out.len() >= max
}
