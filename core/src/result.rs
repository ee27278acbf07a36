//! The result row both engines fill, so that one CSV writer serves the
//! simulator (`mode = sim`) and the real cluster (`mode = real`, `real-lab`).
//! Field order is the column order of `results.csv`.

use serde::{Deserialize, Serialize};

use crate::eviction::Eviction;

/// One measured or simulated run (one cell, one seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub workload: String,
    /// `conventional` or `distributed` (or `distributed-relay` for real runs).
    pub arch: String,
    pub policy: String,
    /// Which object a full cache drops; files written before the column
    /// existed read as `lru`, the only eviction there was.
    #[serde(default)]
    pub eviction: Eviction,
    pub servers: u32,
    pub seed: u64,
    /// Requests completed per second in the measurement window.
    pub req_per_s: f64,
    /// Response payload delivered to clients, Mbit/s (10^6 bits).
    pub mbit_per_s: f64,
    pub hit_ratio: f64,
    pub byte_hit_ratio: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub fe_cpu_util: f64,
    pub fe_nic_util: f64,
    pub max_server_cpu_util: f64,
    pub max_server_nic_util: f64,
    /// Max / mean requests served per owner.
    pub imbalance: f64,
    /// Share of requests whose owner was not the receiving server.
    pub forwarded_frac: f64,
    /// Bytes stored across all caches at the end of the run.
    pub cache_bytes: u64,
    /// Requests completed in the measurement window.
    pub requests: u64,
    /// `sim`, `real` or `real-lab`.
    pub mode: String,
    /// Failed or unverified responses.
    pub errors: u64,
    /// A replay: the trace's measured requests (each sent or dropped, once); 0 otherwise.
    pub replayed: u64,
    /// Requests the clients did not send because too many were outstanding
    /// (`clients.max_outstanding` of a timed replay; the simulator's open-loop bound).
    pub dropped: u64,
    /// Share of the catalog whose owner changed over the run's fault
    /// schedule (leave and join move owners; empty without faults).
    #[serde(default)]
    pub moved_frac: Option<f64>,
    /// Seconds from the first fault until the hit ratio is back within one
    /// point of its value before it; empty without faults or if never.
    #[serde(default)]
    pub refill_s: Option<f64>,
}

impl ResultRow {
    /// The CSV header, in column order.
    pub const COLUMNS: &'static [&'static str] = &[
        "workload",
        "arch",
        "policy",
        "eviction",
        "servers",
        "seed",
        "req_per_s",
        "mbit_per_s",
        "hit_ratio",
        "byte_hit_ratio",
        "p50_ms",
        "p99_ms",
        "fe_cpu_util",
        "fe_nic_util",
        "max_server_cpu_util",
        "max_server_nic_util",
        "imbalance",
        "forwarded_frac",
        "cache_bytes",
        "requests",
        "mode",
        "errors",
        "replayed",
        "dropped",
        "moved_frac",
        "refill_s",
    ];

    /// Columns that files written before them lack: such files are still
    /// read, `eviction` as `lru` and the fault figures empty.
    pub const OPTIONAL: &'static [&'static str] = &["eviction", "moved_frac", "refill_s"];
}
