//! A web server that is not dl7's origin, for the proxying and caching
//! tests: it answers what each test asks of it by path, records every
//! request it gets (method, target, fields, body), and frames its answers
//! as real servers do (Content-Length, chunked, or to the close; interim
//! 1xx first when asked). Heads are parsed with `httparse`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dl7_core::{Membership, PolicySpec, ServerId};
use dl7_services::front::{FrontConfig, FrontMode};
use dl7_services::http::proxy::{ChunkStep, ChunkedDecoder};
use dl7_services::node::NodeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the web server got it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// Every value of the field `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The field `name`'s first value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }
}

/// What the server answers: `(status line, fields, body, framing)` for a request.
pub type Answer = Box<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// How the body of a reply is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length,
    Chunked,
    Close,
}

/// One reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Interim answers sent first (`103 Early Hints`, `100 Continue`).
    pub interim: Vec<u16>,
}

impl Reply {
    pub fn new(status: u16, body: &[u8]) -> Self {
        Reply {
            status,
            reason: "Whatever",
            headers: Vec::new(),
            body: body.to_vec(),
            framing: Framing::Length,
            interim: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A running web server.
pub struct Web {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Web {
    pub async fn start(answer: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Web {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(Box::new(answer));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s, answer.clone(), log.clone()));
            }
        });
        Web { addr, seen }
    }

    /// The requests got so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The last request got for `target`.
    pub fn last(&self, target: &str) -> Option<Seen> {
        self.seen().into_iter().rev().find(|s| s.target == target)
    }

    /// How many requests for `target` it got.
    pub fn count(&self, target: &str) -> usize {
        self.seen().iter().filter(|s| s.target == target).count()
    }
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    matches!(tokio::time::timeout(Duration::from_secs(5), s.read_buf(buf)).await, Ok(Ok(n)) if n > 0)
}

async fn serve(mut s: TcpStream, answer: Arc<Answer>, log: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    loop {
        // The head.
        let (n, mut seen, length, chunked, expect) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let headers: Vec<(String, String)> = req
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect();
                    let find =
                        |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
                    let length = find("content-length").and_then(|v| v.trim().parse::<usize>().ok());
                    let chunked = find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
                    let expect = find("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
                    let seen = Seen {
                        method: req.method.unwrap_or("").into(),
                        target: req.path.unwrap_or("").into(),
                        headers,
                        body: Vec::new(),
                    };
                    break (n, seen, length, chunked, expect);
                }
                Ok(httparse::Status::Partial) => {
                    if !read_more(&mut s, &mut buf).await {
                        return;
                    }
                }
                Err(_) => return,
            }
        };
        buf.drain(..n);
        if expect && s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
            return;
        }
        // The body.
        if chunked {
            let mut d = ChunkedDecoder::new();
            loop {
                match d.step(&buf) {
                    Ok(ChunkStep::Skip(k)) => {
                        buf.drain(..k);
                    }
                    Ok(ChunkStep::Data(k)) => {
                        seen.body.extend_from_slice(&buf[..k]);
                        buf.drain(..k);
                        d.consumed(k);
                    }
                    Ok(ChunkStep::More) => {
                        if !read_more(&mut s, &mut buf).await {
                            return;
                        }
                    }
                    Ok(ChunkStep::Done) => break,
                    Err(_) => return,
                }
            }
        } else if let Some(len) = length {
            while buf.len() < len {
                if !read_more(&mut s, &mut buf).await {
                    return;
                }
            }
            seen.body = buf.drain(..len).collect();
        }
        let head_request = seen.method == "HEAD";
        let reply = answer(&seen);
        log.lock().unwrap().push(seen);
        let mut out = Vec::new();
        for i in &reply.interim {
            out.extend_from_slice(format!("HTTP/1.1 {i} Interim\r\nLink: </style.css>\r\n\r\n").as_bytes());
        }
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", reply.status, reply.reason).as_bytes());
        // Every origin with a clock sends Date (RFC 9110 section 6.6.1).
        if !reply.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("date")) {
            out.extend_from_slice(
                format!("Date: {}\r\n", httpdate::fmt_http_date(std::time::SystemTime::now())).as_bytes(),
            );
        }
        for (k, v) in &reply.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        let bodiless = head_request || reply.status == 204 || reply.status == 304;
        match reply.framing {
            Framing::Length => {
                out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", reply.body.len()).as_bytes())
            }
            Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n"),
            Framing::Close => out.extend_from_slice(b"Connection: close\r\n\r\n"),
        }
        if !bodiless {
            match reply.framing {
                Framing::Chunked => {
                    for piece in reply.body.chunks(7) {
                        out.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
                        out.extend_from_slice(piece);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
                }
                _ => out.extend_from_slice(&reply.body),
            }
        }
        if s.write_all(&out).await.is_err() || reply.framing == Framing::Close {
            return;
        }
    }
}

/// Nodes in front of `origin` (md5 over `n` of them) and, optionally, a
/// conventional front end before them; every listener on 127.0.0.1 port 0.
pub struct Cluster {
    pub nodes: Vec<SocketAddr>,
    pub node_metrics: Vec<Arc<dl7_services::metrics::Metrics>>,
    pub front: Option<SocketAddr>,
}

impl Cluster {
    pub async fn start(n: usize, origin: SocketAddr, front: bool) -> Cluster {
        Cluster::start_tuned(n, origin, front, |_, _| {}, |_| {}).await
    }

    /// As [`Cluster::start`], each node's config changed by `node` (with its
    /// index) and the front end's by `front_end` before they start.
    pub async fn start_tuned(
        n: usize,
        origin: SocketAddr,
        front: bool,
        mut node: impl FnMut(usize, &mut NodeConfig),
        front_end: impl FnOnce(&mut FrontConfig),
    ) -> Cluster {
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let nodes: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let members = Membership::numbered(n).unwrap();
        let policy = PolicySpec::parse("md5").unwrap();
        let mut node_metrics = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let mut nc = NodeConfig::new(ServerId(i as u32), members.clone(), nodes.clone(), origin, policy.clone());
            node(i, &mut nc);
            node_metrics.push(nc.metrics.clone());
            tokio::spawn(dl7_services::node::run(l, nc, std::future::pending()));
        }
        let front = if front {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let mut fc = FrontConfig::new(FrontMode::Conventional, nodes.clone(), Vec::new());
            fc.policy = policy;
            fc.members = members;
            front_end(&mut fc);
            tokio::spawn(dl7_services::front::run(l, fc, std::future::pending()));
            Some(addr)
        } else {
            None
        };
        Cluster { nodes, node_metrics, front }
    }
}

/// A path under `prefix` whose md5 owner among `n` nodes is `owner`.
pub fn path_owned_by(prefix: &str, owner: u32, n: usize) -> String {
    (0..).map(|i| format!("{prefix}{i}")).find(|p| super::core_owner("md5", n, p) == owner).unwrap()
}

/// One raw request on a fresh connection; the response's status, its head
/// as sent (every field), and its decoded body.
pub async fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut c = dl7_services::http::ClientConn::connect(addr, Duration::from_secs(3)).await.unwrap();
    c.send_raw(raw).await.unwrap();
    let mut body = Vec::new();
    let head_request = raw.starts_with(b"HEAD ");
    let head = tokio::time::timeout(Duration::from_secs(5), c.read_response_to(&mut body, 1 << 24, head_request))
        .await
        .expect("an answer in time")
        .unwrap();
    (head.status, String::from_utf8_lossy(c.last_head()).into_owned(), body)
}

/// The values of field `name` in the response head `head`.
pub fn fields<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}
