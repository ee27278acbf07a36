//! Experiment files: one TOML schema for every engine, read strictly and
//! turned into runs (one cell and one seed each).
//!
//! Two stages, as ripgrep does with its flags: [`Plan::parse`] reads the text
//! into raw structs (`deny_unknown_fields`) and validates every value without
//! touching the disk, keeping each value's position; [`Plan::load`] then reads
//! the workloads and the hardware profile the plan names. Every error is one
//! line naming the file, the line and column, the key and what was expected;
//! a key of the old sweep or cluster formats names its new place.
//!
//! A replay without `speed` is closed loop: each connection takes the
//! trace's next request when its last one is answered. With `speed` it is
//! open loop: request `i`, logged in second `T`, is sent `(T - T0 + k/m) /
//! speed` seconds after the start (`T0` the first logged second, `k` its
//! rank among the `m` requests of second `T`; `dl7_traces::Schedule`), on
//! the longest-free connection of the pool, on a new one when none is free,
//! or not at all when `max_outstanding` are out: it then counts in
//! `results.csv`'s `dropped` (every measured request is in `replayed`: it
//! completed, failed or was dropped). Every sweep also writes
//! `timeseries.csv` (`dl7_core::timeseries`), one row per run and interval.
//!
//! This module does not run anything; [`crate::sweep`] hands the runs to an
//! engine.
//!
//! ```toml
//! name = "paper"              # output directory reports/<name>/
//! engine = "sim"              # sim | local | lab | ssh (--engine overrides)
//! seed = 2008                 # experiment seed; every run derives its own
//! seeds = 3                   # runs per cell (default 1)
//! hardware = "kwon2008"       # built-in profile (kwon2008, lab10mbit, modern) or a path
//!
//! [sweep]
//! servers = [1, 2, 4, 8, 16]
//! policies = ["rr", "md5", "mod_ch"]
//! archs = ["conventional", "distributed"]
//! workloads = ["surge100", "my/workload.toml", "site.trace"]   # built-in, workload or trace file
//! # evictions = ["lru", "sieve"]   # optional axis: lru, fifo, sieve, s3fifo, gdsf (or `run.eviction`)
//!
//! [policy.mod_ch]             # optional parameters of one listed policy
//! vnodes = 100
//!
//! [clients]                   # optional; default closed loop, 63 per server
//! mode = "closed"             # closed | onoff (per_server), poisson (rate), replay (connections)
//! per_server = 63
//! # rate = 500.0              # poisson: requests/s in total
//! # connections = 1           # replay: persistent connections (with speed: the pool opened first)
//! # warmup_requests = 0       # replay: requests not measured (the first sent)
//! # speed = 100.0             # replay: open loop at the logged times, 100x faster (needs a timed trace)
//! # max_outstanding = 4096    # replay with speed: more requests out at once are dropped (counted)
//!
//! [run]
//! warmup_s = 10.0             # seconds excluded from measurement (not read by replay)
//! measure_s = 20.0
//! cache_mb = 64.0             # per server, MiB; default: the hardware profile's
//! max_object_mb = 8.0         # largest object cached (Squid's maximum_object_size);
//!                             #   larger ones stream through uncached; default cache_mb / 8
//! shared_state = false        # sim: one cluster-wide policy instance
//! hash_key = "url"            # what the policy hashes, in every engine: url (path and query)
//!                             #   or path (the query left out; the cache key keeps it)
//! interval_s = 1.0            # timeseries.csv: seconds per interval (>= 0.001)
//! eviction = "lru"            # which object a full cache drops: lru (default), fifo, sieve, s3fifo,
//!                             #   gdsf (dl7_core::eviction); `sweep.evictions` sweeps several
//!
//! [real]                      # local, lab and ssh engines only; defaults shown
//! fallbacks = 2               # candidates tried after a failed owner
//! upstream_timeout_ms = 2000
//! head_timeout_ms = 5000
//! request_timeout_ms = 5000   # the load generator's per-request deadline
//! max_connections = 4096      # per service
//! worker_threads = 2          # threads per service process (default one per core; 1: tokio's current-thread runtime)
//! origin_delay_ms = 0
//! emulate_cpu = false         # nodes charge the `hardware` profile's costs to a virtual CPU
//! health_interval_ms = 2000   # active health checks, as HAProxy's `check inter 2s rise 2 fall 3`:
//! rise = 2                    #   a peer out comes back after `rise` good probes in a row,
//! fall = 3                    #   one in goes out after `fall` failed ones
//! health = "http"             # the probe: http (GET /_dl7/health, which dl7's nodes answer), tcp or none
//! panic_percent = 50          # below this share of nodes up, health is ignored (Envoy's panic threshold)
//! # origin = "http://127.0.0.1:8081"  # a web server already running (nginx, Apache) in place of dl7's
//!                             #   origin; it serves the workload's paths (`dl7 trace materialize`)
//! rampup_s = 0.0              # a node that has just come up (checks, join) takes a share of its keys
//!                             #   growing to all of them over this many seconds (0: off; not simulated)
//!
//! [lab]                       # lab and ssh engines only
//! topology = "lab-8nodes.toml"   # relative to this file; placement follows from it
//!                                # (ssh: each host's destination, `[hosts.SHORT]` there)
//!
//! [[faults]]                  # optional, repeatable, in time order (dl7_core::fault)
//! at_s = 6.0                  # seconds after the measured window opens
//! action = "kill"             # kill | restart (empty cache) | leave (graceful) | join (a new node)
//! node = 1                    # 0-based node index; join adds node N, N+1, ... (may be left out)
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dl7_core::eviction::Eviction;
use dl7_core::fault::Timeline;
use dl7_core::seed::{cell_key, derive_seed};
use dl7_core::{
    Arch, ClientMode, ConfigError, Fault, FaultAction, Hardware, Membership, Pace, PolicyKind, PolicySpec, Source,
};
use dl7_traces::{Catalog, ObjectId, Trace};
use serde::Deserialize;
use toml::Spanned;

/// Largest cluster an experiment may ask for; far beyond the paper's 16, small
/// enough that a typo (`servers = [160000]`) is caught before it runs.
use dl7_core::server::MAX_SERVERS;
/// Default WebStone connections per cache server, as in the paper.
const DEFAULT_PER_SERVER: u32 = 63;
/// Default length of the intervals of `timeseries.csv`, seconds.
const DEFAULT_INTERVAL_S: f64 = 1.0;
/// Shortest interval: a bound on the intervals a run writes (and holds).
const MIN_INTERVAL_S: f64 = 0.001;
/// Bytes in the `cache_mb` unit.
const MIB: f64 = 1024.0 * 1024.0;

/// A bad experiment file: one line with file, position, key and expectation.
pub type ExperimentError = ConfigError;

/// Keys of the old sweep and cluster formats, and where each one went.
const MOVED: &[(&str, &str)] = &[
    ("workload", "`sweep.workloads` (a list)"),
    ("servers", "`sweep.servers`"),
    ("policies", "`sweep.policies`"),
    ("archs", "`sweep.archs`"),
    ("connections", "`clients.per_server` (closed) or `clients.connections` (replay)"),
    ("connections_per_server", "`clients.per_server`"),
    ("rate", "`clients.rate` with `clients.mode = \"poisson\"`"),
    ("warmup_s", "`run.warmup_s`"),
    ("duration_s", "`run.measure_s`"),
    ("cache_mb", "`run.cache_mb`"),
    ("distill", "the hardware profile (`server.distill_ns_per_byte`: the image distiller, charged by both engines)"),
    ("origin_delay_ms", "`real.origin_delay_ms`"),
    ("fallbacks", "`real.fallbacks`"),
    ("upstream_timeout_ms", "`real.upstream_timeout_ms`"),
    ("head_timeout_ms", "`real.head_timeout_ms`"),
    ("request_timeout_ms", "`real.request_timeout_ms`"),
    ("max_connections", "`real.max_connections`"),
    ("params", "`[policy.NAME]` tables (`key = value`)"),
    ("node_cpu", "`real.emulate_cpu = true`, which charges the `hardware` profile's costs"),
    ("hosts", "`[lab] topology`: placement follows from the lab file"),
    ("external_front", "`engine = \"lab\"`: the lab engine switches the front end itself"),
];

