//! What a proxy does to a message's head on its way through (RFC 9110
//! section 7.6): the hop-by-hop fields are removed (those of section 7.6.1
//! and any the `Connection` field names), every end-to-end field passes
//! unchanged and in order, `Via` is added, and the framing fields
//! (`Content-Length`, `Transfer-Encoding`) are written for the body as this
//! hop sends it. Also the chunked coding's framing, decoded with
//! `httparse`'s chunk-size and trailer parsers and encoded here.
//!
//! Pure functions over byte buffers (heads are re-parsed with `httparse`
//! into stack arrays): no allocation once the output buffers have grown to
//! their working size, so the relayed hit path allocates nothing.

use super::{is_name, MAX_HEADERS};

/// The fields RFC 9110 section 7.6.1 says a proxy removes (Connection, and
/// the ones it SHOULD remove), and dl7's own hop header (meaningful between
/// dl7 services only; the owner drops it before the origin).
fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&[u8]; 7] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        super::HOP_HEADER.as_bytes(),
    ];
    HOP.iter().any(|h| is_name(name, h))
}

/// True when a `Connection` field of `headers` lists `name` (RFC 9110
/// section 7.6.1: those fields are hop-by-hop too).
fn named_in_connection(headers: &[httparse::Header], name: &str) -> bool {
    headers.iter().filter(|h| is_name(h.name, b"connection")).any(|h| {
        h.value.split(|&b| b == b',').any(|t| {
            let t = t.trim_ascii();
            t.len() == name.len() && t.eq_ignore_ascii_case(name.as_bytes())
        })
    })
}

/// True when `h` must not cross this hop.
fn drop_on_forward(headers: &[httparse::Header], h: &httparse::Header) -> bool {
    is_hop_by_hop(h.name) || named_in_connection(headers, h.name)
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How a request's body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body (no `Content-Length`, no `Transfer-Encoding`).
    None,
    /// `Content-Length` bytes (given, possibly 0).
    Length(u64),
    /// The chunked coding.
    Chunked,
}

/// How one hop forwards a request.
#[derive(Debug, Clone, Copy)]
pub struct ForwardRequest<'a> {
    /// Send this method instead of the client's (a HEAD miss fetches the GET it fills).
    pub method: Option<&'a str>,
    /// The origin-form target.
    pub path: &'a str,
    /// This hop's `Via` entry (`1.1 dl7-node0`).
    pub via: &'a str,
    /// Add dl7's hop header: the next dl7 service serves it, never dispatches it again.
    pub hop: bool,
    /// The body this hop sends.
    pub body: RequestBody,
    /// `Host` when the request has none (an HTTP/1.0 client's): the upstream's address.
    pub default_host: &'a str,
    /// Leave out the client's own conditionals (`If-*`): a cache's fill asks
    /// for the whole response, whatever one client holds.
    pub strip_conditionals: bool,
    /// Validators of this hop's own to send instead (`If-None-Match: "x"\r\n...`, raw lines).
    pub extra: &'a [u8],
}

/// The conditional request fields (RFC 9110 section 13.1).
fn is_conditional(name: &str) -> bool {
    [&b"if-match"[..], b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"if-range"]
        .iter()
        .any(|c| is_name(name, c))
}

/// Writes the request head `raw` (as the client sent it) as this hop
/// forwards it: `METHOD path HTTP/1.1`, every end-to-end field unchanged and
/// in order, `Host` kept (or taken from an absolute-form target), `Via`
/// appended, the body's framing, and the hop header when asked. `Expect` is
/// not forwarded: this hop has already answered `100 Continue` itself.
/// Returns false when `raw` is not a complete request head.
pub fn write_forwarded_request(out: &mut Vec<u8>, raw: &[u8], f: &ForwardRequest<'_>) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(raw), Ok(httparse::Status::Complete(_))) {
        return false;
    }
    let method = f.method.or(req.method).unwrap_or("GET");
    // An absolute-form target names the host; it overrides Host (RFC 9112 section 3.2.2).
    let authority =
        req.path.and_then(|t| t.strip_prefix("http://").or_else(|| t.strip_prefix("https://"))).map(|rest| {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            &rest[..end]
        });
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(f.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host = false;
    for h in req.headers.iter() {
        if drop_on_forward(req.headers, h)
            || is_name(h.name, b"content-length")
            || is_name(h.name, b"expect")
            || (f.strip_conditionals && is_conditional(h.name))
        {
            continue;
        }
        if is_name(h.name, b"host") {
            host = true;
            if let Some(a) = authority {
                push_header(out, b"Host", a.as_bytes());
                continue;
            }
        }
        push_header(out, h.name.as_bytes(), h.value);
    }
    if !host {
        push_header(out, b"Host", authority.unwrap_or(f.default_host).as_bytes());
    }
    push_header(out, b"Via", f.via.as_bytes());
    out.extend_from_slice(f.extra);
    match f.body {
        RequestBody::None => {}
        RequestBody::Length(n) => push_header(out, b"Content-Length", itoa::Buffer::new().format(n).as_bytes()),
        RequestBody::Chunked => push_header(out, b"Transfer-Encoding", b"chunked"),
    }
    if f.hop {
        push_header(out, super::HOP_HEADER.as_bytes(), b"1");
    }
    out.extend_from_slice(b"\r\n");
    true
}

