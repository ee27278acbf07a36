//! The client side of one upstream connection: sends a request, reads the
//! response head (skipping interim 1xx answers, as RFC 9110 section 15.2
//! allows) and its body, whole or streamed as an [`UpstreamBody`] that
//! gives its connection back to the [`Pool`](super::Pool) when done.
//! Bodies are `Content-Length`, chunked or delimited by the close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::pool::Idle;
use super::proxy::{ChunkStep, ChunkedDecoder};
use super::{
    add_content_length, connection_option, contains_token, content_type_from_mime, is_name, parse_decimal, BodyKind,
    FetchError, ResponseHead, CACHE_HEADER, HOP_HEADER, MAX_HEAD, MAX_HEADERS, OBJECT_ID_HEADER, RELAY_CHUNK,
    SERVED_BY_HEADER,
};

/// The client side of one keep-alive connection. Every read waits at most
/// the timeout it was connected with: an idle timeout, never a deadline on a
/// response that keeps arriving.
pub struct ClientConn {
    stream: TcpStream,
    idle: Duration,
    /// Bytes read from the server; `buf[pos..]` are not consumed yet. Its
    /// capacity is [`RELAY_CHUNK`]: a streamed body is written to its client
    /// straight from here, one buffer at a time, never copied.
    buf: Vec<u8>,
    pos: usize,
    pub(super) req: Vec<u8>,
    /// The last response head as received, for a relay to pass its fields on.
    pub(super) head: Vec<u8>,
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
        Ok(Self {
            stream,
            idle: timeout,
            buf: Vec::with_capacity(RELAY_CHUNK),
            pos: 0,
            req: Vec::with_capacity(256),
            head: Vec::with_capacity(512),
            bytes_in: 0,
        })
    }

    /// The last response head read, as the server sent it (a test's or a
    /// tool's view of every field).
    pub fn last_head(&self) -> &[u8] {
        &self.head
    }

    /// Bytes read from the server and not consumed yet.
    pub(super) fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads whatever the socket holds (at least one byte, waiting for it)
    /// after the unread bytes. A read into the whole free capacity that comes
    /// back short tells tokio the socket is drained, so the next read waits
    /// for readiness instead of trying a syscall that would fail (EAGAIN).
    pub(super) async fn fill(&mut self) -> Result<usize, FetchError> {
        if self.buf.len() == self.buf.capacity() && self.pos > 0 {
            // Only a head split over reads gets here: move its start down.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.len() == self.buf.capacity() {
            self.buf.reserve(4096);
        }
        let n = match tokio::time::timeout(self.idle, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => return Err(FetchError::Timeout),
            Ok(r) => r?,
        };
        if n == 0 {
            return Err(FetchError::Closed);
        }
        self.bytes_in += n as u64;
        Ok(n)
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

    /// Sends the request head built in `req` (by the pool's forward).
    pub(super) async fn send_req(&mut self) -> Result<(), FetchError> {
        self.stream.write_all(&self.req).await?;
        Ok(())
    }

    /// The socket, for streaming a request body after its head.
    pub(super) fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Reads one response; its body (up to `max_body` bytes) replaces `body`'s contents.
    pub async fn read_response(&mut self, body: &mut Vec<u8>, max_body: u64) -> Result<ResponseHead, FetchError> {
        self.read_response_to(body, max_body, false).await
    }

    /// [`ClientConn::read_response`] for the answer to a HEAD request when
    /// `head_request` (no body, whatever its fields say).
    pub async fn read_response_to(
        &mut self,
        body: &mut Vec<u8>,
        max_body: u64,
        head_request: bool,
    ) -> Result<ResponseHead, FetchError> {
        let head = self.read_response_head(head_request).await?;
        if head.content_length > max_body {
            return Err(FetchError::BadResponse("body larger than allowed"));
        }
        body.clear();
        if head.body == BodyKind::Length {
            // The common case, read straight into `body`.
            let len = head.content_length as usize;
            body.reserve(len);
            let take = self.unread().len().min(len);
            body.extend_from_slice(&self.unread()[..take]);
            self.consume(take);
            while body.len() < len {
                let mut limited = (&mut self.stream).take((len - body.len()) as u64);
                let n = match tokio::time::timeout(self.idle, limited.read_buf(body)).await {
                    Err(_) => return Err(FetchError::Timeout),
                    Ok(r) => r?,
                };
                if n == 0 {
                    return Err(FetchError::Closed);
                }
                self.bytes_in += n as u64;
            }
            return Ok(head);
        }
        let mut too_big = false;
        self.read_body_with(&head, |chunk| {
            too_big |= body.len() as u64 + chunk.len() as u64 > max_body;
            if !too_big {
                body.extend_from_slice(chunk);
            }
        })
        .await?;
        if too_big {
            return Err(FetchError::BadResponse("body larger than allowed"));
        }
        Ok(head)
    }

    /// Reads one response head, leaving the body (or its start) unread;
    /// interim 1xx answers are read past (101 is refused: dl7 never asks
    /// for an upgrade). `head_request`: the request was HEAD, so the answer
    /// has no body whatever it says. The head's bytes are kept in `head`.
    pub(super) async fn read_response_head(&mut self, head_request: bool) -> Result<ResponseHead, FetchError> {
        loop {
            if !self.unread().is_empty() {
                if let Some((head, n)) = parse_response_head_to(self.unread(), head_request)? {
                    if head.status == 101 {
                        return Err(FetchError::BadResponse("101 Switching Protocols to a request without Upgrade"));
                    }
                    if (100..200).contains(&head.status) {
                        self.consume(n);
                        continue;
                    }
                    self.head.clear();
                    self.head.extend_from_slice(&self.buf[self.pos..self.pos + n]);
                    self.consume(n);
                    return Ok(head);
                }
                if self.unread().len() > MAX_HEAD {
                    return Err(FetchError::BadResponse("head over 16 KiB"));
                }
            }
            self.fill().await?;
        }
    }

    /// Reads the body of the response `head` (just read), handing it to
    /// `sink` a piece at a time as it arrives, whatever its framing.
    async fn read_body_with(&mut self, head: &ResponseHead, mut sink: impl FnMut(&[u8])) -> Result<(), FetchError> {
        match head.body {
            BodyKind::None => Ok(()),
            BodyKind::Length => {
                let mut left = head.content_length;
                while left > 0 {
                    if self.unread().is_empty() {
                        self.fill().await?;
                    }
                    let n = self.unread().len().min(left as usize);
                    sink(&self.unread()[..n]);
                    self.consume(n);
                    left -= n as u64;
                }
                Ok(())
            }
            BodyKind::Chunked => {
                let mut d = ChunkedDecoder::new();
                loop {
                    match d.step(self.unread()).map_err(|_| FetchError::BadResponse("bad chunked framing"))? {
                        ChunkStep::Skip(n) => self.consume(n),
                        ChunkStep::Data(n) => {
                            sink(&self.unread()[..n]);
                            self.consume(n);
                            d.consumed(n);
                        }
                        ChunkStep::More => {
                            self.fill().await?;
                        }
                        ChunkStep::Done => return Ok(()),
                    }
                }
            }
            BodyKind::Close => loop {
                if !self.unread().is_empty() {
                    sink(self.unread());
                    let n = self.unread().len();
                    self.consume(n);
                }
                match self.fill().await {
                    Ok(_) => {}
                    Err(FetchError::Closed) => return Ok(()),
                    Err(e) => return Err(e),
                }
            },
        }
    }

    /// One GET round trip whose body is handed to `sink` chunk by chunk as
    /// it arrives (with the head), never held whole: for bodies of any size.
    pub async fn get_with(
        &mut self,
        path: &str,
        hop: bool,
        mut sink: impl FnMut(&ResponseHead, &[u8]),
    ) -> Result<ResponseHead, FetchError> {
        self.send_get(path, hop).await?;
        let head = self.read_response_head(false).await?;
        self.read_body_with(&head, |chunk| sink(&head, chunk)).await?;
        Ok(head)
    }

    /// One GET round trip.
    pub async fn get(&mut self, path: &str, hop: bool, body: &mut Vec<u8>) -> Result<ResponseHead, FetchError> {
        self.send_get(path, hop).await?;
        self.read_response(body, u64::MAX).await
    }

    /// Reads whatever the server sends until it closes (tests).
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>, FetchError> {
        let mut out = self.unread().to_vec();
        self.consume(out.len());
        self.stream.read_to_end(&mut out).await?;
        Ok(out)
    }
}