/// The top level; every key it does not name lands in `moved` and is an
/// error (serde cannot deny unknown fields beside a flattened map).
#[derive(Deserialize)]
struct RawExperiment {
    name: Spanned<String>,
    engine: Option<Spanned<String>>,
    seed: Option<u64>,
    seeds: Option<Spanned<toml::Value>>,
    hardware: Option<Spanned<String>>,
    sweep: Option<RawSweep>,
    #[serde(default)]
    policy: BTreeMap<String, Spanned<toml::Table>>,
    clients: Option<RawClients>,
    run: Option<RawRun>,
    real: Option<RawReal>,
    lab: Option<Spanned<toml::Value>>,
    faults: Option<Vec<RawFault>>,
    // Old keys, read only to say where they went.
    // (Flattened values lose their spans: the key is found in the text.)
    #[serde(flatten)]
    moved: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    servers: Spanned<Vec<Spanned<u32>>>,
    policies: Spanned<Vec<Spanned<String>>>,
    archs: Spanned<Vec<Spanned<String>>>,
    workloads: Spanned<Vec<Spanned<String>>>,
    evictions: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClients {
    mode: Spanned<String>,
    per_server: Option<Spanned<u32>>,
    rate: Option<Spanned<f64>>,
    connections: Option<Spanned<u32>>,
    warmup_requests: Option<Spanned<u64>>,
    speed: Option<Spanned<f64>>,
    max_outstanding: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    warmup_s: Option<Spanned<f64>>,
    measure_s: Option<Spanned<f64>>,
    #[serde(default)]
    shared_state: bool,
    cache_mb: Option<Spanned<f64>>,
    max_object_mb: Option<Spanned<f64>>,
    cache_bytes_per_server: Option<Spanned<toml::Value>>,
    interval_s: Option<Spanned<f64>>,
    hash_key: Option<Spanned<String>>,
    eviction: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReal {
    fallbacks: Option<usize>,
    upstream_timeout_ms: Option<u64>,
    head_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    max_connections: Option<Spanned<usize>>,
    worker_threads: Option<Spanned<usize>>,
    origin_delay_ms: Option<u64>,
    #[serde(default)]
    emulate_cpu: bool,
    distill: Option<Spanned<toml::Value>>,
    health_interval_ms: Option<Spanned<u64>>,
    rise: Option<Spanned<u32>>,
    fall: Option<Spanned<u32>>,
    health: Option<Spanned<String>>,
    panic_percent: Option<Spanned<u8>>,
    origin: Option<Spanned<String>>,
    rampup_s: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    at_s: Spanned<f64>,
    action: Spanned<String>,
    node: Option<Spanned<u32>>,
}

/// One `[[faults]]` entry as written: a join may leave out its node (then
/// the next new index of each cell, so one schedule serves several sizes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedFault {
    pub at_s: f64,
    pub action: FaultAction,
    pub node: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    topology: String,
}

/// A way to run a cell. It adds no meaning: the same cell gives the same
/// routing, hits and cache contents in every engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The discrete-event simulator (`mode = sim`).
    Sim,
    /// The real cluster as processes on this machine, on loopback (`mode = real`).
    Local,
    /// The real cluster in the emulated lab of network namespaces (root; `mode = real-lab`).
    Lab,
    /// The real cluster on the lab file's hosts over SSH: lab PCs, or the
    /// emulated lab's namespaces with `dl7 lab up --sshd` (`mode = real-ssh`).
    Ssh,
}

impl Engine {
    /// Every engine, in the order of messages.
    pub const ALL: &'static [Engine] = &[Engine::Sim, Engine::Local, Engine::Lab, Engine::Ssh];

    /// The name used in experiment files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sim => "sim",
            Engine::Local => "local",
            Engine::Lab => "lab",
            Engine::Ssh => "ssh",
        }
    }

    /// The `mode` column of the rows it writes.
    pub fn mode(self) -> &'static str {
        match self {
            Engine::Sim => "sim",
            Engine::Local => "real",
            Engine::Lab => "real-lab",
            Engine::Ssh => "real-ssh",
        }
    }

    /// The engine called `name`.
    pub fn from_name(name: &str) -> Result<Self, String> {
        match name {
            "sim" => Ok(Engine::Sim),
            "local" => Ok(Engine::Local),
            "lab" => Ok(Engine::Lab),
            "ssh" => Ok(Engine::Ssh),
            other => Err(format!("expected one of sim, local, lab, ssh, found {other:?}")),
        }
    }
}

/// Where a workload comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadSource {
    /// A workload shipped with dl7 (`surge100`, `unc2001`, ...).
    Builtin(String),
    /// A workload or trace file, already resolved against the experiment's directory.
    File(PathBuf),
}

impl WorkloadSource {
    /// How a service reads it: the built-in's name, marked as one (a file of
    /// that name in the working directory does not shadow it), or the file path.
    pub fn argument(&self) -> String {
        match self {
            WorkloadSource::Builtin(n) => format!("{}{n}", dl7_traces::workload::BUILTIN_PREFIX),
            WorkloadSource::File(p) => p.display().to_string(),
        }
    }
}

/// Where the hardware profile comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum HardwareSource {
    /// A profile shipped with dl7 (`kwon2008`, `lab10mbit`).
    Builtin(String),
    /// A profile file, already resolved against the experiment's directory.
    File(PathBuf),
}

pub use dl7_testbed::cell::RealSettings;

/// One point of the sweep: everything but the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Index into [`Plan::workloads`].
    pub workload: usize,
    pub arch: Arch,
    pub policy: PolicySpec,
    pub servers: u32,
    /// Which object a full cache drops, at every node.
    pub eviction: Eviction,
}

/// A validated experiment, before its workloads and hardware are read.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The file it came from, as given (used in messages).
    pub origin: String,
    pub name: String,
    /// The engine the file asks for (`--engine` overrides it).
    pub engine: Engine,
    pub seed: u64,
    pub seeds: u32,
    pub hardware: HardwareSource,
    /// Workload names (as they appear in results) and where to read them.
    pub workloads: Vec<(String, WorkloadSource)>,
    /// Cells in output order: workload, eviction, arch, policy, servers (each in file order).
    pub cells: Vec<Cell>,
    pub clients: ClientMode,
    pub warmup_s: f64,
    pub measure_s: f64,
    pub shared_state: bool,
    /// What the policy hashes (`run.hash_key`), in every engine.
    pub hash_key: dl7_core::HashKey,
    /// Cache capacity per server, bytes (`None`: the hardware profile's).
    pub cache_bytes_per_server: Option<u64>,
    /// Length of the intervals of `timeseries.csv`, seconds.
    pub interval_s: f64,
    /// Largest object cached, bytes (`None`: an eighth of the cache).
    pub max_object_bytes: Option<u64>,
    pub real: RealSettings,
    /// The lab topology file (`[lab] topology`), resolved against the experiment's directory.
    pub lab_topology: Option<PathBuf>,
    /// The fault schedule (`[[faults]]`), in time order, checked against every cell's size.
    pub faults: Vec<PlannedFault>,
    /// Positions of values that can only be checked on load, for messages.
    text: String,
    hardware_span: Range<usize>,
    workload_spans: Vec<Range<usize>>,
    lab_span: Range<usize>,
    speed_span: Range<usize>,
}

/// A plan with its workloads and hardware read: ready to run.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub plan: Plan,
    pub hardware: Arc<Hardware>,
    /// Workloads in the order of [`Plan::workloads`]: the catalog and, for a
    /// trace file, its requests in order (shared by every run, never copied).
    pub workloads: Vec<Workload>,
}

/// A workload read: its catalog and, for a trace file, its requests.
#[derive(Debug, Clone)]
pub struct Workload {
    pub catalog: Arc<Catalog>,
    /// Empty for a model workload.
    pub requests: Arc<Vec<ObjectId>>,
    /// The requests' logged times, seconds; empty when the trace has none.
    pub times: Arc<Vec<u64>>,
}

/// One run: a cell with one seed.
#[derive(Debug, Clone)]
pub struct Run {
    /// Index into [`Plan::cells`].
    pub cell: usize,
    /// Which of the cell's `seeds` runs this is.
    pub index: u32,
    /// Its seed, derived from the experiment seed, the cell and the index.
    pub seed: u64,
}

