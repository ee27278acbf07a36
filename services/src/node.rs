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
//! object: `object_id path stored_bytes`); on the main port, `GET /health`, the
//! peers' and front end's probe ([`crate::health`]): 200, or 503 while draining.
//!
//! The node must not decide membership: it is given the logical names (for
//! hashing, as in the simulator) and the real address of every node.
//!
//! ## Emulated CPU
//! A scaled lab (10 Mbit/s links standing for the paper's 100) also needs
//! the nodes' CPU scaled, which this machine's cores are not. With a cost
//! model set (`[real] emulate_cpu = true`: the experiment's hardware profile
//! through `dl7_core::costs`, the function that gives the simulator its
//! costs), the node behaves as if it had one CPU that is a single-server FIFO
//! queue: every step of a request reserves the modelled time on a virtual
//! timeline (`busy_until`) and the request waits until its step is done. The
//! timeline, not the sleep, carries the capacity, so tokio's millisecond
//! timer granularity delays a response by at most a tick but never lowers
//! the node's throughput. The steps are the simulator's, one for one:
//! * receiver, per client request: `parse_local` when it owns the object,
//!   else `parse_fwd`, and `relay_fwd` for the owner's response;
//! * owner: `serve_local` for its own receiver's request, else `serve_net`
//!   (a peer's or the conventional front end's), plus Squid's poll() per
//!   request open there; `relay_local` when it is also the receiver;
//! * owner on a miss: `miss`, then `store` when the origin's response is in
//!   (the image distiller's work included; the stored size is the object's).
//!
//! The distill stage is only this cost: one meaning in both engines.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use dl7_core::{Membership, PolicySpec, ServerId};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::{watch, OnceCell};
use tokio::time::Instant;

use dl7_core::costs::Costs;

use crate::admin::{counter_page, Page};
use crate::cache::{ByteLru, Entry};
use crate::cpu::{Cpu, Open};
use crate::dispatch::{Dispatcher, Outcome};
use crate::fill::{Fill, FillHead, FillReader};
use crate::handoff::{acknowledge, receive_socket};
use crate::health::{Health, HealthSpec, HEALTH_PATH};
use crate::http::proxy::ForwardRequest;
use crate::http::{
    wait_true, BodyKind, BodySource, ForwardError, HeadError, Limits, Method, Pool, Relay, RequestBody, RequestHead,
    ResponseMeta, ServerConn, UpstreamBody,
};
use crate::metrics::Metrics;
use crate::relay::relay_remote;
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
    /// Largest object stored (Squid's `maximum_object_size`); larger ones
    /// stream through uncached.
    pub max_object_bytes: u64,
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
    /// The emulated CPU's cost model (`None`: no emulation).
    pub cpu: Option<Costs>,
    /// Active health checks of the other nodes.
    pub health: HealthSpec,
    /// The nodes routed over at start (indices into `peers`; `None`: all),
    /// changed at run time on the admin listener ([`crate::admin::MEMBERS_PATH`]).
    pub initial_members: Option<Vec<usize>>,
}

impl NodeConfig {
    /// A node with defaults: 64 MiB cache, objects up to 8 MiB cached, no distill, 2 fallbacks.
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
            max_object_bytes: 8 << 20,
            fallbacks: crate::spec::DEFAULT_FALLBACKS,
            handoff: None,
            directory: None,
            limits: Limits::default(),
            metrics: Arc::new(Metrics::new()),
            admin: None,
            cpu: None,
            health: HealthSpec::default(),
            initial_members: None,
        }
    }
}

/// How a miss under way ended for the requests that joined it.
#[derive(Debug, Clone, Copy)]
enum FlightEnd {
    /// The origin's answer is not one to keep (not a 200 of known length):
    /// each request fetches its own (Varnish's hit-for-pass), none shares it.
    Pass,
    /// The origin could not be asked: this status for every waiter.
    Failed(u16),
}

/// A miss under way: the fill every request for the path joins, or how it ended.
type Flight = Arc<OnceCell<Result<Arc<Fill>, FlightEnd>>>;

