//! `dl7 cluster FILE.toml`: run the real cluster as processes and measure it.
//!
//! For every cell of the sweep (servers x policies x archs x seeds) it starts
//! a fresh origin, N nodes and a front end (each a `dl7` child process, see
//! [`crate::launcher`]), warms the caches with a first load run, runs the
//! measured load (which ramps up for up to 2 s of its own before its window
//! opens), reads every service's `/stats`, CPU time and the lab's NIC
//! counters when the window opens and when it closes, stops everything and
//! turns the deltas into a [`ResultRow`].
//!
//! The cluster file (`deny_unknown_fields`; defaults in brackets):
//! ```toml
//! name = "real-local"            # output: reports/<name>/results.csv
//! workload = "surge100"          # built-in name or workload/trace file path
//! seeds = [1]                    # [1]; one run per seed
//! servers = [1, 2, 4]
//! policies = ["md5", "rr"]       # core policy names; ht_rr_shared: node 0 is the directory
//! archs = ["conventional", "distributed"]   # or "relay"
//! connections_per_server = 63    # [63]; or `connections = N` in total
//! warmup_s = 1.0                 # [1.0]
//! duration_s = 5.0               # [5.0]
//! # rate = 2000.0                # open loop, total req/s; absent = closed loop
//! cache_mb = 64.0                # [64] per node
//! distill = false                # [false] gzip text objects at miss time
//! origin_delay_ms = 0            # [0]
//! fallbacks = 2                  # [2] candidates tried after a failed owner
//! upstream_timeout_ms = 2000     # [2000]
//! head_timeout_ms = 5000         # [5000]
//! request_timeout_ms = 5000      # [5000] load generator's per-request deadline
//! max_connections = 4096         # [4096] per service
//! # external_front = "198.18.0.250:8080"  # start no front end: load targets this
//!                                # balancer you run yourself (nftables/IPVS, HAProxy)
//! [params]                       # optional policy parameters
//! mod_ch = ["points=100"]
//! [node_cpu]                     # optional emulated node CPU (dl7_realnet::node::CpuCosts), all [0] = off
//! parse_us = 15377.0             # receiver per client request; also request_us, hop_us,
//!                                # frame_us, copy_ns_per_byte, miss_us, poll_ns_per_open
//! [hosts]                        # optional; every role defaults to 127.0.0.1, no netns
//! origin = { netns = "dl7-o", addr = "198.18.0.1", port = 8000 }
//! front  = { netns = "dl7-f", addr = "198.18.0.2" }
//! load   = { netns = "dl7-c" }
//! nodes  = [{ netns = "dl7-n1", addr = "198.18.0.11", bind = "0.0.0.0" }, { netns = "dl7-n2", addr = "198.18.0.12" }]
//! ```
//! Node `i` runs on `hosts.nodes[i]` when given; `addr` is where peers and
//! the front end reach it, `bind` (default `addr`) what it listens on. In a namespace a node binds
//! port 3128 unless `port` says otherwise (the launcher cannot probe ports
//! there); the distributed architecture hands sockets over Unix sockets, so
//! it is only direct return when front and nodes share a kernel.
//!
//! Rows say `mode = "real-lab"` when any role runs in a network namespace,
//! `real` otherwise.
//!
//! Utilisation columns: CPU from `/proc/<pid>/stat` deltas over the measured
//! window, as a fraction of one core (for the nodes, the emulated CPU's busy
//! time instead when `[node_cpu]` is set). NIC utilisation needs `lab =
//! "LAB.toml"` (relative to the cluster file): the kernel's byte counters of
//! every lab host's bridge port are read just before the measured load run
//! starts and `duration_s` later, when its window closes ([`CellOutcome::nic`],
//! written to `nic.csv`), and a
//! host's utilisation is its busier direction's bytes x 8 / that interval /
//! its link's shaped rate from the lab file (0 for an unshaped link or
//! without `lab`). `fe_nic_util` is the front end's; `max_server_nic_util`
//! the busiest of the cell's nodes (the lab's first N).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dl7_core::{Membership, Params, PolicyKind, PolicySpec, ResultRow};
use serde::Deserialize;

