//! Bad input and faults: every case gets its status code fast, and nothing hangs.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use common::{core_owner, Options, TestCluster};
use dl7_core::{Membership, PolicySpec, ServerId};
use dl7_services::front::FrontMode;
use dl7_services::http::{ClientConn, Limits};
use dl7_services::load::{self, LoadConfig, Requests};
use dl7_services::node::NodeConfig;
use tokio::net::TcpListener;

/// A lone node (its origin address is unreachable) with a short head timeout.
async fn lone_node(limits: Limits) -> std::net::SocketAddr {
    lone_node_with(|nc| nc.limits = limits).await
}

/// A lone node (md5, an origin that refuses connections) configured by `set`.
async fn lone_node_with(set: impl FnOnce(&mut NodeConfig)) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap(); // dropped: refuses connections
    let mut nc = NodeConfig::new(
        ServerId(0),
        Membership::numbered(1).unwrap(),
        vec![addr],
        dead,
        PolicySpec::parse("md5").unwrap(),
    );
    set(&mut nc);
    tokio::spawn(dl7_services::node::run(l, nc, std::future::pending()));
    addr
}

async fn status_of(addr: std::net::SocketAddr, raw: &[u8]) -> u16 {
    challenge_of(addr, raw).await.0
}

#[tokio::test]
async fn slowloris_gets_408_and_the_connection_closes() {
    let limits = Limits { head_timeout: Duration::from_millis(300), ..Limits::default() };
    let addr = lone_node(limits).await;
    let mut c = ClientConn::connect(addr, Duration::from_secs(2)).await.unwrap();
    c.send_raw(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Slow: ").await.unwrap();
    let started = std::time::Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(5), c.read_to_end()).await.unwrap().unwrap();
    assert!(rest.starts_with(b"HTTP/1.1 408 "), "{:?}", String::from_utf8_lossy(&rest));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn oversized_heads_get_431_and_long_request_lines_414() {
    let addr = lone_node(Limits::default()).await;
    let mut big_header = b"GET /x HTTP/1.1\r\nX-Big: ".to_vec();
    big_header.extend_from_slice(&[b'a'; 20_000]);
    big_header.extend_from_slice(b"\r\n\r\n");
    assert_eq!(status_of(addr, &big_header).await, 431);
    let mut long_line = b"GET /".to_vec();
    long_line.extend_from_slice(&[b'a'; 20_000]);
    long_line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(addr, &long_line).await, 414);
    let mut many = b"GET /x HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(status_of(addr, &many).await, 431);
}

