//! Counters every service keeps, a typed snapshot of them ([`Stats`], served
//! as JSON on `GET /stats`), and their Prometheus text exposition (`GET
//! /metrics`), written by the `prometheus-client` crate.
//!
//! One struct serves every role; a role leaves the counters it has no use for
//! at zero. Counters are relaxed atomics: exact totals, no ordering promises
//! between counters. Services add every counter of a response before the
//! write that ends it (the latency histogram alone times the write, so it
//! comes after), so totals read once a client has its responses are final.
//! This module must not do I/O (the pages are served and fetched by [`crate::admin`]).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::health::{Health, PeerStats};

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Counters of one service process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests received from clients (heads parsed), hop requests included.
    pub requests: AtomicU64,
    /// Requests that arrived from a peer or front end with the hop header.
    pub hop_requests: AtomicU64,
    /// Requests this node served as owner (cache hit or miss): the per-owner count.
    pub owner_requests: AtomicU64,
    /// Owner requests served from the cache.
    pub hits: AtomicU64,
    /// Owner requests not in the cache (coalesced waiters included).
    pub misses: AtomicU64,
    /// Stored bytes of owner-served objects, and of those that were hits (byte hit ratio).
    pub owner_bytes: AtomicU64,
    /// Stored bytes of the hits.
    pub hit_bytes: AtomicU64,
    /// Requests the dispatcher sent to another node (the owner or a fallback).
    pub forwarded: AtomicU64,
    /// Requests served by a fallback candidate because the owner failed.
    pub fallbacks: AtomicU64,
    /// Requests whose owner was ramping up short of their key (it had just
    /// come up), sent to the next candidate instead.
    pub rampup_diverted: AtomicU64,
    /// Fetches from the origin (single-flight: one per concurrent miss group).
    pub origin_fetches: AtomicU64,
    /// Stale responses served while validated behind them (`stale-while-revalidate`).
    pub background_revalidations: AtomicU64,
    /// Responses with status 502 (a failing owner or origin, or its bad answer).
    pub bad_gateway: AtomicU64,
    /// Responses with status 503 because no server was left to ask (every
    /// candidate out or unreachable), HAProxy's "no server is available".
    pub no_server: AtomicU64,
    /// Requests sent to a server the health checks hold out: below the panic
    /// threshold, or because every candidate was out (Envoy's panic routing).
    pub panic_routes: AtomicU64,
    /// Responses with status 4xx sent to bad requests (400, 404, 408, 414, 431, ...).
    pub client_errors: AtomicU64,
    /// Bytes read from client sockets.
    pub bytes_in: AtomicU64,
    /// Bytes written to client sockets (heads and bodies); a write that ends a
    /// response counts as it is issued, so a failed last write still counts.
    pub bytes_out: AtomicU64,
    /// Body bytes of 200 responses written to clients.
    pub payload_out: AtomicU64,
    /// Requests being handled right now (gauge).
    pub inflight: AtomicU64,
    /// Client connections accepted (TCP or handed over).
    pub connections: AtomicU64,
    /// Connections refused because the connection cap was reached.
    pub rejected: AtomicU64,
    /// Connections handed to a node over SCM_RIGHTS (distributed front end).
    pub handoffs: AtomicU64,
    /// Objects and bytes in the cache (gauges).
    pub cache_objects: AtomicU64,
    /// Body bytes in the cache (gauge).
    pub cache_bytes: AtomicU64,
    /// Response body bytes relays read from upstreams (front end, forwarding node).
    pub relay_upstream_bytes: AtomicU64,
    /// Relayed response body bytes written to clients: `relay_upstream_bytes`
    /// minus this is what the relays hold in memory right now.
    pub relay_client_bytes: AtomicU64,
    /// Relayed responses cut short because the upstream failed after the head was sent.
    pub upstream_aborted: AtomicU64,
    /// Modelled busy time of the node's emulated CPU, nanoseconds (0 when it is off).
    pub emulated_cpu_ns: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    /// The active health checks of this service's peers, once it runs them.
    health: OnceLock<Arc<Health>>,
    /// The nodes routed over now (indices), set on every membership change (rare).
    members: Mutex<Vec<u32>>,
}

