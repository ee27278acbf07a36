//! One cell of an experiment run as processes, wherever a [`Placement`]
//! puts them, and measured into the same [`ResultRow`] the simulator gives.
//!
//! For a cell it starts a fresh origin, N nodes and (unless the lab's kernel
//! direct routing is the distributed front end) a front end, each a `dl7`
//! child process started from a typed config file ([`dl7_services::spec`]); warms
//! the caches with a first load run (timed clients only); runs the measured
//! load; reads every service's counters, CPU time and the lab's NIC counters
//! when the window opens and when it closes; stops everything and turns the
//! deltas into the row. A lab with several client hosts drives the load
//! from all of them, each its share of the connections, merged into one
//! report ([`merge_reports`]). A replay (`clients.mode = "replay"`) has no warm-up
//! run: its window is the whole replay, and the nodes' cache contents are
//! read at the end ([`CellOutcome::caches`]). The per-interval figures
//! (`timeseries.csv`) are the load generator's ([`LoadReport::intervals`]):
//! what the clients saw, on their clock.
//!
//! This module knows how to run a cell, not what an experiment file says:
//! the application turns a plan into [`RealCell`]s.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dl7_core::eviction::Eviction;
use dl7_core::{Arch, ClientMode, Hardware, PolicySpec, ResultRow};

use dl7_services::admin::fetch_stats;
use dl7_services::load::LoadReport;
use dl7_services::metrics::Stats;
use dl7_services::spec::{
    AdminToken, FrontMode, FrontSpec, HashKey, HealthSpec, LimitsSpec, LoadSpec, NodeSpec, OriginSpec, ServiceSpec,
};

use crate::lab::{LabPlan, NicCounters, Role};
use crate::nodes::{handoff_paths, NodeSet};
use crate::placement::{FrontEnd, Layout, Placement};
use crate::process::{reserve_port, start_service, Host, Proc};
use crate::TestbedError;

/// The real engines' settings (an experiment's `[real]` table).
#[derive(Debug, Clone, PartialEq)]
pub struct RealSettings {
    /// Candidates tried after a failed owner.
    pub fallbacks: usize,
    /// Deadline of one upstream fetch, milliseconds.
    pub upstream_timeout_ms: u64,
    /// Time allowed for a request head, milliseconds.
    pub head_timeout_ms: u64,
    /// The load generator's per-request deadline, milliseconds.
    pub request_timeout_ms: u64,
    /// Most client connections per service.
    pub max_connections: usize,
    /// Delay the origin adds to every response, milliseconds.
    pub origin_delay_ms: u64,
    /// Nodes charge the hardware profile's costs to an emulated CPU.
    pub emulate_cpu: bool,
    /// Threads serving each service process (`None`: one per core).
    pub worker_threads: Option<usize>,
    /// Active health checks of every dispatcher and front end.
    pub health: HealthSpec,
    /// A web server already running that the nodes fetch from, in place
    /// of the `dl7 origin` a cell starts (`None`).
    pub origin: Option<ExternalOrigin>,
    /// Seconds over which a node that has just come up takes a growing share of its keys (0: off).
    pub rampup_s: f64,
    /// The token the services ask of membership changes, which the fault
    /// schedule then sends (`None`: no check).
    pub admin_token: Option<AdminToken>,
}

/// An origin the experiment does not start (`[real] origin =
/// "http://HOST:PORT"`): nginx, Apache, any HTTP/1.1 server serving the
/// workload's paths (`dl7 trace materialize` writes them). Its name is
/// resolved where the sweep runs, when each cell starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalOrigin {
    /// Host name or address.
    pub host: String,
    /// Port (80 when the URL names none).
    pub port: u16,
}

impl std::str::FromStr for ExternalOrigin {
    type Err = String;

    /// Reads `http://HOST[:PORT]` (an IPv6 address in brackets), with no path.
    fn from_str(url: &str) -> Result<Self, String> {
        let expected = "expected http://HOST:PORT";
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(("https", _)) => {
                return Err("https: the nodes speak plain HTTP to their origin; put them behind the TLS end".into())
            }
            _ => return Err(format!("{url:?}: {expected}")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(format!("{url:?}: {expected}, with no path, query or user"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| format!("{url:?}: port {p:?} is not 1 to 65535"))?,
            ),
            _ => (authority, 80),
        };
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(format!("{url:?}: {expected}"));
        }
        Ok(ExternalOrigin { host: host.to_string(), port })
    }
}

impl std::fmt::Display for ExternalOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "http://[{}]:{}", self.host, self.port),
            false => write!(f, "http://{}:{}", self.host, self.port),
        }
    }
}

impl ExternalOrigin {
    /// Its address, resolved now; with `probe`, also checked to accept a
    /// connection, so that a stopped web server is named before any node
    /// starts. (Only where the nodes run on this host: a lab's origin may be
    /// reachable from the nodes' network and not from the sweep's.)
    async fn reach(&self, probe: bool) -> Result<SocketAddr, TestbedError> {
        let failed = |why: String| TestbedError::ExternalOrigin { origin: self.to_string(), why };
        let addr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| failed(e.to_string()))?
            .next()
            .ok_or_else(|| failed("the name has no address".into()))?;
        if !probe {
            return Ok(addr);
        }
        match tokio::time::timeout(READY_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(addr),
            Ok(Err(e)) => Err(failed(format!("{addr}: {e}"))),
            Err(_) => Err(failed(format!("{addr}: no answer in {READY_TIMEOUT:?}"))),
        }
    }
}

