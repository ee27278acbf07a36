//! `dl7 front`: the front-end balancer, in the paper's two architectures plus
//! a comparison mode.
//!
//! * [`FrontMode::Conventional`] (the KTCPVS box): parses every request, picks
//!   the owner with its policy, fetches the response from that node (hop
//!   header: the node serves it, no second dispatch) and streams it to the
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
//! `GET /metrics` is served on the admin listener (the distributed and relay
//! modes never parse client bytes, so they cannot serve it in-band).
//! `bytes_out` counts every byte the front end writes to clients: the
//! direct-return test compares it with the payload clients received.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use dl7_core::{Membership, PolicySpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::{mpsc, watch, Mutex as AsyncMutex};
use tokio::time::Instant;

use crate::dispatch::{Dispatcher, Outcome};
use crate::health::{Health, HealthSpec};
use crate::http::{wait_true, Limits, Method, RelayError, ResponseHead, ResponseMeta, ServerConn, UpstreamBody};
use crate::metrics::Metrics;
use crate::service::{admin_loop, shutdown_signal, AdminPages, Conns, InFlight};

/// The front end's architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontMode {
    /// Parse, pick the owner, proxy and stream the response back (KTCPVS).
    Conventional,
    /// Hand each connection to a node over SCM_RIGHTS: direct return (IPVS-DR).
    Distributed,
    /// Splice bytes to a round-robin node through the front end (IPVS-NAT-like).
    Relay,
}

impl FrontMode {
    /// Every mode.
    pub const ALL: [FrontMode; 3] = [FrontMode::Conventional, FrontMode::Distributed, FrontMode::Relay];

    /// The CLI and TOML name.
    pub fn name(self) -> &'static str {
        match self {
            FrontMode::Conventional => "conventional",
            FrontMode::Distributed => "distributed",
            FrontMode::Relay => "relay",
        }
    }

    /// The `arch` column of results.csv (relay is named as a variant of distributed).
    pub fn arch_name(self) -> &'static str {
        match self {
            FrontMode::Relay => "distributed-relay",
            m => m.name(),
        }
    }
}

impl std::str::FromStr for FrontMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FrontMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown front mode {s:?}; expected conventional, distributed or relay"))
    }
}

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
    /// Listener for `GET /metrics`.
    pub admin: Option<TcpListener>,
    /// Active health checks of the nodes (`GET /health` on their TCP addresses).
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
            fallbacks: 2,
            handoff_stall: DEFAULT_HANDOFF_STALL,
            limits: Limits::default(),
            metrics: Arc::new(Metrics::new()),
            admin: None,
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
}

impl Members {
    fn get(&self) -> Vec<usize> {
        self.nodes.load().to_vec()
    }

    fn set(&self, ids: &[usize]) -> Result<(), String> {
        if ids.is_empty() {
            return Err("nodes: expected at least one node".into());
        }
        if let Some(&bad) = ids.iter().find(|&&i| i >= self.count) {
            return Err(format!("nodes: {bad} is not a node index (the front end knows {})", self.count));
        }
        if let Some(d) = &self.dispatcher {
            d.set_members(ids).map_err(|e| e.to_string())?;
        }
        self.nodes.store(Arc::new(ids.to_vec()));
        tracing::info!("front end: members now {ids:?}");
        Ok(())
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

/// How long a node may leave a handed-over socket unacknowledged before the
/// front end stops giving it new clients (default of [`FrontConfig::handoff_stall`]).
pub const DEFAULT_HANDOFF_STALL: std::time::Duration = std::time::Duration::from_millis(250);

struct Handoff {
    paths: Vec<PathBuf>,
    links: Vec<AsyncMutex<Option<Link>>>,
    timeout: std::time::Duration,
    stall: std::time::Duration,
    health: Arc<Health>,
    /// Client sockets a node took but never acknowledged before its link
    /// died: nothing has read them, so they go to another node.
    orphans: mpsc::UnboundedSender<std::net::TcpStream>,
    members: Arc<Members>,
}

/// Handed-over client sockets a node has not acknowledged yet, with their
/// send times. The front end keeps its copy of each until the node's
/// acknowledgement (one byte, in order), so that a node that dies with
/// sockets in its queue loses no client.
type Unacked = Arc<std::sync::Mutex<std::collections::VecDeque<(Instant, std::net::TcpStream)>>>;

/// The unix connection to one node and its unacknowledged handoffs.
struct Link {
    unix: Arc<UnixStream>,
    unacked: Unacked,
}

impl Link {
    async fn connect(path: &std::path::Path, orphans: mpsc::UnboundedSender<std::net::TcpStream>) -> Option<Link> {
        let unix = Arc::new(UnixStream::connect(path).await.ok()?);
        let unacked: Unacked = Default::default();
        let (u, a) = (unix.clone(), unacked.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 256];
            loop {
                let n = match u.readable().await {
                    Err(_) => 0,
                    Ok(()) => match u.try_read(&mut buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        r => r.unwrap_or(0),
                    },
                };
                let mut q = a.lock().expect("ack lock");
                if n == 0 {
                    // The node is gone: whatever it did not acknowledge, it never served.
                    for (_, client) in q.drain(..) {
                        let _ = orphans.send(client);
                    }
                    return;
                }
                let acked = n.min(q.len());
                q.drain(..acked);
            }
        });
        Some(Link { unix, unacked })
    }

