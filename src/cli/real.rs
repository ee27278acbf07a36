//! `dl7 origin|node|front|load|cluster|bench real`: the real cluster's
//! processes and the runner that starts them. Each service subcommand binds,
//! prints one `dl7-ready listen=ADDR admin=ADDR|-` line on stdout, serves until
//! SIGINT/SIGTERM, then drains. The work itself lives in `dl7-realnet`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use dl7_core::{Membership, Params, PolicyKind, PolicySpec, ServerId};
use dl7_realnet::cluster::{self, ClusterFile};
use dl7_realnet::front::{FrontConfig, FrontMode};
use dl7_realnet::http::Limits;
use dl7_realnet::launcher::ready_line;
use dl7_realnet::load::{LoadConfig, Requests};
use dl7_realnet::node::{CpuCosts, NodeConfig};
use dl7_realnet::origin::OriginConfig;
// The binary reaches tokio's listeners through dl7-realnet and needs no tokio dependency.
use dl7_realnet::service::{init_logging, os_signal, runtime, TcpListener};

use super::input_error;

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
    /// Run a real-cluster experiment file: processes on this host, results.csv.
    Cluster(ClusterArgs),
    /// Benchmarks of the real cluster.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Options every service shares.
#[derive(Args, Clone)]
pub struct ServiceArgs {
    /// Milliseconds allowed for a complete request head (408 after).
    #[arg(long, default_value_t = 5000)]
    head_timeout_ms: u64,
    /// Most client connections at once (more get 503).
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Deadline of one upstream fetch (origin, owner, node); 502 after it.
    #[arg(long, default_value_t = 2000)]
    upstream_timeout_ms: u64,
    /// Separate listener for GET /metrics (e.g. 127.0.0.1:0).
    #[arg(long)]
    admin: Option<SocketAddr>,
}

impl ServiceArgs {
    fn limits(&self) -> Limits {
        Limits {
            head_timeout: Duration::from_millis(self.head_timeout_ms),
            max_connections: self.max_connections.max(1),
            upstream_timeout: Duration::from_millis(self.upstream_timeout_ms),
            ..Limits::default()
        }
    }
}

#[derive(Args)]
pub struct OriginArgs {
    /// Built-in workload name or workload/trace file.
    #[arg(long)]
    workload: String,
    /// Address to bind (port 0: any free port, printed in the ready line).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Delay added to every response, milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Args)]
pub struct NodeArgs {
    /// This node's 0-based index in --nodes.
    #[arg(long)]
    id: u32,
    /// Every node's address, comma-separated, in membership order (this one's included).
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<SocketAddr>,
    /// The origin's address.
    #[arg(long)]
    origin: SocketAddr,
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
    /// Gzip text objects at miss time (the distill stage).
    #[arg(long)]
    distill: bool,
    /// Ask this node (the directory, e.g. node 0) for every owner: one shared
    /// policy instance for the cluster (ht_rr_shared).
    #[arg(long)]
    directory: Option<SocketAddr>,
    /// Candidates tried after a failed owner (0: 502 at once).
    #[arg(long, default_value_t = 2)]
    fallbacks: usize,
    #[command(flatten)]
    cpu: CpuArgs,
    #[command(flatten)]
    service: ServiceArgs,
}

/// The node's emulated CPU (a single FIFO server; 0 everywhere = off). The
/// costs are the simulator's for a hardware profile; see `dl7_realnet::node`.
#[derive(Args, Clone)]
pub struct CpuArgs {
    /// Receiver: microseconds per client request (accept, parse, pick).
    #[arg(long, default_value_t = 0.0)]
    cpu_parse_us: f64,
    /// Owner: microseconds per request served (Squid and its connection).
    #[arg(long, default_value_t = 0.0)]
    cpu_us_per_request: f64,
    /// Microseconds at each end of a request crossing the network between processes.
    #[arg(long, default_value_t = 0.0)]
    cpu_hop_us: f64,
    /// Microseconds per frame of a response sent or received (MSS 1448, an ACK per 2 frames).
    #[arg(long, default_value_t = 0.0)]
    cpu_frame_us: f64,
    /// Nanoseconds per response byte copied.
    #[arg(long, default_value_t = 0.0)]
    cpu_ns_per_byte: f64,
    /// Owner: microseconds per miss.
    #[arg(long, default_value_t = 0.0)]
    cpu_miss_us: f64,
    /// Owner: nanoseconds per request served per request open at the owner (poll()).
    #[arg(long, default_value_t = 0.0)]
    cpu_poll_ns_per_open: f64,
}

impl CpuArgs {
    fn costs(&self) -> anyhow::Result<CpuCosts> {
        let c = CpuCosts {
            parse_us: self.cpu_parse_us,
            request_us: self.cpu_us_per_request,
            hop_us: self.cpu_hop_us,
            frame_us: self.cpu_frame_us,
            copy_ns_per_byte: self.cpu_ns_per_byte,
            miss_us: self.cpu_miss_us,
            poll_ns_per_open: self.cpu_poll_ns_per_open,
        };
        c.validate().map_err(|e| input_error(format!("--cpu-*: {e}")))?;
        Ok(c)
    }
}

#[derive(Args)]
pub struct FrontArgs {
    /// conventional, distributed or relay.
    #[arg(long)]
    mode: String,
    /// Node addresses, comma-separated, in membership order.
    #[arg(long, value_delimiter = ',', required = true)]
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
    #[arg(long, default_value_t = 2)]
    fallbacks: usize,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Address of the front end (or any node).
    #[arg(long)]
    target: SocketAddr,
    /// Built-in workload name or workload file (the catalog to request and verify).
    #[arg(long, required_unless_present = "trace")]
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
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Also print one `dl7-result {json}` line (for the cluster runner).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ClusterArgs {
    /// The experiment file, e.g. experiments/real-local.toml.
    file: PathBuf,
    /// Output directory (default reports/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override the file's `servers` (comma-separated).
    #[arg(long, value_delimiter = ',')]
    servers: Vec<usize>,
    /// Override the file's `policies`.
    #[arg(long, value_delimiter = ',')]
    policies: Vec<String>,
    /// Override the file's `archs`.
    #[arg(long, value_delimiter = ',')]
    archs: Vec<String>,
    /// Override the file's `duration_s`.
    #[arg(long)]
    duration_s: Option<f64>,
    /// Override the file's `warmup_s`.
    #[arg(long)]
    warmup_s: Option<f64>,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Conventional vs distributed on loopback at 1, 2 and 4 nodes (surge100).
    Real(BenchRealArgs),
}

#[derive(Args)]
pub struct BenchRealArgs {
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    servers: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "conventional,distributed")]
    archs: Vec<String>,
    #[arg(long, default_value = "md5")]
    policy: String,
    #[arg(long, default_value = "surge100")]
    workload: String,
    #[arg(long, default_value_t = 63)]
    connections_per_server: usize,
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    #[arg(long, default_value_t = 3.0)]
    duration_s: f64,
    /// Output directory.
    #[arg(long, default_value = "reports/bench-real")]
    out: PathBuf,
}

