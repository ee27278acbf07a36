//! `dl7 node`: one cache server with its own L7 dispatcher.
//!
//! A request from a client (or handed over by the distributed front end as
//! an already-accepted socket) is dispatched with this node's own policy
//! instance: when this node owns the path it answers as a shared HTTP cache
//! (RFC 9111, its rules in [`crate::rfc9111`]): a GET or HEAD from a stored
//! response that may be reused, else from one origin fetch (a fill, or a
//! validation of the stored response) however many clients wait
//! (single-flight); any other method, and whatever may not be stored, is
//! written through to the origin, and a successful unsafe request
//! invalidates what is stored for its target;
//! otherwise it fetches the object from the owner node with the hop header
//! and answers the client itself, streaming the owner's response through a
//! bounded buffer as it arrives (a forwarded object is never held whole, and
//! never cached here: only its owner caches it). Requests carrying the hop header are
//! always served locally, so a request crosses at most one extra hop.
//!
//! dl7's own pages, on the main port under the reserved prefix `/_dl7/`
//! ([`crate::admin`]) and on the optional admin port: `/_dl7/metrics`
//! (Prometheus text), `/_dl7/stats` (JSON counters), `/_dl7/cache` (one line
//! per cached object: `object_id path stored_bytes`), `/_dl7/members`,
//! `/_dl7/owner<path>` (the directory's answer) and `/_dl7/health`, the
//! peers' and front end's probe ([`crate::health`]): 200, or 503 while
//! draining. Any other path, `/health` or `/stats` too, is the origin's. A
//! change (`PUT /_dl7/members`) is the admin port's only, behind the admin
//! token when there is one.
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
use dl7_core::eviction::Eviction;

use crate::admin::{counter_page, AdminToken, Page};
use crate::cache::{Entry, HttpCache, PASS_FOR_S};
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
use crate::rfc9111::{self, CacheControl, Freshness, RequestInfo, Reuse};
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
    /// Which entry a full cache drops.
    pub eviction: Eviction,
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
    /// Optional separate listener for the admin pages and membership changes.
    pub admin: Option<TcpListener>,
    /// The token a change on the admin listener must carry (`None`: no check).
    pub admin_token: Option<AdminToken>,
    /// What the policy hashes: the whole request target or its path.
    pub hash_key: dl7_core::HashKey,
    /// How long a peer that has just come up takes less than its keys (zero: no ramp-up).
    pub rampup: std::time::Duration,
    /// The emulated CPU's cost model (`None`: no emulation).
    pub cpu: Option<Costs>,
    /// Active health checks of the other nodes.
    pub health: HealthSpec,
    /// The nodes routed over at start (indices into `peers`; `None`: all),
    /// changed at run time on the admin listener ([`crate::admin::MEMBERS_PATH`]).
    pub initial_members: Option<Vec<usize>>,
}

impl NodeConfig {
    /// A node with defaults: 64 MiB LRU cache, objects up to 8 MiB cached, no distill, 2 fallbacks.
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
            eviction: Eviction::Lru,
            max_object_bytes: 8 << 20,
            fallbacks: crate::defaults::DEFAULT_FALLBACKS,
            handoff: None,
            directory: None,
            limits: Limits::default(),
            metrics: Arc::new(Metrics::new()),
            admin: None,
            admin_token: None,
            hash_key: dl7_core::HashKey::Url,
            rampup: std::time::Duration::ZERO,
            cpu: None,
            health: HealthSpec::default(),
            initial_members: None,
        }
    }
}

/// How a miss under way ended for the requests that joined it.
#[derive(Debug, Clone)]
enum FlightEnd {
    /// The origin's answer is not one to keep (RFC 9111 section 3, or of
    /// unknown length): each request fetches its own (Varnish's
    /// hit-for-pass), none shares it.
    Pass,
    /// The origin could not be asked: this status for every waiter.
    Failed(u16),
    /// A validation ended in this stored response: a 304 updated it, or
    /// the origin failed and `stale-if-error` lets the stale one answer.
    Stored(Entry),
}

/// A miss under way: the fill every request for the path joins, or how it ended.
type Flight = Arc<OnceCell<Result<Arc<Fill>, FlightEnd>>>;

