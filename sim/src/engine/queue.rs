//! The pending-event set: a 4-ary min-heap on (time, sequence). The
//! sequence number is the insertion count, which makes equal-time events pop
//! in the order they were pushed and the whole order total and
//! deterministic.
//!
//! Speed comes from three choices. An entry is one `u128`, `time << 64 |
//! seq << 32 | event`, so that an entry is 16 bytes (four children share a
//! cache line) and a comparison is one integer compare (the event bits never
//! decide: sequence numbers are unique). A pop leaves a hole at the root
//! that the next push fills (one sift instead of a pop's sift-down and a
//! push's sift-up: handling an event usually schedules the next one). And
//! a sift-down moves the hole to a leaf along the smaller children without
//! comparing against the moving entry, then sifts that entry up (Floyd's
//! bottom-up heapsort), since an entry taken from the bottom or newly
//! scheduled usually belongs near the bottom.
//!
//! The sequence is 32 bits: when it runs out, the pending entries are
//! renumbered in their current order (a sort, once every 4 billion pushes),
//! which keeps the order exactly that of an unbounded counter.

use super::Time;

/// An event payload the queue can pack into 32 bits.
pub trait EventId: Copy {
    fn to_bits(self) -> u32;
    fn from_bits(bits: u32) -> Self;
}

impl EventId for u32 {
    #[inline]
    fn to_bits(self) -> u32 {
        self
    }
    #[inline]
    fn from_bits(bits: u32) -> Self {
        bits
    }
}

const ARITY: usize = 4;

#[inline]
fn time_of(entry: u128) -> Time {
    (entry >> 64) as Time
}

/// Events ordered by (time, insertion sequence).
pub struct EventQueue<E> {
    /// A 4-ary min-heap of packed entries; `heap[0]` is stale while `hole`.
    heap: Vec<u128>,
    /// The root was popped and not yet replaced.
    hole: bool,
    next_seq: u32,
    _event: std::marker::PhantomData<E>,
}

impl<E: EventId> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: EventId> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self { heap: Vec::with_capacity(1024), hole: false, next_seq: 0, _event: std::marker::PhantomData }
    }

    /// Adds `event` at time `at`.
    #[inline]
    pub fn push(&mut self, at: Time, event: E) {
        if self.next_seq == u32::MAX {
            self.renumber();
        }
        let entry = (at as u128) << 64 | (self.next_seq as u128) << 32 | event.to_bits() as u128;
        self.next_seq += 1;
        if self.hole {
            self.hole = false;
            self.sift_down_from_root(entry);
        } else {
            self.heap.push(entry);
            let last = self.heap.len() - 1;
            self.sift_up(last, entry);
        }
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<(Time, E)> {
        self.settle();
        let top = *self.heap.first()?;
        self.hole = true;
        Some((time_of(top), E::from_bits(top as u32)))
    }

    /// The time of the earliest event.
    #[inline]
    pub fn peek_time(&mut self) -> Option<Time> {
        self.settle();
        self.heap.first().map(|&e| time_of(e))
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len() - usize::from(self.hole)
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills a hole left by a pop with the last entry.
    #[inline]
    fn settle(&mut self) {
        if self.hole {
            self.hole = false;
            let last = self.heap.pop().expect("a hole is in a non-empty heap");
            if !self.heap.is_empty() {
                self.sift_down_from_root(last);
            }
        }
    }

    /// Restarts the sequence at 0 with the pending entries in their order.
    #[cold]
    fn renumber(&mut self) {
        self.settle();
        self.heap.sort_unstable();
        for (seq, entry) in self.heap.iter_mut().enumerate() {
            let time_bits = *entry >> 64 << 64;
            *entry = time_bits | (seq as u128) << 32 | (*entry as u32) as u128;
        }
        // A sorted array is a heap.
        self.next_seq = self.heap.len() as u32;
    }

    #[inline]
    fn sift_up(&mut self, mut i: usize, entry: u128) {
        let h = &mut self.heap[..];
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if h[parent] <= entry {
                break;
            }
            h[i] = h[parent];
            i = parent;
        }
        h[i] = entry;
    }

    /// Puts `entry` at the root (whose old value is gone) and restores the heap.
    #[inline]
    fn sift_down_from_root(&mut self, entry: u128) {
        let h = &mut self.heap[..];
        let n = h.len();
        let mut i = 0;
        loop {
            let first = i * ARITY + 1;
            if first + ARITY <= n {
                let c = &h[first..first + ARITY];
                let (a, ka) = if c[1] < c[0] { (1, c[1]) } else { (0, c[0]) };
                let (b, kb) = if c[3] < c[2] { (3, c[3]) } else { (2, c[2]) };
                let (best, key) = if kb < ka { (b, kb) } else { (a, ka) };
                h[i] = key;
                i = first + best;
            } else {
                if first < n {
                    let mut best = first;
                    for c in first + 1..n {
                        if h[c] < h[best] {
                            best = c;
                        }
                    }
                    h[i] = h[best];
                    i = best;
                }
                break;
            }
        }
        // `i` is a leaf now; the entry climbs to its place.
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if h[parent] <= entry {
                break;
            }
            h[i] = h[parent];
            i = parent;
        }
        h[i] = entry;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    /// The heap against a BTreeMap shadow keyed by (time, seq), from a given
    /// starting sequence number (near the end of the 32 bits, the queue
    /// renumbers on the way).
    fn against_shadow(first_seq: u32) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut q: EventQueue<u32> = EventQueue::new();
        q.next_seq = first_seq;
        let mut shadow = BTreeMap::new();
        let mut seq = 0u64;
        for _ in 0..20_000 {
            if rng.gen_bool(0.6) || q.is_empty() {
                let at = rng.gen_range(0..500u64);
                q.push(at, seq as u32);
                shadow.insert((at, seq), seq as u32);
                seq += 1;
            } else {
                if rng.gen_bool(0.5) {
                    assert_eq!(q.peek_time(), shadow.first_key_value().map(|(&(t, _), _)| t));
                }
                let (at, ev) = q.pop().unwrap();
                let ((sat, _), sev) = shadow.pop_first().unwrap();
                assert_eq!((at, ev), (sat, sev));
            }
            assert_eq!(q.len(), shadow.len());
        }
        while let Some((at, ev)) = q.pop() {
            let ((sat, _), sev) = shadow.pop_first().unwrap();
            assert_eq!((at, ev), (sat, sev));
        }
        assert!(shadow.is_empty());
    }

    #[test]
    fn pops_in_the_same_order_as_a_sorted_shadow() {
        against_shadow(0);
    }

    #[test]
    fn running_out_of_sequence_numbers_keeps_the_order() {
        against_shadow(u32::MAX - 5_000);
    }
}
