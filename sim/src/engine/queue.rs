//! The pending-event set: events ordered by time, and among equal times by
//! insertion (FIFO), so that the whole order is total and deterministic.
//!
//! It is a radix bucket queue on the integer-nanosecond clock (a
//! hierarchical timing wheel), which works because the engine never
//! schedules an event before the last one it handed out. Times are read as
//! eleven digits of 6 bits (the top one 4). A `base` time lies at or before
//! every pending event, and an event goes to level `L`, slot `d`, when its
//! time agrees with `base` on every digit above `L` and its digit `L` is
//! `d`: level 0 holds the events of the next (at most) 64 nanoseconds, one
//! slot per nanosecond, and a slot at level `L` covers `64^L` nanoseconds.
//! The earliest event is in the lowest occupied slot of level 0 (one bitmap
//! word per level finds it). When level 0 is empty, the lowest occupied slot
//! of the lowest occupied level holds the earliest event: alone there, it
//! is popped at once; otherwise the slot is spread over the levels below it
//! ("cascade"), with `base` moved to its start. An event moves down at most
//! once per level, so a push and a pop cost O(1) whatever the number
//! pending (at the simulator's delays, microseconds to milliseconds, an
//! event moves two or three times, along vectors in order), where the
//! 4-ary heap this replaces did O(log n) compares with unpredictable
//! branches and cache misses once its entries outgrew the cache.
//!
//! FIFO among equal times needs no sequence number: an event's slot is a
//! function of its time and `base`, so events at one instant always share a
//! slot; a push appends to it, and a cascade moves a slot's events in order
//! into lower slots that are all empty. A slot therefore holds its events
//! of one instant in the order they were pushed, and level 0's slots hold
//! one instant each, popped from the front.
//!
//! A cascade into levels 0 and 1 also tells the caller which events are
//! about to pop ([`EventQueue::pop_until_with`]), so that a model whose
//! events are spread over more memory than the cache holds can prefetch.
//!
//! `base` is the last popped instant or the start of the last cascaded
//! slot. A push before it (before the last popped event, or after
//! [`EventQueue::peek_time`] has cascaded past a time at which someone then
//! schedules) rebuilds the queue around the new time: O(n), correct, and
//! never taken by [`super::Simulation`], which schedules from its clock on
//! and pops with [`EventQueue::pop_until`], so never moves `base` past it.

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

/// Bits of the clock per level: 64 slots, so that a level's bitmap is one
/// word (measured faster than 8 bits and four words, at every population of
/// the hold benchmark).
const DIGIT: u32 = 6;
const SLOTS: usize = 1 << DIGIT;
const LEVELS: usize = Time::BITS.div_ceil(DIGIT) as usize;

#[derive(Debug, Clone, Copy)]
struct Entry {
    time: Time,
    bits: u32,
}

/// The level and slot of time `at` against `base` (`at >= base`).
#[inline]
fn place(at: Time, base: Time) -> (usize, usize) {
    // `| 1`: equal times (no differing bit) land on level 0 without a branch.
    let level = (63 - ((at ^ base) | 1).leading_zeros()) / DIGIT;
    let slot = (at >> (level * DIGIT)) as usize & (SLOTS - 1);
    (level as usize, slot)
}

