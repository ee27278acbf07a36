//! The L7 dispatcher shared by the node (distributed architecture) and the
//! conventional front end: hash the request target (all of it, or its path
//! without the query: [`HashKey`]) into a [`RequestKey`], ask the policy for
//! the owner, and forward the client's request to the owner
//! (any method, its end-to-end fields, its body streamed: [`Pool::forward`])
//! over a pooled keep-alive connection; when the owner fails, walk the
//! policy's `candidates`, as long as no byte of the request's body has gone
//! (a body cannot be sent twice).
//!
//! Shared state (`ht_rr_shared`): one node is the *directory*. It answers
//! `GET /_dl7/owner<path>` with the owner its own (the one shared) policy
//! instance picks; every other dispatcher asks it per request instead of
//! picking locally, at the cost of one more round trip. If the directory is
//! unreachable the dispatcher falls back to its local instance.
//!
//! Membership can change at run time ([`Dispatcher::set_members`]): the new
//! policy is built off the request path over the members' logical names and
//! swapped in atomically (`arc-swap`, as Pingora swaps its selector); a
//! request picks with the routing it loaded and finishes on it. Servers are
//! node indices everywhere outside the policy, whose picks are positions in
//! the current membership.
//!
//! Health ([`crate::health`]) is the filter over candidates the core leaves
//! to engines: a server the active checks have taken out, or whose last
//! request just failed, is skipped without a connect. When the filter would
//! leave nobody (every candidate out) or too few (below the panic
//! threshold), it is ignored, as Envoy does: the owner is asked anyway, since
//! checks that fail everywhere are likelier wrong than every server dead. A
//! request nobody answers is [`Outcome::Unavailable`] (503, HAProxy's "no
//! server is available"). The dispatcher must not cache or serve; it only routes.
//!
//! Ramp-up (the Varnish shard director's `rampup`): a server that has just
//! come up (its probes brought it back, or it joined the membership) gets,
//! for `rampup` after that, only a growing share of the keys it owns; the
//! others go to the policy's next candidate, as if it were out. Which keys
//! is decided by the key, not by chance ([`ramp_takes`]), so that each key
//! moves to its owner once and stays there, instead of alternating between
//! two caches that would both keep filling it. The dispatcher's own node is
//! never ramped in its own view: it cannot tell its start from a join.
//!
//! A remote answer comes back as soon as its head is in ([`Outcome::Remote`]
//! carries the body still on the upstream connection): the caller streams it
//! to its client, so no dispatcher user ever holds a whole object. A server
//! counts as outstanding in the load view until that body is finished or dropped.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

pub use dl7_core::HashKey;
use dl7_core::{LoadView, Membership, Policy, PolicyError, PolicySpec, RequestKey, ServerId};

use crate::health::Health;
use crate::http::proxy::ForwardRequest;
use crate::http::{ForwardError, HeadError, Pool, RequestHead, ResponseHead, ServerConn, UpstreamBody};
use crate::metrics::Metrics;

/// Requests this dispatcher has picked and not completed, per owner, served
/// locally or forwarded: the load view it gives load-aware policies. Each
/// dispatcher sees only its own picks, as the simulator's independent
/// dispatchers do; the definition is the simulator's, one for one.
pub struct PeerLoad {
    inflight: Vec<AtomicU64>,
    total: AtomicU64,
}

impl LoadView for PeerLoad {
    fn inflight(&self, server: ServerId) -> u64 {
        self.inflight.get(server.index()).map_or(0, |a| a.load(Relaxed))
    }
    fn total_inflight(&self) -> u64 {
        self.total.load(Relaxed)
    }
}

/// One request outstanding at a server in a dispatcher's load view, until dropped.
pub struct Outstanding {
    load: Arc<PeerLoad>,
    server: usize,
}

impl Outstanding {
    fn enter(load: &Arc<PeerLoad>, server: usize) -> Self {
        load.inflight[server].fetch_add(1, Relaxed);
        load.total.fetch_add(1, Relaxed);
        Outstanding { load: load.clone(), server }
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.load.inflight[self.server].fetch_sub(1, Relaxed);
        self.load.total.fetch_sub(1, Relaxed);
    }
}

