//! `dl7 front`: the front-end balancer, in the paper's two architectures plus
//! a comparison mode.
//!
//! * [`FrontMode::Conventional`] (the KTCPVS box): parses every request, picks
//!   the owner with its policy, forwards it to that node (any method, its
//!   fields and body passed on as a reverse proxy does, [`crate::http::proxy`];
//!   hop header: the node serves it, no second dispatch) and streams the answer to the
//!   client through a [`RELAY_CHUNK`](crate::http::RELAY_CHUNK) buffer as it arrives, never holding a
//!   whole object (as KTCPVS and HAProxy do: TCP flow control paces the node).
//! * [`FrontMode::Distributed`] (the IPVS-DR box): never reads a byte. Each
//!   accepted connection goes round-robin to a node, whose process receives
//!   the socket itself over a Unix socket (`SCM_RIGHTS`); the node's L7
//!   dispatcher handles it and the response never crosses the front end.
//!   This only works when front and nodes share a kernel (one host).
//! * [`FrontMode::Relay`] (IPVS-NAT-like): round-robin each connection to a
//!   node's TCP port and splice bytes both ways through the front end.
//!
//! The admin listener serves the counter pages, `/_dl7/health` and the
//! membership (its changes behind the admin token when there is one). The
//! conventional front end also answers dl7's reserved names (`/_dl7/health`,
//! `/_dl7/stats`, `/_dl7/metrics`, `/_dl7/members`; 404 for any other under
//! `/_dl7/`) on its public listener and never forwards them, as a node does;
//! every other path goes to a node. The distributed and relay modes never
//! parse client bytes, so a node answers the names of their clients.
//! `bytes_out` counts every byte the front end writes to clients: the
//! direct-return test compares it with the payload clients received.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use dl7_core::{Membership, PolicySpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::admin::AdminToken;
use crate::dispatch::{Dispatcher, Outcome};
use crate::handoff::DEFAULT_HANDOFF_STALL;
use crate::handoff::{hand_over, Handoff};
use crate::health::{Health, HEALTH_PATH};
use crate::http::{wait_true, Limits, Method, ServerConn};
use crate::metrics::Metrics;
use crate::relay::relay_remote;
use crate::service::{admin_loop, shutdown_signal, AdminPages, Conns, InFlight};
pub use crate::spec::FrontMode;
use crate::spec::HealthSpec;

/// Configuration of a front end.
pub struct FrontConfig {
    /// Which architecture.
    pub mode: FrontMode,
    /// Node TCP addresses by index (conventional and relay).
    pub nodes: Vec<SocketAddr>,
    /// Node handoff Unix socket paths by index (distributed).
    pub handoff: Vec<PathBuf>,
    /// Policy and logical membership (conventional only).
    pub policy: PolicySpec,
    /// Logical membership the policy hashes (`Membership::numbered(n)`).
    pub members: Membership,
    /// Candidates tried after a failed owner (conventional).
    pub fallbacks: usize,
    /// Distributed: a node that leaves a handoff unacknowledged this long gets no new clients.
    pub handoff_stall: std::time::Duration,
    /// Connection limits and timeouts.
    pub limits: Limits,
    /// Counters served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Listener for the admin pages and membership changes.
    pub admin: Option<TcpListener>,
    /// The token a change on the admin listener must carry (`None`: no check).
    pub admin_token: Option<AdminToken>,
    /// What the policy hashes (conventional): the whole request target or its path.
    pub hash_key: dl7_core::HashKey,
    /// How long a node that has just come up takes less than its keys (conventional; zero: no ramp-up).
    pub rampup: std::time::Duration,
    /// Active health checks of the nodes (on their TCP addresses): a connect,
    /// `GET path`, or none ([`HealthSpec::check`]).
    pub health: HealthSpec,
    /// The nodes sent to at start (indices into `nodes`; `None`: all), changed
    /// at run time on the admin listener ([`crate::admin::MEMBERS_PATH`]).
    pub initial_members: Option<Vec<usize>>,
}

impl FrontConfig {
    /// A front end over `nodes` with policy `md5` and 2 fallbacks.
    pub fn new(mode: FrontMode, nodes: Vec<SocketAddr>, handoff: Vec<PathBuf>) -> Self {
        let n = nodes.len().max(handoff.len()).max(1);
        Self {
            mode,
            nodes,
            handoff,
            policy: PolicySpec::new(dl7_core::PolicyKind::Md5),
            members: Membership::numbered(n).expect("n >= 1"),
            fallbacks: crate::defaults::DEFAULT_FALLBACKS,
            handoff_stall: DEFAULT_HANDOFF_STALL,
            limits: Limits::default(),
            metrics: Arc::new(Metrics::new()),
            admin: None,
            admin_token: None,
            hash_key: dl7_core::HashKey::Url,
            rampup: std::time::Duration::ZERO,
            health: HealthSpec::default(),
            initial_members: None,
        }
    }
}

