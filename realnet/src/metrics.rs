//! Counters every service keeps, rendered as Prometheus text on `GET /metrics`,
//! and a parser for that text (the cluster runner and tests read it back).
//!
//! One struct serves every role; a role leaves the counters it has no use for
//! at zero. Counters are relaxed atomics: exact totals, no ordering promises.
//! This module must not do I/O.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

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
    /// Fetches from the origin (single-flight: one per concurrent miss group).
    pub origin_fetches: AtomicU64,
    /// Responses with status 502 (unreachable or failing owner/origin).
    pub bad_gateway: AtomicU64,
    /// Responses with status 4xx sent to bad requests (400, 404, 408, 414, 431, ...).
    pub client_errors: AtomicU64,
    /// Bytes read from client sockets.
    pub bytes_in: AtomicU64,
    /// Bytes written to client sockets (heads and bodies).
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
    /// Bytes saved by the distill stage (origin size minus stored size).
    pub distill_saved_bytes: AtomicU64,
    /// Response body bytes relays read from upstreams (front end, forwarding node).
    pub relay_upstream_bytes: AtomicU64,
    /// Relayed response body bytes written to clients: `relay_upstream_bytes`
    /// minus this is what the relays hold in memory right now.
    pub relay_client_bytes: AtomicU64,
    /// Relayed responses cut short because the upstream failed after the head was sent.
    pub upstream_aborted: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
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

    /// Prometheus text exposition, every name prefixed `dl7_` and labelled with the role.
    pub fn render(&self, role: &str) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &AtomicU64, &str, &str); 26] = [
            ("requests_total", &self.requests, "counter", "requests received"),
            ("hop_requests_total", &self.hop_requests, "counter", "requests received with the hop header"),
            ("owner_requests_total", &self.owner_requests, "counter", "requests served as owner"),
            ("hits_total", &self.hits, "counter", "cache hits"),
            ("misses_total", &self.misses, "counter", "cache misses"),
            ("owner_bytes_total", &self.owner_bytes, "counter", "bytes of objects served as owner"),
            ("hit_bytes_total", &self.hit_bytes, "counter", "bytes of objects served from cache"),
            ("forwarded_total", &self.forwarded, "counter", "requests forwarded to another node"),
            ("fallbacks_total", &self.fallbacks, "counter", "requests served by a fallback candidate"),
            ("origin_fetches_total", &self.origin_fetches, "counter", "fetches from the origin"),
            ("bad_gateway_total", &self.bad_gateway, "counter", "502 responses"),
            ("client_errors_total", &self.client_errors, "counter", "4xx responses"),
            ("bytes_in_total", &self.bytes_in, "counter", "bytes read from clients"),
            ("bytes_out_total", &self.bytes_out, "counter", "bytes written to clients"),
            ("payload_out_total", &self.payload_out, "counter", "200 body bytes written to clients"),
            ("inflight", &self.inflight, "gauge", "requests in flight"),
            ("connections_total", &self.connections, "counter", "client connections accepted"),
            ("rejected_total", &self.rejected, "counter", "connections refused at the cap"),
            ("handoffs_total", &self.handoffs, "counter", "connections handed over by SCM_RIGHTS"),
            ("cache_objects", &self.cache_objects, "gauge", "objects cached"),
            ("cache_bytes", &self.cache_bytes, "gauge", "bytes cached"),
            ("distill_saved_bytes_total", &self.distill_saved_bytes, "counter", "bytes saved by distill"),
            (
                "relay_upstream_bytes_total",
                &self.relay_upstream_bytes,
                "counter",
                "body bytes relays read from upstreams",
            ),
            ("relay_client_bytes_total", &self.relay_client_bytes, "counter", "relayed body bytes written to clients"),
            (
                "upstream_aborted_total",
                &self.upstream_aborted,
                "counter",
                "relayed responses cut short by the upstream",
            ),
            ("latency_sum_microseconds", &self.latency_sum_us, "counter", "sum of request latencies"),
        ];
        for (name, v, kind, help) in counters {
            let _ = writeln!(out, "# HELP dl7_{name} {help}\n# TYPE dl7_{name} {kind}");
            let _ = writeln!(out, "dl7_{name}{{role=\"{role}\"}} {}", v.load(Relaxed));
        }
        let _ = writeln!(out, "# HELP dl7_latency_seconds request latency\n# TYPE dl7_latency_seconds histogram");
        let mut cumulative = 0;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.latency_buckets[i].load(Relaxed);
            let _ = writeln!(out, "dl7_latency_seconds_bucket{{role=\"{role}\",le=\"{b}\"}} {cumulative}");
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "dl7_latency_seconds_bucket{{role=\"{role}\",le=\"+Inf\"}} {count}");
        let sum = self.latency_sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "dl7_latency_seconds_sum{{role=\"{role}\"}} {sum}");
        let _ = writeln!(out, "dl7_latency_seconds_count{{role=\"{role}\"}} {count}");
        out
    }
}

/// Parses Prometheus text into `name -> value`, labels dropped (the first
/// sample of each name wins; histogram buckets are skipped).
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() || line.contains("_bucket") {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(v) = value.parse::<f64>() {
            out.entry(name.to_string()).or_insert(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_text_parses_back() {
        let m = Metrics::new();
        Metrics::add(&m.hits, 7);
        Metrics::add(&m.bytes_out, 1234);
        m.observe(Duration::from_millis(3));
        let parsed = parse(&m.render("node"));
        assert_eq!(parsed["dl7_hits_total"], 7.0);
        assert_eq!(parsed["dl7_bytes_out_total"], 1234.0);
        assert_eq!(parsed["dl7_latency_seconds_count"], 1.0);
        assert!(m.render("node").contains("dl7_latency_seconds_bucket{role=\"node\",le=\"0.005\"} 1"));
    }
}