impl Metrics {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `v` to a counter.
    #[inline]
    pub fn add(counter: &AtomicU64, v: u64) {
        counter.fetch_add(v, Relaxed);
    }

    /// Records one request's service latency.
    pub fn observe(&self, latency: Duration) {
        let s = latency.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| s <= b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(latency.as_micros() as u64, Relaxed);
    }

    /// Reports the state of `health`'s peers from now on (set once per service).
    pub fn watch_peers(&self, health: Arc<Health>) {
        let _ = self.health.set(health);
    }

    /// Records the membership routed over from now on (node indices).
    pub fn set_members(&self, members: &[usize]) {
        *self.members.lock().expect("members lock") = members.iter().map(|&i| i as u32).collect();
    }

    /// Every counter now (each read on its own: no cross-counter atomicity).
    pub fn stats(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Relaxed);
        Stats {
            version: Stats::VERSION,
            requests: get(&self.requests),
            hop_requests: get(&self.hop_requests),
            owner_requests: get(&self.owner_requests),
            hits: get(&self.hits),
            misses: get(&self.misses),
            owner_bytes: get(&self.owner_bytes),
            hit_bytes: get(&self.hit_bytes),
            forwarded: get(&self.forwarded),
            fallbacks: get(&self.fallbacks),
            rampup_diverted: get(&self.rampup_diverted),
            origin_fetches: get(&self.origin_fetches),
            background_revalidations: get(&self.background_revalidations),
            bad_gateway: get(&self.bad_gateway),
            no_server: get(&self.no_server),
            panic_routes: get(&self.panic_routes),
            client_errors: get(&self.client_errors),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            payload_out: get(&self.payload_out),
            inflight: get(&self.inflight),
            connections: get(&self.connections),
            rejected: get(&self.rejected),
            handoffs: get(&self.handoffs),
            cache_objects: get(&self.cache_objects),
            cache_bytes: get(&self.cache_bytes),
            relay_upstream_bytes: get(&self.relay_upstream_bytes),
            relay_client_bytes: get(&self.relay_client_bytes),
            upstream_aborted: get(&self.upstream_aborted),
            emulated_cpu_ns: get(&self.emulated_cpu_ns),
            latency_buckets: std::array::from_fn(|i| get(&self.latency_buckets[i])),
            latency_count: get(&self.latency_count),
            latency_sum_us: get(&self.latency_sum_us),
            peers: self.health.get().map(|h| h.stats()).unwrap_or_default(),
            members: self.members.lock().expect("members lock").clone(),
            peak_rss_bytes: 0,
        }
    }
}