pub fn run(cmd: RealCommand) -> anyhow::Result<()> {
    init_logging();
    match cmd {
        RealCommand::Origin(a) => origin(a),
        RealCommand::Node(a) => node(a),
        RealCommand::Front(a) => front(a),
        RealCommand::Load(a) => load(a),
        RealCommand::Cluster(a) => cluster_cmd(a),
        RealCommand::Bench(BenchCommand::Real(a)) => bench_real(a),
    }
}

fn policy_spec(name: &str, params: &[String]) -> anyhow::Result<PolicySpec> {
    let kind = PolicyKind::from_name(name).map_err(input_error)?;
    let params = Params::parse(params.iter().map(String::as_str)).map_err(input_error)?;
    Ok(PolicySpec { kind, params })
}

fn catalog(name: &str) -> anyhow::Result<Arc<dl7_traces::Catalog>> {
    let c = dl7_traces::workload::resolve(name).map_err(input_error)?;
    if c.is_empty() {
        return Err(input_error(format!("{name}: the workload has no objects")));
    }
    Ok(Arc::new(c))
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot bind {addr}"))
}

async fn bind_admin(addr: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(a) => Ok(Some(bind(a).await?)),
        None => Ok(None),
    }
}

fn announce(listen: &TcpListener, admin: &Option<TcpListener>) -> anyhow::Result<()> {
    let l = listen.local_addr()?;
    let a = admin.as_ref().map(|a| a.local_addr()).transpose()?;
    println!("{}", ready_line(l, a));
    use std::io::Write;
    std::io::stdout().flush()?;
    Ok(())
}

fn origin(a: OriginArgs) -> anyhow::Result<()> {
    let catalog = catalog(&a.workload)?;
    runtime()?.block_on(async {
        let listener = bind(a.listen).await?;
        let admin = bind_admin(a.service.admin).await?;
        announce(&listener, &admin)?;
        let mut cfg = OriginConfig::new(catalog);
        cfg.delay = Duration::from_millis(a.delay_ms);
        cfg.limits = a.service.limits();
        cfg.admin = admin;
        dl7_realnet::origin::run(listener, cfg, os_signal()).await.context("origin")
    })
}

