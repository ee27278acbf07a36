//! What one simulated run is: the interface between the application (which
//! reads experiment files and derives seeds) and the model.

use std::sync::Arc;

use dl7_core::eviction::Eviction;
pub use dl7_core::{Arch, ClientMode, Hardware};
use dl7_core::{HashKey, PolicySpec};
use dl7_traces::{Catalog, ObjectId};

/// One run: a cell of a sweep with one seed.
#[derive(Debug, Clone)]
pub struct CellSpec {
    /// Workload name, copied into the result row.
    pub workload: String,
    pub catalog: Arc<Catalog>,
    pub arch: Arch,
    pub policy: PolicySpec,
    /// Which part of an object's path the policy hashes (a catalog's paths
    /// may keep their queries: `dl7 trace import --keep-query`).
    pub hash_key: HashKey,
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
    /// Largest object a cache stores (default: [`dl7_core::hardware::default_max_object_bytes`]).
    pub max_object_bytes: Option<u64>,
    /// Which object a full cache drops, at every node (the paper's Squid: LRU).
    pub eviction: Eviction,
    /// The requests to replay in order ([`ClientMode::Replay`] only).
    pub requests: Option<Arc<Vec<ObjectId>>>,
    /// Their logged times, seconds (a timed replay only: `Replay { pace: Some(_), .. }`).
    pub times: Option<Arc<Vec<u64>>>,
    /// Length of the intervals of [`crate::RunStats::intervals`], simulated seconds.
    pub interval_s: f64,
    /// The fault schedule (`dl7_core::fault`), in time order, checked against `servers`.
    pub faults: Vec<dl7_core::Fault>,
}

impl CellSpec {
    /// A cell as the paper ran it: 63 closed-loop clients per server, the
    /// default warm-up and window, seed 1, one policy instance per
    /// dispatcher, the profile's cache under LRU, 1 s intervals, no replay and no
    /// faults. Callers change what they vary with `..CellSpec::paper(..)`.
    pub fn paper(workload: &str, catalog: Arc<Catalog>, arch: Arch, policy: PolicySpec, servers: u32) -> CellSpec {
        CellSpec {
            workload: workload.into(),
            catalog,
            arch,
            policy,
            hash_key: HashKey::Url,
            servers,
            shared_state: false,
            clients: ClientMode::Closed { per_server: 63 },
            warmup_s: crate::DEFAULT_WARMUP_S,
            measure_s: crate::DEFAULT_MEASURE_S,
            seed: 1,
            cache_bytes_per_server: None,
            max_object_bytes: None,
            eviction: Eviction::Lru,
            requests: None,
            times: None,
            interval_s: 1.0,
            faults: Vec::new(),
        }
    }
}

/// Why a run could not be simulated: a bad cell, hardware profile or policy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Policy(#[from] dl7_core::PolicyError),
    #[error(transparent)]
    Config(#[from] dl7_core::ConfigError),
}
