//! `dl7 node`: one cache server with its own L7 dispatcher.
//!
//! A request from a client (or handed over by the distributed front end as
//! an already-accepted socket) is dispatched with this node's own policy
//! instance: when this node owns the path it serves it from its cache
//! (a miss fetches once from the origin however many clients wait:
//! single-flight, then optionally gzips text objects: the distill stage);
//! otherwise it fetches the object from the owner node with the hop header
//! and answers the client itself. Requests carrying the hop header are
//! always served locally, so a request crosses at most one extra hop.
//!
//! Admin pages on the main port (and the optional admin port):
//! `GET /metrics` (Prometheus text) and `GET /cache` (one line per cached
//! object: `object_id path stored_bytes`).
//!
//! The node must not decide membership: it is given the logical names (for
//! hashing, as in the simulator) and the real address of every node.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use dl7_core::{Membership, PolicySpec, ServerId};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{watch, OnceCell};
use tokio::time::Instant;

use crate::cache::{ByteLru, Entry};
use crate::dispatch::{Dispatcher, Outcome};
use crate::http::{wait_true, HeadError, Limits, Method, Pool, ResponseMeta, ServerConn};
use crate::metrics::Metrics;
use crate::service::{admin_loop, shutdown_signal, AdminPages, Conns, InFlight};

/// Configuration of a node.
pub struct NodeConfig {
    /// This node's index in `members`.
    pub id: ServerId,
    /// Logical membership the policy hashes (`Membership::numbered(n)`).
    pub members: Membership,
    /// Real address of every node, by index (this node's own included).
    pub peers: Vec<SocketAddr>,
    /// The origin web server.
    pub origin: SocketAddr,
    /// The request-distribution policy (built once per node: its own instance).
    pub policy: PolicySpec,
    /// Cache budget in body bytes.
    pub cache_bytes: u64,
    /// Gzip text objects at miss time and store the distilled body.
    pub distill: bool,
    /// Candidates tried after a failed owner (0: answer 502 at once).
    pub fallbacks: usize,
    /// Unix listener on which the distributed front end hands over client sockets.
    pub handoff: Option<UnixListener>,
    /// Ask this node (the directory) for every owner: one policy instance
    /// shared by all nodes (`ht_rr_shared`). `None`: pick locally.
    pub directory: Option<SocketAddr>,
    /// Connection limits and timeouts.
    pub limits: Limits,
    /// Counters served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Optional separate listener for `/metrics` and `/cache`.
    pub admin: Option<TcpListener>,
}

impl NodeConfig {
    /// A node with defaults: 64 MiB cache, no distill, 2 fallbacks.
    pub fn new(
        id: ServerId,
        members: Membership,
        peers: Vec<SocketAddr>,
        origin: SocketAddr,
        policy: PolicySpec,
    ) -> Self {
        Self {
            id,
            members,
            peers,
            origin,
            policy,
            cache_bytes: 64 << 20,
            distill: false,
            fallbacks: 2,
            handoff: None,
            directory: None,
            limits: Limits::default(),
            metrics: Arc::new(Metrics::new()),
            admin: None,
        }
    }
}

type Flight = Arc<OnceCell<Result<Entry, u16>>>;

struct Node {
    id: ServerId,
    dispatcher: Dispatcher,
    origin: Pool,
    cache: Mutex<ByteLru>,
    inflight: Mutex<HashMap<String, Flight>>,
    distill: bool,
    limits: Limits,
    metrics: Arc<Metrics>,
}

/// Runs a node on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    listener: TcpListener,
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let invalid = |e: dl7_core::PolicyError| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string());
    if config.id.index() >= config.members.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("node id {} out of range for {} nodes", config.id, config.members.len()),
        ));
    }
    let dispatcher = Dispatcher::new(
        &config.policy,
        &config.members,
        &config.peers,
        Some(config.id),
        config.fallbacks,
        config.limits.upstream_timeout,
        config.metrics.clone(),
    )
    .map_err(invalid)?;
    // The directory itself keeps the shared instance: it picks locally.
    let dispatcher = match config.directory {
        Some(d) if d != config.peers[config.id.index()] => dispatcher.with_directory(d),
        _ => dispatcher,
    };
    let node = Arc::new(Node {
        id: config.id,
        dispatcher,
        origin: Pool::new(config.origin, 256),
        cache: Mutex::new(ByteLru::new(config.cache_bytes)),
        inflight: Mutex::new(HashMap::new()),
        distill: config.distill,
        limits: config.limits.clone(),
        metrics: config.metrics.clone(),
    });
    tracing::info!(
        "node {}/{}: {:?}, policy {}, origin {}, cache {} bytes, distill {}",
        config.id,
        config.members.len(),
        listener.local_addr(),
        config.policy.kind,
        config.origin,
        config.cache_bytes,
        config.distill
    );
    let mut stop = shutdown_signal(shutdown);
    let conns = Arc::new(Conns::new(config.limits.max_connections, config.metrics.clone()));
    if let Some(admin) = config.admin {
        let n = node.clone();
        let pages: AdminPages = Arc::new(move |p| n.admin_page(p));
        tokio::spawn(admin_loop(admin, pages, conns.stop_signal()));
    }
    if let Some(handoff) = config.handoff {
        tokio::spawn(handoff_loop(handoff, node.clone(), conns.clone()));
    }
    loop {
        tokio::select! {
            a = listener.accept() => match a {
                Ok((stream, _)) => {
                    let n = node.clone();
                    conns.admit(stream, move |s, stop| serve(n, s, stop));
                }
                Err(e) => tracing::warn!("node accept: {e}"),
            },
            _ = wait_true(&mut stop) => break,
        }
    }
    drop(listener);
    conns.drain(config.limits.drain_timeout).await;
    Ok(())
}