impl Plan {
    /// Reads and validates an experiment file (no other file is read).
    pub fn from_file(path: &Path) -> Result<Plan, ExperimentError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{origin}: cannot read experiment file: {e}")))?;
        let base = path.parent().unwrap_or(Path::new(""));
        Plan::parse(&text, &origin, base)
    }

    /// Parses and validates experiment text; `origin` names it in errors and
    /// relative paths in it are resolved against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Plan, ExperimentError> {
        let src = Source::new(text, origin);
        let raw: RawExperiment = src.parse()?;

        // The first such key in the file, as a reader meets it.
        if let Some((span, key)) = raw.moved.keys().map(|k| (top_level_key(text, k), k)).min_by_key(|(s, _)| s.start) {
            let hint = MOVED.iter().find(|(old, _)| old == key).map(|(_, new)| *new);
            return Err(match hint {
                Some(new) => src.at(span, key, format!("this key of the old formats moved to {new}")),
                None => src.at(
                    span,
                    key,
                    "unknown key, expected one of name, engine, seed, seeds, hardware, [sweep], [policy.NAME], \
                     [clients], [run], [real], [lab], [[faults]]",
                ),
            });
        }

        let name = parse_name(&src, &raw)?;
        let engine = match &raw.engine {
            None => Engine::Sim,
            Some(e) => Engine::from_name(e.get_ref()).map_err(|m| src.at(e.span(), "engine", m))?,
        };
        let seed = raw
            .seed
            .ok_or_else(|| src.whole("missing key `seed` (the experiment seed every run derives its own from)"))?;
        let seeds = parse_seeds(&src, &raw)?;
        let hardware = parse_hardware(&src, &raw, base_dir)?;
        let hardware_span = raw.hardware.as_ref().map(|h| h.span()).unwrap_or(0..0);

        let sweep = raw
            .sweep
            .as_ref()
            .ok_or_else(|| src.whole("missing table `[sweep]` (servers, policies, archs, workloads)"))?;
        let server_counts = parse_servers(&src, sweep)?;
        let archs = parse_archs(&src, sweep)?;
        let policies = parse_policies(&src, &raw, sweep, &server_counts)?;
        let evictions = parse_evictions(&src, sweep, raw.run.as_ref())?;

        let (workloads, workload_spans) = parse_workloads(&src, sweep, base_dir)?;
        let clients = match &raw.clients {
            None => ClientMode::Closed { per_server: DEFAULT_PER_SERVER },
            Some(c) => parse_clients(&src, c)?,
        };
        let replay = matches!(clients, ClientMode::Replay { .. });

        let run = raw.run.as_ref();
        if let Some(c) = run.and_then(|r| r.cache_bytes_per_server.as_ref()) {
            return Err(src.at(c.span(), "run.cache_bytes_per_server", "renamed to `run.cache_mb` (MiB per server)"));
        }
        let window = parse_window(&src, run, replay)?;
        let Window { warmup_s, measure_s, interval_s, cache_bytes_per_server, max_object_bytes } = window;
        let real = parse_real(&src, raw.real.as_ref())?;
        let (lab_topology, lab_span) = parse_lab(&src, &raw, base_dir)?;
        let faults = parse_faults(&src, &raw, replay, measure_s, &server_counts)?;

        let mut cells = Vec::new();
        for w in 0..workloads.len() {
            for &eviction in &evictions {
                for &arch in &archs {
                    for policy in &policies {
                        for &servers in &server_counts {
                            cells.push(Cell { workload: w, arch, policy: policy.clone(), servers, eviction });
                        }
                    }
                }
            }
        }

        Ok(Plan {
            origin: origin.to_string(),
            name,
            engine,
            seed,
            seeds,
            hardware,
            workloads,
            cells,
            clients,
            warmup_s,
            measure_s,
            shared_state: run.is_some_and(|r| r.shared_state),
            hash_key: parse_hash_key(&src, run)?,
            cache_bytes_per_server,
            interval_s,
            max_object_bytes,
            real,
            lab_topology,
            faults,
            text: text.to_string(),
            hardware_span,
            workload_spans,
            lab_span,
            speed_span: raw.clients.as_ref().and_then(|c| c.speed.as_ref()).map_or(0..0, |s| s.span()),
        })
    }

    /// A fixed hash (FNV-1a) of the experiment's text and its overrides: two
    /// shards of one sweep have the same, shards of another sweep do not.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.text.bytes().chain(self.seeds.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    /// The fault schedule of a cell of `servers` nodes.
    pub fn faults_for(&self, servers: u32) -> Vec<Fault> {
        faults_for(&self.faults, servers)
    }

    /// Number of runs: cells times seeds.
    pub fn run_count(&self) -> usize {
        self.cells.len() * self.seeds as usize
    }

    /// Checks that the plan can run on `engine`; for the lab and ssh
    /// engines, reads the lab topology (`[lab] topology`) and returns it.
    pub fn check_engine(&self, engine: Engine) -> Result<Option<dl7_testbed::lab::LabConfig>, ExperimentError> {
        let src = Source::new(&self.text, &self.origin);
        if !matches!(engine, Engine::Lab | Engine::Ssh) {
            return Ok(None);
        }
        let Some(path) = &self.lab_topology else {
            return Err(src.whole(format!(
                "engine \"{}\" needs `[lab] topology = \"LAB.toml\"` (the lab to run in)",
                engine.name()
            )));
        };
        let lab =
            dl7_testbed::lab::LabConfig::load(path).map_err(|e| src.at(self.lab_span.clone(), "lab.topology", e))?;
        // Every node a cell will have: its servers and the ones its faults join.
        let max = self.cells.iter().map(|c| Timeline::node_count(&self.faults_for(c.servers), c.servers)).max();
        let max = max.unwrap_or(0);
        if max > lab.nodes {
            let joins = if self.faults.iter().any(|f| f.action == FaultAction::Join) {
                " (servers and the nodes its faults join)"
            } else {
                " servers"
            };
            return Err(src.at(
                self.lab_span.clone(),
                "lab.topology",
                format!("the lab has {} nodes but the sweep asks for up to {max}{joins}", lab.nodes),
            ));
        }
        Ok(Some(lab))
    }

    /// Reads the hardware profile and the workloads the plan names.
    pub fn load(self) -> Result<Experiment, ExperimentError> {
        let src = Source::new(&self.text, &self.origin);
        let mut workloads = Vec::new();
        for ((label, source), span) in self.workloads.iter().zip(&self.workload_spans) {
            let trace = load_workload(source).map_err(|e| src.at(span.clone(), "sweep.workloads", e))?;
            if trace.catalog.is_empty() {
                return Err(src.at(span.clone(), "sweep.workloads", format!("workload {label:?} has no objects")));
            }
            if let ClientMode::Replay { warmup_requests, pace, .. } = self.clients {
                if trace.requests.is_empty() {
                    return Err(src.at(
                        span.clone(),
                        "sweep.workloads",
                        format!("clients.mode = \"replay\" needs a trace file with requests; {label:?} has none"),
                    ));
                }
                if let Some(pace) = pace {
                    if trace.times.is_empty() {
                        return Err(src.at(
                            self.speed_span.clone(),
                            "clients.speed",
                            format!(
                                "a timed replay needs request times, but the trace {label:?} has none \
                                 (`requests N` without `timed`); drop `speed` to replay it closed loop"
                            ),
                        ));
                    }
                    dl7_traces::Schedule::new(&trace.times, pace.speed)
                        .map_err(|e| src.at(self.speed_span.clone(), "clients.speed", format!("{label:?}: {e}")))?;
                }
                if warmup_requests >= trace.requests.len() as u64 {
                    return Err(src.whole(format!(
                        "`clients.warmup_requests` = {warmup_requests} leaves nothing of the {} requests of {label:?} to measure",
                        trace.requests.len()
                    )));
                }
            }
            workloads.push(Workload {
                catalog: Arc::new(trace.catalog),
                requests: Arc::new(trace.requests),
                times: Arc::new(trace.times),
            });
        }
        let hardware = load_hardware(&self.hardware).map_err(|e| src.at(self.hardware_span.clone(), "hardware", e))?;
        Ok(Experiment { plan: self, hardware: Arc::new(hardware), workloads })
    }
}

impl Experiment {
    /// Every run in output order (cell order, then seed index), each with its
    /// derived seed.
    pub fn runs(&self) -> Vec<Run> {
        let plan = &self.plan;
        let mut runs = Vec::with_capacity(plan.run_count());
        for (i, cell) in plan.cells.iter().enumerate() {
            // The eviction is not part of the key: cells that differ only in
            // their eviction see the same request streams (common random
            // numbers), so a difference between them is the eviction's alone,
            // not a different draw; and LRU cells keep the seeds, hence the
            // rows, they had before there was a choice.
            let key = cell_key(&plan.workloads[cell.workload].0, cell.arch, &cell.policy, cell.servers);
            for index in 0..plan.seeds {
                runs.push(Run { cell: i, index, seed: derive_seed(plan.seed, &key, index) });
            }
        }
        runs
    }

    /// True when `engine` runs this experiment on the paper's testbed and
    /// with its method (the simulator on the `kwon2008` profile and its
    /// caches, 63 closed-loop clients per server, the default window, no
    /// faults): only then are its numbers comparable with the paper's tables
    /// and conclusions. A `run.cache_mb` or `run.max_object_mb` that changes
    /// what a server stores is another testbed.
    pub fn paper_testbed(&self, engine: Engine) -> bool {
        let p = &self.plan;
        let cache = self.hardware.server.cache_bytes;
        engine == Engine::Sim
            && p.hardware == HardwareSource::Builtin("kwon2008".into())
            && self.cache_bytes_per_server() == cache
            && self.max_object_bytes() == dl7_core::hardware::default_max_object_bytes(cache)
            && p.clients == ClientMode::Closed { per_server: 63 }
            && p.warmup_s == dl7_sim::DEFAULT_WARMUP_S
            && p.measure_s == dl7_sim::DEFAULT_MEASURE_S
            && p.faults.is_empty()
    }

    /// Cache capacity per server, bytes: `run.cache_mb`, else the hardware profile's.
    pub fn cache_bytes_per_server(&self) -> u64 {
        self.plan.cache_bytes_per_server.unwrap_or(self.hardware.server.cache_bytes)
    }

    /// Largest object cached, bytes: `run.max_object_mb`, else an eighth of the cache.
    pub fn max_object_bytes(&self) -> u64 {
        let cache = self.cache_bytes_per_server();
        self.plan.max_object_bytes.unwrap_or(dl7_core::hardware::default_max_object_bytes(cache)).min(cache)
    }

    /// The simulator's spec of a run.
    pub fn sim_spec(&self, run: &Run) -> dl7_sim::CellSpec {
        let plan = &self.plan;
        let cell = &plan.cells[run.cell];
        let workload = &self.workloads[cell.workload];
        dl7_sim::CellSpec {
            workload: plan.workloads[cell.workload].0.clone(),
            catalog: workload.catalog.clone(),
            arch: cell.arch,
            policy: cell.policy.clone(),
            servers: cell.servers,
            eviction: cell.eviction,
            shared_state: plan.shared_state,
            hash_key: plan.hash_key,
            clients: plan.clients,
            warmup_s: plan.warmup_s,
            measure_s: plan.measure_s,
            seed: run.seed,
            cache_bytes_per_server: Some(self.cache_bytes_per_server()),
            max_object_bytes: Some(self.max_object_bytes()),
            requests: match plan.clients {
                ClientMode::Replay { .. } => Some(workload.requests.clone()),
                _ => None,
            },
            times: match plan.clients {
                ClientMode::Replay { pace: Some(_), .. } => Some(workload.times.clone()),
                _ => None,
            },
            interval_s: plan.interval_s,
            faults: plan.faults_for(cell.servers),
        }
    }
}