use crate::front::FrontMode;
use crate::lab::{LabPlan, NicCounters, Role};
use crate::launcher::{cpu_seconds, reserve_port, Host, Proc};
use crate::load::LoadReport;
use crate::metrics::Stats;
use crate::node::CpuCosts;

/// The cluster file as written; every field is described in the module
/// documentation's example.
#[allow(missing_docs)]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub name: String,
    pub workload: String,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    pub servers: Vec<usize>,
    pub policies: Vec<String>,
    pub archs: Vec<String>,
    #[serde(default)]
    pub connections: Option<usize>,
    #[serde(default)]
    pub connections_per_server: Option<usize>,
    #[serde(default = "default_warmup")]
    pub warmup_s: f64,
    #[serde(default = "default_duration")]
    pub duration_s: f64,
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default = "default_cache_mb")]
    pub cache_mb: f64,
    #[serde(default)]
    pub distill: bool,
    #[serde(default)]
    pub origin_delay_ms: u64,
    #[serde(default = "default_fallbacks")]
    pub fallbacks: usize,
    #[serde(default = "default_upstream_ms")]
    pub upstream_timeout_ms: u64,
    #[serde(default = "default_head_ms")]
    pub head_timeout_ms: u64,
    #[serde(default = "default_head_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "default_max_conn")]
    pub max_connections: usize,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub external_front: Option<SocketAddr>,
    #[serde(default)]
    pub hosts: Hosts,
    #[serde(default)]
    pub node_cpu: CpuCosts,
    #[serde(default)]
    pub lab: Option<PathBuf>,
}

fn default_seeds() -> Vec<u64> {
    vec![1]
}
fn default_warmup() -> f64 {
    1.0
}
fn default_duration() -> f64 {
    5.0
}
fn default_cache_mb() -> f64 {
    64.0
}
fn default_fallbacks() -> usize {
    2
}
fn default_upstream_ms() -> u64 {
    2000
}
fn default_head_ms() -> u64 {
    5000
}
fn default_max_conn() -> usize {
    4096
}

/// Per-role placement (see [`Host`]); `nodes[i]` places node `i`.
#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hosts {
    #[serde(default)]
    pub origin: Option<Host>,
    #[serde(default)]
    pub front: Option<Host>,
    #[serde(default)]
    pub load: Option<Host>,
    #[serde(default)]
    pub nodes: Vec<Host>,
}

/// One point of the sweep.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Number of nodes.
    pub servers: usize,
    /// The policy every dispatcher builds.
    pub policy: PolicySpec,
    /// The architecture.
    pub mode: FrontMode,
    /// Seed of the measured load run.
    pub seed: u64,
}

impl ClusterFile {
    /// Parses and validates a cluster file; errors name the file and field.
    pub fn parse(text: &str, file: &str) -> Result<Self, String> {
        let f: ClusterFile = toml::from_str(text).map_err(|e| format!("{file}: {}", e.to_string().trim()))?;
        f.validate().map_err(|e| format!("{file}: {e}"))?;
        Ok(f)
    }

