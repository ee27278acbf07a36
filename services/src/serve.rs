//! Turns a typed config ([`crate::spec`]) into a running service: binds its
//! listeners, prints the ready line the testbed waits for ([`ready_line`]),
//! runs the service until SIGINT/SIGTERM and drains; a load run runs to its
//! end and prints its report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dl7_core::{Membership, ServerId};
use tokio::net::TcpListener;

use crate::error::{LoadError, SpecError};
use crate::front::FrontConfig;
use crate::http::Limits;
use crate::load::{LoadConfig, Requests};
use crate::node::NodeConfig;
use crate::origin::OriginConfig;
use crate::service::{os_signal, runtime};
use crate::spec::{validate, LimitsSpec, ServiceSpec};

/// The line a service prints once its listeners are bound.
pub fn ready_line(listen: SocketAddr, admin: Option<SocketAddr>) -> String {
    match admin {
        Some(a) => format!("dl7-ready listen={listen} admin={a}"),
        None => format!("dl7-ready listen={listen} admin=-"),
    }
}

/// The service limits a spec's limits stand for.
fn limits(s: &LimitsSpec) -> Limits {
    Limits {
        head_timeout: Duration::from_millis(s.head_timeout_ms),
        max_connections: s.max_connections.max(1),
        upstream_timeout: Duration::from_millis(s.upstream_timeout_ms),
        ..Limits::default()
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })
}

