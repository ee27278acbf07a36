//! The server side of one client connection: reads request heads within the
//! [`Limits`] and hands out their bodies as they arrive (for forwarding;
//! whatever is left is read past before the next request), writes whole
//! responses, and relays a streamed upstream response through a bounded
//! buffer with its end-to-end fields, counting bytes into the service's metrics.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::proxy::{
    chunk_size_line, write_relayed_response, ChunkStep, ChunkedDecoder, RelayResponse, RequestBody, ResponseFraming,
    LAST_CHUNK,
};
use super::{
    parse_request_head, reason, wait_true, BodyKind, BodySource, FetchError, HeadError, Limits, RequestHead,
    ResponseMeta, UpstreamBody, OBJECT_ID_HEADER, SERVED_BY_HEADER,
};

/// Most body bytes of a request read past (not forwarded) before the next
/// request; a longer one closes the connection after its response instead.
const MAX_DISCARD: u64 = 1 << 20;

/// The body of the request being handled, as far as it has been read.
#[derive(Debug, Clone, Copy)]
enum ReqBody {
    None,
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// How one hop relays an upstream's answer ([`ServerConn::relay_response`]).
#[derive(Debug, Clone, Copy)]
pub struct Relay<'a> {
    /// The answer's status (a 200's body counts as payload).
    pub status: u16,
    /// This hop's `Via` entry.
    pub via: &'a str,
    /// Add `x-dl7-served-by` when the upstream did not say.
    pub served_by: Option<u32>,
    /// This hop's own `X-Cache` verdict (a pass through a cache is a MISS).
    pub cache: Option<bool>,
    /// Keep the client connection open after the answer.
    pub keep_alive: bool,
    /// The client asked HEAD: no body is read or sent.
    pub head_only: bool,
}

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
    /// Bytes of `buf` that are the head of the request being handled (0: none);
    /// its body's unread bytes follow them.
    head_len: usize,
    body: ReqBody,
    /// A byte of the body has been taken (the request can no longer be sent twice).
    body_started: bool,
    /// The client waits for `100 Continue` before its body; `continued` once sent.
    expect_continue: bool,
    continued: bool,
    /// Each read of a request body waits at most this long.
    body_timeout: std::time::Duration,
    /// The request is HTTP/1.1 (it may get a chunked answer).
    http11: bool,
    /// The connection ends after this response (its body was delimited by the close).
    closing: bool,
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
            head_len: 0,
            body: ReqBody::None,
            body_started: false,
            expect_continue: false,
            continued: false,
            body_timeout: Limits::default().head_timeout,
            http11: true,
            closing: false,
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

    /// Reads the next request head, leaving its body and any pipelined bytes
    /// buffered: the head's bytes stay readable ([`ServerConn::request_head`])
    /// and its body is read with [`ServerConn::body_piece`] until the next
    /// call, which first reads past whatever of that body is left. The path
    /// (origin-form; absolute-form targets are reduced to their path) is
    /// written to `path`. Stops early when `shutdown` turns true while no
    /// request is partly received.
    pub async fn read_head(
        &mut self,
        limits: &Limits,
        path: &mut String,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<RequestHead, HeadError> {
        if self.closing {
            return Err(HeadError::Closed);
        }
        self.finish_request().await?;
        let deadline = Instant::now() + limits.head_timeout;
        loop {
            if !self.buf.is_empty() {
                if let Some((head, n, _)) = parse_request_head(&self.buf, path)? {
                    self.head_len = n;
                    self.body = match head.body {
                        RequestBody::None | RequestBody::Length(0) => ReqBody::None,
                        RequestBody::Length(l) => ReqBody::Length(l),
                        RequestBody::Chunked => ReqBody::Chunked(ChunkedDecoder::new()),
                    };
                    self.body_started = false;
                    self.expect_continue = head.expect_continue;
                    self.continued = false;
                    self.body_timeout = limits.head_timeout;
                    self.http11 = head.http11;
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

    /// The head of the request being handled, as the client sent it.
    pub fn request_head(&self) -> &[u8] {
        &self.buf[..self.head_len]
    }

    /// True once a byte of the request's body has been taken.
    pub fn body_started(&self) -> bool {
        self.body_started
    }

    /// Ends the request being handled: reads past what is left of its body
    /// (at most [`MAX_DISCARD`] bytes; a longer body, or one the client
    /// holds back until `100 Continue`, ends the connection instead) and
    /// drops its head from the buffer.
    async fn finish_request(&mut self) -> Result<(), HeadError> {
        if self.head_len == 0 {
            return Ok(());
        }
        if !matches!(self.body, ReqBody::None) {
            if self.expect_continue && !self.continued {
                return Err(HeadError::Closed);
            }
            let mut left = MAX_DISCARD;
            while let Some(piece) = self.body_piece().await? {
                let n = piece.len();
                if n as u64 > left {
                    return Err(HeadError::Closed);
                }
                left -= n as u64;
                self.body_consume(n);
            }
        }
        self.buf.drain(..self.head_len);
        self.head_len = 0;
        Ok(())
    }

    /// The next piece of the request's body, read from the client if none
    /// is buffered; `None` once the body is complete. Call
    /// [`ServerConn::body_consume`] with what was used. The first read of a
    /// client that sent `Expect: 100-continue` is preceded by `100 Continue`.
    pub async fn body_piece(&mut self) -> Result<Option<&[u8]>, HeadError> {
        loop {
            let unread = &self.buf[self.head_len..];
            match &mut self.body {
                ReqBody::None => return Ok(None),
                ReqBody::Length(left) => {
                    if !unread.is_empty() {
                        let n = unread.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                        return Ok(Some(&self.buf[self.head_len..self.head_len + n]));
                    }
                }
                ReqBody::Chunked(d) => match d.step(unread).map_err(|_| HeadError::Status(400))? {
                    ChunkStep::Skip(n) => {
                        self.buf.drain(self.head_len..self.head_len + n);
                        continue;
                    }
                    ChunkStep::Data(n) => return Ok(Some(&self.buf[self.head_len..self.head_len + n])),
                    ChunkStep::Done => {
                        self.body = ReqBody::None;
                        return Ok(None);
                    }
                    ChunkStep::More => {}
                },
            }
            if self.expect_continue && !self.continued {
                self.continued = true;
                self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.map_err(|_| HeadError::Closed)?;
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            match tokio::time::timeout(self.body_timeout, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(HeadError::Status(408)),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::Closed),
                Ok(Ok(n)) => self.count_in(n),
            }
        }
    }

    /// `n` bytes of the last [`ServerConn::body_piece`] were used.
    pub fn body_consume(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.body_started = true;
        self.buf.drain(self.head_len..self.head_len + n);
        match &mut self.body {
            ReqBody::Length(left) => {
                *left -= n as u64;
                if *left == 0 {
                    self.body = ReqBody::None;
                }
            }
            ReqBody::Chunked(d) => d.consumed(n),
            ReqBody::None => {}
        }
    }

    /// Ends the connection after the response being written (its body is
    /// delimited by the close).
    pub fn close_after(&mut self) {
        self.closing = true;
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

    /// Relays an upstream's answer: its head as [`write_relayed_response`]
    /// writes it (every end-to-end field, `Via` added), then its body as it
    /// arrives, straight from the upstream connection's buffer: the head and
    /// the first buffered bytes in one vectored write, then one write per
    /// buffer read. The service holds at most one buffer ([`RELAY_CHUNK`](super::RELAY_CHUNK))
    /// of this response, and TCP flow control slows the upstream when the
    /// client reads slowly. A `Content-Length` body goes as it is (exactly
    /// that many bytes are taken); a chunked or close-delimited one is sent
    /// chunked to an HTTP/1.1 client and delimited by the close to an older
    /// one. With `head_only` no body byte is read (drop `body` to close its
    /// connection). The body of a 200 counts in `payload_out` once its last
    /// chunk is being written (a response cut short is no payload). Returns
    /// the body bytes written.
    pub async fn relay_response(&mut self, body: &mut UpstreamBody, r: &Relay<'_>) -> Result<u64, RelayError> {
        let framing = if r.head_only || body.kind() == BodyKind::None {
            ResponseFraming::Bodiless
        } else if let (BodyKind::Length, Some(n)) = (body.kind(), body.length()) {
            ResponseFraming::Length(n)
        } else if self.http11 {
            ResponseFraming::Chunked
        } else {
            ResponseFraming::Close
        };
        let rr =
            RelayResponse { via: r.via, served_by: r.served_by, cache: r.cache, framing, keep_alive: r.keep_alive };
        if !write_relayed_response(&mut self.head_buf, body.raw_head(), &rr) {
            return Err(RelayError::UpstreamBeforeHead(FetchError::BadResponse("unparsable head")));
        }
        if framing == ResponseFraming::Close {
            self.closing = true;
        }
        self.responses += 1;
        let status = r.status;
        match framing {
            ResponseFraming::Bodiless | ResponseFraming::Length(0) => {
                self.count_out(self.head_buf.len() as u64, 0);
                self.stream.write_all(&self.head_buf).await.map_err(RelayError::Client)?;
                return Ok(0);
            }
            ResponseFraming::Chunked | ResponseFraming::Close => {
                return self.relay_unknown_length(status, body, framing).await
            }
            ResponseFraming::Length(_) => {}
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

    /// The rest of [`ServerConn::relay_response`] for a body of unknown
    /// length (chunked, or delimited by the upstream's close), sent chunked
    /// or delimited by this connection's close.
    async fn relay_unknown_length(
        &mut self,
        status: u16,
        body: &mut UpstreamBody,
        framing: ResponseFraming,
    ) -> Result<u64, RelayError> {
        let chunked = framing == ResponseFraming::Chunked;
        let mut head = self.head_buf.len();
        let mut sent = 0u64;
        let mut line = [0u8; 18];
        loop {
            body.fill().await.map_err(if head > 0 {
                RelayError::UpstreamBeforeHead
            } else {
                RelayError::UpstreamAborted
            })?;
            let chunk = body.buffered();
            let n = chunk.len();
            if n == 0 {
                // Complete: the last chunk ends it (or the close will).
                let tail: &[u8] = if chunked { LAST_CHUNK } else { b"" };
                self.count_out(head as u64, 0);
                self.count_plain(tail.len() as u64);
                if status == 200 {
                    self.count_payload(sent);
                }
                write_parts(&mut self.stream, &[&self.head_buf[..head], tail]).await.map_err(RelayError::Client)?;
                return Ok(sent);
            }
            self.count_relayed_in(n as u64);
            sent += n as u64;
            let size: &[u8] = if chunked { chunk_size_line(n, &mut line) } else { b"" };
            let crlf: &[u8] = if chunked { b"\r\n" } else { b"" };
            write_parts(&mut self.stream, &[&self.head_buf[..head], size, chunk, crlf])
                .await
                .map_err(RelayError::Client)?;
            self.count_out(head as u64, n as u64);
            self.count_plain((size.len() + crlf.len()) as u64);
            body.consume(n);
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

/// Writes every part, in order, with vectored writes (the relay of a body of
/// unknown length: head, chunk-size line, data, CRLF in one segment when they fit).
async fn write_parts(s: &mut TcpStream, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: [std::io::IoSlice<'_>; 4] = [std::io::IoSlice::new(&[]); 4];
    let n = parts.len().min(4);
    for (slot, p) in slices.iter_mut().zip(parts) {
        *slot = std::io::IoSlice::new(p);
    }
    let mut bufs = &mut slices[..n];
    std::io::IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let w = s.write_vectored(bufs).await?;
        if w == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut bufs, w);
    }
    Ok(())
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
    out.extend_from_slice(b"\r\n");
    if let Some(stored) = meta.stored {
        // A stored response's own fields (its type, id and coding among them), as received.
        out.extend_from_slice(stored);
    } else {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(meta.content_type.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // A 204 has none (RFC 9110 section 8.6), and a 304 from a cache has no body to measure.
    if status != 204 && status != 304 {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(num.format(len).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let object_id = if meta.stored.is_some() { None } else { meta.object_id };
    for (name, value) in [(OBJECT_ID_HEADER, object_id), (SERVED_BY_HEADER, meta.served_by), ("Age", meta.age)] {
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
    if meta.gzip && meta.stored.is_none() {
        out.extend_from_slice(b"Content-Encoding: gzip\r\n");
    }
    if let Some(via) = meta.via {
        out.extend_from_slice(b"Via: ");
        out.extend_from_slice(via.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(meta.extra);
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
