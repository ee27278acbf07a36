//! `dl7 node`: one cache server with its own L7 dispatcher.
//!
//! A request from a client (or handed over by the distributed front end as
//! an already-accepted socket) is dispatched with this node's own policy
//! instance: when this node owns the path it serves it from its cache
//! (a miss fetches once from the origin however many clients wait:
//! single-flight, then optionally gzips text objects: the distill stage);
//! otherwise it fetches the object from the owner node with the hop header
//! and answers the client itself, streaming the owner's response through a
//! bounded buffer as it arrives (a forwarded object is never held whole, and
//! never cached here: only its owner caches it). Requests carrying the hop header are
//! always served locally, so a request crosses at most one extra hop.
//!
//! Admin pages on the main port (and the optional admin port):
//! `GET /metrics` (Prometheus text), `GET /stats` (JSON counters) and `GET /cache` (one line per cached
//! object: `object_id path stored_bytes`).
//!
//! The node must not decide membership: it is given the logical names (for
//! hashing, as in the simulator) and the real address of every node.
//!
//! ## Emulated CPU
//! A scaled lab (10 Mbit/s links standing for the paper's 100) also needs
//! the nodes' CPU scaled, which this machine's cores are not. With
//! [`CpuCosts`] set (all zero by default: off), the node behaves as if it
//! had one CPU that is a single-server FIFO queue: every step of a request
//! reserves the modelled time on a virtual timeline (`busy_until`) and the
//! request waits until its step is done. The timeline, not the sleep,
//! carries the capacity, so tokio's millisecond timer granularity delays a
//! response by at most a tick but never lowers the node's throughput. The
//! steps and their costs are the simulator's (`dl7-sim` `model::costs`),
//! for HTTP/1.0 exchanges as the modelled hardware ran them:
//! * receiver, per client request: `parse_us` (accept, request frames, L7
//!   parse and pick, the loopback connection to itself);
//! * owner, per request served from its cache: `request_us` (Squid and its
//!   connection) + `poll_ns_per_open` per request open at the owner +
//!   the response sent ([`CpuCosts::response_us`]); when the request came
//!   over the network (a peer or the conventional front end) also `hop_us`;
//!   when it was the receiver's own, two more copies of the response
//!   (Squid to KTCPVS over loopback);
//! * receiver whose owner is a peer: `hop_us` to forward the request and the
//!   response twice (received from the owner, sent to the client);
//! * owner on a miss: `miss_us`, and the origin's response received.

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

use crate::admin::{counter_page, Page};
use crate::cache::{ByteLru, Entry};
use crate::dispatch::{Dispatcher, Outcome};
use crate::http::{wait_true, Limits, Method, Pool, ResponseMeta, ServerConn};
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
    /// Emulated CPU costs (all zero: no emulation).
    pub cpu: CpuCosts,
}

/// Modelled CPU time of each step of a request at a node (see the module
/// docs for where each is charged). Zero everywhere: no emulation.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CpuCosts {
    /// Receiver, per client request: accept, parse, pick (microseconds).
    #[serde(default)]
    pub parse_us: f64,
    /// Owner, per request served (microseconds).
    #[serde(default)]
    pub request_us: f64,
    /// Each end of a request that crosses the network between processes (microseconds).
    #[serde(default)]
    pub hop_us: f64,
    /// Per frame of a response sent or received (microseconds).
    #[serde(default)]
    pub frame_us: f64,
    /// Per response byte moved between buffers (nanoseconds).
    #[serde(default)]
    pub copy_ns_per_byte: f64,
    /// Owner, per miss: the origin connection and Squid's extra work (microseconds).
    #[serde(default)]
    pub miss_us: f64,
    /// Owner, per request served, per request open at the owner (nanoseconds).
    #[serde(default)]
    pub poll_ns_per_open: f64,
}

/// Protocol facts of the modelled exchange (HTTP/1.0 over Ethernet, as in
/// `experiments/hardware/*.toml` `[network]`): they turn a body size into frames.
const MODEL_MSS: f64 = 1448.0;
const MODEL_ACK_EVERY_FRAMES: f64 = 2.0;
const MODEL_RESPONDER_CONTROL_FRAMES: f64 = 3.0;
const MODEL_RESPONSE_HEADER_BYTES: f64 = 300.0;

impl CpuCosts {
    /// True when some cost is set.
    pub fn enabled(&self) -> bool {
        self.values().iter().any(|&(_, v)| v > 0.0)
    }

    /// Each cost with its TOML key, in declaration order.
    pub fn values(&self) -> [(&'static str, f64); 7] {
        [
            ("parse_us", self.parse_us),
            ("request_us", self.request_us),
            ("hop_us", self.hop_us),
            ("frame_us", self.frame_us),
            ("copy_ns_per_byte", self.copy_ns_per_byte),
            ("miss_us", self.miss_us),
            ("poll_ns_per_open", self.poll_ns_per_open),
        ]
    }

    /// Checks every cost is a finite non-negative number; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in self.values() {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{k}: expected a non-negative number, got {v}"));
            }
        }
        Ok(())
    }

    /// One endpoint's CPU for a response of `body` bytes sent or received over
    /// the network: its data frames, the delayed ACKs, the responder's control
    /// frames, and copying it (microseconds).
    pub fn response_us(&self, body: usize) -> f64 {
        let p = body as f64 + MODEL_RESPONSE_HEADER_BYTES;
        let data = (p / MODEL_MSS).ceil().max(1.0);
        let acks = (data / MODEL_ACK_EVERY_FRAMES).ceil();
        (data + acks + MODEL_RESPONDER_CONTROL_FRAMES) * self.frame_us + self.copy_us(body)
    }

    /// Copying a response of `body` bytes once (microseconds).
    pub fn copy_us(&self, body: usize) -> f64 {
        (body as f64 + MODEL_RESPONSE_HEADER_BYTES) * self.copy_ns_per_byte / 1000.0
    }
}