fn node(a: NodeArgs) -> anyhow::Result<()> {
    let spec = policy_spec(&a.policy, &a.params)?;
    let n = a.nodes.len();
    if a.id as usize >= n {
        return Err(input_error(format!("--id {}: expected an index below the {n} addresses of --nodes", a.id)));
    }
    if !(a.cache_mb.is_finite() && a.cache_mb >= 0.0) {
        return Err(input_error(format!("--cache-mb {}: expected a non-negative number", a.cache_mb)));
    }
    let members = Membership::numbered(n).map_err(input_error)?;
    spec.build(&members).map_err(input_error)?;
    let cpu = a.cpu.costs()?;
    runtime()?.block_on(async {
        let listen = a.listen.unwrap_or(a.nodes[a.id as usize]);
        let listener = bind(listen).await?;
        let admin = bind_admin(a.service.admin).await?;
        let mut cfg = NodeConfig::new(ServerId(a.id), members, a.nodes.clone(), a.origin, spec);
        cfg.cache_bytes = (a.cache_mb * 1024.0 * 1024.0) as u64;
        cfg.distill = a.distill;
        cfg.directory = a.directory;
        cfg.fallbacks = a.fallbacks;
        cfg.limits = a.service.limits();
        cfg.admin = admin;
        cfg.cpu = cpu;
        if let Some(path) = &a.handoff {
            let _ = std::fs::remove_file(path); // a stale socket file from an earlier run
            cfg.handoff = Some(
                dl7_realnet::service::UnixListener::bind(path)
                    .with_context(|| format!("cannot bind unix socket {}", path.display()))?,
            );
        }
        announce(&listener, &cfg.admin)?;
        let r = dl7_realnet::node::run(listener, cfg, os_signal()).await.context("node");
        if let Some(path) = &a.handoff {
            let _ = std::fs::remove_file(path);
        }
        r
    })
}

fn front(a: FrontArgs) -> anyhow::Result<()> {
    let mode: FrontMode = a.mode.parse().map_err(input_error)?;
    let spec = policy_spec(&a.policy, &a.params)?;
    let members = Membership::numbered(a.nodes.len()).map_err(input_error)?;
    spec.build(&members).map_err(input_error)?;
    if mode == FrontMode::Distributed && a.handoff.len() != a.nodes.len() {
        return Err(input_error(format!(
            "--handoff: distributed mode needs one unix socket per node ({} nodes, {} sockets)",
            a.nodes.len(),
            a.handoff.len()
        )));
    }
    runtime()?.block_on(async {
        let listener = bind(a.listen).await?;
        let admin = bind_admin(a.service.admin).await?;
        announce(&listener, &admin)?;
        let mut cfg = FrontConfig::new(mode, a.nodes.clone(), a.handoff.clone());
        cfg.policy = spec;
        cfg.members = members;
        cfg.fallbacks = a.fallbacks;
        cfg.limits = a.service.limits();
        cfg.admin = admin;
        dl7_realnet::front::run(listener, cfg, os_signal()).await.context("front")
    })
}

fn load(a: LoadArgs) -> anyhow::Result<()> {
    let (catalog, requests) = match (&a.trace, &a.workload) {
        (Some(path), _) => {
            let t = dl7_traces::Trace::load(path).map_err(input_error)?;
            if t.requests.is_empty() {
                return Err(input_error(format!("{}: the trace has no requests to replay", path.display())));
            }
            (Arc::new(t.catalog), Requests::List(Arc::new(t.requests)))
        }
        (None, Some(w)) => (catalog(w)?, Requests::Stream { seed: a.seed }),
        (None, None) => return Err(input_error("--workload or --trace is required")),
    };
    for (name, v) in [("--warmup-s", a.warmup_s), ("--duration-s", a.duration_s)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(input_error(format!("{name} {v}: expected a non-negative number of seconds")));
        }
    }
    let mut cfg = LoadConfig::new(a.target, catalog);
    cfg.requests = requests;
    cfg.connections = a.connections;
    cfg.warmup = Duration::from_secs_f64(a.warmup_s);
    cfg.duration = Duration::from_secs_f64(a.duration_s);
    cfg.rate = a.rate;
    cfg.timeout = Duration::from_millis(a.timeout_ms);
    let report = runtime()?.block_on(dl7_realnet::load::run(cfg)).map_err(input_error)?;
    eprintln!("{}", report.summary());
    if a.json {
        println!("dl7-result {}", serde_json::to_string(&report)?);
    }
    Ok(())
}

fn cluster_cmd(a: ClusterArgs) -> anyhow::Result<()> {
    let mut file = ClusterFile::load(&a.file).map_err(input_error)?;
    if !a.servers.is_empty() {
        file.servers = a.servers;
    }
    if !a.policies.is_empty() {
        file.policies = a.policies;
    }
    if !a.archs.is_empty() {
        file.archs = a.archs;
    }
    if let Some(d) = a.duration_s {
        file.duration_s = d;
    }
    if let Some(w) = a.warmup_s {
        file.warmup_s = w;
    }
    file.validate().map_err(|e| input_error(format!("{}: {e}", a.file.display())))?;
    catalog(&file.workload)?;
    let out = a.out.unwrap_or_else(|| Path::new("reports").join(&file.name));
    run_sweep(&file, &out)
}