    /// Reads and parses `path`; a relative `lab` path is taken from the file's directory.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut f = Self::parse(&text, &path.display().to_string())?;
        if let (Some(lab), Some(dir)) = (&f.lab, path.parent()) {
            if lab.is_relative() {
                f.lab = Some(dir.join(lab));
            }
        }
        Ok(f)
    }

    /// True when some role runs in a network namespace: the rows say `real-lab`.
    pub fn in_lab(&self) -> bool {
        let h = &self.hosts;
        [&h.origin, &h.front, &h.load].into_iter().flatten().chain(&h.nodes).any(|x| x.netns.is_some())
    }

    /// The plan of the lab named by `lab` (for its NIC counters and link rates), if any.
    pub fn lab_plan(&self) -> Result<Option<LabPlan>, String> {
        let Some(path) = &self.lab else { return Ok(None) };
        let lab = crate::lab::LabConfig::load(path).map_err(|e| format!("lab: {e}"))?;
        Ok(Some(LabPlan::new(&lab)))
    }

    /// Checks every field (called by [`ClusterFile::parse`]; call again after overriding fields).
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name == ".." {
            return Err(format!("name: expected a plain directory name, got {:?}", self.name));
        }
        if self.servers.is_empty() || self.servers.iter().any(|&n| n == 0 || n > 256) {
            return Err(format!("servers: expected a non-empty list of counts in 1..=256, got {:?}", self.servers));
        }
        if self.seeds.is_empty() {
            return Err("seeds: expected at least one seed".into());
        }
        for (k, v) in [("warmup_s", self.warmup_s), ("duration_s", self.duration_s), ("cache_mb", self.cache_mb)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{k}: expected a non-negative number, got {v}"));
            }
        }
        if self.duration_s <= 0.0 {
            return Err("duration_s: expected a positive number of seconds".into());
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!("rate: expected a positive number of requests/s, got {r}"));
            }
        }
        match (self.connections, self.connections_per_server) {
            (Some(_), Some(_)) => return Err("connections and connections_per_server: give one, not both".into()),
            (Some(0), _) | (_, Some(0)) => return Err("connections: expected at least 1".into()),
            _ => {}
        }
        if self.archs.is_empty() {
            return Err("archs: expected at least one of conventional, distributed, relay".into());
        }
        for a in &self.archs {
            a.parse::<FrontMode>().map_err(|e| format!("archs: {e}"))?;
        }
        if self.policies.is_empty() {
            return Err("policies: expected at least one policy name".into());
        }
        for k in self.params.keys() {
            if !self.policies.contains(k) {
                return Err(format!("params.{k}: no such policy in `policies`"));
            }
        }
        for p in &self.policies {
            let spec = self.policy_spec(p)?;
            for &n in &self.servers {
                spec.build(&Membership::numbered(n).map_err(|e| e.to_string())?)
                    .map_err(|e| format!("policies: {p} with {n} servers: {e}"))?;
            }
        }
        self.node_cpu.validate().map_err(|e| format!("node_cpu.{e}"))?;
        let (placed, max) = (self.hosts.nodes.len(), self.servers.iter().copied().max().unwrap_or(0));
        if placed > 0 && placed < max {
            return Err(format!("hosts.nodes: {placed} entries but up to {max} servers; give one per node or none"));
        }
        Ok(())
    }

    /// Refuses addresses that this host would send through a gateway.
    ///
    /// The runner reads `/stats` from the root namespace; a lab address
    /// (198.18.0.0/15) with no lab up, or any address off the local links,
    /// would otherwise leave the machine by the default route. Loopback is
    /// always fine; anything else must be on a directly connected link
    /// (`ip route get` shows no `via`), as a lab bridge or a lab PC's LAN is.
    pub fn check_routes_stay_local(&self) -> Result<(), String> {
        let h = &self.hosts;
        let addrs = [&h.origin, &h.front, &h.load]
            .into_iter()
            .flatten()
            .chain(&h.nodes)
            .map(|host| host.addr)
            .chain(self.external_front.map(|a| a.ip()));
        for addr in addrs {
            if addr.is_loopback() {
                continue;
            }
            let out = std::process::Command::new("ip")
                .args(["route", "get", &addr.to_string()])
                .output()
                .map_err(|e| format!("hosts: cannot check the route to {addr} with `ip route get`: {e}"))?;
            let route = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() || route.split_whitespace().any(|w| w == "via") {
                return Err(format!(
                    "hosts: {addr} is not on a directly connected link (route: {}); is the lab up?",
                    route.lines().next().unwrap_or("none").trim()
                ));
            }
        }
        Ok(())
    }

    fn policy_spec(&self, name: &str) -> Result<PolicySpec, String> {
        let kind = PolicyKind::from_name(name).map_err(|e| format!("policies: {e}"))?;
        let params = match self.params.get(name) {
            Some(items) => {
                Params::parse(items.iter().map(String::as_str)).map_err(|e| format!("params.{name}: {e}"))?
            }
            None => Params::default(),
        };
        Ok(PolicySpec { kind, params })
    }

    /// Every cell, in sweep order: servers, then policy, then arch, then seed.
    pub fn cells(&self) -> Vec<Cell> {
        let mut out = Vec::new();
        for &servers in &self.servers {
            for p in &self.policies {
                for a in &self.archs {
                    for &seed in &self.seeds {
                        out.push(Cell {
                            servers,
                            policy: self.policy_spec(p).expect("validated"),
                            mode: a.parse().expect("validated"),
                            seed,
                        });
                    }
                }
            }
        }
        out
    }

    fn total_connections(&self, servers: usize) -> usize {
        self.connections.unwrap_or_else(|| self.connections_per_server.unwrap_or(63) * servers)
    }
}

