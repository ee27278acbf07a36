//! A host's resources: its CPU and the two directions of its full-duplex
//! NIC (TX and RX), each a FIFO single-server [`Station`] with deterministic
//! service times, and the measurement [`Window`] their busy time is counted
//! in. Every host of the model (front end, cache servers, origin) is one CPU
//! station and two NIC stations; the cluster model (`super`) decides which
//! request visits which, and for how long (`dl7_core::costs`).
//!
//! Because the engine hands the model its events in time order, a station
//! needs no queue of its own: a job that arrives now starts when the station
//! is next free and holds it for its service time, and the completion
//! instant is returned for the caller to schedule. A NIC's TX station can
//! also say when the first frame of a message is out (cut-through, for the
//! receiver's RX). Work that delays others but that no request waits for
//! (TCP ACKs, forwarded control frames) is reserved the same way without an
//! event. A station knows nothing of requests or paths.

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

    /// The host stops at `now` (killed): the work queued past `now` is
    /// dropped, and not counted as busy time.
    pub fn stop(&mut self, now: Time, window: &Window) {
        if self.free_at > now {
            self.busy_in_window -= window.overlap(now, self.free_at);
            self.free_at = now;
        }
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
    use crate::engine::{Context, Model, Simulation};
    use rand::SeedableRng;
    use rand_distr::{Distribution, Exp};

    /// An M/M/1 queue built from the engine and one station: Poisson
    /// arrivals, exponential service sampled at arrival, FIFO.
    struct MM1 {
        station: Station,
        window: Window,
        rng: rand_chacha::ChaCha8Rng,
        gap: Exp<f64>,
        service: Exp<f64>,
        /// Arrival time of each job in flight, by slot.
        arrived: Vec<Time>,
        free: Vec<u32>,
        done: u64,
        total_response: f64,
    }

    const ARRIVE: u32 = u32::MAX;

    impl Model for MM1 {
        type Event = u32;
        fn handle(&mut self, ev: u32, ctx: &mut Context<u32>) {
            let now = ctx.now();
            if ev == ARRIVE {
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.arrived.push(0);
                    (self.arrived.len() - 1) as u32
                });
                self.arrived[slot as usize] = now;
                let s = (self.service.sample(&mut self.rng) * 1e9) as Time;
                let end = self.station.reserve(now, s, &self.window);
                ctx.schedule_at(end, slot);
                let g = (self.gap.sample(&mut self.rng) * 1e9) as Time;
                ctx.schedule_in(g, ARRIVE);
            } else {
                self.done += 1;
                self.total_response += (now - self.arrived[ev as usize]) as f64 / 1e9;
                self.free.push(ev);
            }
        }
    }

    #[test]
    fn mm1_mean_response_is_one_over_mu_minus_lambda() {
        let (lambda, mu) = (500.0, 1000.0); // per second: rho = 0.5, E[T] = 2 ms
        let window = Window { start: 0, end: Time::MAX };
        let mut sim = Simulation::new(MM1 {
            station: Station::default(),
            window,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(11),
            gap: Exp::new(lambda).unwrap(),
            service: Exp::new(mu).unwrap(),
            arrived: Vec::new(),
            free: Vec::new(),
            done: 0,
            total_response: 0.0,
        });
        sim.init(|_, ctx| ctx.schedule_at(0, ARRIVE));
        sim.run_until(1_000 * crate::engine::NS_PER_S); // about 500,000 jobs
        let m = &sim.model;
        let mean = m.total_response / m.done as f64;
        let expected = 1.0 / (mu - lambda);
        assert!(m.done > 450_000, "{}", m.done);
        assert!((mean / expected - 1.0).abs() < 0.03, "mean response {mean} s, expected {expected} s");
        // Utilisation is rho.
        let util = m.station.busy_in_window as f64 / sim.now() as f64;
        assert!((util - 0.5).abs() < 0.01, "{util}");
    }

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
