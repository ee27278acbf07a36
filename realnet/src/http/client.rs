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
    contains_token, content_length, content_type_from_mime, parse_decimal, FetchError, ResponseHead, HOP_HEADER,
    MAX_HEAD, MAX_HEADERS, OBJECT_ID_HEADER, SERVED_BY_HEADER,
};

/// The client side of one keep-alive connection. Every read waits at most
/// the timeout it was connected with: an idle timeout, never a deadline on a
/// response that keeps arriving.
pub struct ClientConn {
    stream: TcpStream,
    idle: Duration,
    /// Bytes read past the last parsed head (the pool keeps only connections where this is empty).
    pub(super) buf: Vec<u8>,
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
        Ok(Self { stream, idle: timeout, buf: Vec::with_capacity(8192), req: Vec::with_capacity(256), bytes_in: 0 })
    }

    /// One read into `buf`'s spare room, waiting at most the idle timeout.
    async fn read_some(&mut self, buf: &mut Vec<u8>, limit: u64) -> Result<usize, FetchError> {
        let mut limited = (&mut self.stream).take(limit);
        match tokio::time::timeout(self.idle, limited.read_buf(buf)).await {
            Err(_) => Err(FetchError::Timeout),
            Ok(Ok(0)) => Err(FetchError::Closed),
            Ok(Ok(n)) => {
                self.bytes_in += n as u64;
                Ok(n)
            }
            Ok(Err(e)) => Err(FetchError::Io(e)),
        }
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
            self.read_some(body, (len - body.len()) as u64).await?;
        }
        Ok(head)
    }

    /// Reads one response head, leaving the body (or its start) unread.
    pub(super) async fn read_response_head(&mut self) -> Result<ResponseHead, FetchError> {
        loop {
            if !self.buf.is_empty() {
                if let Some((head, n)) = parse_response_head(&self.buf)? {
                    self.buf.drain(..n);
                    return Ok(head);
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(FetchError::BadResponse("head over 16 KiB"));
                }
            }
            self.buf.reserve(4096);
            let mut buf = std::mem::take(&mut self.buf);
            let r = self.read_some(&mut buf, u64::MAX).await;
            self.buf = buf;
            r?;
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
        let take = self.buf.len().min(left as usize);
        if take > 0 {
            sink(&head, &self.buf[..take]);
            self.buf.drain(..take);
            left -= take as u64;
        }
        let mut chunk = Vec::with_capacity(super::RELAY_CHUNK);
        while left > 0 {
            chunk.clear();
            let n = self.read_some(&mut chunk, left.min(super::RELAY_CHUNK as u64)).await?;
            sink(&head, &chunk[..n]);
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
        let mut out = std::mem::take(&mut self.buf);
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
    let length = content_length(resp.headers).map_err(|()| FetchError::BadResponse("bad Content-Length"))?;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
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
    head.content_length = length.ok_or(FetchError::BadResponse("no Content-Length"))?;
    Ok(head)
}

/// The body of a streamed upstream response, still on its connection.
///
/// Read it with [`UpstreamBody::read_chunk`] (exactly `Content-Length` bytes
/// in all). The connection goes back to its pool only when the whole body
/// has been read; dropping an unfinished body closes the connection, since
/// the rest of the body would otherwise be read as the next response.
pub struct UpstreamBody {
    pub(super) conn: Option<ClientConn>,
    pub(super) idle: Arc<Idle>,
    pub(super) remaining: u64,
    pub(super) keep_alive: bool,
    pub(super) read_timeout: Duration,
}

impl UpstreamBody {
    /// Body bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
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

impl super::BodySource for UpstreamBody {
    fn remaining(&self) -> u64 {
        self.remaining
    }

    fn read_chunk(&mut self, buf: &mut [u8]) -> impl std::future::Future<Output = Result<usize, FetchError>> + Send {
        UpstreamBody::read_chunk(self, buf)
    }
}
