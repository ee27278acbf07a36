//! HTTP/1.1 for the services: request-head reading with limits on the server
//! side, a keep-alive client connection, and a small keep-alive pool for
//! node -> origin and node -> owner fetches.
//!
//! Heads are parsed with `httparse` only; this module never hand-parses HTTP
//! syntax. Bodies are `Content-Length` only: every dl7 service sends one, and
//! a request with `Transfer-Encoding` is refused with 501. This module knows
//! nothing about caches, policies or catalogs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Buffer a relay copies a streamed response body through: the most body
/// bytes of one response a front end or forwarding node holds in memory.
pub const RELAY_CHUNK: usize = 32 * 1024;
/// Largest request or response head accepted, request line included.
pub const MAX_HEAD: usize = 16 * 1024;
/// Header a node or front end sets when it forwards a request to the owner:
/// the receiver must serve it locally, never dispatch it again.
pub const HOP_HEADER: &str = "x-dl7-hop";
/// Response header carrying the catalog object id (set by the origin).
pub const OBJECT_ID_HEADER: &str = "x-dl7-object-id";
/// Response header carrying the index of the node that served the object.
pub const SERVED_BY_HEADER: &str = "x-dl7-served-by";
/// Most headers a head may carry; more is answered with 431.
const MAX_HEADERS: usize = 64;
/// Largest request body a service reads (and discards); more gets 413.
const MAX_REQUEST_BODY: u64 = 64 * 1024;

/// Per-connection limits shared by every service.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head in bytes (431, or 414 when the request line alone is longer).
    pub max_head: usize,
    /// Time allowed to receive a complete request head (408 after it).
    pub head_timeout: Duration,
    /// Deadline for one fetch from an origin, owner or node (502 after it).
    pub upstream_timeout: Duration,
    /// Most client connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time a shutting-down service waits for in-flight requests.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head: MAX_HEAD,
            head_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(2),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Request method, as far as the services care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the head of the GET response, no body.
    Head,
    /// Anything else (answered 405).
    Other,
}

/// A parsed request head; the target path is written to the caller's buffer.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead {
    /// The request method.
    pub method: Method,
    /// The client wants the connection kept open after this response.
    pub keep_alive: bool,
    /// The request carries [`HOP_HEADER`]: serve locally, do not dispatch.
    pub hop: bool,
}

/// Why no request head could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The peer closed (or the service is shutting down) between requests: close quietly.
    Closed,
    /// Answer with this status and close.
    Status(u16),
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
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let head = interpret_request(&req, path)?;
                        let body_len = request_body_len(&req)?;
                        self.buf.drain(..n);
                        if body_len > 0 {
                            self.discard_body(body_len, deadline).await?;
                        }
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Err(HeadError::Status(431)),
                    Err(_) => return Err(HeadError::Status(400)),
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
        let mut written = self.head_buf.len() as u64;
        if !head_only && !body.is_empty() {
            write_two(&mut self.stream, &self.head_buf, body).await?;
            written += body.len() as u64;
        } else {
            self.stream.write_all(&self.head_buf).await?;
        }
        self.responses += 1;
        self.bytes_out += written;
        if let Some(m) = &self.metrics {
            crate::metrics::Metrics::add(&m.bytes_out, written);
        }
        Ok(written)
    }

    /// Writes the head of a streamed upstream response, then copies its body
    /// from `body` to the client through `buf`, one chunk at a time: the
    /// service holds at most `buf.len()` body bytes of this response, and
    /// TCP flow control slows the upstream when the client reads slowly.
    /// Exactly `Content-Length` bytes are taken from the upstream. With
    /// `head_only` no body byte is read (drop `body` to close its connection).
    /// Returns the body bytes written.
    pub async fn relay_response(
        &mut self,
        status: u16,
        meta: &ResponseMeta<'_>,
        body: &mut UpstreamBody,
        keep_alive: bool,
        head_only: bool,
        buf: &mut [u8],
    ) -> Result<u64, RelayError> {
        self.head_buf.clear();
        write_response_head(&mut self.head_buf, status, meta, body.remaining(), keep_alive);
        if head_only || body.remaining() == 0 {
            self.stream.write_all(&self.head_buf).await.map_err(RelayError::Client)?;
            self.responses += 1;
            self.count_out(self.head_buf.len() as u64, 0);
            return Ok(0);
        }
        // The first chunk goes out with the head, so a small response is one write.
        let n = body.read_chunk(buf).await.map_err(RelayError::UpstreamBeforeHead)?;
        self.count_relayed_in(n as u64);
        write_two(&mut self.stream, &self.head_buf, &buf[..n]).await.map_err(RelayError::Client)?;
        self.responses += 1;
        self.count_out(self.head_buf.len() as u64, n as u64);
        let mut sent = n as u64;
        while body.remaining() > 0 {
            let n = body.read_chunk(buf).await.map_err(RelayError::UpstreamAborted)?;
            self.count_relayed_in(n as u64);
            self.stream.write_all(&buf[..n]).await.map_err(RelayError::Client)?;
            self.count_out(0, n as u64);
            sent += n as u64;
        }
        Ok(sent)
    }

    fn count_relayed_in(&self, n: u64) {
        if let Some(m) = &self.metrics {
            crate::metrics::Metrics::add(&m.relay_upstream_bytes, n);
        }
    }

    fn count_out(&mut self, head: u64, body: u64) {
        self.bytes_out += head + body;
        if let Some(m) = &self.metrics {
            crate::metrics::Metrics::add(&m.bytes_out, head + body);
            crate::metrics::Metrics::add(&m.relay_client_bytes, body);
        }
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

/// Resolves when the watched flag is true (immediately if it already is).
pub async fn wait_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        // Sender gone: nobody will ever ask us to stop through this channel.
        std::future::pending::<()>().await;
    }
}

