//! dl7's own pages and who may change them. Every page lives under one
//! reserved prefix, [`PREFIX`] (`/_dl7/`), so that on a public listener it
//! never hides a page of the origin's: `/_dl7/metrics`, Prometheus text for
//! scrapers, `/_dl7/stats`, the typed [`Stats`] snapshot as JSON for dl7's
//! own readers (the cluster runner, tests), [`MEMBERS_PATH`], a node's
//! [`CACHE_PATH`] and the probe's `/_dl7/health`
//! ([`crate::health::HEALTH_PATH`]). Every other path of a public listener
//! is the origin's, `/metrics`, `/stats` and `/health` included. An admin
//! listener also answers `/metrics`, `/stats` and `/cache`, the names
//! Prometheus and operators look for there ([`admin_name`]).
//!
//! A change (`PUT /_dl7/members`) is served on an admin listener only, and,
//! when the service has an [`AdminToken`], only to a request that carries it
//! as `Authorization: Bearer TOKEN` ([`authorized`]); others get 401.
//!
//! Readers take `/_dl7/stats`, not `/_dl7/metrics`: a counter renamed or
//! dropped then fails the read naming it, where a scraped name that is
//! missing would read as 0. [`fetch_stats`] reads it back and
//! [`put_members`] changes the membership. This module knows no roles
//! beyond the label it is given.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{ExchangeError, ExchangeFailure, MembersError};
use crate::http::{ClientConn, FetchError, Method, ResponseMeta, ServerConn};
use crate::metrics::{Metrics, Stats};
pub use crate::spec::AdminToken;

/// The prefix of every path dl7 answers itself on a public listener.
pub const PREFIX: &str = "/_dl7/";
/// Path of the Prometheus text page.
pub const METRICS_PATH: &str = "/_dl7/metrics";
/// Path of the JSON [`Stats`] page.
pub const STATS_PATH: &str = "/_dl7/stats";
/// Path of a node's list of cached objects (`object_id path stored_bytes` lines).
pub const CACHE_PATH: &str = "/_dl7/cache";
/// The `WWW-Authenticate` field of a 401 (RFC 6750 section 3).
pub const CHALLENGE: &[u8] = b"WWW-Authenticate: Bearer realm=\"dl7\"\r\n";

/// A path asked of an admin listener, by its name under [`PREFIX`]: the
/// unprefixed `/metrics`, `/stats` and `/cache` are those pages there
/// (Prometheus scrapes `/metrics` by default), and any other path is itself.
pub fn admin_name(path: &str) -> &str {
    match path {
        "/metrics" => METRICS_PATH,
        "/stats" => STATS_PATH,
        "/cache" => CACHE_PATH,
        other => other,
    }
}

/// Whether the request head `head` may change what `token` guards: always
/// when there is no token; else when it carries `Authorization: Bearer
/// TOKEN` (the scheme in any case, RFC 9110 section 11.1). The token is
/// compared in time that depends on its length only, so that the answer's
/// timing tells nothing of how much of a guess was right.
pub fn authorized(token: Option<&AdminToken>, head: &[u8]) -> bool {
    let Some(token) = token else { return true };
    let mut fields = [httparse::EMPTY_HEADER; crate::http::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return false;
    }
    let mut presented = req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("authorization"));
    let (Some(field), None) = (presented.next(), presented.next()) else { return false };
    let value = field.value.trim_ascii();
    let Some(space) = value.iter().position(|&b| b == b' ') else { return false };
    let (scheme, credentials) = (&value[..space], value[space..].trim_ascii());
    scheme.eq_ignore_ascii_case(b"bearer") && same_bytes(credentials, token.as_str().as_bytes())
}

/// `a == b`, reading every byte of both whatever they hold (their lengths aside).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    // Kept opaque, so that the compiler cannot turn the fold into an early exit.
    std::hint::black_box(diff) == 0
}
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