/// Accepts front-end connections on the unix socket and serves every client
/// socket they hand over (one byte of data plus one descriptor per client).
async fn handoff_loop(listener: UnixListener, node: Arc<Node>, conns: Arc<Conns>) {
    let mut stop = conns.stop_signal();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = wait_true(&mut stop) => return,
        };
        let Ok((unix, _)) = accepted else { continue };
        let node = node.clone();
        let conns = conns.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            // Dropping the unix stream on stop makes the front end's next send
            // fail, so it moves on to another node instead of feeding a dead one.
            loop {
                let stream = tokio::select! {
                    s = receive_socket(&unix) => s,
                    _ = wait_true(&mut stop) => None,
                };
                let Some(stream) = stream else { break };
                // Acknowledge, so the front end can tell a stuck node from a busy one.
                let _ = unix.try_write(&[1u8]);
                Metrics::add(&node.metrics.handoffs, 1);
                let n = node.clone();
                conns.admit(stream, move |s, stop| serve(n, s, stop));
            }
        });
    }
}

/// Receives one TCP socket sent with SCM_RIGHTS; `None` when the sender is gone.
pub async fn receive_socket(unix: &UnixStream) -> Option<TcpStream> {
    use sendfd::RecvWithFd;
    loop {
        if unix.readable().await.is_err() {
            return None;
        }
        let mut byte = [0u8; 1];
        let mut fds: [RawFd; 1] = [-1];
        match unix.recv_with_fd(&mut byte, &mut fds) {
            Ok((0, _)) => return None,
            Ok((_, 1)) => {
                // SAFETY: the kernel just installed this descriptor for us and nothing else owns it.
                let std_stream = unsafe { std::net::TcpStream::from_raw_fd(fds[0]) };
                if std_stream.set_nonblocking(true).is_err() {
                    continue;
                }
                match TcpStream::from_std(std_stream) {
                    Ok(s) => return Some(s),
                    Err(e) => tracing::warn!("handed-over socket unusable: {e}"),
                }
            }
            Ok(_) => tracing::warn!("handoff message without a descriptor"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::warn!("handoff receive: {e}");
                return None;
            }
        }
    }
}

impl Node {
    fn admin_page(&self, path: &str) -> Option<String> {
        match path {
            "/metrics" => Some(self.metrics.render("node")),
            "/cache" => {
                let cache = self.cache.lock().expect("cache lock");
                let mut lines: Vec<String> = cache
                    .iter()
                    .map(|(p, e)| {
                        format!("{} {} {}", e.object_id.map_or("-".to_string(), |i| i.to_string()), p, e.body.len())
                    })
                    .collect();
                lines.sort();
                Some(lines.iter().map(|l| format!("{l}\n")).collect())
            }
            _ => None,
        }
    }

    /// Serves `path` as its owner: cache, else one origin fetch for all waiters.
    async fn serve_local(&self, path: &str) -> Result<Entry, u16> {
        let m = &*self.metrics;
        Metrics::add(&m.owner_requests, 1);
        if let Some(e) = self.cache.lock().expect("cache lock").get(path) {
            Metrics::add(&m.hits, 1);
            Metrics::add(&m.hit_bytes, e.body.len() as u64);
            Metrics::add(&m.owner_bytes, e.body.len() as u64);
            return Ok(e);
        }
        Metrics::add(&m.misses, 1);
        let flight = {
            let mut map = self.inflight.lock().expect("inflight lock");
            map.entry(path.to_string()).or_default().clone()
        };
        // If the task running the fetch is cancelled (its client left), the next waiter runs it.
        let result = flight.get_or_init(|| self.fetch_origin(path)).await.clone();
        if let Ok(e) = &result {
            Metrics::add(&m.owner_bytes, e.body.len() as u64);
        }
        let mut map = self.inflight.lock().expect("inflight lock");
        if map.get(path).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            map.remove(path);
        }
        result
    }

    async fn fetch_origin(&self, path: &str) -> Result<Entry, u16> {
        let m = &*self.metrics;
        Metrics::add(&m.origin_fetches, 1);
        let (head, body) = match self.origin.get(path, false, self.limits.upstream_timeout).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("origin fetch {path}: {e}");
                return Err(502);
            }
        };
        if head.status != 200 {
            return Err(if head.status == 404 { 404 } else { 502 });
        }
        let mut entry = Entry { body, mime: head.content_type.mime(), object_id: head.object_id, gzip: head.gzip };
        if self.distill && !entry.gzip && crate::content::is_text(head.content_type) {
            let original = entry.body.len() as u64;
            if let Ok(z) = gzip(&entry.body) {
                Metrics::add(&m.distill_saved_bytes, original.saturating_sub(z.len() as u64));
                entry.body = z.into();
                entry.gzip = true;
            }
        }
        let mut cache = self.cache.lock().expect("cache lock");
        cache.insert(path, entry.clone());
        m.cache_bytes.store(cache.bytes(), Relaxed);
        m.cache_objects.store(cache.len() as u64, Relaxed);
        Ok(entry)
    }
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), flate2::Compression::fast());
    enc.write_all(body)?;
    enc.finish()
}