    /// True when the oldest unacknowledged handoff is older than `stall`.
    fn stalled(&self, stall: std::time::Duration) -> bool {
        self.unacked.lock().expect("ack lock").front().is_some_and(|(t, _)| t.elapsed() > stall)
    }
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
            .with_health(health.clone()),
        )),
        _ => None,
    };
    let count = config.nodes.len().max(config.handoff.len());
    let members = Arc::new(Members {
        nodes: arc_swap::ArcSwap::from_pointee((0..count).collect()),
        count,
        dispatcher: dispatcher.clone(),
    });
    if let Some(initial) = &config.initial_members {
        members.set(initial).map_err(invalid)?;
    }
    if let Some(admin) = config.admin {
        let (mm, members) = (m.clone(), members.clone());
        let role = config.mode.name();
        let pages: AdminPages = Arc::new(move |method, p| {
            crate::admin::members_page(method, p, || members.get(), |ids| members.set(ids))
                .or_else(|| method.is_read().then(|| crate::admin::counter_page(&mm, role, p)).flatten())
        });
        tokio::spawn(admin_loop(admin, pages, conns.stop_signal()));
    }
    match config.mode {
        FrontMode::Conventional => {
            let d = dispatcher.expect("made above for conventional");
            loop {
                tokio::select! {
                    a = listener.accept() => if let Ok((s, _)) = a {
                        let (d, m, limits) = (d.clone(), m.clone(), config.limits.clone());
                        conns.admit(s, move |s, stop| proxy(d, m, limits, s, stop));
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
            let h = Handoff {
                links: config.handoff.iter().map(|_| AsyncMutex::new(None)).collect(),
                paths: config.handoff,
                timeout: config.limits.upstream_timeout,
                stall: config.handoff_stall,
                health: health.clone(),
                orphans,
                members: members.clone(),
            };
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
                match hand_over(&h, next.fetch_add(1, Relaxed), client).await {
                    Ok(()) => Metrics::add(&m.handoffs, 1),
                    Err(s) => {
                        // No node took it: tell the client instead of dropping it silently.
                        Metrics::add(&m.bad_gateway, 1);
                        if let Ok(s) = TcpStream::from_std(s) {
                            let mut conn = ServerConn::new(s).with_metrics(m.clone());
                            tokio::spawn(async move {
                                let _ = conn.write_error(502).await;
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

/// Sends the client socket to node `first`, or the next reachable one that
/// is up and not stalled; if every node is out or stalled, to the first
/// reachable one anyway. Gives the socket back if no node took it.
async fn hand_over(h: &Handoff, first: usize, mut client: std::net::TcpStream) -> Result<(), std::net::TcpStream> {
    let members = h.members.nodes.load_full();
    let n = members.len();
    for choosy in [true, false] {
        for k in 0..n {
            let i = members[(first + k) % n];
            if choosy && !h.health.is_up(i) {
                continue;
            }
            client = match try_node(h, i, client, choosy).await {
                Ok(()) => return Ok(()),
                Err(c) => c,
            };
        }
    }
    Err(client)
}

async fn try_node(
    h: &Handoff,
    i: usize,
    mut client: std::net::TcpStream,
    respect_stall: bool,
) -> Result<(), std::net::TcpStream> {
    use sendfd::SendWithFd;
    let mut link = h.links[i].lock().await;
    for _attempt in 0..2 {
        if link.is_none() {
            *link = Link::connect(&h.paths[i], h.orphans.clone()).await;
        }
        let Some(l) = link.as_ref() else { return Err(client) };
        if respect_stall && l.stalled(h.stall) {
            return Err(client); // not reading its handoffs (hung, stopped): skip it for now
        }
        let fd = client.as_raw_fd();
        // Queued first: the acknowledgement may come back before the send returns.
        l.unacked.lock().expect("ack lock").push_back((Instant::now(), client));
        let send = async {
            loop {
                l.unix.writable().await?;
                match l.unix.send_with_fd(&[0u8], &[fd]) {
                    Ok(1) => return Ok(()),
                    Ok(_) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
        };
        let sent = tokio::time::timeout(h.timeout, send).await;
        if let Ok(Ok(())) = sent {
            return Ok(());
        }
        // Not sent: take it back (the last entry: this link is ours while locked),
        // unless the link died meanwhile and its reader passed it on as an orphan.
        match l.unacked.lock().expect("ack lock").pop_back() {
            Some((_, c)) => client = c,
            None => return Ok(()),
        }
        match sent {
            Ok(Err(_)) => *link = None, // broken link: reconnect once
            _ => return Err(client),    // full socket buffer: the node is stuck
        }
    }
    Err(client)
}

async fn proxy(
    d: Arc<Dispatcher>,
    m: Arc<Metrics>,
    limits: Limits,
    stream: TcpStream,
    mut stop: watch::Receiver<bool>,
) {
    let mut conn = ServerConn::new(stream).with_metrics(m.clone());
    let mut path = String::with_capacity(128);
    loop {
        let Some(head) = conn.next_request(&limits, &mut path, &mut stop).await else { break };
        let start = Instant::now();
        let _inflight = InFlight::enter(&m);
        Metrics::add(&m.requests, 1);
        if !head.method.is_read() {
            Metrics::add(&m.client_errors, 1);
            let _ = conn.write_error(405).await;
            break;
        }
        let keep = head.keep_alive && !*stop.borrow();
        let head_only = head.method == Method::Head;
        let usable = match d.dispatch(&path).await {
            Outcome::Remote { head: up, mut body, server, .. } => {
                relay_remote(&mut conn, &m, &up, &mut body, server.0, keep, head_only).await
            }
            Outcome::Local { .. } | Outcome::Unavailable => {
                Metrics::add(&m.bad_gateway, 1);
                conn.write_error(502).await.is_ok()
            }
        };
        m.observe(start.elapsed());
        if !usable || !keep {
            break;
        }
    }
}

/// Streams a remote answer (head from `up`, body from `body`) to the client
/// from the upstream connection's buffer. Returns false when
/// the client connection must be closed: the client went away, a 502 with
/// `Connection: close` was sent, or the upstream died after the head was
/// sent (counted in `upstream_aborted`: the client sees the connection close
/// short of `Content-Length`, the only way left to tell it).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn relay_remote(
    conn: &mut ServerConn,
    m: &Metrics,
    up: &ResponseHead,
    body: &mut UpstreamBody,
    server: u32,
    keep: bool,
    head_only: bool,
) -> bool {
    let meta = ResponseMeta {
        content_type: up.content_type.mime(),
        object_id: up.object_id,
        served_by: up.served_by.or(Some(server)),
        cache_hit: up.cache_hit,
        gzip: up.gzip,
    };
    if up.status == 502 {
        Metrics::add(&m.bad_gateway, 1);
    }
    // relay_response counts `payload_out` itself, before the write that ends the response.
    match conn.relay_response(up.status, &meta, body, keep, head_only).await {
        Ok(_) => true,
        Err(RelayError::UpstreamBeforeHead(e)) => {
            tracing::debug!("server {server} failed before its body: {e}");
            Metrics::add(&m.bad_gateway, 1);
            let _ = conn.write_error(502).await;
            false
        }
        Err(RelayError::UpstreamAborted(e)) => {
            tracing::debug!("server {server} failed mid-body: {e}");
            Metrics::add(&m.upstream_aborted, 1);
            false
        }
        Err(RelayError::Client(_)) => false,
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
        Metrics::add(&m.bad_gateway, 1);
        let mut conn = ServerConn::new(client).with_metrics(m.clone());
        let _ = conn.write_error(502).await;
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
