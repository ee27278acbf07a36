//! `dl7 origin|node|front|load|bench real`: the real cluster's processes.
//! Each service reads a typed config (`--config FILE`, what the engines
//! write) or the same fields as flags, binds, prints one
//! `dl7-ready listen=ADDR admin=ADDR|-` line on stdout, serves until
//! SIGINT/SIGTERM, then drains. The work itself lives in `dl7-services`
//! (`serve::serve`); `bench real` is a local-engine sweep.
//!
//! The admin token of a node or front end is never an argument, so that
//! it never shows in `ps`: it is the config's `admin_token`, else the file
//! `--admin-token-file` names, else the environment variable
//! [`ADMIN_TOKEN_ENV`] ([`admin_token`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use dl7_core::{Params, PolicyKind, PolicySpec};
use dl7_services::defaults;
use dl7_services::service::init_logging;
use dl7_services::spec::{
    AdminToken, FrontSpec, HealthCheck, HealthSpec, LimitsSpec, LoadSpec, NodeSpec, OriginSpec, ServiceSpec,
};

use super::input_error;

/// The environment variable that holds the admin token when neither the
/// config nor `--admin-token-file` gives one (also read by `dl7 sweep`,
/// whose real engines then send it with every membership change).
pub const ADMIN_TOKEN_ENV: &str = "DL7_ADMIN_TOKEN";

#[derive(Subcommand)]
pub enum RealCommand {
    /// Run the origin web server for a workload's catalog.
    Origin(OriginArgs),
    /// Run one cache node (cache + L7 dispatcher).
    Node(NodeArgs),
    /// Run the front-end balancer (conventional, distributed or relay).
    Front(FrontArgs),
    /// Drive a target with verified requests and report req/s, Mbit/s, latency.
    Load(LoadArgs),
    /// Benchmarks of the real cluster.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// A typed config file instead of the flags (written by the engines).
#[derive(Args, Clone)]
pub struct ConfigArg {
    /// Read the service's whole configuration from this JSON file (see dl7_services::spec);
    /// the other flags are then not read.
    #[arg(long)]
    config: Option<PathBuf>,
}
/// Options every service shares.
#[derive(Args, Clone)]
pub struct ServiceArgs {
    /// Milliseconds allowed for a complete request head (408 after).
    #[arg(long, default_value_t = defaults::DEFAULT_HEAD_TIMEOUT_MS)]
    head_timeout_ms: u64,
    /// Most client connections at once (more get 503).
    #[arg(long, default_value_t = defaults::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Deadline of one upstream fetch (origin, owner, node); 502 after it.
    #[arg(long, default_value_t = defaults::DEFAULT_UPSTREAM_TIMEOUT_MS)]
    upstream_timeout_ms: u64,
    /// Separate listener for the admin pages (/metrics, /stats, /_dl7/...) and membership
    /// changes; bind it to loopback or a management network, never a public address
    /// (e.g. 127.0.0.1:0).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Threads serving the service (default one per core; 1: a single-threaded runtime).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    worker_threads: Option<u64>,
}

impl ServiceArgs {
    fn limits(&self) -> LimitsSpec {
        LimitsSpec {
            head_timeout_ms: self.head_timeout_ms,
            max_connections: self.max_connections,
            upstream_timeout_ms: self.upstream_timeout_ms,
            worker_threads: self.worker_threads.map(|w| w as usize),
        }
    }
}

/// Active health checks of the peers (HAProxy's `check inter rise fall`,
/// `option httpchk`) and Envoy's panic threshold.
#[derive(Args, Clone)]
pub struct HealthArgs {
    /// The probe: tcp (a connect: any backend), http (GET --health-path, healthy on
    /// --health-expect) or none (passive only). Default: http for `dl7 node`, whose
    /// peers are dl7 nodes answering /_dl7/health; tcp for `dl7 front`, whose backends may
    /// be any web server (give --health http for dl7 nodes, which also see a node drain).
    #[arg(long, value_name = "tcp|http|none")]
    health: Option<String>,
    /// The path an http probe asks for.
    #[arg(long, default_value_t = HealthSpec::default().path.to_string())]
    health_path: String,
    /// The statuses an http probe counts as healthy: codes and ranges, e.g. 200-399 or 200,204.
    #[arg(long, default_value_t = HealthSpec::default().expect.to_string())]
    health_expect: String,
    /// Milliseconds between two probes of one peer; also a probe's deadline.
    #[arg(long, default_value_t = HealthSpec::default().interval_ms)]
    health_interval_ms: u64,
    /// Good probes in a row that bring a peer that is out back.
    #[arg(long, default_value_t = HealthSpec::default().rise)]
    rise: u32,
    /// Failed probes in a row that take a peer out.
    #[arg(long, default_value_t = HealthSpec::default().fall)]
    fall: u32,
    /// Below this percentage of peers in service, health is ignored and requests go to
    /// their owner anyway (Envoy's panic threshold; 0: never). A request whose candidates
    /// are all out goes to its owner whatever this is.
    #[arg(long, default_value_t = HealthSpec::default().panic_percent)]
    panic_percent: u8,
}

/// How a dispatcher routes beyond its policy, and who may change its membership.
#[derive(Args, Clone)]
pub struct RoutingArgs {
    /// What the policy hashes: url (path and query, HAProxy's `balance uri whole`) or
    /// path (the query left out, Traffic Server's `qstring=ignore`). The cache key is
    /// the whole URL either way.
    #[arg(long, value_name = "url|path", default_value_t = dl7_core::HashKey::default().to_string())]
    hash_key: String,
    /// Seconds over which a peer that has just come up (its checks brought it back, or it
    /// joined) takes a growing share of the keys it owns, the rest going to the next
    /// candidate (the Varnish shard director's rampup); 0: off.
    #[arg(long, default_value_t = 0.0)]
    rampup_s: f64,
    /// A file holding the token that membership changes on the admin listener must carry
    /// (Authorization: Bearer TOKEN); default: $DL7_ADMIN_TOKEN, if set.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
}

impl RoutingArgs {
    fn hash_key(&self) -> anyhow::Result<dl7_core::HashKey> {
        self.hash_key.parse().map_err(|e| input_error(format!("--hash-key: {e}")))
    }