impl Default for RealSettings {
    fn default() -> Self {
        let limits = LimitsSpec::default();
        RealSettings {
            fallbacks: dl7_services::defaults::DEFAULT_FALLBACKS,
            upstream_timeout_ms: limits.upstream_timeout_ms,
            head_timeout_ms: limits.head_timeout_ms,
            request_timeout_ms: dl7_services::defaults::DEFAULT_REQUEST_TIMEOUT_MS,
            max_connections: limits.max_connections,
            origin_delay_ms: 0,
            emulate_cpu: false,
            worker_threads: None,
            health: HealthSpec::default(),
            origin: None,
            rampup_s: 0.0,
            admin_token: None,
        }
    }
}

impl RealSettings {
    /// The limits every service of a cell gets.
    pub fn limits(&self) -> LimitsSpec {
        LimitsSpec {
            head_timeout_ms: self.head_timeout_ms,
            max_connections: self.max_connections,
            upstream_timeout_ms: self.upstream_timeout_ms,
            worker_threads: self.worker_threads,
        }
    }
}

/// One run of a cell, as the real engines need it.
#[derive(Debug, Clone)]
pub struct RealCell {
    /// Workload label, copied into the row.
    pub workload: String,
    /// How the services read it: a built-in name or a workload/trace file path.
    pub workload_source: String,
    pub arch: Arch,
    pub policy: PolicySpec,
    /// What the policy hashes (the simulator hashes the same).
    pub hash_key: HashKey,
    pub servers: u32,
    /// The run's seed (the load's request streams).
    pub seed: u64,
    pub clients: ClientMode,
    /// Seconds of the warm-up run (timed clients).
    pub warmup_s: f64,
    /// Seconds measured (timed clients).
    pub measure_s: f64,
    /// Length of the load report's intervals (`timeseries.csv`), seconds.
    pub interval_s: f64,
    /// Cache capacity per node, bytes.
    pub cache_bytes: u64,
    /// Which object a full cache drops, at every node.
    pub eviction: Eviction,
    /// Largest object a node caches, bytes (larger ones stream through).
    pub max_object_bytes: u64,
    pub settings: RealSettings,
    /// The hardware profile whose costs the nodes' emulated CPU charges
    /// (`None`: no emulation).
    pub emulate_cpu: Option<Hardware>,
    /// The fault schedule, in time order (checked against `servers`).
    pub faults: Vec<dl7_core::Fault>,
}

impl RealCell {
    /// Every node the cell will have: its servers, then those its schedule joins.
    pub fn node_count(&self) -> usize {
        dl7_core::fault::Timeline::node_count(&self.faults, self.servers) as usize
    }
}

/// What one cell measured, beyond its result row.
#[derive(Debug, Clone)]
pub struct CellOutcome {
    /// The `results.csv` row.
    pub row: ResultRow,
    /// The measured load run's report.
    pub load: LoadReport,
    /// Bytes the front end wrote to clients during the window.
    pub front_bytes_out: u64,
    /// CPU microseconds per request of the front end.
    pub front_cpu_per_request_us: f64,
    /// CPU microseconds per request of all nodes together.
    pub nodes_cpu_per_request_us: f64,
    /// Per lab host, its NIC bytes over the measured window (empty on loopback).
    pub nic: Vec<NicUse>,
    /// A replay's end state: per node, its `/_dl7/cache` page (`object_id path bytes` lines, sorted).
    pub caches: Vec<String>,
    /// Every process's peak resident memory over the run, read just before it stops.
    pub memory: Vec<PeakMemory>,
}

/// One process's peak resident memory (`VmHWM`) over a cell's run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PeakMemory {
    /// `origin`, `node`, `front` or `load`.
    pub role: &'static str,
    /// The node's index; 0 for the other roles.
    pub index: u32,
    /// Peak resident bytes.
    pub peak_rss_bytes: u64,
}

/// One lab host's NIC over a cell's measured window, from the kernel's
/// counters on its bridge port (Ethernet frames: headers included,
/// preamble and inter-frame gap not).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NicUse {
    /// Short host name (`fe`, `origin`, `n1`, `c1`).
    pub host: String,
    /// Role name (`front`, `origin`, `node`, `client`).
    pub role: &'static str,
    /// Bytes the host transmitted.
    pub tx_bytes: u64,
    /// Bytes the host received.
    pub rx_bytes: u64,
    /// Seconds between the two counter reads.
    pub window_s: f64,
    /// The shaped rate of its link per direction (Mbit/s), 0 when unshaped.
    pub link_mbit_per_s: f64,
}

impl NicUse {
    /// The busier direction's share of the link rate (0 when unshaped).
    pub fn utilisation(&self) -> f64 {
        if self.link_mbit_per_s <= 0.0 || self.window_s <= 0.0 {
            return 0.0;
        }
        self.tx_bytes.max(self.rx_bytes) as f64 * 8.0 / self.window_s / (self.link_mbit_per_s * 1e6)
    }
}