/// Parses a response head at the start of `buf`: `None` while it is
/// incomplete, else the head and its length in bytes. Pure, so that it can
/// be fuzzed: every upstream fetch (pool, load generator) goes through it.
/// The answer is taken to be to a GET; see [`parse_response_head_to`].
pub fn parse_response_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, FetchError> {
    parse_response_head_to(buf, false)
}

/// [`parse_response_head`] for the answer to a HEAD request when
/// `head_request` (then there is no body, whatever the fields say).
pub fn parse_response_head_to(buf: &[u8], head_request: bool) -> Result<Option<(ResponseHead, usize)>, FetchError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => Ok(Some((interpret_response(&resp, head_request)?, n))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(FetchError::BadResponse("unparsable head")),
    }
}

/// One pass over the headers, each name compared only with the names of
/// its length (RFC 9110's `Content-Length` rule as [`content_length`]);
/// the body's framing by RFC 9112 section 6.3: none for a HEAD's answer,
/// 1xx, 204 and 304; chunked when it is the last transfer coding (a
/// `Content-Length` beside it is ignored, and the connection not reused);
/// read to the close for another coding or when neither field is there.
fn interpret_response(resp: &httparse::Response, head_request: bool) -> Result<ResponseHead, FetchError> {
    let status = resp.code.ok_or(FetchError::BadResponse("no status"))?;
    let mut head = ResponseHead {
        status,
        content_length: 0,
        body: BodyKind::Length,
        keep_alive: resp.version == Some(1),
        content_type: dl7_traces::ContentType::Other,
        object_id: None,
        served_by: None,
        cache_hit: None,
        gzip: false,
    };
    let mut length = None;
    // Some(last coding is chunked) once a Transfer-Encoding field is seen.
    let mut coding: Option<bool> = None;
    for h in resp.headers.iter() {
        let (name, value) = (h.name, h.value);
        if is_name(name, b"content-length") {
            add_content_length(&mut length, value).map_err(|()| FetchError::BadResponse("bad Content-Length"))?;
        } else if is_name(name, b"content-type") {
            head.content_type = content_type_from_mime(value);
        } else if is_name(name, OBJECT_ID_HEADER.as_bytes()) {
            head.object_id = parse_decimal(value).and_then(|v| u32::try_from(v).ok());
        } else if is_name(name, SERVED_BY_HEADER.as_bytes()) {
            head.served_by = parse_decimal(value).and_then(|v| u32::try_from(v).ok());
        } else if is_name(name, b"connection") {
            if let Some(k) = connection_option(value) {
                head.keep_alive = k;
            }
        } else if is_name(name, CACHE_HEADER.as_bytes()) {
            head.cache_hit = Some(value.trim_ascii().get(..3).is_some_and(|v| v.eq_ignore_ascii_case(b"HIT")));
        } else if is_name(name, b"content-encoding") {
            head.gzip = contains_token(value, b"gzip");
        } else if is_name(name, b"transfer-encoding") {
            let last = value.split(|&b| b == b',').map(|t| t.trim_ascii()).rfind(|t| !t.is_empty());
            coding = Some(last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")));
        }
    }
    head.body = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        BodyKind::None
    } else if let Some(chunked) = coding {
        // Both fields: a message an intermediary must not reuse the connection after.
        if length.is_some() {
            head.keep_alive = false;
        }
        if chunked {
            BodyKind::Chunked
        } else {
            BodyKind::Close
        }
    } else if let Some(l) = length {
        head.content_length = l;
        BodyKind::Length
    } else {
        BodyKind::Close
    };
    if head.body == BodyKind::Close {
        head.keep_alive = false;
    }
    Ok(head)
}