/// How a relayed response's body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body by the rules (a HEAD's answer, 204, 304): the upstream's
    /// `Content-Length` passes unchanged (it tells the GET's length).
    Bodiless,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked coding (a body of unknown length to an HTTP/1.1 client).
    Chunked,
    /// Delimited by closing the connection (an HTTP/1.0 client's unknown length).
    Close,
}

/// How one hop relays a response head.
#[derive(Debug, Clone, Copy)]
pub struct RelayResponse<'a> {
    /// This hop's `Via` entry.
    pub via: &'a str,
    /// Add `x-dl7-served-by` when the upstream did not say who served it.
    pub served_by: Option<u32>,
    /// This hop's own `X-Cache` verdict (replacing the upstream's), if it has one.
    pub cache: Option<bool>,
    /// The body as this hop sends it.
    pub framing: ResponseFraming,
    /// Keep the client connection open.
    pub keep_alive: bool,
}

/// Writes the response head `raw` (as the upstream sent it) as this hop
/// relays it to its client: the status line with the upstream's code and
/// reason, every end-to-end field unchanged and in order, `Via` appended,
/// this hop's framing and `Connection`. Returns false when `raw` is not a
/// complete response head.
pub fn write_relayed_response(out: &mut Vec<u8>, raw: &[u8], r: &RelayResponse<'_>) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    if !matches!(resp.parse(raw), Ok(httparse::Status::Complete(_))) {
        return false;
    }
    let mut num = itoa::Buffer::new();
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(num.format(resp.code.unwrap_or(502)).as_bytes());
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut served = false;
    for h in resp.headers.iter() {
        if drop_on_forward(resp.headers, h) {
            continue;
        }
        if is_name(h.name, b"content-length") && r.framing != ResponseFraming::Bodiless {
            continue;
        }
        if r.cache.is_some() && is_name(h.name, super::CACHE_HEADER.as_bytes()) {
            continue;
        }
        served |= is_name(h.name, super::SERVED_BY_HEADER.as_bytes());
        push_header(out, h.name.as_bytes(), h.value);
    }
    push_header(out, b"Via", r.via.as_bytes());
    if let (Some(s), false) = (r.served_by, served) {
        push_header(out, super::SERVED_BY_HEADER.as_bytes(), num.format(s).as_bytes());
    }
    if let Some(hit) = r.cache {
        push_header(out, b"X-Cache", if hit { b"HIT" } else { b"MISS" });
    }
    match r.framing {
        ResponseFraming::Bodiless | ResponseFraming::Close => {}
        ResponseFraming::Length(n) => push_header(out, b"Content-Length", num.format(n).as_bytes()),
        ResponseFraming::Chunked => push_header(out, b"Transfer-Encoding", b"chunked"),
    }
    let keep = r.keep_alive && r.framing != ResponseFraming::Close;
    out.extend_from_slice(if keep { b"Connection: keep-alive\r\n\r\n" } else { b"Connection: close\r\n\r\n" });
    true
}

