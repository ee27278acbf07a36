//! The server side of one client connection: reads request heads within the
//! [`Limits`], writes whole responses, and relays a streamed upstream response
//! through a bounded buffer, counting bytes into the service's metrics.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{
    parse_request_head, reason, wait_true, BodySource, FetchError, HeadError, Limits, RequestHead, ResponseMeta,
    UpstreamBody, OBJECT_ID_HEADER, SERVED_BY_HEADER,
};

/// The server side of one client connection: a socket and its read buffer.
pub struct ServerConn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Responses written so far; a connection that never sent a byte and
    /// times out gets 408, an idle keep-alive one is closed quietly.
    responses: u64,
    /// Bytes read from the client.
    pub bytes_in: u64,
    /// Bytes written to the client.
    pub bytes_out: u64,
    head_buf: Vec<u8>,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// The pipe of zero-copy relays, made on first use, dropped after a failure.
    #[cfg(all(feature = "splice", target_os = "linux"))]
    pipe: Option<super::splice::Pipe>,
}

impl ServerConn {
    /// Wraps an accepted client socket (sets `TCP_NODELAY`).
    pub fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        Self {
            stream,
            buf: Vec::with_capacity(4096),
            responses: 0,
            bytes_in: 0,
            bytes_out: 0,
            head_buf: Vec::with_capacity(512),
            metrics: None,
            #[cfg(all(feature = "splice", target_os = "linux"))]
            pipe: None,
        }
    }

    /// Also adds every byte read and written to `metrics` as it happens.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count_in(&mut self, n: usize) {
        self.bytes_in += n as u64;
        if let Some(m) = &self.metrics {
            crate::metrics::Metrics::add(&m.bytes_in, n as u64);
        }
    }

    /// The next request head of a served connection, or `None` when the
    /// connection is done: the client closed it, or its head was bad, in
    /// which case the error status has been answered and counted as a client
    /// error. Every service's request loop starts here.
    pub async fn next_request(
        &mut self,
        limits: &Limits,
        path: &mut String,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<RequestHead> {
        match self.read_head(limits, path, shutdown).await {
            Ok(head) => Some(head),
            Err(HeadError::Closed) => None,
            Err(HeadError::Status(status)) => {
                if let Some(m) = &self.metrics {
                    crate::metrics::Metrics::add(&m.client_errors, 1);
                }
                let _ = self.write_error(status).await;
                None
            }
        }
    }

    /// Reads the next request head, leaving any pipelined bytes buffered.
    /// The path (origin-form; absolute-form targets are reduced to their path)
    /// is written to `path`. Stops early when `shutdown` turns true while no
    /// request is partly received.
    pub async fn read_head(
        &mut self,
        limits: &Limits,
        path: &mut String,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<RequestHead, HeadError> {
        let deadline = Instant::now() + limits.head_timeout;
        loop {
            if !self.buf.is_empty() {
                if let Some((head, n, body_len)) = parse_request_head(&self.buf, path)? {
                    self.buf.drain(..n);
                    if body_len > 0 {
                        self.discard_body(body_len, deadline).await?;
                    }
                    return Ok(head);
                }
                if self.buf.len() >= limits.max_head {
                    let line_done = self.buf.contains(&b'\n');
                    return Err(HeadError::Status(if line_done { 431 } else { 414 }));
                }
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(4096);
            }
            let room = limits.max_head.saturating_sub(self.buf.len()).max(1);
            let idle = self.buf.is_empty();
            let (stream, buf) = (&mut self.stream, &mut self.buf);
            let read = async move {
                let mut limited = stream.take(room as u64);
                limited.read_buf(buf).await
            };
            tokio::select! {
                r = tokio::time::timeout_at(deadline, read) => match r {
                    Err(_) => {
                        // A keep-alive connection that went idle is closed quietly;
                        // a started head (or a silent new connection) gets 408.
                        return Err(if idle && self.responses > 0 { HeadError::Closed } else { HeadError::Status(408) });
                    }
                    Ok(Ok(0)) => {
                        return Err(if idle { HeadError::Closed } else { HeadError::Status(400) });
                    }
                    Ok(Ok(n)) => self.count_in(n),
                    Ok(Err(_)) => return Err(HeadError::Closed),
                },
                _ = wait_true(shutdown), if idle => return Err(HeadError::Closed),
            }
        }
    }

    async fn discard_body(&mut self, mut len: u64, deadline: Instant) -> Result<(), HeadError> {
        let buffered = (self.buf.len() as u64).min(len);
        self.buf.drain(..buffered as usize);
        len -= buffered;
        let mut scratch = [0u8; 4096];
        while len > 0 {
            let want = (len as usize).min(scratch.len());
            match tokio::time::timeout_at(deadline, self.stream.read(&mut scratch[..want])).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::Closed),
                Ok(Ok(n)) => {
                    self.count_in(n);
                    len -= n as u64;
                }
                Err(_) => return Err(HeadError::Status(408)),
            }
        }
        Ok(())
    }

    /// Writes one response. `body` is sent unless `head_only`; the head
    /// always carries its `Content-Length`. Returns bytes written.
    pub async fn write_response(
        &mut self,
        status: u16,
        meta: &ResponseMeta<'_>,
        body: &[u8],
        keep_alive: bool,
        head_only: bool,
    ) -> std::io::Result<u64> {
        self.head_buf.clear();
        write_response_head(&mut self.head_buf, status, meta, body.len() as u64, keep_alive);
        let send_body = !head_only && !body.is_empty();
        let written = self.head_buf.len() as u64 + if send_body { body.len() as u64 } else { 0 };
        // This write ends the response: count it first (see `count_out`).
        self.responses += 1;
        self.count_out(written, 0);
        if send_body {
            write_two(&mut self.stream, &self.head_buf, body).await?;
        } else {
            self.stream.write_all(&self.head_buf).await?;
        }
        Ok(written)
    }

    /// Writes the head of a streamed upstream response, then its body as it
    /// arrives, straight from the upstream connection's buffer: the head and
    /// the first buffered bytes in one vectored write, then one write per
    /// buffer read. The service holds at most one buffer ([`RELAY_CHUNK`](super::RELAY_CHUNK))
    /// of this response, and TCP flow control slows the upstream when the
    /// client reads slowly. Exactly `Content-Length` bytes are taken from the
    /// upstream. With `head_only` no body byte is read (drop `body` to close
    /// its connection). The body of a 200 counts in `payload_out` once its
    /// last chunk is being written (a response cut short is no payload).
    /// Returns the body bytes written.
    pub async fn relay_response(
        &mut self,
        status: u16,
        meta: &ResponseMeta<'_>,
        body: &mut UpstreamBody,
        keep_alive: bool,
        head_only: bool,
    ) -> Result<u64, RelayError> {
        self.head_buf.clear();
        write_response_head(&mut self.head_buf, status, meta, body.remaining(), keep_alive);
        self.responses += 1;
        if head_only || body.remaining() == 0 {
            self.count_out(self.head_buf.len() as u64, 0);
            self.stream.write_all(&self.head_buf).await.map_err(RelayError::Client)?;
            return Ok(0);
        }
        let mut head = self.head_buf.len() as u64;
        let mut sent = 0;
        loop {
            // What the first buffer did not hold goes through the pipe, if the kernel lets it.
            #[cfg(all(feature = "splice", target_os = "linux"))]
            if head == 0 && body.buffered().is_empty() {
                if let Some(total) = self.splice_rest(status, body, sent).await? {
                    return Ok(total);
                }
            }
            body.fill().await.map_err(if head > 0 {
                RelayError::UpstreamBeforeHead
            } else {
                RelayError::UpstreamAborted
            })?;
            let chunk = body.buffered();
            let n = chunk.len() as u64;
            self.count_relayed_in(n);
            sent += n;
            let last = body.remaining() == n;
            // The write that ends the response is counted before it, every
            // other one after it (see `count_out`).
            if last {
                self.count_out(head, n);
                if status == 200 {
                    self.count_payload(sent);
                }
            }
            let written = if head > 0 {
                write_two(&mut self.stream, &self.head_buf, chunk).await
            } else {
                self.stream.write_all(chunk).await
            };
            written.map_err(RelayError::Client)?;
            body.consume(n as usize);
            if last {
                return Ok(sent);
            }
            self.count_out(head, n);
            head = 0;
        }
    }

    /// Relays the rest of `body` with splice(2) through this connection's
    /// pipe, counting as the buffered loop does; `Ok(None)` when the kernel
    /// refuses before a byte moved (the caller copies instead).
    #[cfg(all(feature = "splice", target_os = "linux"))]
    async fn splice_rest(
        &mut self,
        status: u16,
        body: &mut UpstreamBody,
        mut sent: u64,
    ) -> Result<Option<u64>, RelayError> {
        use super::splice;
        let pipe = match self.pipe.take() {
            Some(p) => p,
            None => match splice::Pipe::new() {
                Ok(p) => p,
                Err(_) => return Ok(None),
            },
        };
        let mut first = true;
        while body.remaining() > 0 {
            let want = body.remaining().min(super::RELAY_CHUNK as u64) as usize;
            let timeout = body.read_timeout;
            let Some(up) = body.socket() else { return Err(RelayError::UpstreamAborted(FetchError::Closed)) };
            let n = match tokio::time::timeout(timeout, splice::fill(up, &pipe, want)).await {
                Ok(Ok(n)) if n > 0 => n,
                Ok(Err(e)) if first && splice::unsupported(&e) => return Ok(None),
                r => {
                    body.fail();
                    return Err(RelayError::UpstreamAborted(match r {
                        Err(_) => FetchError::Timeout,
                        Ok(Err(e)) => FetchError::Io(e),
                        Ok(Ok(_)) => FetchError::Closed,
                    }));
                }
            };
            first = false;
            let n64 = n as u64;
            self.count_relayed_in(n64);
            sent += n64;
            let last = body.remaining() == n64;
            // As in the buffered loop: the write that ends the response is counted before it.
            if last {
                self.count_out(0, n64);
                if status == 200 {
                    self.count_payload(sent);
                }
            }
            if let Err(e) = splice::drain(&self.stream, &pipe, n).await {
                body.fail();
                return Err(RelayError::Client(e));
            }
            body.advance_spliced(n64);
            if !last {
                self.count_out(0, n64);
            }
        }
        self.pipe = Some(pipe);
        Ok(Some(sent))
    }

    /// Writes a response whose body comes from `body` (generated as it is
    /// sent, or arriving from the origin for several readers), copied to the
    /// client through `buf` one chunk at a time: this connection holds at
    /// most `buf.len()` body bytes of it. Bytes from another server
    /// ([`BodySource::relayed`]) count in the relay counters; the rest of
    /// the accounting is [`ServerConn::relay_response`]'s.
    pub async fn stream_response(
        &mut self,
        status: u16,
        meta: &ResponseMeta<'_>,
        body: &mut impl BodySource,
        keep_alive: bool,
        head_only: bool,
        buf: &mut [u8],
    ) -> Result<u64, RelayError> {
        self.head_buf.clear();
        write_response_head(&mut self.head_buf, status, meta, body.remaining(), keep_alive);
        self.responses += 1;
        let relayed = body.relayed();
        if head_only || body.remaining() == 0 {
            self.count_plain(self.head_buf.len() as u64);
            self.stream.write_all(&self.head_buf).await.map_err(RelayError::Client)?;
            return Ok(0);
        }
        let mut head = self.head_buf.len() as u64;
        let mut sent = 0;
        loop {
            let failed = if head > 0 { RelayError::UpstreamBeforeHead } else { RelayError::UpstreamAborted };
            let n = match body.read_chunk(buf).await {
                Ok(0) => return Err(failed(FetchError::Closed)),
                Ok(n) => n as u64,
                Err(e) => return Err(failed(e)),
            };
            if relayed {
                self.count_relayed_in(n);
            }
            sent += n;
            let last = body.remaining() == 0;
            // The write that ends the response is counted before it, every other one after it.
            if last {
                self.count_streamed(head, n, relayed);
                if status == 200 {
                    self.count_payload(sent);
                }
            }
            let written = if head > 0 {
                write_two(&mut self.stream, &self.head_buf, &buf[..n as usize]).await
            } else {
                self.stream.write_all(&buf[..n as usize]).await
            };
            written.map_err(RelayError::Client)?;
            if last {
                return Ok(sent);
            }
            self.count_streamed(head, n, relayed);
            head = 0;
        }
    }

    fn count_streamed(&mut self, head: u64, body: u64, relayed: bool) {
        if relayed {
            self.count_out(head, body);
        } else {
            self.count_plain(head + body);
        }
    }

    /// Counts bytes written to the client that were not relayed.
    fn count_plain(&mut self, n: u64) {
        self.bytes_out += n;
        if let Some(m) = &self.metrics {
            crate::metrics::Metrics::add(&m.bytes_out, n);
        }
    }

    fn count_relayed_in(&self, n: u64) {
        if let Some(m) = &self.metrics {
            crate::metrics::Metrics::add(&m.relay_upstream_bytes, n);
        }
    }

    /// Counts `head` and relayed `body` bytes written to the client.
    ///
    /// A write that ends a response is counted *before* it is issued: once
    /// the client holds the whole response, its bytes are in the counters,
    /// so whoever reads them after the client finished (a test, a run's last
    /// snapshot) sees final totals; a write that then fails still counts (the
    /// client is gone). A write followed by more of the same response is
    /// counted after it, so `relay_upstream_bytes - relay_client_bytes` is
    /// the body a relay holds while a slow client blocks it.
    fn count_out(&mut self, head: u64, body: u64) {
        self.bytes_out += head + body;
        if let Some(m) = &self.metrics {
            crate::metrics::Metrics::add(&m.bytes_out, head + body);
            crate::metrics::Metrics::add(&m.relay_client_bytes, body);
        }
    }

    fn count_payload(&self, n: u64) {
        if let Some(m) = &self.metrics {
            crate::metrics::Metrics::add(&m.payload_out, n);
        }
    }

    /// Writes a response with a short text body (`503 Service Unavailable`)
    /// that keeps the connection when `keep_alive`: for answers after which
    /// the next request may well succeed (no server left for this one).
    pub async fn write_status(&mut self, status: u16, keep_alive: bool) -> std::io::Result<u64> {
        let body = format!("{} {}\n", status, reason(status));
        let meta = ResponseMeta { content_type: "text/plain", ..ResponseMeta::default() };
        self.write_response(status, &meta, body.as_bytes(), keep_alive, false).await
    }

    /// Writes an error response with a short text body and `Connection: close`.
    pub async fn write_error(&mut self, status: u16) -> std::io::Result<u64> {
        let body = format!("{} {}\n", status, reason(status));
        let meta = ResponseMeta { content_type: "text/plain", ..ResponseMeta::default() };
        self.write_response(status, &meta, body.as_bytes(), false, false).await
    }

    /// The underlying socket, for services that stop speaking HTTP.
    pub fn into_inner(self) -> TcpStream {
        self.stream
    }
}