/// A schedule's faults for `servers` nodes: a join without a node adds the next new index.
fn faults_for(faults: &[PlannedFault], servers: u32) -> Vec<Fault> {
    let mut next = servers;
    faults
        .iter()
        .map(|f| {
            let node = match (f.action, f.node) {
                (FaultAction::Join, given) => {
                    next += 1;
                    given.unwrap_or(next - 1)
                }
                (_, node) => node.expect("checked: only a join may leave out its node"),
            };
            Fault { at_s: f.at_s, action: f.action, node }
        })
        .collect()
}

/// `name`: the output folder's name, so directory-safe.
fn parse_name(src: &Source, raw: &RawExperiment) -> Result<String, ExperimentError> {
    let name = raw.name.get_ref().trim().to_string();
    let name_ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if !name_ok {
        return Err(src.at(
            raw.name.span(),
            "name",
            format!("expected a directory-safe name (letters, digits, '-', '_', '.'), found {:?}", raw.name.get_ref()),
        ));
    }
    Ok(name)
}

/// `seeds`: runs per cell.
fn parse_seeds(src: &Source, raw: &RawExperiment) -> Result<u32, ExperimentError> {
    let seeds = match &raw.seeds {
        None => 1,
        Some(s) => match s.get_ref() {
            toml::Value::Integer(k) if *k >= 1 && *k <= 1000 => *k as u32,
            toml::Value::Array(_) => {
                return Err(src.at(
                    s.span(),
                    "seeds",
                    "`seeds` is now the number of runs per cell; each run's seed derives from `seed`",
                ))
            }
            other => {
                return Err(src.at(
                    s.span(),
                    "seeds",
                    format!("expected a number of runs per cell in 1..=1000, found {other}"),
                ))
            }
        },
    };
    Ok(seeds)
}

/// `hardware`: a built-in profile's name or a file, resolved against `base_dir`.
fn parse_hardware(src: &Source, raw: &RawExperiment, base_dir: &Path) -> Result<HardwareSource, ExperimentError> {
    let hardware = match &raw.hardware {
        None => return Err(src.whole("missing key `hardware` (a built-in profile name, e.g. \"kwon2008\", or a path)")),
        Some(h) if h.get_ref().trim().is_empty() => {
            return Err(src.at(h.span(), "hardware", "expected a built-in profile name or a file path"))
        }
        Some(h) => {
            let given = h.get_ref().trim();
            if dl7_core::hardware::BUILTIN.contains(&given) {
                HardwareSource::Builtin(given.to_string())
            } else if is_path(given) {
                HardwareSource::File(resolve(given, base_dir))
            } else {
                return Err(src.at(
                    h.span(),
                    "hardware",
                    format!(
                        "unknown built-in profile {given:?}, expected one of {} or a path to a .toml file",
                        dl7_core::hardware::BUILTIN.join(", ")
                    ),
                ));
            }
        }
    };
    Ok(hardware)
}

/// `sweep.servers`: distinct server counts in 1..=MAX_SERVERS.
fn parse_servers(src: &Source, sweep: &RawSweep) -> Result<Vec<u32>, ExperimentError> {
    let servers = nonempty(src, &sweep.servers, "sweep.servers", "server counts")?;
    let mut server_counts = Vec::new();
    for s in servers {
        let n = *s.get_ref();
        if n == 0 || n > MAX_SERVERS {
            return Err(src.at(
                s.span(),
                "sweep.servers",
                format!("expected a server count in 1..={MAX_SERVERS}, found {n}"),
            ));
        }
        if server_counts.contains(&n) {
            return Err(src.at(s.span(), "sweep.servers", format!("server count {n} is listed twice")));
        }
        server_counts.push(n);
    }

    Ok(server_counts)
}

/// `sweep.archs`: distinct architectures.
fn parse_archs(src: &Source, sweep: &RawSweep) -> Result<Vec<Arch>, ExperimentError> {
    let mut archs = Vec::new();
    for a in nonempty(src, &sweep.archs, "sweep.archs", "architectures")? {
        let arch = Arch::from_name(a.get_ref()).ok_or_else(|| {
            src.at(
                a.span(),
                "sweep.archs",
                format!("expected one of conventional, distributed, found {:?}", a.get_ref()),
            )
        })?;
        if archs.contains(&arch) {
            return Err(src.at(a.span(), "sweep.archs", format!("{:?} is listed twice", a.get_ref())));
        }
        archs.push(arch);
    }

    Ok(archs)
}

/// A sweep's workloads with their labels, and where each is written.
type Workloads = (Vec<(String, WorkloadSource)>, Vec<Range<usize>>);

/// `sweep.workloads`: built-in names or files, with distinct labels.
fn parse_workloads(src: &Source, sweep: &RawSweep, base_dir: &Path) -> Result<Workloads, ExperimentError> {
    let mut workloads: Vec<(String, WorkloadSource)> = Vec::new();
    let mut workload_spans = Vec::new();
    for w in nonempty(src, &sweep.workloads, "sweep.workloads", "workload names or paths")? {
        let given = w.get_ref().trim();
        if given.is_empty() {
            return Err(src.at(w.span(), "sweep.workloads", "expected a workload name or path, found \"\""));
        }
        let source = if dl7_traces::workload::BUILTIN.contains(&given) {
            WorkloadSource::Builtin(given.to_string())
        } else {
            WorkloadSource::File(resolve(given, base_dir))
        };
        let label = match &source {
            WorkloadSource::Builtin(n) => n.clone(),
            WorkloadSource::File(p) => p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        if workloads.iter().any(|(l, _)| *l == label) {
            return Err(src.at(w.span(), "sweep.workloads", format!("workload {label:?} is listed twice")));
        }
        workloads.push((label, source));
        workload_spans.push(w.span());
    }

    Ok((workloads, workload_spans))
}

/// The `[run]` table's window, interval and cache sizes.
struct Window {
    warmup_s: f64,
    measure_s: f64,
    interval_s: f64,
    cache_bytes_per_server: Option<u64>,
    max_object_bytes: Option<u64>,
}

/// `[run]`: a replay's window is its trace, any other needs `measure_s`.
fn parse_window(src: &Source, run: Option<&RawRun>, replay: bool) -> Result<Window, ExperimentError> {
    let seconds = |v: Option<&Spanned<f64>>, key: &str, zero_ok: bool| -> Result<Option<f64>, ExperimentError> {
        let Some(v) = v else { return Ok(None) };
        let x = *v.get_ref();
        if x.is_finite() && (x > 0.0 || (zero_ok && x == 0.0)) {
            Ok(Some(x))
        } else {
            let bound = if zero_ok { ">= 0" } else { "> 0" };
            Err(src.at(v.span(), key, format!("expected seconds {bound}, found {x}")))
        }
    };
    let warmup_s = seconds(run.and_then(|r| r.warmup_s.as_ref()), "run.warmup_s", true)?;
    let measure_s = seconds(run.and_then(|r| r.measure_s.as_ref()), "run.measure_s", false)?;
    let (warmup_s, measure_s) = match (warmup_s, measure_s, replay) {
        // A replay measures the whole trace: the window is its own.
        (w, m, true) => (w.unwrap_or(0.0), m.unwrap_or(0.0)),
        (w, Some(m), false) => (w.unwrap_or(0.0), m),
        (_, None, false) => {
            return Err(src.whole(
                "missing key `run.measure_s` (seconds measured; only clients.mode = \"replay\" runs without it)",
            ))
        }
    };
    let interval_s = match run.and_then(|r| r.interval_s.as_ref()) {
        None => DEFAULT_INTERVAL_S,
        Some(v) => {
            let x = *v.get_ref();
            if !(x.is_finite() && x >= MIN_INTERVAL_S) {
                return Err(src.at(
                    v.span(),
                    "run.interval_s",
                    format!("expected seconds per interval >= {MIN_INTERVAL_S}, found {x}"),
                ));
            }
            x
        }
    };
    let cache_bytes_per_server = match run.and_then(|r| r.cache_mb.as_ref()) {
        None => None,
        Some(c) => {
            let mb = *c.get_ref();
            if !(mb.is_finite() && mb > 0.0) {
                return Err(src.at(c.span(), "run.cache_mb", format!("expected MiB per server > 0, found {mb}")));
            }
            Some((mb * MIB).round() as u64)
        }
    };
    let max_object_bytes = match run.and_then(|r| r.max_object_mb.as_ref()) {
        None => None,
        Some(c) => {
            let mb = *c.get_ref();
            if !(mb.is_finite() && mb >= 0.0) {
                return Err(src.at(c.span(), "run.max_object_mb", format!("expected MiB >= 0, found {mb}")));
            }
            Some((mb * MIB).round() as u64)
        }
    };

    Ok(Window { warmup_s, measure_s, interval_s, cache_bytes_per_server, max_object_bytes })
}

/// `run.hash_key`: `url` unless the file says `path`.
fn parse_hash_key(src: &Source, run: Option<&RawRun>) -> Result<dl7_core::HashKey, ExperimentError> {
    match run.and_then(|r| r.hash_key.as_ref()) {
        None => Ok(dl7_core::HashKey::default()),
        Some(k) => k.get_ref().parse().map_err(|e| src.at(k.span(), "run.hash_key", e)),
    }
}

/// `[real]`: the real engines' settings over their defaults.
fn parse_real(src: &Source, raw: Option<&RawReal>) -> Result<RealSettings, ExperimentError> {
    let real = match raw {
        None => RealSettings::default(),
        Some(r) => {
            if let Some(d) = &r.distill {
                return Err(src.at(
                    d.span(),
                    "real.distill",
                    "distill is part of the hardware profile (`server.distill_ns_per_byte`: the image distiller), the same in every engine",
                ));
            }
            let d = RealSettings::default();
            let max_connections = match &r.max_connections {
                Some(m) if *m.get_ref() == 0 => {
                    return Err(src.at(m.span(), "real.max_connections", "expected at least 1 connection, found 0"))
                }
                Some(m) => *m.get_ref(),
                None => d.max_connections,
            };
            let worker_threads = match &r.worker_threads {
                Some(w) if *w.get_ref() == 0 => {
                    return Err(src.at(w.span(), "real.worker_threads", "expected at least 1 thread, found 0"))
                }
                w => w.as_ref().map(|w| *w.get_ref()),
            };
            let at_least_one = |v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
                Some(v) if *v.get_ref() == 0 => {
                    Err(src.at(v.span(), key, "expected at least 1 probe in a row, found 0"))
                }
                Some(v) => Ok(*v.get_ref()),
                None => Ok(default),
            };
            let health = dl7_services::spec::HealthSpec {
                interval_ms: match &r.health_interval_ms {
                    Some(v) if *v.get_ref() == 0 => {
                        return Err(src.at(
                            v.span(),
                            "real.health_interval_ms",
                            "expected at least 1 millisecond between probes, found 0",
                        ))
                    }
                    Some(v) => *v.get_ref(),
                    None => d.health.interval_ms,
                },
                rise: at_least_one(&r.rise, "real.rise", d.health.rise)?,
                fall: at_least_one(&r.fall, "real.fall", d.health.fall)?,
                check: match &r.health {
                    Some(v) => v.get_ref().parse().map_err(|e| src.at(v.span(), "real.health", e))?,
                    None => d.health.check,
                },
                panic_percent: match &r.panic_percent {
                    Some(v) if *v.get_ref() > 100 => {
                        return Err(src.at(v.span(), "real.panic_percent", "expected 0 to 100"))
                    }
                    Some(v) => *v.get_ref(),
                    None => d.health.panic_percent,
                },
                ..d.health
            };
            let origin = match &r.origin {
                Some(v) => {
                    let origin = v.get_ref().parse().map_err(|e| src.at(v.span(), "real.origin", e))?;
                    if r.origin_delay_ms.is_some() {
                        return Err(src.at(
                            v.span(),
                            "real.origin",
                            "origin_delay_ms is a delay of dl7's own origin; an external origin is as fast as it is",
                        ));
                    }
                    Some(origin)
                }
                None => None,
            };
            RealSettings {
                origin,
                fallbacks: r.fallbacks.unwrap_or(d.fallbacks),
                upstream_timeout_ms: r.upstream_timeout_ms.unwrap_or(d.upstream_timeout_ms),
                head_timeout_ms: r.head_timeout_ms.unwrap_or(d.head_timeout_ms),
                request_timeout_ms: r.request_timeout_ms.unwrap_or(d.request_timeout_ms),
                max_connections,
                origin_delay_ms: r.origin_delay_ms.unwrap_or(d.origin_delay_ms),
                emulate_cpu: r.emulate_cpu,
                worker_threads,
                health,
                rampup_s: match &r.rampup_s {
                    Some(v) if std::time::Duration::try_from_secs_f64(*v.get_ref()).is_err() => {
                        return Err(src.at(
                            v.span(),
                            "real.rampup_s",
                            format!("expected a non-negative number of seconds, found {}", v.get_ref()),
                        ))
                    }
                    Some(v) => *v.get_ref(),
                    None => d.rampup_s,
                },
                // A secret is no part of an experiment file: `dl7 sweep` reads it from the environment.
                admin_token: None,
            }
        }
    };

    Ok(real)
}