fn interpret_request(req: &httparse::Request, path: &mut String) -> Result<RequestHead, HeadError> {
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    let target = req.path.ok_or(HeadError::Status(400))?;
    let target = origin_form(target).ok_or(HeadError::Status(400))?;
    path.clear();
    path.push_str(target);
    let http11 = req.version == Some(1);
    let mut keep_alive = http11;
    let mut hop = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value;
            if contains_token(v, b"close") {
                keep_alive = false;
            } else if contains_token(v, b"keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case(HOP_HEADER) {
            hop = true;
        }
    }
    Ok(RequestHead { method, keep_alive, hop })
}

fn request_body_len(req: &httparse::Request) -> Result<u64, HeadError> {
    let mut len = 0u64;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HeadError::Status(501));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            len = parse_decimal(h.value).ok_or(HeadError::Status(400))?;
        }
    }
    if len > MAX_REQUEST_BODY {
        return Err(HeadError::Status(413));
    }
    Ok(len)
}

/// `/path` stays; `http://host/path` becomes `/path`; anything else is malformed.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let rest = target.strip_prefix("http://").or_else(|| target.strip_prefix("https://"))?;
    Some(rest.find('/').map_or("/", |i| &rest[i..]))
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// What a response says about its body besides the bytes.
#[derive(Debug, Clone, Copy)]
pub struct ResponseMeta<'a> {
    /// `Content-Type`.
    pub content_type: &'a str,
    /// Sent as [`OBJECT_ID_HEADER`].
    pub object_id: Option<u32>,
    /// Sent as [`SERVED_BY_HEADER`].
    pub served_by: Option<u32>,
    /// The body is gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: bool,
}

impl Default for ResponseMeta<'_> {
    fn default() -> Self {
        Self { content_type: "application/octet-stream", object_id: None, served_by: None, gzip: false }
    }
}

/// The reason phrase of the status codes dl7 sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn write_response_head(out: &mut Vec<u8>, status: u16, meta: &ResponseMeta, len: u64, keep_alive: bool) {
    use std::io::Write;
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        status,
        reason(status),
        meta.content_type,
        len
    );
    if let Some(id) = meta.object_id {
        let _ = write!(out, "{OBJECT_ID_HEADER}: {id}\r\n");
    }
    if let Some(by) = meta.served_by {
        let _ = write!(out, "{SERVED_BY_HEADER}: {by}\r\n");
    }
    if meta.gzip {
        out.extend_from_slice(b"Content-Encoding: gzip\r\n");
    }
    out.extend_from_slice(if keep_alive { b"Connection: keep-alive\r\n\r\n" } else { b"Connection: close\r\n\r\n" });
}

