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
//!     servers: 4,
//!     shared_state: false,
//!     clients: ClientMode::Closed { per_server: 63 },
//!     warmup_s: 1.0,
//!     measure_s: 2.0,
//!     seed: 1,
//!     cache_bytes_per_server: None,
//!     max_object_bytes: None,
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
//! * `model`: hosts, resources, caches and request paths.
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
//! * **Caches**: a byte-bounded LRU per server; a miss fetches from the
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
//! * per server: its stations, counters, and a byte-bounded LRU sized by
//!   what it holds (a hash map from object to a slot of a slab, with an
//!   intrusive recency list through the slab: `model::cache`);
//! * the fetches from the origin under way: one hash map keyed by (server,
//!   object), each entry the first request parked on that fetch (single
//!   flight); nothing for the rest of the catalog;
//! * policies: one shared `Arc<dyn Policy>` unless stateful (above), so a
//!   cell at N = 1024 builds one Maglev table, not 1024; one load view per
//!   dispatcher, or one for the cluster when nothing reads it (pure). The
//!   exceptions to O(servers): a load-aware policy's N views of N counters
//!   each (8 MB at N = 1024) and a stateful one's N instances;
//! * the engine's queue: a 4-ary heap of 16-byte entries (`engine`).
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

pub use cell::{Arch, CellSpec, ClientMode, Hardware, SimError};

use dl7_core::timeseries::{Interval, Recorder};
use dl7_core::{Membership, RequestKey, ResultRow};
use dl7_traces::{SurgeUser, SurgeUserParams};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use engine::{seconds, Simulation};
use model::station::Window;
use model::{Clients, Cluster, Paced};

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

/// Open-loop slots beyond which Poisson arrivals are dropped (and counted
/// in `dropped`), so an overloaded open-loop run keeps bounded memory.
const MAX_OPEN_LOOP_REQUESTS: usize = 1 << 20;

/// Gap between the openings of replay connections: they open in index order.
const REPLAY_OPEN_GAP_NS: u64 = 1_000;

/// Spread of the closed-loop clients' first requests, so that they do not
/// all start at the same nanosecond.
const START_SPREAD_NS: u64 = 1_000_000;

