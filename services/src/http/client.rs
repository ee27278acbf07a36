//! The client side of one upstream connection: sends a GET, reads the
//! response head (and body, whole or streamed as an [`UpstreamBody`] that
//! gives its connection back to the [`Pool`](super::Pool) when done).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::pool::Idle;
use super::{
    add_content_length, connection_option, contains_token, content_type_from_mime, is_name, parse_decimal, FetchError,
    ResponseHead, CACHE_HEADER, HOP_HEADER, MAX_HEAD, MAX_HEADERS, OBJECT_ID_HEADER, RELAY_CHUNK, SERVED_BY_HEADER,
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
        Ok(Self {
            stream,
            idle: timeout,
            buf: Vec::with_capacity(RELAY_CHUNK),
            pos: 0,
            req: Vec::with_capacity(256),
            bytes_in: 0,
        })
    }

    /// Bytes read from the server and not consumed yet.
    pub(super) fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
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
    async fn fill(&mut self) -> Result<usize, FetchError> {
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

    /// Reads one response; its body (up to `max_body` bytes) replaces `body`'s contents.
    pub async fn read_response(&mut self, body: &mut Vec<u8>, max_body: u64) -> Result<ResponseHead, FetchError> {
        let head = self.read_response_head().await?;
        if head.content_length > max_body {
            return Err(FetchError::BadResponse("body larger than allowed"));
        }
        let len = head.content_length as usize;
        body.clear();
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
        Ok(head)
    }

    /// Reads one response head, leaving the body (or its start) unread.
    pub(super) async fn read_response_head(&mut self) -> Result<ResponseHead, FetchError> {
        loop {
            if !self.unread().is_empty() {
                if let Some((head, n)) = parse_response_head(self.unread())? {
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

    /// One GET round trip whose body is handed to `sink` chunk by chunk as
    /// it arrives (with the head), never held whole: for bodies of any size.
    pub async fn get_with(
        &mut self,
        path: &str,
        hop: bool,
        mut sink: impl FnMut(&ResponseHead, &[u8]),
    ) -> Result<ResponseHead, FetchError> {
        self.send_get(path, hop).await?;
        let head = self.read_response_head().await?;
        let mut left = head.content_length;
        while left > 0 {
            if self.unread().is_empty() {
                self.fill().await?;
            }
            let n = self.unread().len().min(left as usize);
            sink(&head, &self.unread()[..n]);
            self.consume(n);
            left -= n as u64;
        }
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
pub fn parse_response_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, FetchError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => Ok(Some((interpret_response(&resp)?, n))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(FetchError::BadResponse("unparsable head")),
    }
}

/// One pass over the headers, each name compared only with the names of
/// its length (RFC 9110's `Content-Length` rule as [`content_length`]).
fn interpret_response(resp: &httparse::Response) -> Result<ResponseHead, FetchError> {
    let status = resp.code.ok_or(FetchError::BadResponse("no status"))?;
    let mut head = ResponseHead {
        status,
        content_length: 0,
        keep_alive: resp.version == Some(1),
        content_type: dl7_traces::ContentType::Other,
        object_id: None,
        served_by: None,
        cache_hit: None,
        gzip: false,
    };
    let mut length = None;
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
            return Err(FetchError::BadResponse("Transfer-Encoding is not supported"));
        }
    }
    head.content_length = length.ok_or(FetchError::BadResponse("no Content-Length"))?;
    Ok(head)
}

/// The body of a streamed upstream response, still on its connection.
///
/// Relay it with [`UpstreamBody::buffered`], [`UpstreamBody::consume`] and
/// [`UpstreamBody::fill`] (exactly `Content-Length` bytes in all): the bytes
/// stay in the connection's buffer until written. The connection goes back
/// to its pool only when the whole body has been consumed; dropping an
/// unfinished body closes the connection, since the rest of the body would
/// otherwise be read as the next response.
pub struct UpstreamBody {
    pub(super) conn: Option<ClientConn>,
    pub(super) idle: Arc<Idle>,
    pub(super) remaining: u64,
    pub(super) keep_alive: bool,
    pub(super) read_timeout: Duration,
}

impl UpstreamBody {
    /// Body bytes not consumed yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The body bytes already read and not consumed (at most a buffer, at
    /// most `remaining`); empty until [`UpstreamBody::fill`] when all were.
    pub fn buffered(&self) -> &[u8] {
        match &self.conn {
            Some(c) => {
                let u = c.unread();
                &u[..u.len().min(self.remaining as usize)]
            }
            None => &[],
        }
    }

    /// Marks the first `n` buffered bytes as relayed; once the whole body
    /// is, the connection goes back to its pool.
    pub fn consume(&mut self, n: usize) {
        let Some(conn) = self.conn.as_mut() else { return };
        let n = n.min(conn.unread().len()).min(self.remaining as usize);
        conn.consume(n);
        self.remaining -= n as u64;
        if self.remaining == 0 {
            if let Some(conn) = self.conn.take() {
                self.idle.put_back(conn, self.keep_alive);
            }
        }
    }

    /// The upstream socket, once nothing is buffered: a zero-copy relay
    /// takes the rest of the body straight from it.
    #[cfg(all(feature = "splice", target_os = "linux"))]
    pub(super) fn socket(&self) -> Option<&TcpStream> {
        self.conn.as_ref().filter(|c| c.unread().is_empty()).map(|c| &c.stream)
    }

    /// `n` body bytes were moved off the socket without the buffer.
    #[cfg(all(feature = "splice", target_os = "linux"))]
    pub(super) fn advance_spliced(&mut self, n: u64) {
        let n = n.min(self.remaining);
        self.remaining -= n;
        if let Some(conn) = self.conn.as_mut() {
            conn.bytes_in += n;
        }
        if self.remaining == 0 {
            if let Some(conn) = self.conn.take() {
                self.idle.put_back(conn, self.keep_alive);
            }
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
        if self.remaining == 0 || buf.is_empty() {
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
        if self.remaining > max {
            return Err(FetchError::BadResponse("body larger than allowed"));
        }
        let mut out = vec![0u8; self.remaining as usize];
        let mut at = 0;
        while at < out.len() {
            at += self.read_chunk(&mut out[at..]).await?;
        }
        Ok(out)
    }

    /// Reads more of the body into the buffer once everything buffered was
    /// consumed (a no-op while bytes are buffered or none remain). Each call
    /// waits at most the pool's timeout. After an error the connection is
    /// closed and every later call fails.
    pub async fn fill(&mut self) -> Result<(), FetchError> {
        if self.remaining == 0 || !self.buffered().is_empty() {
            return Ok(());
        }
        let conn = self.conn.as_mut().ok_or(FetchError::Closed)?;
        let r = match tokio::time::timeout(self.read_timeout, conn.fill()).await {
            Err(_) => Err(FetchError::Timeout),
            Ok(r) => r.map(|_| ()),
        };
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}