async fn bind_admin(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, ServeError> {
    match addr {
        Some(a) => Ok(Some(bind(a).await?)),
        None => Ok(None),
    }
}

fn announce(listen: &TcpListener, admin: &Option<TcpListener>) -> Result<(), ServeError> {
    let l = listen.local_addr().map_err(ServeError::Io)?;
    let a = admin.as_ref().map(|a| a.local_addr()).transpose().map_err(ServeError::Io)?;
    println!("{}", ready_line(l, a));
    use std::io::Write;
    std::io::stdout().flush().map_err(ServeError::Io)
}

fn catalog(name: &str) -> Result<Arc<dl7_traces::Catalog>, ServeError> {
    let c = dl7_traces::workload::resolve(name)?;
    if c.is_empty() {
        return Err(ServeError::NoObjects { workload: name.into() });
    }
    Ok(Arc::new(c))
}

fn runtime_for(threads: Option<usize>) -> Result<tokio::runtime::Runtime, ServeError> {
    runtime(threads).map_err(ServeError::Runtime)
}

/// Why [`serve`] stopped: a config error ([`ServeError::is_config`]: nothing
/// started) or a failure while starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A config field is wrong.
    #[error(transparent)]
    Config(#[from] SpecError),
    /// The workload (or trace) cannot be read.
    #[error(transparent)]
    Workload(#[from] dl7_traces::TraceError),
    /// The workload has no objects.
    #[error("{workload}: the workload has no objects")]
    NoObjects { workload: String },
    /// The trace to replay has no requests.
    #[error("{workload}: the trace has no requests to replay")]
    NoRequests { workload: String },
    /// A timed replay of a trace without request times.
    #[error("{workload}: speed: a timed replay needs request times, and the trace has none")]
    NoTimes { workload: String },
    /// A listener cannot be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The node's handoff socket cannot be bound.
    #[error("cannot bind unix socket {}: {source}", path.display())]
    BindUnix { path: PathBuf, source: std::io::Error },
    /// The tokio runtime cannot be built.
    #[error("{0}")]
    Runtime(#[source] std::io::Error),
    /// The ready line cannot be written.
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// The service (`origin`, `node`, `front`) failed while serving.
    #[error("{role}: {source}")]
    Service { role: &'static str, source: std::io::Error },
    /// The load run cannot run.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The load report cannot be written as JSON.
    #[error("{0}")]
    Report(#[source] serde_json::Error),
}

impl ServeError {
    /// Whether the config is wrong (a field, a workload that cannot be
    /// read): nothing started. Otherwise the service failed while starting
    /// or serving.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            ServeError::Config(_)
                | ServeError::Workload(_)
                | ServeError::NoObjects { .. }
                | ServeError::NoRequests { .. }
                | ServeError::NoTimes { .. }
        )
    }
}

/// Runs `spec` to the end: a service until SIGINT/SIGTERM (then drains), a
/// load run until done (printing its summary on stderr and one
/// `dl7-result {json}` line on stdout). The config is checked (and its
/// workload read) once, here.
pub fn serve(spec: ServiceSpec) -> Result<(), ServeError> {
    validate(&spec)?;
    // The workload is part of the config: reading it is checking it.
    let workload = match &spec {
        ServiceSpec::Origin(o) => Some(catalog(&o.workload).map(|c| (c, Requests::Stream { seed: 0 }))),
        ServiceSpec::Load(l) if l.replay => {
            Some(dl7_traces::Trace::resolve(&l.workload).map_err(ServeError::Workload).and_then(|t| {
                if t.requests.is_empty() {
                    return Err(ServeError::NoRequests { workload: l.workload.clone() });
                }
                let requests = match l.speed {
                    None => Requests::List(Arc::new(t.requests)),
                    Some(_) if t.times.is_empty() => return Err(ServeError::NoTimes { workload: l.workload.clone() }),
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
    let workload = workload.transpose()?;
    run(spec, workload)
}

/// Runs a checked spec; `workload` is the catalog (and requests) it reads.
fn run(spec: ServiceSpec, workload: Option<(Arc<dl7_traces::Catalog>, Requests)>) -> Result<(), ServeError> {
    match spec {
        ServiceSpec::Origin(o) => {
            let (catalog, _) = workload.expect("read by serve");
            runtime_for(o.limits.worker_threads)?.block_on(async {
                let listener = bind(o.listen).await?;
                let admin = bind_admin(o.admin).await?;
                announce(&listener, &admin)?;
                let mut cfg = OriginConfig::new(catalog);
                cfg.delay = Duration::from_millis(o.delay_ms);
                cfg.limits = limits(&o.limits);
                cfg.admin = admin;
                crate::origin::run(listener, cfg, os_signal())
                    .await
                    .map_err(|source| ServeError::Service { role: "origin", source })
            })
        }
        ServiceSpec::Node(n) => {
            let members = Membership::numbered(n.nodes.len()).map_err(SpecError::Nodes)?;
            let spec = n.policy.clone();
            runtime_for(n.limits.worker_threads)?.block_on(async {
                let listener = bind(n.listen.unwrap_or(n.nodes[n.id as usize])).await?;
                let admin = bind_admin(n.admin).await?;
                let mut cfg = NodeConfig::new(ServerId(n.id), members, n.nodes.clone(), n.origin, spec);
                cfg.cache_bytes = n.cache_bytes;
                cfg.eviction = n.eviction;
                cfg.max_object_bytes = n.max_object_bytes;
                cfg.directory = n.directory;
                cfg.fallbacks = n.fallbacks;
                cfg.hash_key = n.hash_key;
                cfg.rampup = Duration::from_secs_f64(n.rampup_s);
                cfg.limits = limits(&n.limits);
                cfg.admin = admin;
                cfg.admin_token = n.admin_token.clone();
                cfg.cpu = n.emulate_cpu.as_ref().map(dl7_core::costs::Costs::new);
                cfg.health = n.health;
                cfg.initial_members = n.members.clone();
                if let Some(path) = &n.handoff {
                    let _ = std::fs::remove_file(path); // a stale socket file from an earlier run
                    cfg.handoff = Some(
                        tokio::net::UnixListener::bind(path)
                            .map_err(|source| ServeError::BindUnix { path: path.clone(), source })?,
                    );
                }
                announce(&listener, &cfg.admin)?;
                let r = crate::node::run(listener, cfg, os_signal())
                    .await
                    .map_err(|source| ServeError::Service { role: "node", source });
                if let Some(path) = &n.handoff {
                    let _ = std::fs::remove_file(path);
                }
                r
            })
        }
        ServiceSpec::Front(f) => {
            let mode = f.mode;
            let members = Membership::numbered(f.nodes.len()).map_err(SpecError::Nodes)?;
            let spec = f.policy.clone();
            runtime_for(f.limits.worker_threads)?.block_on(async {
                let listener = bind(f.listen).await?;
                let admin = bind_admin(f.admin).await?;
                announce(&listener, &admin)?;
                let mut cfg = FrontConfig::new(mode, f.nodes.clone(), f.handoff.clone());
                cfg.policy = spec;
                cfg.members = members;
                cfg.fallbacks = f.fallbacks;
                cfg.hash_key = f.hash_key;
                cfg.rampup = Duration::from_secs_f64(f.rampup_s);
                cfg.limits = limits(&f.limits);
                cfg.admin = admin;
                cfg.admin_token = f.admin_token.clone();
                cfg.health = f.health;
                cfg.initial_members = f.members.clone();
                crate::front::run(listener, cfg, os_signal())
                    .await
                    .map_err(|source| ServeError::Service { role: "front", source })
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
            let mut report = runtime_for(l.worker_threads)?.block_on(crate::load::run(cfg))?;
            report.peak_rss_bytes = crate::procfs::peak_rss_bytes(std::process::id()).unwrap_or(0);
            eprintln!("{}: {}", l.label.as_deref().unwrap_or("load"), report.summary());
            println!("dl7-result {}", serde_json::to_string(&report).map_err(ServeError::Report)?);
            Ok(())
        }
    }
}
