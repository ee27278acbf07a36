//! The hit path allocates nothing: a request a node serves from its cache,
//! one it forwards to the owner and relays, and one the conventional front
//! end relays, each counted with a global allocator once the caches and
//! pools are warm. The client is a blocking socket with a fixed buffer, so
//! every allocation counted is the services'. Run without the libtest
//! harness (`harness = false`), whose own thread would allocate meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::{core_owner, Options, TestCluster};
use dl7_services::front::FrontMode;

#[global_allocator]
static ALLOC: dl7_alloc_count::Counting = dl7_alloc_count::Counting;

/// A keep-alive client that allocates nothing per request.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, buf: vec![0; 256 * 1024] }
    }

    /// Sends the prebuilt request and reads the whole response; returns the
    /// status and the body length.
    fn get(&mut self, request: &[u8]) -> (u16, usize) {
        self.stream.write_all(request).unwrap();
        let mut filled = 0;
        loop {
            let n = self.stream.read(&mut self.buf[filled..]).unwrap();
            assert!(n > 0, "server closed the connection");
            filled += n;
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = resp.parse(&self.buf[..filled]).unwrap() {
                let len: usize = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                    .unwrap();
                let status = resp.code.unwrap();
                while filled < head + len {
                    let n = self.stream.read(&mut self.buf[filled..]).unwrap();
                    assert!(n > 0, "server closed mid-body");
                    filled += n;
                }
                assert_eq!(filled, head + len, "bytes after the response");
                return (status, len);
            }
        }
    }
}

/// Requests every one of `requests` `rounds` times on one connection and
/// returns the allocations counted meanwhile (the first round warms up).
fn allocations(target: SocketAddr, requests: &[Vec<u8>], rounds: usize) -> usize {
    let mut client = Client::connect(target);
    for r in requests {
        assert_eq!(client.get(r).0, 200);
    }
    let before = dl7_alloc_count::allocations();
    for _ in 0..rounds {
        for r in requests {
            let (status, _) = client.get(r);
            assert_eq!(status, 200);
        }
    }
    dl7_alloc_count::allocations() - before
}

fn main() {
    the_hit_path_does_not_allocate();
    println!("no_alloc: the hit path does not allocate: ok");
}

fn the_hit_path_does_not_allocate() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cluster =
        rt.block_on(TestCluster::start(Options { nodes: 2, mode: FrontMode::Conventional, ..Default::default() }));
    let request = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: dl7\r\n\r\n").into_bytes();
    let (mut own, mut forwarded) = (Vec::new(), Vec::new());
    for o in &cluster.catalog.objects {
        match core_owner("md5", 2, &o.path) {
            0 => own.push(request(&o.path)),
            _ => forwarded.push(request(&o.path)),
        }
    }
    assert!(!own.is_empty() && !forwarded.is_empty());
    let all: Vec<Vec<u8>> = own.iter().chain(&forwarded).cloned().collect();
    // Every object cached at its owner before anything is counted.
    allocations(cluster.front, &all, 0);

    let rounds = 20;
    let local = allocations(cluster.nodes[0], &own, rounds);
    let relayed = allocations(cluster.nodes[0], &forwarded, rounds);
    let front = allocations(cluster.front, &all, rounds);
    assert_eq!(
        (local, relayed, front),
        (0, 0, 0),
        "allocations over {} local hits, {} forwarded hits and {} front-end requests",
        rounds * own.len(),
        rounds * forwarded.len(),
        rounds * all.len()
    );
    drop(cluster);
    rt.shutdown_background();
}