/// A snapshot of one service's [`Metrics`]: what `GET /stats` answers as JSON.
///
/// Every field is required and no other is allowed, so a reader built
/// against another version fails naming the field instead of reading a
/// silent zero. Counters are totals since the service started; `inflight`,
/// `cache_objects` and `cache_bytes` are gauges (values now).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// Layout version of this struct ([`Stats::VERSION`]); bump it when a field changes meaning.
    pub version: u32,
    /// See [`Metrics::requests`].
    pub requests: u64,
    /// See [`Metrics::hop_requests`].
    pub hop_requests: u64,
    /// See [`Metrics::owner_requests`].
    pub owner_requests: u64,
    /// See [`Metrics::hits`].
    pub hits: u64,
    /// See [`Metrics::misses`].
    pub misses: u64,
    /// See [`Metrics::owner_bytes`].
    pub owner_bytes: u64,
    /// See [`Metrics::hit_bytes`].
    pub hit_bytes: u64,
    /// See [`Metrics::forwarded`].
    pub forwarded: u64,
    /// See [`Metrics::fallbacks`].
    pub fallbacks: u64,
    /// See [`Metrics::rampup_diverted`].
    pub rampup_diverted: u64,
    /// See [`Metrics::origin_fetches`].
    pub origin_fetches: u64,
    /// See [`Metrics::background_revalidations`].
    #[serde(default)]
    pub background_revalidations: u64,
    /// See [`Metrics::bad_gateway`].
    pub bad_gateway: u64,
    /// See [`Metrics::no_server`].
    pub no_server: u64,
    /// See [`Metrics::panic_routes`].
    pub panic_routes: u64,
    /// See [`Metrics::client_errors`].
    pub client_errors: u64,
    /// See [`Metrics::bytes_in`].
    pub bytes_in: u64,
    /// See [`Metrics::bytes_out`].
    pub bytes_out: u64,
    /// See [`Metrics::payload_out`].
    pub payload_out: u64,
    /// See [`Metrics::inflight`] (gauge).
    pub inflight: u64,
    /// See [`Metrics::connections`].
    pub connections: u64,
    /// See [`Metrics::rejected`].
    pub rejected: u64,
    /// See [`Metrics::handoffs`].
    pub handoffs: u64,
    /// See [`Metrics::cache_objects`] (gauge).
    pub cache_objects: u64,
    /// See [`Metrics::cache_bytes`] (gauge).
    pub cache_bytes: u64,
    /// See [`Metrics::relay_upstream_bytes`].
    pub relay_upstream_bytes: u64,
    /// See [`Metrics::relay_client_bytes`].
    pub relay_client_bytes: u64,
    /// See [`Metrics::upstream_aborted`].
    pub upstream_aborted: u64,
    /// See [`Metrics::emulated_cpu_ns`].
    pub emulated_cpu_ns: u64,
    /// Requests per latency bucket of [`LATENCY_BUCKETS`] (not cumulative;
    /// requests slower than the last bound are only in `latency_count`).
    pub latency_buckets: [u64; LATENCY_BUCKETS.len()],
    /// Requests whose latency was recorded.
    pub latency_count: u64,
    /// Sum of the recorded latencies, microseconds.
    pub latency_sum_us: u64,
    /// Every actively checked peer's state (empty for a service that checks none).
    pub peers: Vec<PeerStats>,
    /// The nodes routed over now, in membership order (empty for a service that routes to none).
    pub members: Vec<u32>,
    /// The serving process's peak resident memory (`VmHWM`), bytes; 0 when unknown.
    pub peak_rss_bytes: u64,
}

impl Stats {
    /// The layout [`Metrics::stats`] writes and readers expect.
    pub const VERSION: u32 = 4;

    /// Adds the counters of a later incarnation of the same service (a node
    /// restarted after a kill): totals keep growing across restarts; gauges
    /// and peer states are the later one's.
    pub fn accumulate(&mut self, later: &Stats) {
        macro_rules! add {
            ($($field:ident),*) => { $( self.$field += later.$field; )* };
        }
        add!(
            requests,
            hop_requests,
            owner_requests,
            hits,
            misses,
            owner_bytes,
            hit_bytes,
            forwarded,
            fallbacks,
            rampup_diverted,
            origin_fetches,
            background_revalidations,
            bad_gateway,
            no_server,
            panic_routes,
            client_errors,
            bytes_in,
            bytes_out,
            payload_out,
            connections,
            rejected,
            handoffs,
            relay_upstream_bytes,
            relay_client_bytes,
            upstream_aborted,
            emulated_cpu_ns,
            latency_count,
            latency_sum_us
        );
        for (b, a) in self.latency_buckets.iter_mut().zip(later.latency_buckets) {
            *b += a;
        }
        self.inflight = later.inflight;
        self.cache_objects = later.cache_objects;
        self.cache_bytes = later.cache_bytes;
        self.peers = later.peers.clone();
        self.members = later.members.clone();
        self.peak_rss_bytes = self.peak_rss_bytes.max(later.peak_rss_bytes);
    }

    /// Modelled busy time of the emulated CPU, seconds.
    pub fn emulated_cpu_seconds(&self) -> f64 {
        self.emulated_cpu_ns as f64 / 1e9
    }