    /// The token of `--admin-token-file` (its text without the trailing newline), if given.
    fn admin_token(&self) -> anyhow::Result<Option<AdminToken>> {
        let Some(path) = &self.admin_token_file else { return Ok(None) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| input_error(format!("--admin-token-file {}: cannot read: {e}", path.display())))?;
        AdminToken::new(text.trim_end_matches(['\n', '\r']))
            .map(Some)
            .map_err(|e| input_error(format!("--admin-token-file {}: {e}", path.display())))
    }
}

/// The admin token of [`ADMIN_TOKEN_ENV`], if it is set and not empty.
pub fn admin_token() -> anyhow::Result<Option<AdminToken>> {
    match std::env::var(ADMIN_TOKEN_ENV) {
        Ok(t) if !t.is_empty() => {
            AdminToken::new(&t).map(Some).map_err(|e| input_error(format!("{ADMIN_TOKEN_ENV}: {e}")))
        }
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(input_error(format!("{ADMIN_TOKEN_ENV}: not UTF-8"))),
    }
}

impl HealthArgs {
    /// The spec, with `check` when --health is not given.
    fn spec(&self, check: HealthCheck) -> anyhow::Result<HealthSpec> {
        let check = match &self.health {
            Some(name) => name.parse().map_err(|e| input_error(format!("--health: {e}")))?,
            None => check,
        };
        let spec = HealthSpec {
            interval_ms: self.health_interval_ms,
            rise: self.rise,
            fall: self.fall,
            check,
            path: self.health_path.parse().map_err(|e| input_error(format!("--health-path: {e}")))?,
            expect: self.health_expect.parse().map_err(|e| input_error(format!("--health-expect: {e}")))?,
            panic_percent: self.panic_percent,
        };
        spec.validate().map_err(input_error)?;
        Ok(spec)
    }
}

#[derive(Args)]
pub struct OriginArgs {
    /// Built-in workload name or workload/trace file.
    #[arg(long, required_unless_present = "config")]
    workload: Option<String>,
    /// Address to bind (port 0: any free port, printed in the ready line).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Delay added to every response, milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args)]
pub struct NodeArgs {
    /// This node's 0-based index in --nodes.
    #[arg(long, required_unless_present = "config")]
    id: Option<u32>,
    /// Every node's address, comma-separated, in membership order (this one's included).
    #[arg(long, value_delimiter = ',', required_unless_present = "config")]
    nodes: Vec<SocketAddr>,
    /// The origin's address.
    #[arg(long, required_unless_present = "config")]
    origin: Option<SocketAddr>,
    /// Policy name (the policies are built over logical names 10.0.0.i:3128, as in the simulator).
    #[arg(long, default_value = "md5")]
    policy: String,
    /// Policy parameter key=value (repeatable).
    #[arg(long = "param")]
    params: Vec<String>,
    /// Address to bind; default: this node's entry in --nodes.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Unix socket on which the distributed front end hands over client sockets.
    #[arg(long)]
    handoff: Option<PathBuf>,
    /// Cache budget in MiB (body bytes).
    #[arg(long, default_value_t = 64.0)]
    cache_mb: f64,
    /// Largest object cached, MiB (Squid's maximum_object_size); larger ones
    /// stream through uncached. Default: an eighth of --cache-mb.
    #[arg(long)]
    max_object_mb: Option<f64>,
    /// Which object a full cache drops: lru, fifo, sieve, s3fifo or gdsf.
    #[arg(long, default_value = "lru")]
    eviction: String,
    /// Ask this node (the directory, e.g. node 0) for every owner: one shared
    /// policy instance for the cluster (ht_rr_shared).
    #[arg(long)]
    directory: Option<SocketAddr>,
    /// Candidates tried after a failed owner (0: only the owner; 503 when it fails).
    #[arg(long, default_value_t = defaults::DEFAULT_FALLBACKS)]
    fallbacks: usize,
    #[command(flatten)]
    routing: RoutingArgs,
    #[command(flatten)]
    health: HealthArgs,
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args)]
pub struct FrontArgs {
    /// conventional, distributed or relay.
    #[arg(long, required_unless_present = "config")]
    mode: Option<String>,
    /// Node addresses, comma-separated, in membership order.
    #[arg(long, value_delimiter = ',', required_unless_present = "config")]
    nodes: Vec<SocketAddr>,
    /// Node handoff Unix sockets, comma-separated (distributed mode).
    #[arg(long, value_delimiter = ',')]
    handoff: Vec<PathBuf>,
    /// Policy name (conventional mode).
    #[arg(long, default_value = "md5")]
    policy: String,
    /// Policy parameter key=value (repeatable).
    #[arg(long = "param")]
    params: Vec<String>,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Candidates tried after a failed owner (conventional mode).
    #[arg(long, default_value_t = defaults::DEFAULT_FALLBACKS)]
    fallbacks: usize,
    #[command(flatten)]
    routing: RoutingArgs,
    #[command(flatten)]
    health: HealthArgs,
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Address of the front end (or any node).
    #[arg(long, required_unless_present = "config")]
    target: Option<SocketAddr>,
    /// Built-in workload name or workload file (the catalog to request and verify).
    #[arg(long, required_unless_present_any = ["trace", "config"])]
    workload: Option<String>,
    /// A dl7 trace file: replay its requests once, in order, instead of a seeded stream.
    #[arg(long, conflicts_with = "workload")]
    trace: Option<PathBuf>,
    /// Seed of the request streams (connection c uses a seed derived from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 63)]
    connections: usize,
    /// Seconds of warm-up not recorded.
    #[arg(long, default_value_t = 0.0)]
    warmup_s: f64,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 5.0)]
    duration_s: f64,
    /// Open loop at this total rate (requests/s); default closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Per-request deadline, milliseconds.
    #[arg(long, default_value_t = defaults::DEFAULT_REQUEST_TIMEOUT_MS)]
    timeout_ms: u64,
    /// Threads driving the load (default one per core; 1: a single-threaded runtime).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    worker_threads: Option<u64>,
    /// Requests of the trace not recorded (with --trace).
    #[arg(long, default_value_t = 0)]
    warmup_requests: u64,
    /// Replay the trace at its logged times, this many times faster (with --trace; open loop).
    #[arg(long, requires = "trace")]
    speed: Option<f64>,
    /// A timed replay's most requests out at once; later ones are dropped (with --speed).
    #[arg(long, default_value_t = dl7_core::Pace::DEFAULT_MAX_OUTSTANDING as usize)]
    max_outstanding: usize,
    /// Length of the result's intervals, seconds.
    #[arg(long, default_value_t = 1.0)]
    interval_s: f64,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Conventional vs distributed on loopback (a local-engine sweep of surge100).
    Real(BenchRealArgs),
}