/// `[lab] topology`: the lab file, resolved against `base_dir`, and where it is written.
fn parse_lab(
    src: &Source,
    raw: &RawExperiment,
    base_dir: &Path,
) -> Result<(Option<PathBuf>, Range<usize>), ExperimentError> {
    let (lab_topology, lab_span) = match &raw.lab {
        None => (None, 0..0),
        Some(v) => match v.get_ref() {
            toml::Value::String(_) => {
                return Err(src.at(v.span(), "lab", "the lab file moved to `[lab] topology = \"LAB.toml\"`"))
            }
            toml::Value::Table(t) => {
                let lab: RawLab = toml::Value::Table(t.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| src.at(v.span(), "lab", e.message().trim().replace('\n', " ")))?;
                (Some(resolve(&lab.topology, base_dir)), v.span())
            }
            other => return Err(src.at(v.span(), "lab", format!("expected a table, found {}", other.type_str()))),
        },
    };

    Ok((lab_topology, lab_span))
}

/// `[[faults]]`: each one read, then the schedule checked on every server count.
fn parse_faults(
    src: &Source,
    raw: &RawExperiment,
    replay: bool,
    measure_s: f64,
    server_counts: &[u32],
) -> Result<Vec<PlannedFault>, ExperimentError> {
    let mut faults = Vec::new();
    for (k, f) in raw.faults.iter().flatten().enumerate() {
        let key = |field: &str| format!("faults[{k}].{field}");
        let action = FaultAction::from_name(f.action.get_ref()).ok_or_else(|| {
            src.at(
                f.action.span(),
                &key("action"),
                format!("unknown action {:?}, expected kill, restart, leave or join", f.action.get_ref()),
            )
        })?;
        let at_s = *f.at_s.get_ref();
        if replay {
            return Err(src.at(
                f.at_s.span(),
                &key("at_s"),
                "a replay has no clock to schedule faults on: use a timed clients.mode",
            ));
        }
        if !(at_s.is_finite() && at_s >= 0.0 && at_s < measure_s) {
            return Err(src.at(
                f.at_s.span(),
                &key("at_s"),
                format!("expected seconds in [0, run.measure_s = {measure_s}), found {at_s}"),
            ));
        }
        let node = f.node.as_ref().map(|n| *n.get_ref());
        if node.is_none() && action != FaultAction::Join {
            return Err(src.at(f.action.span(), &key("node"), "missing: which node (0-based index)"));
        }
        faults.push(PlannedFault { at_s, action, node });
    }
    for &servers in server_counts {
        if let Err((k, why)) = Timeline::check(&faults_for(&faults, servers), servers) {
            let f = &raw.faults.as_ref().expect("checked faults exist")[k];
            let (span, field) = match (why.field(), &f.node) {
                ("at_s", _) => (f.at_s.span(), "at_s"),
                (_, Some(n)) => (n.span(), "node"),
                (_, None) => (f.action.span(), "action"),
            };
            return Err(src.at(span, &format!("faults[{k}].{field}"), format!("with {servers} servers: {why}")));
        }
    }

    Ok(faults)
}

/// `sweep.evictions` (distinct names) or `run.eviction` (one), not both;
/// neither: LRU.
fn parse_evictions(src: &Source, sweep: &RawSweep, run: Option<&RawRun>) -> Result<Vec<Eviction>, ExperimentError> {
    let one = run.and_then(|r| r.eviction.as_ref());
    let Some(list) = &sweep.evictions else {
        return match one {
            None => Ok(vec![Eviction::default()]),
            Some(e) => Ok(vec![e.get_ref().parse().map_err(|m| src.at(e.span(), "run.eviction", m))?]),
        };
    };
    if let Some(e) = one {
        return Err(src.at(
            e.span(),
            "run.eviction",
            "`sweep.evictions` already lists the evictions: give one of the two keys",
        ));
    }
    let mut evictions = Vec::new();
    for e in nonempty(src, list, "sweep.evictions", "evictions")? {
        let eviction: Eviction = e.get_ref().parse().map_err(|m| src.at(e.span(), "sweep.evictions", m))?;
        if evictions.contains(&eviction) {
            return Err(src.at(e.span(), "sweep.evictions", format!("{:?} is listed twice", e.get_ref())));
        }
        evictions.push(eviction);
    }
    Ok(evictions)
}

fn parse_policies(
    src: &Source,
    raw: &RawExperiment,
    sweep: &RawSweep,
    server_counts: &[u32],
) -> Result<Vec<PolicySpec>, ExperimentError> {
    let mut policies: Vec<PolicySpec> = Vec::new();
    for p in nonempty(src, &sweep.policies, "sweep.policies", "policy names")? {
        let kind = PolicyKind::from_name(p.get_ref()).map_err(|_| {
            src.at(
                p.span(),
                "sweep.policies",
                format!("unknown policy {:?}, expected one of {}", p.get_ref(), PolicyKind::valid_names()),
            )
        })?;
        if policies.iter().any(|q| q.kind == kind) {
            return Err(src.at(p.span(), "sweep.policies", format!("{:?} is listed twice", p.get_ref())));
        }
        policies.push(PolicySpec::new(kind));
    }
    for (pname, table) in &raw.policy {
        let key = format!("policy.{pname}");
        let Some(spec) = policies.iter_mut().find(|s| s.kind.name() == pname) else {
            return Err(src.at(
                table.span(),
                &key,
                format!("parameters for {pname:?}, which is not in sweep.policies"),
            ));
        };
        for (k, v) in table.get_ref() {
            let value = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(src.at(
                        table.span(),
                        &format!("{key}.{k}"),
                        format!("expected a string, number or boolean, found {}", other.type_str()),
                    ))
                }
            };
            spec.params.insert(k.clone(), value);
        }
    }
    // Build every policy once for every cluster size so that a bad
    // parameter (or a policy this build lacks) is reported here, against
    // the file, rather than by a worker in the middle of a sweep.
    for spec in &policies {
        for &n in server_counts {
            let members = Membership::numbered(n as usize)
                .map_err(|e| src.whole(format!("cannot form a {n}-server membership: {e}")))?;
            if let Err(e) = spec.build(&members) {
                let key =
                    if spec.params.is_empty() { "sweep.policies".to_string() } else { format!("policy.{}", spec.kind) };
                let span = raw
                    .policy
                    .get(spec.kind.name())
                    .map(|t| t.span())
                    .or_else(|| {
                        sweep.policies.get_ref().iter().find(|p| p.get_ref() == spec.kind.name()).map(|p| p.span())
                    })
                    .unwrap_or(0..0);
                return Err(src.at(span, &key, format!("policy {} with {n} servers: {e}", spec.kind)));
            }
        }
    }
    Ok(policies)
}