/// Events ordered by (time, insertion).
pub struct EventQueue<E> {
    /// At or before every pending event; events are placed against it.
    base: Time,
    /// Slot `d` of level `L` is `slots[L * SLOTS + d]`; emptied slots keep
    /// their capacity, so a run in its steady state allocates nothing. A
    /// fixed length, so that the compiler can drop most bounds checks.
    slots: Box<[Vec<Entry>; LEVELS * SLOTS]>,
    /// Per level, a bit per non-empty slot.
    occupied: [u64; LEVELS],
    /// A bit per level with a non-empty slot.
    levels: u32,
    /// Events already popped from the front of level 0's lowest slot.
    head: usize,
    len: usize,
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
        Self {
            base: 0,
            slots: Box::new(std::array::from_fn(|_| Vec::new())),
            occupied: [0; LEVELS],
            levels: 0,
            head: 0,
            len: 0,
            _event: std::marker::PhantomData,
        }
    }

    /// Adds `event` at time `at`.
    #[inline]
    pub fn push(&mut self, at: Time, event: E) {
        if at < self.base {
            self.rebase(at);
        }
        let (level, slot) = place(at, self.base);
        self.put(level, slot, Entry { time: at, bits: event.to_bits() });
        self.len += 1;
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<(Time, E)> {
        self.pop_until(Time::MAX)
    }

    /// Removes and returns the earliest event if it is due at or before
    /// `end`. Unlike a peek, it never moves the queue past `end`, so a
    /// caller whose clock then reads `end` can push at any time from it on.
    #[inline]
    pub fn pop_until(&mut self, end: Time) -> Option<(Time, E)> {
        self.pop_until_with(end, |_| {})
    }

    /// [`pop_until`](Self::pop_until), calling `soon` with every event that
    /// a cascade brings into levels 0 and 1 (within 4,096 ns of the base):
    /// it is among the next few to pop (about a dozen events ahead at the
    /// simulator's densest, N = 1024), and the caller may prefetch what it
    /// will touch. A plain push is not reported: an event scheduled that
    /// close was usually just handled, and its data is in the cache.
    #[inline]
    pub fn pop_until_with(&mut self, end: Time, mut soon: impl FnMut(E)) -> Option<(Time, E)> {
        let at = self.settle(end, &mut soon)?;
        let entries = &mut self.slots[at];
        let e = entries[self.head];
        if at < SLOTS {
            self.head += 1;
            if self.head == entries.len() {
                entries.clear();
                self.head = 0;
                self.vacate(0, at);
            }
        } else {
            entries.clear();
            self.vacate(at / SLOTS, at % SLOTS);
        }
        // The base may move up to the popped instant: no other event lies
        // below it in a level it changes the places of (see `settle`). A
        // later push before it then rebuilds, instead of landing behind the
        // popped front of a slot.
        self.base = e.time;
        self.len -= 1;
        Some((e.time, E::from_bits(e.bits)))
    }

    /// The time of the earliest event.
    #[inline]
    pub fn peek_time(&mut self) -> Option<Time> {
        self.settle(Time::MAX, &mut |_| {}).map(|at| self.slots[at][self.head].time)
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Cascades until the earliest event is at the front of its slot's
    /// events past `head` and returns that slot's index in `slots`, or
    /// `None` when nothing is pending at or before `end` (then leaving
    /// `base` at or before `end`). The slot is level 0's lowest, or, when
    /// level 0 is empty, the lowest slot of the lowest level if it holds a
    /// single event: that event is the earliest, and popping it needs no
    /// cascade (which matters when few events are pending, each alone in its
    /// slot).
    #[inline]
    fn settle(&mut self, end: Time, soon: &mut impl FnMut(E)) -> Option<usize> {
        loop {
            if self.levels & 1 != 0 {
                let slot = self.occupied[0].trailing_zeros() as usize;
                let at = (self.base & !(SLOTS as Time - 1)) | slot as Time;
                return (at <= end).then_some(slot);
            }
            if self.levels == 0 {
                return None;
            }
            let level = self.levels.trailing_zeros() as usize;
            let slot = self.occupied[level].trailing_zeros() as usize;
            let at = level * SLOTS + slot;
            if let [only] = self.slots[at][..] {
                return (only.time <= end).then_some(at);
            }
            let shift = level as u32 * DIGIT;
            let above = Time::MAX.checked_shl(shift + DIGIT).unwrap_or(0);
            let start = (self.base & above) | (slot as Time) << shift;
            if start > end {
                return None;
            }
            self.cascade(level, slot, start, soon);
        }
    }

    /// Spreads slot `slot` of `level` over the (empty) levels below it, with
    /// `base` moved to the slot's first instant.
    #[inline(never)]
    fn cascade(&mut self, level: usize, slot: usize, start: Time, soon: &mut impl FnMut(E)) {
        self.base = start;
        let at = level * SLOTS + slot;
        let mut entries = std::mem::take(&mut self.slots[at]);
        self.vacate(level, slot);
        for &e in &entries {
            let (l, s) = place(e.time, start);
            if l <= 1 {
                soon(E::from_bits(e.bits));
            }
            self.put(l, s, e);
        }
        entries.clear();
        self.slots[at] = entries;
    }

    #[inline]
    fn put(&mut self, level: usize, slot: usize, e: Entry) {
        self.slots[level * SLOTS + slot].push(e);
        self.occupied[level] |= 1 << slot;
        self.levels |= 1 << level;
    }

    /// Marks slot `slot` of `level` empty.
    #[inline]
    fn vacate(&mut self, level: usize, slot: usize) {
        self.occupied[level] &= !(1 << slot);
        if self.occupied[level] == 0 {
            self.levels &= !(1 << level);
        }
    }

    /// Places every pending event again against `base = at`, which lies
    /// before all of them. Events of one instant share a slot and are taken
    /// out and put back in order, so FIFO holds.
    #[cold]
    fn rebase(&mut self, at: Time) {
        let mut pending = Vec::with_capacity(self.len);
        for (i, slot) in self.slots.iter_mut().enumerate() {
            // Only level 0's lowest slot has popped events at its front.
            let from = if i < SLOTS && !slot.is_empty() { std::mem::take(&mut self.head) } else { 0 };
            pending.extend(slot.drain(..).skip(from));
        }
        self.occupied = [0; LEVELS];
        self.levels = 0;
        self.base = at;
        for e in pending {
            let (l, s) = place(e.time, at);
            self.put(l, s, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    /// The queue and a BTreeMap keyed by (time, insertion count), driven alike.
    struct Shadowed {
        q: EventQueue<u32>,
        shadow: BTreeMap<(Time, u64), u32>,
        seq: u64,
    }

    impl Shadowed {
        fn new() -> Self {
            Shadowed { q: EventQueue::new(), shadow: BTreeMap::new(), seq: 0 }
        }
        fn push(&mut self, at: Time) {
            let ev = self.seq as u32;
            self.q.push(at, ev);
            self.shadow.insert((at, self.seq), ev);
            self.seq += 1;
        }
        fn pop_until(&mut self, end: Time) -> Option<(Time, u32)> {
            let got = self.q.pop_until(end);
            let want = match self.shadow.first_key_value() {
                Some((&(t, _), _)) if t <= end => self.shadow.pop_first().map(|((t, _), ev)| (t, ev)),
                _ => None,
            };
            assert_eq!(got, want);
            assert_eq!(self.q.len(), self.shadow.len());
            got
        }
        fn peek(&mut self) {
            assert_eq!(self.q.peek_time(), self.shadow.first_key_value().map(|(&(t, _), _)| t));
        }
        fn drain(&mut self) {
            while self.pop_until(Time::MAX).is_some() {}
            assert!(self.q.is_empty());
        }
    }

    /// Pushes anywhere, past included: every one before the queue's base
    /// rebuilds it, and the order must still be the shadow's.
    #[test]
    fn pops_in_the_same_order_as_a_sorted_shadow_when_pushed_anywhere() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut s = Shadowed::new();
        for _ in 0..20_000 {
            if rng.gen_bool(0.6) || s.q.is_empty() {
                s.push(rng.gen_range(0..500u64));
            } else {
                if rng.gen_bool(0.5) {
                    s.peek();
                }
                s.pop_until(Time::MAX);
            }
        }
        s.drain();
    }

    #[test]
    fn the_whole_clock_is_ordered_level_by_level() {
        let mut s = Shadowed::new();
        for k in (0..64).rev() {
            s.push(1 << k);
            s.push((1 << k) - 1);
            s.push(1 << k);
        }
        s.push(Time::MAX);
        s.push(Time::MAX);
        s.push(0);
        s.drain();
    }

    /// One step of a run as the engine drives the queue.
    #[derive(Debug, Clone)]
    enum Op {
        /// Schedule this far after the last popped time.
        Push(Time),
        /// Schedule several events at one instant.
        Burst(Time, u8),
        Pop,
        /// `run_until(last popped time + this)`: pops what is due, then the
        /// caller's clock moves on to that end.
        RunUntil(Time),
        Peek,
    }

    fn delay() -> impl Strategy<Value = Time> {
        prop_oneof![
            Just(0),
            0..300u64,
            0..70_000u64,
            0..20_000_000u64,
            (0..64u32).prop_map(|k| 1u64 << k),
            (0..40u32, 0..1_000u64).prop_map(|(k, d)| (1u64 << k).saturating_sub(d)),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => delay().prop_map(Op::Push),
            1 => (delay(), 1..8u8).prop_map(|(d, n)| Op::Burst(d, n)),
            4 => Just(Op::Pop),
            1 => delay().prop_map(Op::RunUntil),
            1 => Just(Op::Peek),
        ]
    }

    proptest! {
        /// Against the shadow under the engine's discipline: pushes never
        /// before the clock, which is the last popped time or the end of the
        /// last `run_until`.
        #[test]
        fn pops_in_the_same_order_as_a_sorted_shadow(ops in prop::collection::vec(op(), 1..400)) {
            let mut s = Shadowed::new();
            let mut now: Time = 0;
            for op in ops {
                match op {
                    Op::Push(d) => s.push(now.saturating_add(d)),
                    Op::Burst(d, n) => (0..n).for_each(|_| s.push(now.saturating_add(d))),
                    Op::Pop => {
                        if let Some((t, _)) = s.pop_until(Time::MAX) {
                            now = t;
                        }
                    }
                    Op::RunUntil(d) => {
                        let end = now.saturating_add(d);
                        while s.pop_until(end).is_some() {}
                        now = end;
                    }
                    Op::Peek => s.peek(),
                }
            }
            s.drain();
        }
    }
}
