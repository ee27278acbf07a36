//! # dl7-sim: discrete-event model of a web-cache cluster
//!
//! The application calls [`simulate`] once per run (one cell, one seed); the
//! answer is a [`ResultRow`] with `mode = "sim"`. Same spec, same hardware,
//! same row, bit for bit: every random number comes from `cell.seed`.
//!
//! ```
//! use std::sync::Arc;
//! use dl7_core::PolicySpec;
//! use dl7_sim::{simulate, Arch, CellSpec, ClientMode, Hardware};
//!
//! let cell = CellSpec {
//!     workload: "surge100".into(),
//!     catalog: Arc::new(dl7_traces::workload::builtin("surge100").unwrap()),
//!     arch: Arch::Distributed,
//!     policy: PolicySpec::parse("md5").unwrap(),
//!     hash_key: dl7_core::HashKey::Url,
//!     servers: 4,
//!     shared_state: false,
//!     clients: ClientMode::Closed { per_server: 63 },
//!     warmup_s: 1.0,
//!     measure_s: 2.0,
//!     seed: 1,
//!     cache_bytes_per_server: None,
//!     max_object_bytes: None,
//!     eviction: dl7_core::eviction::Eviction::Lru,
//!     requests: None,
//!     times: None,
//!     interval_s: 1.0,
//!     faults: Vec::new(),
//! };
//! let row = simulate(&cell, &Hardware::kwon2008()).unwrap();
//! assert_eq!(row.mode, "sim");
//! assert!(row.req_per_s > 100.0 && row.forwarded_frac > 0.5);
//! // Same cell, same seed: the same row, bit for bit.
//! assert_eq!(row, simulate(&cell, &Hardware::kwon2008()).unwrap());
//! ```
//!
//! ## Layout
//! * [`engine`]: the event loop alone (integer-nanosecond clock, events
//!   ordered by time then insertion). Knows nothing of clusters.
//! * `model`: the cluster: hosts and their resources (`model::host`: the
//!   FIFO CPU and NIC stations), caches, faults and request paths.
//! * `run`: one run's stages (check the cell, set up, start, warm up,
//!   measure, read the row), wiring the engine to the model.
//! * [`Hardware`] (from `dl7-core`): the profile of costs and rates, read
//!   strictly from TOML (`experiments/hardware/kwon2008.toml` is the paper's
//!   testbed), and `dl7_core::costs`, the one cost model both engines use.
//!
//! ## What is modelled
//! * **Hosts**: one front end, N cache servers, one origin. Each has one FIFO
//!   CPU and a full-duplex NIC (independent FIFO TX and RX stations at the
//!   link rate). Clients are unlimited: no client CPU or NIC, so they are
//!   never the bottleneck. The switch is non-blocking.
//! * **Transfers are messages, not packets.** A message's wire time is its
//!   payload plus per-frame overhead (headers, FCS, preamble, inter-frame
//!   gap; MSS 1448) plus the connection's control frames (SYN, FIN, ACKs of
//!   HTTP/1.0's one-connection-per-request). The receiver's delayed ACKs are
//!   reserved on the reverse direction as background load. A message
//!   occupies the sender's TX station for its wire time; the receiver's RX
//!   station takes it from the moment the first frame is out (cut-through:
//!   the switch and the receiver see the frames as they come), so it ends
//!   one frame time after the sender's TX. The CPU step that consumes a
//!   message starts once the whole message is in (message-level store and
//!   forward at hosts, including relays): throughput limits are exact,
//!   relay latency is overstated by about one message time.
//! * **CPU costs** per operation: per connection, per frame handled at a TCP
//!   endpoint, per byte copied, plus the operations themselves (KTCPVS parse
//!   and pick, IPVS forward per frame, Squid per request, miss handling,
//!   distillation per image byte, Apache per request), and Squid's poll()
//!   cost per open connection per request served, which makes a hot-spot
//!   owner slower as connections pile up on it. A host's CPU work for
//!   one step is one visit to its FIFO CPU, before or after its NIC visit
//!   (no overlap of CPU and NIC within one step of one request).
//! * **Paths.** Conventional: client -> FE RX -> FE CPU (accept, parse,
//!   pick, connect) -> FE TX -> server RX -> server CPU (Squid) -> server TX
//!   -> FE RX -> FE CPU (relay) -> FE TX -> client. Distributed (IPVS-DR):
//!   client -> FE RX -> FE CPU (L4) -> FE TX -> receiver RX -> receiver CPU
//!   (parse, pick) -> [owner RX -> owner CPU -> owner TX -> receiver RX ->
//!   receiver CPU relay, when the owner is another server; over loopback
//!   with no frames when it is the receiver] -> receiver TX -> client. The
//!   client's ACKs of a distributed response pass the front end (IPVS sees
//!   the inbound direction only).
//! * **Policies** are the `dl7-core` objects the real cluster uses. Each
//!   dispatcher (the FE in conventional runs, every server in distributed
//!   runs) has its own instance of a stateful policy (`rr`, `ht_rr`,
//!   `lard`), unless the cell asks for shared state; a pure or load-aware
//!   one holds nothing mutable and is built once and shared, which answers
//!   as separate copies would. Load-aware policies see the in-flight
//!   requests their own dispatcher sent (with shared state, the whole
//!   cluster's).
//!   The FE's IPVS assigns connections to receivers round robin.
//! * **Caches**: a byte-bounded cache per server, under the cell's eviction
//!   (`CellSpec::eviction`, default LRU as the paper's Squid; the core's
//!   `dl7_core::eviction`, which the real node uses too); a miss fetches from the
//!   origin (owner CPU, owner TX, origin RX, origin CPU, origin TX, owner RX,
//!   owner CPU to store and distill images), and concurrent misses for one
//!   object at one server wait for that one fetch. Caches start empty; the
//!   warm-up is excluded from every statistic.
//! * **Clients**: closed loop (connections per server, zero think time, one
//!   shared stream of independent draws by weight), open-loop Poisson,
//!   SURGE ON/OFF users (`dl7_traces::SurgeUser`, one per slot), and the
//!   replay of a trace: its requests in order, each once, over persistent
//!   connections that each take the next request when free; connection `c`
//!   (opened in index order, 1 us apart) is pinned to receiver `c mod N`, as
//!   the real front ends hand over a keep-alive connection once. A timed
//!   replay (`pace`) sends each request at its instant of
//!   `dl7_traces::Schedule`, to the nanosecond, on the connection free the
//!   longest (the pool of `connections` opened at the start, pinned the same
//!   way), on a new connection when none is free, and drops it (counted in
//!   `dropped`) when `max_outstanding` are out. A replay runs until its last
//!   response and measures every request after its first `warmup_requests`,
//!   whatever the clock says.
//! * **Intervals** ([`RunStats::intervals`], `timeseries.csv`): the
//!   completions of the warm-up and the window by interval of simulated
//!   time (a replay: of its measured requests), `dl7_core::timeseries`.
//!
//! ## Data structures
//! Memory and start-up are O(servers + objects), and the work per simulated
//! request grows with neither:
//! * per object, in catalog order: its `RequestKey` (every hash computed
//!   once), its size and its `ObjectCosts`, read by index;
//! * per server: its stations, counters, and a byte-bounded cache sized by
//!   what it holds, under the cell's eviction (`CellSpec::eviction`: LRU,
//!   FIFO, SIEVE, S3-FIFO or GDSF; a hash map from object to a slot of a
//!   slab, with the algorithm's order through the slab: `model::cache`);
//! * the fetches from the origin under way: one hash map keyed by (server,
//!   object), each entry the first request parked on that fetch (single
//!   flight); nothing for the rest of the catalog;
//! * policies: one shared `Arc<dyn Policy>` unless stateful (above), so a
//!   cell at N = 1024 builds one Maglev table, not 1024; one load view per
//!   dispatcher, or one for the cluster when nothing reads it (pure). The
//!   exceptions to O(servers): a load-aware policy's N views of N counters
//!   each (8 MB at N = 1024) and a stateful one's N instances;
//! * the engine's queue: a radix bucket queue on the clock (8 levels of 256
//!   slots, each a vector that keeps its capacity), O(1) per event whatever
//!   the number pending (`engine`).
//!
//! The hash maps use a fixed hasher (foldhash's `FixedState`) and none is
//! iterated into a result, so a run stays a pure function of its inputs.
//!
//! ## What is not modelled
//! TCP congestion and flow control (slow start, window limits, losses,
//! retransmission), switch buffers, packet-level pipelining through a relay,
//! disk I/O (everything fits in Squid's memory cache), interrupt coalescing,
//! memory and connection-table limits, object expiry and revalidation, and
//! the size change of distilled images (clients get the catalog size).
//! There is no admission control (listen-queue limits): an open-loop
//! Poisson run offered more than the cluster can serve livelocks, because
//! every station is FIFO across all of a request's visits and new arrivals
//! keep queueing ahead of the later steps of earlier requests; its row then
//! shows next to no completions. Arrivals beyond 2^20 requests in flight
//! are dropped (counted in `dropped`). The model has no failures: `errors`
//! is 0.