/// Longest in-run warm-up of the measured load run (seconds).
const MAX_RAMP_S: f64 = 2.0;
/// How long a service may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// The sub-seed index of the warm-up run's streams (far from any connection index).
const WARMUP_STREAM: u64 = u64::MAX;
/// Open-loop (Poisson) connections per server. The simulator's open loop has
/// unbounded slots; a real client needs connections, and the paper's 63 per
/// server is what the closed loop already shows a cluster sustains.
const OPEN_LOOP_CONNECTIONS_PER_SERVER: usize = 63;
/// Deadline of one `/stats` read (a shaped lab link can hold it for seconds).
const STATS_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest replay: its load run stops after this many seconds.
const MAX_REPLAY_S: f64 = 3600.0;
/// Base of the sub-seed indices of the second and later client hosts' loads.
const CLIENT_STREAM: u64 = u64::MAX / 2;

/// What is read at the start and the end of the measured window.
struct Snapshot {
    nodes: Vec<Stats>,
    front: Option<Stats>,
    cpu_front: f64,
    cpu_nodes: Vec<f64>,
    nic: Vec<(String, NicCounters)>,
    at: tokio::time::Instant,
}

/// Seed of client `j`'s load when a lab has several: client 0 keeps the
/// run's seed (one client gives the same streams as before), the others get
/// sub-seeds far from the connection indices.
fn client_seed(seed: u64, j: usize) -> u64 {
    if j == 0 {
        seed
    } else {
        dl7_core::seed::sub_seed(seed, CLIENT_STREAM + j as u64)
    }
}

