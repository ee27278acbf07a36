//! The pending-event set: a 4-ary min-heap on (time, sequence). The
//! sequence number is the insertion count, which makes equal-time events pop
//! in the order they were pushed and the whole order total and
//! deterministic. Time and sequence are packed into one `u128` key so that a
//! comparison is a single integer compare; four children per node halve the
//! depth of a binary heap and keep siblings in one cache line.

use super::Time;

struct Entry<E> {
    /// `time << 64 | seq`.
    key: u128,
    event: E,
}

const ARITY: usize = 4;

/// Events ordered by (time, insertion sequence).
pub struct EventQueue<E> {
    heap: Vec<Entry<E>>,
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
        Self { heap: Vec::with_capacity(1024), next_seq: 0 }
    }

    /// Adds `event` at time `at`.
    #[inline]
    pub fn push(&mut self, at: Time, event: E) {
        let key = (at as u128) << 64 | self.next_seq as u128;
        self.next_seq += 1;
        self.heap.push(Entry { key, event });
        self.sift_up(self.heap.len() - 1);
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<(Time, E)> {
        let last = self.heap.pop()?;
        let top = if self.heap.is_empty() {
            last
        } else {
            let top = std::mem::replace(&mut self.heap[0], last);
            self.sift_down(0);
            top
        };
        Some(((top.key >> 64) as Time, top.event))
    }

    /// The time of the earliest event.
    #[inline]
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.first().map(|e| (e.key >> 64) as Time)
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    #[inline]
    fn sift_up(&mut self, mut i: usize) {
        let key = self.heap[i].key;
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if self.heap[parent].key <= key {
                break;
            }
            self.heap.swap(i, parent);
            i = parent;
        }
    }

    #[inline]
    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        let key = self.heap[i].key;
        loop {
            let first = i * ARITY + 1;
            if first >= n {
                break;
            }
            let last = (first + ARITY).min(n);
            let mut best = first;
            let mut best_key = self.heap[first].key;
            for c in first + 1..last {
                let k = self.heap[c].key;
                if k < best_key {
                    best = c;
                    best_key = k;
                }
            }
            if key <= best_key {
                break;
            }
            self.heap.swap(i, best);
            i = best;
        }
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