/// A parsed response head, with the dl7 headers the services use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Body length.
    pub content_length: u64,
    /// The server keeps the connection open.
    pub keep_alive: bool,
    /// `Content-Type` mapped back to the catalog's type (`Other` if unknown).
    pub content_type: dl7_traces::ContentType,
    /// [`OBJECT_ID_HEADER`], if sent.
    pub object_id: Option<u32>,
    /// [`SERVED_BY_HEADER`], if sent.
    pub served_by: Option<u32>,
    /// `Content-Encoding: gzip`.
    pub gzip: bool,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The TCP connect failed (refused, unreachable).
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Where we tried to connect.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
    /// A read or write failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed before the response was complete.
    #[error("connection closed before a complete response")]
    Closed,
    /// The response head or length is unusable.
    #[error("malformed response: {0}")]
    BadResponse(&'static str),
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

/// The MIME type sent by the origin back to the catalog's content type.
pub fn content_type_from_mime(mime: &[u8]) -> dl7_traces::ContentType {
    use dl7_traces::ContentType as C;
    [C::Html, C::Gif, C::Jpeg, C::Png, C::Css, C::Js]
        .into_iter()
        .find(|c| c.mime().as_bytes().eq_ignore_ascii_case(mime.trim_ascii()))
        .unwrap_or(C::Other)
}

/// The client side of one keep-alive connection.
pub struct ClientConn {
    stream: TcpStream,
    buf: Vec<u8>,
    req: Vec<u8>,
    /// Bytes read from the server (heads and bodies).
    pub bytes_in: u64,
}

impl ClientConn {
    /// Connects with a deadline.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, FetchError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(FetchError::Timeout),
            Ok(Err(source)) => return Err(FetchError::Connect { addr, source }),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(Self { stream, buf: Vec::with_capacity(8192), req: Vec::with_capacity(256), bytes_in: 0 })
    }

    /// Sends `GET path` (keep-alive), with [`HOP_HEADER`] when `hop`.
    pub async fn send_get(&mut self, path: &str, hop: bool) -> Result<(), FetchError> {
        self.req.clear();
        self.req.extend_from_slice(b"GET ");
        self.req.extend_from_slice(path.as_bytes());
        self.req.extend_from_slice(b" HTTP/1.1\r\nHost: dl7\r\n");
        if hop {
            self.req.extend_from_slice(HOP_HEADER.as_bytes());
            self.req.extend_from_slice(b": 1\r\n");
        }
        self.req.extend_from_slice(b"\r\n");
        self.stream.write_all(&self.req).await?;
        Ok(())
    }

    /// Sends raw bytes (tests and fault injection).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), FetchError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Reads one response; its body (up to `max_body` bytes) replaces `body`'s contents.
    pub async fn read_response(&mut self, body: &mut Vec<u8>, max_body: u64) -> Result<ResponseHead, FetchError> {
        let head = self.read_response_head().await?;
        if head.content_length > max_body {
            return Err(FetchError::BadResponse("body larger than allowed"));
        }
        let len = head.content_length as usize;
        body.clear();
        body.reserve(len);
        let take = self.buf.len().min(len);
        body.extend_from_slice(&self.buf[..take]);
        self.buf.drain(..take);
        while body.len() < len {
            let mut limited = (&mut self.stream).take((len - body.len()) as u64);
            let n = limited.read_buf(body).await?;
            if n == 0 {
                return Err(FetchError::Closed);
            }
            self.bytes_in += n as u64;
        }
        Ok(head)
    }

    /// Reads one response head, leaving the body (or its start) unread.
    async fn read_response_head(&mut self) -> Result<ResponseHead, FetchError> {
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let head = interpret_response(&resp)?;
                        self.buf.drain(..n);
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(FetchError::BadResponse("unparsable head")),
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(FetchError::BadResponse("head over 16 KiB"));
                }
            }
            self.buf.reserve(4096);
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(FetchError::Closed);
            }
            self.bytes_in += n as u64;
        }
    }

    /// One GET round trip.
    pub async fn get(&mut self, path: &str, hop: bool, body: &mut Vec<u8>) -> Result<ResponseHead, FetchError> {
        self.send_get(path, hop).await?;
        self.read_response(body, u64::MAX).await
    }

    /// Reads whatever the server sends until it closes (tests).
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>, FetchError> {
        let mut out = std::mem::take(&mut self.buf);
        self.stream.read_to_end(&mut out).await?;
        Ok(out)
    }
}