/// The body of a streamed upstream response, still on its connection.
///
/// Relay it with [`UpstreamBody::buffered`], [`UpstreamBody::consume`] and
/// [`UpstreamBody::fill`]: the body bytes (decoded from the chunked coding
/// when it is chunked) stay in the connection's buffer until written. The
/// head as received is [`UpstreamBody::raw_head`] while the body lives. The
/// connection goes back to its pool when the body is dropped after it was
/// read to its end; dropping an unfinished body closes the connection, since
/// the rest of the body would otherwise be read as the next response.
pub struct UpstreamBody {
    pub(super) conn: Option<ClientConn>,
    pub(super) idle: Arc<Idle>,
    /// `Length`: bytes not consumed yet.
    pub(super) remaining: u64,
    pub(super) kind: BodyKind,
    pub(super) chunked: ChunkedDecoder,
    /// The whole body has been consumed.
    pub(super) done: bool,
    pub(super) keep_alive: bool,
    pub(super) read_timeout: Duration,
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.done {
                self.idle.put_back(conn, self.keep_alive);
            }
        }
    }
}

impl UpstreamBody {
    pub(super) fn new(conn: ClientConn, idle: Arc<Idle>, head: &ResponseHead, read_timeout: Duration) -> Self {
        let done = match head.body {
            BodyKind::None => true,
            BodyKind::Length => head.content_length == 0,
            BodyKind::Chunked | BodyKind::Close => false,
        };
        UpstreamBody {
            conn: Some(conn),
            idle,
            remaining: head.content_length,
            kind: head.body,
            chunked: ChunkedDecoder::new(),
            done,
            keep_alive: head.keep_alive && head.body != BodyKind::Close,
            read_timeout,
        }
    }

