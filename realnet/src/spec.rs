//! Typed, versioned service configurations: what `dl7 origin|node|front|load
//! --config FILE` reads (JSON) and what the engine writes for every process it
//! starts. The runner never assembles argv; a human's flags are turned into
//! the same structs by the CLI. [`serve`] binds, prints the ready line, runs
//! the service until SIGINT/SIGTERM and drains.
//!
//! A config names its [`VERSION`]; a file of another version, a missing or an
//! unknown field is an error naming it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dl7_core::{Hardware, Membership, PolicySpec, ServerId};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::front::{FrontConfig, FrontMode};
use crate::health::HealthSpec;
use crate::http::Limits;
use crate::launcher::ready_line;
use crate::load::{LoadConfig, Requests};
use crate::node::NodeConfig;
use crate::origin::OriginConfig;
use crate::service::{os_signal, runtime};

/// The config format's version; bump it on any incompatible change.
pub const VERSION: u32 = 2;

/// Limits every service shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Milliseconds allowed for a complete request head (408 after).
    pub head_timeout_ms: u64,
    /// Most client connections at once (more get 503).
    pub max_connections: usize,
    /// Deadline of one upstream fetch (origin, owner, node), milliseconds.
    pub upstream_timeout_ms: u64,
    /// Threads serving the service (see [`runtime`]); absent: one per core.
    #[serde(default)]
    pub worker_threads: Option<usize>,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec { head_timeout_ms: 5000, max_connections: 4096, upstream_timeout_ms: 2000, worker_threads: None }
    }
}

impl LimitsSpec {
    fn limits(&self) -> Limits {
        Limits {
            head_timeout: Duration::from_millis(self.head_timeout_ms),
            max_connections: self.max_connections.max(1),
            upstream_timeout: Duration::from_millis(self.upstream_timeout_ms),
            ..Limits::default()
        }
    }
}

/// The origin web server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginSpec {
    /// Built-in workload name, workload file or trace file.
    pub workload: String,
    /// Address to bind (port 0: any free port, printed in the ready line).
    pub listen: SocketAddr,
    /// Delay added to every response, milliseconds.
    pub delay_ms: u64,
    /// Separate listener for the admin pages.
    pub admin: Option<SocketAddr>,
    /// Limits and timeouts.
    pub limits: LimitsSpec,
}

/// One cache node (cache + L7 dispatcher).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// This node's 0-based index in `nodes`.
    pub id: u32,
    /// Every node's address, in membership order (this one's included).
    pub nodes: Vec<SocketAddr>,
    /// Address to bind; default: this node's entry in `nodes`.
    pub listen: Option<SocketAddr>,
    /// The origin's address.
    pub origin: SocketAddr,
    /// The policy (built over logical names, as in the simulator).
    pub policy: PolicySpec,
    /// Cache budget, body bytes.
    pub cache_bytes: u64,
    /// Largest object cached, bytes; larger ones stream through uncached.
    pub max_object_bytes: u64,
    /// Candidates tried after a failed owner (0: 502 at once).
    pub fallbacks: usize,
    /// Unix socket on which the distributed front end hands over client sockets.
    pub handoff: Option<PathBuf>,
    /// Ask this node (the directory) for every owner (`ht_rr_shared`).
    pub directory: Option<SocketAddr>,
    /// Emulate the CPU of this hardware profile's cache server.
    pub emulate_cpu: Option<Hardware>,
    /// Separate listener for the admin pages.
    pub admin: Option<SocketAddr>,
    /// Limits and timeouts.
    pub limits: LimitsSpec,
    /// Active health checks of the other nodes.
    pub health: HealthSpec,
    /// The nodes routed over at start (indices into `nodes`; `None`: all);
    /// `PUT /_dl7/members?nodes=..` on the admin listener changes them.
    pub members: Option<Vec<usize>>,
}

/// The front-end balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontSpec {
    /// `conventional`, `distributed` or `relay`.
    pub mode: FrontMode,
    /// Node addresses, in membership order.
    pub nodes: Vec<SocketAddr>,
    /// Node handoff Unix sockets (distributed mode).
    pub handoff: Vec<PathBuf>,
    /// The policy (conventional mode).
    pub policy: PolicySpec,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Candidates tried after a failed owner (conventional).
    pub fallbacks: usize,
    /// Separate listener for the admin pages.
    pub admin: Option<SocketAddr>,
    /// Limits and timeouts.
    pub limits: LimitsSpec,
    /// Active health checks of the nodes.
    pub health: HealthSpec,
    /// The nodes sent to at start (indices into `nodes`; `None`: all);
    /// `PUT /_dl7/members?nodes=..` on the admin listener changes them.
    pub members: Option<Vec<usize>>,
}

