//! The hold model, the classic benchmark of an event queue: a fixed
//! population of events, each of which reschedules itself a pseudo-random
//! delay later. It measures the engine alone (push, pop, dispatch); the
//! criterion benchmark and the scale benchmark both run it.

use super::{Context, Model};

/// Each event comes back `0..65536` ns later (xorshift64: cheap, deterministic).
pub struct Hold {
    state: u64,
}

impl Hold {
    /// The model with its fixed seed.
    pub fn new() -> Hold {
        Hold { state: 0x9E37_79B9_7F4A_7C15 }
    }
}

impl Default for Hold {
    fn default() -> Self {
        Hold::new()
    }
}

impl Model for Hold {
    type Event = u32;
    #[inline]
    fn handle(&mut self, ev: u32, ctx: &mut Context<u32>) {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        ctx.schedule_in(self.state & 0xffff, ev);
    }
}