    /// Body bytes not consumed yet, when the length is known (`Content-Length`,
    /// or none at all); `None` for a chunked or close-delimited body still arriving.
    pub fn length(&self) -> Option<u64> {
        match self.kind {
            BodyKind::None => Some(0),
            BodyKind::Length => Some(self.remaining),
            _ if self.done => Some(0),
            _ => None,
        }
    }

    /// Body bytes not consumed yet of a `Content-Length` body (0 for every other).
    pub fn remaining(&self) -> u64 {
        if self.kind == BodyKind::Length {
            self.remaining
        } else {
            0
        }
    }

    /// How the body is delimited.
    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    /// True once the whole body has been consumed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The response head as the upstream sent it (empty once the connection failed).
    pub fn raw_head(&self) -> &[u8] {
        self.conn.as_ref().map_or(&[], |c| &c.head)
    }

    /// The body bytes already read and not consumed (at most a buffer);
    /// empty until [`UpstreamBody::fill`] when all were.
    pub fn buffered(&self) -> &[u8] {
        let Some(c) = &self.conn else { return &[] };
        if self.done {
            return &[];
        }
        let u = c.unread();
        match self.kind {
            BodyKind::None => &[],
            BodyKind::Length => &u[..u.len().min(self.remaining as usize)],
            BodyKind::Chunked => {
                // Only at a chunk's data does the decoder hand out bytes without a step.
                let mut d = self.chunked;
                match d.step(u) {
                    Ok(ChunkStep::Data(n)) => &u[..n],
                    _ => &[],
                }
            }
            BodyKind::Close => u,
        }
    }