/// Where a request went. `Remote` is large (a response head and its
/// connection) and the rest small; boxing it would allocate on every
/// forwarded request, which the hot path must not.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// This process owns it: serve it locally.
    Local {
        /// The owner failed and this process is the next candidate.
        fallback: bool,
        /// Keeps the request outstanding in the load view until dropped.
        outstanding: Outstanding,
    },
    /// Another server answered.
    Remote {
        /// The response head the server sent.
        head: ResponseHead,
        /// Its body, still to be read from the server's connection.
        body: UpstreamBody,
        /// Which server answered.
        server: ServerId,
        /// True when that server was a fallback candidate, not the owner.
        fallback: bool,
        /// Keeps the request outstanding in the load view until dropped.
        outstanding: Outstanding,
    },
    /// No server could be reached in time: answer 503 (no server left).
    Unavailable,
    /// The server failed once the request's body had gone to it: answer 502.
    Failed,
    /// The client's request body could not be read: answer this (or close).
    ClientFailed(HeadError),
}

/// What one server made of a request (unboxed, as [`Outcome`]).
#[allow(clippy::large_enum_variant)]
enum Tried {
    /// It answered (or the request can go nowhere else).
    Done(Outcome),
    /// It failed before the request's body went: try the next one.
    Next,
}

/// The membership a dispatcher routes over: the policy built over the
/// members' logical names, and the node index of each member by position.
struct Routing {
    policy: Box<dyn Policy>,
    members: Vec<usize>,
}

impl Routing {
    /// The node at `pos` of the membership.
    fn node(&self, pos: ServerId) -> ServerId {
        ServerId(self.members[pos.index()] as u32)
    }
}

/// The load view by membership position, over the per-node counts.
struct MemberLoad<'a> {
    load: &'a PeerLoad,
    members: &'a [usize],
}

impl LoadView for MemberLoad<'_> {
    fn inflight(&self, pos: ServerId) -> u64 {
        self.members.get(pos.index()).map_or(0, |&n| self.load.inflight(ServerId(n as u32)))
    }
    fn total_inflight(&self) -> u64 {
        self.load.total_inflight()
    }
}

/// A policy instance with a pool per server.
pub struct Dispatcher {
    spec: PolicySpec,
    /// Every node's logical name, by node index (members are a subset).
    names: Membership,
    routing: ArcSwap<Routing>,
    pools: Vec<Pool>,
    local: Option<ServerId>,
    load: Arc<PeerLoad>,
    fallbacks: usize,
    timeout: Duration,
    metrics: Arc<Metrics>,
    directory: Option<Pool>,
    health: Arc<Health>,
    /// The part of a request target the policy hashes.
    hash_key: HashKey,
    /// How long a server that has just come up takes less than its keys (zero: off).
    rampup: Duration,
    /// When each node last joined the membership: milliseconds after
    /// `epoch`, plus one (0: a member from the start, or never one).
    joined_ms: Vec<AtomicU64>,
    epoch: tokio::time::Instant,
}

/// Path prefix of the directory's owner lookups.
pub const OWNER_PREFIX: &str = "/_dl7/owner";

/// Whether a server that came up `since` ago, ramping up over `rampup`,
/// takes `key` now: when the key's ramp fraction (the last 8 bytes of its
/// MD5, read as a fraction of 2^64) is below `since / rampup`. The share
/// grows linearly to all of its keys, and a key it has taken it keeps, since
/// the fraction of a key never changes: every key moves once. Those bytes
/// are ones no policy reads as a position (the rings, Maglev, jump, HT-RR
/// and LARD read the first 8, ketama CRC-32; mod-N MD5 reduces all 16, which
/// leaves its remainder independent of them), so a ring owner's keys arrive
/// spread over the ramp, not one arc of the ring at a time.
pub fn ramp_takes(key: &RequestKey<'_>, since: Duration, rampup: Duration) -> bool {
    if since >= rampup {
        return true;
    }
    let tail: [u8; 8] = key.md5()[8..].try_into().expect("8 of 16 bytes");
    let fraction = u128::from(u64::from_be_bytes(tail));
    // fraction / 2^64 < since / rampup, without floating point.
    fraction.saturating_mul(rampup.as_nanos()) < since.as_nanos().saturating_mul(1 << 64)
}

