//! How an engine tells load-aware policies (`bounded`, `p2c`, `lard`) the
//! in-flight requests per server. Pure policies ignore it.

use crate::ServerId;

/// In-flight requests per server, as the engine currently sees them.
pub trait LoadView {
    /// Requests in flight at `server`.
    fn inflight(&self, server: ServerId) -> u64;
    /// Requests in flight across the cluster.
    fn total_inflight(&self) -> u64;
}

/// A view with no load anywhere: for pure policies and for tools.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLoad;

impl LoadView for NoLoad {
    fn inflight(&self, _: ServerId) -> u64 {
        0
    }
    fn total_inflight(&self) -> u64 {
        0
    }
}

/// Per-server counts, indexed by `ServerId`. The total is summed on demand,
/// which is O(N): engines with many servers should keep their own running
/// total and implement the trait themselves.
impl LoadView for Vec<u64> {
    fn inflight(&self, server: ServerId) -> u64 {
        self.get(server.index()).copied().unwrap_or(0)
    }
    fn total_inflight(&self) -> u64 {
        self.iter().sum()
    }
}
