//! HTTP/1.1 for the services: the types and head-parsing helpers shared by
//! the server side ([`server`]), the client side of one upstream connection
//! ([`client`]) and the keep-alive pool of upstream connections ([`pool`]).
//!
//! Heads are parsed with `httparse` only; this module never hand-parses HTTP
//! syntax, and adds around it the checks RFC 9112 requires of a server:
//! message framing (section 6.3: conflicting or invalid `Content-Length`, or
//! `Content-Length` with `Transfer-Encoding`, is 400 and the connection
//! closed) and `Host` (section 3.2). Request and response bodies are
//! `Content-Length` or chunked (a request with any other transfer coding is
//! refused with 501); a response may also run to the connection's close.
//! What a proxy does to heads on the way through is [`proxy`]'s. This module
//! knows nothing about caches, policies or catalogs.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;

mod client;
mod pool;
pub mod proxy;
mod server;
#[cfg(all(feature = "splice", target_os = "linux"))]
mod splice;

pub use client::{parse_response_head, parse_response_head_to, ClientConn, UpstreamBody};
pub use pool::{ForwardError, Pool};
pub use proxy::RequestBody;
pub use server::{Relay, RelayError, ServerConn};

/// Buffer a relay streams a response body through (one per upstream
/// connection): the most body bytes of one response a front end or
/// forwarding node holds in memory. 64 KiB takes nine in ten surge100
/// responses, head included, in one read and one write.
pub const RELAY_CHUNK: usize = 64 * 1024;
/// Largest request or response head accepted, request line included.
pub const MAX_HEAD: usize = 16 * 1024;
/// Header a node or front end sets when it forwards a request to the owner:
/// the receiver must serve it locally, never dispatch it again.
pub const HOP_HEADER: &str = "x-dl7-hop";
/// Response header carrying the catalog object id (set by the origin).
pub const OBJECT_ID_HEADER: &str = "x-dl7-object-id";
/// Response header carrying the index of the node that served the object.
pub const SERVED_BY_HEADER: &str = "x-dl7-served-by";
/// Response header saying whether the owner served the object from its
/// cache (`HIT`) or fetched it (`MISS`), as Squid and CDNs say it.
pub const CACHE_HEADER: &str = "x-cache";
/// Most headers a head may carry; more is answered with 431.
pub(crate) const MAX_HEADERS: usize = 64;

/// Per-connection limits shared by every service.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head in bytes (431, or 414 when the request line alone is longer).
    pub max_head: usize,
    /// Time allowed to receive a complete request head (408 after it).
    pub head_timeout: Duration,
    /// Longest an origin, owner or node may send nothing (connecting, or in
    /// the middle of a response) before the fetch fails (502 if no byte was sent yet).
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
            head_timeout: Duration::from_millis(crate::defaults::DEFAULT_HEAD_TIMEOUT_MS),
            upstream_timeout: Duration::from_millis(crate::defaults::DEFAULT_UPSTREAM_TIMEOUT_MS),
            max_connections: crate::defaults::DEFAULT_MAX_CONNECTIONS,
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
    /// `PUT` (admin listeners take it for membership changes).
    Put,
    /// `POST`.
    Post,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// `TRACE`.
    Trace,
    /// `CONNECT`: a tunnel, which no dl7 service opens (501).
    Connect,
    /// `PURGE`: between dl7 nodes (with the hop header), an invalidation;
    /// from anyone else, passed through like any unsafe method.
    Purge,
    /// Any other method (passed through as an unsafe one).
    Other,
}

impl Method {
    /// `GET` or `HEAD`: what a cache answers, and the only methods of the admin pages.
    pub fn is_read(self) -> bool {
        matches!(self, Method::Get | Method::Head)
    }

    /// Safe (RFC 9110 section 9.2.1): a successful answer to any other
    /// method invalidates what a cache holds for the target (RFC 9111 section 4.4).
    pub fn is_safe(self) -> bool {
        matches!(self, Method::Get | Method::Head | Method::Options | Method::Trace)
    }

    /// Idempotent (RFC 9110 section 9.2.2): may be sent again on a fresh
    /// connection when a reused one turns out closed.
    pub fn is_idempotent(self) -> bool {
        self.is_safe() || matches!(self, Method::Put | Method::Delete)
    }
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
    /// How its body is framed.
    pub body: RequestBody,
    /// `Expect: 100-continue`: the client waits for `100 Continue` before its body.
    pub expect_continue: bool,
    /// HTTP/1.1 (an older client gets no chunked answer).
    pub http11: bool,
}

