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

/// A client mode's value out of range, with the key it is about.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// No connections per server.
    #[error("expected connections per server >= 1, found 0")]
    NoPerServer,
    /// An open loop's rate that is not a positive number.
    #[error("expected requests per second > 0, found {0}")]
    BadRate(f64),
    /// A replay without connections.
    #[error("expected connections >= 1, found 0")]
    NoConnections,
    /// A timed replay's speed that is not a positive number.
    #[error("expected a speed factor > 0 (logged seconds per replayed second), found {0}")]
    BadSpeed(f64),
    /// A timed replay that may have nothing out.
    #[error("expected outstanding requests >= 1, found 0")]
    NoOutstanding,
}

impl ClientError {
    /// The key of `[clients]` the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ClientError::NoPerServer => "per_server",
            ClientError::BadRate(_) => "rate",
            ClientError::NoConnections => "connections",
            ClientError::BadSpeed(_) => "speed",
            ClientError::NoOutstanding => "max_outstanding",
        }
    }
}

impl Pace {
    /// Checks the values, once for every engine.
    pub fn validate(&self) -> Result<(), ClientError> {
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return Err(ClientError::BadSpeed(self.speed));
        }
        if self.max_outstanding == 0 {
            return Err(ClientError::NoOutstanding);
        }
        Ok(())
    }
}

impl ClientMode {
    /// Checks the values, once for every engine: the experiment reader, the
    /// simulator and the load generator's config all call this.
    pub fn validate(&self) -> Result<(), ClientError> {
        match *self {
            ClientMode::Closed { per_server } | ClientMode::OnOff { per_server } if per_server == 0 => {
                Err(ClientError::NoPerServer)
            }
            ClientMode::Poisson { rate } if !(rate.is_finite() && rate > 0.0) => Err(ClientError::BadRate(rate)),
            ClientMode::Replay { connections: 0, .. } => Err(ClientError::NoConnections),
            ClientMode::Replay { pace: Some(p), .. } => p.validate(),
            _ => Ok(()),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_are_named_by_their_key() {
        let field = |m: ClientMode| m.validate().unwrap_err().field();
        assert_eq!(field(ClientMode::Closed { per_server: 0 }), "per_server");
        assert_eq!(field(ClientMode::OnOff { per_server: 0 }), "per_server");
        assert_eq!(field(ClientMode::Poisson { rate: f64::NAN }), "rate");
        assert_eq!(field(ClientMode::Replay { connections: 0, warmup_requests: 0, pace: None }), "connections");
        let pace = |speed, max_outstanding| Some(Pace { speed, max_outstanding });
        assert_eq!(field(ClientMode::Replay { connections: 1, warmup_requests: 0, pace: pace(0.0, 1) }), "speed");
        assert_eq!(
            field(ClientMode::Replay { connections: 1, warmup_requests: 0, pace: pace(2.0, 0) }),
            "max_outstanding"
        );
        assert!(ClientMode::Closed { per_server: 63 }.validate().is_ok());
        assert!(ClientMode::Replay { connections: 4, warmup_requests: 0, pace: pace(2.0, 8) }.validate().is_ok());
    }
}