#[derive(Args)]
pub struct BenchRealArgs {
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    servers: Vec<u32>,
    #[arg(long, value_delimiter = ',', default_value = "conventional,distributed")]
    archs: Vec<String>,
    #[arg(long, default_value = "md5")]
    policy: String,
    #[arg(long, default_value = "surge100")]
    workload: String,
    #[arg(long, default_value_t = 63)]
    connections_per_server: u32,
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    #[arg(long, default_value_t = 3.0)]
    duration_s: f64,
    /// Threads per service process (`[real] worker_threads`; default one per core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    worker_threads: Option<u64>,
    /// Output directory (git-ignored by default, so that a run never writes over the
    /// committed reports/bench-real/ the docs quote).
    #[arg(long, default_value = "reports/bench-real-latest")]
    out: PathBuf,
}

pub fn run(cmd: RealCommand) -> anyhow::Result<()> {
    init_logging();
    let mut spec = match cmd {
        RealCommand::Origin(a) => origin(a)?,
        RealCommand::Node(a) => node(a)?,
        RealCommand::Front(a) => front(a)?,
        RealCommand::Load(a) => load(a)?,
        RealCommand::Bench(BenchCommand::Real(a)) => return bench_real(a),
    };
    // The environment's token for a node or front end that names none.
    if let ServiceSpec::Node(NodeSpec { admin_token: token @ None, .. })
    | ServiceSpec::Front(FrontSpec { admin_token: token @ None, .. }) = &mut spec
    {
        *token = admin_token()?;
    }
    // A bad config is the user's input; a failure while serving is not.
    dl7_services::serve::serve(spec).map_err(|e| match e {
        e if e.is_config() => input_error(e),
        e => anyhow::Error::msg(e.to_string()),
    })
}