/// How the owner answers a request.
enum Owned {
    /// From the cache.
    Hit(Entry),
    /// From a fill arriving from the origin (shared with other waiters).
    Fill(FillReader),
    /// From its own fetch: an uncacheable object whose shared fill had moved on (its type, its body).
    Own(dl7_traces::ContentType, UpstreamBody),
    /// The origin's answer to the request that asked, not shared: relayed as it is.
    Relay(u16, UpstreamBody),
    /// Not shared with this request: fetch and relay its own.
    Pass,
}

struct Node {
    id: ServerId,
    dispatcher: Dispatcher,
    origin: Pool,
    cache: Mutex<ByteLru>,
    max_object_bytes: u64,
    inflight: Mutex<HashMap<String, Flight>>,
    limits: Limits,
    metrics: Arc<Metrics>,
    cpu: Cpu,
    /// This node's `Via` entry (RFC 9110 section 7.6.3), in every message it forwards or answers for the origin.
    via: String,
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
    let health = Health::new(config.health, (0..config.peers.len()).map(|i| i != config.id.index()));
    config.metrics.watch_peers(health.clone());
    let dispatcher = dispatcher.with_health(health.clone());
    if let Some(initial) = &config.initial_members {
        dispatcher.set_members(initial).map_err(invalid)?;
    }
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
        max_object_bytes: config.max_object_bytes,
        inflight: Mutex::new(HashMap::new()),
        limits: config.limits.clone(),
        metrics: config.metrics.clone(),
        cpu: Cpu::new(config.cpu.clone(), config.metrics.clone()),
        via: format!("1.1 dl7-node{}", config.id.0),
    });
    tracing::info!(
        "node {}/{}: {:?}, policy {}, origin {}, cache {} bytes, emulated cpu {}",
        config.id,
        config.members.len(),
        listener.local_addr(),
        config.policy.kind,
        config.origin,
        config.cache_bytes,
        config.cpu.is_some()
    );
    let mut stop = shutdown_signal(shutdown);
    let conns = Arc::new(Conns::new(config.limits.max_connections, config.metrics.clone()));
    health.spawn_probes(&config.peers, conns.stop_signal());
    if let Some(admin) = config.admin {
        let n = node.clone();
        let pages: AdminPages = Arc::new(move |method, p| n.admin_page(method, p));
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
                // Acknowledge, so the front end can tell a stuck node from a busy one, and
                // drops its copy: until then it would give the client to another node if this one died.
                if !acknowledge(&unix).await {
                    break; // unacknowledged: the front end gives it to another node, not ours to serve
                }
                Metrics::add(&node.metrics.handoffs, 1);
                let n = node.clone();
                conns.admit(stream, move |s, stop| serve(n, s, stop));
            }
        });
    }
}

