//! The pending-event set: a binary min-heap on (time, sequence). The sequence
//! number is the insertion count, which makes equal-time events pop in the
//! order they were pushed and the whole order total and deterministic.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::Time;

struct Entry<E> {
    at: Time,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Events ordered by (time, insertion sequence).
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    next_seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self { heap: BinaryHeap::with_capacity(1024), next_seq: 0 }
    }

    /// Adds `event` at time `at`.
    #[inline]
    pub fn push(&mut self, at: Time, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { at, seq, event });
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<(Time, E)> {
        self.heap.pop().map(|e| (e.at, e.event))
    }

    /// The time of the earliest event.
    #[inline]
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|e| e.at)
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    /// The heap against a BTreeMap shadow keyed by (time, seq).
    #[test]
    fn pops_in_the_same_order_as_a_sorted_shadow() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut q = EventQueue::new();
        let mut shadow = BTreeMap::new();
        let mut seq = 0u64;
        for _ in 0..20_000 {
            if rng.gen_bool(0.6) || q.is_empty() {
                let at = rng.gen_range(0..500u64);
                q.push(at, seq);
                shadow.insert((at, seq), seq);
                seq += 1;
            } else {
                let (at, ev) = q.pop().unwrap();
                let ((sat, sseq), sev) = shadow.pop_first().unwrap();
                assert_eq!((at, ev), (sat, sev));
                assert_eq!(ev, sseq);
            }
        }
        assert_eq!(q.len(), shadow.len());
    }
}
