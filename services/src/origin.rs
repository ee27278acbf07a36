//! `dl7 origin`: the origin web server. Serves every object of a catalog at
//! its path with its exact size, its content type and the deterministic body
//! of [`crate::content`], generated as it is sent through one
//! [`RELAY_CHUNK`] buffer per connection: the origin holds no body, whatever
//! the objects' sizes. Unknown paths get 404. An optional per-request delay
//! emulates a slower origin (the paper's Apache box). Its own pages are
//! dl7's reserved names (`/_dl7/metrics`, `/_dl7/stats`, `/_dl7/health`,
//! [`crate::admin`]), on its port and on the optional admin listener.
//!
//! Every object declares its freshness explicitly ([`FRESH_FOR_S`], a year,
//! with an `ETag` and a fixed `Last-Modified` as validators, and a `Date`):
//! a node's RFC 9111 cache then keeps and reuses it exactly as the
//! simulator's cache does, for as long as any experiment runs, so an
//! experiment means the same in both engines.
//!
//! It must not cache, dispatch or know about nodes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dl7_traces::Catalog;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::admin::counter_page;
use crate::content::Pattern;
use crate::http::{BodySource, FetchError, Limits, Method, ResponseMeta, ServerConn, RELAY_CHUNK};
use crate::metrics::Metrics;
use crate::service::{admin_loop, shutdown_signal, Conns, InFlight};

/// How long every object is fresh (`Cache-Control: max-age`), seconds: a
/// year, longer than any experiment, so no node revalidates during one.
pub const FRESH_FOR_S: u64 = 365 * 24 * 3600;
/// Every object's `Last-Modified` (a fixed date: the catalog never changes).
pub const LAST_MODIFIED: &str = "Sat, 01 Jan 2000 00:00:00 GMT";

/// [`LAST_MODIFIED`] as a time (the files `dl7 trace materialize` writes carry it).
pub fn last_modified() -> std::time::SystemTime {
    httpdate::parse_http_date(LAST_MODIFIED).expect("LAST_MODIFIED is an HTTP date")
}

/// Configuration of an origin.
pub struct OriginConfig {
    /// The objects served.
    pub catalog: Arc<Catalog>,
    /// Added before every response.
    pub delay: Duration,
    /// Connection limits and timeouts.
    pub limits: Limits,
    /// Counters served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Optional separate listener for `GET /metrics`.
    pub admin: Option<TcpListener>,
}

impl OriginConfig {
    /// An origin for `catalog` with no delay and default limits.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self {
            catalog,
            delay: Duration::ZERO,
            limits: Limits::default(),
            metrics: Arc::new(Metrics::new()),
            admin: None,
        }
    }
}

struct Origin {
    catalog: Arc<Catalog>,
    by_path: HashMap<String, u32>,
    delay: Duration,
    limits: Limits,
    metrics: Arc<Metrics>,
}

/// Serves the catalog on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    listener: TcpListener,
    config: OriginConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let catalog = config.catalog;
    let by_path = catalog.objects.iter().map(|o| (o.path.clone(), o.id.0)).collect();
    let origin = Arc::new(Origin {
        catalog: catalog.clone(),
        by_path,
        delay: config.delay,
        limits: config.limits.clone(),
        metrics: config.metrics.clone(),
    });
    tracing::info!("origin: {} objects on {:?}, delay {:?}", catalog.len(), listener.local_addr(), config.delay);
    let mut stop = shutdown_signal(shutdown);
    let conns = Conns::new(config.limits.max_connections, config.metrics.clone());
    if let Some(admin) = config.admin {
        let (m, draining) = (config.metrics.clone(), conns.stop_signal());
        let pages: crate::service::AdminPages = Arc::new(move |method: crate::http::Method, p: &str| {
            method.is_read().then(|| own_page(&m, p, *draining.borrow())).flatten()
        });
        // An origin has no page to change: no token to ask for.
        tokio::spawn(admin_loop(admin, pages, None, conns.stop_signal()));
    }
    loop {
        tokio::select! {
            a = listener.accept() => match a {
                Ok((stream, _)) => {
                    let o = origin.clone();
                    conns.admit(stream, move |s, stop| serve(o, s, stop));
                }
                Err(e) => tracing::warn!("origin accept: {e}"),
            },
            _ = crate::http::wait_true(&mut stop) => break,
        }
    }
    drop(listener);
    conns.drain(config.limits.drain_timeout).await;
    Ok(())
}

