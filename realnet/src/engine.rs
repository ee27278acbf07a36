//! The real engines: one cell of an experiment run as processes, on this
//! machine's loopback ([`Placement::Local`]) or in the emulated lab
//! ([`Placement::Lab`]), and measured into the same [`ResultRow`] the
//! simulator gives.
//!
//! For a cell it starts a fresh origin, N nodes and (unless the lab's kernel
//! direct routing is the distributed front end) a front end, each a `dl7`
//! child process started from a typed config file ([`crate::spec`]); warms
//! the caches with a first load run (timed clients only); runs the measured
//! load; reads every service's counters, CPU time and the lab's NIC counters
//! when the window opens and when it closes; stops everything and turns the
//! deltas into the row. A replay (`clients.mode = "replay"`) has no warm-up
//! run: its window is the whole replay, and the nodes' cache contents are
//! read at the end ([`CellOutcome::caches`]).
//!
//! This module knows how to run a cell, not what an experiment file says:
//! the application turns a plan into [`RealCell`]s.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dl7_core::{Arch, ClientMode, Hardware, PolicySpec, ResultRow};

use crate::admin::fetch_stats;
use crate::front::FrontMode;
use crate::health::HealthSpec;
use crate::lab::{LabPlan, NicCounters, Role};
use crate::launcher::{cpu_seconds, reserve_port, Host, Proc};
use crate::load::LoadReport;
use crate::metrics::Stats;
use crate::spec::{FrontSpec, LimitsSpec, LoadSpec, NodeSpec, OriginSpec, ServiceSpec};

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
    /// Active health checks of every dispatcher and front end.
    pub health: HealthSpec,
}