fn run_sweep(file: &ClusterFile, out: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the dl7 executable")?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let cells = file.cells();
    let rt = runtime()?;
    let scratch = cluster::scratch_dir(&file.name)?;
    let mut rows = Vec::new();
    // Per cell and lab host: NIC bytes over the measured window (only with `lab = ...`).
    let mut nic =
        String::from("arch,policy,servers,seed,host,role,tx_bytes,rx_bytes,window_s,link_mbit_per_s,utilisation\n");
    let mut nic_rows = 0usize;
    let result = rt.block_on(async {
        println!(
            "{:<22} {:<8} {:>3} {:>5} {:>10} {:>9} {:>9} {:>9} {:>7} {:>10} {:>11} {:>9}",
            "arch",
            "policy",
            "n",
            "seed",
            "req/s",
            "Mbit/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "fe us/req",
            "node us/req",
            "fe out %"
        );
        for (i, cell) in cells.iter().enumerate() {
            let cell_dir = scratch.join(i.to_string());
            std::fs::create_dir_all(&cell_dir)?;
            let outcome = tokio_select_signal(cluster::run_cell(&exe, file, cell, &cell_dir)).await?;
            let outcome = outcome.map_err(|e| {
                anyhow::anyhow!(
                    "cell {} ({} {} {} nodes): {e}",
                    i + 1,
                    cell.mode.name(),
                    cell.policy.kind,
                    cell.servers
                )
            })?;
            let r = &outcome.row;
            println!(
                "{:<22} {:<8} {:>3} {:>5} {:>10.1} {:>9.2} {:>9.3} {:>9.3} {:>7} {:>10.1} {:>11.1} {:>9.2}",
                r.arch,
                r.policy,
                r.servers,
                r.seed,
                r.req_per_s,
                r.mbit_per_s,
                r.p50_ms,
                r.p99_ms,
                r.errors,
                outcome.front_cpu_per_request_us,
                outcome.nodes_cpu_per_request_us,
                // Bytes the front end wrote to clients per payload byte delivered: direct return is ~0.
                outcome.front_bytes_out as f64 * 100.0 / outcome.load.payload_bytes.max(1) as f64
            );
            for u in &outcome.nic {
                nic.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{:.3},{},{:.4}\n",
                    r.arch,
                    r.policy,
                    r.servers,
                    r.seed,
                    u.host,
                    u.role,
                    u.tx_bytes,
                    u.rx_bytes,
                    u.window_s,
                    u.link_mbit_per_s,
                    u.utilisation()
                ));
                nic_rows += 1;
            }
            if let Some(fe) = outcome.nic.iter().find(|u| u.role == "front") {
                // Direct routing: the front end transmits only forwarded requests, a few % of the payload.
                println!(
                    "    front end NIC: tx {} B = {:.1}% of the payload delivered, util {:.2}",
                    fe.tx_bytes,
                    fe.tx_bytes as f64 * 100.0 / outcome.load.payload_bytes.max(1) as f64,
                    fe.utilisation()
                );
            }
            rows.push(outcome.row);
        }
        anyhow::Ok(())
    });
    let _ = std::fs::remove_dir_all(&scratch);
    if nic_rows > 0 {
        let nic_path = out.join("nic.csv");
        std::fs::write(&nic_path, &nic).with_context(|| format!("cannot write {}", nic_path.display()))?;
    }
    let path = out.join("results.csv");
    if result.is_err() && !rows.is_empty() {
        // Keep what was measured before the failure or the interruption.
        dl7::results::write_results(&path, &rows)?;
        eprintln!("wrote {} ({} of {} cells)", path.display(), rows.len(), cells.len());
    }
    result?;
    dl7::results::write_results(&path, &rows)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Runs `fut` unless SIGINT/SIGTERM comes first; on a signal the future is
/// dropped, which stops every child process it started.
async fn tokio_select_signal<F: std::future::Future>(fut: F) -> anyhow::Result<F::Output> {
    dl7_realnet::service::until_signal(fut).await.ok_or_else(|| anyhow::anyhow!("interrupted: all processes stopped"))
}

fn bench_real(a: BenchRealArgs) -> anyhow::Result<()> {
    let text = format!(
        "name = \"bench-real\"\nworkload = {:?}\nservers = {:?}\npolicies = [{:?}]\narchs = {:?}\nconnections_per_server = {}\nwarmup_s = {}\nduration_s = {}\n",
        a.workload, a.servers, a.policy, a.archs, a.connections_per_server, a.warmup_s, a.duration_s
    );
    let file = ClusterFile::parse(&text, "dl7 bench real").map_err(input_error)?;
    catalog(&file.workload)?;
    run_sweep(&file, &a.out)
}