/// Why no request head could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The peer closed (or the service is shutting down) between requests: close quietly.
    Closed,
    /// Answer with this status and close.
    Status(u16),
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
        Some("PUT") => Method::Put,
        Some("POST") => Method::Post,
        Some("DELETE") => Method::Delete,
        Some("OPTIONS") => Method::Options,
        Some("TRACE") => Method::Trace,
        Some("CONNECT") => Method::Connect,
        Some("PURGE") => Method::Purge,
        _ => Method::Other,
    };
    let target = req.path.ok_or(HeadError::Status(400))?;
    let target = origin_form(target).ok_or(HeadError::Status(400))?;
    path.clear();
    path.push_str(target);
    let http11 = req.version == Some(1);
    let mut keep_alive = http11;
    let mut hop = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        if is_name(h.name, b"connection") {
            if let Some(k) = connection_option(h.value) {
                keep_alive = k;
            }
        } else if is_name(h.name, HOP_HEADER.as_bytes()) {
            hop = true;
        } else if is_name(h.name, b"expect") {
            expect_continue |= h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    Ok(RequestHead { method, keep_alive, hop, body: RequestBody::None, expect_continue, http11 })
}

/// The request body's framing under RFC 9112's rules (sections 6.1 and
/// 6.3): `Transfer-Encoding` with `Content-Length` is a smuggling attempt
/// (400); `Transfer-Encoding` must end in `chunked`, the only coding a
/// request's length can be read from, and dl7 decodes no other (501); every
/// `Content-Length` value, across repeated fields and comma-separated
/// lists, must be the same valid decimal (else 400). Every error closes the
/// connection: the message boundary is unknown.
fn request_body(req: &httparse::Request) -> Result<RequestBody, HeadError> {
    let len = content_length(req.headers).map_err(|()| HeadError::Status(400))?;
    let mut codings = req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding")).peekable();
    if codings.peek().is_none() {
        return Ok(len.map_or(RequestBody::None, RequestBody::Length));
    }
    if len.is_some() {
        return Err(HeadError::Status(400));
    }
    // Only `chunked`, once, as the last coding: anything before it would need decoding too.
    let mut list = codings.flat_map(|h| h.value.split(|&b| b == b',')).map(|t| t.trim_ascii());
    match (list.next(), list.next()) {
        (Some(t), None) if t.eq_ignore_ascii_case(b"chunked") => Ok(RequestBody::Chunked),
        _ => Err(HeadError::Status(501)),
    }
}

/// The message's `Content-Length`, if any: every value, across repeated
/// fields and comma-separated lists, must be the same valid decimal
/// (RFC 9110 section 8.6); requests and responses alike.
pub(crate) fn content_length(headers: &[httparse::Header]) -> Result<Option<u64>, ()> {
    let mut len: Option<u64> = None;
    for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length")) {
        add_content_length(&mut len, h.value)?;
    }
    Ok(len)
}

/// Folds one `Content-Length` field value (a comma-separated list) into
/// `len`: every value must be the same valid decimal.
pub(crate) fn add_content_length(len: &mut Option<u64>, value: &[u8]) -> Result<(), ()> {
    for v in value.split(|&b| b == b',') {
        let v = parse_decimal(v).ok_or(())?;
        if len.is_some_and(|l| l != v) {
            return Err(());
        }
        *len = Some(v);
    }
    Ok(())
}

/// Parses a request head at the start of `buf`: `None` while it is
/// incomplete, else the head, its length in bytes and the body's
/// `Content-Length` (0 when chunked or none: [`RequestHead::body`] has the
/// framing). RFC 9112 framing and `Host` are checked; the target path is
/// written to `path`. Pure, so that it can be fuzzed: every service's
/// request loop goes through it.
pub fn parse_request_head(buf: &[u8], path: &mut String) -> Result<Option<(RequestHead, usize, u64)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            // Framing first: without a known body length the next message's start is unknown.
            let body = request_body(&req)?;
            check_host(&req)?;
            let head = RequestHead { body, ..interpret_request(&req, path)? };
            let len = if let RequestBody::Length(l) = body { l } else { 0 };
            Ok(Some((head, n, len)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::Status(431)),
        Err(_) => Err(HeadError::Status(400)),
    }
}

