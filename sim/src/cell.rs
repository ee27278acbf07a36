//! What one simulated run is: the interface between the application (which
//! reads experiment files and derives seeds) and the model.

use std::sync::Arc;

use dl7_core::PolicySpec;
use dl7_traces::Catalog;

/// The two architectures the paper compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// One KTCPVS box parses, picks, forwards and relays every response.
    Conventional,
    /// IPVS-DR round robin in front, an L7 dispatcher on every server,
    /// responses straight from the receiver to the client.
    Distributed,
}

impl Arch {
    pub const ALL: &'static [Arch] = &[Arch::Conventional, Arch::Distributed];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Conventional => "conventional",
            Arch::Distributed => "distributed",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }
}

/// How clients generate load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClientMode {
    /// WebStone: `per_server` connections per cache server, zero think time.
    Closed { per_server: u32 },
    /// Open loop: Poisson arrivals at `rate` requests per second.
    Poisson { rate: f64 },
    /// SURGE ON/OFF users (`per_server` users per cache server).
    OnOff { per_server: u32 },
}

/// One run: a cell of a sweep with one seed.
#[derive(Debug, Clone)]
pub struct CellSpec {
    /// Workload name, copied into the result row.
    pub workload: String,
    pub catalog: Arc<Catalog>,
    pub arch: Arch,
    pub policy: PolicySpec,
    pub servers: u32,
    /// One cluster-wide policy instance instead of one per dispatcher.
    pub shared_state: bool,
    pub clients: ClientMode,
    /// Simulated seconds before measurement starts (caches warm up).
    pub warmup_s: f64,
    /// Simulated seconds measured.
    pub measure_s: f64,
    /// Per-run seed, already derived from the experiment seed and the cell.
    pub seed: u64,
    /// Overrides the hardware profile's cache capacity per server.
    pub cache_bytes_per_server: Option<u64>,
}

/// The hardware profile (CPU costs, NIC rates, cache sizes); defined in
/// [`crate::hardware`], re-exported here as part of the cell interface.
pub use crate::hardware::Hardware;

/// Why a run could not be simulated: a bad cell, hardware profile or policy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Policy(#[from] dl7_core::PolicyError),
}