impl Node {
    /// An admin page; `PUT` reaches here only from the admin listener (the
    /// main port answers it 405), so only there can the membership change.
    fn admin_page(&self, method: Method, path: &str) -> Option<Page> {
        let set = |ids: &[usize]| {
            self.dispatcher.set_members(ids).map_err(|e| e.to_string())?;
            tracing::info!("node {}: members now {ids:?}", self.id);
            Ok(())
        };
        if let Some(page) = crate::admin::members_page(method, path, || self.dispatcher.members(), set) {
            return Some(page);
        }
        if !method.is_read() {
            return None;
        }
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

    /// Answers the GET or HEAD `head` for `path` as its owner: from the
    /// cache, else from the one origin fetch every waiter shares (single
    /// flight), streamed as it arrives. The request that starts the fetch
    /// sends its own fields to the origin (as a GET, without its
    /// conditionals: the fill is for everyone).
    async fn serve_local(
        self: &Arc<Self>,
        path: &str,
        conn: &mut ServerConn,
        head: &RequestHead,
    ) -> Result<Owned, u16> {
        let m = &*self.metrics;
        Metrics::add(&m.owner_requests, 1);
        if let Some(e) = self.cache.lock().expect("cache lock").get(path) {
            Metrics::add(&m.hits, 1);
            Metrics::add(&m.hit_bytes, e.body.len() as u64);
            Metrics::add(&m.owner_bytes, e.body.len() as u64);
            return Ok(Owned::Hit(e));
        }
        Metrics::add(&m.misses, 1);
        let flight = {
            let mut map = self.inflight.lock().expect("inflight lock");
            map.entry(path.to_string()).or_default().clone()
        };
        // If the task starting the fetch is cancelled (its client left), the next waiter starts it.
        let mut mine = None;
        let result = flight.get_or_init(|| self.start_fill(path, conn, head, &flight, &mut mine)).await.clone();
        let fill = match result {
            Ok(fill) => fill,
            Err(end) => {
                self.forget(path, &flight);
                return match (end, mine) {
                    // The starter relays the origin's answer it holds.
                    (FlightEnd::Pass, Some(Mine::Relay(status, body))) => Ok(Owned::Relay(status, body)),
                    (FlightEnd::Pass, _) => Ok(Owned::Pass),
                    (FlightEnd::Failed(status), _) => Err(status),
                };
            }
        };
        Metrics::add(&m.owner_bytes, fill.head.len);
        if let Some(reader) = mine.and_then(Mine::reader).or_else(|| fill.reader()) {
            return Ok(Owned::Fill(reader));
        }
        // Too big to keep and its shared fetch has moved past the start: fetch a copy.
        Metrics::add(&m.origin_fetches, 1);
        let f = self.fill_request(path, head);
        match self.origin.forward(conn, &f, Method::Get, self.limits.upstream_timeout).await {
            Ok((up, body)) if up.status == 200 && body.length() == Some(fill.head.len) => {
                Ok(Owned::Own(fill.head.content_type, body))
            }
            _ => Err(502),
        }
    }

    /// The origin fetch of a fill: the client's request as a GET, without
    /// its body or conditionals.
    fn fill_request<'a>(&'a self, path: &'a str, _head: &RequestHead) -> ForwardRequest<'a> {
        ForwardRequest {
            method: Some("GET"),
            path,
            via: &self.via,
            hop: false,
            body: RequestBody::None,
            default_host: "",
            strip_conditionals: true,
            extra: b"",
        }
    }

    /// Removes `flight` from the map if it is still the one for `path`.
    fn forget(&self, path: &str, flight: &Flight) {
        let mut map = self.inflight.lock().expect("inflight lock");
        if map.get(path).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            map.remove(path);
        }
    }

