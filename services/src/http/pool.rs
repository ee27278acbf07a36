//! A pool of keep-alive connections to one upstream (node -> origin and
//! node -> owner fetches): whole-body GETs and streamed ones. The idle
//! connections sit in a lock-free queue: a forwarded request checks one out
//! and its body returns it without taking a lock, whichever worker thread
//! runs either. Timeouts are idle timeouts: connecting, and every read,
//! may take at most that long; a response that keeps arriving is never cut off.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;

use super::{ClientConn, FetchError, ResponseHead, UpstreamBody};

/// A pool of idle keep-alive connections to one upstream address.
pub struct Pool {
    addr: SocketAddr,
    idle: Arc<Idle>,
}

/// The idle connections of a [`Pool`], shared with the [`UpstreamBody`]s that
/// give their connection back once the body is fully read.
pub(super) struct Idle {
    conns: ArrayQueue<ClientConn>,
}

impl Idle {
    /// Keeps `conn` for reuse if it is clean and there is room; else it closes.
    pub(super) fn put_back(&self, conn: ClientConn, keep_alive: bool) {
        if keep_alive && conn.unread().is_empty() {
            let _ = self.conns.push(conn);
        }
    }

    fn take(&self) -> Option<ClientConn> {
        self.conns.pop()
    }
}

impl Pool {
    /// A pool for `addr` keeping at most `max_idle` idle connections.
    pub fn new(addr: SocketAddr, max_idle: usize) -> Self {
        Self { addr, idle: Arc::new(Idle { conns: ArrayQueue::new(max_idle.max(1)) }) }
    }

    /// GETs `path` and returns once the response head is in, the body left on
    /// the connection for the caller to stream. `timeout` is the idle
    /// timeout of connecting and of every read, head and body. A reused
    /// connection that turns out to be closed is retried once on a fresh one.
    pub async fn get_stream(
        &self,
        path: &str,
        hop: bool,
        timeout: Duration,
    ) -> Result<(ResponseHead, UpstreamBody), FetchError> {
        let (head, conn) = self.get_head(path, hop, timeout).await?;
        let mut body = UpstreamBody {
            conn: Some(conn),
            idle: self.idle.clone(),
            remaining: head.content_length,
            keep_alive: head.keep_alive,
            read_timeout: timeout,
        };
        if body.remaining == 0 {
            if let Some(conn) = body.conn.take() {
                self.idle.put_back(conn, head.keep_alive);
            }
        }
        Ok((head, body))
    }

    async fn get_head(
        &self,
        path: &str,
        hop: bool,
        timeout: Duration,
    ) -> Result<(ResponseHead, ClientConn), FetchError> {
        let reused = self.idle.take();
        if let Some(mut conn) = reused {
            let head = match conn.send_get(path, hop).await {
                Ok(()) => conn.read_response_head().await,
                Err(e) => Err(e),
            };
            match head {
                Ok(head) => return Ok((head, conn)),
                // Stale keep-alive connection: the server closed it while idle.
                Err(FetchError::Closed | FetchError::Io(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut conn = ClientConn::connect(self.addr, timeout).await?;
        conn.send_get(path, hop).await?;
        let head = conn.read_response_head().await?;
        Ok((head, conn))
    }

    /// The upstream address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// GETs `path` whole, for small answers (owner lookups): at most
    /// `max_body` bytes; `timeout` is the idle timeout of every step.
    pub async fn get(
        &self,
        path: &str,
        hop: bool,
        timeout: Duration,
        max_body: u64,
    ) -> Result<(ResponseHead, Bytes), FetchError> {
        let (head, mut body) = self.get_stream(path, hop, timeout).await?;
        let bytes = body.read_to_vec(max_body).await?;
        Ok((head, Bytes::from(bytes)))
    }
}
