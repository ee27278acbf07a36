//! A pool of keep-alive connections to one upstream (node -> origin and
//! node -> owner fetches): whole-body GETs, streamed ones, and any request
//! forwarded with its body streamed from the client ([`Pool::forward`]). The idle
//! connections sit in a lock-free queue: a forwarded request checks one out
//! and its body returns it without taking a lock, whichever worker thread
//! runs either. Timeouts are idle timeouts: connecting, and every read,
//! may take at most that long; a response that keeps arriving is never cut off.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;

use tokio::io::AsyncWriteExt;

use super::proxy::{chunk_size_line, write_forwarded_request, ForwardRequest, RequestBody, LAST_CHUNK};
use super::{ClientConn, FetchError, HeadError, Method, ResponseHead, ServerConn, UpstreamBody};

/// Why a forwarded request got no response head.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The upstream failed; `retriable` when no byte of the client's body
    /// was taken yet, so another upstream may be asked instead.
    #[error("upstream {addr}: {source}")]
    Upstream {
        /// The upstream.
        addr: SocketAddr,
        /// What failed.
        source: FetchError,
        /// The request can still be sent elsewhere.
        retriable: bool,
    },
    /// The client's body could not be read (it left, or its framing is bad).
    #[error("client body: {0:?}")]
    Client(HeadError),
}

/// A pool of idle keep-alive connections to one upstream address.
pub struct Pool {
    addr: SocketAddr,
    /// `Host` for a request that has none (an HTTP/1.0 client's): the upstream's address.
    host: String,
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
        Self { addr, host: addr.to_string(), idle: Arc::new(Idle { conns: ArrayQueue::new(max_idle.max(1)) }) }
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
        let body = UpstreamBody::new(conn, self.idle.clone(), &head, timeout);
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
                Ok(()) => conn.read_response_head(false).await,
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
        let head = conn.read_response_head(false).await?;
        Ok((head, conn))
    }

    /// Forwards the request `client` has just read, as `f` says (its head
    /// rewritten by [`write_forwarded_request`], its body streamed from the
    /// client as it arrives, re-chunked when chunked), and returns once the
    /// response head is in (interim 1xx answers skipped). `method` is the
    /// method sent (a HEAD's answer has no body). Only a request that has no
    /// body and may be repeated goes on a pooled connection (and is sent
    /// again on a fresh one if that turns out closed); any other gets a
    /// fresh connection, since it cannot be sent twice.
    pub async fn forward(
        &self,
        client: &mut ServerConn,
        f: &ForwardRequest<'_>,
        method: Method,
        timeout: Duration,
    ) -> Result<(ResponseHead, UpstreamBody), ForwardError> {
        if f.body == RequestBody::None {
            return self.forward_head(client.request_head(), f, method, timeout).await;
        }
        let mut conn = self.send_fresh(client.request_head(), &self.with_host(f), timeout).await?;
        self.send_body(client, &mut conn, f.body).await?;
        let head = conn.read_response_head(method == Method::Head).await.map_err(|source| ForwardError::Upstream {
            addr: self.addr,
            source,
            retriable: !client.body_started(),
        })?;
        let body = UpstreamBody::new(conn, self.idle.clone(), &head, timeout);
        Ok((head, body))
    }

    /// [`Pool::forward`] of a request without a body (`f.body` is not
    /// read), from its head alone: what a background revalidation sends
    /// once the client it was made for has been answered.
    pub async fn forward_head(
        &self,
        request_head: &[u8],
        f: &ForwardRequest<'_>,
        method: Method,
        timeout: Duration,
    ) -> Result<(ResponseHead, UpstreamBody), ForwardError> {
        let head_request = method == Method::Head;
        let upstream = |source| ForwardError::Upstream { addr: self.addr, source, retriable: true };
        let f = ForwardRequest { body: RequestBody::None, ..self.with_host(f) };
        if method.is_idempotent() {
            if let Some(mut conn) = self.idle.take() {
                if !write_forwarded_request(&mut conn.req, request_head, &f) {
                    return Err(upstream(FetchError::BadResponse("unparsable request head")));
                }
                let head = match conn.send_req().await {
                    Ok(()) => conn.read_response_head(head_request).await,
                    Err(e) => Err(e),
                };
                match head {
                    Ok(head) => {
                        let body = UpstreamBody::new(conn, self.idle.clone(), &head, timeout);
                        return Ok((head, body));
                    }
                    // Stale keep-alive connection: the server closed it while idle.
                    Err(FetchError::Closed | FetchError::Io(_)) => {}
                    Err(e) => return Err(upstream(e)),
                }
            }
        }
        let mut conn = self.send_fresh(request_head, &f, timeout).await?;
        let head = conn.read_response_head(head_request).await.map_err(upstream)?;
        let body = UpstreamBody::new(conn, self.idle.clone(), &head, timeout);
        Ok((head, body))
    }

    /// Sends the head of `f` (rewritten from `request_head`) on a new connection.
    async fn send_fresh(
        &self,
        request_head: &[u8],
        f: &ForwardRequest<'_>,
        timeout: Duration,
    ) -> Result<ClientConn, ForwardError> {
        let upstream = |source| ForwardError::Upstream { addr: self.addr, source, retriable: true };
        let mut conn = ClientConn::connect(self.addr, timeout).await.map_err(upstream)?;
        if !write_forwarded_request(&mut conn.req, request_head, f) {
            return Err(upstream(FetchError::BadResponse("unparsable request head")));
        }
        conn.send_req().await.map_err(upstream)?;
        Ok(conn)
    }

    /// `f` with this upstream's `Host` where `f` names none.
    fn with_host<'a>(&'a self, f: &ForwardRequest<'a>) -> ForwardRequest<'a> {
        ForwardRequest { default_host: if f.default_host.is_empty() { &self.host } else { f.default_host }, ..*f }
    }

    /// Streams the client's request body to the upstream as it arrives.
    async fn send_body(
        &self,
        client: &mut ServerConn,
        conn: &mut ClientConn,
        body: RequestBody,
    ) -> Result<(), ForwardError> {
        let addr = self.addr;
        let failed = |e: std::io::Error| ForwardError::Upstream { addr, source: FetchError::Io(e), retriable: false };
        let chunked = body == RequestBody::Chunked;
        let mut line = [0u8; 18];
        loop {
            let piece = client.body_piece().await.map_err(ForwardError::Client)?;
            let Some(piece) = piece else { break };
            let n = piece.len();
            let s = conn.stream_mut();
            if chunked {
                s.write_all(chunk_size_line(n, &mut line)).await.map_err(failed)?;
                s.write_all(piece).await.map_err(failed)?;
                s.write_all(b"\r\n").await.map_err(failed)?;
            } else {
                s.write_all(piece).await.map_err(failed)?;
            }
            client.body_consume(n);
        }
        if chunked {
            conn.stream_mut().write_all(LAST_CHUNK).await.map_err(failed)?;
        }
        Ok(())
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