    /// Prometheus text exposition (format 0.0.4) of this snapshot, every name
    /// prefixed `dl7_` and labelled with the role.
    pub fn render(&self, role: &str) -> String {
        let labels = [(Cow::Borrowed("role"), Cow::Owned(role.to_string()))];
        let mut r = Registry::with_prefix_and_labels("dl7", labels.into_iter());
        let counters: [(&str, u64, &str); 25] = [
            ("requests", self.requests, "requests received"),
            ("hop_requests", self.hop_requests, "requests received with the hop header"),
            ("owner_requests", self.owner_requests, "requests served as owner"),
            ("hits", self.hits, "cache hits"),
            ("misses", self.misses, "cache misses"),
            ("owner_bytes", self.owner_bytes, "bytes of objects served as owner"),
            ("hit_bytes", self.hit_bytes, "bytes of objects served from cache"),
            ("forwarded", self.forwarded, "requests forwarded to another node"),
            ("fallbacks", self.fallbacks, "requests served by a fallback candidate"),
            ("rampup_diverted", self.rampup_diverted, "requests a ramping-up owner passed to the next candidate"),
            ("origin_fetches", self.origin_fetches, "fetches from the origin"),
            (
                "background_revalidations",
                self.background_revalidations,
                "validations started behind a stale-while-revalidate answer",
            ),
            ("bad_gateway", self.bad_gateway, "502 responses"),
            ("no_server", self.no_server, "503 responses: no server left to ask"),
            ("panic_routes", self.panic_routes, "requests sent to a server its health checks hold out"),
            ("client_errors", self.client_errors, "4xx responses"),
            ("bytes_in", self.bytes_in, "bytes read from clients"),
            ("bytes_out", self.bytes_out, "bytes written to clients"),
            ("payload_out", self.payload_out, "200 body bytes written to clients"),
            ("connections", self.connections, "client connections accepted"),
            ("rejected", self.rejected, "connections refused at the cap"),
            ("handoffs", self.handoffs, "connections handed over by SCM_RIGHTS"),
            ("relay_upstream_bytes", self.relay_upstream_bytes, "body bytes relays read from upstreams"),
            ("relay_client_bytes", self.relay_client_bytes, "relayed body bytes written to clients"),
            ("upstream_aborted", self.upstream_aborted, "relayed responses cut short by the upstream"),
        ];
        // The crate appends `_total` to counter names: `requests` is `dl7_requests_total`.
        for (name, v, help) in counters {
            r.register(name, help, ConstCounter::new(v));
        }
        for (name, v, help) in [
            ("inflight", self.inflight, "requests in flight"),
            ("cache_objects", self.cache_objects, "objects cached"),
            ("cache_bytes", self.cache_bytes, "bytes cached"),
            ("peak_rss_bytes", self.peak_rss_bytes, "peak resident memory of the process (VmHWM)"),
        ] {
            r.register(name, help, ConstGauge::new(v));
        }
        r.register(
            "emulated_cpu_seconds",
            "Modelled CPU time reserved by the emulated CPU",
            ConstCounter::new(self.emulated_cpu_seconds()),
        );
        // An older name without `_total`, which a counter cannot have: kept as untyped.
        r.register("latency_sum_microseconds", "sum of request latencies", Untyped(self.latency_sum_us));
        // Peer state, as HAProxy's per-server status and check counters.
        type Labels = Vec<(&'static str, String)>;
        let up = Family::<Labels, Gauge>::default();
        let transitions = Family::<Labels, Counter>::default();
        let failed = Family::<Labels, Counter>::default();
        for p in &self.peers {
            let peer = p.peer.to_string();
            up.get_or_create(&vec![("peer", peer.clone())]).set(i64::from(p.up));
            for (to, n) in [("down", p.downs), ("up", p.ups)] {
                transitions.get_or_create(&vec![("peer", peer.clone()), ("to", to.into())]).inc_by(n);
            }
            failed.get_or_create(&vec![("peer", peer.clone())]).inc_by(p.failed_probes);
        }
        if !self.peers.is_empty() {
            r.register("peer_up", "1 while the peer passes its health checks, 0 while it is out", up);
            r.register(
                "peer_transitions",
                "times the peer was taken out (to=down) or brought back (to=up)",
                transitions,
            );
            r.register("peer_failed_probes", "health probes of the peer that failed", failed);
        }
        // Membership, as the routing sees it: 1 for each node routed over, 0
        // for a checked peer that is not (left, or not joined yet).
        if !self.members.is_empty() {
            let member = Family::<Labels, Gauge>::default();
            for p in &self.peers {
                member.get_or_create(&vec![("peer", p.peer.to_string())]).set(0);
            }
            for m in &self.members {
                member.get_or_create(&vec![("peer", m.to_string())]).set(1);
            }
            r.register("member", "1 while the node is in the membership routed over, else 0", member);
            r.register("members", "nodes in the membership routed over", ConstGauge::new(self.members.len() as u64));
        }
        r.register(
            "latency_seconds",
            "request latency",
            LatencyHistogram {
                buckets: LATENCY_BUCKETS.iter().copied().zip(self.latency_buckets).collect(),
                sum: self.latency_sum_us as f64 / 1e6,
                count: self.latency_count,
            },
        );
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &r)
            .expect("formatting into a String cannot fail");
        out
    }
}

