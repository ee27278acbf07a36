//! One run from start to finish: a [`CellSpec`] and a [`Hardware`] profile
//! in, a [`ResultRow`] and [`RunStats`] out. The stages, in order: check the
//! cell, set up the cluster (objects, clients, policies), start its clients
//! and fault schedule, warm up, measure, and read the row and the figures
//! off the model.
//!
//! This module only wires the engine and the cluster model together; what
//! happens to a request is `crate::model`'s, and the event loop is
//! `crate::engine`'s. Every random number comes from `cell.seed`, and the
//! stages draw them in a fixed order, so a run stays a pure function of its
//! inputs.

use dl7_core::fault::Timeline;
use dl7_core::timeseries::Recorder;
use dl7_core::{costs, HashKey, Membership, RequestKey, ResultRow};
use dl7_traces::{Catalog, Schedule, SurgeUser, SurgeUserParams};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::engine::{seconds, Simulation};
use crate::model::host::Window;
use crate::model::{self, CacheSpec, Clients, Cluster, Paced};
use crate::{Arch, CellSpec, ClientMode, Hardware, RunStats, SimError};

/// Open-loop slots beyond which Poisson arrivals are dropped (and counted
/// in `dropped`), so an overloaded open-loop run keeps bounded memory.
const MAX_OPEN_LOOP_REQUESTS: usize = 1 << 20;

/// Gap between the openings of replay connections: they open in index order.
const REPLAY_OPEN_GAP_NS: u64 = 1_000;

/// Spread of the closed-loop clients' first requests, so that they do not
/// all start at the same nanosecond.
const START_SPREAD_NS: u64 = 1_000_000;

/// [`crate::simulate_with_stats`]: every stage of one run.
pub(crate) fn simulate_with_stats(cell: &CellSpec, hw: &Hardware) -> Result<(ResultRow, RunStats), SimError> {
    let shape = check(cell)?;
    let (policies, load_views) = model::build_policies(&cell.policy, &shape.members, shape.dispatchers, shape.shared)?;
    let objects = Objects::new(&cell.catalog, cell.hash_key, hw);
    let schedule = timed_schedule(cell)?;
    let (clients, connections) = clients(cell, shape.n, schedule.as_ref())?;
    let window = window(cell);
    let cache = cache_spec(cell, hw);
    // The warm-up's intervals are negative; a replay charts its measured requests only.
    let begin = if shape.replay { 0 } else { -(window.start as i64) };
    let series = Recorder::new(seconds(cell.interval_s).max(1), begin);
    let cluster = Cluster::new(
        cell.arch,
        shape.total,
        window,
        &objects.keys,
        objects.sizes,
        objects.costs,
        objects.object_costs,
        policies,
        load_views,
        cache,
        clients,
        series,
    );
    let mut sim = Simulation::new(cluster);
    start(&mut sim, cell, &shape, connections, schedule.is_some())?;
    warm(&mut sim, &shape);
    measure(&mut sim, &shape);
    let row = row(cell, &sim.model);
    collect(cell, &shape, &objects.keys, sim, row)
}

/// What the checks of a cell found out about it.
struct Shape {
    /// Servers at the start.
    n: usize,
    /// A replay: its window is the replay itself, not a span of the clock.
    replay: bool,
    /// The first membership.
    members: Membership,
    /// The fault schedule's effect on membership and liveness.
    timeline: Timeline,
    /// Every node the fault schedule ever has: the first `n`, then its joins.
    total: usize,
    dispatchers: usize,
    /// One policy instance (and load view) for the whole cluster.
    shared: bool,
}