/// One load run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Address of the front end (or any node).
    pub target: SocketAddr,
    /// Built-in workload name, workload file or trace file: the catalog to request and verify.
    pub workload: String,
    /// Replay the trace file's requests once, in order, instead of a seeded stream.
    pub replay: bool,
    /// Replay: requests not measured.
    pub warmup_requests: u64,
    /// Seed of the request streams.
    pub seed: u64,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Seconds of warm-up not recorded.
    pub warmup_s: f64,
    /// Seconds of measurement (a replay also ends when the trace is done).
    pub duration_s: f64,
    /// Open loop at this total rate (requests/s); `None`: closed loop.
    pub rate: Option<f64>,
    /// Per-request deadline, milliseconds.
    pub timeout_ms: u64,
    /// A replay at the trace's logged times, this many times faster; `None`: closed loop.
    /// (This and the next two fields may be left out: version 1 files before them still read.)
    #[serde(default)]
    pub speed: Option<f64>,
    /// A timed replay: most requests out at once; later ones are dropped.
    #[serde(default = "default_max_outstanding")]
    pub max_outstanding: usize,
    /// Length of the report's intervals, seconds.
    #[serde(default = "default_interval_s")]
    pub interval_s: f64,
    /// Threads driving the load (see [`runtime`]); absent: one per core.
    #[serde(default)]
    pub worker_threads: Option<usize>,
}

fn default_max_outstanding() -> usize {
    dl7_core::Pace::DEFAULT_MAX_OUTSTANDING as usize
}

fn default_interval_s() -> f64 {
    1.0
}

/// Any service's config, tagged by role, with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// Must be [`VERSION`].
    pub version: u32,
    /// The service.
    pub service: ServiceSpec,
}

/// One service to run. Read once per process, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceSpec {
    /// `dl7 origin`.
    Origin(OriginSpec),
    /// `dl7 node`.
    Node(NodeSpec),
    /// `dl7 front`.
    Front(FrontSpec),
    /// `dl7 load`.
    Load(LoadSpec),
}

impl ServiceSpec {
    /// The role's name (the subcommand).
    pub fn role(&self) -> &'static str {
        match self {
            ServiceSpec::Origin(_) => "origin",
            ServiceSpec::Node(_) => "node",
            ServiceSpec::Front(_) => "front",
            ServiceSpec::Load(_) => "load",
        }
    }

    /// The versioned JSON text of its config file.
    pub fn to_json(&self) -> String {
        let file = ServiceFile { version: VERSION, service: self.clone() };
        serde_json::to_string_pretty(&file).expect("a spec is plain data")
    }

    /// Writes it as a versioned JSON file.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.to_json()).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Reads a versioned JSON file; `role` is the subcommand that reads it.
    pub fn read(path: &Path, role: &str) -> Result<ServiceSpec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: ServiceFile =
            serde_json::from_str(&text).map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
        if file.version != VERSION {
            return Err(format!(
                "{}: config version {}, this dl7 reads version {VERSION}",
                path.display(),
                file.version
            ));
        }
        if file.service.role() != role {
            return Err(format!(
                "{}: a {} config, not a {role} one (run `dl7 {} --config {}`)",
                path.display(),
                file.service.role(),
                file.service.role(),
                path.display()
            ));
        }
        Ok(file.service)
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| format!("cannot bind {addr}: {e}"))
}