/// The emulated CPU: one FIFO server on a virtual timeline.
struct Cpu {
    costs: CpuCosts,
    on: bool,
    busy_until: Mutex<Option<Instant>>,
    /// Requests at this node as owner, from lookup to response written (Squid's open connections).
    open: std::sync::atomic::AtomicU64,
    /// Where the modelled busy time is counted (`Metrics::emulated_cpu_ns`).
    metrics: Arc<Metrics>,
}

impl Cpu {
    fn new(costs: CpuCosts, metrics: Arc<Metrics>) -> Self {
        Cpu { costs, on: costs.enabled(), busy_until: Mutex::new(None), open: Default::default(), metrics }
    }

    /// Queues `us` microseconds of work behind everything queued before and
    /// waits until it is done.
    async fn work(&self, us: f64) {
        if !self.on || us <= 0.0 {
            return;
        }
        let d = std::time::Duration::from_nanos((us * 1000.0).round() as u64);
        let done = {
            let mut busy = self.busy_until.lock().expect("cpu lock");
            let now = Instant::now();
            let start = busy.filter(|&b| b > now).unwrap_or(now);
            let done = start + d;
            *busy = Some(done);
            done
        };
        Metrics::add(&self.metrics.emulated_cpu_ns, d.as_nanos() as u64);
        tokio::time::sleep_until(done).await;
    }

    /// Owner's cost of serving `body` bytes with `open` requests open there.
    fn serve_us(&self, body: usize, over_network: bool, open: u64) -> f64 {
        let c = &self.costs;
        let poll = c.poll_ns_per_open * open as f64 / 1000.0;
        let path = if over_network { c.hop_us } else { 2.0 * c.copy_us(body) };
        c.request_us + poll + path + c.response_us(body)
    }
}

/// Counts a request open at its owner while alive.
struct Open<'a>(&'a Cpu);

impl<'a> Open<'a> {
    fn enter(cpu: &'a Cpu) -> (Self, u64) {
        let n = cpu.open.fetch_add(1, Relaxed) + 1;
        (Open(cpu), n)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
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
            cpu: CpuCosts::default(),
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
    cpu: Cpu,
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
        cpu: Cpu::new(config.cpu, config.metrics.clone()),
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
    fn admin_page(&self, path: &str) -> Option<Page> {
        match path {
            "/cache" => {
                let cache = self.cache.lock().expect("cache lock");
                let mut lines: Vec<String> = cache
                    .iter()
                    .map(|(p, e)| {
                        format!("{} {} {}", e.object_id.map_or("-".to_string(), |i| i.to_string()), p, e.body.len())
                    })
                    .collect();
                lines.sort();
                Some(Page::text(lines.iter().map(|l| format!("{l}\n")).collect()))
            }
            _ => counter_page(&self.metrics, "node", path),
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
        self.cpu.work(self.cpu.costs.miss_us + self.cpu.costs.response_us(body.len())).await;
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
    let mut buf = Vec::new();
    loop {
        let Some(head) = conn.next_request(&node.limits, &mut path, &mut stop).await else { break };
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
            let meta = ResponseMeta { content_type: page.content_type, ..Default::default() };
            if conn.write_response(200, &meta, page.body.as_bytes(), keep, head_only).await.is_err() || !keep {
                break;
            }
            continue;
        }
        if head.hop {
            Metrics::add(&m.hop_requests, 1);
        } else {
            node.cpu.work(node.cpu.costs.parse_us).await;
            match node.dispatcher.dispatch(&path).await {
                Outcome::Local { .. } => {}
                Outcome::Remote { head: up, mut body, server, .. } => {
                    // Forwarding the request, then receiving and sending the response.
                    let c = &node.cpu.costs;
                    node.cpu.work(c.hop_us + 2.0 * c.response_us(up.content_length as usize)).await;
                    let usable =
                        crate::front::relay_remote(&mut conn, &m, &up, &mut body, server.0, keep, head_only, &mut buf)
                            .await;
                    m.observe(start.elapsed());
                    if !usable || !keep {
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
        let (open, open_now) = Open::enter(&node.cpu);
        let r = match node.serve_local(&path).await {
            Ok(entry) => {
                node.cpu.work(node.cpu.serve_us(entry.body.len(), head.hop, open_now)).await;
                let meta = ResponseMeta {
                    content_type: entry.mime,
                    object_id: entry.object_id,
                    served_by: Some(node.id.0),
                    gzip: entry.gzip,
                };
                // Counted before the write, so it is final once the client has the response.
                if !head_only {
                    Metrics::add(&m.payload_out, entry.body.len() as u64);
                }
                conn.write_response(200, &meta, &entry.body, keep, head_only).await
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
        drop(open);
        m.observe(start.elapsed());
        if r.is_err() || !keep {
            break;
        }
    }
}