/// Longest in-run warm-up of the measured load run (seconds).
const MAX_RAMP_S: f64 = 2.0;

/// What [`run_cell`] reads at the start and the end of the measured window.
struct Snapshot {
    nodes: Vec<Stats>,
    /// `None` when the front end has no admin listener.
    front: Option<Stats>,
    cpu_front: f64,
    cpu_nodes: Vec<f64>,
    nic: Vec<(String, NicCounters)>,
    at: tokio::time::Instant,
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
    /// CPU seconds per request of the front end and of all nodes together.
    pub front_cpu_per_request_us: f64,
    /// CPU microseconds per request of all nodes together.
    pub nodes_cpu_per_request_us: f64,
    /// Per lab host, its NIC bytes over the measured window (empty without `lab`).
    pub nic: Vec<NicUse>,
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

fn read_lab(plan: &Option<LabPlan>) -> Result<Vec<(String, NicCounters)>, String> {
    match plan {
        Some(p) => crate::lab::read_counters(p).map_err(|e| format!("lab counters: {e}")),
        None => Ok(Vec::new()),
    }
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

fn param_args(spec: &PolicySpec) -> Vec<String> {
    let mut a = vec!["--policy".to_string(), spec.kind.name().to_string()];
    for (k, v) in spec.params.iter() {
        a.push("--param".into());
        a.push(format!("{k}={v}"));
    }
    a
}

fn join<T: ToString>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

async fn scrape(addr: SocketAddr) -> Result<Stats, String> {
    crate::admin::fetch_stats(addr, Duration::from_secs(5)).await
}

/// How much the counter `field` grew from `before` to `after`.
fn delta(after: &Stats, before: &Stats, field: fn(&Stats) -> u64) -> f64 {
    field(after).saturating_sub(field(before)) as f64
}

/// Runs one cell: start, warm up, measure, stop. `exe` is the `dl7` binary.
pub async fn run_cell(exe: &Path, file: &ClusterFile, cell: &Cell, scratch: &Path) -> Result<CellOutcome, String> {
    file.check_routes_stay_local()?;
    let plan = file.lab_plan()?;
    let ready_timeout = Duration::from_secs(15);
    let common = |v: &mut Vec<String>| {
        v.extend([
            "--head-timeout-ms".into(),
            file.head_timeout_ms.to_string(),
            "--max-connections".into(),
            file.max_connections.to_string(),
        ]);
    };
    let host = |h: &Option<Host>| h.clone().unwrap_or_default();
    let bind = |h: &Host| SocketAddr::new(h.bind.unwrap_or(h.addr), h.port.unwrap_or(0));
    // Where a role is reached: its address with the port it reported.
    let reach = |h: &Host, bound: SocketAddr| SocketAddr::new(h.addr, bound.port());

    // Origin.
    let oh = host(&file.hosts.origin);
    let mut args =
        vec!["origin".into(), "--workload".into(), file.workload.clone(), "--listen".into(), bind(&oh).to_string()];
    args.extend(["--delay-ms".into(), file.origin_delay_ms.to_string()]);
    common(&mut args);
    let mut origin = Proc::spawn(exe, &oh, "origin", &args).map_err(|e| e.to_string())?;
    let origin_addr = reach(&oh, origin.ready(ready_timeout).await?.listen);

    // Nodes: addresses fixed first, since every node must know all of them.
    let n = cell.servers;
    let mut node_hosts = Vec::new();
    let mut node_addrs = Vec::new();
    for i in 0..n {
        let h = file.hosts.nodes.get(i).cloned().unwrap_or_default();
        let port = match (h.port, &h.netns) {
            (Some(p), _) => p,
            (None, Some(_)) => 3128,
            (None, None) => reserve_port(h.addr).map_err(|e| format!("cannot reserve a port on {}: {e}", h.addr))?,
        };
        node_addrs.push(SocketAddr::new(h.addr, port));
        node_hosts.push(h);
    }
    let handoff: Vec<PathBuf> = (0..n).map(|i| scratch.join(format!("node{i}.sock"))).collect();
    let mut nodes = Vec::new();
    for i in 0..n {
        let mut args = vec![
            "node".into(),
            "--id".into(),
            i.to_string(),
            "--nodes".into(),
            join(&node_addrs),
            "--origin".into(),
            origin_addr.to_string(),
            "--cache-mb".into(),
            file.cache_mb.to_string(),
            "--fallbacks".into(),
            file.fallbacks.to_string(),
            "--upstream-timeout-ms".into(),
            file.upstream_timeout_ms.to_string(),
        ];
        args.extend(param_args(&cell.policy));
        if node_hosts[i].bind.is_some_and(|b| b != node_addrs[i].ip()) {
            let b = SocketAddr::new(node_hosts[i].bind.expect("checked"), node_addrs[i].port());
            args.extend(["--listen".into(), b.to_string()]);
        }
        if cell.mode == FrontMode::Distributed && file.external_front.is_none() {
            args.extend(["--handoff".into(), handoff[i].display().to_string()]);
        }
        if cell.policy.kind.shared_by_default() {
            // One instance for the cluster: node 0 keeps it and answers owner lookups.
            args.extend(["--directory".into(), node_addrs[0].to_string()]);
        }
        if file.distill {
            args.push("--distill".into());
        }
        if file.node_cpu.enabled() {
            let c = &file.node_cpu;
            for (flag, v) in [
                ("--cpu-parse-us", c.parse_us),
                ("--cpu-us-per-request", c.request_us),
                ("--cpu-hop-us", c.hop_us),
                ("--cpu-frame-us", c.frame_us),
                ("--cpu-ns-per-byte", c.copy_ns_per_byte),
                ("--cpu-miss-us", c.miss_us),
                ("--cpu-poll-ns-per-open", c.poll_ns_per_open),
            ] {
                args.extend([flag.into(), v.to_string()]);
            }
        }
        common(&mut args);
        nodes.push(Proc::spawn(exe, &node_hosts[i], &format!("node{i}"), &args).map_err(|e| e.to_string())?);
    }
    for p in &mut nodes {
        p.ready(ready_timeout).await?;
    }

    // Front end (none when an external balancer is given).
    let fh = host(&file.hosts.front);
    let mut args = vec![
        "front".into(),
        "--mode".into(),
        cell.mode.name().into(),
        "--nodes".into(),
        join(&node_addrs),
        "--listen".into(),
        bind(&fh).to_string(),
        "--admin".into(),
        SocketAddr::new(fh.bind.unwrap_or(fh.addr), 0).to_string(),
        "--fallbacks".into(),
        file.fallbacks.to_string(),
        "--upstream-timeout-ms".into(),
        file.upstream_timeout_ms.to_string(),
    ];
    args.extend(param_args(&cell.policy));
    if cell.mode == FrontMode::Distributed {
        args.extend(["--handoff".into(), join(&handoff.iter().map(|p| p.display()).collect::<Vec<_>>())]);
    }
    common(&mut args);
    let (front, target, front_admin) = match file.external_front {
        Some(addr) => (None, addr, None),
        None => {
            let mut front = Proc::spawn(exe, &fh, "front", &args).map_err(|e| e.to_string())?;
            let fr = front.ready(ready_timeout).await?;
            let admin = fr.admin.ok_or("front: no admin address in its ready line")?;
            (Some(front), reach(&fh, fr.listen), Some(reach(&fh, admin)))
        }
    };

    let lh = host(&file.hosts.load);
    let connections = file.total_connections(n);
    let load_args = |seed: u64, warmup: f64, duration: f64| {
        let mut a = vec![
            "load".into(),
            "--target".into(),
            target.to_string(),
            "--workload".into(),
            file.workload.clone(),
            "--seed".into(),
            seed.to_string(),
            "--connections".into(),
            connections.to_string(),
            "--warmup-s".into(),
            warmup.to_string(),
            "--duration-s".into(),
            duration.to_string(),
            "--timeout-ms".into(),
            file.request_timeout_ms.to_string(),
            "--json".into(),
        ];
        if let Some(r) = file.rate {
            a.extend(["--rate".into(), r.to_string()]);
        }
        a
    };
    let run_load = |args: Vec<String>, name: &'static str, limit: Duration| {
        let lh = lh.clone();
        async move {
            let mut p = Proc::spawn(exe, &lh, name, &args).map_err(|e| e.to_string())?;
            let line = p.line("dl7-result ", limit).await?;
            serde_json::from_str::<LoadReport>(&line["dl7-result ".len()..])
                .map_err(|e| format!("{name}: unreadable result: {e}"))
        }
    };
    // Warm-up: a separate load run, so the measured window starts with warm caches.
    if file.warmup_s > 0.0 {
        let limit = Duration::from_secs_f64(file.warmup_s) + Duration::from_secs(60);
        run_load(load_args(cell.seed ^ 0x5eed_0000, 0.0, file.warmup_s), "warmup", limit).await?;
    }
    let scrape_front = || async {
        match front_admin {
            Some(a) => scrape(a).await.map(Some),
            None => Ok(None),
        }
    };
    let cpu = |p: &Proc| p.pid().and_then(cpu_seconds).unwrap_or(0.0);
    // Everything the row is made of, read at one instant.
    let snapshot = || async {
        // Counters and CPU first, at the instant: a scrape can wait behind a
        // full shaped link for a second or more.
        let nic = read_lab(&plan)?;
        let at = tokio::time::Instant::now();
        let (cpu_front, cpu_nodes) = (front.as_ref().map_or(0.0, cpu), nodes.iter().map(cpu).collect());
        let mut node_metrics = Vec::new();
        for &a in &node_addrs {
            node_metrics.push(scrape(a).await?);
        }
        Ok::<_, String>(Snapshot { nodes: node_metrics, front: scrape_front().await?, cpu_front, cpu_nodes, nic, at })
    };
    // The measured run starts cold (new connections, empty queues), so it
    // first ramps up for up to 2 s of its own warm-up; the snapshots are taken
    // when its window opens and when it closes (the process keeps running
    // after that to finish the requests still out, which must not count).
    let ramp = file.warmup_s.min(MAX_RAMP_S);
    let limit = Duration::from_secs_f64(ramp + file.duration_s) + Duration::from_secs(60);
    let t0 = tokio::time::Instant::now();
    let window_snapshots = async {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(ramp)).await;
        let before = snapshot().await?;
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(ramp + file.duration_s)).await;
        let after = snapshot().await?;
        let window = after.at.duration_since(before.at).as_secs_f64();
        Ok::<_, String>((before, after, window))
    };
    let (load, snaps) =
        tokio::join!(run_load(load_args(cell.seed, ramp, file.duration_s), "load", limit), window_snapshots);
    let (load, (before, after, nic_window)) = (load?, snaps?);
    let (before_nodes, after_nodes) = (before.nodes, after.nodes);
    let (before_front, after_front) = (before.front, after.front);
    let cpu_front = after.cpu_front - before.cpu_front;
    let cpu_nodes: Vec<f64> = after.cpu_nodes.iter().zip(&before.cpu_nodes).map(|(a, b)| a - b).collect();
    let (nic0, nic1) = (before.nic, after.nic);

    // Stop in front-to-back order: clients' entry point first.
    drop(front);
    drop(nodes);
    drop(origin);

    let window = load.window_s.max(1e-9);
    let sum = |field: fn(&Stats) -> u64| -> f64 {
        after_nodes.iter().zip(&before_nodes).map(|(a, b)| delta(a, b, field)).sum()
    };
    let hits = sum(|s| s.hits);
    let misses = sum(|s| s.misses);
    let owner: Vec<f64> =
        after_nodes.iter().zip(&before_nodes).map(|(a, b)| delta(a, b, |s| s.owner_requests)).collect();
    let mean_owner = owner.iter().sum::<f64>() / owner.len() as f64;
    let max_owner = owner.iter().cloned().fold(0.0, f64::max);
    let received = sum(|s| s.requests) - sum(|s| s.hop_requests);
    let nic = plan.as_ref().map(|p| nic_use(p, &nic0, &nic1, nic_window)).unwrap_or_default();
    let util_of = |role: Role, take: usize| {
        let name = role.name();
        nic.iter().filter(|u| u.role == name).take(take).map(NicUse::utilisation).fold(0.0, f64::max)
    };
    // The emulated CPU's busy time when a node reports it, else the process's real CPU time.
    let emulated: Vec<f64> =
        after_nodes.iter().zip(&before_nodes).map(|(a, b)| delta(a, b, |s| s.emulated_cpu_ns) / 1e9).collect();
    let node_busy = if file.node_cpu.enabled() { &emulated } else { &cpu_nodes };
    let row = ResultRow {
        workload: file.workload.clone(),
        arch: cell.mode.arch_name().into(),
        policy: cell.policy.kind.name().into(),
        servers: n as u32,
        seed: cell.seed,
        req_per_s: load.req_per_s,
        mbit_per_s: load.mbit_per_s,
        hit_ratio: if hits + misses > 0.0 { hits / (hits + misses) } else { 0.0 },
        byte_hit_ratio: {
            let ob = sum(|s| s.owner_bytes);
            if ob > 0.0 {
                sum(|s| s.hit_bytes) / ob
            } else {
                0.0
            }
        },
        p50_ms: load.p50_ms,
        p99_ms: load.p99_ms,
        fe_cpu_util: cpu_front / window,
        fe_nic_util: util_of(Role::Front, 1),
        max_server_cpu_util: node_busy.iter().cloned().fold(0.0, f64::max) / window,
        // Plan nodes are in index order; cell nodes are the first `n` of them.
        max_server_nic_util: util_of(Role::Node, n),
        imbalance: if mean_owner > 0.0 { max_owner / mean_owner } else { 0.0 },
        forwarded_frac: if received > 0.0 { sum(|s| s.forwarded) / received } else { 0.0 },
        cache_bytes: after_nodes.iter().map(|s| s.cache_bytes).sum(),
        requests: load.requests,
        mode: if file.in_lab() { "real-lab" } else { "real" }.into(),
        errors: load.errors,
    };
    let reqs = (load.requests.max(1)) as f64;
    Ok(CellOutcome {
        row,
        front_bytes_out: match (&after_front, &before_front) {
            (Some(a), Some(b)) => delta(a, b, |s| s.bytes_out) as u64,
            _ => 0,
        },
        front_cpu_per_request_us: cpu_front / reqs * 1e6,
        nodes_cpu_per_request_us: cpu_nodes.iter().sum::<f64>() / reqs * 1e6,
        load,
        nic,
    })
}

