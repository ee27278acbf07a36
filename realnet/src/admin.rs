//! The counter pages every service serves on its admin listener (and the
//! node and origin on their main port): `GET /metrics`, Prometheus text for
//! scrapers, and `GET /stats`, the typed [`Stats`] snapshot as JSON for dl7's
//! own readers (the cluster runner, tests); and [`fetch_stats`], the client
//! that reads `/stats` back.
//!
//! Readers take `/stats`, not `/metrics`: a counter renamed or dropped then
//! fails the read naming it, where a scraped name that is missing would read
//! as 0. This module knows no roles beyond the label it is given.

use std::net::SocketAddr;
use std::time::Duration;

use crate::http::{ClientConn, FetchError};
use crate::metrics::{Metrics, Stats};

/// Path of the Prometheus text page.
pub const METRICS_PATH: &str = "/metrics";
/// Path of the JSON [`Stats`] page.
pub const STATS_PATH: &str = "/stats";
/// Largest `/stats` body [`fetch_stats`] accepts (a snapshot is about 1 KiB).
const MAX_STATS_BODY: u64 = 64 * 1024;

/// An admin page: its body and the `Content-Type` it is sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Page {
    /// A `text/plain` page.
    pub fn text(body: String) -> Self {
        Self { content_type: "text/plain", body }
    }
}

/// The counter page for `path` (`/metrics` or `/stats`) of a service with
/// this `role` label, or `None` for any other path.
pub fn counter_page(metrics: &Metrics, role: &str, path: &str) -> Option<Page> {
    let stats = || Stats {
        peak_rss_bytes: crate::launcher::peak_rss_bytes(std::process::id()).unwrap_or(0),
        ..metrics.stats()
    };
    match path {
        METRICS_PATH => Some(Page {
            content_type: prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            body: stats().render(role),
        }),
        STATS_PATH => Some(Page {
            content_type: "application/json",
            body: serde_json::to_string(&stats()).expect("Stats has only integer fields"),
        }),
        _ => None,
    }
}

/// Reads a service's `/stats` at `addr`, all within `timeout`.
///
/// A body that is not exactly a [`Stats`] of [`Stats::VERSION`] is an error:
/// a missing or unknown field is named (`missing field `hits``), never read
/// as zero. Errors are one line starting `stats ADDR:`.
pub async fn fetch_stats(addr: SocketAddr, timeout: Duration) -> Result<Stats, String> {
    let fetch = async {
        let mut conn = ClientConn::connect(addr, timeout).await?;
        conn.send_get(STATS_PATH, false).await?;
        let mut body = Vec::new();
        let head = conn.read_response(&mut body, MAX_STATS_BODY).await?;
        Ok::<_, FetchError>((head.status, body))
    };
    let (status, body) = match tokio::time::timeout(timeout, fetch).await {
        Err(_) => return Err(format!("stats {addr}: timed out after {timeout:?}")),
        Ok(r) => r.map_err(|e| format!("stats {addr}: {e}"))?,
    };
    if status != 200 {
        return Err(format!("stats {addr}: status {status}"));
    }
    let stats: Stats = serde_json::from_slice(&body).map_err(|e| format!("stats {addr}: {e}"))?;
    if stats.version != Stats::VERSION {
        return Err(format!("stats {addr}: version {}, expected {}", stats.version, Stats::VERSION));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_pages_are_metrics_and_stats_only() {
        let m = Metrics::new();
        Metrics::add(&m.hits, 3);
        let stats = counter_page(&m, "front", STATS_PATH).unwrap();
        assert_eq!(stats.content_type, "application/json");
        let served = serde_json::from_str::<Stats>(&stats.body).unwrap();
        assert!(served.peak_rss_bytes > 0, "the serving process's peak memory is filled in");
        assert_eq!(Stats { peak_rss_bytes: 0, ..served }, m.stats());
        let text = counter_page(&m, "front", METRICS_PATH).unwrap();
        assert!(text.body.contains("dl7_hits_total{role=\"front\"} 3\n"), "{}", text.body);
        assert_eq!(counter_page(&m, "front", "/cache"), None);
    }

    /// An admin listener on port 0 answering every path with `page`.
    async fn serve(page: impl Fn(&str) -> Option<Page> + Send + Sync + 'static) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::service::admin_loop(listener, std::sync::Arc::new(page), stop).await;
            drop(stop_tx);
        });
        addr
    }

    #[tokio::test]
    async fn fetch_stats_reads_what_a_service_serves() {
        let m = std::sync::Arc::new(Metrics::new());
        Metrics::add(&m.forwarded, 5);
        let served = m.clone();
        let addr = serve(move |p| counter_page(&served, "node", p)).await;
        let stats = fetch_stats(addr, Duration::from_secs(2)).await.unwrap();
        assert_eq!(Stats { peak_rss_bytes: 0, ..stats.clone() }, m.stats());
        assert_eq!(stats.forwarded, 5);
    }

    #[tokio::test]
    async fn fetch_stats_names_a_missing_field() {
        let mut v = serde_json::to_value(Metrics::new().stats()).unwrap();
        v.as_object_mut().unwrap().remove("hits");
        let body = v.to_string();
        let addr = serve(move |_| Some(Page { content_type: "application/json", body: body.clone() })).await;
        let e = fetch_stats(addr, Duration::from_secs(2)).await.unwrap_err();
        assert!(e.starts_with(&format!("stats {addr}: ")) && e.contains("missing field `hits`"), "{e}");
    }

    #[tokio::test]
    async fn fetch_stats_refuses_another_version() {
        let mut stats = Metrics::new().stats();
        stats.version = Stats::VERSION + 1;
        let body = serde_json::to_string(&stats).unwrap();
        let addr = serve(move |_| Some(Page { content_type: "application/json", body: body.clone() })).await;
        let e = fetch_stats(addr, Duration::from_secs(2)).await.unwrap_err();
        assert!(e.contains(&format!("version {}, expected {}", Stats::VERSION + 1, Stats::VERSION)), "{e}");
    }
}