async fn bind_admin(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, String> {
    match addr {
        Some(a) => Ok(Some(bind(a).await?)),
        None => Ok(None),
    }
}

fn announce(listen: &TcpListener, admin: &Option<TcpListener>) -> Result<(), String> {
    let l = listen.local_addr().map_err(|e| e.to_string())?;
    let a = admin.as_ref().map(|a| a.local_addr()).transpose().map_err(|e| e.to_string())?;
    println!("{}", ready_line(l, a));
    use std::io::Write;
    std::io::stdout().flush().map_err(|e| e.to_string())
}

fn catalog(name: &str) -> Result<Arc<dl7_traces::Catalog>, String> {
    let c = dl7_traces::workload::resolve(name).map_err(|e| e.to_string())?;
    if c.is_empty() {
        return Err(format!("{name}: the workload has no objects"));
    }
    Ok(Arc::new(c))
}

/// Why [`serve`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeError {
    /// The config is wrong (a field, a workload that cannot be read): nothing started.
    Config(String),
    /// The service failed while starting or serving.
    Service(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Config(m) | ServeError::Service(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ServeError {}

/// Checks a spec's values that need no file; the error names the field.
pub fn validate(spec: &ServiceSpec) -> Result<(), String> {
    let threads = match spec {
        ServiceSpec::Origin(o) => o.limits.worker_threads,
        ServiceSpec::Node(n) => n.limits.worker_threads,
        ServiceSpec::Front(f) => f.limits.worker_threads,
        ServiceSpec::Load(l) => l.worker_threads,
    };
    if threads == Some(0) {
        return Err("worker_threads 0: expected at least 1 thread".into());
    }
    match spec {
        ServiceSpec::Origin(_) => Ok(()),
        ServiceSpec::Node(n) => {
            let count = n.nodes.len();
            if n.id as usize >= count {
                return Err(format!("id {}: expected an index below the {count} addresses of nodes", n.id));
            }
            let members = Membership::numbered(count).map_err(|e| format!("nodes: {e}"))?;
            n.policy.build(&members).map_err(|e| format!("policy: {e}"))?;
            check_members(&n.members, count)?;
            n.health.validate()
        }
        ServiceSpec::Front(f) => {
            let mode = f.mode;
            let members = Membership::numbered(f.nodes.len()).map_err(|e| format!("nodes: {e}"))?;
            f.policy.build(&members).map_err(|e| format!("policy: {e}"))?;
            if mode == FrontMode::Distributed && f.handoff.len() != f.nodes.len() {
                return Err(format!(
                    "handoff: distributed mode needs one unix socket per node ({} nodes, {} sockets)",
                    f.nodes.len(),
                    f.handoff.len()
                ));
            }
            check_members(&f.members, f.nodes.len().max(f.handoff.len()))?;
            f.health.validate()
        }
        ServiceSpec::Load(l) => {
            for (name, v) in [("warmup_s", l.warmup_s), ("duration_s", l.duration_s)] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("{name} {v}: expected a non-negative number of seconds"));
                }
            }
            if !(l.interval_s.is_finite() && l.interval_s >= 0.001) {
                return Err(format!("interval_s {}: expected seconds >= 0.001", l.interval_s));
            }
            if let Some(speed) = l.speed {
                if !l.replay {
                    return Err("speed: a timed replay needs a trace (replay)".into());
                }
                if !(speed.is_finite() && speed > 0.0) {
                    return Err(format!("speed {speed}: expected a speed factor > 0"));
                }
                if l.max_outstanding == 0 {
                    return Err("max_outstanding 0: expected at least 1".into());
                }
            }
            Ok(())
        }
    }
}

/// `members`, if given, must name distinct nodes among `count`, at least one.
fn check_members(members: &Option<Vec<usize>>, count: usize) -> Result<(), String> {
    let Some(m) = members else { return Ok(()) };
    if m.is_empty() {
        return Err("members: expected at least one node index".into());
    }
    for (k, &i) in m.iter().enumerate() {
        if i >= count {
            return Err(format!("members: {i} is not a node index (expected below {count})"));
        }
        if m[..k].contains(&i) {
            return Err(format!("members: {i} is listed twice"));
        }
    }
    Ok(())
}

/// Runs `spec` to the end: a service until SIGINT/SIGTERM (then drains), a
/// load run until done (printing its summary on stderr and one
/// `dl7-result {json}` line on stdout). The config is checked (and its
/// workload read) once, here.
pub fn serve(spec: ServiceSpec) -> Result<(), ServeError> {
    validate(&spec).map_err(ServeError::Config)?;
    // The workload is part of the config: reading it is checking it.
    let workload = match &spec {
        ServiceSpec::Origin(o) => Some(catalog(&o.workload).map(|c| (c, Requests::Stream { seed: 0 }))),
        ServiceSpec::Load(l) if l.replay => {
            Some(dl7_traces::Trace::resolve(&l.workload).map_err(|e| e.to_string()).and_then(|t| {
                if t.requests.is_empty() {
                    return Err(format!("{}: the trace has no requests to replay", l.workload));
                }
                let requests = match l.speed {
                    None => Requests::List(Arc::new(t.requests)),
                    Some(_) if t.times.is_empty() => {
                        return Err(format!(
                            "{}: speed: a timed replay needs request times, and the trace has none",
                            l.workload
                        ))
                    }
                    Some(speed) => Requests::Timed {
                        list: Arc::new(t.requests),
                        times: Arc::new(t.times),
                        speed,
                        max_outstanding: l.max_outstanding,
                    },
                };
                Ok((Arc::new(t.catalog), requests))
            }))
        }
        ServiceSpec::Load(l) => Some(catalog(&l.workload).map(|c| (c, Requests::Stream { seed: l.seed }))),
        _ => None,
    };
    let workload = workload.transpose().map_err(ServeError::Config)?;
    run(spec, workload).map_err(ServeError::Service)
}