/// One load report from the clients' reports: counts and rates add up,
/// the window is the longest, percentiles are the request-weighted mean of
/// the clients' (they drive the same cluster through the same VIP, so their
/// distributions are alike), the maximum and the peak memory are the largest.
// The struct update names every field today; a field the report gains later
// takes the first client's value until it is merged here.
#[allow(clippy::needless_update)]
pub fn merge_reports(reports: Vec<LoadReport>) -> LoadReport {
    let mut it = reports.into_iter();
    let Some(first) = it.next() else { return LoadReport::default() };
    let rest: Vec<LoadReport> = it.collect();
    if rest.is_empty() {
        return first;
    }
    let all: Vec<&LoadReport> = std::iter::once(&first).chain(&rest).collect();
    let total = all.iter().map(|r| r.requests).sum::<u64>();
    let weighted = |f: fn(&LoadReport) -> f64| {
        if total == 0 {
            all.iter().map(|r| f(r)).fold(0.0, f64::max)
        } else {
            all.iter().map(|r| f(r) * r.requests as f64).sum::<f64>() / total as f64
        }
    };
    let mut errors_by_kind = first.errors_by_kind.clone();
    let mut served_by = first.served_by.clone();
    for r in &rest {
        for (k, v) in &r.errors_by_kind {
            *errors_by_kind.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &r.served_by {
            *served_by.entry(*k).or_default() += v;
        }
    }
    LoadReport {
        requests: total,
        payload_bytes: all.iter().map(|r| r.payload_bytes).sum(),
        object_bytes: all.iter().map(|r| r.object_bytes).sum(),
        window_s: all.iter().map(|r| r.window_s).fold(0.0, f64::max),
        req_per_s: all.iter().map(|r| r.req_per_s).sum(),
        mbit_per_s: all.iter().map(|r| r.mbit_per_s).sum(),
        p50_ms: weighted(|r| r.p50_ms),
        p90_ms: weighted(|r| r.p90_ms),
        p99_ms: weighted(|r| r.p99_ms),
        p999_ms: weighted(|r| r.p999_ms),
        max_ms: all.iter().map(|r| r.max_ms).fold(0.0, f64::max),
        errors: all.iter().map(|r| r.errors).sum(),
        errors_by_kind,
        unfinished: all.iter().map(|r| r.unfinished).sum(),
        retried: all.iter().map(|r| r.retried).sum(),
        served_by,
        replayed: all.iter().map(|r| r.replayed).sum(),
        dropped: all.iter().map(|r| r.dropped).sum(),
        intervals: merge_intervals(&all),
        // One figure per role in memory.csv: the largest client process.
        peak_rss_bytes: all.iter().map(|r| r.peak_rss_bytes).max().unwrap_or(0),
        ..first.clone()
    }
}

/// The clients' intervals added up, interval by interval (each client counts
/// from its own window's start; they start together). The hit ratio is
/// weighted by responses; the p99 is the largest client's (an upper bound,
/// as for the merged report's percentiles).
fn merge_intervals(all: &[&LoadReport]) -> Vec<dl7_core::timeseries::Interval> {
    let mut by_start = std::collections::BTreeMap::<i64, dl7_core::timeseries::Interval>::new();
    for i in all.iter().flat_map(|r| &r.intervals) {
        // Interval starts are multiples of the interval: microseconds key them exactly.
        let key = (i.t_s * 1e6).round() as i64;
        let m = by_start.entry(key).or_insert_with(|| dl7_core::timeseries::Interval {
            t_s: i.t_s,
            req_per_s: 0.0,
            mbit_per_s: 0.0,
            hit_ratio: 0.0,
            errors: 0,
            p99_ms: 0.0,
        });
        let total = m.req_per_s + i.req_per_s;
        if total > 0.0 {
            m.hit_ratio = (m.hit_ratio * m.req_per_s + i.hit_ratio * i.req_per_s) / total;
        }
        m.req_per_s = total;
        m.mbit_per_s += i.mbit_per_s;
        m.errors += i.errors;
        m.p99_ms = m.p99_ms.max(i.p99_ms);
    }
    by_start.into_values().collect()
}

/// A cell's processes once started, and how each is reached.
struct Running {
    /// The `dl7 origin` started (`None`: an external one).
    origin: Option<Proc>,
    origin_addr: SocketAddr,
    nodes: tokio::sync::Mutex<NodeSet>,
    node_addrs: Vec<SocketAddr>,
    front: Option<Proc>,
    /// Where the clients connect: the front end, or the kernel front end's VIP.
    target: SocketAddr,
    /// The front end's admin listener (membership changes, `/stats`).
    front_admin: Option<SocketAddr>,
    /// Stops the kernel front end's director when dropped.
    _director: StopOnDrop,
}

/// Runs one cell: start, warm up, measure (with its faults), stop, the row.
/// `exe` is the `dl7` binary; `scratch` a directory for its config files and
/// Unix sockets.
pub async fn run_cell(
    exe: &Path,
    cell: &RealCell,
    placement: &Arc<dyn Placement>,
    scratch: &Path,
) -> Result<CellOutcome, TestbedError> {
    let layout = placement.layout(cell)?;
    let running = start(exe, cell, placement.as_ref(), &layout, scratch).await?;
    let load = Loads { exe, cell, layout: &layout, target: running.target, scratch };
    warm_up(cell, &load).await?;
    let (load, before, after, moved_frac) = measure_window(exe, cell, placement, &running, &load, scratch).await?;
    let (caches, memory) = stop(running, cell.clients, &load).await?;
    let nic_window = after.at.duration_since(before.at).as_secs_f64();
    let nic = placement.lab().map(|p| nic_use(p, &before.nic, &after.nic, nic_window)).unwrap_or_default();
    let mut outcome = row(cell, placement.mode(), &before, &after, load, nic, caches);
    outcome.memory = memory;
    outcome.row.moved_frac = moved_frac;
    if let Some(first) = cell.faults.first() {
        // The load generator's intervals start with its window, as the schedule's instants do.
        outcome.row.refill_s = dl7_core::timeseries::refill_s(&outcome.load.intervals, cell.interval_s, first.at_s);
    }
    Ok(outcome)
}

/// Starts the origin, every node of the cell, its front end (or the kernel
/// front end's director), each once it is ready.
async fn start(
    exe: &Path,
    cell: &RealCell,
    placement: &dyn Placement,
    layout: &Layout,
    scratch: &Path,
) -> Result<Running, TestbedError> {
    let s = &cell.settings;
    let limits = s.limits();
    let bind = |h: &Host| SocketAddr::new(h.bind.unwrap_or(h.addr), h.port.unwrap_or(0));
    // Where a role is reached: its address with the port it reported.
    let reach = |h: &Host, bound: SocketAddr| SocketAddr::new(h.addr, bound.port());

    let (origin, origin_addr) = match &s.origin {
        Some(external) => (None, external.reach(placement.local_handoff()).await?),
        None => {
            let origin_spec = ServiceSpec::Origin(OriginSpec {
                workload: cell.workload_source.clone(),
                listen: bind(&layout.origin),
                delay_ms: s.origin_delay_ms,
                admin: None,
                limits: limits.clone(),
            });
            let mut origin = start_service(exe, &layout.origin, "origin", &origin_spec, scratch).await?;
            let addr = reach(&layout.origin, origin.ready(READY_TIMEOUT).await?.listen);
            (Some(origin), addr)
        }
    };

    // Nodes: addresses fixed first, since every node must know all of them,
    // the ones a fault schedule adds later included.
    let n = cell.servers as usize;
    let total = cell.node_count();
    // Membership changes arrive on the nodes' admin listeners.
    let admin_needed = cell.faults.iter().any(|f| f.action.changes_membership());
    let mut node_addrs = Vec::new();
    for h in &layout.nodes {
        let port = match h.port {
            Some(p) => p,
            None => reserve_port(h.addr).map_err(|source| TestbedError::Port { addr: h.addr, source })?,
        };
        node_addrs.push(SocketAddr::new(h.addr, port));
    }
    // On one host the distributed front end hands sockets over Unix sockets.
    let local_handoff = placement.local_handoff() && cell.arch == Arch::Distributed;
    let handoff: Vec<PathBuf> = handoff_paths(scratch, total);
    let specs = layout
        .nodes
        .iter()
        .enumerate()
        .map(|(i, h)| NodeSpec {
            id: i as u32,
            nodes: node_addrs.clone(),
            listen: h.bind.filter(|&b| b != node_addrs[i].ip()).map(|b| SocketAddr::new(b, node_addrs[i].port())),
            origin: origin_addr,
            policy: cell.policy.clone(),
            cache_bytes: cell.cache_bytes,
            eviction: cell.eviction,
            max_object_bytes: cell.max_object_bytes,
            fallbacks: s.fallbacks,
            hash_key: cell.hash_key,
            rampup_s: s.rampup_s,
            handoff: local_handoff.then(|| handoff[i].clone()),
            // One instance for the cluster: node 0 keeps it and answers owner lookups.
            directory: cell.policy.kind.shared_by_default().then(|| node_addrs[0]),
            emulate_cpu: cell.emulate_cpu.clone(),
            admin: admin_needed.then(|| SocketAddr::new(h.bind.unwrap_or(h.addr), 0)),
            admin_token: s.admin_token.clone(),
            limits: limits.clone(),
            health: s.health,
            members: None,
        })
        .collect();
    let mut set = NodeSet::new(specs, layout.nodes.clone(), node_addrs.clone(), cell.servers, s.admin_token.clone());
    for i in 0..n {
        set.start(exe, scratch, i).await?;
    }

    let (front, target, front_admin) = match &layout.front {
        FrontEnd::Dl7(fh) => {
            let mode = match cell.arch {
                Arch::Conventional => FrontMode::Conventional,
                Arch::Distributed => FrontMode::Distributed,
            };
            let spec = ServiceSpec::Front(FrontSpec {
                mode,
                nodes: node_addrs.clone(),
                handoff: if mode == FrontMode::Distributed { handoff.clone() } else { Vec::new() },
                policy: cell.policy.clone(),
                listen: bind(fh),
                fallbacks: s.fallbacks,
                hash_key: cell.hash_key,
                rampup_s: s.rampup_s,
                admin: Some(SocketAddr::new(fh.bind.unwrap_or(fh.addr), 0)),
                admin_token: s.admin_token.clone(),
                limits: limits.clone(),
                health: s.health,
                members: (total > n).then(|| (0..n).collect()),
            });
            let mut front = start_service(exe, fh, "front", &spec, scratch).await?;
            let ready = front.ready(READY_TIMEOUT).await?;
            let admin = ready.admin.ok_or_else(|| front.failed("no admin address in its ready line"))?;
            (Some(front), reach(fh, ready.listen), Some(reach(fh, admin)))
        }
        FrontEnd::Kernel(vip) => (None, *vip, None),
    };
    // The kernel front end's health checks and membership: a dead or departed
    // node leaves its forwarding, a joined one enters it (ldirectord's job).
    let (director_stop, stop) = tokio::sync::watch::channel(false);
    if let (FrontEnd::Kernel(_), Some(reroute)) = (&layout.front, placement.director()) {
        crate::director::spawn(reroute, node_addrs.clone(), s.health, set.members(), stop).await?;
    }
    Ok(Running {
        origin,
        origin_addr,
        nodes: tokio::sync::Mutex::new(set),
        node_addrs,
        front,
        target,
        front_admin,
        _director: StopOnDrop(director_stop),
    })
}

/// How a cell's load runs are started: every client host at once, each its
/// share of the connections, one merged report.
struct Loads<'a> {
    exe: &'a Path,
    cell: &'a RealCell,
    layout: &'a Layout,
    target: SocketAddr,
    scratch: &'a Path,
}