    /// Starts the origin fetch of `path`: returns once the origin's head is
    /// in, with the fill its body goes into (and the starter's own reader in
    /// `mine`), or, for an answer not to keep, `Pass` (the answer itself in `mine`).
    async fn start_fill(
        self: &Arc<Self>,
        path: &str,
        conn: &mut ServerConn,
        head: &RequestHead,
        flight: &Flight,
        mine: &mut Option<Mine>,
    ) -> Result<Arc<Fill>, FlightEnd> {
        let m = &*self.metrics;
        Metrics::add(&m.origin_fetches, 1);
        let f = self.fill_request(path, head);
        let (up, body) = match self.origin.forward(conn, &f, Method::Get, self.limits.upstream_timeout).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("origin fetch {path}: {e}");
                return Err(FlightEnd::Failed(502));
            }
        };
        // Only a complete 200 of known length becomes a cache entry; any other
        // answer goes to the request that asked, and every waiter asks its own.
        let Some(len) = body.length().filter(|_| up.status == 200 && up.body == BodyKind::Length) else {
            *mine = Some(Mine::Relay(up.status, body));
            return Err(FlightEnd::Pass);
        };
        let image = up.content_type.is_image();
        self.cpu.work(|c| c.miss + c.object(len, image).store).await;
        let fh = FillHead {
            len,
            content_type: up.content_type,
            object_id: up.object_id,
            gzip: up.gzip,
            stored: bytes::Bytes::from(crate::http::proxy::stored_header_lines(body.raw_head())),
        };
        let (fill, reader) = Fill::new(fh.clone(), fh.len <= self.max_object_bytes);
        *mine = Some(Mine::Reader(reader));
        let (node, path, flight) = (self.clone(), path.to_string(), flight.clone());
        tokio::spawn(fill.clone().run(body, move |complete| {
            if let Some(body) = complete {
                let entry = Entry {
                    body,
                    content_type: fh.content_type,
                    object_id: fh.object_id,
                    gzip: fh.gzip,
                    stored: fh.stored,
                };
                let mut cache = node.cache.lock().expect("cache lock");
                cache.insert(&path, entry);
                node.metrics.cache_bytes.store(cache.bytes(), Relaxed);
                node.metrics.cache_objects.store(cache.len() as u64, Relaxed);
            }
            node.forget(&path, &flight);
        }));
        Ok(fill)
    }

    /// Passes the request `head` for `path` through to the origin and
    /// relays the answer (every method but a cacheable GET or HEAD: RFC 9111
    /// section 4 writes them through). False when the connection must close.
    async fn pass(&self, conn: &mut ServerConn, head: &RequestHead, path: &str, keep: bool) -> bool {
        let m = &*self.metrics;
        Metrics::add(&m.origin_fetches, 1);
        let f = ForwardRequest {
            method: None,
            path,
            via: &self.via,
            hop: false,
            body: head.body,
            default_host: "",
            strip_conditionals: false,
            extra: b"",
        };
        match self.origin.forward(conn, &f, head.method, self.limits.upstream_timeout).await {
            Ok((up, mut body)) => {
                self.relay_origin(conn, up.status, &mut body, keep, head.method == Method::Head).await
            }
            Err(e) => self.forward_failed(conn, e, keep).await,
        }
    }

    /// Relays an answer of the origin to this node's client: X-Cache MISS,
    /// this node as the server, its `Via`.
    async fn relay_origin(
        &self,
        conn: &mut ServerConn,
        status: u16,
        body: &mut UpstreamBody,
        keep: bool,
        head_only: bool,
    ) -> bool {
        let m = &*self.metrics;
        if (400..500).contains(&status) {
            Metrics::add(&m.client_errors, 1);
        }
        let r = Relay {
            status,
            via: &self.via,
            served_by: Some(self.id.0),
            cache: Some(false),
            keep_alive: keep,
            head_only,
        };
        let relayed = conn.relay_response(body, &r).await;
        owned_relayed(conn, m, relayed).await
    }

    /// Answers a forward that got no response head: 502 when the origin
    /// failed, the client's own error when its body could not be read.
    async fn forward_failed(&self, conn: &mut ServerConn, e: ForwardError, keep: bool) -> bool {
        let m = &*self.metrics;
        match e {
            ForwardError::Upstream { source, retriable, .. } => {
                tracing::debug!("origin: {source}");
                Metrics::add(&m.bad_gateway, 1);
                // A body that went part way leaves nothing to keep the connection for.
                let keep = keep && retriable;
                let meta =
                    ResponseMeta { content_type: "text/plain", served_by: Some(self.id.0), ..Default::default() };
                conn.write_response(502, &meta, b"502 Bad Gateway\n", keep, false).await.is_ok() && keep
            }
            ForwardError::Client(HeadError::Status(status)) => {
                Metrics::add(&m.client_errors, 1);
                let _ = conn.write_error(status).await;
                false
            }
            ForwardError::Client(HeadError::Closed) => false,
        }
    }
}

/// What the request that started a fetch holds of it.
enum Mine {
    /// Its reader of the shared fill.
    Reader(FillReader),
    /// The origin's answer, not shared (its status, its body).
    Relay(u16, UpstreamBody),
}

impl Mine {
    fn reader(self) -> Option<FillReader> {
        match self {
            Mine::Reader(r) => Some(r),
            Mine::Relay(..) => None,
        }
    }
}

