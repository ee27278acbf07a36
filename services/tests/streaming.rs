//! Relays stream: large objects pass byte-exact through the conventional
//! front end and a forwarding node, a slow client makes the front end hold
//! no more than its relay buffer, and an upstream that dies mid-body closes
//! the client connection and is counted.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use common::core_owner;
use dl7_core::{Membership, PolicySpec, ServerId};
use dl7_services::content::Pattern;
use dl7_services::front::{FrontConfig, FrontMode};
use dl7_services::http::{ClientConn, FetchError, RELAY_CHUNK};
use dl7_services::metrics::Metrics;
use dl7_services::node::NodeConfig;
use dl7_services::origin::OriginConfig;
use dl7_traces::{Catalog, ContentType, Object, ObjectId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const BIG: u64 = 8 << 20;
const HUGE: u64 = 24 << 20;

/// Two large objects and a small one.
fn catalog() -> Arc<Catalog> {
    let obj = |i: u32, size: u64, t| Object {
        id: ObjectId(i),
        path: format!("/big/obj{i}.{}", dl7_traces::surge::extension(t)),
        size,
        content_type: t,
        weight: 1.0,
    };
    Arc::new(Catalog {
        objects: vec![obj(0, BIG, ContentType::Jpeg), obj(1, HUGE, ContentType::Gif), obj(2, 999, ContentType::Html)],
    })
}

struct Cluster {
    catalog: Arc<Catalog>,
    nodes: Vec<SocketAddr>,
    node_metrics: Vec<Arc<Metrics>>,
    front: SocketAddr,
    front_metrics: Arc<Metrics>,
}

/// Origin, two md5 nodes with room for every object, conventional front end.
async fn cluster() -> Cluster {
    let catalog = catalog();
    let origin_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = origin_l.local_addr().unwrap();
    tokio::spawn(dl7_services::origin::run(origin_l, OriginConfig::new(catalog.clone()), std::future::pending()));
    let mut listeners = Vec::new();
    for _ in 0..2 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let nodes: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let members = Membership::numbered(2).unwrap();
    let policy = PolicySpec::parse("md5").unwrap();
    let mut node_metrics = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let mut nc = NodeConfig::new(ServerId(i as u32), members.clone(), nodes.clone(), origin, policy.clone());
        nc.cache_bytes = 128 << 20;
        node_metrics.push(nc.metrics.clone());
        tokio::spawn(dl7_services::node::run(l, nc, std::future::pending()));
    }
    let front_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = front_l.local_addr().unwrap();
    let mut fc = FrontConfig::new(FrontMode::Conventional, nodes.clone(), Vec::new());
    fc.policy = policy;
    fc.members = members;
    let front_metrics = fc.metrics.clone();
    tokio::spawn(dl7_services::front::run(front_l, fc, std::future::pending()));
    Cluster { catalog, nodes, node_metrics, front, front_metrics }
}

