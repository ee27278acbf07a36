//! When a timed replay sends each request: the one schedule both engines
//! follow (`clients.speed`).
//!
//! Logged times are whole seconds, so each request of logged second `T`
//! goes out at `(T - T0 + k / m) / speed` seconds after the replay starts,
//! where `T0` is the earliest logged time, `m` the number of requests logged
//! in second `T` and `k` the request's rank among them in trace order: the
//! requests of one second spread evenly over it, deterministically. Logs
//! need not be sorted (web servers stamp a request's start and write it at
//! its end); requests are sent in schedule order, which is trace order when
//! the times are sorted.

/// Longest schedule, nanoseconds (about 146 years): offsets stay far from `u64::MAX`.
const MAX_NS: f64 = (1u64 << 62) as f64;

/// The send order and instants of a timed trace at one speed.
#[derive(Debug, Clone)]
pub struct Schedule<'a> {
    times: &'a [u64],
    /// Trace positions in send order; empty when the times are sorted (the identity).
    order: Vec<u32>,
    first: u64,
    ns_per_logged_s: f64,
}

/// Why a trace's times cannot be replayed at a speed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// A trace without request times.
    #[error("the trace has no request times (a timed replay needs `requests N timed`)")]
    NoTimes,
    /// More requests than a schedule indexes.
    #[error("{requests} requests: a timed replay takes at most {}", u32::MAX)]
    TooMany { requests: usize },
    /// A speed that is not a positive number.
    #[error("expected a speed > 0, found {speed}")]
    BadSpeed { speed: f64 },
    /// A replay longer than the clock represents.
    #[error("at speed {speed} the replay of {logged_s} logged seconds would last {replay_s:.3e} s, too long")]
    TooLong { speed: f64, logged_s: u64, replay_s: f64 },
}

impl<'a> Schedule<'a> {
    /// The schedule of requests logged at `times` (seconds) replayed at
    /// `speed`; an error for no times, a speed that is not > 0, or a
    /// schedule too long to represent.
    pub fn new(times: &'a [u64], speed: f64) -> Result<Self, ScheduleError> {
        if times.is_empty() {
            return Err(ScheduleError::NoTimes);
        }
        if times.len() > u32::MAX as usize {
            return Err(ScheduleError::TooMany { requests: times.len() });
        }
        if !(speed.is_finite() && speed > 0.0) {
            return Err(ScheduleError::BadSpeed { speed });
        }
        let sorted = times.windows(2).all(|w| w[0] <= w[1]);
        let order = if sorted {
            Vec::new()
        } else {
            let mut order: Vec<u32> = (0..times.len() as u32).collect();
            // Stable: equal seconds keep trace order.
            order.sort_by_key(|&i| times[i as usize]);
            order
        };
        let first = *times.iter().min().expect("not empty");
        let last = *times.iter().max().expect("not empty");
        let ns_per_logged_s = 1e9 / speed;
        let span_ns = (last - first + 1) as f64 * ns_per_logged_s;
        if span_ns >= MAX_NS {
            return Err(ScheduleError::TooLong { speed, logged_s: last - first + 1, replay_s: span_ns / 1e9 });
        }
        Ok(Schedule { times, order, first, ns_per_logged_s })
    }

    /// Requests in the schedule.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Always false: a schedule has requests.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Seconds from the first request to the last one's send instant.
    pub fn duration_s(&self) -> f64 {
        self.iter().last().map_or(0.0, |(_, at)| at as f64 / 1e9)
    }

    /// `(trace position, send instant in ns from the start)` in send order.
    pub fn iter(&self) -> ScheduleIter<'_> {
        ScheduleIter { s: self, pos: 0, group_start: 0, group_end: 0 }
    }

    fn position(&self, i: usize) -> usize {
        if self.order.is_empty() {
            i
        } else {
            self.order[i] as usize
        }
    }
}

/// The iterator of [`Schedule::iter`]; `Send`, so a real client can own it across awaits.
#[derive(Debug, Clone)]
pub struct ScheduleIter<'s> {
    s: &'s Schedule<'s>,
    pos: usize,
    group_start: usize,
    group_end: usize,
}

impl Iterator for ScheduleIter<'_> {
    type Item = (usize, u64);

    fn next(&mut self) -> Option<(usize, u64)> {
        let s = self.s;
        if self.pos >= s.times.len() {
            return None;
        }
        let time = |i: usize| s.times[s.position(i)];
        if self.pos == self.group_end {
            // A new logged second: find how many requests share it.
            self.group_start = self.pos;
            let t = time(self.pos);
            self.group_end = self.pos + 1;
            while self.group_end < s.times.len() && time(self.group_end) == t {
                self.group_end += 1;
            }
        }
        let (k, m) = ((self.pos - self.group_start) as f64, (self.group_end - self.group_start) as f64);
        let logged = (time(self.pos) - s.first) as f64 + k / m;
        let at = (logged * s.ns_per_logged_s).round() as u64;
        let item = (s.position(self.pos), at);
        self.pos += 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.s.times.len() - self.pos;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_of_one_second_spread_evenly_and_the_speed_divides_time() {
        let times = [100, 100, 101, 103, 103, 103, 110];
        let s = Schedule::new(&times, 10.0).unwrap();
        let got: Vec<(usize, u64)> = s.iter().collect();
        let ms = 1_000_000;
        let expected =
            [(0, 0), (1, 50 * ms), (2, 100 * ms), (3, 300 * ms), (4, 333_333_333), (5, 366_666_667), (6, 1000 * ms)];
        assert_eq!(got, expected);
        assert_eq!(s.duration_s(), 1.0);
    }

    #[test]
    fn an_unsorted_log_is_sent_in_time_order_ties_in_trace_order() {
        let times = [5, 3, 5, 3, 4];
        let got: Vec<(usize, u64)> = Schedule::new(&times, 1.0).unwrap().iter().collect();
        let positions: Vec<usize> = got.iter().map(|g| g.0).collect();
        assert_eq!(positions, [1, 3, 4, 0, 2]);
        assert_eq!(got[1].1, 500_000_000);
        assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
    }

    #[test]
    fn bad_speeds_and_untimed_traces_are_refused() {
        assert_eq!(Schedule::new(&[], 1.0).unwrap_err(), ScheduleError::NoTimes);
        for speed in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(Schedule::new(&[1], speed).unwrap_err(), ScheduleError::BadSpeed { .. }), "{speed}");
        }
        assert!(Schedule::new(&[0, 1 << 40], 1e-9).unwrap_err().to_string().contains("too long"));
    }
}