impl Loads<'_> {
    /// Client host `j` of the layout's: its share of the connections (and of an open loop's rate).
    fn spec(&self, seed: u64, warmup_s: f64, duration_s: f64, j: usize, label: String) -> LoadSpec {
        let cell = self.cell;
        let n = cell.servers as usize;
        let k = self.layout.loads.len();
        let (connections, rate, warmup_requests, pace) = match cell.clients {
            ClientMode::Closed { per_server } | ClientMode::OnOff { per_server } => {
                (per_server as usize * n, None, 0, None)
            }
            // Open loop: connections enough to keep the rate when responses are slow; each sends its share.
            ClientMode::Poisson { rate } => (OPEN_LOOP_CONNECTIONS_PER_SERVER * n, Some(rate), 0, None),
            ClientMode::Replay { connections, warmup_requests, pace } => {
                (connections as usize, None, warmup_requests, pace)
            }
        };
        let share = connections / k + usize::from(j < connections % k);
        let rate = rate.map(|r| r * share as f64 / connections.max(1) as f64);
        LoadSpec {
            target: self.target,
            workload: cell.workload_source.clone(),
            replay: matches!(cell.clients, ClientMode::Replay { .. }),
            warmup_requests,
            seed: client_seed(seed, j),
            connections: share,
            warmup_s,
            duration_s,
            rate,
            timeout_ms: cell.settings.request_timeout_ms,
            speed: pace.map(|p| p.speed),
            max_outstanding: pace.map_or(dl7_core::Pace::DEFAULT_MAX_OUTSTANDING, |p| p.max_outstanding) as usize,
            interval_s: cell.interval_s,
            worker_threads: None,
            label: Some(label),
        }
    }

    /// One load run from every client host; `limit` bounds the wait for each report.
    async fn run(
        &self,
        seed: u64,
        warmup_s: f64,
        duration_s: f64,
        name: &str,
        limit: Duration,
    ) -> Result<LoadReport, TestbedError> {
        let k = self.layout.loads.len();
        let mut procs = Vec::new();
        for (j, lh) in self.layout.loads.iter().enumerate() {
            let name = if k == 1 { name.to_string() } else { format!("{name}-c{}", j + 1) };
            let spec = self.spec(seed, warmup_s, duration_s, j, name.clone());
            if spec.connections == 0 {
                continue;
            }
            procs.push(start_service(self.exe, lh, &name, &ServiceSpec::Load(spec), self.scratch).await?);
        }
        let mut reports = Vec::new();
        for mut p in procs {
            let line = p.line("dl7-result ", limit).await?;
            reports.push(
                serde_json::from_str::<LoadReport>(&line["dl7-result ".len()..])
                    .map_err(|e| p.failed(format!("unreadable result: {e}")))?,
            );
        }
        Ok(merge_reports(reports))
    }
}

/// Warm-up: a separate load run, so the measured window starts with warm
/// caches (timed clients; a replay's window is the whole replay).
async fn warm_up(cell: &RealCell, loads: &Loads<'_>) -> Result<(), TestbedError> {
    if matches!(cell.clients, ClientMode::Replay { .. }) || cell.warmup_s <= 0.0 {
        return Ok(());
    }
    let limit = Duration::from_secs_f64(cell.warmup_s) + Duration::from_secs(60);
    // Its own request streams: the measured run's connections use sub-seeds 0, 1, ...
    let seed = dl7_core::seed::sub_seed(cell.seed, WARMUP_STREAM);
    loads.run(seed, 0.0, cell.warmup_s, "warmup", limit).await.map(drop)
}