/// Runs a checked spec; `workload` is the catalog (and requests) it reads.
fn run(spec: ServiceSpec, workload: Option<(Arc<dl7_traces::Catalog>, Requests)>) -> Result<(), String> {
    match spec {
        ServiceSpec::Origin(o) => {
            let (catalog, _) = workload.expect("read by serve");
            runtime(o.limits.worker_threads).map_err(|e| e.to_string())?.block_on(async {
                let listener = bind(o.listen).await?;
                let admin = bind_admin(o.admin).await?;
                announce(&listener, &admin)?;
                let mut cfg = OriginConfig::new(catalog);
                cfg.delay = Duration::from_millis(o.delay_ms);
                cfg.limits = o.limits.limits();
                cfg.admin = admin;
                crate::origin::run(listener, cfg, os_signal()).await.map_err(|e| format!("origin: {e}"))
            })
        }
        ServiceSpec::Node(n) => {
            let members = Membership::numbered(n.nodes.len()).map_err(|e| e.to_string())?;
            let spec = n.policy.clone();
            runtime(n.limits.worker_threads).map_err(|e| e.to_string())?.block_on(async {
                let listener = bind(n.listen.unwrap_or(n.nodes[n.id as usize])).await?;
                let admin = bind_admin(n.admin).await?;
                let mut cfg = NodeConfig::new(ServerId(n.id), members, n.nodes.clone(), n.origin, spec);
                cfg.cache_bytes = n.cache_bytes;
                cfg.max_object_bytes = n.max_object_bytes;
                cfg.directory = n.directory;
                cfg.fallbacks = n.fallbacks;
                cfg.limits = n.limits.limits();
                cfg.admin = admin;
                cfg.cpu = n.emulate_cpu.as_ref().map(dl7_core::costs::Costs::new);
                cfg.health = n.health;
                cfg.initial_members = n.members.clone();
                if let Some(path) = &n.handoff {
                    let _ = std::fs::remove_file(path); // a stale socket file from an earlier run
                    cfg.handoff = Some(
                        tokio::net::UnixListener::bind(path)
                            .map_err(|e| format!("cannot bind unix socket {}: {e}", path.display()))?,
                    );
                }
                announce(&listener, &cfg.admin)?;
                let r = crate::node::run(listener, cfg, os_signal()).await.map_err(|e| format!("node: {e}"));
                if let Some(path) = &n.handoff {
                    let _ = std::fs::remove_file(path);
                }
                r
            })
        }
        ServiceSpec::Front(f) => {
            let mode = f.mode;
            let members = Membership::numbered(f.nodes.len()).map_err(|e| e.to_string())?;
            let spec = f.policy.clone();
            runtime(f.limits.worker_threads).map_err(|e| e.to_string())?.block_on(async {
                let listener = bind(f.listen).await?;
                let admin = bind_admin(f.admin).await?;
                announce(&listener, &admin)?;
                let mut cfg = FrontConfig::new(mode, f.nodes.clone(), f.handoff.clone());
                cfg.policy = spec;
                cfg.members = members;
                cfg.fallbacks = f.fallbacks;
                cfg.limits = f.limits.limits();
                cfg.admin = admin;
                cfg.health = f.health;
                cfg.initial_members = f.members.clone();
                crate::front::run(listener, cfg, os_signal()).await.map_err(|e| format!("front: {e}"))
            })
        }
        ServiceSpec::Load(l) => {
            let (catalog, requests) = workload.expect("read by serve");
            let mut cfg = LoadConfig::new(l.target, catalog);
            cfg.requests = requests;
            cfg.warmup_requests = l.warmup_requests;
            cfg.connections = l.connections;
            cfg.warmup = Duration::from_secs_f64(l.warmup_s);
            cfg.duration = Duration::from_secs_f64(l.duration_s);
            cfg.rate = l.rate;
            cfg.timeout = Duration::from_millis(l.timeout_ms);
            cfg.interval = Duration::from_secs_f64(l.interval_s);
            let mut report = runtime(l.worker_threads).map_err(|e| e.to_string())?.block_on(crate::load::run(cfg))?;
            report.peak_rss_bytes = crate::launcher::peak_rss_bytes(std::process::id()).unwrap_or(0);
            eprintln!("{}", report.summary());
            println!("dl7-result {}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> ServiceSpec {
        ServiceSpec::Node(NodeSpec {
            id: 0,
            nodes: vec!["127.0.0.1:1".parse().unwrap()],
            listen: None,
            origin: "127.0.0.1:2".parse().unwrap(),
            policy: PolicySpec::parse("md5").unwrap(),
            cache_bytes: 1 << 20,
            max_object_bytes: 1 << 17,
            fallbacks: 2,
            handoff: None,
            directory: None,
            emulate_cpu: Some(Hardware::kwon2008()),
            admin: None,
            limits: LimitsSpec::default(),
            health: HealthSpec::default(),
            members: None,
        })
    }

    #[test]
    fn a_config_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("dl7-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.json");
        node().write(&path).unwrap();
        assert_eq!(ServiceSpec::read(&path, "node").unwrap(), node());
        let e = ServiceSpec::read(&path, "front").unwrap_err();
        assert!(e.contains("a node config, not a front one"), "{e}");
        let text = std::fs::read_to_string(&path).unwrap().replace("\"fallbacks\"", "\"fallback\"");
        std::fs::write(&path, text).unwrap();
        let e = ServiceSpec::read(&path, "node").unwrap_err();
        assert!(e.contains("fallback"), "{e}");
        node().write(&path).unwrap();
        let text =
            std::fs::read_to_string(&path).unwrap().replace(&format!("\"version\": {VERSION}"), "\"version\": 9");
        std::fs::write(&path, text).unwrap();
        assert!(ServiceSpec::read(&path, "node").unwrap_err().contains("version 9"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_load_config_reads_without_the_timed_replay_fields_and_checks_them() {
        let text = r#"{"version": 1, "service": {"load": {"target": "127.0.0.1:1", "workload": "surge100",
            "replay": false, "warmup_requests": 0, "seed": 1, "connections": 2, "warmup_s": 0.0,
            "duration_s": 1.0, "rate": null, "timeout_ms": 100}}}"#;
        let file: ServiceFile = serde_json::from_str(text).unwrap();
        let ServiceSpec::Load(l) = file.service else { panic!("a load config") };
        assert_eq!((l.speed, l.max_outstanding, l.interval_s), (None, 4096, 1.0));
        let check = |l: &LoadSpec| validate(&ServiceSpec::Load(l.clone()));
        assert!(check(&LoadSpec { speed: Some(2.0), ..l.clone() }).unwrap_err().contains("needs a trace"));
        let replay = LoadSpec { replay: true, ..l.clone() };
        assert!(check(&LoadSpec { speed: Some(0.0), ..replay.clone() }).unwrap_err().starts_with("speed 0"));
        assert!(check(&LoadSpec { speed: Some(1.0), max_outstanding: 0, ..replay.clone() }).is_err());
        assert!(check(&LoadSpec { interval_s: 0.0, ..l.clone() }).unwrap_err().starts_with("interval_s"));
        assert!(check(&LoadSpec { speed: Some(1.0), ..replay }).is_ok());
    }

    #[test]
    fn bad_values_are_named() {
        let ServiceSpec::Node(mut n) = node() else { unreachable!() };
        n.id = 3;
        assert!(validate(&ServiceSpec::Node(n.clone())).unwrap_err().starts_with("id 3"));
        n.id = 0;
        n.members = Some(vec![0, 1]);
        assert!(validate(&ServiceSpec::Node(n.clone())).unwrap_err().contains("members: 1 is not a node index"));
        n.members = Some(vec![]);
        assert!(validate(&ServiceSpec::Node(n)).unwrap_err().contains("at least one"));
        let ServiceSpec::Node(mut n) = node() else { unreachable!() };
        n.limits.worker_threads = Some(0);
        assert!(validate(&ServiceSpec::Node(n)).unwrap_err().starts_with("worker_threads 0"));
    }
}