pub mod cell;
pub mod engine;
pub(crate) mod model;
mod run;

pub use cell::{Arch, CellSpec, ClientMode, Hardware, SimError};

use dl7_core::timeseries::Interval;
use dl7_core::ResultRow;

/// Default simulated warm-up, seconds: long enough that under `rr` on 16
/// servers even the least popular of 100 files (about 0.2% of requests) has
/// been fetched by most servers, so measured hit ratios are steady-state.
pub const DEFAULT_WARMUP_S: f64 = 10.0;

/// Default measured simulated time, seconds: thousands of requests per run
/// even for the slowest cell; a run still takes tens of milliseconds.
pub const DEFAULT_MEASURE_S: f64 = 20.0;

/// Figures about a run that are not part of the result row.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStats {
    /// Events the engine handled, warm-up included.
    pub events: u64,
    /// Requests completed, warm-up included.
    pub requests: u64,
    /// Objects fetched from the origin, warm-up included.
    pub origin_fetches: u64,
    /// Per server, the objects in its cache at the end (catalog indices, ascending).
    pub cached: Vec<Vec<u32>>,
    /// The run by interval (`timeseries.csv`), warm-up intervals first.
    pub intervals: Vec<Interval>,
    /// A replay: when each of the trace's requests was sent, ns from the
    /// run's start, by trace position (`u64::MAX` for a dropped request).
    pub sent_at: Vec<u64>,
}

impl RunStats {
    /// Engine events per completed request.
    pub fn events_per_request(&self) -> f64 {
        self.events as f64 / self.requests.max(1) as f64
    }
}

/// Simulates one run and returns its row (`mode = "sim"`). Deterministic: the
/// same spec and hardware give the same row, bit for bit.
pub fn simulate(cell: &CellSpec, hw: &Hardware) -> Result<ResultRow, SimError> {
    simulate_with_stats(cell, hw).map(|(row, _)| row)
}

/// [`simulate`], also returning engine figures (events per request).
pub fn simulate_with_stats(cell: &CellSpec, hw: &Hardware) -> Result<(ResultRow, RunStats), SimError> {
    run::simulate_with_stats(cell, hw)
}