/// Everything the row is made of, read at one instant.
async fn snapshot(placement: &Arc<dyn Placement>, running: &Running) -> Result<Snapshot, TestbedError> {
    // Counters and CPU first, at the instant: a scrape can wait behind a
    // full shaped link for a second or more.
    let p = Arc::clone(placement);
    let nic = tokio::task::spawn_blocking(move || p.counters()).await??;
    let at = tokio::time::Instant::now();
    let cpu_front = match &running.front {
        Some(p) => p.cpu_seconds().await.unwrap_or(0.0),
        None => 0.0,
    };
    let set = running.nodes.lock().await;
    let cpu_nodes = set.cpu_seconds().await;
    let node_counters = set.stats().await?;
    drop(set);
    let front = match running.front_admin {
        Some(a) => Some(stats(a).await?),
        None => None,
    };
    Ok(Snapshot { nodes: node_counters, front, cpu_front, cpu_nodes, nic, at })
}

/// The measured window: the load run, the snapshots at its start and end,
/// and the fault schedule with the share of owners it moved.
async fn measure_window(
    exe: &Path,
    cell: &RealCell,
    placement: &Arc<dyn Placement>,
    running: &Running,
    loads: &Loads<'_>,
    scratch: &Path,
) -> Result<(LoadReport, Snapshot, Snapshot, Option<f64>), TestbedError> {
    if matches!(cell.clients, ClientMode::Replay { .. }) {
        let before = snapshot(placement, running).await?;
        // A timed replay lasts its schedule, then its slowest responses.
        let schedule_s = match cell.clients {
            ClientMode::Replay { pace: Some(p), .. } => timed_replay_s(&cell.workload_source, p.speed)?,
            _ => 0.0,
        };
        let limit = Duration::from_secs_f64(schedule_s + MAX_REPLAY_S + 60.0);
        let load = loads.run(cell.seed, 0.0, MAX_REPLAY_S, "load", limit).await?;
        // The load process has exited: every response it verified is fully written.
        let after = snapshot(placement, running).await?;
        return Ok((load, before, after, None));
    }
    // The measured run starts cold (new connections, empty queues), so it
    // first ramps up for up to 2 s of its own warm-up; the snapshots are taken
    // when its window opens and when it closes (the process keeps running
    // after that to finish the requests still out, which must not count).
    let ramp = cell.warmup_s.min(MAX_RAMP_S);
    let n = cell.servers as usize;
    // Owners as a node that never fails sees them, before the faults and after
    // (for a policy whose pick is a function of the key: the simulator's rule).
    // Read before the load starts: under load the lookups would delay the schedule.
    let pure = || {
        dl7_core::Membership::numbered(n)
            .and_then(|m| cell.policy.build(&m))
            .is_ok_and(|p| p.state() == dl7_core::policy::State::Pure)
    };
    let probe = stable_node(&cell.faults, cell.servers)
        .filter(|_| !cell.faults.is_empty() && pure())
        .map(|i| running.node_addrs[i]);
    // The catalog's paths, for the owners a fault schedule moves.
    let paths: Vec<String> = match probe {
        None => Vec::new(),
        Some(_) => {
            let catalog = dl7_traces::workload::resolve(&cell.workload_source)?;
            catalog.objects.iter().take(MAX_OWNER_PATHS).map(|o| o.path.clone()).collect()
        }
    };
    let owners_before = match probe {
        Some(a) => Some(crate::faults::owners(a, &paths).await?),
        None => None,
    };
    let limit = Duration::from_secs_f64(ramp + cell.measure_s) + Duration::from_secs(60);
    let t0 = tokio::time::Instant::now();
    let window_start = t0 + Duration::from_secs_f64(ramp);
    let window_end = t0 + Duration::from_secs_f64(ramp + cell.measure_s);
    let window_snapshots = async {
        tokio::time::sleep_until(window_start).await;
        let before = snapshot(placement, running).await?;
        tokio::time::sleep_until(window_end).await;
        let after = snapshot(placement, running).await?;
        Ok::<_, TestbedError>((before, after))
    };
    let schedule = async {
        if cell.faults.is_empty() {
            return Ok(None);
        }
        crate::faults::run_schedule(&running.nodes, &cell.faults, window_start, exe, scratch, running.front_admin)
            .await?;
        tokio::time::sleep_until(window_end).await;
        Ok::<_, TestbedError>(match (probe, owners_before) {
            (Some(a), Some(before)) => {
                Some(dl7_core::fault::disruption(&before, &crate::faults::owners(a, &paths).await?))
            }
            _ => None,
        })
    };
    let (load, snaps, moved) =
        tokio::join!(loads.run(cell.seed, ramp, cell.measure_s, "load", limit), window_snapshots, schedule);
    let (before, after) = snaps?;
    Ok((load?, before, after, moved?))
}