/// [`simulate`], also returning engine figures (events per request).
pub fn simulate_with_stats(cell: &CellSpec, hw: &Hardware) -> Result<(ResultRow, RunStats), SimError> {
    let catalog = &*cell.catalog;
    if catalog.is_empty() {
        return Err(SimError::Invalid(format!("workload {}: the catalog has no objects", cell.workload)));
    }
    if cell.servers == 0 || cell.servers > 4096 {
        return Err(SimError::Invalid(format!("servers: expected 1 to 4096, got {}", cell.servers)));
    }
    if !(cell.warmup_s.is_finite() && cell.warmup_s >= 0.0) {
        return Err(SimError::Invalid(format!("warmup_s: expected a finite number >= 0, got {}", cell.warmup_s)));
    }
    if !(cell.interval_s.is_finite() && cell.interval_s > 0.0) {
        return Err(SimError::Invalid(format!("interval_s: expected a finite number > 0, got {}", cell.interval_s)));
    }
    let replay = matches!(cell.clients, ClientMode::Replay { .. });
    // A replay's window is the replay itself.
    let window_ok = cell.measure_s.is_finite() && cell.measure_s > 0.0;
    if !replay && !window_ok {
        return Err(SimError::Invalid(format!("measure_s: expected a finite number > 0, got {}", cell.measure_s)));
    }
    let n = cell.servers as usize;
    let members = Membership::numbered(n)?;
    let shared = cell.shared_state || cell.policy.kind.shared_by_default();
    // Every node the fault schedule ever has: the first `n`, then its joins.
    let timeline = dl7_core::fault::Timeline::check(&cell.faults, cell.servers)
        .map_err(|(k, e)| SimError::Invalid(format!("faults[{k}]: {e}")))?;
    let total = timeline.alive.len();
    let dispatchers = match cell.arch {
        Arch::Conventional => 1,
        Arch::Distributed => total,
    };
    let (policies, load_views) = model::build_policies(&cell.policy, &members, dispatchers, shared)?;

    // Hashes computed once per object, never per request.
    let keys: Vec<RequestKey<'_>> = catalog.objects.iter().map(|o| RequestKey::new(o.path.as_bytes())).collect();
    let sizes: Vec<u64> = catalog.objects.iter().map(|o| o.size).collect();
    let costs = dl7_core::costs::Costs::new(hw);
    let object_costs = catalog.objects.iter().map(|o| costs.object(o.size, o.content_type.is_image())).collect();

    let stream_error = |e: dl7_traces::TraceError| SimError::Invalid(format!("workload {}: {e}", cell.workload));
    // A timed replay's send instants, borrowed by the clients for the whole run.
    let schedule = match cell.clients {
        ClientMode::Replay { pace: Some(pace), .. } => {
            let times = cell.times.as_deref().map_or(&[][..], |t| &t[..]);
            let s = dl7_traces::Schedule::new(times, pace.speed)
                .map_err(|e| SimError::Invalid(format!("workload {}: timed replay: {e}", cell.workload)))?;
            Some(s)
        }
        _ => None,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cell.seed);
    rng.set_stream(1);
    let (clients, connections) = match cell.clients {
        ClientMode::Closed { per_server } => {
            if per_server == 0 {
                return Err(SimError::Invalid("clients per server: expected an integer >= 1, got 0".into()));
            }
            (Clients::Closed { stream: catalog.stream(cell.seed).map_err(stream_error)? }, per_server as usize * n)
        }
        ClientMode::Poisson { rate } => {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(SimError::Invalid(format!("Poisson rate: expected a finite number > 0, got {rate}")));
            }
            let gap = rand_distr::Exp::new(rate).map_err(|e| SimError::Invalid(format!("Poisson rate {rate}: {e}")))?;
            let mut arrivals = ChaCha8Rng::seed_from_u64(cell.seed);
            arrivals.set_stream(2);
            let stream = catalog.stream(cell.seed).map_err(stream_error)?;
            (Clients::Poisson { stream, gap, rng: arrivals, max_slots: MAX_OPEN_LOOP_REQUESTS }, 0)
        }
        ClientMode::Replay { connections, warmup_requests, pace } => {
            let Some(requests) = &cell.requests else {
                return Err(SimError::Invalid("replay clients need the trace's requests".into()));
            };
            if connections == 0 {
                return Err(SimError::Invalid("replay connections: expected an integer >= 1, got 0".into()));
            }
            if let Some(bad) = requests.iter().find(|o| o.index() >= catalog.len()) {
                return Err(SimError::Invalid(format!(
                    "workload {}: request for object {} of a {}-object catalog",
                    cell.workload,
                    bad.0,
                    catalog.len()
                )));
            }
            let paced = match (pace, &schedule) {
                (None, _) => None,
                (Some(pace), Some(schedule)) => {
                    if pace.max_outstanding == 0 {
                        return Err(SimError::Invalid("max_outstanding: expected an integer >= 1, got 0".into()));
                    }
                    if schedule.len() != requests.len() {
                        return Err(SimError::Invalid(format!(
                            "workload {}: {} request times for {} requests",
                            cell.workload,
                            schedule.len(),
                            requests.len()
                        )));
                    }
                    Some(Paced {
                        schedule: schedule.iter(),
                        due: None,
                        idle: std::collections::VecDeque::new(),
                        max_outstanding: pace.max_outstanding as usize,
                    })
                }
                (Some(_), None) => unreachable!("the schedule is built for a paced replay"),
            };
            (Clients::Replay { requests, next: 0, warmup: warmup_requests, paced }, connections as usize)
        }
        ClientMode::OnOff { per_server } => {
            if per_server == 0 {
                return Err(SimError::Invalid("users per server: expected an integer >= 1, got 0".into()));
            }
            let users = (0..per_server as usize * n)
                .map(|i| {
                    SurgeUser::new(catalog, SurgeUserParams::default(), dl7_core::seed::sub_seed(cell.seed, i as u64))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(stream_error)?;
            let count = users.len();
            (Clients::OnOff { users }, count)
        }
    };

    let window = match cell.clients {
        // Opened when the first measured request is sent; closed at the last response.
        ClientMode::Replay { warmup_requests, .. } => {
            Window { start: if warmup_requests == 0 { 0 } else { u64::MAX }, end: u64::MAX }
        }
        _ => {
            let start = seconds(cell.warmup_s);
            Window { start, end: start + seconds(cell.measure_s).max(1) }
        }
    };
    let cache_bytes = cell.cache_bytes_per_server.unwrap_or(hw.server.cache_bytes);
    let max_object = cell.max_object_bytes.unwrap_or(dl7_core::hardware::default_max_object_bytes(cache_bytes));
    // The warm-up's intervals are negative; a replay charts its measured requests only.
    let begin = if replay { 0 } else { -(window.start as i64) };
    let series = Recorder::new(seconds(cell.interval_s).max(1), begin);
    let cluster = Cluster::new(
        cell.arch,
        total,
        window,
        &keys,
        sizes,
        costs,
        object_costs,
        policies,
        load_views,
        (cache_bytes, max_object),
        clients,
        series,
    );
    let mut sim = Simulation::new(cluster);
    let paced = schedule.is_some();
    // A timed replay's pool: at most `max_outstanding` connections, as in the load generator.
    let pool = match cell.clients {
        ClientMode::Replay { pace: Some(p), .. } => connections.min(p.max_outstanding as usize),
        _ => 0,
    };
    let starts = if paced {
        // The pool opens with the replay; requests go out at their instants.
        Vec::new()
    } else if replay {
        (0..connections as u64).map(|c| c * REPLAY_OPEN_GAP_NS).collect()
    } else {
        model::staggered_starts(connections, START_SPREAD_NS, &mut rng)
    };
    let rebuild =
        model::Rebuild { spec: cell.policy.clone(), names: Membership::numbered(total)?, dispatchers, shared };
    let faults = cell.faults.clone();
    sim.init(|cluster, ctx| {
        cluster.schedule_faults(n, faults, rebuild, (cache_bytes, max_object), ctx);
        cluster.start_clients(starts.into_iter(), ctx);
        cluster.start_arrivals(pool, ctx);
    });
    sim.run_until(window.end);
    if replay {
        // The measured replay ends with its last response (at least 1 ns long).
        let c = &mut sim.model;
        c.window.start = c.window.start.min(c.stats.last_completion);
        c.window.end = c.stats.last_completion.max(c.window.start + 1);
    }

    let events = sim.events();
    let c = &sim.model;
    let window = c.window;
    let s = &c.stats;
    let measure_s = window.len() as f64 / 1e9;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let served_total: u64 = s.served_per_owner.iter().sum();
    let served_max = s.served_per_owner.iter().copied().max().unwrap_or(0);
    let nodes = s.served_per_owner.len() as f64;
    let imbalance = if served_total == 0 { 0.0 } else { served_max as f64 * nodes / served_total as f64 };
    let quantile_ms = |q: f64| {
        if s.latency_us.is_empty() {
            0.0
        } else {
            s.latency_us.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let max_of = |it: &mut dyn Iterator<Item = f64>| it.fold(0.0f64, f64::max);
    let row = ResultRow {
        workload: cell.workload.clone(),
        arch: cell.arch.name().to_string(),
        policy: cell.policy.kind.name().to_string(),
        servers: cell.servers,
        seed: cell.seed,
        req_per_s: s.completed as f64 / measure_s,
        mbit_per_s: s.payload_bytes as f64 * 8.0 / 1e6 / measure_s,
        hit_ratio: ratio(s.hits, s.lookups),
        byte_hit_ratio: ratio(s.hit_bytes, s.lookup_bytes),
        p50_ms: quantile_ms(0.5),
        p99_ms: quantile_ms(0.99),
        fe_cpu_util: c.fe_cpu.utilisation(&window),
        fe_nic_util: c.fe_tx.utilisation(&window).max(c.fe_rx.utilisation(&window)),
        max_server_cpu_util: max_of(&mut c.cpu.iter().map(|st| st.utilisation(&window))),
        max_server_nic_util: max_of(
            &mut c.tx.iter().zip(&c.rx).map(|(t, r)| t.utilisation(&window).max(r.utilisation(&window))),
        ),
        imbalance,
        forwarded_frac: ratio(s.forwarded, s.picks),
        cache_bytes: c.caches.iter().map(|cache| cache.used_bytes()).sum(),
        requests: s.completed,
        mode: "sim".to_string(),
        // Every response verifies: only a fault loses requests.
        errors: s.errors,
        replayed: s.replayed,
        dropped: s.dropped,
        moved_frac: None,
        refill_s: None,
    };
    let cached = c.caches.iter().map(|cache| cache.objects()).collect();
    let sim = sim.model;
    let intervals = sim.stats.series.finish(window.len() as i64);
    let mut row = row;
    if let Some(first) = cell.faults.first() {
        row.moved_frac = moved_frac(cell, &keys, &timeline.members)?;
        row.refill_s = dl7_core::timeseries::refill_s(&intervals, cell.interval_s, first.at_s);
    }
    let stats = RunStats {
        events,
        requests: sim.stats.completed_all,
        origin_fetches: sim.stats.fetches,
        cached,
        intervals,
        sent_at: sim.stats.sent_at,
    };
    Ok((row, stats))
}

/// Share of the catalog whose owner (a node) differs between the cell's
/// first membership and `last`: what the schedule's leaves and joins moved,
/// as the dispatchers' policy decides it. `None` for a policy whose pick is
/// not a function of the key alone (stateful or load-aware).
fn moved_frac(cell: &CellSpec, keys: &[RequestKey<'_>], last: &[u32]) -> Result<Option<f64>, SimError> {
    let first: Vec<u32> = (0..cell.servers).collect();
    Ok(dl7_core::fault::moved_frac(&cell.policy, &first, last, keys)?)
}