/// RFC 9112 section 3.2: an HTTP/1.1 request needs exactly one `Host`
/// field, any request at most one, and its value must be a valid
/// `uri-host[:port]` (empty only when the target has no authority).
fn check_host(req: &httparse::Request) -> Result<(), HeadError> {
    let mut hosts = req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host"));
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err(HeadError::Status(400)),
        (None, None) if req.version == Some(1) => Err(HeadError::Status(400)),
        (Some(h), None) if !valid_host(h.value.trim_ascii()) => Err(HeadError::Status(400)),
        _ => Ok(()),
    }
}

/// A host and optional port: visible ASCII with no delimiter a URI
/// authority cannot hold in that place (userinfo, path, query, fragment).
fn valid_host(v: &[u8]) -> bool {
    v.iter().all(|&b| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\' | b'"'))
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

/// What a `Connection` field says: `Some(false)` for `close` (which wins),
/// `Some(true)` for `keep-alive`, `None` for neither; one pass.
fn connection_option(value: &[u8]) -> Option<bool> {
    let mut keep = None;
    for t in value.split(|&b| b == b',') {
        let t = t.trim_ascii();
        if t.eq_ignore_ascii_case(b"close") {
            return Some(false);
        } else if t.eq_ignore_ascii_case(b"keep-alive") {
            keep = Some(true);
        }
    }
    keep
}

/// `name` equals the lowercase token `lower`, ignoring ASCII case. Exact for
/// header names (tokens: letters, digits and `!#$%&'*+-.^_`|~`), where
/// setting bit 0x20 lowercases a letter and leaves `-` and digits alone.
#[inline]
pub(crate) fn is_name(name: &str, lower: &[u8]) -> bool {
    name.len() == lower.len() && name.bytes().zip(lower).all(|(a, &b)| a | 0x20 == b)
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    // At most 19 digits: always fits a u64, so the fold cannot overflow.
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// A response body copied out in chunks ([`ServerConn::stream_response`]):
/// one generated on the fly (the origin's), or one arriving from the origin
/// for several waiters (a node's miss). An upstream's body is relayed
/// without a copy instead ([`ServerConn::relay_response`]).
pub trait BodySource {
    /// Body bytes not read yet.
    fn remaining(&self) -> u64;
    /// Reads the next part of the body into `buf` (at most `buf.len()`
    /// bytes); `Ok(0)` once the body is complete.
    fn read_chunk(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, FetchError>> + Send;
    /// True when the bytes come from another server (counted as relayed).
    fn relayed(&self) -> bool {
        true
    }
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
    /// Sent as [`CACHE_HEADER`]: `Some(true)` a cache hit.
    pub cache_hit: Option<bool>,
    /// The body is gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// A stored response's end-to-end header lines (each ending in CRLF),
    /// written as they are in place of `content_type`, `object_id` and `gzip`.
    pub stored: Option<&'a [u8]>,
    /// Sent as `Age` (seconds), for an answer from a cache.
    pub age: Option<u32>,
    /// This hop's `Via` entry, when it answers for another server.
    pub via: Option<&'a str>,
    /// More header lines (each ending in CRLF), written as they are.
    pub extra: &'a [u8],
}

impl Default for ResponseMeta<'_> {
    fn default() -> Self {
        Self {
            content_type: "application/octet-stream",
            object_id: None,
            served_by: None,
            cache_hit: None,
            gzip: false,
            stored: None,
            age: None,
            via: None,
            extra: b"",
        }
    }
}

/// The reason phrase of the status codes dl7 sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// How a response's body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body, whatever the fields say: the answer to a HEAD, a 1xx, 204 or 304.
    None,
    /// `Content-Length` bytes.
    Length,
    /// The chunked coding.
    Chunked,
    /// Until the server closes the connection (neither field, or a coding other than chunked last).
    Close,
}

/// A parsed response head, with the dl7 headers the services use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Body bytes on the wire when [`BodyKind::Length`], else 0.
    pub content_length: u64,
    /// How the body is delimited.
    pub body: BodyKind,
    /// The server keeps the connection open.
    pub keep_alive: bool,
    /// `Content-Type` mapped back to the catalog's type (`Other` if unknown).
    pub content_type: dl7_traces::ContentType,
    /// [`OBJECT_ID_HEADER`], if sent.
    pub object_id: Option<u32>,
    /// [`SERVED_BY_HEADER`], if sent.
    pub served_by: Option<u32>,
    /// [`CACHE_HEADER`], if sent: `Some(true)` for `HIT`.
    pub cache_hit: Option<bool>,
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

/// The MIME type sent by the origin back to the catalog's content type.
pub fn content_type_from_mime(mime: &[u8]) -> dl7_traces::ContentType {
    use dl7_traces::ContentType as C;
    let mime = mime.trim_ascii();
    [C::Html, C::Gif, C::Jpeg, C::Png, C::Css, C::Js]
        .into_iter()
        .find(|c| c.mime().len() == mime.len() && c.mime().as_bytes().eq_ignore_ascii_case(mime))
        .unwrap_or(C::Other)
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
    fn framing_follows_rfc_9112() {
        let len = |headers: &[(&str, &str)]| {
            let hs: Vec<httparse::Header> =
                headers.iter().map(|(n, v)| httparse::Header { name: n, value: v.as_bytes() }).collect();
            let mut storage = hs.clone();
            let req =
                httparse::Request { method: Some("POST"), path: Some("/"), version: Some(1), headers: &mut storage };
            request_body(&req)
        };
        use RequestBody::{Chunked, Length};
        assert_eq!(len(&[]), Ok(RequestBody::None));
        assert_eq!(len(&[("Content-Length", "5")]), Ok(Length(5)));
        assert_eq!(len(&[("Content-Length", "5"), ("content-length", "5")]), Ok(Length(5)));
        assert_eq!(len(&[("Content-Length", "5, 5")]), Ok(Length(5)));
        assert_eq!(len(&[("Content-Length", "5"), ("Content-Length", "6")]), Err(HeadError::Status(400)));
        assert_eq!(len(&[("Content-Length", "5, 6")]), Err(HeadError::Status(400)));
        assert_eq!(len(&[("Content-Length", "-5")]), Err(HeadError::Status(400)));
        assert_eq!(len(&[("Content-Length", "")]), Err(HeadError::Status(400)));
        assert_eq!(len(&[("Transfer-Encoding", "chunked")]), Ok(Chunked));
        assert_eq!(len(&[("Transfer-Encoding", "gzip, chunked")]), Err(HeadError::Status(501)));
        assert_eq!(
            len(&[("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")]),
            Err(HeadError::Status(501))
        );
        assert_eq!(len(&[("Transfer-Encoding", "gzip")]), Err(HeadError::Status(501)));
        assert_eq!(len(&[("Transfer-Encoding", "chunked"), ("Content-Length", "5")]), Err(HeadError::Status(400)));
    }

    #[test]
    fn host_follows_rfc_9112() {
        let check = |version: u8, hosts: &[&str]| {
            let mut hs: Vec<httparse::Header> =
                hosts.iter().map(|v| httparse::Header { name: "Host", value: v.as_bytes() }).collect();
            let req =
                httparse::Request { method: Some("GET"), path: Some("/"), version: Some(version), headers: &mut hs };
            check_host(&req)
        };
        assert_eq!(check(1, &["a.example:8080"]), Ok(()));
        assert_eq!(check(1, &[]), Err(HeadError::Status(400)));
        assert_eq!(check(0, &[]), Ok(()));
        assert_eq!(check(1, &["a", "a"]), Err(HeadError::Status(400)));
        assert_eq!(check(0, &["a", "b"]), Err(HeadError::Status(400)));
        assert_eq!(check(1, &["a b"]), Err(HeadError::Status(400)));
        assert_eq!(check(1, &["user@a"]), Err(HeadError::Status(400)));
        assert_eq!(check(1, &["[::1]:80"]), Ok(()));
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

    #[test]
    fn connection_close_wins_over_keep_alive() {
        assert_eq!(connection_option(b"Keep-Alive, Upgrade"), Some(true));
        assert_eq!(connection_option(b"keep-alive, CLOSE"), Some(false));
        assert_eq!(connection_option(b"closed, upgrade"), None);
    }

    #[test]
    fn header_names_match_ignoring_case_only() {
        assert!(is_name("Content-Length", b"content-length"));
        assert!(is_name("X-DL7-HOP", b"x-dl7-hop"));
        assert!(!is_name("content_length", b"content-length"));
        assert!(!is_name("content-lengths", b"content-length"));
        assert!(!is_name("x-dl7-hoq", b"x-dl7-hop"));
    }
}