fn read(config: &ConfigArg, role: &str) -> anyhow::Result<Option<ServiceSpec>> {
    match &config.config {
        Some(path) => Ok(Some(ServiceSpec::read(path, role).map_err(input_error)?)),
        None => Ok(None),
    }
}

fn policy(name: &str, params: &[String]) -> anyhow::Result<PolicySpec> {
    let kind = PolicyKind::from_name(name).map_err(input_error)?;
    let params = Params::parse(params.iter().map(String::as_str)).map_err(input_error)?;
    Ok(PolicySpec { kind, params })
}

fn origin(a: OriginArgs) -> anyhow::Result<ServiceSpec> {
    if let Some(s) = read(&a.config, "origin")? {
        return Ok(s);
    }
    Ok(ServiceSpec::Origin(OriginSpec {
        workload: a.workload.expect("required by clap"),
        listen: a.listen,
        delay_ms: a.delay_ms,
        admin: a.service.admin,
        limits: a.service.limits(),
    }))
}

fn node(a: NodeArgs) -> anyhow::Result<ServiceSpec> {
    if let Some(s) = read(&a.config, "node")? {
        return Ok(s);
    }
    if !(a.cache_mb.is_finite() && a.cache_mb >= 0.0) {
        return Err(input_error(format!("--cache-mb {}: expected a non-negative number", a.cache_mb)));
    }
    let cache_bytes = (a.cache_mb * 1024.0 * 1024.0) as u64;
    let max_object_bytes = match a.max_object_mb {
        Some(mb) if !(mb.is_finite() && mb >= 0.0) => {
            return Err(input_error(format!("--max-object-mb {mb}: expected a non-negative number")))
        }
        Some(mb) => (mb * 1024.0 * 1024.0) as u64,
        None => dl7_core::hardware::default_max_object_bytes(cache_bytes),
    };
    Ok(ServiceSpec::Node(NodeSpec {
        id: a.id.expect("required by clap"),
        nodes: a.nodes,
        listen: a.listen,
        origin: a.origin.expect("required by clap"),
        policy: policy(&a.policy, &a.params)?,
        cache_bytes,
        eviction: a.eviction.parse().map_err(|e| input_error(format!("--eviction: {e}")))?,
        max_object_bytes,
        fallbacks: a.fallbacks,
        hash_key: a.routing.hash_key()?,
        rampup_s: a.routing.rampup_s,
        handoff: a.handoff,
        directory: a.directory,
        emulate_cpu: None,
        admin: a.service.admin,
        admin_token: a.routing.admin_token()?,
        limits: a.service.limits(),
        // A node's peers are dl7 nodes: /_dl7/health also tells a draining one.
        health: a.health.spec(HealthCheck::Http)?,
        members: None,
    }))
}