/// How the owner answers a request.
enum Owned {
    /// From the cache (`true`), or from a stored response just validated (`false`).
    Hit(Entry, bool),
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
    cache: Mutex<HttpCache>,
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
    .map_err(invalid)?
    .with_hash_key(config.hash_key)
    .with_rampup(config.rampup);
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
        cache: Mutex::new(HttpCache::new(config.eviction, config.cache_bytes)),
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
        let (n, draining) = (node.clone(), conns.stop_signal());
        let pages: AdminPages = Arc::new(move |method, p| match p {
            HEALTH_PATH if method.is_read() => Some(crate::admin::health_page(*draining.borrow())),
            _ => n.admin_page(method, p),
        });
        tokio::spawn(admin_loop(admin, pages, config.admin_token, conns.stop_signal()));
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
        let set = |ids: &[usize]| -> Result<(), crate::error::MembersError> {
            self.dispatcher.set_members(ids)?;
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
            crate::admin::CACHE_PATH => {
                let cache = self.cache.lock().expect("cache lock");
                let mut lines: Vec<String> = cache
                    .entries
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

    /// Answers the GET or HEAD `head` for `path` as its owner, as a shared
    /// cache (RFC 9111): from a stored response that may be reused for this
    /// request ([`Freshness::reuse`]), else from the one origin fetch every
    /// waiter shares (single flight: a fill, or a validation of the stored
    /// response), streamed as it arrives. The request that starts the fetch
    /// sends its own fields to the origin (as a GET, its conditionals
    /// replaced by the stored response's validators: the fetch is for
    /// everyone). `sc` is the connection's scratch (no allocation on a hit).
    async fn serve_local(self: &Arc<Self>, path: &str, conn: &mut ServerConn, sc: &mut Scratch) -> Result<Owned, u16> {
        let m = &*self.metrics;
        Metrics::add(&m.owner_requests, 1);
        let now = unix_now();
        sc.read(conn.request_head(), path);
        let (stored, passes) = {
            let mut cache = self.cache.lock().expect("cache lock");
            sc.secondary.clear();
            if let Some(vary) = cache.vary(&sc.uri) {
                rfc9111::secondary_key(vary, conn.request_head(), &mut sc.secondary);
            }
            cache.key(&sc.uri, &sc.secondary, &mut sc.key);
            let passes = cache.passes(&sc.uri, now);
            (cache.entries.get(&sc.key), passes)
        };
        let ask = sc.ask;
        let mut stale = None;
        if let Some(e) = stored {
            match e.freshness.reuse(&ask.cc, now) {
                reuse @ (Reuse::Fresh | Reuse::Stale | Reuse::StaleWhileRevalidate) => {
                    Metrics::add(&m.hits, 1);
                    Metrics::add(&m.hit_bytes, e.body.len() as u64);
                    Metrics::add(&m.owner_bytes, e.body.len() as u64);
                    if reuse == Reuse::StaleWhileRevalidate {
                        self.revalidate_behind(conn.request_head(), path, sc, &e);
                    }
                    return Ok(Owned::Hit(e, true));
                }
                Reuse::Revalidate => stale = Some(e),
            }
        }
        // Section 5.2.1.7: nothing from the origin, and nothing stored that may answer.
        if ask.cc.only_if_cached {
            return Err(504);
        }
        Metrics::add(&m.misses, 1);
        // Hit-for-pass: its last answer was not storable, so no fill to wait for.
        // A range is answered whole from the cache, but never filled from a part.
        if passes || ask.range {
            return Ok(Owned::Pass);
        }
        let flight = {
            let mut map = self.inflight.lock().expect("inflight lock");
            map.entry(sc.key.clone()).or_default().clone()
        };
        // If the task starting the fetch is cancelled (its client left), the next waiter starts it.
        let mut mine = None;
        let fetch = Fetch { path, key: &sc.key, uri: &sc.uri, ask, stale: stale.as_ref() };
        let result =
            flight.get_or_init(|| self.start_fill(conn.request_head(), &fetch, &flight, &mut mine)).await.clone();
        let fill = match result {
            Ok(fill) => fill,
            Err(end) => {
                self.forget(&sc.key, &flight);
                return match (end, mine) {
                    // The starter relays the origin's answer it holds.
                    (FlightEnd::Pass, Some(Mine::Relay(status, body))) => Ok(Owned::Relay(status, body)),
                    (FlightEnd::Pass, _) => Ok(Owned::Pass),
                    (FlightEnd::Failed(status), _) => Err(status),
                    (FlightEnd::Stored(e), _) => Ok(Owned::Hit(e, false)),
                };
            }
        };
        Metrics::add(&m.owner_bytes, fill.head.len);
        if let Some(reader) = mine.and_then(Mine::reader).or_else(|| fill.reader()) {
            return Ok(Owned::Fill(reader));
        }
        // Too big to keep and its shared fetch has moved past the start: fetch a copy.
        Metrics::add(&m.origin_fetches, 1);
        let f = self.fill_request(path, b"");
        match self.origin.forward(conn, &f, Method::Get, self.limits.upstream_timeout).await {
            Ok((up, body)) if up.status == fill.head.status && body.length() == Some(fill.head.len) => {
                Ok(Owned::Own(fill.head.content_type, body))
            }
            _ => Err(502),
        }
    }

    /// The origin fetch of a fill: the client's request as a GET, without
    /// its body, conditionals or range, with `validators` (those of a
    /// stored response being revalidated) instead.
    fn fill_request<'a>(&'a self, path: &'a str, validators: &'a [u8]) -> ForwardRequest<'a> {
        ForwardRequest {
            method: Some("GET"),
            path,
            via: &self.via,
            hop: false,
            body: RequestBody::None,
            default_host: "",
            strip_conditionals: true,
            extra: validators,
        }
    }

