//! What every service shares: admission of client connections under a cap,
//! the stop signal handed to each connection, draining on shutdown, and the
//! admin listener that serves the counter pages of [`crate::admin`] (and
//! role-specific pages), asking for the admin token before any change.
//!
//! This module knows no roles; it must not parse anything but admin requests.

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

pub use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::admin::{AdminToken, Page};
use crate::http::{wait_true, HeadError, Limits, Method, ResponseMeta, ServerConn};
use crate::metrics::Metrics;

/// Connection admission and drain for one service.
pub struct Conns {
    sem: Arc<Semaphore>,
    max: u32,
    stop_tx: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl Conns {
    /// Admits at most `max` connections at once.
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
        let (stop_tx, _) = watch::channel(false);
        Self { sem: Arc::new(Semaphore::new(max as usize)), max, stop_tx, metrics }
    }

    /// A receiver that turns true when the service stops.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop_tx.subscribe()
    }

    /// Runs `serve` on the connection if under the cap, else answers 503 and closes.
    pub fn admit<F, Fut>(&self, stream: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream, watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Metrics::add(&self.metrics.connections, 1);
        match self.sem.clone().try_acquire_owned() {
            Ok(permit) => {
                let fut = serve(stream, self.stop_signal());
                tokio::spawn(async move {
                    fut.await;
                    drop(permit);
                });
            }
            Err(_) => {
                Metrics::add(&self.metrics.rejected, 1);
                tokio::spawn(async move {
                    let mut conn = ServerConn::new(stream);
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn.write_error(503)).await;
                });
            }
        }
    }

    /// Tells every connection to stop after its current request and waits
    /// for them, at most `timeout`.
    pub async fn drain(&self, timeout: Duration) {
        let _ = self.stop_tx.send(true);
        let _ = tokio::time::timeout(timeout, self.sem.acquire_many(self.max)).await;
    }
}

/// Turns a shutdown future into a watch receiver that any task can await.
pub fn shutdown_signal(shutdown: impl Future<Output = ()> + Send + 'static) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown => { let _ = tx.send(true); }
            _ = tx.closed() => {}
        }
    });
    rx
}

/// Renders an admin page for a method and path (its name under
/// [`crate::admin::PREFIX`]: [`crate::admin::admin_name`]), or `None` for 404.
pub type AdminPages = Arc<dyn Fn(Method, &str) -> Option<Page> + Send + Sync>;

/// Serves admin pages on `listener` until `stop` turns true. With a
/// `token`, a request of any method but GET and HEAD gets 401 unless it
/// carries it ([`crate::admin::authorized`]), before any page sees it.
pub async fn admin_loop(
    listener: TcpListener,
    pages: AdminPages,
    token: Option<AdminToken>,
    mut stop: watch::Receiver<bool>,
) {
    let limits = Limits::default();
    let token = token.map(Arc::new);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = wait_true(&mut stop) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let pages = pages.clone();
        let mut stop = stop.clone();
        let limits = limits.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let mut conn = ServerConn::new(stream);
            let mut path = String::new();
            loop {
                match conn.read_head(&limits, &mut path, &mut stop).await {
                    Ok(head)
                        if !head.method.is_read()
                            && !crate::admin::authorized(token.as_deref(), conn.request_head()) =>
                    {
                        // RFC 6750 section 3: the challenge names the scheme; the body says no more.
                        let meta = ResponseMeta {
                            content_type: "text/plain",
                            extra: crate::admin::CHALLENGE,
                            ..Default::default()
                        };
                        let _ = conn.write_response(401, &meta, b"401 Unauthorized\n", false, false).await;
                        return;
                    }
                    Ok(head) => {
                        let r = match pages(head.method, crate::admin::admin_name(&path)) {
                            Some(page) => {
                                let meta = ResponseMeta { content_type: page.content_type, ..Default::default() };
                                conn.write_response(
                                    page.status,
                                    &meta,
                                    page.body.as_bytes(),
                                    head.keep_alive,
                                    head.method == Method::Head,
                                )
                                .await
                            }
                            None => conn.write_error(404).await,
                        };
                        if r.is_err() || !head.keep_alive {
                            return;
                        }
                    }
                    Err(HeadError::Closed) => return,
                    Err(HeadError::Status(s)) => {
                        let _ = conn.write_error(s).await;
                        return;
                    }
                }
            }
        });
    }
}

/// RAII in-flight gauge.
pub struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    /// Counts one request in flight until dropped.
    pub fn enter(m: &'a Metrics) -> Self {
        m.inflight.fetch_add(1, Relaxed);
        Self(m)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Relaxed);
    }
}

/// Resolves on the first SIGINT or SIGTERM: the drain signal of a service process.
pub async fn os_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A latch of the first SIGINT or SIGTERM, for a run of many steps (a
/// sweep): installed once, so that a Ctrl-C between two steps is seen too.
/// Once installed, the signals no longer end the process: its owner checks
/// [`Interrupt::is_set`] between steps and [`Interrupt::guard`]s long ones.
#[derive(Clone)]
pub struct Interrupt(tokio::sync::watch::Receiver<bool>);

impl Interrupt {
    /// Starts listening on `rt`.
    pub fn install(rt: &tokio::runtime::Runtime) -> std::io::Result<Interrupt> {
        use tokio::signal::unix::{signal, SignalKind};
        let _enter = rt.enter();
        let (mut int, mut term) = (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
        let (tx, rx) = tokio::sync::watch::channel(false);
        rt.spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            let _ = tx.send(true);
        });
        Ok(Interrupt(rx))
    }

    /// Whether a signal came.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Runs `fut` unless a signal comes first (`None`, `fut` dropped).
    pub async fn guard<F: Future>(&self, fut: F) -> Option<F::Output> {
        let mut rx = self.0.clone();
        tokio::select! {
            out = fut => Some(out),
            _ = rx.wait_for(|set| *set) => None,
        }
    }
}

/// The runtime a service process runs on: `worker_threads` threads serve it.
/// `None` is tokio's multi-thread runtime with one worker per core; `1` the
/// current-thread runtime (every task on the one thread, no work stealing,
/// as HAProxy's `nbthread 1`); `k > 1` the multi-thread runtime with `k`
/// workers.
pub fn runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    match worker_threads {
        Some(0) => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "worker_threads must be at least 1")),
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Some(k) => tokio::runtime::Builder::new_multi_thread().worker_threads(k).enable_all().build(),
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`). Safe to call twice.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub use tokio::net::UnixListener;

/// tokio's `spawn`, for callers (the binary, its tests) without their own tokio dependency.
pub use tokio::spawn;