/// The end-to-end header lines of the response head `raw`, as a cache
/// stores them (RFC 9111 section 3.1: every field received, unknown ones
/// included, less `Connection` and the fields it names and the framing,
/// which each hop writes itself) and less the fields dl7 writes for every
/// answer (`x-cache`, `x-dl7-served-by`, and `Age`, which the cache
/// computes). Each line ends in CRLF. On a miss
/// only: it allocates.
pub fn stored_header_lines(raw: &[u8]) -> Vec<u8> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let mut out = Vec::with_capacity(raw.len());
    if !matches!(resp.parse(raw), Ok(httparse::Status::Complete(_))) {
        return out;
    }
    for h in resp.headers.iter() {
        if drop_on_forward(resp.headers, h)
            || is_name(h.name, b"content-length")
            || is_name(h.name, super::CACHE_HEADER.as_bytes())
            || is_name(h.name, super::SERVED_BY_HEADER.as_bytes())
            || is_name(h.name, b"proxy-authenticate")
            // The cache computes Age itself on every answer (RFC 9111 section 4.2.3).
            || is_name(h.name, b"age")
        {
            continue;
        }
        push_header(&mut out, h.name.as_bytes(), h.value);
    }
    out
}

/// The `chunk-size CRLF` line of a chunk of `n` bytes (`n > 0`), in `buf`.
pub fn chunk_size_line(n: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = 16;
    let mut v = n;
    loop {
        i -= 1;
        buf[i] = HEX[v & 15];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    &buf[i..]
}

/// The last chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Decodes the chunked coding from the start of a buffer, one step at a
/// time, without copying: the caller drops `Skip` framing bytes, hands on
/// `Data` bytes, reads more on `More`. Chunk extensions and trailer fields
/// are dropped (RFC 9112 section 7.1: a recipient may ignore them).
#[derive(Debug, Clone, Copy)]
pub struct ChunkedDecoder {
    phase: Phase,
}

/// One step of [`ChunkedDecoder::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkStep {
    /// Drop this many framing bytes from the buffer's start, then step again.
    Skip(usize),
    /// This many body bytes are at the buffer's start (call [`ChunkedDecoder::consumed`]).
    Data(usize),
    /// Read more bytes after the buffer's, then step again.
    More,
    /// The body is complete.
    Done,
}

/// A chunked body whose framing is broken (a bad chunk-size line, no CRLF
/// after a chunk's data, a bad trailer section, or framing over 8 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad chunked framing")]
pub struct BadChunk;