    /// Validates the stale `stale` for the request just answered from it
    /// (`stale-while-revalidate`), as that request's own fetch would, on a
    /// task of its own: the requests after it get the result. None starts
    /// while a fetch of the key is under way; it joins the single flight.
    fn revalidate_behind(self: &Arc<Self>, request_head: &[u8], path: &str, sc: &Scratch, stale: &Entry) {
        let flight = match self.inflight.lock().expect("inflight lock").entry(sc.key.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => return,
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Flight::default()).clone(),
        };
        Metrics::add(&self.metrics.background_revalidations, 1);
        let (node, head, path, stale) = (self.clone(), request_head.to_vec(), path.to_string(), stale.clone());
        let (key, uri, ask) = (sc.key.clone(), sc.uri.clone(), sc.ask);
        tokio::spawn(async move {
            let fetch = Fetch { path: &path, key: &key, uri: &uri, ask, stale: Some(&stale) };
            let mut mine = None;
            // A fill ends (and leaves the map) by itself; any other end is ours to clear.
            if flight.get_or_init(|| node.start_fill(&head, &fetch, &flight, &mut mine)).await.is_err() {
                node.forget(&key, &flight);
            }
        });
    }

    /// Removes `flight` from the map if it is still the one for `key`.
    fn forget(&self, key: &str, flight: &Flight) {
        let mut map = self.inflight.lock().expect("inflight lock");
        if map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            map.remove(key);
        }
    }

    /// Starts the origin fetch `f`: returns once the origin's head is in,
    /// with the fill its body goes into (and the starter's own reader in
    /// `mine`); or how it ended otherwise: `Pass` for an answer not to keep
    /// (the answer itself in `mine`), `Stored` when a validation kept the
    /// stored response (304, or `stale-if-error`), `Failed`.
    async fn start_fill(
        self: &Arc<Self>,
        request_head: &[u8],
        f: &Fetch<'_>,
        flight: &Flight,
        mine: &mut Option<Mine>,
    ) -> Result<Arc<Fill>, FlightEnd> {
        let m = &*self.metrics;
        Metrics::add(&m.origin_fetches, 1);
        let request_time = unix_now();
        // Section 4.3.1: validate a stored response with its own validators.
        let mut validators = Vec::new();
        if let Some(e) = f.stale {
            for (field, cond) in [("etag", "If-None-Match"), ("last-modified", "If-Modified-Since")] {
                if let Some(v) = rfc9111::stored_field(&e.stored, field) {
                    validators.extend_from_slice(cond.as_bytes());
                    validators.extend_from_slice(b": ");
                    validators.extend_from_slice(v);
                    validators.extend_from_slice(b"\r\n");
                }
            }
        }
        let req = self.fill_request(f.path, &validators);
        let (up, body) =
            match self.origin.forward_head(request_head, &req, Method::Get, self.limits.upstream_timeout).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("origin fetch {}: {e}", f.path);
                    return Err(self.validation_failed(f.stale, 502));
                }
            };
        let response_time = unix_now();
        let Some(info) = rfc9111::response_info(body.raw_head()) else {
            return Err(FlightEnd::Failed(502));
        };
        if let Some(e) = f.stale {
            if up.status == 304 {
                // Section 4.3.4: the stored response, its fields updated by the 304's.
                let stored = rfc9111::merge_not_modified(&e.stored, body.raw_head());
                let freshness = freshness_of(e.status, &stored, request_time, response_time);
                let entry = Entry { stored: bytes::Bytes::from(stored), freshness, ..e.clone() };
                let mut cache = self.cache.lock().expect("cache lock");
                cache.entries.replace(f.key, entry.clone());
                return Err(FlightEnd::Stored(entry));
            }
            // The origin answered, with an error: the stale one instead if `stale-if-error` allows it.
            if up.status >= 500 && e.freshness.stale_if_error(response_time) {
                return Err(FlightEnd::Stored(e.clone()));
            }
        }
        let req_info =
            RequestInfo { cc: f.ask.cc, authorization: f.ask.authorization, range: f.ask.range, ..Default::default() };
        let freshness = Freshness::of(&info, request_time, response_time);
        // A response that could never be reused without a whole new fetch is not worth keeping.
        let reusable = freshness.lifetime > 0 || info.etag.is_some() || info.last_modified.is_some();
        let verdict = rfc9111::storable(true, &req_info, &info);
        let kept = verdict.is_ok() && reusable && up.body == BodyKind::Length;
        let Some(len) = body.length().filter(|_| kept) else {
            tracing::debug!("{}: not stored ({verdict:?}, reusable {reusable}, {:?})", f.uri, up.body);
            let mut cache = self.cache.lock().expect("cache lock");
            // The stored response is superseded by one that may not be kept.
            cache.entries.remove(f.key);
            // Hit-for-pass, unless only this request made it unstorable.
            if !matches!(verdict, Err(e) if e.is_the_requests()) {
                cache.set_pass(f.uri, Some(response_time + PASS_FOR_S));
            }
            *mine = Some(Mine::Relay(up.status, body));
            return Err(FlightEnd::Pass);
        };
        let stored = bytes::Bytes::from(crate::http::proxy::stored_header_lines(body.raw_head()));
        // The key a response that varies is stored under (section 4.1).
        let key = {
            let mut cache = self.cache.lock().expect("cache lock");
            cache.set_pass(f.uri, None);
            cache.set_vary(f.uri, bytes::Bytes::from(rfc9111::vary_of(&stored)));
            let mut secondary = Vec::new();
            if let Some(vary) = cache.vary(f.uri) {
                rfc9111::secondary_key(vary, request_head, &mut secondary);
            }
            let mut key = String::new();
            cache.key(f.uri, &secondary, &mut key);
            key
        };
        let image = up.content_type.is_image();
        self.cpu.work(|c| c.miss + c.object(len, image).store).await;
        let fh = FillHead {
            len,
            content_type: up.content_type,
            object_id: up.object_id,
            gzip: up.gzip,
            stored,
            status: up.status,
            freshness,
        };
        let (fill, reader) = Fill::new(fh.clone(), fh.len <= self.max_object_bytes);
        *mine = Some(Mine::Reader(reader));
        let (node, flight_key, flight) = (self.clone(), f.key.to_string(), flight.clone());
        let refill = f.stale.is_some();
        tokio::spawn(fill.clone().run(body, move |complete| {
            if let Some(body) = complete {
                let entry = Entry {
                    body,
                    content_type: fh.content_type,
                    object_id: fh.object_id,
                    gzip: fh.gzip,
                    stored: fh.stored,
                    status: fh.status,
                    freshness: fh.freshness,
                };
                let mut cache = node.cache.lock().expect("cache lock");
                // A refill replaces the stale entry; a first fill of a key
                // present already only touches it, as the simulator's cache does.
                if refill {
                    cache.entries.replace(&key, entry);
                } else {
                    cache.entries.insert(&key, entry);
                }
                node.metrics.cache_bytes.store(cache.entries.bytes(), Relaxed);
                node.metrics.cache_objects.store(cache.entries.len() as u64, Relaxed);
            }
            node.forget(&flight_key, &flight);
        }));
        Ok(fill)
    }

    /// How a validation ends when the origin cannot be asked: the stale
    /// response if `stale-if-error` allows it (RFC 5861), 504 if it must be
    /// revalidated (section 5.2.2.2), else 502.
    fn validation_failed(&self, stale: Option<&Entry>, status: u16) -> FlightEnd {
        match stale {
            Some(e) if e.freshness.stale_if_error(unix_now()) => FlightEnd::Stored(e.clone()),
            Some(e) if e.freshness.must_revalidate => FlightEnd::Failed(504),
            _ => FlightEnd::Failed(status),
        }
    }

    /// Invalidates what this node stores for `host` + `path` (RFC 9111
    /// section 4.4); true when it held anything.
    fn invalidate(&self, host: &[u8], path: &str) -> bool {
        let mut uri = String::new();
        rfc9111::cache_key(host, path, &mut uri);
        let mut cache = self.cache.lock().expect("cache lock");
        let held = cache.invalidate(&uri);
        self.metrics.cache_bytes.store(cache.entries.bytes(), Relaxed);
        self.metrics.cache_objects.store(cache.entries.len() as u64, Relaxed);
        held
    }

    /// After a successful unsafe request for `path` (its answer's head
    /// `resp`): invalidates the target here, and its `Location` and
    /// `Content-Location` on the same host at their owners, here or at a
    /// peer (a `PURGE` with the hop header, which a node answers itself).
    async fn invalidate_after(&self, host: &[u8], path: &str, resp: &[u8]) {
        self.invalidate(host, path);
        let host_text = String::from_utf8_lossy(host).into_owned();
        for (h, p) in rfc9111::invalidated(&host_text, resp) {
            let owner = self.dispatcher.owner(&p);
            if owner == self.id {
                self.invalidate(h.as_bytes(), &p);
            } else if let Some(addr) = self.dispatcher.addr(owner) {
                let req = format!(
                    "PURGE {p} HTTP/1.1\r\nHost: {h}\r\n{}: 1\r\nContent-Length: 0\r\n\r\n",
                    crate::http::HOP_HEADER
                );
                let purge = async {
                    let mut c = crate::http::ClientConn::connect(addr, self.limits.upstream_timeout).await?;
                    c.send_raw(req.as_bytes()).await?;
                    c.read_response(&mut Vec::new(), 4096).await
                };
                if let Err(e) = tokio::time::timeout(self.limits.upstream_timeout, purge).await {
                    tracing::warn!("invalidating {p} at node {owner}: timed out ({e})");
                }
            }
        }
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
                // Section 4.4: a non-error answer to an unsafe method invalidates,
                // before the client has it (its next GET must not see the old one).
                if !head.method.is_safe() && rfc9111::invalidates(up.status) {
                    let host = rfc9111::request_info(conn.request_head()).map(|i| i.host.to_vec()).unwrap_or_default();
                    self.invalidate_after(&host, path, body.raw_head()).await;
                }
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

/// One origin fetch of the owner's: a fill, or the validation of `stale`.
struct Fetch<'a> {
    path: &'a str,
    /// The key it is stored under (and its flight's).
    key: &'a str,
    /// The effective request URI.
    uri: &'a str,
    ask: Ask,
    stale: Option<&'a Entry>,
}

