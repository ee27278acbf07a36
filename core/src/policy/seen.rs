//! A "listed already" bit set for [`super::Policy::walk`]: it lives on the
//! walker's stack, so walks allocate nothing and need no `&mut` state in the
//! policy (pure policies are shared by every dispatcher).

use crate::ServerId;

/// Servers the stack part covers: the largest cluster an experiment may ask
/// for. Larger memberships (the core allows them) use a heap bit set.
const STACK_SERVERS: usize = 1024;

/// One bit per server.
pub(crate) struct Seen {
    small: [u64; STACK_SERVERS / 64],
    big: Vec<u64>,
}

impl Seen {
    pub(crate) fn new(servers: usize) -> Self {
        let big = if servers > STACK_SERVERS { vec![0; servers.div_ceil(64)] } else { Vec::new() };
        Self { small: [0; STACK_SERVERS / 64], big }
    }

    /// Marks `id`; true if it was not marked before.
    #[inline]
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        let words = if self.big.is_empty() { &mut self.small[..] } else { &mut self.big[..] };
        let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
        let fresh = words[word] & bit == 0;
        words[word] |= bit;
        fresh
    }

    /// Whether `id` is marked.
    #[inline]
    pub(crate) fn contains(&self, id: u32) -> bool {
        let words = if self.big.is_empty() { &self.small[..] } else { &self.big[..] };
        words[(id / 64) as usize] & (1u64 << (id % 64)) != 0
    }
}

/// Visits `id` unless listed already. Returns false when the walk must stop:
/// `visit` said so, or all `servers` have been listed (`*listed` counts them).
#[inline]
pub(crate) fn visit_distinct(
    seen: &mut Seen,
    listed: &mut usize,
    servers: usize,
    id: u32,
    visit: &mut dyn FnMut(ServerId) -> bool,
) -> bool {
    if !seen.insert(id) {
        return true;
    }
    *listed += 1;
    visit(ServerId(id)) && *listed < servers
}

/// Visits the `n` items in descending `order` (the best first) until `visit`
/// returns false. Items are scored by `score(i)`; `id(i)` names the server.
/// Up to [`RANK_STACK`] items are scored once and sorted on the stack; larger
/// memberships are walked by repeated selection (O(n) scores per step), so a
/// walk never allocates.
pub(crate) fn ranked_walk<K: Copy>(
    n: usize,
    score: impl Fn(usize) -> K,
    order: impl Fn(&K, &K) -> std::cmp::Ordering,
    id: impl Fn(&K) -> u32,
    visit: &mut dyn FnMut(ServerId) -> bool,
) {
    if n == 0 {
        return;
    }
    if n <= RANK_STACK {
        let first = score(0);
        let mut buf = [first; RANK_STACK];
        for (i, slot) in buf.iter_mut().enumerate().take(n).skip(1) {
            *slot = score(i);
        }
        let ranked = &mut buf[..n];
        ranked.sort_unstable_by(|a, b| order(b, a));
        for k in ranked.iter() {
            if !visit(ServerId(id(k))) {
                return;
            }
        }
        return;
    }
    let mut prev: Option<K> = None;
    for _ in 0..n {
        let mut best: Option<K> = None;
        for i in 0..n {
            let k = score(i);
            let below_prev = prev.as_ref().is_none_or(|p| order(&k, p) == std::cmp::Ordering::Less);
            if below_prev && best.as_ref().is_none_or(|b| order(&k, b) == std::cmp::Ordering::Greater) {
                best = Some(k);
            }
        }
        let Some(next) = best else { return };
        if !visit(ServerId(id(&next))) {
            return;
        }
        prev = Some(next);
    }
}

/// Items [`ranked_walk`] sorts on the stack (a few KiB of scores).
pub(crate) const RANK_STACK: usize = 256;