/// Reads a replay's cache contents and every process's peak memory (its
/// last word before it stops), then stops everything in front-to-back
/// order: the clients' entry point first.
async fn stop(
    running: Running,
    clients: ClientMode,
    load: &LoadReport,
) -> Result<(Vec<String>, Vec<PeakMemory>), TestbedError> {
    let Running { origin, origin_addr, nodes, node_addrs, front, front_admin, _director, .. } = running;
    let mut set = nodes.into_inner();
    let mut caches = Vec::new();
    if matches!(clients, ClientMode::Replay { .. }) {
        for &a in &node_addrs {
            caches.push(fetch_page(a, dl7_services::admin::CACHE_PATH).await?);
        }
    }
    let mut memory = Vec::new();
    let peak = |role, index, s: Stats| PeakMemory { role, index, peak_rss_bytes: s.peak_rss_bytes };
    if origin.is_some() {
        memory.push(peak("origin", 0, stats(origin_addr).await?));
    }
    for (i, &a) in node_addrs.iter().enumerate() {
        if set.procs[i].is_some() {
            memory.push(peak("node", i as u32, stats(a).await?));
        }
    }
    if let Some(a) = front_admin {
        memory.push(peak("front", 0, stats(a).await?));
    }
    memory.push(PeakMemory { role: "load", index: 0, peak_rss_bytes: load.peak_rss_bytes });
    drop(_director);
    drop(front);
    set.procs.clear();
    drop(origin);
    Ok((caches, memory))
}

/// The first of the cell's nodes that no fault kills or removes: the one
/// whose dispatcher is asked for owners before and after the schedule.
fn stable_node(faults: &[dl7_core::Fault], servers: u32) -> Option<usize> {
    (0..servers)
        .find(|&i| !faults.iter().any(|f| f.node == i && f.action != dl7_core::FaultAction::Join))
        .map(|i| i as usize)
}

/// Most catalog paths whose owners `moved_frac` compares (the first ones).
const MAX_OWNER_PATHS: usize = 100_000;