/// Rejects a cell the model cannot run, before anything is built.
fn check(cell: &CellSpec) -> Result<Shape, SimError> {
    if cell.catalog.is_empty() {
        return Err(SimError::Invalid(format!("workload {}: the catalog has no objects", cell.workload)));
    }
    let max = dl7_core::server::MAX_SERVERS;
    if cell.servers == 0 || cell.servers > max {
        return Err(SimError::Invalid(format!("servers: expected 1 to {max}, got {}", cell.servers)));
    }
    // The client modes' ranges are the core's, the same in every engine.
    cell.clients.validate().map_err(|e| SimError::Invalid(format!("clients.{}: {e}", e.field())))?;
    if !(cell.warmup_s.is_finite() && cell.warmup_s >= 0.0) {
        return Err(SimError::Invalid(format!("warmup_s: expected a finite number >= 0, got {}", cell.warmup_s)));
    }
    if !(cell.interval_s.is_finite() && cell.interval_s > 0.0) {
        return Err(SimError::Invalid(format!("interval_s: expected a finite number > 0, got {}", cell.interval_s)));
    }
    let replay = matches!(cell.clients, ClientMode::Replay { .. });
    let window_ok = cell.measure_s.is_finite() && cell.measure_s > 0.0;
    if !replay && !window_ok {
        return Err(SimError::Invalid(format!("measure_s: expected a finite number > 0, got {}", cell.measure_s)));
    }
    let n = cell.servers as usize;
    let members = Membership::numbered(n)?;
    let shared = cell.shared_state || cell.policy.kind.shared_by_default();
    let timeline =
        Timeline::check(&cell.faults, cell.servers).map_err(|(k, e)| SimError::Invalid(format!("faults[{k}]: {e}")))?;
    let total = timeline.alive.len();
    let dispatchers = match cell.arch {
        Arch::Conventional => 1,
        Arch::Distributed => total,
    };
    Ok(Shape { n, replay, members, timeline, total, dispatchers, shared })
}

/// What the model reads per object, in catalog order, computed once so that
/// no request hashes or prices anything.
struct Objects<'c> {
    keys: Vec<RequestKey<'c>>,
    sizes: Vec<u64>,
    costs: costs::Costs,
    object_costs: Vec<costs::ObjectCosts>,
}

impl<'c> Objects<'c> {
    fn new(catalog: &'c Catalog, hash_key: HashKey, hw: &Hardware) -> Objects<'c> {
        // The real dispatchers hash the same bytes of the same paths.
        let keys = catalog.objects.iter().map(|o| RequestKey::new(hash_key.of(&o.path).as_bytes())).collect();
        let sizes = catalog.objects.iter().map(|o| o.size).collect();
        let costs = costs::Costs::new(hw);
        let object_costs = catalog.objects.iter().map(|o| costs.object(o.size, o.content_type.is_image())).collect();
        Objects { keys, sizes, costs, object_costs }
    }
}

/// A timed replay's send instants (borrowed by its clients for the whole run).
fn timed_schedule(cell: &CellSpec) -> Result<Option<Schedule<'_>>, SimError> {
    let ClientMode::Replay { pace: Some(pace), .. } = cell.clients else { return Ok(None) };
    let times = cell.times.as_deref().map_or(&[][..], |t| &t[..]);
    let s = Schedule::new(times, pace.speed)
        .map_err(|e| SimError::Invalid(format!("workload {}: timed replay: {e}", cell.workload)))?;
    Ok(Some(s))
}