/// Sets the members of the service whose admin listener is at `addr`,
/// carrying `token` when the service wants one.
pub async fn put_members(
    addr: SocketAddr,
    nodes: &[usize],
    token: Option<&AdminToken>,
    timeout: Duration,
) -> Result<(), ExchangeError> {
    let failed = |failure| ExchangeError { addr, what: "members", failure };
    let list = nodes.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let auth = token.map(|t| format!("Authorization: Bearer {}\r\n", t.as_str())).unwrap_or_default();
    let put = async {
        let mut conn = ClientConn::connect(addr, timeout).await?;
        let req = format!("PUT {MEMBERS_PATH}?nodes={list} HTTP/1.1\r\nHost: dl7\r\n{auth}Content-Length: 0\r\n\r\n");
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

/// The probe's page ([`crate::health::HEALTH_PATH`]): 200 while the service
/// serves, 503 once it drains, so that peers stop sending to it before it is gone.
pub fn health_page(draining: bool) -> Page {
    let status = if draining { 503 } else { 200 };
    Page { status, ..Page::text(format!("{status} {}\n", crate::http::reason(status))) }
}

/// Answers a request for one of dl7's names under [`PREFIX`] on a public
/// listener (a node's, the conventional front end's): for a read, `page`'s
/// answer or dl7's 404; for any other method 405 and the connection closes,
/// since those names change only on the admin listener. Returns whether the
/// connection stays open. The caller has not counted the request: dl7's
/// pages are not requests of the workload.
pub async fn answer_reserved(
    conn: &mut ServerConn,
    m: &Metrics,
    method: Method,
    keep: bool,
    page: impl FnOnce() -> Option<Page>,
) -> bool {
    if !method.is_read() {
        Metrics::add(&m.client_errors, 1);
        let _ = conn.write_error(405).await;
        return false;
    }
    let page = page().unwrap_or_else(|| {
        Metrics::add(&m.client_errors, 1);
        not_found()
    });
    let meta = ResponseMeta { content_type: page.content_type, ..Default::default() };
    let head_only = method == Method::Head;
    conn.write_response(page.status, &meta, page.body.as_bytes(), keep, head_only).await.is_ok() && keep
}

/// The 404 of a name under [`PREFIX`] that is no page: dl7's, not the origin's.
pub fn not_found() -> Page {
    Page { status: 404, ..Page::text("404 Not Found\n".to_string()) }
}

/// The counter page for `path` ([`METRICS_PATH`] or [`STATS_PATH`]) of a
/// service with this `role` label, or `None` for any other path.
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

/// Reads a service's `/_dl7/stats` at `addr` (its public or its admin
/// listener: both answer it), all within `timeout`.
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
        assert_eq!(counter_page(&m, "front", "/stats"), None, "an origin's path on a public listener");
        assert_eq!(counter_page(&m, "front", admin_name("/stats")).map(|p| p.content_type), Some(stats.content_type));
    }

    #[test]
    fn an_admin_listener_names_its_pages_with_and_without_the_prefix() {
        assert_eq!(admin_name("/metrics"), METRICS_PATH);
        assert_eq!(admin_name("/stats"), STATS_PATH);
        assert_eq!(admin_name("/cache"), CACHE_PATH);
        assert_eq!(admin_name("/_dl7/members?nodes=1"), "/_dl7/members?nodes=1");
        assert_eq!(admin_name("/health"), "/health");
        for p in [METRICS_PATH, STATS_PATH, CACHE_PATH, MEMBERS_PATH, crate::health::HEALTH_PATH] {
            assert!(p.starts_with(PREFIX), "{p}");
        }
        assert_eq!(crate::spec::ProbePath::HEALTH.as_str(), crate::health::HEALTH_PATH);
    }

    #[test]
    fn only_the_bearer_token_itself_authorizes_a_change() {
        let token = AdminToken::new("t0ken").unwrap();
        let head = |fields: &str| format!("PUT /_dl7/members?nodes=0 HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
        let ok = |fields: &str| authorized(Some(&token), head(fields).as_bytes());
        assert!(authorized(None, head("").as_bytes()), "no token: no check");
        assert!(ok("Authorization: Bearer t0ken\r\n"));
        assert!(ok("authorization: bearer   t0ken \r\n"), "scheme in any case, spaces around");
        for bad in [
            "",
            "Authorization: Bearer t0ke\r\n",
            "Authorization: Bearer t0ken2\r\n",
            "Authorization: Bearer T0KEN\r\n",
            "Authorization: Basic dDBrZW4=\r\n",
            "Authorization: t0ken\r\n",
            "Authorization: Bearer\r\n",
            "Authorization: Bearer t0ken\r\nAuthorization: Bearer t0ken\r\n",
        ] {
            assert!(!ok(bad), "{bad:?}");
        }
        assert!(!authorized(Some(&token), b"PUT /x HTTP/1.1\r\nAuthorization: Bearer t0ken"), "an incomplete head");
    }

    /// An admin listener on port 0 answering every path with `page`.
    async fn serve(page: impl Fn(&str) -> Option<Page> + Send + Sync + 'static) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::service::admin_loop(listener, std::sync::Arc::new(move |_, p: &str| page(p)), None, stop).await;
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
