//! RFC 9112 conformance of every service (origin, node, conventional front
//! end): message framing (section 6.3) and `Host` (section 3.2). Each case
//! gets 400 (501 for a transfer coding other than chunked) and its connection closed,
//! since after a framing error the next message's start is unknown.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Options, TestCluster};
use dl7_services::front::FrontMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `raw` on a fresh connection; returns the status and whether the
/// service then closed the connection.
async fn answer(addr: SocketAddr, raw: &[u8]) -> (u16, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut got = Vec::new();
    // A closing service ends the stream; one that keeps it open leaves the read waiting.
    let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut got)).await.is_ok();
    let text = String::from_utf8_lossy(&got);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, closed)
}

const CASES: &[(&str, &[u8], u16)] = &[
    (
        "two different Content-Length",
        b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
    ),
    ("a Content-Length list that differs", b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\nab", 400),
    ("an invalid Content-Length", b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\na", 400),
    (
        "Content-Length with Transfer-Encoding",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("a transfer coding it cannot decode", b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("an HTTP/1.1 request without Host", b"GET /x HTTP/1.1\r\n\r\n", 400),
    ("two Host fields", b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("two Host fields in HTTP/1.0", b"GET /x HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    ("an invalid Host", b"GET /x HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_rejects_bad_framing_and_bad_host_and_closes() {
    let c = TestCluster::start(Options { mode: FrontMode::Conventional, nodes: 2, ..Default::default() }).await;
    let services = [("origin", c.origin), ("node", c.nodes[0]), ("front", c.front)];
    let mut failures = Vec::new();
    for (service, addr) in services {
        for (case, raw, want) in CASES {
            let (status, closed) = answer(addr, raw).await;
            if (status, closed) != (*want, true) {
                failures.push(format!("{service}, {case}: status {status}, closed {closed} (want {want}, closed)"));
            }
        }
        // The same object, well framed: served, and the connection kept.
        let path = &c.catalog.objects[0].path;
        let good = format!("GET {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 0\r\n\r\n");
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(good.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.unwrap();
        if &head != b"HTTP/1.1 200" {
            failures.push(format!("{service}: a well-framed request got {:?}", String::from_utf8_lossy(&head)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