fn interpret_response(resp: &httparse::Response) -> Result<ResponseHead, FetchError> {
    let status = resp.code.ok_or(FetchError::BadResponse("no status"))?;
    let mut head = ResponseHead {
        status,
        content_length: 0,
        keep_alive: resp.version == Some(1),
        content_type: dl7_traces::ContentType::Other,
        object_id: None,
        served_by: None,
        gzip: false,
    };
    let mut has_length = false;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = parse_decimal(h.value).ok_or(FetchError::BadResponse("bad Content-Length"))?;
            has_length = true;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(FetchError::BadResponse("Transfer-Encoding is not supported"));
        } else if name.eq_ignore_ascii_case("connection") {
            if contains_token(h.value, b"close") {
                head.keep_alive = false;
            } else if contains_token(h.value, b"keep-alive") {
                head.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = content_type_from_mime(h.value);
        } else if name.eq_ignore_ascii_case(OBJECT_ID_HEADER) {
            head.object_id = parse_decimal(h.value).and_then(|v| u32::try_from(v).ok());
        } else if name.eq_ignore_ascii_case(SERVED_BY_HEADER) {
            head.served_by = parse_decimal(h.value).and_then(|v| u32::try_from(v).ok());
        } else if name.eq_ignore_ascii_case("content-encoding") {
            head.gzip = contains_token(h.value, b"gzip");
        }
    }
    if !has_length {
        return Err(FetchError::BadResponse("no Content-Length"));
    }
    Ok(head)
}

/// A pool of idle keep-alive connections to one upstream address.
pub struct Pool {
    addr: SocketAddr,
    idle: Arc<Idle>,
}

/// The idle connections of a [`Pool`], shared with the [`UpstreamBody`]s that
/// give their connection back once the body is fully read.
struct Idle {
    conns: Mutex<Vec<ClientConn>>,
    max: usize,
}

impl Idle {
    fn put_back(&self, conn: ClientConn, keep_alive: bool) {
        if !keep_alive || !conn.buf.is_empty() {
            return;
        }
        let mut idle = self.conns.lock().expect("pool lock");
        if idle.len() < self.max {
            idle.push(conn);
        }
    }
}

/// The body of a streamed upstream response, still on its connection.
///
/// Read it with [`UpstreamBody::read_chunk`] (exactly `Content-Length` bytes
/// in all). The connection goes back to its pool only when the whole body
/// has been read; dropping an unfinished body closes the connection, since
/// the rest of the body would otherwise be read as the next response.
pub struct UpstreamBody {
    conn: Option<ClientConn>,
    idle: Arc<Idle>,
    remaining: u64,
    keep_alive: bool,
    read_timeout: Duration,
}

