//! How clients generate load: one meaning in every engine.

use serde::{Deserialize, Serialize};

/// How clients generate load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum ClientMode {
    /// WebStone: `per_server` connections per cache server, zero think time,
    /// each drawing objects from the workload's popularity.
    Closed {
        /// Connections per cache server.
        per_server: u32,
    },
    /// Open loop: Poisson arrivals at `rate` requests per second in total.
    Poisson {
        /// Requests per second, all clients together.
        rate: f64,
    },
    /// SURGE ON/OFF users (`per_server` users per cache server).
    OnOff {
        /// Users per cache server.
        per_server: u32,
    },
    /// A trace's requests, each exactly once, over persistent connections;
    /// the front end gives connection `c` (in opening order) to receiver
    /// `c mod N`. The whole replay is measured, except its first
    /// `warmup_requests` requests (in the order they are sent).
    ///
    /// Without `pace`, closed loop: `connections` connections, each taking
    /// the trace's next request when it is free. With `pace`, open loop at
    /// the logged times ([`Pace`]).
    Replay {
        /// Persistent client connections (with `pace`: the pool opened at the start).
        connections: u32,
        /// Requests replayed before the measurement starts.
        warmup_requests: u64,
        /// Timed replay: the logged times, sped up.
        pace: Option<Pace>,
    },
}

/// A timed replay: each request is sent at its logged time divided by
/// `speed` (after the first request's; the requests of one logged second
/// spread evenly over it, `dl7_traces::Schedule`), whatever the responses
/// do. A request due when none of the pool's connections is free goes out
/// on a new connection; when `max_outstanding` requests are already out it
/// is not sent and counts as dropped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pace {
    /// Logged seconds per replayed second (> 0; 2.0 replays twice as fast).
    pub speed: f64,
    /// Most requests out at once (and so most connections); later ones are dropped.
    pub max_outstanding: u32,
}

impl Pace {
    /// Default bound on outstanding requests: the real services' default
    /// `max_connections`, so that a real run's client does not open more
    /// connections than a service accepts.
    pub const DEFAULT_MAX_OUTSTANDING: u32 = 4096;
}

impl ClientMode {
    /// The name used in experiment files.
    pub fn name(&self) -> &'static str {
        match self {
            ClientMode::Closed { .. } => "closed",
            ClientMode::Poisson { .. } => "poisson",
            ClientMode::OnOff { .. } => "onoff",
            ClientMode::Replay { .. } => "replay",
        }
    }
}