impl Default for RealSettings {
    fn default() -> Self {
        RealSettings {
            fallbacks: 2,
            upstream_timeout_ms: 2000,
            head_timeout_ms: 5000,
            request_timeout_ms: 5000,
            max_connections: 4096,
            origin_delay_ms: 0,
            emulate_cpu: false,
            health: HealthSpec::default(),
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
    pub servers: u32,
    /// The run's seed (the load's request streams).
    pub seed: u64,
    pub clients: ClientMode,
    /// Seconds of the warm-up run (timed clients).
    pub warmup_s: f64,
    /// Seconds measured (timed clients).
    pub measure_s: f64,
    /// Cache capacity per node, bytes.
    pub cache_bytes: u64,
    /// Largest object a node caches, bytes (larger ones stream through).
    pub max_object_bytes: u64,
    pub settings: RealSettings,
    /// The hardware profile whose costs the nodes' emulated CPU charges
    /// (`None`: no emulation).
    pub emulate_cpu: Option<Hardware>,
}

/// Where the processes run.
#[derive(Debug, Clone)]
pub enum Placement {
    /// Everything on 127.0.0.1, ephemeral ports; the distributed front end
    /// hands sockets to the nodes over Unix sockets (`mode = real`).
    Local,
    /// In the emulated lab (`mode = real-lab`): the origin, nodes and load in
    /// their namespaces; a conventional cell runs dl7's front end on the VIP,
    /// a distributed one uses the lab's kernel direct routing over the first
    /// N nodes. The caller switches the lab's front end per cell.
    Lab(LabPlan),
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
    /// A replay's end state: per node, its `/cache` page (`object_id path bytes` lines, sorted).
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

/// What is read at the start and the end of the measured window.
struct Snapshot {
    nodes: Vec<Stats>,
    front: Option<Stats>,
    cpu_front: f64,
    cpu_nodes: Vec<f64>,
    nic: Vec<(String, NicCounters)>,
    at: tokio::time::Instant,
}

/// A cell's front end.
enum FrontEnd {
    /// dl7's front end process on this host.
    Dl7(Host),
    /// The lab's kernel direct routing, reached at the VIP.
    Kernel(SocketAddr),
}

/// Where each role of a cell runs and how it is reached.
struct Layout {
    origin: Host,
    nodes: Vec<Host>,
    front: FrontEnd,
    load: Host,
    lab: Option<LabPlan>,
}

impl Layout {
    fn new(placement: &Placement, cell: &RealCell) -> Result<Layout, String> {
        let n = cell.servers as usize;
        match placement {
            Placement::Local => Ok(Layout {
                origin: Host::default(),
                nodes: vec![Host::default(); n],
                front: FrontEnd::Dl7(Host::default()),
                load: Host::default(),
                lab: None,
            }),
            Placement::Lab(plan) => {
                let at = |h: &crate::lab::Host, bind: Option<IpAddr>| Host {
                    netns: Some(h.netns.clone()),
                    addr: IpAddr::V4(h.addr),
                    bind,
                    port: Some(plan.port),
                };
                let nodes: Vec<Host> =
                    plan.hosts_of(Role::Node).take(n).map(|h| at(h, Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))).collect();
                if nodes.len() < n {
                    return Err(format!("the lab has {} nodes, the cell needs {n}", nodes.len()));
                }
                let client = plan.hosts_of(Role::Client).next().ok_or("the lab has no client host")?;
                let vip = SocketAddr::new(IpAddr::V4(plan.vip), plan.port);
                let front = match cell.arch {
                    // dl7's L7 box on the VIP in the front end's namespace.
                    Arch::Conventional => FrontEnd::Dl7(Host {
                        netns: Some(plan.front().netns.clone()),
                        addr: IpAddr::V4(plan.vip),
                        bind: None,
                        port: Some(plan.port),
                    }),
                    Arch::Distributed => FrontEnd::Kernel(vip),
                };
                Ok(Layout {
                    origin: at(plan.origin(), None),
                    nodes,
                    front,
                    load: Host { netns: Some(client.netns.clone()), ..Host::default() },
                    lab: Some(plan.clone()),
                })
            }
        }
    }
}

/// Writes `spec` into `dir` and starts it on `host`.
fn start(exe: &Path, host: &Host, name: &str, spec: &ServiceSpec, dir: &Path) -> Result<Proc, String> {
    let path = dir.join(format!("{name}.json"));
    spec.write(&path)?;
    let args = vec![spec.role().to_string(), "--config".to_string(), path.display().to_string()];
    Proc::spawn(exe, host, name, &args).map_err(|e| format!("{name}: cannot start: {e}"))
}

/// Runs one cell: start, warm up, measure, stop. `exe` is the `dl7` binary;
/// `scratch` a directory for its config files and Unix sockets.
pub async fn run_cell(
    exe: &Path,
    cell: &RealCell,
    placement: &Placement,
    scratch: &Path,
) -> Result<CellOutcome, String> {
    let layout = Layout::new(placement, cell)?;
    let s = &cell.settings;
    let limits = LimitsSpec {
        head_timeout_ms: s.head_timeout_ms,
        max_connections: s.max_connections,
        upstream_timeout_ms: s.upstream_timeout_ms,
    };
    let bind = |h: &Host| SocketAddr::new(h.bind.unwrap_or(h.addr), h.port.unwrap_or(0));
    // Where a role is reached: its address with the port it reported.
    let reach = |h: &Host, bound: SocketAddr| SocketAddr::new(h.addr, bound.port());

    let origin_spec = ServiceSpec::Origin(OriginSpec {
        workload: cell.workload_source.clone(),
        listen: bind(&layout.origin),
        delay_ms: s.origin_delay_ms,
        admin: None,
        limits: limits.clone(),
    });
    let mut origin = start(exe, &layout.origin, "origin", &origin_spec, scratch)?;
    let origin_addr = reach(&layout.origin, origin.ready(READY_TIMEOUT).await?.listen);

    // Nodes: addresses fixed first, since every node must know all of them.
    let n = cell.servers as usize;
    let mut node_addrs = Vec::new();
    for h in &layout.nodes {
        let port = match h.port {
            Some(p) => p,
            None => reserve_port(h.addr).map_err(|e| format!("cannot reserve a port on {}: {e}", h.addr))?,
        };
        node_addrs.push(SocketAddr::new(h.addr, port));
    }
    // On one host the distributed front end hands sockets over Unix sockets.
    let local_handoff = matches!(placement, Placement::Local) && cell.arch == Arch::Distributed;
    let handoff: Vec<PathBuf> = (0..n).map(|i| scratch.join(format!("node{i}.sock"))).collect();
    let mut nodes = Vec::new();
    for (i, h) in layout.nodes.iter().enumerate() {
        let spec = ServiceSpec::Node(NodeSpec {
            id: i as u32,
            nodes: node_addrs.clone(),
            listen: h.bind.filter(|&b| b != node_addrs[i].ip()).map(|b| SocketAddr::new(b, node_addrs[i].port())),
            origin: origin_addr,
            policy: cell.policy.clone(),
            cache_bytes: cell.cache_bytes,
            max_object_bytes: cell.max_object_bytes,
            fallbacks: s.fallbacks,
            handoff: local_handoff.then(|| handoff[i].clone()),
            // One instance for the cluster: node 0 keeps it and answers owner lookups.
            directory: cell.policy.kind.shared_by_default().then(|| node_addrs[0]),
            emulate_cpu: cell.emulate_cpu.clone(),
            admin: None,
            limits: limits.clone(),
            health: s.health,
        });
        nodes.push(start(exe, h, &format!("node{i}"), &spec, scratch)?);
    }
    for p in &mut nodes {
        p.ready(READY_TIMEOUT).await?;
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
                admin: Some(SocketAddr::new(fh.bind.unwrap_or(fh.addr), 0)),
                limits: limits.clone(),
                health: s.health,
            });
            let mut front = start(exe, fh, "front", &spec, scratch)?;
            let ready = front.ready(READY_TIMEOUT).await?;
            let admin = ready.admin.ok_or("front: no admin address in its ready line")?;
            (Some(front), reach(fh, ready.listen), Some(reach(fh, admin)))
        }
        FrontEnd::Kernel(vip) => (None, *vip, None),
    };
    // The kernel front end's health checks: a dead node leaves its map (ldirectord's job).
    let (director_stop, stop) = tokio::sync::watch::channel(false);
    let director_stop = StopOnDrop(director_stop);
    if let (FrontEnd::Kernel(_), Some(plan)) = (&layout.front, &layout.lab) {
        crate::lab::director::spawn(plan.clone(), node_addrs.clone(), s.health, stop);
    }

    let replay = matches!(cell.clients, ClientMode::Replay { .. });
    let load_spec = |seed: u64, warmup_s: f64, duration_s: f64| {
        let (connections, rate, warmup_requests) = match cell.clients {
            ClientMode::Closed { per_server } | ClientMode::OnOff { per_server } => (per_server as usize * n, None, 0),
            // Open loop: connections enough to keep the rate when responses are slow; each sends its share.
            ClientMode::Poisson { rate } => (OPEN_LOOP_CONNECTIONS_PER_SERVER * n, Some(rate), 0),
            ClientMode::Replay { connections, warmup_requests } => (connections as usize, None, warmup_requests),
        };
        ServiceSpec::Load(LoadSpec {
            target,
            workload: cell.workload_source.clone(),
            replay,
            warmup_requests,
            seed,
            connections,
            warmup_s,
            duration_s,
            rate,
            timeout_ms: s.request_timeout_ms,
        })
    };
    let run_load = |spec: ServiceSpec, name: &'static str, limit: Duration| {
        let lh = layout.load.clone();
        async move {
            let mut p = start(exe, &lh, name, &spec, scratch)?;
            let line = p.line("dl7-result ", limit).await?;
            serde_json::from_str::<LoadReport>(&line["dl7-result ".len()..])
                .map_err(|e| format!("{name}: unreadable result: {e}"))
        }
    };
    // Warm-up: a separate load run, so the measured window starts with warm caches.
    if !replay && cell.warmup_s > 0.0 {
        let limit = Duration::from_secs_f64(cell.warmup_s) + Duration::from_secs(60);
        // Its own request streams: the measured run's connections use sub-seeds 0, 1, ...
        let seed = dl7_core::seed::sub_seed(cell.seed, WARMUP_STREAM);
        run_load(load_spec(seed, 0.0, cell.warmup_s), "warmup", limit).await?;
    }
    let cpu = |p: &Proc| p.pid().and_then(cpu_seconds).unwrap_or(0.0);
    // Everything the row is made of, read at one instant.
    let snapshot = || async {
        // Counters and CPU first, at the instant: a scrape can wait behind a
        // full shaped link for a second or more.
        let nic = match &layout.lab {
            Some(p) => crate::lab::read_counters(p).map_err(|e| format!("lab counters: {e}"))?,
            None => Vec::new(),
        };
        let at = tokio::time::Instant::now();
        let (cpu_front, cpu_nodes) = (front.as_ref().map_or(0.0, cpu), nodes.iter().map(cpu).collect());
        let mut node_counters = Vec::new();
        for &a in &node_addrs {
            node_counters.push(fetch_stats(a, STATS_TIMEOUT).await?);
        }
        let front = match front_admin {
            Some(a) => Some(fetch_stats(a, STATS_TIMEOUT).await?),
            None => None,
        };
        Ok::<_, String>(Snapshot { nodes: node_counters, front, cpu_front, cpu_nodes, nic, at })
    };
    let (load, before, after) = if replay {
        let before = snapshot().await?;
        let load =
            run_load(load_spec(cell.seed, 0.0, MAX_REPLAY_S), "load", Duration::from_secs_f64(MAX_REPLAY_S + 60.0))
                .await?;
        // The load process has exited: every response it verified is fully written.
        let after = snapshot().await?;
        (load, before, after)
    } else {
        // The measured run starts cold (new connections, empty queues), so it
        // first ramps up for up to 2 s of its own warm-up; the snapshots are taken
        // when its window opens and when it closes (the process keeps running
        // after that to finish the requests still out, which must not count).
        let ramp = cell.warmup_s.min(MAX_RAMP_S);
        let limit = Duration::from_secs_f64(ramp + cell.measure_s) + Duration::from_secs(60);
        let t0 = tokio::time::Instant::now();
        let window_snapshots = async {
            tokio::time::sleep_until(t0 + Duration::from_secs_f64(ramp)).await;
            let before = snapshot().await?;
            tokio::time::sleep_until(t0 + Duration::from_secs_f64(ramp + cell.measure_s)).await;
            let after = snapshot().await?;
            Ok::<_, String>((before, after))
        };
        let (load, snaps) =
            tokio::join!(run_load(load_spec(cell.seed, ramp, cell.measure_s), "load", limit), window_snapshots);
        let (before, after) = snaps?;
        (load?, before, after)
    };
    let caches = if replay {
        let mut pages = Vec::new();
        for &a in &node_addrs {
            pages.push(fetch_page(a, "/cache").await?);
        }
        pages
    } else {
        Vec::new()
    };

    // Peak memory of every process, its last word before it stops (the load's is in its report).
    let mut memory = Vec::new();
    let peak = |role, index, s: Stats| PeakMemory { role, index, peak_rss_bytes: s.peak_rss_bytes };
    memory.push(peak("origin", 0, fetch_stats(origin_addr, STATS_TIMEOUT).await?));
    for (i, &a) in node_addrs.iter().enumerate() {
        memory.push(peak("node", i as u32, fetch_stats(a, STATS_TIMEOUT).await?));
    }
    if let Some(a) = front_admin {
        memory.push(peak("front", 0, fetch_stats(a, STATS_TIMEOUT).await?));
    }
    memory.push(PeakMemory { role: "load", index: 0, peak_rss_bytes: load.peak_rss_bytes });

    // Stop in front-to-back order: clients' entry point first.
    drop(director_stop);
    drop(front);
    drop(nodes);
    drop(origin);

    let nic_window = after.at.duration_since(before.at).as_secs_f64();
    let nic = layout.lab.as_ref().map(|p| nic_use(p, &before.nic, &after.nic, nic_window)).unwrap_or_default();
    let mut outcome = measure(cell, &layout, &before, &after, load, nic, caches);
    outcome.memory = memory;
    Ok(outcome)
}