fn expected(o: &Object) -> Vec<u8> {
    Pattern::of(o).body(o.size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_pass_byte_exact_through_the_front_end_and_a_forwarding_node() {
    let c = cluster().await;
    let big = &c.catalog.objects[0];
    let small = &c.catalog.objects[2];
    let owner = core_owner("md5", 2, &big.path) as usize;
    let forwarder = 1 - owner;
    let mut body = Vec::new();
    for (target, what) in [(c.front, "front end"), (c.nodes[forwarder], "forwarding node")] {
        // Twice each, then a small one, on one keep-alive connection: the relay
        // must leave both connections exactly at the end of each response.
        let mut conn = ClientConn::connect(target, Duration::from_secs(2)).await.unwrap();
        for (o, round) in [(big, 0), (big, 1), (small, 0)] {
            let head = conn.get(&o.path, false, &mut body).await.unwrap();
            assert_eq!(head.status, 200, "{what} {} round {round}", o.path);
            assert_eq!(head.object_id, Some(o.id.0), "{what}");
            assert_eq!(body.len() as u64, o.size, "{what} {}", o.path);
            assert!(body == expected(o), "{what} {}: body differs", o.path);
        }
    }
    // The forwarding node relayed and did not cache: only the owner holds it.
    let fwd = &c.node_metrics[forwarder];
    assert!(fwd.relay_client_bytes.load(Relaxed) >= 2 * BIG);
    assert_eq!(fwd.relay_client_bytes.load(Relaxed), fwd.relay_upstream_bytes.load(Relaxed));
    let cached = common::get_text(c.nodes[forwarder], dl7_services::admin::CACHE_PATH).await;
    assert!(!cached.contains(&big.path), "forwarder cached {}: {cached}", big.path);
    let cached = common::get_text(c.nodes[owner], dl7_services::admin::CACHE_PATH).await;
    assert!(cached.contains(&big.path), "owner lacks {}: {cached}", big.path);
    assert_eq!(c.front_metrics.upstream_aborted.load(Relaxed), 0);
    assert_eq!(c.front_metrics.bad_gateway.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_makes_the_front_end_hold_at_most_its_relay_buffer() {
    let c = cluster().await;
    let huge = &c.catalog.objects[1];
    // Warm the owner's cache, so the node can send as fast as the front end takes it.
    let owner = core_owner("md5", 2, &huge.path) as usize;
    let mut body = Vec::new();
    let mut warm = ClientConn::connect(c.nodes[owner], Duration::from_secs(2)).await.unwrap();
    warm.get(&huge.path, false, &mut body).await.unwrap();
    drop(body);

    let m = &c.front_metrics;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut client = socket.connect(c.front).await.unwrap();
    client.write_all(format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", huge.path).as_bytes()).await.unwrap();
    // Read nothing until the front end's progress stops.
    let mut last = (u64::MAX, u64::MAX);
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = (m.relay_upstream_bytes.load(Relaxed), m.relay_client_bytes.load(Relaxed));
        if now == last && now.0 > 0 {
            break;
        }
        last = now;
    }
    let (read, written) = last;
    // The response is stuck mid-way (the client reads nothing) ...
    assert!(written < huge.size / 2, "front end wrote {written} of {} bytes to a client that reads nothing", huge.size);
    // ... and the front end holds at most one relay buffer of it in memory;
    // the rest waits in the node (TCP flow control), not in the front end.
    assert!(
        read - written <= RELAY_CHUNK as u64,
        "front end holds {} bytes (read {read}, wrote {written})",
        read - written
    );
    assert!(read < huge.size, "front end read all {read} bytes from the node for a stalled client");

    // Now read it all: byte-exact, and every byte read from the node was written.
    let pattern = Pattern::of(huge);
    let mut got = Vec::with_capacity(huge.size as usize + 4096);
    let mut chunk = vec![0u8; 256 * 1024];
    let head_end = loop {
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&chunk[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    while ((got.len() - head_end) as u64) < huge.size {
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed after {} body bytes", got.len() - head_end);
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!((got.len() - head_end) as u64, huge.size);
    assert!(pattern.matches(0, &got[head_end..]), "body differs");
    assert_eq!(m.relay_upstream_bytes.load(Relaxed), m.relay_client_bytes.load(Relaxed));
}

/// An upstream that answers every GET with a 1 MB 200 head and `sent` body
/// bytes, then closes (`stall`: keeps the socket open and silent instead).
async fn dying_upstream(sent: usize, stall: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: 1000000\r\n\r\n";
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&vec![7u8; sent]).await;
                if stall {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
        }
    });
    addr
}

/// GETs `path` from `addr`; asserts the 1 MB head arrives and the connection
/// then closes short of the body, within `within`.
async fn expect_cut_short(addr: SocketAddr, path: &str, sent: usize, within: Duration) {
    let mut conn = ClientConn::connect(addr, Duration::from_secs(2)).await.unwrap();
    conn.send_get(path, false).await.unwrap();
    let mut body = Vec::new();
    let r = tokio::time::timeout(within, conn.read_response(&mut body, 2_000_000)).await.expect("client hangs");
    assert!(matches!(r, Err(FetchError::Closed)), "expected a closed connection, got {r:?}");
    // Whatever arrived is the upstream's, never more than it sent.
    let rest = conn.read_to_end().await.unwrap_or_default();
    assert!(rest.len() <= sent + 200, "{} bytes after the cut", rest.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_dying_mid_body_closes_the_client_connection_and_is_counted() {
    for stall in [false, true] {
        // Conventional front end over the dying upstream.
        let up = dying_upstream(100_000, stall).await;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = l.local_addr().unwrap();
        let mut fc = FrontConfig::new(FrontMode::Conventional, vec![up], Vec::new());
        fc.fallbacks = 0;
        fc.limits.upstream_timeout = Duration::from_millis(300);
        let fm = fc.metrics.clone();
        tokio::spawn(dl7_services::front::run(l, fc, std::future::pending()));
        expect_cut_short(front, "/x.gif", 100_000, Duration::from_secs(5)).await;
        assert_eq!(fm.upstream_aborted.load(Relaxed), 1, "front end, stall {stall}");
        assert_eq!(fm.payload_out.load(Relaxed), 0, "a cut response is no payload");

        // Node 0 forwarding to node 1 = the dying upstream.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = l.local_addr().unwrap();
        let path = (0..100).map(|i| format!("/x{i}.gif")).find(|p| core_owner("md5", 2, p) == 1).unwrap();
        let dead_origin = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let mut nc = NodeConfig::new(
            ServerId(0),
            Membership::numbered(2).unwrap(),
            vec![node, up],
            dead_origin,
            PolicySpec::parse("md5").unwrap(),
        );
        nc.fallbacks = 0;
        nc.limits.upstream_timeout = Duration::from_millis(300);
        let nm = nc.metrics.clone();
        tokio::spawn(dl7_services::node::run(l, nc, std::future::pending()));
        expect_cut_short(node, &path, 100_000, Duration::from_secs(5)).await;
        assert_eq!(nm.upstream_aborted.load(Relaxed), 1, "node, stall {stall}");
        // The node still serves: its next request gets an answer (the cut again).
        expect_cut_short(node, &path, 100_000, Duration::from_secs(5)).await;
        assert_eq!(nm.upstream_aborted.load(Relaxed), 2, "node, stall {stall}");
    }
}