/// Writes `a` then `b` with vectored writes: one segment on the wire for
/// small responses, and no copy of the body into the head buffer.
async fn write_two(s: &mut TcpStream, mut a: &[u8], mut b: &[u8]) -> std::io::Result<()> {
    while !a.is_empty() {
        let n = s.write_vectored(&[std::io::IoSlice::new(a), std::io::IoSlice::new(b)]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        if n < a.len() {
            a = &a[n..];
        } else {
            b = &b[n - a.len()..];
            a = &[];
        }
    }
    s.write_all(b).await
}

/// Appends a response head to `out`: plain byte copies and `itoa`'s
/// integer formatting, no `core::fmt` machinery (it was 8% of a relayed
/// request's user-space instructions).
fn write_response_head(out: &mut Vec<u8>, status: u16, meta: &ResponseMeta, len: u64, keep_alive: bool) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(num.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(meta.content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(num.format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in [(OBJECT_ID_HEADER, meta.object_id), (SERVED_BY_HEADER, meta.served_by)] {
        if let Some(v) = value {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(num.format(v).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some(hit) = meta.cache_hit {
        out.extend_from_slice(if hit { b"X-Cache: HIT\r\n" } else { b"X-Cache: MISS\r\n" });
    }
    if meta.gzip {
        out.extend_from_slice(b"Content-Encoding: gzip\r\n");
    }
    out.extend_from_slice(if keep_alive { b"Connection: keep-alive\r\n\r\n" } else { b"Connection: close\r\n\r\n" });
}

/// Why [`ServerConn::relay_response`] stopped before the whole response was sent.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The upstream failed before any byte reached the client: a 502 can still be sent.
    #[error("upstream failed before the head was sent: {0}")]
    UpstreamBeforeHead(FetchError),
    /// The upstream failed after the head was sent: the client connection must be closed.
    #[error("upstream failed mid-body: {0}")]
    UpstreamAborted(FetchError),
    /// Writing to the client failed (it went away).
    #[error("client write: {0}")]
    Client(std::io::Error),
}
