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
    /// A trace's requests, in order, each exactly once: `connections`
    /// persistent connections, each taking the trace's next request when it
    /// is free. The front end gives connection `c` (in opening order) to
    /// receiver `c mod N`. The whole replay is measured, except its first
    /// `warmup_requests` requests.
    Replay {
        /// Persistent client connections.
        connections: u32,
        /// Requests replayed before the measurement starts.
        warmup_requests: u64,
    },
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
