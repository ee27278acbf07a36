//! Intrusive doubly linked queues over slot numbers: the order LRU, FIFO,
//! SIEVE and S3-FIFO keep. The links live in one `Vec` indexed by slot, so
//! moving an object costs a few writes and never allocates; several queues
//! can share one [`Links`] (S3-FIFO's small and main queues) because a slot
//! is in at most one of them.

/// No slot: the end of a queue, or an empty queue.
pub(super) const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Link {
    /// Towards the head (inserted later).
    newer: u32,
    /// Towards the tail (inserted earlier).
    older: u32,
}

const UNLINKED: Link = Link { newer: NIL, older: NIL };

/// One end-pair of a queue: the newest slot (head) and the oldest (tail).
#[derive(Debug, Clone, Copy)]
pub(super) struct Queue {
    pub head: u32,
    pub tail: u32,
}

impl Queue {
    pub const EMPTY: Queue = Queue { head: NIL, tail: NIL };
}

/// The links of every slot.
#[derive(Debug, Clone, Default)]
pub(super) struct Links(Vec<Link>);

impl Links {
    /// The slot inserted after `slot` in its queue, or [`NIL`] at the head.
    #[inline]
    pub fn newer(&self, slot: u32) -> u32 {
        self.0[slot as usize].newer
    }

    /// Makes `slot` the head of `q`. Slots are handed out densely by the
    /// cache, so a new one is at most one past the end.
    #[inline]
    pub fn push_head(&mut self, q: &mut Queue, slot: u32) {
        let i = slot as usize;
        if i >= self.0.len() {
            self.0.resize(i + 1, UNLINKED);
        }
        self.0[i] = Link { newer: NIL, older: q.head };
        if q.head == NIL {
            q.tail = slot;
        } else {
            self.0[q.head as usize].newer = slot;
        }
        q.head = slot;
    }

    /// Takes `slot` out of `q`.
    #[inline]
    pub fn unlink(&mut self, q: &mut Queue, slot: u32) {
        let Link { newer, older } = self.0[slot as usize];
        if newer == NIL {
            q.head = older;
        } else {
            self.0[newer as usize].older = older;
        }
        if older == NIL {
            q.tail = newer;
        } else {
            self.0[older as usize].newer = newer;
        }
        self.0[slot as usize] = UNLINKED;
    }

    /// Moves `slot`, already in `q`, to its head.
    #[inline]
    pub fn move_to_head(&mut self, q: &mut Queue, slot: u32) {
        if q.head != slot {
            self.unlink(q, slot);
            self.push_head(q, slot);
        }
    }

    /// Takes the tail out of `q` and returns it; [`NIL`] when `q` is empty.
    #[inline]
    pub fn pop_tail(&mut self, q: &mut Queue) -> u32 {
        let tail = q.tail;
        if tail != NIL {
            self.unlink(q, tail);
        }
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(links: &Links, q: &Queue) -> Vec<u32> {
        let mut out = Vec::new();
        let mut s = q.tail;
        while s != NIL {
            out.push(s);
            s = links.newer(s);
        }
        out
    }

    #[test]
    fn keeps_insertion_order_through_moves_and_unlinks() {
        let mut links = Links::default();
        let mut q = Queue::EMPTY;
        for s in 0..4 {
            links.push_head(&mut q, s);
        }
        assert_eq!(order(&links, &q), [0, 1, 2, 3]);
        links.move_to_head(&mut q, 1);
        links.unlink(&mut q, 2);
        assert_eq!(order(&links, &q), [0, 3, 1]);
        assert_eq!(links.pop_tail(&mut q), 0);
        assert_eq!(links.pop_tail(&mut q), 3);
        assert_eq!(links.pop_tail(&mut q), 1);
        assert_eq!(links.pop_tail(&mut q), NIL);
        assert_eq!((q.head, q.tail), (NIL, NIL));
    }
}