/// What a cache reads of a request once ([`rfc9111::request_info`]), kept
/// past the parse.
#[derive(Debug, Clone, Copy, Default)]
struct Ask {
    cc: CacheControl,
    authorization: bool,
    range: bool,
    if_modified_since: Option<u64>,
    has_if_none_match: bool,
}

/// A connection's buffers for the cache's view of each request: reused,
/// so that a hit allocates nothing once they have grown.
#[derive(Default)]
struct Scratch {
    /// The effective request URI (host and target).
    uri: String,
    /// The key of the entry that answers it (the URI, or a variant's).
    key: String,
    /// A variant's secondary key.
    secondary: Vec<u8>,
    /// `If-None-Match`, as sent.
    if_none_match: Vec<u8>,
    /// The fields of a 304 being written.
    fields: Vec<u8>,
    ask: Ask,
}

impl Scratch {
    /// Reads the request head `raw` for `path`.
    fn read(&mut self, raw: &[u8], path: &str) {
        let info = rfc9111::request_info(raw).unwrap_or_default();
        rfc9111::cache_key(info.host, path, &mut self.uri);
        self.if_none_match.clear();
        if let Some(v) = info.if_none_match {
            self.if_none_match.extend_from_slice(v);
        }
        self.ask = Ask {
            cc: info.cc,
            authorization: info.authorization,
            range: info.range,
            if_modified_since: info.if_modified_since,
            has_if_none_match: info.if_none_match.is_some(),
        };
    }