    /// Marks the first `n` buffered bytes as relayed.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.buffered().len());
        let Some(conn) = self.conn.as_mut() else { return };
        conn.consume(n);
        match self.kind {
            BodyKind::Length => {
                self.remaining -= n as u64;
                self.done = self.remaining == 0;
            }
            BodyKind::Chunked => self.chunked.consumed(n),
            BodyKind::None | BodyKind::Close => {}
        }
    }

    /// The upstream socket, once nothing is buffered: a zero-copy relay
    /// takes the rest of a `Content-Length` body straight from it.
    #[cfg(all(feature = "splice", target_os = "linux"))]
    pub(super) fn socket(&self) -> Option<&TcpStream> {
        self.conn.as_ref().filter(|c| c.unread().is_empty() && self.kind == BodyKind::Length).map(|c| &c.stream)
    }

    /// `n` body bytes were moved off the socket without the buffer.
    #[cfg(all(feature = "splice", target_os = "linux"))]
    pub(super) fn advance_spliced(&mut self, n: u64) {
        let n = n.min(self.remaining);
        self.remaining -= n;
        self.done = self.remaining == 0;
        if let Some(conn) = self.conn.as_mut() {
            conn.bytes_in += n;
        }
    }

    /// The connection is unusable (a relay failed mid-body): close it.
    #[cfg(all(feature = "splice", target_os = "linux"))]
    pub(super) fn fail(&mut self) {
        self.conn = None;
    }

    /// Copies the next part of the body into `buf` (at most `buf.len()`
    /// bytes, whatever has arrived); `Ok(0)` once the body is complete. For
    /// readers that keep what they read (a node filling its cache); a relay
    /// writes straight from [`UpstreamBody::buffered`] instead.
    pub async fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize, FetchError> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        self.fill().await?;
        let chunk = self.buffered();
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        self.consume(n);
        Ok(n)
    }

    /// Reads the whole rest of the body into a new buffer, refusing more
    /// than `max` bytes (for small answers: owner lookups, admin pages).
    pub async fn read_to_vec(&mut self, max: u64) -> Result<Vec<u8>, FetchError> {
        if self.length().is_some_and(|l| l > max) {
            return Err(FetchError::BadResponse("body larger than allowed"));
        }
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.read_chunk(&mut chunk).await?;
            if n == 0 {
                return Ok(out);
            }
            if out.len() as u64 + n as u64 > max {
                return Err(FetchError::BadResponse("body larger than allowed"));
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads more of the body into the buffer once everything buffered was
    /// consumed (a no-op while body bytes are buffered or the body is
    /// complete). Each read waits at most the pool's timeout. After an error
    /// the connection is closed and every later call fails.
    pub async fn fill(&mut self) -> Result<(), FetchError> {
        if self.done || !self.buffered().is_empty() {
            return Ok(());
        }
        let r = self.fill_inner().await;
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    async fn fill_inner(&mut self) -> Result<(), FetchError> {
        let timeout = self.read_timeout;
        loop {
            let conn = self.conn.as_mut().ok_or(FetchError::Closed)?;
            match self.kind {
                BodyKind::None => {
                    self.done = true;
                    return Ok(());
                }
                BodyKind::Length => {
                    if !conn.unread().is_empty() {
                        return Ok(());
                    }
                }
                BodyKind::Chunked => match self.chunked.step(conn.unread()) {
                    Err(_) => return Err(FetchError::BadResponse("bad chunked framing")),
                    Ok(ChunkStep::Skip(n)) => {
                        conn.consume(n);
                        continue;
                    }
                    Ok(ChunkStep::Data(_)) => return Ok(()),
                    Ok(ChunkStep::Done) => {
                        self.done = true;
                        return Ok(());
                    }
                    Ok(ChunkStep::More) => {}
                },
                BodyKind::Close => {
                    if !conn.unread().is_empty() {
                        return Ok(());
                    }
                }
            }
            match tokio::time::timeout(timeout, conn.fill()).await {
                Err(_) => return Err(FetchError::Timeout),
                Ok(Ok(_)) => {}
                // A close-delimited body ends with the close.
                Ok(Err(FetchError::Closed)) if self.kind == BodyKind::Close => {
                    self.done = true;
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }
}
