//! The services' defaults, each in one place: the typed configs
//! ([`crate::spec`]), the HTTP layer's limits, the testbed and the CLI all
//! read them from here. A leaf: it imports nothing of the crate.

/// Candidates a dispatcher or front end tries after a failed owner.
pub const DEFAULT_FALLBACKS: usize = 2;
/// Milliseconds allowed for a complete request head.
pub const DEFAULT_HEAD_TIMEOUT_MS: u64 = 5000;
/// Most client connections a service holds at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Deadline of one upstream fetch, milliseconds.
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 2000;
/// The load generator's per-request deadline, milliseconds.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5000;