/// Tells whatever watches it to stop when dropped (an early return included).
struct StopOnDrop(tokio::sync::watch::Sender<bool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// Turns the two snapshots and the load report into the row.
fn measure(
    cell: &RealCell,
    layout: &Layout,
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
        imbalance: if total_owner > 0.0 { max_owner * n as f64 / total_owner } else { 0.0 },
        forwarded_frac: if received > 0.0 { sum(|s| s.forwarded) / received } else { 0.0 },
        cache_bytes,
        requests: load.requests,
        mode: if layout.lab.is_some() { "real-lab" } else { "real" }.into(),
        errors: load.errors,
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

/// A counter's growth from `before` to `after`.
fn delta(after: &Stats, before: &Stats, counter: fn(&Stats) -> u64) -> f64 {
    counter(after).saturating_sub(counter(before)) as f64
}

async fn fetch_page(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut c = crate::http::ClientConn::connect(addr, Duration::from_secs(2))
        .await
        .map_err(|e| format!("{path} of {addr}: {e}"))?;
    let mut body = Vec::new();
    let head = tokio::time::timeout(Duration::from_secs(5), c.get(path, false, &mut body))
        .await
        .map_err(|_| format!("{path} of {addr}: timed out"))?
        .map_err(|e| format!("{path} of {addr}: {e}"))?;
    if head.status != 200 {
        return Err(format!("{path} of {addr}: status {}", head.status));
    }
    String::from_utf8(body).map_err(|e| format!("{path} of {addr}: {e}"))
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