/// A scratch directory for Unix sockets (short path: sun_path is 108 bytes).
pub fn scratch_dir(tag: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("dl7-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "name = \"t\"\nworkload = \"surge100\"\nservers = [1, 2]\npolicies = [\"md5\"]\narchs = [\"distributed\"]\n";

    #[test]
    fn a_minimal_file_gets_defaults_and_one_cell_per_point() {
        let f = ClusterFile::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!((f.warmup_s, f.duration_s, f.fallbacks, f.seeds.clone()), (1.0, 5.0, 2, vec![1]));
        assert_eq!(f.cells().len(), 2);
        assert_eq!(f.total_connections(2), 126);
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |extra: &str, needle: &str| {
            let e = ClusterFile::parse(&format!("{MINIMAL}{extra}"), "t.toml").unwrap_err();
            assert!(e.contains(needle) && e.starts_with("t.toml"), "{e}");
        };
        bad("duration_s = -1.0\n", "duration_s");
        bad("colour = 1\n", "colour");
        bad("[params]\nmod_ch = [\"points=5\"]\n", "params.mod_ch");
        let e = ClusterFile::parse(&MINIMAL.replace("\"md5\"", "\"nope\""), "t.toml").unwrap_err();
        assert!(e.contains("policies"), "{e}");
        let e = ClusterFile::parse(&MINIMAL.replace("distributed", "l4"), "t.toml").unwrap_err();
        assert!(e.contains("archs"), "{e}");
    }

    #[test]
    fn node_cpu_keys_are_checked_and_namespaces_make_real_lab_rows() {
        let f =
            ClusterFile::parse(&format!("{MINIMAL}[node_cpu]\nparse_us = 1500.0\nframe_us = 5.0\n"), "t.toml").unwrap();
        assert_eq!((f.node_cpu.parse_us, f.node_cpu.frame_us, f.node_cpu.request_us), (1500.0, 5.0, 0.0));
        assert!(f.node_cpu.enabled() && !f.in_lab());
        let e = ClusterFile::parse(&format!("{MINIMAL}[node_cpu]\nparse_ms = 1.0\n"), "t.toml").unwrap_err();
        assert!(e.contains("parse_ms"), "{e}");
        let e = ClusterFile::parse(&format!("{MINIMAL}[node_cpu]\nhop_us = -1.0\n"), "t.toml").unwrap_err();
        assert!(e.contains("node_cpu.hop_us"), "{e}");
        let lab = ClusterFile::parse(&format!("{MINIMAL}[hosts]\nload = {{ netns = \"ns-c\" }}\n"), "t.toml").unwrap();
        assert!(lab.in_lab());
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

    #[test]
    fn addresses_off_the_local_links_are_refused() {
        let local = ClusterFile::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!(local.check_routes_stay_local(), Ok(()));
        // No lab uses this address, so it is either unroutable or behind a gateway.
        let far = format!("{MINIMAL}external_front = \"198.19.254.77:8080\"\n");
        let err = ClusterFile::parse(&far, "t.toml").unwrap().check_routes_stay_local().unwrap_err();
        assert!(err.contains("198.19.254.77"), "{err}");
    }

    #[test]
    fn hosts_default_to_loopback_and_accept_namespaces() {
        let f = ClusterFile::parse(
            &format!("{MINIMAL}[hosts]\nfront = {{ netns = \"ns1\", addr = \"198.18.0.2\" }}\nnodes = [{{}}, {{ port = 9000 }}]\n"),
            "t.toml",
        )
        .unwrap();
        let front = f.hosts.front.unwrap();
        assert_eq!((front.netns.as_deref(), front.addr.to_string()), (Some("ns1"), "198.18.0.2".to_string()));
        assert_eq!(f.hosts.nodes[0], Host::default());
        assert_eq!(f.hosts.nodes[1].port, Some(9000));
    }
}