/// Where top-level `key` is written in `text`, for messages: its assignment
/// before the first table, or its table header (`[key]`, `[[key]]`); the
/// file's start when it is not found.
fn top_level_key(text: &str, key: &str) -> Range<usize> {
    let mut at = 0;
    let mut in_table = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let start = at + (line.len() - t.len());
        // A table header `[key]` or `[[key]]` (a typo such as `[client]` included).
        if let Some(header) = t.strip_prefix('[') {
            let name = header.trim_start_matches('[');
            let name = name.split(']').next().unwrap_or("").trim();
            if name == key {
                let offset = t.find(key).unwrap_or(0);
                return start + offset..start + offset + key.len();
            }
            in_table = true;
        } else if !in_table {
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return start..start + key.len();
                }
            }
        }
        at += line.len();
    }
    0..0
}

/// A value with a path separator or a file extension names a file.
fn is_path(given: &str) -> bool {
    given.contains('/') || given.contains('\\') || given.contains('.')
}

/// `given` relative to the experiment file's directory (absolute paths kept).
fn resolve(given: &str, base_dir: &Path) -> PathBuf {
    let p = Path::new(given.trim());
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

fn parse_clients(src: &Source, c: &RawClients) -> Result<ClientMode, ExperimentError> {
    let mode = c.mode.get_ref().as_str();
    // Each key is read by some modes only; any other is an error, not ignored.
    let only = |key: &str, span: Option<Range<usize>>, modes: &str| match span {
        Some(s) => {
            Err(src.at(s, &format!("clients.{key}"), format!("`{key}` is read only in mode {modes}, not {mode:?}")))
        }
        None => Ok(()),
    };
    fn span<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
        v.as_ref().map(|v| v.span())
    }
    match mode {
        "closed" | "onoff" | "poisson" | "replay" => {}
        other => {
            return Err(src.at(
                c.mode.span(),
                "clients.mode",
                format!("expected one of closed, onoff, poisson, replay, found {other:?}"),
            ))
        }
    }
    if mode != "poisson" {
        only("rate", span(&c.rate), "\"poisson\"")?;
    }
    if mode != "replay" {
        only("connections", span(&c.connections), "\"replay\"")?;
        only("warmup_requests", span(&c.warmup_requests), "\"replay\"")?;
        only("speed", span(&c.speed), "\"replay\"")?;
        only("max_outstanding", span(&c.max_outstanding), "\"replay\" with `speed`")?;
    }
    if mode == "poisson" || mode == "replay" {
        only("per_server", span(&c.per_server), "\"closed\" or \"onoff\"")?;
    }
    let per_server = c.per_server.as_ref().map_or(DEFAULT_PER_SERVER, |p| *p.get_ref());
    let clients = match mode {
        "closed" => ClientMode::Closed { per_server },
        "onoff" => ClientMode::OnOff { per_server },
        "poisson" => {
            let Some(rate) = &c.rate else {
                return Err(src.at(
                    c.mode.span(),
                    "clients.rate",
                    "mode \"poisson\" needs rate = <requests per second>",
                ));
            };
            ClientMode::Poisson { rate: *rate.get_ref() }
        }
        _ => {
            let pace = match (&c.speed, &c.max_outstanding) {
                (None, None) => None,
                (None, Some(m)) => {
                    return Err(src.at(
                        m.span(),
                        "clients.max_outstanding",
                        "`max_outstanding` bounds a timed replay: it is read only with `speed`",
                    ))
                }
                (Some(v), m) => Some(Pace {
                    speed: *v.get_ref(),
                    max_outstanding: m.as_ref().map_or(Pace::DEFAULT_MAX_OUTSTANDING, |m| *m.get_ref()),
                }),
            };
            ClientMode::Replay {
                connections: c.connections.as_ref().map_or(1, |k| *k.get_ref()),
                warmup_requests: c.warmup_requests.as_ref().map_or(0, |w| *w.get_ref()),
                pace,
            }
        }
    };
    // The ranges are the core's, the same for every engine; the error names its key.
    clients.validate().map_err(|e| {
        let at = match e.field() {
            "per_server" => span(&c.per_server),
            "rate" => span(&c.rate),
            "connections" => span(&c.connections),
            "speed" => span(&c.speed),
            _ => span(&c.max_outstanding),
        };
        src.at(at.unwrap_or_else(|| c.mode.span()), &format!("clients.{}", e.field()), e.to_string())
    })?;
    Ok(clients)
}

fn nonempty<'a, T>(
    src: &Source,
    list: &'a Spanned<Vec<Spanned<T>>>,
    key: &str,
    what: &str,
) -> Result<&'a [Spanned<T>], ExperimentError> {
    if list.get_ref().is_empty() {
        return Err(src.at(list.span(), key, format!("expected a non-empty list of {what}, found []")));
    }
    Ok(list.get_ref())
}

/// Reads a workload by name or path: a built-in model, a workload file, or a
/// trace file (catalog and requests).
fn load_workload(source: &WorkloadSource) -> Result<Trace, String> {
    match source {
        WorkloadSource::Builtin(name) => {
            dl7_traces::workload::builtin(name).map(Trace::from_catalog).map_err(|e| e.to_string())
        }
        WorkloadSource::File(path) => Trace::resolve(&path.display().to_string()).map_err(|e| e.to_string()),
    }
}