    /// Section 4.3.2: the client's conditionals (read by [`Scratch::read`])
    /// against a stored 200 with header lines `stored`.
    fn not_modified(&self, status: u16, stored: &[u8]) -> bool {
        if status != 200 || !(self.ask.has_if_none_match || self.ask.if_modified_since.is_some()) {
            return false;
        }
        let req = RequestInfo {
            if_none_match: self.ask.has_if_none_match.then_some(&self.if_none_match[..]),
            if_modified_since: self.ask.if_modified_since,
            ..Default::default()
        };
        let modified = rfc9111::stored_field(stored, "last-modified")
            .or_else(|| rfc9111::stored_field(stored, "date"))
            .and_then(rfc9111::http_date);
        rfc9111::not_modified(&req, rfc9111::stored_field(stored, "etag"), modified)
    }

    /// The fields of a 304 made from stored header lines (RFC 9110 section 15.4.5), into `fields`.
    fn fields_304(&mut self, stored: &[u8]) -> &[u8] {
        self.fields.clear();
        for line in stored.split_inclusive(|&b| b == b'\n') {
            let name = line.split(|&b| b == b':').next().and_then(|n| std::str::from_utf8(n).ok()).unwrap_or("");
            if rfc9111::kept_in_304(name.trim()) {
                self.fields.extend_from_slice(line);
            }
        }
        &self.fields
    }
}