async fn serve(node: Arc<Node>, stream: TcpStream, mut stop: watch::Receiver<bool>) {
    let m = node.metrics.clone();
    let mut conn = ServerConn::new(stream).with_metrics(m.clone());
    let mut path = String::with_capacity(128);
    // Sized on the first miss it streams (hits are written from the cache, relays from their connection).
    let mut buf = Vec::new();
    loop {
        let Some(head) = conn.next_request(&node.limits, &mut path, &mut stop).await else { break };
        let start = Instant::now();
        let _inflight = InFlight::enter(&m);
        let keep = head.keep_alive && !*stop.borrow();
        let head_only = head.method == Method::Head;
        if head.method == Method::Connect {
            // A tunnel is no cache's business (RFC 9110 section 9.3.6 lets a server refuse it).
            Metrics::add(&m.client_errors, 1);
            let _ = conn.write_error(501).await;
            break;
        }
        if head.method.is_read() {
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
            if path == HEALTH_PATH {
                // Draining: peers and front ends stop sending here before the node is gone.
                let status = if *stop.borrow() { 503 } else { 200 };
                let meta = ResponseMeta { content_type: "text/plain", ..Default::default() };
                let body = format!("{status} {}\n", crate::http::reason(status));
                if conn.write_response(status, &meta, body.as_bytes(), keep, head_only).await.is_err() || !keep {
                    break;
                }
                continue;
            }
            if let Some(page) = node.admin_page(head.method, &path) {
                let meta = ResponseMeta { content_type: page.content_type, ..Default::default() };
                if conn.write_response(page.status, &meta, page.body.as_bytes(), keep, head_only).await.is_err()
                    || !keep
                {
                    break;
                }
                continue;
            }
        } else if path.starts_with("/_dl7/") {
            // dl7's own pages change only on the admin listener (membership), never here.
            Metrics::add(&m.client_errors, 1);
            let _ = conn.write_error(405).await;
            break;
        }
        // Admin pages (a runner's scrape) are not requests of the workload.
        Metrics::add(&m.requests, 1);
        // The receiver's own pick stays in its load view until the response is written.
        let _outstanding = if head.hop {
            Metrics::add(&m.hop_requests, 1);
            None
        } else {
            match node.dispatcher.dispatch(&path, &mut conn, &head, &node.via).await {
                Outcome::Local { outstanding, .. } => {
                    node.cpu.work(|c| c.parse_local).await;
                    Some(outstanding)
                }
                Outcome::Remote { head: up, mut body, server, .. } => {
                    // Forwarding the request, then receiving and sending the response.
                    let image = up.content_type.is_image();
                    node.cpu.work(|c| c.parse_fwd + c.object(up.content_length, image).relay_fwd).await;
                    let usable =
                        relay_remote(&mut conn, &m, &up, &mut body, server.0, keep, head_only, &node.via).await;
                    m.observe(start.elapsed());
                    if !usable || !keep {
                        break;
                    }
                    continue;
                }
                Outcome::Unavailable => {
                    Metrics::add(&m.no_server, 1);
                    // Keep the connection: the next request may go to a live owner.
                    let usable = conn.write_status(503, keep).await.is_ok();
                    m.observe(start.elapsed());
                    if !usable || !keep {
                        break;
                    }
                    continue;
                }
                Outcome::Failed => {
                    // The owner failed with the request's body gone to it: nothing to resend.
                    Metrics::add(&m.bad_gateway, 1);
                    let _ = conn.write_error(502).await;
                    m.observe(start.elapsed());
                    break;
                }
                Outcome::ClientFailed(e) => {
                    if let HeadError::Status(status) = e {
                        Metrics::add(&m.client_errors, 1);
                        let _ = conn.write_error(status).await;
                    }
                    break;
                }
            }
        };
        // This node owns the request. Only a GET or HEAD without a body is
        // served from the cache; everything else is written through.
        if !head.method.is_read() || head.body != RequestBody::None {
            let (open, _) = Open::enter(&node.cpu);
            let usable = node.pass(&mut conn, &head, &path, keep).await;
            drop(open);
            m.observe(start.elapsed());
            if !usable || !keep {
                break;
            }
            continue;
        }
        let (open, open_now) = Open::enter(&node.cpu);
        let r = match node.serve_local(&path, &mut conn, &head).await {
            Ok(Owned::Pass) => node.pass(&mut conn, &head, &path, keep).await,
            Ok(Owned::Relay(status, mut body)) => {
                node.relay_origin(&mut conn, status, &mut body, keep, head_only).await
            }
            Ok(owned) => {
                let (len, content_type) = match &owned {
                    Owned::Hit(e) => (e.body.len() as u64, e.content_type),
                    Owned::Fill(r) => (r.fill().head.len, r.fill().head.content_type),
                    Owned::Own(t, b) => (b.remaining(), *t),
                    Owned::Relay(..) | Owned::Pass => unreachable!("answered above"),
                };
                node.cpu
                    .work(|c| {
                        let o = c.object(len, content_type.is_image());
                        // Squid's poll() walks every request open here.
                        let poll = (c.poll_ns_per_conn * open_now as f64) as u64;
                        // A request from elsewhere came over the network; the receiver's own
                        // came over loopback and is relayed to its client here.
                        poll + if head.hop { o.serve_net } else { o.serve_local + o.relay_local }
                    })
                    .await;
                match owned {
                    Owned::Hit(entry) => {
                        let meta = ResponseMeta {
                            stored: Some(&entry.stored),
                            served_by: Some(node.id.0),
                            cache_hit: Some(true),
                            via: Some(&node.via),
                            ..Default::default()
                        };
                        // Counted before the write, so it is final once the client has the response.
                        if !head_only {
                            Metrics::add(&m.payload_out, entry.body.len() as u64);
                        }
                        conn.write_response(200, &meta, &entry.body, keep, head_only).await.is_ok()
                    }
                    Owned::Fill(mut reader) => {
                        let stored = reader.fill().head.stored.clone();
                        let meta = ResponseMeta {
                            stored: Some(&stored),
                            served_by: Some(node.id.0),
                            cache_hit: Some(false),
                            via: Some(&node.via),
                            ..Default::default()
                        };
                        stream_owned(&mut conn, &m, &meta, &mut reader, keep, head_only, &mut buf).await
                    }
                    Owned::Own(_, mut body) => node.relay_origin(&mut conn, 200, &mut body, keep, head_only).await,
                    Owned::Relay(..) | Owned::Pass => unreachable!("answered above"),
                }
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
                conn.write_response(status, &meta, body.as_bytes(), keep, head_only).await.is_ok()
            }
        };
        drop(open);
        m.observe(start.elapsed());
        if !r || !keep {
            break;
        }
    }
}