impl UpstreamBody {
    /// Body bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Reads the next part of the body (at most `buf.len()` bytes, whatever
    /// has arrived) into `buf`; `Ok(0)` once the body is complete. Each read
    /// waits at most the pool's timeout. After an error the connection is
    /// closed and every later call fails.
    pub async fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize, FetchError> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let conn = self.conn.as_mut().ok_or(FetchError::Closed)?;
        let want = (self.remaining.min(buf.len() as u64)) as usize;
        let n = if !conn.buf.is_empty() {
            let mut n = conn.buf.len().min(want);
            buf[..n].copy_from_slice(&conn.buf[..n]);
            conn.buf.drain(..n);
            // Top up with what the socket already holds, so a small body that
            // arrived split over the head read still goes out in one write.
            if n < want {
                if let Ok(k) = conn.stream.try_read(&mut buf[n..want]) {
                    conn.bytes_in += k as u64;
                    n += k;
                }
            }
            n
        } else {
            // Bytes already in the socket need no timer: arm one only to wait.
            let r = match conn.stream.try_read(&mut buf[..want]) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    match tokio::time::timeout(self.read_timeout, conn.stream.read(&mut buf[..want])).await {
                        Err(_) => Err(FetchError::Timeout),
                        Ok(r) => r.map_err(FetchError::Io),
                    }
                }
                r => r.map_err(FetchError::Io),
            }
            .and_then(|n| if n == 0 { Err(FetchError::Closed) } else { Ok(n) });
            match r {
                Ok(n) => {
                    conn.bytes_in += n as u64;
                    n
                }
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        };
        self.remaining -= n as u64;
        if self.remaining == 0 {
            if let Some(conn) = self.conn.take() {
                self.idle.put_back(conn, self.keep_alive);
            }
        }
        Ok(n)
    }
}

impl Pool {
    /// A pool for `addr` keeping at most `max_idle` idle connections.
    pub fn new(addr: SocketAddr, max_idle: usize) -> Self {
        Self { addr, idle: Arc::new(Idle { conns: Mutex::new(Vec::new()), max: max_idle }) }
    }

    /// GETs `path` and returns once the response head is in, the body left on
    /// the connection for the caller to stream. `timeout` bounds connecting,
    /// sending and the head; afterwards it bounds each body read. A reused
    /// connection that turns out to be closed is retried once on a fresh one.
    pub async fn get_stream(
        &self,
        path: &str,
        hop: bool,
        timeout: Duration,
    ) -> Result<(ResponseHead, UpstreamBody), FetchError> {
        let (head, conn) = match tokio::time::timeout(timeout, self.get_head(path, hop, timeout)).await {
            Ok(r) => r?,
            Err(_) => return Err(FetchError::Timeout),
        };
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
        let reused = self.idle.conns.lock().expect("pool lock").pop();
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

    /// GETs `path` within `timeout` (connect included). A reused connection
    /// that turns out to be closed is retried once on a fresh one.
    pub async fn get(&self, path: &str, hop: bool, timeout: Duration) -> Result<(ResponseHead, Bytes), FetchError> {
        match tokio::time::timeout(timeout, self.get_inner(path, hop, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn get_inner(&self, path: &str, hop: bool, timeout: Duration) -> Result<(ResponseHead, Bytes), FetchError> {
        let reused = self.idle.conns.lock().expect("pool lock").pop();
        let mut body = Vec::new();
        if let Some(mut conn) = reused {
            match conn.get(path, hop, &mut body).await {
                Ok(head) => {
                    self.put_back(conn, head.keep_alive);
                    return Ok((head, Bytes::from(body)));
                }
                // Stale keep-alive connection: the server closed it while idle.
                Err(FetchError::Closed | FetchError::Io(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut conn = ClientConn::connect(self.addr, timeout).await?;
        let head = conn.get(path, hop, &mut body).await?;
        self.put_back(conn, head.keep_alive);
        Ok((head, Bytes::from(body)))
    }

    fn put_back(&self, conn: ClientConn, keep_alive: bool) {
        self.idle.put_back(conn, keep_alive);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_form_targets_reduce_to_their_path() {
        assert_eq!(origin_form("/a/b.jpg"), Some("/a/b.jpg"));
        assert_eq!(origin_form("http://host:80/a/b.jpg"), Some("/a/b.jpg"));
        assert_eq!(origin_form("http://host"), Some("/"));
        assert_eq!(origin_form("*"), None);
    }

    #[test]
    fn decimal_parsing_rejects_signs_and_overflow() {
        assert_eq!(parse_decimal(b" 42 "), Some(42));
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"99999999999999999999"), None);
    }

    #[test]
    fn connection_tokens_are_case_insensitive() {
        assert!(contains_token(b"Keep-Alive, Upgrade", b"keep-alive"));
        assert!(!contains_token(b"closed", b"close"));
    }
}