/// A value exposed with type `untyped`: the name is written as given.
#[derive(Debug)]
struct Untyped(u64);

impl EncodeMetric for Untyped {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

/// The latency histogram from a snapshot's bucket counts: the crate's own
/// `Histogram` observes values itself, but ours are already counted.
#[derive(Debug)]
struct LatencyHistogram {
    /// `(upper bound, requests in this bucket)`, not cumulative.
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metrics {
        let m = Metrics::new();
        Metrics::add(&m.requests, 9);
        Metrics::add(&m.hits, 7);
        Metrics::add(&m.bytes_out, 1234);
        Metrics::add(&m.cache_bytes, 55);
        Metrics::add(&m.emulated_cpu_ns, 1_500_000_000);
        m.observe(Duration::from_millis(3));
        m.observe(Duration::from_secs(9));
        m
    }

    #[test]
    fn metrics_text_is_prometheus_with_the_old_names() {
        let text = sample().stats().render("node");
        for line in [
            "# TYPE dl7_requests_total counter",
            "dl7_requests_total{role=\"node\"} 9",
            "dl7_hits_total{role=\"node\"} 7",
            "dl7_bytes_out_total{role=\"node\"} 1234",
            "# TYPE dl7_cache_bytes gauge",
            "dl7_cache_bytes{role=\"node\"} 55",
            "dl7_emulated_cpu_seconds_total{role=\"node\"} 1.5",
            "dl7_latency_sum_microseconds{role=\"node\"} 9003000",
            "# TYPE dl7_latency_seconds histogram",
            "dl7_latency_seconds_bucket{role=\"node\",le=\"0.005\"} 1",
            "dl7_latency_seconds_bucket{role=\"node\",le=\"+Inf\"} 2",
            "dl7_latency_seconds_count{role=\"node\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Every sample line is `name{labels} value`, every other line a HELP or TYPE comment.
        for l in text.lines() {
            let ok = l.starts_with("# HELP dl7_")
                || l.starts_with("# TYPE dl7_")
                || (l.starts_with("dl7_") && l.rsplit_once(' ').is_some_and(|(_, v)| v.parse::<f64>().is_ok()));
            assert!(ok, "not Prometheus text: {l:?}");
        }
    }

    #[test]
    fn a_later_incarnations_counters_add_up_and_its_gauges_replace() {
        let mut a = sample().stats();
        let mut b = sample().stats();
        b.cache_bytes = 7;
        a.accumulate(&b);
        assert_eq!((a.requests, a.hits, a.latency_count, a.latency_buckets[5]), (18, 14, 4, 2));
        assert_eq!(a.cache_bytes, 7);
    }

    #[test]
    fn stats_round_trip_through_json() {
        let stats = sample().stats();
        assert_eq!(stats.version, Stats::VERSION);
        assert_eq!((stats.hits, stats.latency_count, stats.latency_buckets[5]), (7, 2, 1));
        let json = serde_json::to_string(&stats).unwrap();
        assert_eq!(serde_json::from_str::<Stats>(&json).unwrap(), stats);
    }

    #[test]
    fn a_missing_or_unknown_field_is_an_error_naming_it() {
        let mut v = serde_json::to_value(sample().stats()).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("owner_requests");
        let e = serde_json::from_value::<Stats>(v.clone()).unwrap_err().to_string();
        assert!(e.contains("missing field `owner_requests`"), "{e}");
        let o = v.as_object_mut().unwrap();
        o.insert("owner_requests".into(), 1.into());
        o.insert("owner_request".into(), 1.into());
        let e = serde_json::from_value::<Stats>(v).unwrap_err().to_string();
        assert!(e.contains("unknown field `owner_request`"), "{e}");
    }
}