/// Largest chunk-size line or trailer section buffered while waiting for its end.
const MAX_FRAMING: usize = 8 * 1024;

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// At the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder { phase: Phase::Size }
    }

    /// True once the last chunk and the trailers are read.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The next step over `buf` (the unread bytes); `Err` on bad framing.
    pub fn step(&mut self, buf: &[u8]) -> Result<ChunkStep, BadChunk> {
        match self.phase {
            Phase::Size => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((n, size))) => {
                    self.phase = if size == 0 { Phase::Trailers } else { Phase::Data(size) };
                    Ok(ChunkStep::Skip(n))
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_FRAMING => Ok(ChunkStep::More),
                _ => Err(BadChunk),
            },
            Phase::Data(left) => {
                if buf.is_empty() {
                    Ok(ChunkStep::More)
                } else {
                    Ok(ChunkStep::Data(buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))))
                }
            }
            Phase::DataEnd => match buf {
                [b'\r', b'\n', ..] => {
                    self.phase = Phase::Size;
                    Ok(ChunkStep::Skip(2))
                }
                [] | [b'\r'] => Ok(ChunkStep::More),
                _ => Err(BadChunk),
            },
            Phase::Trailers => {
                let mut trailers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                match httparse::parse_headers(buf, &mut trailers) {
                    Ok(httparse::Status::Complete((n, _))) => {
                        self.phase = Phase::Done;
                        Ok(ChunkStep::Skip(n))
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_FRAMING => Ok(ChunkStep::More),
                    _ => Err(BadChunk),
                }
            }
            Phase::Done => Ok(ChunkStep::Done),
        }
    }

    /// `n` of the `Data` bytes were taken.
    pub fn consumed(&mut self, n: usize) {
        if let Phase::Data(left) = self.phase {
            let left = left - (n as u64).min(left);
            self.phase = if left == 0 { Phase::DataEnd } else { Phase::Data(left) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(wire: &[u8], piece: usize) -> Result<Vec<u8>, BadChunk> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut fed = 0;
        loop {
            match d.step(&buf)? {
                ChunkStep::Skip(n) => {
                    buf.drain(..n);
                }
                ChunkStep::Data(n) => {
                    out.extend_from_slice(&buf[..n]);
                    buf.drain(..n);
                    d.consumed(n);
                }
                ChunkStep::More => {
                    if fed >= wire.len() {
                        return Err(BadChunk);
                    }
                    let end = (fed + piece).min(wire.len());
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
                ChunkStep::Done => return Ok(out),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let wire = b"5;ext=1\r\nhello\r\nB\r\n, chunked!!\r\n0\r\nX-Trailer: t\r\n\r\n";
        for piece in [1, 2, 3, 7, 100] {
            assert_eq!(decode(wire, piece).unwrap(), b"hello, chunked!!", "reads of {piece}");
        }
        assert!(decode(b"5\r\nhelloXX0\r\n\r\n", 4).is_err(), "no CRLF after the data");
        assert!(decode(b"zz\r\n", 4).is_err(), "not a size");
        assert!(decode(b"5\r\nhel", 4).is_err(), "cut short");
    }

    #[test]
    fn chunk_size_lines_are_hex() {
        let mut b = [0u8; 18];
        assert_eq!(chunk_size_line(1, &mut b), b"1\r\n");
        assert_eq!(chunk_size_line(0x1a2b, &mut b), b"1a2b\r\n");
        assert_eq!(chunk_size_line(65536, &mut b), b"10000\r\n");
    }

    #[test]
    fn a_forwarded_request_keeps_end_to_end_fields_and_drops_hop_by_hop_ones() {
        let raw = b"POST http://b.test/form?q=1 HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive, X-Secret\r\n\
X-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Custom: one\r\nCookie: c=1\r\n\
Content-Length: 3\r\nExpect: 100-continue\r\nX-Dl7-Hop: 1\r\nVia: 1.0 other\r\n\r\n";
        let mut out = Vec::new();
        let f = ForwardRequest {
            method: None,
            path: "/form?q=1",
            via: "1.1 dl7-node0",
            hop: false,
            body: RequestBody::Length(3),
            default_host: "origin:80",
            strip_conditionals: false,
            extra: b"",
        };
        assert!(write_forwarded_request(&mut out, raw, &f));
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "POST /form?q=1 HTTP/1.1\r\nHost: b.test\r\nX-Custom: one\r\nCookie: c=1\r\nVia: 1.0 other\r\n\
Via: 1.1 dl7-node0\r\nContent-Length: 3\r\n\r\n"
        );
        let raw = b"GET /x HTTP/1.0\r\nIf-None-Match: \"a\"\r\n\r\n";
        let f = ForwardRequest {
            method: Some("GET"),
            path: "/x",
            hop: true,
            body: RequestBody::None,
            strip_conditionals: true,
            extra: b"If-None-Match: \"mine\"\r\n",
            ..f
        };
        assert!(write_forwarded_request(&mut out, raw, &f));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x HTTP/1.1\r\nHost: origin:80\r\nVia: 1.1 dl7-node0\r\nIf-None-Match: \"mine\"\r\nx-dl7-hop: 1\r\n\r\n"
        );
    }

    #[test]
    fn a_relayed_response_keeps_end_to_end_fields_and_rewrites_framing() {
        let raw = b"HTTP/1.1 301 Moved Permanently\r\nLocation: /new\r\nConnection: close, X-Hop\r\nX-Hop: h\r\n\
Transfer-Encoding: chunked\r\nETag: \"e\"\r\nX-Custom: c\r\n\r\n";
        let mut out = Vec::new();
        let r = RelayResponse {
            via: "1.1 dl7-front",
            served_by: Some(2),
            cache: None,
            framing: ResponseFraming::Chunked,
            keep_alive: true,
        };
        assert!(write_relayed_response(&mut out, raw, &r));
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "HTTP/1.1 301 Moved Permanently\r\nLocation: /new\r\nETag: \"e\"\r\nX-Custom: c\r\nVia: 1.1 dl7-front\r\n\
x-dl7-served-by: 2\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
        );
        // A HEAD's answer keeps the GET's Content-Length; a served-by already there stays the only one.
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nx-dl7-served-by: 1\r\n\r\n";
        let r = RelayResponse { framing: ResponseFraming::Bodiless, keep_alive: false, ..r };
        assert!(write_relayed_response(&mut out, raw, &r));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nx-dl7-served-by: 1\r\nVia: 1.1 dl7-front\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn stored_lines_are_the_end_to_end_fields() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\nConnection: X-A\r\nX-A: 1\r\n\
X-Cache: HIT\r\nETag: \"v1\"\r\nX-Unknown: kept\r\n\r\n";
        assert_eq!(stored_header_lines(raw), b"Content-Type: text/html\r\nETag: \"v1\"\r\nX-Unknown: kept\r\n");
    }
}