/// Reads the hardware profile by name or path.
fn load_hardware(source: &HardwareSource) -> Result<Hardware, String> {
    match source {
        HardwareSource::Builtin(name) => Hardware::builtin(name).map_err(|e| e.to_string()),
        HardwareSource::File(path) => {
            let origin = path.display().to_string();
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read hardware profile {origin}: {e}"))?;
            Hardware::from_toml_str(&text, &origin).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
seed = 7
seeds = 2
hardware = "kwon2008"

[sweep]
servers = [1, 4]
policies = ["rr", "md5"]
archs = ["conventional", "distributed"]
workloads = ["surge100"]

[run]
warmup_s = 1.0
measure_s = 2.0
"#;

    fn parse(text: &str) -> Result<Plan, ExperimentError> {
        Plan::parse(text, "exp.toml", Path::new("experiments"))
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("should be rejected").0
    }

    #[test]
    fn a_fault_schedule_is_read_and_checked_against_every_cell() {
        let fault = |at: &str, action: &str, node: u32| {
            format!("\n[[faults]]\nat_s = {at}\naction = \"{action}\"\nnode = {node}\n")
        };
        let join = "\n[[faults]]\nat_s = 1.0\naction = \"join\"\n";
        let good = GOOD.replace("servers = [1, 4]", "servers = [2, 4]");
        let plan = parse(&format!("{good}{}{join}", fault("0.5", "kill", 1))).unwrap();
        assert_eq!(plan.faults.len(), 2);
        // A join without a node adds each cell's next index.
        assert_eq!(plan.faults_for(2)[1], Fault { at_s: 1.0, action: FaultAction::Join, node: 2 });
        assert_eq!(plan.faults_for(4)[1].node, 4);
        // Node 2 is the next new node only with 2 servers: the 4-server cell refuses it.
        let e = err(&format!("{good}{}", fault("1.0", "join", 2)));
        assert!(e.contains("faults[0].node") && e.contains("with 4 servers"), "{e}");
        let e = err(&format!("{good}\n[[faults]]\nat_s = 1.0\naction = \"kill\"\n"));
        assert!(e.contains("faults[0].node") && e.contains("missing"), "{e}");
        let e = err(&format!("{good}{}", fault("0.5", "crash", 1)));
        assert!(e.contains("faults[0].action") && e.contains("kill, restart, leave or join"), "{e}");
        let e = err(&format!("{good}{}", fault("2.5", "kill", 1)));
        assert!(e.contains("faults[0].at_s") && e.contains("measure_s = 2"), "{e}");
        let e = err(&format!("{good}{}{}", fault("1.0", "kill", 1), fault("0.5", "restart", 1)));
        assert!(e.contains("faults[1].at_s") && e.contains("time order"), "{e}");
        let e = err(&format!("{good}{}", fault("0.5", "restart", 0)));
        assert!(e.contains("only a killed node restarts"), "{e}");
        let with = parse(&format!("{good}{}", fault("0.5", "kill", 1))).unwrap();
        // Every engine takes them: what the lab and ssh engines lack here is a lab.
        assert!(with.check_engine(Engine::Local).is_ok());
        for engine in [Engine::Lab, Engine::Ssh] {
            assert!(with.check_engine(engine).unwrap_err().0.contains("[lab] topology"));
        }
        // A lab must have a host for every node a cell will have, the joined ones included.
        let in_lab = format!("{}\n[lab]\ntopology = \"lab-2nodes.toml\"\n", GOOD.replace("[1, 4]", "[2]"));
        let fits = parse(&format!("{in_lab}{}", fault("0.5", "kill", 1))).unwrap();
        assert!(fits.check_engine(Engine::Lab).unwrap().is_some_and(|l| l.nodes == 2));
        let e = parse(&format!("{in_lab}{join}")).unwrap().check_engine(Engine::Ssh).unwrap_err().0;
        assert!(e.contains("lab.topology") && e.contains("has 2 nodes") && e.contains("up to 3 (servers and"), "{e}");
    }

    #[test]
    fn the_hash_key_is_every_engines_and_the_ramp_up_the_real_engines() {
        let plan = parse(GOOD).unwrap();
        assert_eq!((plan.hash_key, plan.real.rampup_s), (dl7_core::HashKey::Url, 0.0));
        let text = format!("{GOOD}hash_key = \"path\"\n[real]\nrampup_s = 2.5\n");
        let plan = parse(&text).unwrap();
        assert_eq!((plan.hash_key, plan.real.rampup_s, plan.real.admin_token), (dl7_core::HashKey::Path, 2.5, None));
        let e = err(&format!("{GOOD}hash_key = \"query\"\n"));
        assert!(e.starts_with("exp.toml:") && e.contains("`run.hash_key`") && e.contains("url or path"), "{e}");
        for bad in ["-1.0", "nan", "inf"] {
            let e = err(&format!("{GOOD}[real]\nrampup_s = {bad}\n"));
            assert!(e.contains("`real.rampup_s`") && e.contains("non-negative number of seconds"), "{bad}: {e}");
        }
        let e = err(&format!("{GOOD}[real]\nadmin_token = \"x\"\n"));
        assert!(e.contains("admin_token"), "a secret has no key in an experiment file: {e}");
    }

    #[test]
    fn good_file_gives_cells_in_order() {
        let plan = parse(GOOD).unwrap();
        assert_eq!((plan.cells.len(), plan.run_count(), plan.engine), (8, 16, Engine::Sim));
        let c = &plan.cells[1];
        assert_eq!((c.arch, c.policy.kind, c.servers), (Arch::Conventional, PolicyKind::Rr, 4));
        assert_eq!(plan.clients, ClientMode::Closed { per_server: 63 });
        assert_eq!(plan.real, RealSettings::default());
    }

    #[test]
    fn shipped_experiments_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
        for name in [
            "paper",
            "quick",
            "real-local",
            "lab-scaling",
            "replay-local",
            "replay-timed",
            "lab-ssh",
            "cdn-scale",
            "soak",
            "failover",
            "failover-lab",
            "eviction",
            "eviction-small",
        ] {
            let plan = Plan::from_file(&dir.join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(plan.name, name);
        }
        let paper = Plan::from_file(&dir.join("paper.toml")).unwrap();
        assert_eq!((paper.cells.len(), paper.seeds, paper.engine), (5 * 6 * 2 * 3, 3, Engine::Sim));
        let failover = Plan::from_file(&dir.join("failover.toml")).unwrap();
        assert_eq!((failover.faults.len(), failover.cells.len()), (4, 4));
        // Its lab twin: 8 nodes and the one it joins fit the 9-node lab.
        let in_lab = Plan::from_file(&dir.join("failover-lab.toml")).unwrap();
        assert!(in_lab.check_engine(Engine::Lab).unwrap().is_some_and(|l| l.nodes == 9));
        let lab = Plan::from_file(&dir.join("lab-scaling.toml")).unwrap();
        assert_eq!(lab.engine, Engine::Lab);
        assert!(lab.real.emulate_cpu && lab.check_engine(Engine::Lab).unwrap().is_some_and(|l| l.nodes == 8));
        let ssh = Plan::from_file(&dir.join("lab-ssh.toml")).unwrap();
        assert_eq!(ssh.engine, Engine::Ssh);
        let topology = ssh.check_engine(Engine::Ssh).unwrap().unwrap();
        assert_eq!((topology.nodes, topology.clients, topology.ssh.dl7.as_str()), (2, 2, "dl7"));
        let cdn = Plan::from_file(&dir.join("cdn-scale.toml")).unwrap();
        assert_eq!((cdn.cells.len(), cdn.seeds), (7 * 4 * 2, 2));
        let replay = Plan::from_file(&dir.join("replay-local.toml")).unwrap().load().unwrap();
        assert_eq!(replay.workloads[0].requests.len(), 9126);
        let timed = Plan::from_file(&dir.join("replay-timed.toml")).unwrap().load().unwrap();
        let pace = Some(Pace { speed: 15000.0, max_outstanding: 4096 });
        assert_eq!(timed.plan.clients, ClientMode::Replay { connections: 4, warmup_requests: 0, pace });
        assert_eq!((timed.plan.interval_s, timed.workloads[0].times.len()), (0.5, 9126));
        // Well under a minute per run: the log's span over the speed.
        let s = dl7_traces::Schedule::new(&timed.workloads[0].times, 15000.0).unwrap().duration_s();
        assert!(s > 15.0 && s < 25.0, "{s}");
        // The eviction sweeps: the paper's testbed, then the same cells with caches that must evict
        // (its own testbed: REPORT.md compares only the first with the paper's tables).
        let eviction = Plan::from_file(&dir.join("eviction.toml")).unwrap().load().unwrap();
        let small = Plan::from_file(&dir.join("eviction-small.toml")).unwrap().load().unwrap();
        for e in [&eviction, &small] {
            assert_eq!((e.plan.cells.len(), e.plan.seeds), (5 * 3 * 2 * 3 * 5, 3));
        }
        assert!(eviction.paper_testbed(Engine::Sim) && !small.paper_testbed(Engine::Sim));
        assert_eq!((small.cache_bytes_per_server(), small.max_object_bytes()), (209_715, 104_858));
    }

    #[test]
    fn caches_other_than_the_profiles_are_not_the_paper_testbed() {
        let paper =
            |extra: &str| parse(&GOOD.replace("warmup_s = 1.0\nmeasure_s = 2.0", extra)).unwrap().load().unwrap();
        let window = "warmup_s = 10.0\nmeasure_s = 20.0";
        assert!(paper(window).paper_testbed(Engine::Sim));
        assert!(!paper(window).paper_testbed(Engine::Local));
        // The profile's own values, written out, are still its testbed.
        assert!(paper(&format!("{window}\ncache_mb = 64.0\nmax_object_mb = 8.0")).paper_testbed(Engine::Sim));
        assert!(!paper(&format!("{window}\ncache_mb = 1.0")).paper_testbed(Engine::Sim));
        assert!(!paper(&format!("{window}\nmax_object_mb = 1.0")).paper_testbed(Engine::Sim));
    }

    #[test]
    fn a_timed_replay_needs_a_speed_above_zero_and_a_trace_with_times() {
        let clients = |c: &str| GOOD.replace("\n[run]", &format!("\n[clients]\nmode = \"replay\"\n{c}\n[run]"));
        let plan = parse(&clients("speed = 2.5")).unwrap();
        let pace = Some(Pace { speed: 2.5, max_outstanding: Pace::DEFAULT_MAX_OUTSTANDING });
        assert_eq!(plan.clients, ClientMode::Replay { connections: 1, warmup_requests: 0, pace });
        for bad in ["speed = 0.0", "speed = -1.0", "speed = nan"] {
            let e = err(&clients(bad));
            assert!(e.starts_with("exp.toml:15:9:") && e.contains("`clients.speed`") && e.contains("> 0"), "{e}");
        }
        let e = err(&clients("max_outstanding = 5"));
        assert!(e.contains("`clients.max_outstanding`") && e.contains("only with `speed`"), "{e}");
        let e = err(&clients("speed = 1.0\nmax_outstanding = 0"));
        assert!(e.contains("`clients.max_outstanding`") && e.contains(">= 1"), "{e}");
        let e = err(&GOOD.replace("\n[run]", "\n[clients]\nmode = \"closed\"\nspeed = 2.0\n[run]"));
        assert!(e.contains("`clients.speed`") && e.contains("only in mode \"replay\""), "{e}");

        // A trace without times: the error points at `speed` and says what to do.
        let dir = std::env::temp_dir().join(format!("dl7-exp-untimed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let catalog = dl7_traces::workload::builtin("webstone").unwrap();
        let untimed = Trace { catalog, requests: vec![ObjectId(0), ObjectId(1)], times: Vec::new() };
        untimed.save(&dir.join("untimed.trace")).unwrap();
        let text = clients("speed = 2.0").replace("\"surge100\"", "\"untimed.trace\"");
        let e = Plan::parse(&text, "exp.toml", &dir).unwrap().load().unwrap_err().0;
        assert!(
            e.starts_with("exp.toml:15:9:") && e.contains("needs request times") && e.contains("drop `speed`"),
            "{e}"
        );
        let closed = clients("").replace("\"surge100\"", "\"untimed.trace\"");
        assert!(Plan::parse(&closed, "exp.toml", &dir).unwrap().load().is_ok(), "closed loop needs no times");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_interval_defaults_to_a_second_and_must_be_a_millisecond_or_more() {
        assert_eq!(parse(GOOD).unwrap().interval_s, 1.0);
        let with = |v: &str| GOOD.replace("measure_s = 2.0", &format!("measure_s = 2.0\ninterval_s = {v}"));
        assert_eq!(parse(&with("0.25")).unwrap().interval_s, 0.25);
        for bad in ["0.0", "0.0001", "-1.0"] {
            let e = err(&with(bad));
            assert!(e.starts_with("exp.toml:16:14:") && e.contains("`run.interval_s`"), "{e}");
        }
    }

    #[test]
    fn every_old_key_names_its_new_place() {
        for (old, new) in MOVED {
            let e = err(&GOOD.replace("seeds = 2", &format!("seeds = 2\n{old} = 1")));
            assert!(e.starts_with("exp.toml:5:1:") && e.contains(&format!("`{old}`")), "{e}");
            assert!(e.contains(new), "{old}: {e}");
        }
        assert!(err(&GOOD.replace("seeds = 2", "seeds = [1, 2]")).contains("number of runs per cell"));
        assert!(err(&GOOD.replace("measure_s = 2.0", "measure_s = 2.0\ncache_bytes_per_server = 5"))
            .contains("run.cache_mb"));
        assert!(err(&format!("{GOOD}[real]\ndistill = true\n")).contains("distill_ns_per_byte"));
        let e = err(&format!("{GOOD}[real]\nworker_threads = 0\n"));
        assert!(e.contains("`real.worker_threads`") && e.contains("at least 1 thread"), "{e}");
        assert_eq!(parse(&format!("{GOOD}[real]\nworker_threads = 1\n")).unwrap().real.worker_threads, Some(1));
        assert!(err(&format!("lab = \"x.toml\"\n{GOOD}")).contains("[lab] topology"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_file_line_and_key() {
        let e = err(&GOOD.replace("servers = [1, 4]", "servers = [1, 4]\nserverz = [2]"));
        assert!(e.starts_with("exp.toml:9:") && e.contains("serverz"), "{e}");
        let e = err(&GOOD.replace("measure_s = 2.0", "measure_s = \"long\""));
        assert!(e.starts_with("exp.toml:15:13:") && e.contains("`run.measure_s`"), "{e}");
        let e = err(&GOOD.replace("seeds = 2", "seeds = 2\ncolour = 1"));
        assert!(e.contains("`colour`") && e.contains("unknown key"), "{e}");
        // A misspelt table is reported at its header, not at the file's first line.
        let line = GOOD.lines().count() + 2;
        let e = err(&format!("{GOOD}\n[client]\nmode = \"closed\"\n"));
        assert!(e.starts_with(&format!("exp.toml:{line}:2:")) && e.contains("`client`"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(err(&GOOD.replace("[1, 4]", "[]")).contains("`sweep.servers`: expected a non-empty list"));
        assert!(err(&GOOD.replace("[1, 4]", "[4, 4]")).contains("listed twice"));
        assert!(err(&GOOD.replace("\"distributed\"]", "\"dist\"]")).contains("`sweep.archs`"));
        assert!(err(&GOOD.replace("\"md5\"]", "\"md6\"]")).contains("mod_ch"));
        assert!(err(&GOOD.replace("warmup_s = 1.0", "warmup_s = -1.0")).contains("`run.warmup_s`"));
        assert!(err(&GOOD.replace("name = \"t\"", "name = \"../x\"")).contains("`name`"));
        assert!(err(&GOOD.replace("seed = 7", "seed = 7\nengine = \"gpu\"")).contains("`engine`"));
        assert!(err(&GOOD.replace("seed = 7", "seed = 7\nengine = \"ssl\"")).contains("sim, local, lab, ssh"));
        let clients = |c: &str| err(&GOOD.replace("\n[run]", &format!("\n[clients]\n{c}\n[run]")));
        assert!(clients("mode = \"poisson\"").contains("`clients.rate`"));
        assert!(clients("mode = \"open\"").contains("`clients.mode`"));
        assert!(clients("mode = \"closed\"\nconnections = 2").contains("only in mode \"replay\""));
        assert!(clients("mode = \"replay\"\nper_server = 2").contains("`clients.per_server`"));
    }

    #[test]
    fn an_external_origin_is_an_http_url_with_a_port() {
        let real = |r: &str| format!("{GOOD}\n[real]\n{r}\n");
        let origin = |r: &str| parse(&real(r)).map(|p| p.real.origin.clone());
        let want = |host: &str, port| Some(dl7_testbed::cell::ExternalOrigin { host: host.into(), port });
        assert_eq!(origin("").unwrap(), None, "dl7's own origin by default");
        assert_eq!(origin("origin = \"http://127.0.0.1:8081\"").unwrap(), want("127.0.0.1", 8081));
        assert_eq!(origin("origin = \"http://web.lab/\"").unwrap(), want("web.lab", 80));
        assert_eq!(origin("origin = \"http://[::1]:8081\"").unwrap(), want("::1", 8081));
        for (bad, says) in [
            ("origin = \"127.0.0.1:8081\"", "expected http://HOST:PORT"),
            ("origin = \"https://a:443\"", "plain HTTP"),
            ("origin = \"http://a:0\"", "port"),
            ("origin = \"http://a:8081/x\"", "no path"),
            ("origin = \"http://a:1\"\norigin_delay_ms = 5", "own origin"),
        ] {
            let e = err(&real(bad));
            assert!(e.contains("`real.origin`") && e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn replay_needs_a_trace_with_requests_and_no_window() {
        let text = GOOD.replace("\n[run]", "\n[clients]\nmode = \"replay\"\n[run]");
        let plan = parse(&text).unwrap();
        assert_eq!(plan.clients, ClientMode::Replay { connections: 1, warmup_requests: 0, pace: None });
        let e = plan.load().unwrap_err().0;
        assert!(e.contains("needs a trace file with requests"), "{e}");
    }

    #[test]
    fn the_lab_engine_needs_a_lab() {
        let plan = parse(GOOD).unwrap();
        assert!(plan.check_engine(Engine::Lab).unwrap_err().0.contains("[lab] topology"));
        assert!(plan.check_engine(Engine::Ssh).unwrap_err().0.contains("engine \"ssh\" needs `[lab] topology"));
        assert!(plan.check_engine(Engine::Local).unwrap().is_none());
    }

    #[test]
    fn evictions_are_a_sweep_axis_whose_cells_share_their_seeds() {
        assert!(parse(GOOD).unwrap().cells.iter().all(|c| c.eviction == Eviction::Lru), "lru by default");
        let text =
            GOOD.replace("workloads = [\"surge100\"]", "workloads = [\"surge100\"]\nevictions = [\"lru\", \"s3fifo\"]");
        let plan = parse(&text).unwrap();
        assert_eq!(plan.cells.len(), 16);
        // Eviction comes right after the workload: each eviction's cells are together.
        assert!(plan.cells[..8].iter().all(|c| c.eviction == Eviction::Lru));
        assert!(plan.cells[8..].iter().all(|c| c.eviction == Eviction::S3Fifo));
        let e = plan.load().unwrap();
        let runs = e.runs();
        // The same cell under another eviction: the same seed, so the same request streams.
        assert_eq!((runs[16].cell, runs[16].index), (8, 0));
        assert_eq!(runs[16].seed, runs[0].seed);
        assert_eq!(e.sim_spec(&runs[16]).eviction, Eviction::S3Fifo);
        let one = GOOD.replace("measure_s = 2.0", "measure_s = 2.0\neviction = \"gdsf\"");
        assert!(parse(&one).unwrap().cells.iter().all(|c| c.eviction == Eviction::Gdsf));
    }

    #[test]
    fn a_bad_eviction_names_its_key_and_the_valid_ones() {
        let sweep = |list: &str| {
            GOOD.replace("workloads = [\"surge100\"]", &format!("workloads = [\"surge100\"]\nevictions = {list}"))
        };
        let e = err(&sweep("[\"lru\", \"lfu\"]"));
        assert!(e.starts_with("exp.toml:12:21:") && e.contains("`sweep.evictions`"), "{e}");
        assert!(e.contains("unknown eviction `lfu`") && e.contains("lru, fifo, sieve, s3fifo, gdsf"), "{e}");
        assert!(err(&sweep("[\"sieve\", \"sieve\"]")).contains("\"sieve\" is listed twice"));
        assert!(err(&sweep("[]")).contains("`sweep.evictions`: expected a non-empty list of evictions"));
        let e = err(&GOOD.replace("measure_s = 2.0", "measure_s = 2.0\neviction = \"LRU\""));
        assert!(e.starts_with("exp.toml:16:12:") && e.contains("`run.eviction`") && e.contains("`LRU`"), "{e}");
        let both = sweep("[\"fifo\"]").replace("measure_s = 2.0", "measure_s = 2.0\neviction = \"fifo\"");
        let e = err(&both);
        assert!(e.contains("`run.eviction`") && e.contains("give one of the two keys"), "{e}");
        let e = err(&GOOD.replace("measure_s = 2.0", "measure_s = 2.0\nevictions = [\"fifo\"]"));
        assert!(e.contains("evictions"), "a list under [run] is an unknown key: {e}");
    }

    #[test]
    fn runs_derive_their_seeds_from_the_one_derivation() {
        let plan = parse(GOOD).unwrap();
        let e = plan.load().unwrap();
        let runs = e.runs();
        let key = cell_key("surge100", Arch::Conventional, &PolicySpec::parse("rr").unwrap(), 1);
        assert_eq!(runs[1].seed, derive_seed(7, &key, 1));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

        /// The reader never panics (the short version of the `fuzz/` target):
        /// arbitrary text, and the paper's file with bytes changed.
        #[test]
        fn the_reader_never_panics(
            noise in "\\PC{0,200}",
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), 0x20u8..0x7f), 0..6),
        ) {
            let _ = parse(&noise);
            let mut text = include_str!("../experiments/paper.toml").as_bytes().to_vec();
            for (at, byte) in edits {
                let i = at.index(text.len());
                text[i] = byte;
            }
            let _ = parse(&String::from_utf8_lossy(&text));
        }
    }
}