/// The nodes the front end sends to now: handoff and relay targets, and
/// the conventional dispatcher's membership, changed together.
struct Members {
    nodes: arc_swap::ArcSwap<Vec<usize>>,
    count: usize,
    dispatcher: Option<Arc<Dispatcher>>,
    metrics: Arc<Metrics>,
}

impl Members {
    fn get(&self) -> Vec<usize> {
        self.nodes.load().to_vec()
    }

    fn set(&self, ids: &[usize]) -> Result<(), crate::error::MembersError> {
        use crate::error::MembersError;
        if ids.is_empty() {
            return Err(MembersError::Empty);
        }
        if let Some(&bad) = ids.iter().find(|&&i| i >= self.count) {
            return Err(MembersError::OutOfRange { index: bad, count: self.count });
        }
        if let Some(d) = &self.dispatcher {
            d.set_members(ids)?;
        }
        self.nodes.store(Arc::new(ids.to_vec()));
        self.metrics.set_members(ids);
        tracing::info!("front end: members now {ids:?}");
        Ok(())
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

/// Runs the front end on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    listener: TcpListener,
    config: FrontConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let m = config.metrics.clone();
    tracing::info!("front end: {} on {:?}, {} nodes", config.mode.name(), listener.local_addr(), config.nodes.len());
    let mut stop = shutdown_signal(shutdown);
    let conns = Conns::new(config.limits.max_connections, m.clone());
    let next = AtomicUsize::new(0);
    // Every mode checks the nodes it sends to; handoff and relay pick among those up.
    let health = Health::new(config.health, config.nodes.iter().map(|_| true));
    m.watch_peers(health.clone());
    health.spawn_probes(&config.nodes, conns.stop_signal());
    let dispatcher = match config.mode {
        FrontMode::Conventional => Some(Arc::new(
            Dispatcher::new(
                &config.policy,
                &config.members,
                &config.nodes,
                None,
                config.fallbacks,
                config.limits.upstream_timeout,
                m.clone(),
            )
            .map_err(|e| invalid(e.to_string()))?
            .with_health(health.clone())
            .with_hash_key(config.hash_key)
            .with_rampup(config.rampup),
        )),
        _ => None,
    };
    let count = config.nodes.len().max(config.handoff.len());
    let members = Arc::new(Members {
        nodes: arc_swap::ArcSwap::from_pointee((0..count).collect()),
        count,
        dispatcher: dispatcher.clone(),
        metrics: m.clone(),
    });
    m.set_members(&members.get());
    if let Some(initial) = &config.initial_members {
        members.set(initial).map_err(|e| invalid(e.to_string()))?;
    }
    let role = config.mode.name();
    let pages: AdminPages = {
        let (mm, members, draining) = (m.clone(), members.clone(), conns.stop_signal());
        Arc::new(move |method, p| {
            crate::admin::members_page(method, p, || members.get(), |ids| members.set(ids)).or_else(|| {
                if !method.is_read() {
                    return None;
                }
                match p {
                    HEALTH_PATH => Some(crate::admin::health_page(*draining.borrow())),
                    _ => crate::admin::counter_page(&mm, role, p),
                }
            })
        })
    };
    if let Some(admin) = config.admin {
        tokio::spawn(admin_loop(admin, pages.clone(), config.admin_token, conns.stop_signal()));
    }
    match config.mode {
        FrontMode::Conventional => {
            let d = dispatcher.expect("made above for conventional");
            loop {
                tokio::select! {
                    a = listener.accept() => if let Ok((s, _)) = a {
                        let (d, m, limits, pages) = (d.clone(), m.clone(), config.limits.clone(), pages.clone());
                        conns.admit(s, move |s, stop| proxy(d, m, limits, pages, s, stop));
                    },
                    _ = wait_true(&mut stop) => break,
                }
            }
        }
        FrontMode::Relay => {
            if config.nodes.is_empty() {
                return Err(invalid("relay front end needs at least one node address".into()));
            }
            let nodes = Arc::new(config.nodes.clone());
            loop {
                tokio::select! {
                    a = listener.accept() => if let Ok((s, _)) = a {
                        let i = next.fetch_add(1, Relaxed);
                        let targets: Vec<(usize, SocketAddr)> = members.get().into_iter().map(|n| (n, nodes[n])).collect();
                        let (m, limits, health) = (m.clone(), config.limits.clone(), health.clone());
                        conns.admit(s, move |s, _| relay(targets, health, i, m, limits, s));
                    },
                    _ = wait_true(&mut stop) => break,
                }
            }
        }
        FrontMode::Distributed => {
            if config.handoff.is_empty() {
                return Err(invalid("distributed front end needs at least one node handoff socket".into()));
            }
            let (orphans, mut orphaned) = mpsc::unbounded_channel();
            let h = Handoff::new(
                config.handoff,
                config.limits.upstream_timeout,
                config.handoff_stall,
                health.clone(),
                orphans,
            );
            loop {
                let client = tokio::select! {
                    a = listener.accept() => match a.and_then(|(s, _)| s.into_std()) {
                        Ok(s) => {
                            Metrics::add(&m.connections, 1);
                            s
                        }
                        Err(_) => continue,
                    },
                    Some(s) = orphaned.recv() => {
                        tracing::debug!("handing over again a client its node never took");
                        s
                    }
                    _ = wait_true(&mut stop) => break,
                };
                match hand_over(&h, &members.nodes.load_full(), next.fetch_add(1, Relaxed), client).await {
                    Ok(()) => Metrics::add(&m.handoffs, 1),
                    Err(s) => {
                        // No node took it: tell the client (503, no server left)
                        // instead of dropping it silently.
                        Metrics::add(&m.no_server, 1);
                        if let Ok(s) = TcpStream::from_std(s) {
                            let mut conn = ServerConn::new(s).with_metrics(m.clone());
                            tokio::spawn(async move {
                                let _ = conn.write_error(503).await;
                            });
                        }
                    }
                }
            }
        }
    }
    drop(listener);
    conns.drain(config.limits.drain_timeout).await;
    Ok(())
}

/// This front end's `Via` entry (RFC 9110 section 7.6.3).
const VIA: &str = "1.1 dl7-front";

async fn proxy(
    d: Arc<Dispatcher>,
    m: Arc<Metrics>,
    limits: Limits,
    pages: AdminPages,
    stream: TcpStream,
    mut stop: watch::Receiver<bool>,
) {
    let mut conn = ServerConn::new(stream).with_metrics(m.clone());
    let mut path = String::with_capacity(128);
    loop {
        let Some(head) = conn.next_request(&limits, &mut path, &mut stop).await else { break };
        if path.starts_with(crate::admin::PREFIX) {
            // dl7's reserved names: the front end's own, never a node's or the origin's.
            let keep = head.keep_alive && !*stop.borrow();
            if !crate::admin::answer_reserved(&mut conn, &m, head.method, keep, || pages(head.method, &path)).await {
                break;
            }
            continue;
        }
        let start = Instant::now();
        let _inflight = InFlight::enter(&m);
        Metrics::add(&m.requests, 1);
        if head.method == Method::Connect {
            // A tunnel is no reverse proxy's business (RFC 9110 section 9.3.6 lets a server refuse it).
            Metrics::add(&m.client_errors, 1);
            let _ = conn.write_error(501).await;
            break;
        }
        let keep = head.keep_alive && !*stop.borrow();
        let head_only = head.method == Method::Head;
        let usable = match d.dispatch(&path, &mut conn, &head, VIA).await {
            Outcome::Remote { head: up, mut body, server, .. } => {
                relay_remote(&mut conn, &m, &up, &mut body, server.0, keep, head_only, VIA).await
            }
            // A front end is never a candidate itself: `Local` cannot happen.
            Outcome::Local { .. } | Outcome::Unavailable => {
                Metrics::add(&m.no_server, 1);
                conn.write_status(503, keep).await.is_ok()
            }
            Outcome::Failed => {
                // The node failed with the request's body gone to it: nothing to resend.
                Metrics::add(&m.bad_gateway, 1);
                let _ = conn.write_error(502).await;
                false
            }
            Outcome::ClientFailed(e) => {
                if let crate::http::HeadError::Status(status) = e {
                    Metrics::add(&m.client_errors, 1);
                    let _ = conn.write_error(status).await;
                }
                false
            }
        };
        m.observe(start.elapsed());
        if !usable || !keep {
            break;
        }
    }
}

async fn relay(
    nodes: Vec<(usize, SocketAddr)>,
    health: Arc<Health>,
    first: usize,
    m: Arc<Metrics>,
    limits: Limits,
    client: TcpStream,
) {
    let _ = client.set_nodelay(true);
    let mut upstream = None;
    // Nodes that are up first, then (if none answered) the others.
    let order = (0..nodes.len()).map(|k| nodes[(first + k) % nodes.len()]);
    let (up, out): (Vec<_>, Vec<_>) = order.partition(|&(i, _)| health.is_up(i));
    for (_, addr) in up.into_iter().chain(out) {
        if let Ok(Ok(s)) = tokio::time::timeout(limits.upstream_timeout, TcpStream::connect(addr)).await {
            upstream = Some(s);
            break;
        }
    }
    let Some(upstream) = upstream else {
        Metrics::add(&m.no_server, 1);
        let mut conn = ServerConn::new(client).with_metrics(m.clone());
        let _ = conn.write_error(503).await;
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let m2 = m.clone();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = cr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            Metrics::add(&m2.bytes_in, n as u64);
            if uw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = uw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = ur.read(&mut buf).await {
            if n == 0 {
                break;
            }
            // Counted before the write: any write may end a response (this
            // splice cannot tell), and a client holding a whole response must
            // find its bytes counted.
            Metrics::add(&m.bytes_out, n as u64);
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}
