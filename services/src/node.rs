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
use crate::http::{wait_true, BodySource, Limits, Method, Pool, ResponseMeta, ServerConn, UpstreamBody};
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

/// A miss under way: the fill every request for the path joins, or the status they all get.
type Flight = Arc<OnceCell<Result<Arc<Fill>, u16>>>;

/// How the owner answers a request.
enum Owned {
    /// From the cache.
    Hit(Entry),
    /// From a fill arriving from the origin (shared with other waiters).
    Fill(FillReader),
    /// From its own fetch: an uncacheable object whose shared fill had moved on.
    Own(FillHead, UpstreamBody),
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

    /// Answers `path` as its owner: from the cache, else from the one
    /// origin fetch every waiter shares (single flight), streamed as it arrives.
    async fn serve_local(self: &Arc<Self>, path: &str) -> Result<Owned, u16> {
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
        let result = flight.get_or_init(|| self.start_fill(path, &flight, &mut mine)).await.clone();
        let fill = match result {
            Ok(fill) => fill,
            Err(status) => {
                self.forget(path, &flight);
                return Err(status);
            }
        };
        Metrics::add(&m.owner_bytes, fill.head.len);
        if let Some(reader) = mine.or_else(|| fill.reader()) {
            return Ok(Owned::Fill(reader));
        }
        // Too big to keep and its shared fetch has moved past the start: fetch a copy.
        Metrics::add(&m.origin_fetches, 1);
        match self.origin.get_stream(path, false, self.limits.upstream_timeout).await {
            Ok((head, body)) if head.status == 200 && head.content_length == fill.head.len => {
                Ok(Owned::Own(fill.head, body))
            }
            _ => Err(502),
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
    /// in, with the fill its body goes into (and the starter's own reader in `mine`).
    async fn start_fill(
        self: &Arc<Self>,
        path: &str,
        flight: &Flight,
        mine: &mut Option<FillReader>,
    ) -> Result<Arc<Fill>, u16> {
        let m = &*self.metrics;
        Metrics::add(&m.origin_fetches, 1);
        let (head, body) = match self.origin.get_stream(path, false, self.limits.upstream_timeout).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("origin fetch {path}: {e}");
                return Err(502);
            }
        };
        if head.status != 200 {
            return Err(if head.status == 404 { 404 } else { 502 });
        }
        let image = head.content_type.is_image();
        self.cpu.work(|c| c.miss + c.object(head.content_length, image).store).await;
        let fh = FillHead {
            len: head.content_length,
            content_type: head.content_type,
            object_id: head.object_id,
            gzip: head.gzip,
        };
        let (fill, reader) = Fill::new(fh, fh.len <= self.max_object_bytes);
        *mine = Some(reader);
        let (node, path, flight) = (self.clone(), path.to_string(), flight.clone());
        tokio::spawn(fill.clone().run(body, move |complete| {
            if let Some(body) = complete {
                let entry = Entry { body, content_type: fh.content_type, object_id: fh.object_id, gzip: fh.gzip };
                let mut cache = node.cache.lock().expect("cache lock");
                cache.insert(&path, entry);
                node.metrics.cache_bytes.store(cache.bytes(), Relaxed);
                node.metrics.cache_objects.store(cache.len() as u64, Relaxed);
            }
            node.forget(&path, &flight);
        }));
        Ok(fill)
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
        if !head.method.is_read() {
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
            if conn.write_response(page.status, &meta, page.body.as_bytes(), keep, head_only).await.is_err() || !keep {
                break;
            }
            continue;
        }
        // Admin pages (a runner's scrape) are not requests of the workload.
        Metrics::add(&m.requests, 1);
        // The receiver's own pick stays in its load view until the response is written.
        let _outstanding = if head.hop {
            Metrics::add(&m.hop_requests, 1);
            None
        } else {
            match node.dispatcher.dispatch(&path).await {
                Outcome::Local { outstanding, .. } => {
                    node.cpu.work(|c| c.parse_local).await;
                    Some(outstanding)
                }
                Outcome::Remote { head: up, mut body, server, .. } => {
                    // Forwarding the request, then receiving and sending the response.
                    let image = up.content_type.is_image();
                    node.cpu.work(|c| c.parse_fwd + c.object(up.content_length, image).relay_fwd).await;
                    let usable = relay_remote(&mut conn, &m, &up, &mut body, server.0, keep, head_only).await;
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
            }
        };
        let (open, open_now) = Open::enter(&node.cpu);
        let r = match node.serve_local(&path).await {
            Ok(owned) => {
                let (len, content_type, object_id, gzip) = match &owned {
                    Owned::Hit(e) => (e.body.len() as u64, e.content_type, e.object_id, e.gzip),
                    Owned::Fill(r) => {
                        let h = r.fill().head;
                        (h.len, h.content_type, h.object_id, h.gzip)
                    }
                    Owned::Own(h, _) => (h.len, h.content_type, h.object_id, h.gzip),
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
                let hit = matches!(owned, Owned::Hit(_));
                let meta = ResponseMeta {
                    content_type: content_type.mime(),
                    object_id,
                    served_by: Some(node.id.0),
                    cache_hit: Some(hit),
                    gzip,
                };
                match owned {
                    Owned::Hit(entry) => {
                        // Counted before the write, so it is final once the client has the response.
                        if !head_only {
                            Metrics::add(&m.payload_out, entry.body.len() as u64);
                        }
                        conn.write_response(200, &meta, &entry.body, keep, head_only).await.is_ok()
                    }
                    Owned::Fill(mut reader) => {
                        stream_owned(&mut conn, &m, &meta, &mut reader, keep, head_only, &mut buf).await
                    }
                    Owned::Own(_, mut body) => {
                        let relayed = conn.relay_response(200, &meta, &mut body, keep, head_only).await;
                        owned_relayed(&mut conn, &m, relayed).await
                    }
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