async fn serve(node: Arc<Node>, stream: TcpStream, mut stop: watch::Receiver<bool>) {
    let m = node.metrics.clone();
    let mut conn = ServerConn::new(stream).with_metrics(m.clone());
    let mut path = String::with_capacity(128);
    loop {
        let head = match conn.read_head(&node.limits, &mut path, &mut stop).await {
            Ok(h) => h,
            Err(HeadError::Closed) => break,
            Err(HeadError::Status(s)) => {
                Metrics::add(&m.client_errors, 1);
                let _ = conn.write_error(s).await;
                break;
            }
        };
        let start = Instant::now();
        let _inflight = InFlight::enter(&m);
        Metrics::add(&m.requests, 1);
        let keep = head.keep_alive && !*stop.borrow();
        let head_only = head.method == Method::Head;
        if head.method == Method::Other {
            Metrics::add(&m.client_errors, 1);
            let _ = conn.write_error(405).await;
            break;
        }
        if let Some(asked) = path.strip_prefix(crate::dispatch::OWNER_PREFIX) {
            // Directory lookup: the owner this node's policy instance picks for `asked`.
            let owner = node.dispatcher.owner(asked);
            let meta = ResponseMeta { content_type: "text/plain", ..Default::default() };
            let body = format!("{}\n", owner.0);
            if conn.write_response(200, &meta, body.as_bytes(), keep, head_only).await.is_err() || !keep {
                break;
            }
            continue;
        }
        if let Some(page) = node.admin_page(&path) {
            let meta = ResponseMeta { content_type: "text/plain; version=0.0.4", ..Default::default() };
            if conn.write_response(200, &meta, page.as_bytes(), keep, head_only).await.is_err() || !keep {
                break;
            }
            continue;
        }
        if head.hop {
            Metrics::add(&m.hop_requests, 1);
        } else {
            match node.dispatcher.dispatch(&path).await {
                Outcome::Local { .. } => {}
                Outcome::Remote { head: up, body, server, .. } => {
                    let meta = ResponseMeta {
                        content_type: up.content_type.mime(),
                        object_id: up.object_id,
                        served_by: up.served_by.or(Some(server.0)),
                        gzip: up.gzip,
                    };
                    if up.status == 502 {
                        Metrics::add(&m.bad_gateway, 1);
                    }
                    let r = conn.write_response(up.status, &meta, &body, keep, head_only).await;
                    if up.status == 200 && !head_only {
                        Metrics::add(&m.payload_out, body.len() as u64);
                    }
                    m.observe(start.elapsed());
                    if r.is_err() || !keep {
                        break;
                    }
                    continue;
                }
                Outcome::Unavailable => {
                    Metrics::add(&m.bad_gateway, 1);
                    let _ = conn.write_error(502).await;
                    m.observe(start.elapsed());
                    // Keep the connection: the next request may go to a live owner.
                    if !keep {
                        break;
                    }
                    continue;
                }
            }
        }
        let r = match node.serve_local(&path).await {
            Ok(entry) => {
                let meta = ResponseMeta {
                    content_type: entry.mime,
                    object_id: entry.object_id,
                    served_by: Some(node.id.0),
                    gzip: entry.gzip,
                };
                let r = conn.write_response(200, &meta, &entry.body, keep, head_only).await;
                if !head_only {
                    Metrics::add(&m.payload_out, entry.body.len() as u64);
                }
                r
            }
            Err(status) => {
                if status == 502 {
                    Metrics::add(&m.bad_gateway, 1);
                } else {
                    Metrics::add(&m.client_errors, 1);
                }
                let meta =
                    ResponseMeta { content_type: "text/plain", served_by: Some(node.id.0), ..Default::default() };
                let body = format!("{status} {}\n", crate::http::reason(status));
                conn.write_response(status, &meta, body.as_bytes(), keep, head_only).await
            }
        };
        m.observe(start.elapsed());
        if r.is_err() || !keep {
            break;
        }
    }
}