/// The cell's clients, and how many client slots open at the start
/// (connections or users; 0 for open-loop Poisson arrivals).
fn clients<'a>(
    cell: &'a CellSpec,
    n: usize,
    schedule: Option<&'a Schedule<'a>>,
) -> Result<(Clients<'a>, usize), SimError> {
    let catalog = &*cell.catalog;
    let stream_error = |e: dl7_traces::TraceError| SimError::Invalid(format!("workload {}: {e}", cell.workload));
    Ok(match cell.clients {
        ClientMode::Closed { per_server } => {
            (Clients::Closed { stream: catalog.stream(cell.seed).map_err(stream_error)? }, per_server as usize * n)
        }
        ClientMode::Poisson { rate } => {
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
            if let Some(bad) = requests.iter().find(|o| o.index() >= catalog.len()) {
                return Err(SimError::Invalid(format!(
                    "workload {}: request for object {} of a {}-object catalog",
                    cell.workload,
                    bad.0,
                    catalog.len()
                )));
            }
            let paced = match (pace, schedule) {
                (None, _) => None,
                (Some(pace), Some(schedule)) => {
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
            let users = (0..per_server as usize * n)
                .map(|i| {
                    SurgeUser::new(catalog, SurgeUserParams::default(), dl7_core::seed::sub_seed(cell.seed, i as u64))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(stream_error)?;
            let count = users.len();
            (Clients::OnOff { users }, count)
        }
    })
}

/// The measured window on the clock. A replay's is opened when its first
/// measured request is sent and closed at its last response ([`measure`]).
fn window(cell: &CellSpec) -> Window {
    match cell.clients {
        ClientMode::Replay { warmup_requests, .. } => {
            Window { start: if warmup_requests == 0 { 0 } else { u64::MAX }, end: u64::MAX }
        }
        _ => {
            let start = seconds(cell.warmup_s);
            Window { start, end: start + seconds(cell.measure_s).max(1) }
        }
    }
}

/// Every node's cache: the cell's eviction, capacity per server and largest object stored.
fn cache_spec(cell: &CellSpec, hw: &Hardware) -> CacheSpec {
    let bytes = cell.cache_bytes_per_server.unwrap_or(hw.server.cache_bytes);
    let max_object = cell.max_object_bytes.unwrap_or(dl7_core::hardware::default_max_object_bytes(bytes));
    CacheSpec { eviction: cell.eviction, bytes, max_object }
}

/// Schedules the initial events: the fault schedule, the first request of
/// every client slot, and the first open-loop arrival or timed request.
fn start(
    sim: &mut Simulation<Cluster<'_>>,
    cell: &CellSpec,
    shape: &Shape,
    connections: usize,
    paced: bool,
) -> Result<(), SimError> {
    // A timed replay's pool: at most `max_outstanding` connections, as in the load generator.
    let pool = match cell.clients {
        ClientMode::Replay { pace: Some(p), .. } => connections.min(p.max_outstanding as usize),
        _ => 0,
    };
    let starts = if paced {
        // The pool opens with the replay; requests go out at their instants.
        Vec::new()
    } else if shape.replay {
        (0..connections as u64).map(|c| c * REPLAY_OPEN_GAP_NS).collect()
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(cell.seed);
        rng.set_stream(1);
        model::staggered_starts(connections, START_SPREAD_NS, &mut rng)
    };
    let rebuild = model::Rebuild {
        spec: cell.policy.clone(),
        names: Membership::numbered(shape.total)?,
        dispatchers: shape.dispatchers,
        shared: shape.shared,
    };
    let faults = cell.faults.clone();
    let n = shape.n;
    sim.init(|cluster, ctx| {
        cluster.schedule_faults(n, faults, rebuild, ctx);
        cluster.start_clients(starts.into_iter(), ctx);
        cluster.start_arrivals(pool, ctx);
    });
    Ok(())
}

/// Runs the warm-up: up to the window's start on the clock. A replay warms
/// up by requests instead, inside [`measure`].
fn warm(sim: &mut Simulation<Cluster<'_>>, shape: &Shape) {
    if !shape.replay {
        sim.run_until(sim.model.window.start);
    }
}

/// Runs the measured window; a replay's ends with its last response (and
/// is at least 1 ns long).
fn measure(sim: &mut Simulation<Cluster<'_>>, shape: &Shape) {
    sim.run_until(sim.model.window.end);
    if shape.replay {
        let c = &mut sim.model;
        c.window.start = c.window.start.min(c.stats.last_completion);
        c.window.end = c.stats.last_completion.max(c.window.start + 1);
    }
}

/// The result row, as far as the model's statistics give it (the fault
/// figures come in [`collect`]).
fn row(cell: &CellSpec, c: &Cluster<'_>) -> ResultRow {
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
    ResultRow {
        workload: cell.workload.clone(),
        arch: cell.arch.name().to_string(),
        policy: cell.policy.kind.name().to_string(),
        eviction: cell.eviction,
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
    }
}

/// Finishes the row with the fault figures (what the schedule moved, how
/// long the caches took to refill) and gathers the run's other figures.
fn collect(
    cell: &CellSpec,
    shape: &Shape,
    keys: &[RequestKey<'_>],
    sim: Simulation<Cluster<'_>>,
    mut row: ResultRow,
) -> Result<(ResultRow, RunStats), SimError> {
    let events = sim.events();
    let c = sim.model;
    let cached = c.caches.iter().map(|cache| cache.objects()).collect();
    let intervals = c.stats.series.finish(c.window.len() as i64);
    if let Some(first) = cell.faults.first() {
        row.moved_frac = moved_frac(cell, keys, &shape.timeline.members)?;
        row.refill_s = dl7_core::timeseries::refill_s(&intervals, cell.interval_s, first.at_s);
    }
    let stats = RunStats {
        events,
        requests: c.stats.completed_all,
        origin_fetches: c.stats.fetches,
        cached,
        intervals,
        sent_at: c.stats.sent_at,
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