/// Streams an owner's answer that is still arriving from the origin, through `buf`.
async fn stream_owned(
    conn: &mut ServerConn,
    m: &Metrics,
    meta: &ResponseMeta<'_>,
    body: &mut impl BodySource,
    keep: bool,
    head_only: bool,
    buf: &mut Vec<u8>,
) -> bool {
    if buf.is_empty() {
        buf.resize(crate::http::RELAY_CHUNK, 0);
    }
    let streamed = conn.stream_response(200, meta, body, keep, head_only, buf).await;
    owned_relayed(conn, m, streamed).await
}

/// The end of an owner's streamed answer: false when the client connection
/// must close (the client left, or the origin failed: a 502 if no byte was
/// sent yet, else the connection closes short, counted in `upstream_aborted`).
async fn owned_relayed(conn: &mut ServerConn, m: &Metrics, r: Result<u64, crate::http::RelayError>) -> bool {
    match r {
        Ok(_) => true,
        Err(crate::http::RelayError::UpstreamBeforeHead(e)) => {
            tracing::debug!("origin failed before the body: {e}");
            Metrics::add(&m.bad_gateway, 1);
            let _ = conn.write_error(502).await;
            false
        }
        Err(crate::http::RelayError::UpstreamAborted(e)) => {
            tracing::debug!("origin failed mid-body: {e}");
            Metrics::add(&m.upstream_aborted, 1);
            false
        }
        Err(crate::http::RelayError::Client(_)) => false,
    }
}
