//! A FIFO single-server station (a CPU, or one direction of a NIC) with
//! deterministic service times. Because the engine hands the model its
//! events in time order, a station needs no queue of its own: a job that
//! arrives now starts when the station is next free and holds it for its
//! service time. The completion instant is returned for the caller to
//! schedule. Work that delays others but that no request waits for (TCP ACKs,
//! forwarded control frames) is reserved the same way without an event.

use crate::engine::Time;

/// The measurement window: busy time and completions count only inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Time,
    pub end: Time,
}

impl Window {
    /// True when `t` lies in `[start, end)`.
    #[inline]
    pub fn contains(&self, t: Time) -> bool {
        t >= self.start && t < self.end
    }

    /// Length in nanoseconds.
    pub fn len(&self) -> Time {
        self.end - self.start
    }

    /// True when the window is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    #[inline]
    fn overlap(&self, from: Time, to: Time) -> Time {
        let a = from.max(self.start);
        let b = to.min(self.end);
        b.saturating_sub(a)
    }
}

/// A FIFO server: when it is next free and how long it was busy in the window.
#[derive(Debug, Clone, Default)]
pub struct Station {
    free_at: Time,
    busy_in_window: Time,
}

impl Station {
    /// Queues a job arriving at `now` needing `service` ns; returns its completion time.
    #[inline]
    pub fn reserve(&mut self, now: Time, service: Time, window: &Window) -> Time {
        let start = self.free_at.max(now);
        let end = start + service;
        self.free_at = end;
        self.busy_in_window += window.overlap(start, end);
        end
    }

    /// Like [`reserve`](Self::reserve) for a NIC transmitting a message that
    /// the next hop receives frame by frame: returns the instant the first
    /// frame (`lead` ns of wire time) is out, when the receiver may start.
    #[inline]
    pub fn reserve_cut_through(&mut self, now: Time, service: Time, lead: Time, window: &Window) -> Time {
        let end = self.reserve(now, service, window);
        end - service + service.min(lead)
    }

    /// Share of the window this station was busy, in [0, 1].
    pub fn utilisation(&self, window: &Window) -> f64 {
        if window.is_empty() {
            0.0
        } else {
            self.busy_in_window as f64 / window.len() as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_queue_in_arrival_order_and_busy_time_is_clipped_to_the_window() {
        let w = Window { start: 100, end: 200 };
        let mut s = Station::default();
        assert_eq!(s.reserve(50, 80, &w), 130); // busy 100..130 in window
        assert_eq!(s.reserve(60, 10, &w), 140); // waits behind the first
        assert_eq!(s.reserve(190, 50, &w), 240); // 190..200 in window
        assert_eq!(s.busy_in_window, 30 + 10 + 10);
        assert!((s.utilisation(&w) - 0.5).abs() < 1e-12);
        // Cut-through: free at 240, so the first 5 ns of a 30 ns message are out at 245.
        assert_eq!(s.reserve_cut_through(200, 30, 5, &w), 245);
        assert_eq!(s.reserve_cut_through(300, 3, 5, &w), 303);
    }
}