impl Dispatcher {
    /// Builds `spec` over the logical `members` (names as the simulator uses);
    /// `addrs[i]` is where server `i` really listens. `local` is the caller's
    /// own id on a node, `None` on a front end.
    pub fn new(
        spec: &PolicySpec,
        members: &Membership,
        addrs: &[std::net::SocketAddr],
        local: Option<ServerId>,
        fallbacks: usize,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, PolicyError> {
        if addrs.len() != members.len() {
            return Err(PolicyError::BadServer {
                name: format!("{} addresses", addrs.len()),
                reason: format!("expected one address per member ({})", members.len()),
            });
        }
        let policy = spec.build(members)?;
        let n = members.len();
        metrics.set_members(&(0..n).collect::<Vec<_>>());
        Ok(Self {
            spec: spec.clone(),
            names: members.clone(),
            routing: ArcSwap::from_pointee(Routing { policy, members: (0..n).collect() }),
            pools: addrs.iter().map(|&a| Pool::new(a, 256)).collect(),
            local,
            load: Arc::new(PeerLoad {
                inflight: (0..n).map(|_| AtomicU64::new(0)).collect(),
                total: AtomicU64::new(0),
            }),
            fallbacks,
            timeout,
            metrics,
            directory: None,
            health: Health::passive(n),
            hash_key: HashKey::Url,
            rampup: Duration::ZERO,
            joined_ms: (0..n).map(|_| AtomicU64::new(0)).collect(),
            epoch: tokio::time::Instant::now(),
        })
    }

    /// Hashes `hash_key`'s part of every request target.
    pub fn with_hash_key(mut self, hash_key: HashKey) -> Self {
        self.hash_key = hash_key;
        self
    }

    /// Ramps up every server that comes up (health or membership) over `rampup` (zero: off).
    pub fn with_rampup(mut self, rampup: Duration) -> Self {
        self.rampup = rampup;
        self
    }

    /// Asks the directory at `addr` for every owner instead of the local instance.
    pub fn with_directory(mut self, addr: std::net::SocketAddr) -> Self {
        self.directory = Some(Pool::new(addr, 256));
        self
    }

    /// Takes health from `health` (active checks of the same servers)
    /// instead of the passive checks alone.
    pub fn with_health(mut self, health: Arc<Health>) -> Self {
        self.health = health;
        self
    }

    /// Routes over the nodes `members` (indices, in membership order) from
    /// now on: the policy is rebuilt here, off the request path, and swapped
    /// in whole; requests under way finish on the routing they started with.
    pub fn set_members(&self, members: &[usize]) -> Result<(), PolicyError> {
        let servers = members
            .iter()
            .map(|&i| {
                self.names.servers().get(i).cloned().ok_or_else(|| PolicyError::BadServer {
                    name: format!("node {i}"),
                    reason: format!("expected a node index below {}", self.names.len()),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let policy = self.spec.build(&Membership::new(servers)?)?;
        let joined_now = self.epoch.elapsed().as_millis() as u64 + 1;
        let before = self.routing.load();
        for &i in members.iter().filter(|i| !before.members.contains(i)) {
            // A joined node starts its ramp-up (its cache is empty, or stale).
            self.joined_ms[i].store(joined_now, Relaxed);
        }
        self.routing.store(Arc::new(Routing { policy, members: members.to_vec() }));
        self.metrics.set_members(members);
        Ok(())
    }

    /// The nodes routed over now, in membership order.
    pub fn members(&self) -> Vec<usize> {
        self.routing.load().members.clone()
    }

    /// The policy's pick under `routing`, as a node index.
    fn pick_on(&self, routing: &Routing, key: &RequestKey<'_>) -> ServerId {
        let view = MemberLoad { load: &self.load, members: &routing.members };
        routing.node(routing.policy.pick(key, &view))
    }

    async fn pick(&self, routing: &Routing, key: &RequestKey<'_>, path: &str) -> ServerId {
        if let Some(dir) = &self.directory {
            let lookup = format!("{OWNER_PREFIX}{path}");
            if let Ok((head, body)) = dir.get(&lookup, true, self.timeout, 64).await {
                let owner = std::str::from_utf8(&body).ok().and_then(|t| t.trim().parse::<u32>().ok());
                match owner {
                    Some(o) if head.status == 200 && (o as usize) < self.pools.len() => return ServerId(o),
                    _ => tracing::warn!("directory {}: bad owner answer for {path}", dir.addr()),
                }
            }
        }
        self.pick_on(routing, key)
    }

    fn is_down(&self, s: ServerId) -> bool {
        !self.health.is_up(s.index())
    }

    fn mark_down(&self, s: ServerId) {
        self.health.mark_failed(s.index());
    }

    /// How long ago server `s` came up, if it did while this dispatcher
    /// ran: the later of its probes bringing it back and its joining.
    fn came_up(&self, s: ServerId) -> Option<Duration> {
        let joined = match self.joined_ms.get(s.index()).map_or(0, |j| j.load(Relaxed)) {
            0 => None,
            at => Some(Duration::from_millis((self.epoch.elapsed().as_millis() as u64 + 1).saturating_sub(at))),
        };
        match (joined, self.health.up_for(s.index())) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether server `s` takes `key` now, or is still ramping up short of it ([`ramp_takes`]).
    pub fn takes(&self, s: ServerId, key: &RequestKey<'_>) -> bool {
        if self.rampup.is_zero() || Some(s) == self.local {
            return true;
        }
        self.came_up(s).is_none_or(|since| ramp_takes(key, since, self.rampup))
    }

    /// The bytes of the request target `target` that are hashed.
    pub fn hashed<'t>(&self, target: &'t str) -> &'t str {
        self.hash_key.of(target)
    }

    /// Where node `s` listens.
    pub fn addr(&self, s: ServerId) -> Option<std::net::SocketAddr> {
        self.pools.get(s.index()).map(Pool::addr)
    }

    /// The node the policy picks for the request target `path` (advances
    /// stateful policies); ramp-up aside, as ownership is the policy's.
    pub fn owner(&self, path: &str) -> ServerId {
        let key = RequestKey::new(self.hash_key.of(path).as_bytes());
        self.pick_on(&self.routing.load(), &key)
    }

    /// Routes the request `conn` has just read (its `head`, target `path`)
    /// and forwards it, with this hop's `via`, to its owner or a fallback.
    pub async fn dispatch(&self, path: &str, conn: &mut ServerConn, head: &RequestHead, via: &str) -> Outcome {
        let hashed = self.hash_key.of(path);
        let key = RequestKey::new(hashed.as_bytes());
        let routing = self.routing.load_full();
        let owner = self.pick(&routing, &key, hashed).await;
        if Some(owner) == self.local {
            return Outcome::Local { fallback: false, outstanding: Outstanding::enter(&self.load, owner.index()) };
        }
        let req = Req { path, head, via };
        let owner_up = !self.is_down(owner);
        // An owner ramping up short of this key passes it to the next
        // candidate, as if it were out; it stays the last resort.
        let ramped = owner_up && !self.takes(owner, &key);
        // The hot path: the owner is up and answers. Everything after is the failure path.
        if owner_up && !ramped {
            if let Tried::Done(o) = self.try_server(owner, conn, &req, false).await {
                return o;
            }
        }
        if ramped {
            Metrics::add(&self.metrics.rampup_diverted, 1);
        }
        let panic = self.health.panicking(&routing.members);
        let mut owner_tried = owner_up && !ramped;
        if !owner_up && panic {
            owner_tried = true;
            Metrics::add(&self.metrics.panic_routes, 1);
            if let Tried::Done(o) = self.try_server(owner, conn, &req, false).await {
                return o;
            }
        }
        let mut candidate_tried = false;
        // A key ramped away needs somewhere to go even with no fallbacks for failures.
        let wanted = if ramped { self.fallbacks.max(1) } else { self.fallbacks };
        if wanted > 0 {
            // A small buffer of candidates is fine here.
            let mut candidates = Vec::with_capacity(wanted + 1);
            let view = MemberLoad { load: &self.load, members: &routing.members };
            routing.policy.candidates(&key, &view, wanted + 1, &mut candidates);
            let candidates = candidates.into_iter().map(|c| routing.node(c));
            // A candidate ramping up short of this key is asked only after the others.
            let mut short = None;
            for c in candidates.filter(|&c| c != owner).take(wanted) {
                if Some(c) == self.local {
                    Metrics::add(&self.metrics.fallbacks, 1);
                    return Outcome::Local { fallback: true, outstanding: Outstanding::enter(&self.load, c.index()) };
                }
                if self.is_down(c) {
                    if !panic {
                        continue;
                    }
                    Metrics::add(&self.metrics.panic_routes, 1);
                } else if !self.takes(c, &key) {
                    short.get_or_insert(c);
                    continue;
                }
                candidate_tried = true;
                if let Tried::Done(o) = self.try_server(c, conn, &req, true).await {
                    if matches!(o, Outcome::Remote { .. }) {
                        Metrics::add(&self.metrics.fallbacks, 1);
                    }
                    return o;
                }
            }
            if let Some(c) = short {
                candidate_tried = true;
                if let Tried::Done(o) = self.try_server(c, conn, &req, true).await {
                    if matches!(o, Outcome::Remote { .. }) {
                        Metrics::add(&self.metrics.fallbacks, 1);
                    }
                    return o;
                }
            }
        }
        // Every candidate is out (or failed, while the owner ramps up): the owner anyway, rather than nobody.
        if !owner_tried && (ramped || !candidate_tried) {
            if !ramped {
                Metrics::add(&self.metrics.panic_routes, 1);
            }
            if let Tried::Done(o) = self.try_server(owner, conn, &req, false).await {
                return o;
            }
        }
        Outcome::Unavailable
    }

    async fn try_server(&self, s: ServerId, conn: &mut ServerConn, req: &Req<'_>, fallback: bool) -> Tried {
        let i = s.index();
        let outstanding = Outstanding::enter(&self.load, i);
        Metrics::add(&self.metrics.forwarded, 1);
        let f = ForwardRequest {
            method: None,
            path: req.path,
            via: req.via,
            hop: true,
            body: req.head.body,
            default_host: "",
            strip_conditionals: false,
            extra: b"",
        };
        match self.pools[i].forward(conn, &f, req.head.method, self.timeout).await {
            // A 503 of the server's own (at its connection cap, or draining; a
            // dl7 node says who served anything else): try another while the
            // request can still go elsewhere. Dropping its body closes that
            // connection: it is not worth draining.
            Ok((head, _)) if head.status == 503 && head.served_by.is_none() && !conn.body_started() => {
                self.mark_down(s);
                Tried::Next
            }
            Ok((head, body)) => Tried::Done(Outcome::Remote { head, body, server: s, fallback, outstanding }),
            Err(ForwardError::Upstream { source, retriable, .. }) => {
                tracing::debug!("server {s} ({}) failed: {source}", self.pools[i].addr());
                self.mark_down(s);
                if retriable {
                    Tried::Next
                } else {
                    Tried::Done(Outcome::Failed)
                }
            }
            Err(ForwardError::Client(e)) => Tried::Done(Outcome::ClientFailed(e)),
        }
    }
}

/// The request being routed.
struct Req<'a> {
    path: &'a str,
    head: &'a RequestHead,
    via: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    /// A path whose md5 owner among `n` numbered servers is `owner`.
    fn path_owned_by(owner: u32, n: usize) -> String {
        let members = Membership::numbered(n).unwrap();
        let policy = PolicySpec::parse("md5").unwrap().build(&members).unwrap();
        (0..)
            .map(|i| format!("/load-view/{i}"))
            .find(|p| policy.pick(&RequestKey::new(p.as_bytes()), &dl7_core::NoLoad) == ServerId(owner))
            .unwrap()
    }

    /// A membership change rebuilds the policy over the members' own names:
    /// the owners are the core's for that membership, by node index.
    #[test]
    fn a_new_membership_routes_as_the_core_does_over_those_members() {
        let addrs: Vec<SocketAddr> = (0..4).map(|i| format!("127.0.0.1:{}", 9000 + i).parse().unwrap()).collect();
        let all = Membership::numbered(4).unwrap();
        let d = Dispatcher::new(
            &PolicySpec::parse("ketama").unwrap(),
            &all,
            &addrs,
            None,
            0,
            Duration::from_secs(1),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        d.set_members(&[3, 0, 2]).unwrap();
        assert_eq!(d.members(), vec![3, 0, 2]);
        let names = [3, 0, 2].map(|i| all.servers()[i].clone());
        let core = PolicySpec::parse("ketama").unwrap().build(&Membership::new(names.to_vec()).unwrap()).unwrap();
        for i in 0..500 {
            let path = format!("/m/{i}");
            let want = [3, 0, 2][core.pick(&RequestKey::new(path.as_bytes()), &dl7_core::NoLoad).index()];
            assert_eq!(d.owner(&path), ServerId(want), "{path}");
        }
        assert!(d.set_members(&[0, 9]).is_err(), "node 9 does not exist");
        assert_eq!(d.members(), vec![3, 0, 2], "a refused change keeps the routing");
    }

    /// The share of `keys` that `s` takes now.
    fn share(d: &Dispatcher, s: u32, keys: &[String]) -> f64 {
        let taken = keys.iter().filter(|k| d.takes(ServerId(s), &RequestKey::new(k.as_bytes()))).count();
        taken as f64 / keys.len() as f64
    }

    fn keys() -> Vec<String> {
        (0..4000).map(|i| format!("/ramp/{i}.html")).collect()
    }

    #[test]
    fn a_ramp_takes_a_share_of_keys_that_grows_to_all_and_never_gives_one_back() {
        let rampup = Duration::from_secs(10);
        let keys: Vec<RequestKey<'_>> =
            Box::leak(keys().into_boxed_slice()).iter().map(|k| RequestKey::new(k.as_bytes())).collect();
        let mut taken = vec![false; keys.len()];
        for tenth in 0..=10 {
            let since = rampup * tenth / 10;
            let now: Vec<bool> = keys.iter().map(|k| ramp_takes(k, since, rampup)).collect();
            let share = now.iter().filter(|&&t| t).count() as f64 / keys.len() as f64;
            assert!((share - f64::from(tenth) / 10.0).abs() < 0.03, "{tenth}/10 of the ramp: share {share}");
            // Each key moves once: one taken stays taken.
            assert!(taken.iter().zip(&now).all(|(&before, &after)| !before || after), "at {tenth}/10");
            taken = now;
        }
        assert!(keys.iter().all(|k| ramp_takes(k, rampup * 2, rampup)), "past the ramp: every key");
    }

    fn dispatcher(n: usize, local: Option<ServerId>, rampup: Duration, health: Arc<Health>) -> Dispatcher {
        let addrs: Vec<SocketAddr> = (0..n).map(|i| format!("127.0.0.1:{}", 9000 + i).parse().unwrap()).collect();
        Dispatcher::new(
            &PolicySpec::parse("md5").unwrap(),
            &Membership::numbered(n).unwrap(),
            &addrs,
            local,
            2,
            Duration::from_secs(1),
            Arc::new(Metrics::new()),
        )
        .unwrap()
        .with_health(health)
        .with_rampup(rampup)
    }

    /// A peer the probes bring back, and one that joins, each ramp up over
    /// `rampup` from that instant, on tokio's paused clock.
    #[tokio::test(start_paused = true)]
    async fn a_server_ramps_up_from_when_its_checks_bring_it_back_or_it_joins() {
        let spec = crate::health::HealthSpec { rise: 1, fall: 1, ..Default::default() };
        let health = Health::new(spec, [true, true, true]);
        let d = dispatcher(3, None, Duration::from_secs(10), health.clone());
        let keys = keys();
        assert_eq!((share(&d, 0, &keys), share(&d, 1, &keys)), (1.0, 1.0), "up from the start: no ramp");
        d.set_members(&[0, 1]).unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(health.record(0, false), Some(false));
        assert_eq!(health.record(0, true), Some(true));
        d.set_members(&[0, 1, 2]).unwrap();
        assert!(share(&d, 0, &keys) < 0.01 && share(&d, 2, &keys) < 0.01, "both just came up");
        assert_eq!(share(&d, 1, &keys), 1.0, "a member all along");
        tokio::time::advance(Duration::from_secs(5)).await;
        for s in [0, 2] {
            let got = share(&d, s, &keys);
            assert!((got - 0.5).abs() < 0.03, "node {s} half way: {got}");
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!((share(&d, 0, &keys), share(&d, 2, &keys)), (1.0, 1.0), "the ramp is over");
        let off = dispatcher(3, None, Duration::ZERO, health.clone());
        off.set_members(&[0]).unwrap();
        off.set_members(&[0, 1]).unwrap();
        assert_eq!(share(&off, 1, &keys), 1.0, "rampup 0: no ramp");
    }

    /// A request whose owner ramps up short of its key goes to the next
    /// candidate (here this node itself), counted; no connection is made.
    #[tokio::test]
    async fn a_key_a_ramping_owner_does_not_take_yet_goes_to_the_next_candidate() {
        let d = dispatcher(2, Some(ServerId(0)), Duration::from_secs(3600), Health::passive(2));
        d.set_members(&[0]).unwrap();
        d.set_members(&[0, 1]).unwrap();
        // A key node 1 owns and takes last in the ramp (fraction >= 0.5: not within the first hour's half).
        let path = (0..)
            .map(|i| format!("/late/{i}"))
            .find(|p| {
                let k = RequestKey::new(p.as_bytes());
                d.owner(p) == ServerId(1) && !ramp_takes(&k, Duration::from_secs(1800), Duration::from_secs(3600))
            })
            .unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let mut conn = ServerConn::new(l.accept().await.unwrap().0);
        use tokio::io::AsyncWriteExt;
        client.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes()).await.unwrap();
        let (mut got, mut stop) = (String::new(), tokio::sync::watch::channel(false).1);
        let head = conn.read_head(&crate::http::Limits::default(), &mut got, &mut stop).await.unwrap();
        let outcome = d.dispatch(&got, &mut conn, &head, "1.1 t").await;
        assert!(matches!(outcome, Outcome::Local { fallback: true, .. }), "served here, as the next candidate");
        assert_eq!((d.metrics.rampup_diverted.load(Relaxed), d.metrics.forwarded.load(Relaxed)), (1, 0));
    }

    #[test]
    fn the_path_key_gives_every_query_of_a_path_its_owner() {
        let make = |k| dispatcher(8, None, Duration::ZERO, Health::passive(8)).with_hash_key(k);
        let (url, path) = (make(HashKey::Url), make(HashKey::Path));
        let queries: Vec<String> = (0..50).map(|i| format!("/a/page.html?x={i}")).collect();
        let owners = |d: &Dispatcher| queries.iter().map(|q| d.owner(q)).collect::<std::collections::BTreeSet<_>>();
        assert_eq!(owners(&path).into_iter().collect::<Vec<_>>(), vec![path.owner("/a/page.html")]);
        assert!(owners(&url).len() > 1, "the url key spreads a path's queries");
        assert_eq!(url.owner("/a/page.html"), path.owner("/a/page.html"), "no query: the same key");
    }

    fn view(d: &Dispatcher) -> (u64, u64, u64) {
        (d.load.inflight(ServerId(0)), d.load.inflight(ServerId(1)), d.load.total_inflight())
    }

    /// The load view's one definition, the simulator's: every request this
    /// dispatcher picked and has not completed, served locally or forwarded
    /// (`sim/src/model/mod.rs` tests the same script).
    #[tokio::test]
    async fn the_load_view_counts_every_pick_until_its_request_completes() {
        // Server 1 is a real origin on loopback: it answers (404) whatever is asked.
        let catalog = std::sync::Arc::new(dl7_traces::workload::builtin("surge100").unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        tokio::spawn(crate::origin::run(listener, crate::origin::OriginConfig::new(catalog), std::future::pending()));
        let me: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let d = Dispatcher::new(
            &PolicySpec::parse("md5").unwrap(),
            &Membership::numbered(2).unwrap(),
            &[me, peer],
            Some(ServerId(0)),
            0,
            Duration::from_secs(2),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        // A client connection that has sent one request, as the node reads it.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let mut conn = ServerConn::new(l.accept().await.unwrap().0);
        let request = |path: String| format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        use tokio::io::AsyncWriteExt;
        let (mut path, mut stop) = (String::new(), tokio::sync::watch::channel(false).1);
        client.write_all(request(path_owned_by(0, 2)).as_bytes()).await.unwrap();
        let head = conn.read_head(&crate::http::Limits::default(), &mut path, &mut stop).await.unwrap();
        let local = d.dispatch(&path, &mut conn, &head, "1.1 t").await;
        assert!(matches!(local, Outcome::Local { .. }));
        assert_eq!(view(&d), (1, 0, 1), "a request served here counts");
        client.write_all(request(path_owned_by(1, 2)).as_bytes()).await.unwrap();
        let head = conn.read_head(&crate::http::Limits::default(), &mut path, &mut stop).await.unwrap();
        let remote = d.dispatch(&path, &mut conn, &head, "1.1 t").await;
        assert!(matches!(remote, Outcome::Remote { .. }));
        assert_eq!(view(&d), (1, 1, 2), "a forwarded request counts");
        drop(local);
        assert_eq!(view(&d), (0, 1, 1), "a completed request no longer counts");
        drop(remote);
        assert_eq!(view(&d), (0, 0, 0));
    }
}