/// The time now, Unix seconds (RFC 9111's ages and dates are whole seconds).
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The freshness of a stored response of `status` with header lines
/// `stored` (after a 304 merged its fields in).
fn freshness_of(status: u16, stored: &[u8], request_time: u64, response_time: u64) -> Freshness {
    let mut raw = format!("HTTP/1.1 {status} X\r\n").into_bytes();
    raw.extend_from_slice(stored);
    raw.extend_from_slice(b"\r\n");
    rfc9111::response_info(&raw).map_or_else(Freshness::default, |i| Freshness::of(&i, request_time, response_time))
}

async fn serve(node: Arc<Node>, stream: TcpStream, mut stop: watch::Receiver<bool>) {
    let m = node.metrics.clone();
    let mut conn = ServerConn::new(stream).with_metrics(m.clone());
    let mut path = String::with_capacity(128);
    // Sized on the first miss it streams (hits are written from the cache, relays from their connection).
    let mut buf = Vec::new();
    let mut sc = Scratch::default();
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
        if path.starts_with(crate::admin::PREFIX) {
            // dl7's reserved names: answered here, never by the origin.
            let page = || {
                if let Some(asked) = path.strip_prefix(crate::dispatch::OWNER_PREFIX) {
                    // Directory lookup: the owner this node's policy instance picks for `asked`.
                    Some(Page::text(format!("{}\n", node.dispatcher.owner(asked).0)))
                } else if path == HEALTH_PATH {
                    // Draining: peers and front ends stop sending here before the node is gone.
                    Some(crate::admin::health_page(*stop.borrow()))
                } else {
                    node.admin_page(head.method, &path)
                }
            };
            if !crate::admin::answer_reserved(&mut conn, &m, head.method, keep, page).await {
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
        if head.hop && head.method == Method::Purge {
            // A peer invalidating what this node owns (after an unsafe request it passed).
            let host = rfc9111::request_info(conn.request_head()).map(|i| i.host.to_vec()).unwrap_or_default();
            let status = if node.invalidate(&host, &path) { 200 } else { 404 };
            if conn.write_status(status, keep).await.is_err() || !keep {
                break;
            }
            continue;
        }
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
        let r = match node.serve_local(&path, &mut conn, &mut sc).await {
            Ok(Owned::Pass) => node.pass(&mut conn, &head, &path, keep).await,
            Ok(Owned::Relay(status, mut body)) => {
                node.relay_origin(&mut conn, status, &mut body, keep, head_only).await
            }
            Ok(owned) => {
                let (len, content_type) = match &owned {
                    Owned::Hit(e, _) => (e.body.len() as u64, e.content_type),
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
                    Owned::Hit(entry, cached) => {
                        let age = entry.freshness.age(unix_now());
                        if sc.not_modified(entry.status, &entry.stored) {
                            // The client holds this very response: a 304 from the cache (section 4.3.2).
                            let fields = sc.fields_304(&entry.stored);
                            write_304(&mut conn, &node, fields, Some(age), cached, keep).await
                        } else {
                            let meta = ResponseMeta {
                                stored: Some(&entry.stored),
                                served_by: Some(node.id.0),
                                cache_hit: Some(cached),
                                via: Some(&node.via),
                                age: Some(u32::try_from(age).unwrap_or(u32::MAX)),
                                ..Default::default()
                            };
                            // Counted before the write, so it is final once the client has the response.
                            if !head_only && entry.status == 200 {
                                Metrics::add(&m.payload_out, entry.body.len() as u64);
                            }
                            conn.write_response(entry.status, &meta, &entry.body, keep, head_only).await.is_ok()
                        }
                    }
                    Owned::Fill(mut reader) => {
                        let fh = reader.fill().head.clone();
                        if sc.not_modified(fh.status, &fh.stored) {
                            drop(reader);
                            let fields = sc.fields_304(&fh.stored);
                            write_304(&mut conn, &node, fields, None, false, keep).await
                        } else {
                            let age = fh.freshness.initial_age;
                            let meta = ResponseMeta {
                                stored: Some(&fh.stored),
                                served_by: Some(node.id.0),
                                cache_hit: Some(false),
                                via: Some(&node.via),
                                age: (age > 0).then(|| u32::try_from(age).unwrap_or(u32::MAX)),
                                ..Default::default()
                            };
                            stream_owned(&mut conn, &m, fh.status, &meta, &mut reader, keep, head_only, &mut buf).await
                        }
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

/// Writes a 304 from the cache: the stored response's `fields`, its `Age`,
/// this node as the server. False when the connection must close.
async fn write_304(
    conn: &mut ServerConn,
    node: &Node,
    fields: &[u8],
    age: Option<u64>,
    cached: bool,
    keep: bool,
) -> bool {
    let meta = ResponseMeta {
        stored: Some(fields),
        served_by: Some(node.id.0),
        cache_hit: Some(cached),
        via: Some(&node.via),
        age: age.map(|a| u32::try_from(a).unwrap_or(u32::MAX)),
        ..Default::default()
    };
    conn.write_response(304, &meta, b"", keep, true).await.is_ok()
}

/// Streams an owner's answer that is still arriving from the origin, through `buf`.
#[allow(clippy::too_many_arguments)]
async fn stream_owned(
    conn: &mut ServerConn,
    m: &Metrics,
    status: u16,
    meta: &ResponseMeta<'_>,
    body: &mut impl BodySource,
    keep: bool,
    head_only: bool,
    buf: &mut Vec<u8>,
) -> bool {
    if buf.is_empty() {
        buf.resize(crate::http::RELAY_CHUNK, 0);
    }
    let streamed = conn.stream_response(status, meta, body, keep, head_only, buf).await;
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
