//! The event engine, apart from any model: an integer-nanosecond clock and a
//! queue of events ordered by (time, insertion sequence), so that events at
//! the same instant run in the order they were scheduled (FIFO epoch) and a
//! run is a pure function of its inputs.
//!
//! Models are plain structs implementing [`Model`]; they see time only
//! through the [`Context`] handed to [`Model::handle`] and schedule their
//! future events through it. The engine knows nothing about CPUs, NICs or
//! requests, and must not: the cluster model lives in `crate::model`.

mod hold;
mod queue;

pub use hold::Hold;
pub use queue::{EventId, EventQueue};

/// Simulated time in nanoseconds since the start of the run.
pub type Time = u64;

/// Nanoseconds per second, for converting configuration values.
pub const NS_PER_S: Time = 1_000_000_000;

/// Converts seconds (from a configuration) to simulated nanoseconds, rounding
/// to the nearest nanosecond. Negative and non-finite values become 0.
pub fn seconds(s: f64) -> Time {
    if s.is_finite() && s > 0.0 {
        (s * NS_PER_S as f64).round() as Time
    } else {
        0
    }
}

/// What a model may do while handling an event: read the clock and schedule.
pub struct Context<E> {
    now: Time,
    queue: EventQueue<E>,
}

impl<E: EventId> Context<E> {
    /// The current simulated time.
    #[inline]
    pub fn now(&self) -> Time {
        self.now
    }

    /// Schedules `event` at absolute time `at` (never before now).
    #[inline]
    pub fn schedule_at(&mut self, at: Time, event: E) {
        self.queue.push(at.max(self.now), event);
    }

    /// Schedules `event` after `delay` nanoseconds.
    #[inline]
    pub fn schedule_in(&mut self, delay: Time, event: E) {
        self.queue.push(self.now.saturating_add(delay), event);
    }

    /// Events waiting in the queue.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }
}

/// A simulation model: reacts to its own events.
pub trait Model {
    /// The event payload: 32 bits, packed into the queue's entries.
    type Event: EventId;
    /// Handles one event at `ctx.now()`.
    fn handle(&mut self, event: Self::Event, ctx: &mut Context<Self::Event>);

    /// A hint that `event` is among the next few to be handled: a model
    /// whose events touch memory spread wider than the cache can prefetch
    /// it now, so that the misses of several events overlap. It must not
    /// change what the model does.
    #[inline]
    fn soon(&self, event: Self::Event) {
        let _ = event;
    }
}

/// A model with its clock and event queue.
pub struct Simulation<M: Model> {
    /// The model; public so that callers can read its statistics afterwards.
    pub model: M,
    ctx: Context<M::Event>,
    events: u64,
}

impl<M: Model> Simulation<M> {
    /// A simulation at time 0 with an empty queue.
    pub fn new(model: M) -> Self {
        Self { model, ctx: Context { now: 0, queue: EventQueue::new() }, events: 0 }
    }

    /// The context, for scheduling the initial events before running.
    pub fn context(&mut self) -> &mut Context<M::Event> {
        &mut self.ctx
    }

    /// Lets `f` set up the model with access to the context (initial events).
    pub fn init(&mut self, f: impl FnOnce(&mut M, &mut Context<M::Event>)) {
        f(&mut self.model, &mut self.ctx);
    }

    /// Runs events in order until the queue is empty or the next event lies
    /// after `end`; the clock then reads `end` (or the last event's time if
    /// the queue ran dry earlier). Returns the number of events handled.
    pub fn run_until(&mut self, end: Time) -> u64 {
        let before = self.events;
        loop {
            let model = &self.model;
            let Some((at, event)) = self.ctx.queue.pop_until_with(end, |e| model.soon(e)) else { break };
            self.ctx.now = at;
            self.events += 1;
            self.model.handle(event, &mut self.ctx);
        }
        self.ctx.now = self.ctx.now.max(end);
        self.events - before
    }

    /// The current simulated time.
    pub fn now(&self) -> Time {
        self.ctx.now
    }

    /// Events handled since creation.
    pub fn events(&self) -> u64 {
        self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Vec<(Time, u32)>);

    impl Model for Recorder {
        type Event = u32;
        fn handle(&mut self, event: u32, ctx: &mut Context<u32>) {
            self.0.push((ctx.now(), event));
            if event == 1 {
                // Scheduled "now" from inside a handler: runs after the events
                // already queued for this instant.
                ctx.schedule_in(0, 99);
            }
        }
    }

    #[test]
    fn equal_times_run_in_insertion_order_and_time_never_goes_back() {
        let mut sim = Simulation::new(Recorder(Vec::new()));
        sim.init(|_, ctx| {
            ctx.schedule_at(10, 1);
            ctx.schedule_at(5, 0);
            ctx.schedule_at(10, 2);
            ctx.schedule_at(10, 3);
            ctx.schedule_at(20, 4);
        });
        let n = sim.run_until(15);
        assert_eq!(n, 5);
        assert_eq!(sim.model.0, vec![(5, 0), (10, 1), (10, 2), (10, 3), (10, 99)]);
        assert_eq!(sim.now(), 15);
        sim.run_until(100);
        assert_eq!(sim.model.0.last(), Some(&(20, 4)));
    }
}
