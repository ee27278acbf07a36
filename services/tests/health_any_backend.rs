//! Health checks with backends that are not dl7 nodes (issue 19, item 3):
//! a conventional front end in front of two plain web servers that answer
//! 404 to `/health` and to dl7's `/_dl7/health` keeps serving 2xx, whether it checks them with a TCP
//! connect (the CLI's default for `dl7 front`) or with dl7's own HTTP check
//! (which then fails everywhere, so the panic rule sends every request to its
//! owner anyway); with no server left a request gets 503, and `/metrics`
//! shows the peers' health and the membership.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use dl7_services::front::{FrontConfig, FrontMode};
use dl7_services::health::{HealthCheck, HealthSpec};
use dl7_services::http::ClientConn;
use dl7_services::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A web server that knows nothing of dl7: every path is 200 with a short
/// body, except `/health` and whatever is under `/_dl7/`, which are 404 (as
/// nginx's default site answers).
/// Keep-alive, so the front end's pool reuses its connections. Returns its
/// address and the count of requests it answered.
async fn plain_server() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let parsed = {
                        let mut headers = [httparse::EMPTY_HEADER; 32];
                        let mut req = httparse::Request::new(&mut headers);
                        match req.parse(&buf) {
                            Ok(httparse::Status::Complete(n)) => Some((n, req.path.unwrap_or("/").to_string())),
                            Ok(httparse::Status::Partial) => None,
                            Err(_) => return,
                        }
                    };
                    let Some((n, path)) = parsed else {
                        if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                        continue;
                    };
                    buf.drain(..n);
                    let (status, body) = if path == "/health" || path.starts_with("/_dl7/") {
                        ("404 Not Found", "no such page".to_string())
                    } else {
                        ("200 OK", format!("ok {path}"))
                    };
                    count.fetch_add(1, Relaxed);
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, served)
}

async fn front(nodes: Vec<SocketAddr>, health: HealthSpec) -> (SocketAddr, Arc<Metrics>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fc = FrontConfig::new(FrontMode::Conventional, nodes, Vec::new());
    fc.health = health;
    let metrics = fc.metrics.clone();
    tokio::spawn(dl7_services::front::run(listener, fc, std::future::pending()));
    (addr, metrics)
}

/// Waits (bounded) until the front end's probes have judged every peer at
/// least `probes` times. The front end keeps its health to itself, so its
/// counters are polled: there is no change to await from outside.
async fn probed(m: &Metrics, probes: u64) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while m.stats().peers.iter().any(|p| p.probes < probes) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    waited.await.expect("the probes ran");
}

async fn statuses(front: SocketAddr, requests: usize) -> Vec<u16> {
    let mut conn = ClientConn::connect(front, Duration::from_secs(2)).await.unwrap();
    let mut body = Vec::new();
    let mut out = Vec::new();
    for i in 0..requests {
        let path = format!("/page/{i}.html");
        let head = conn.get(&path, false, &mut body).await.unwrap();
        if head.status == 200 {
            assert_eq!(body, format!("ok {path}").as_bytes());
        }
        out.push(head.status);
    }
    out
}

fn quick(check: HealthCheck) -> HealthSpec {
    HealthSpec { interval_ms: 20, rise: 1, fall: 1, check, ..HealthSpec::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_before_plain_web_servers_keeps_serving_2xx() {
    for check in [HealthCheck::Tcp, HealthCheck::Http, HealthCheck::None] {
        let (a, served_a) = plain_server().await;
        let (b, served_b) = plain_server().await;
        let (front, m) = front(vec![a, b], quick(check)).await;
        if check != HealthCheck::None {
            probed(&m, 3).await;
        }
        let peers = m.stats().peers;
        let all_up = peers.iter().all(|p| p.up);
        match check {
            // A connect passes: both stay in.
            HealthCheck::Tcp => assert!(all_up, "{peers:?}"),
            // Their /_dl7/health is 404: both out, and the panic rule routes to the owner anyway.
            HealthCheck::Http => assert!(peers.iter().all(|p| !p.up), "{peers:?}"),
            HealthCheck::None => assert!(all_up && peers.iter().all(|p| p.probes == 0), "{peers:?}"),
        }
        let got = statuses(front, 40).await;
        assert!(got.iter().all(|&s| s == 200), "{check:?}: {got:?}");
        assert!(served_a.load(Relaxed) > 0 && served_b.load(Relaxed) > 0, "{check:?}: both servers served");
        let panic = m.stats().panic_routes;
        assert_eq!(panic > 0, check == HealthCheck::Http, "{check:?}: {panic} panic routes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_server_left_a_request_gets_503_and_metrics_say_why() {
    // Bound but not listening: every connect is refused, and no other test can take the port meanwhile.
    let refusing: Vec<tokio::net::TcpSocket> = (0..2)
        .map(|_| {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            s
        })
        .collect();
    let dead: Vec<SocketAddr> = refusing.iter().map(|s| s.local_addr().unwrap()).collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let mut fc = FrontConfig::new(FrontMode::Conventional, dead, Vec::new());
    fc.health = quick(HealthCheck::Tcp);
    fc.admin = Some(admin);
    let m = fc.metrics.clone();
    tokio::spawn(dl7_services::front::run(listener, fc, std::future::pending()));
    probed(&m, 2).await;
    let got = statuses(addr, 5).await;
    assert_eq!(got, vec![503; 5], "no server left is 503, and the connection stays usable");
    let s = m.stats();
    assert_eq!((s.no_server, s.bad_gateway), (5, 0));
    let mut conn = ClientConn::connect(admin_addr, Duration::from_secs(2)).await.unwrap();
    let mut body = Vec::new();
    conn.get("/metrics", false, &mut body).await.unwrap();
    let text = String::from_utf8(body).unwrap();
    for line in [
        "dl7_peer_up{role=\"conventional\",peer=\"0\"} 0",
        "dl7_peer_up{role=\"conventional\",peer=\"1\"} 0",
        "dl7_member{role=\"conventional\",peer=\"1\"} 1",
        "dl7_members{role=\"conventional\"} 2",
        "dl7_no_server_total{role=\"conventional\"} 5",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}
