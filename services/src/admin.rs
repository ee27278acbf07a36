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

use crate::error::{ExchangeError, ExchangeFailure, MembersError};
use crate::http::{ClientConn, FetchError, Method};
use crate::metrics::{Metrics, Stats};

/// Path of the Prometheus text page.
pub const METRICS_PATH: &str = "/metrics";
/// Path of the JSON [`Stats`] page.
pub const STATS_PATH: &str = "/stats";
/// Largest `/stats` body [`fetch_stats`] accepts (a snapshot is about 1 KiB).
const MAX_STATS_BODY: u64 = 64 * 1024;

/// An admin page: its status, body and the `Content-Type` it is sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The response status.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Page {
    /// A `text/plain` page with status 200.
    pub fn text(body: String) -> Self {
        Self { status: 200, content_type: "text/plain", body }
    }

    fn json(body: String) -> Self {
        Self { status: 200, content_type: "application/json", body }
    }
}

/// Path of the membership page: `GET` lists the nodes routed over (indices,
/// comma-separated, in membership order); on an admin listener, `PUT
/// /_dl7/members?nodes=0,2,3` sets them (the policy is rebuilt and swapped in).
pub const MEMBERS_PATH: &str = "/_dl7/members";

/// The membership page for `method` and `path` (`None` for any other path):
/// `get` reads the members, `set` changes them (its error is answered 400).
pub fn members_page(
    method: Method,
    path: &str,
    get: impl Fn() -> Vec<usize>,
    set: impl Fn(&[usize]) -> Result<(), MembersError>,
) -> Option<Page> {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    if route != MEMBERS_PATH {
        return None;
    }
    let list =
        |m: Vec<usize>| Page::text(format!("{}\n", m.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")));
    match method {
        Method::Get | Method::Head => Some(list(get())),
        Method::Put => {
            let parsed = parse_members(query).and_then(|nodes| set(&nodes));
            Some(match parsed {
                Ok(()) => list(get()),
                Err(e) => Page { status: 400, ..Page::text(format!("{e}\n")) },
            })
        }
        _ => None,
    }
}

/// `nodes=0,2,3` into node indices: at least one, no repeats.
fn parse_members(query: &str) -> Result<Vec<usize>, MembersError> {
    let value = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("nodes="))
        .ok_or_else(|| MembersError::NoNodes { query: query.to_string() })?;
    let mut nodes = Vec::new();
    for part in value.split(',') {
        let i: usize = part.parse().map_err(|_| MembersError::NotAnIndex { part: part.to_string() })?;
        if nodes.contains(&i) {
            return Err(MembersError::Twice { index: i });
        }
        nodes.push(i);
    }
    Ok(nodes)
}

/// Sets the members of the service whose admin listener is at `addr`.
pub async fn put_members(addr: SocketAddr, nodes: &[usize], timeout: Duration) -> Result<(), ExchangeError> {
    let failed = |failure| ExchangeError { addr, what: "members", failure };
    let list = nodes.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let put = async {
        let mut conn = ClientConn::connect(addr, timeout).await?;
        let req = format!("PUT {MEMBERS_PATH}?nodes={list} HTTP/1.1\r\nHost: dl7\r\nContent-Length: 0\r\n\r\n");
        conn.send_raw(req.as_bytes()).await?;
        let mut body = Vec::new();
        let head = conn.read_response(&mut body, MAX_STATS_BODY).await?;
        Ok::<_, FetchError>((head.status, body))
    };
    match tokio::time::timeout(timeout, put).await {
        Err(_) => Err(failed(ExchangeFailure::Timeout(timeout))),
        Ok(Err(e)) => Err(failed(ExchangeFailure::Fetch(e))),
        Ok(Ok((200, _))) => Ok(()),
        Ok(Ok((status, body))) => {
            Err(failed(ExchangeFailure::Refused { status, body: String::from_utf8_lossy(&body).trim().to_string() }))
        }
    }
}

/// The counter page for `path` (`/metrics` or `/stats`) of a service with
/// this `role` label, or `None` for any other path.
pub fn counter_page(metrics: &Metrics, role: &str, path: &str) -> Option<Page> {
    let stats =
        || Stats { peak_rss_bytes: crate::procfs::peak_rss_bytes(std::process::id()).unwrap_or(0), ..metrics.stats() };
    match path {
        METRICS_PATH => Some(Page {
            status: 200,
            content_type: prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            body: stats().render(role),
        }),
        STATS_PATH => Some(Page::json(serde_json::to_string(&stats()).expect("Stats has only integer fields"))),
        _ => None,
    }
}

/// Reads a service's `/stats` at `addr`, all within `timeout`.
///
/// A body that is not exactly a [`Stats`] of [`Stats::VERSION`] is an error:
/// a missing or unknown field is named (`missing field `hits``), never read
/// as zero. Errors are one line starting `stats ADDR:`.
pub async fn fetch_stats(addr: SocketAddr, timeout: Duration) -> Result<Stats, ExchangeError> {
    let failed = |failure| ExchangeError { addr, what: "stats", failure };
    let fetch = async {
        let mut conn = ClientConn::connect(addr, timeout).await?;
        conn.send_get(STATS_PATH, false).await?;
        let mut body = Vec::new();
        let head = conn.read_response(&mut body, MAX_STATS_BODY).await?;
        Ok::<_, FetchError>((head.status, body))
    };
    let (status, body) = match tokio::time::timeout(timeout, fetch).await {
        Err(_) => return Err(failed(ExchangeFailure::Timeout(timeout))),
        Ok(r) => r.map_err(|e| failed(ExchangeFailure::Fetch(e)))?,
    };
    if status != 200 {
        return Err(failed(ExchangeFailure::Status(status)));
    }
    let stats: Stats = serde_json::from_slice(&body).map_err(|e| failed(ExchangeFailure::Json(e)))?;
    if stats.version != Stats::VERSION {
        return Err(failed(ExchangeFailure::Version { found: stats.version, expected: Stats::VERSION }));
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
            crate::service::admin_loop(listener, std::sync::Arc::new(move |_, p: &str| page(p)), stop).await;
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
        let addr = serve(move |_| Some(Page::json(body.clone()))).await;
        let e = fetch_stats(addr, Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(e.failure, ExchangeFailure::Json(_)) && e.addr == addr && e.what == "stats", "{e}");
        let e = e.to_string();
        assert!(e.starts_with(&format!("stats {addr}: ")) && e.contains("missing field `hits`"), "{e}");
    }

    #[tokio::test]
    async fn fetch_stats_refuses_another_version() {
        let mut stats = Metrics::new().stats();
        stats.version = Stats::VERSION + 1;
        let body = serde_json::to_string(&stats).unwrap();
        let addr = serve(move |_| Some(Page::json(body.clone()))).await;
        let e = fetch_stats(addr, Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(e.failure, ExchangeFailure::Version { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains(&format!("version {}, expected {}", Stats::VERSION + 1, Stats::VERSION)), "{e}");
    }
}