fn front(a: FrontArgs) -> anyhow::Result<ServiceSpec> {
    if let Some(s) = read(&a.config, "front")? {
        return Ok(s);
    }
    Ok(ServiceSpec::Front(FrontSpec {
        mode: a.mode.expect("required by clap").parse().map_err(|e| input_error(format!("--mode: {e}")))?,
        nodes: a.nodes,
        handoff: a.handoff,
        policy: policy(&a.policy, &a.params)?,
        listen: a.listen,
        fallbacks: a.fallbacks,
        hash_key: a.routing.hash_key()?,
        rampup_s: a.routing.rampup_s,
        admin: a.service.admin,
        admin_token: a.routing.admin_token()?,
        limits: a.service.limits(),
        // Any web server accepts a connect; not every one has /_dl7/health.
        health: a.health.spec(HealthCheck::Tcp)?,
        members: None,
    }))
}

fn load(a: LoadArgs) -> anyhow::Result<ServiceSpec> {
    if let Some(s) = read(&a.config, "load")? {
        return Ok(s);
    }
    let (workload, replay) = match (&a.trace, &a.workload) {
        (Some(path), _) => (path.display().to_string(), true),
        (None, Some(w)) => (w.clone(), false),
        (None, None) => return Err(input_error("--workload or --trace is required")),
    };
    Ok(ServiceSpec::Load(LoadSpec {
        target: a.target.expect("required by clap"),
        workload,
        replay,
        warmup_requests: a.warmup_requests,
        seed: a.seed,
        connections: a.connections,
        warmup_s: a.warmup_s,
        duration_s: a.duration_s,
        rate: a.rate,
        timeout_ms: a.timeout_ms,
        speed: a.speed,
        max_outstanding: a.max_outstanding,
        interval_s: a.interval_s,
        worker_threads: a.worker_threads.map(|w| w as usize),
        label: None,
    }))
}

fn bench_real(a: BenchRealArgs) -> anyhow::Result<()> {
    let mut text = format!(
        "name = \"bench-real\"\nengine = \"local\"\nseed = 1\nhardware = \"kwon2008\"\n\
         [sweep]\nservers = {:?}\npolicies = [{:?}]\narchs = {:?}\nworkloads = [{:?}]\n\
         [clients]\nmode = \"closed\"\nper_server = {}\n[run]\nwarmup_s = {}\nmeasure_s = {}\ncache_mb = 64.0\n",
        a.servers, a.policy, a.archs, a.workload, a.connections_per_server, a.warmup_s, a.duration_s
    );
    if let Some(w) = a.worker_threads {
        text.push_str(&format!("[real]\nworker_threads = {w}\n"));
    }
    let plan = dl7::experiment::Plan::parse(&text, "dl7 bench real", Path::new(".")).map_err(input_error)?;
    let experiment = plan.load().map_err(input_error)?;
    let opts = dl7::sweep::SweepOptions {
        engine: None,
        threads: None,
        out: Some(a.out),
        command: "dl7 bench real".into(),
        shard: None,
    };
    let output = dl7::sweep::run(&experiment, &opts)?;
    println!("{}", output.summary);
    for f in &output.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