#[tokio::test]
async fn malformed_requests_get_400_and_other_methods_go_to_the_origin() {
    let addr = lone_node(Limits::default()).await;
    assert_eq!(status_of(addr, b"GARBAGE\r\n\r\n").await, 400);
    assert_eq!(status_of(addr, b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n").await, 400);
    assert_eq!(status_of(addr, b"\x00\x01\x02\r\n\r\n").await, 400);
    assert_eq!(status_of(addr, b"GET * HTTP/1.1\r\nHost: a\r\n\r\n").await, 400);
    // Passed through to the origin, which is down here: 502.
    assert_eq!(status_of(addr, b"DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n").await, 502);
    assert_eq!(status_of(addr, b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n").await, 501);
    assert_eq!(
        status_of(addr, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n").await,
        400,
        "authority-form is no origin-form"
    );
    assert_eq!(status_of(addr, b"PUT /_dl7/members?nodes=0 HTTP/1.1\r\nHost: a\r\n\r\n").await, 405, "admin-only");
}

#[tokio::test]
async fn unreachable_origin_gives_a_fast_502_and_is_counted() {
    let limits = Limits { upstream_timeout: Duration::from_millis(500), ..Limits::default() };
    let addr = lone_node(limits).await;
    let started = std::time::Instant::now();
    assert_eq!(status_of(addr, b"GET /a.gif HTTP/1.1\r\nHost: a\r\n\r\n").await, 502);
    assert!(started.elapsed() < Duration::from_secs(1));
    let stats = dl7_services::admin::fetch_stats(addr, Duration::from_secs(2)).await.unwrap();
    assert_eq!(stats.bad_gateway, 1);
}

#[tokio::test]
async fn origin_serves_exact_objects_and_404_for_unknown_paths() {
    let c = TestCluster::start(Options { nodes: 1, ..Default::default() }).await;
    let mut conn = ClientConn::connect(c.origin, Duration::from_secs(2)).await.unwrap();
    let mut body = Vec::new();
    for o in c.catalog.objects.iter().take(6) {
        let head = conn.get(&o.path, false, &mut body).await.unwrap();
        assert_eq!((head.status, head.content_type, head.object_id), (200, o.content_type, Some(o.id.0)));
        assert_eq!(body, dl7_services::content::Pattern::of(o).body(o.size));
    }
    assert_eq!(conn.get("/nope.gif", false, &mut body).await.unwrap().status, 404);
    // The same connection keeps working after a 404.
    assert_eq!(conn.get(&c.catalog.objects[0].path, false, &mut body).await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_owner_gets_503_without_fallback_and_rerouting_with_it() {
    for fallbacks in [0, 2] {
        let mut c =
            TestCluster::start(Options { mode: FrontMode::Conventional, fallbacks, ..Default::default() }).await;
        let victim = 1;
        c.stop_node(victim);
        // Wait until the node's listener is really closed (no sleeps: poll the port, at most 10 s).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(c.nodes[victim]).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "node {victim} still accepts 10 s after its stop");
            tokio::task::yield_now().await;
        }
        let mut conn = ClientConn::connect(c.front, Duration::from_secs(2)).await.unwrap();
        let mut body = Vec::new();
        for o in &c.catalog.objects {
            let started = std::time::Instant::now();
            let head = conn.get(&o.path, false, &mut body).await.unwrap();
            assert!(started.elapsed() < Duration::from_secs(2));
            let owner = core_owner("md5", 3, &o.path) as usize;
            if owner != victim {
                assert_eq!(head.status, 200);
                assert_eq!(head.served_by, Some(owner as u32));
            } else if fallbacks == 0 {
                // No server left to ask (HAProxy's 503), not a bad answer from one (502).
                assert_eq!(head.status, 503, "{}", o.path);
            } else {
                assert_eq!(head.status, 200);
                assert_ne!(head.served_by, Some(victim as u32));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_node_mid_run_keeps_the_others_serving() {
    let mut c = TestCluster::start(Options { mode: FrontMode::Distributed, nodes: 3, ..Default::default() }).await;
    let mut cfg = LoadConfig::new(c.front, c.catalog.clone());
    cfg.connections = 6;
    cfg.duration = Duration::from_millis(800);
    cfg.timeout = Duration::from_secs(3);
    cfg.requests = Requests::Stream { seed: 3 };
    let run = tokio::spawn(load::run(cfg));
    // Stop node 2 once the run is well under way.
    while c.node_metrics[2].requests.load(Relaxed) < 50 {
        assert!(!run.is_finished(), "the run ended before node 2 served 50 requests");
        tokio::task::yield_now().await;
    }
    c.stop_node(2);
    let r = run.await.unwrap().unwrap();
    let served_after: u64 = c.node_metrics[..2].iter().map(|m| m.requests.load(Relaxed)).sum();
    assert!(served_after > 100, "{}", r.summary());
    // Connections that were on the stopped node are closed and reopened; few requests fail.
    assert!(r.requests > 100 && (r.errors as f64) < 0.1 * r.requests as f64, "{}", r.summary());
}

#[tokio::test]
async fn connections_over_the_cap_get_503() {
    let limits = Limits { max_connections: 1, ..Limits::default() };
    let addr = lone_node(limits).await;
    let mut first = ClientConn::connect(addr, Duration::from_secs(2)).await.unwrap();
    let mut body = Vec::new();
    assert_eq!(first.get(dl7_services::admin::METRICS_PATH, false, &mut body).await.unwrap().status, 200);
    assert_eq!(status_of(addr, b"GET /_dl7/metrics HTTP/1.1\r\nHost: a\r\n\r\n").await, 503);
}

#[tokio::test]
async fn shutdown_drains_an_in_flight_request() {
    let catalog = common::catalog();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let mut oc = dl7_services::origin::OriginConfig::new(Arc::clone(&catalog));
    oc.delay = Duration::from_millis(200);
    let metrics = oc.metrics.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dl7_services::origin::run(l, oc, async move {
        let _ = rx.await;
    }));
    let path = catalog.objects[0].path.clone();
    let client = tokio::spawn(async move {
        let mut c = ClientConn::connect(addr, Duration::from_secs(2)).await.unwrap();
        let mut body = Vec::new();
        c.get(&path, false, &mut body).await.unwrap().status
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metrics.inflight.load(Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the request never arrived");
        tokio::task::yield_now().await;
    }
    tx.send(()).unwrap();
    assert_eq!(client.await.unwrap(), 200);
    server.await.unwrap().unwrap();
    assert!(TcpListener::bind(addr).await.is_ok() || tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_never_panic_a_service() {
    static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Relaxed);
        previous(info);
    }));
    let c = TestCluster::start(Options { mode: FrontMode::Conventional, ..Default::default() }).await;
    let targets = [c.front, c.nodes[0], c.origin];
    let mut x: u64 = 0x1234_5678;
    let mut next = move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) as u32
    };
    let pieces: [&[u8]; 8] = [
        b"GET ",
        b"/test/obj001.html",
        b" HTTP/1.1\r\n",
        b"Host: x\r\n",
        b"\r\n",
        b"Content-Length: 3\r\n",
        b"\x00\xff",
        b":",
    ];
    for round in 0..150 {
        let mut input = Vec::new();
        for _ in 0..(next() % 12) {
            if next() % 3 == 0 {
                input.extend((0..next() % 40).map(|_| next() as u8));
            } else {
                input.extend_from_slice(pieces[next() as usize % pieces.len()]);
            }
        }
        let addr = targets[round % targets.len()];
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = s.write_all(&input).await;
        let _ = s.shutdown().await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut out))
            .await
            .expect("answer or close, never hang");
    }
    // Everyone still serves.
    let mut conn = ClientConn::connect(c.front, Duration::from_secs(2)).await.unwrap();
    let mut body = Vec::new();
    assert_eq!(conn.get(&c.catalog.objects[1].path, false, &mut body).await.unwrap().status, 200);
    assert!(!PANICKED.load(Relaxed), "a service task panicked on random input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_acknowledging_handoffs_gets_no_more_clients() {
    let c = TestCluster::start(Options { nodes: 1, ..Default::default() }).await;
    // A stuck node: takes sockets off its unix socket but never acknowledges them.
    let stuck_path = c.dir.join("stuck.sock");
    let stuck = tokio::net::UnixListener::bind(&stuck_path).unwrap();
    let taken = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t = taken.clone();
    tokio::spawn(async move {
        let (unix, _) = stuck.accept().await.unwrap();
        let mut held = Vec::new();
        while let Some(s) = dl7_services::handoff::receive_socket(&unix).await {
            held.push(s);
            t.fetch_add(1, Relaxed);
        }
    });
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = l.local_addr().unwrap();
    let real = c.dir.join("node0.sock");
    let mut fc = dl7_services::front::FrontConfig::new(
        FrontMode::Distributed,
        vec![c.nodes[0], c.nodes[0]],
        vec![stuck_path, real],
    );
    fc.handoff_stall = Duration::from_millis(100);
    let fm = fc.metrics.clone();
    tokio::spawn(dl7_services::front::run(l, fc, std::future::pending()));
    // Until `want` sockets have reached the nodes and the front end has
    // counted them: it counts a handoff after the send returns, which may be
    // after the receiver has counted it.
    let arrived = |want: u64| {
        let (taken, node, fm) = (taken.clone(), c.node_metrics[0].clone(), fm.clone());
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while taken.load(Relaxed) + node.handoffs.load(Relaxed) < want || fm.handoffs.load(Relaxed) < want {
                assert!(tokio::time::Instant::now() < deadline, "{want} handoffs did not arrive in 10 s");
                tokio::task::yield_now().await;
            }
        }
    };
    // A burst: round robin gives the stuck node every other client while it is not yet overdue.
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(tokio::net::TcpStream::connect(front).await.unwrap());
    }
    arrived(10).await;
    let burst = taken.load(Relaxed);
    assert!(burst >= 3, "round robin should reach the stuck node during the burst: {burst}");
    // Let its oldest unacknowledged handoff become overdue (the timeout under test).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        clients.push(tokio::net::TcpStream::connect(front).await.unwrap());
    }
    arrived(30).await;
    assert_eq!(fm.handoffs.load(Relaxed), 30);
    assert_eq!(fm.bad_gateway.load(Relaxed), 0);
    assert_eq!(taken.load(Relaxed), burst, "the stalled node got new clients");
    drop(clients);
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_server_is_retried_on_a_fresh_one() {
    let catalog = common::catalog();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = l.local_addr().unwrap();
    let mut oc = dl7_services::origin::OriginConfig::new(catalog.clone());
    // The origin closes idle keep-alive connections after 100 ms.
    oc.limits.head_timeout = Duration::from_millis(100);
    let om = oc.metrics.clone();
    tokio::spawn(dl7_services::origin::run(l, oc, std::future::pending()));
    let pool = dl7_services::http::Pool::new(origin, 4);
    let (h, _) = pool.get(&catalog.objects[0].path, false, Duration::from_secs(2), 1 << 20).await.unwrap();
    assert_eq!(h.status, 200);
    // Outlive the origin's idle timeout (the behaviour under test is a timeout).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (h, body) = pool.get(&catalog.objects[1].path, false, Duration::from_secs(2), 1 << 20).await.unwrap();
    assert_eq!((h.status, body.len() as u64), (200, catalog.objects[1].size));
    assert_eq!(om.connections.load(Relaxed), 2, "the stale connection was replaced by exactly one new one");
}

/// A lone node with an admin listener guarded by `token`; its (public, admin) addresses.
async fn guarded_node(token: &str) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let token = dl7_services::admin::AdminToken::new(token).unwrap();
    let addr = lone_node_with(|nc| {
        nc.admin = Some(admin);
        nc.admin_token = Some(token);
    })
    .await;
    (addr, admin_addr)
}

/// The status and the `WWW-Authenticate` field of `raw`'s answer.
async fn challenge_of(addr: std::net::SocketAddr, raw: &[u8]) -> (u16, Option<String>) {
    let mut c = ClientConn::connect(addr, Duration::from_secs(2)).await.unwrap();
    c.send_raw(raw).await.unwrap();
    let mut body = Vec::new();
    let head =
        tokio::time::timeout(Duration::from_secs(5), c.read_response(&mut body, 1 << 20)).await.unwrap().unwrap();
    let fields = String::from_utf8_lossy(c.last_head()).into_owned();
    let challenge = fields
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate")))
        .map(|(_, v)| v.trim().to_string());
    (head.status, challenge)
}

#[tokio::test]
async fn a_membership_change_without_the_admin_token_gets_401() {
    let (addr, admin) = guarded_node("s3cret").await;
    let put = |auth: &str| format!("PUT /_dl7/members?nodes=0 HTTP/1.1\r\nHost: a\r\n{auth}Content-Length: 0\r\n\r\n");
    for auth in
        ["", "Authorization: Bearer wrong\r\n", "Authorization: Bearer s3cre\r\n", "Authorization: Basic s3cret\r\n"]
    {
        let (status, challenge) = challenge_of(admin, put(auth).as_bytes()).await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"dl7\""), "{auth:?}: RFC 6750's challenge");
    }
    assert_eq!(challenge_of(admin, put("Authorization: Bearer s3cret\r\n").as_bytes()).await, (200, None));
    // Reading needs no token: Prometheus scrapes, operators look.
    for path in ["/metrics", "/stats", "/_dl7/stats", "/_dl7/members", "/_dl7/health"] {
        let get = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(status_of(admin, get.as_bytes()).await, 200, "GET {path} on the admin listener");
    }
    // The client the testbed uses sends the token when it has one.
    let token = dl7_services::admin::AdminToken::new("s3cret").unwrap();
    dl7_services::admin::put_members(admin, &[0], Some(&token), Duration::from_secs(2)).await.unwrap();
    let refused = dl7_services::admin::put_members(admin, &[0], None, Duration::from_secs(2)).await.unwrap_err();
    assert!(refused.to_string().contains("status 401"), "{refused}");
    // The public port never takes a change, token or not.
    assert_eq!(status_of(addr, put("Authorization: Bearer s3cret\r\n").as_bytes()).await, 405);
}