/// Tells whatever watches it to stop when dropped (an early return included).
struct StopOnDrop(tokio::sync::watch::Sender<bool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// Turns the two snapshots and the load report into the row.
fn row(
    cell: &RealCell,
    mode: &'static str,
    before: &Snapshot,
    after: &Snapshot,
    load: LoadReport,
    nic: Vec<NicUse>,
    caches: Vec<String>,
) -> CellOutcome {
    let n = cell.servers as usize;
    let window = load.window_s.max(1e-9);
    // Counter deltas over the window, summed over the nodes.
    let pairs = || after.nodes.iter().zip(&before.nodes);
    let sum = |counter: fn(&Stats) -> u64| -> f64 { pairs().map(|(a, b)| delta(a, b, counter)).sum() };
    let hits = sum(|s| s.hits);
    let misses = sum(|s| s.misses);
    let owner: Vec<f64> = pairs().map(|(a, b)| delta(a, b, |s| s.owner_requests)).collect();
    let total_owner = owner.iter().sum::<f64>();
    let max_owner = owner.iter().cloned().fold(0.0, f64::max);
    let received = sum(|s| s.requests) - sum(|s| s.hop_requests);
    let owner_bytes = sum(|s| s.owner_bytes);
    let util_of = |role: Role, take: usize| {
        let name = role.name();
        nic.iter().filter(|u| u.role == name).take(take).map(NicUse::utilisation).fold(0.0, f64::max)
    };
    let cpu_front = after.cpu_front - before.cpu_front;
    let cpu_nodes: Vec<f64> = after.cpu_nodes.iter().zip(&before.cpu_nodes).map(|(a, b)| a - b).collect();
    // The emulated CPU's busy time when the nodes emulate one, else the processes' real CPU time.
    let node_busy: Vec<f64> = if cell.emulate_cpu.is_some() {
        pairs().map(|(a, b)| delta(a, b, |s| s.emulated_cpu_ns) / 1e9).collect()
    } else {
        cpu_nodes.clone()
    };
    let cache_bytes = after.nodes.iter().map(|s| s.cache_bytes).sum();
    let front_bytes_out = match (&after.front, &before.front) {
        (Some(a), Some(b)) => a.bytes_out.saturating_sub(b.bytes_out),
        _ => 0,
    };
    let row = ResultRow {
        workload: cell.workload.clone(),
        arch: cell.arch.name().into(),
        policy: cell.policy.kind.name().into(),
        eviction: cell.eviction,
        servers: cell.servers,
        seed: cell.seed,
        req_per_s: load.req_per_s,
        mbit_per_s: load.mbit_per_s,
        hit_ratio: if hits + misses > 0.0 { hits / (hits + misses) } else { 0.0 },
        byte_hit_ratio: if owner_bytes > 0.0 { sum(|s| s.hit_bytes) / owner_bytes } else { 0.0 },
        p50_ms: load.p50_ms,
        p99_ms: load.p99_ms,
        fe_cpu_util: cpu_front / window,
        fe_nic_util: util_of(Role::Front, 1),
        max_server_cpu_util: node_busy.iter().cloned().fold(0.0, f64::max) / window,
        // Plan nodes are in index order; cell nodes are the first `n` of them.
        max_server_nic_util: util_of(Role::Node, n),
        // Max over mean, computed as the simulator does (max x N / total) so that
        // equal counts give equal figures, bit for bit.
        imbalance: if total_owner > 0.0 { max_owner * owner.len() as f64 / total_owner } else { 0.0 },
        forwarded_frac: if received > 0.0 { sum(|s| s.forwarded) / received } else { 0.0 },
        cache_bytes,
        requests: load.requests,
        mode: mode.into(),
        errors: load.errors,
        replayed: load.replayed,
        dropped: load.dropped,
        moved_frac: None,
        refill_s: None,
    };
    let reqs = load.requests.max(1) as f64;
    CellOutcome {
        row,
        front_bytes_out,
        front_cpu_per_request_us: cpu_front / reqs * 1e6,
        nodes_cpu_per_request_us: cpu_nodes.iter().sum::<f64>() / reqs * 1e6,
        load,
        nic,
        caches,
        memory: Vec::new(),
    }
}

/// Seconds from a timed replay's first request to its last one's send instant.
fn timed_replay_s(trace: &str, speed: f64) -> Result<f64, TestbedError> {
    let t = dl7_traces::Trace::resolve(trace)?;
    let schedule = dl7_traces::Schedule::new(&t.times, speed)
        .map_err(|source| TestbedError::Schedule { trace: trace.to_string(), source })?;
    Ok(schedule.duration_s())
}

/// A counter's growth from `before` to `after`.
fn delta(after: &Stats, before: &Stats, counter: fn(&Stats) -> u64) -> f64 {
    counter(after).saturating_sub(counter(before)) as f64
}

/// A service's `/stats` at `addr`.
async fn stats(addr: SocketAddr) -> Result<Stats, TestbedError> {
    fetch_stats(addr, STATS_TIMEOUT).await.map_err(TestbedError::admin)
}

/// The page at `path` of the service at `addr`, as text.
async fn fetch_page(addr: SocketAddr, path: &str) -> Result<String, TestbedError> {
    let failed = |e: &dyn std::fmt::Display| TestbedError::Exchange {
        addr,
        what: path.to_string(),
        message: format!("{path} of {addr}: {e}"),
    };
    let mut c = dl7_services::http::ClientConn::connect(addr, Duration::from_secs(2)).await.map_err(|e| failed(&e))?;
    let mut body = Vec::new();
    let head = tokio::time::timeout(Duration::from_secs(5), c.get(path, false, &mut body))
        .await
        .map_err(|_| failed(&"timed out"))?
        .map_err(|e| failed(&e))?;
    if head.status != 200 {
        return Err(failed(&format_args!("status {}", head.status)));
    }
    String::from_utf8(body).map_err(|e| failed(&e))
}

/// Counter deltas per host of `plan`, with each host's role and link rate.
fn nic_use(
    plan: &LabPlan,
    before: &[(String, NicCounters)],
    after: &[(String, NicCounters)],
    window_s: f64,
) -> Vec<NicUse> {
    plan.hosts
        .iter()
        .filter_map(|h| {
            let b = before.iter().find(|(s, _)| *s == h.short)?.1;
            let a = after.iter().find(|(s, _)| *s == h.short)?.1;
            Some(NicUse {
                host: h.short.clone(),
                role: h.role.name(),
                tx_bytes: a.tx_bytes.saturating_sub(b.tx_bytes),
                rx_bytes: a.rx_bytes.saturating_sub(b.rx_bytes),
                window_s,
                link_mbit_per_s: h.shaping.map_or(0.0, |s| s.rate.0 as f64 / 1e6),
            })
        })
        .collect()
}

/// A scratch directory for config files and Unix sockets (short path: sun_path is 108 bytes).
pub fn scratch_dir(tag: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("dl7-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_reports_merge_into_one() {
        let a = LoadReport {
            requests: 300,
            payload_bytes: 3000,
            window_s: 10.0,
            req_per_s: 30.0,
            p50_ms: 10.0,
            p99_ms: 100.0,
            max_ms: 150.0,
            errors: 1,
            errors_by_kind: [("timeout".to_string(), 1)].into(),
            served_by: [(0, 200), (1, 100)].into(),
            ..LoadReport::default()
        };
        let b = LoadReport {
            requests: 100,
            payload_bytes: 1000,
            window_s: 10.5,
            req_per_s: 9.5,
            p50_ms: 30.0,
            p99_ms: 300.0,
            max_ms: 400.0,
            errors: 2,
            errors_by_kind: [("timeout".to_string(), 2)].into(),
            served_by: [(1, 100)].into(),
            ..LoadReport::default()
        };
        let m = merge_reports(vec![a.clone(), b]);
        assert_eq!((m.requests, m.payload_bytes, m.errors), (400, 4000, 3));
        assert_eq!((m.window_s, m.req_per_s, m.max_ms), (10.5, 39.5, 400.0));
        assert_eq!((m.p50_ms, m.p99_ms), (15.0, 150.0));
        assert_eq!(m.errors_by_kind["timeout"], 3);
        assert_eq!(m.served_by, [(0, 200), (1, 200)].into());
        assert_eq!(merge_reports(vec![a.clone()]), a, "one client's report is kept as it is");
    }

    #[test]
    fn client_hosts_get_distinct_seeds_and_the_first_keeps_the_runs() {
        assert_eq!(client_seed(7, 0), 7);
        assert_ne!(client_seed(7, 1), client_seed(7, 2));
        assert_ne!(client_seed(7, 1), 7);
    }

    #[test]
    fn nic_utilisation_is_the_busier_direction_over_the_shaped_rate() {
        let u = NicUse {
            host: "fe".into(),
            role: "front",
            tx_bytes: 5_000_000,
            rx_bytes: 12_500_000,
            window_s: 10.0,
            link_mbit_per_s: 10.0,
        };
        assert!((u.utilisation() - 1.0).abs() < 1e-12);
        assert_eq!(NicUse { link_mbit_per_s: 0.0, ..u }.utilisation(), 0.0);
    }
}