/// The origin's own page at `path`, one of dl7's reserved names, if any.
fn own_page(m: &Metrics, path: &str, draining: bool) -> Option<crate::admin::Page> {
    match path {
        crate::health::HEALTH_PATH => Some(crate::admin::health_page(draining)),
        _ => counter_page(m, "origin", path),
    }
}

async fn serve(origin: Arc<Origin>, stream: TcpStream, mut stop: watch::Receiver<bool>) {
    let m = &*origin.metrics;
    let mut conn = ServerConn::new(stream).with_metrics(origin.metrics.clone());
    let mut path = String::new();
    let mut buf = Vec::new();
    let mut fields = Fields::default();
    loop {
        let Some(head) = conn.next_request(&origin.limits, &mut path, &mut stop).await else { break };
        let start = Instant::now();
        let _inflight = InFlight::enter(m);
        Metrics::add(&m.requests, 1);
        if !origin.delay.is_zero() {
            tokio::time::sleep(origin.delay).await;
        }
        let keep = head.keep_alive && !*stop.borrow();
        let result = match (head.method, origin.by_path.get(path.as_str())) {
            (method, _) if !method.is_read() => {
                Metrics::add(&m.client_errors, 1);
                conn.write_error(405).await.map(|_| false)
            }
            (_, None) => {
                let (status, meta, body) = match own_page(m, &path, *stop.borrow()) {
                    Some(page) => {
                        (page.status, ResponseMeta { content_type: page.content_type, ..Default::default() }, page.body)
                    }
                    None => {
                        Metrics::add(&m.client_errors, 1);
                        let meta = ResponseMeta { content_type: "text/plain", ..Default::default() };
                        (404, meta, "404 Not Found\n".to_string())
                    }
                };
                conn.write_response(status, &meta, body.as_bytes(), keep, head.method == Method::Head)
                    .await
                    .map(|_| keep)
            }
            (_, Some(&id)) => {
                let object = &origin.catalog.objects[id as usize];
                let meta = ResponseMeta {
                    content_type: object.content_type.mime(),
                    object_id: Some(id),
                    extra: fields.of(id, object.size),
                    ..Default::default()
                };
                if buf.is_empty() {
                    buf.resize(RELAY_CHUNK, 0);
                }
                let mut body = Generated { pattern: Pattern::of(object), offset: 0, size: object.size };
                // stream_response counts `payload_out` before the write that ends the response.
                conn.stream_response(200, &meta, &mut body, keep, head.method == Method::Head, &mut buf)
                    .await
                    .map(|_| keep)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }
        };
        m.observe(start.elapsed());
        match result {
            Ok(true) => {}
            _ => break,
        }
    }
}

/// The caching fields of an object's answer, written into one buffer per
/// connection: `Cache-Control`, `ETag` (the object's id and size: a new
/// catalog with other bodies has other tags), `Last-Modified` and `Date`
/// (formatted once a second).
#[derive(Default)]
struct Fields {
    out: Vec<u8>,
    date: Vec<u8>,
    date_s: u64,
}

impl Fields {
    fn of(&mut self, id: u32, size: u64) -> &[u8] {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.date.is_empty() || now != self.date_s {
            self.date_s = now;
            self.date = crate::rfc9111::fmt_http_date(now).into_bytes();
        }
        let mut num = itoa::Buffer::new();
        self.out.clear();
        self.out.extend_from_slice(b"Cache-Control: max-age=");
        self.out.extend_from_slice(num.format(FRESH_FOR_S).as_bytes());
        self.out.extend_from_slice(b"\r\nETag: \"");
        self.out.extend_from_slice(num.format(id).as_bytes());
        self.out.push(b'-');
        self.out.extend_from_slice(num.format(size).as_bytes());
        self.out.extend_from_slice(b"\"\r\nLast-Modified: ");
        self.out.extend_from_slice(LAST_MODIFIED.as_bytes());
        self.out.extend_from_slice(b"\r\nDate: ");
        self.out.extend_from_slice(&self.date);
        self.out.extend_from_slice(b"\r\n");
        &self.out
    }
}

/// An object's body, generated chunk by chunk as it is sent.
struct Generated {
    pattern: Pattern,
    offset: u64,
    size: u64,
}

impl BodySource for Generated {
    fn remaining(&self) -> u64 {
        self.size - self.offset
    }

    async fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize, FetchError> {
        let n = (self.remaining().min(buf.len() as u64)) as usize;
        self.pattern.fill(self.offset, &mut buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }

    fn relayed(&self) -> bool {
        false
    }
}
