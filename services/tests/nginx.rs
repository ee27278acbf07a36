//! dl7 against nginx, the web server users put behind it (issue 19's
//! tests): the conventional front end in front of two nginx servers that
//! have no `/health` gets no non-2xx answer over a bounded load; a node in
//! front of nginx as its origin passes every byte and nginx's validators,
//! stores what nginx's `Last-Modified` lets it, answers conditionals from
//! its cache, and revalidates with nginx (304) what nginx says to.
//!
//! Each nginx runs in the foreground as a single process (`master_process
//! off`) with its own prefix and config in a temporary directory, listens
//! on a 127.0.0.1 port the test picked, and is stopped by the pid the test
//! started. Without an `nginx` binary the tests print SKIPPED and pass;
//! with `DL7_NGINX=required` (as `.ci/run` sets) a missing nginx fails them.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::web::{exchange, fields};
use dl7_core::{Membership, PolicySpec, ServerId};
use dl7_services::content::Pattern;
use dl7_services::front::{FrontConfig, FrontMode};
use dl7_services::health::{HealthCheck, HealthSpec};
use dl7_services::load::{self, LoadConfig};
use dl7_services::node::NodeConfig;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// The nginx binary, or `None` (after saying SKIPPED) when there is none.
fn nginx_binary(test: &str) -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join("nginx")).find(|p| p.exists())
        });
    if found.is_none() {
        let required = std::env::var("DL7_NGINX").is_ok_and(|v| v == "required");
        assert!(!required, "{test}: DL7_NGINX=required but no nginx binary (apt-get install nginx-light)");
        // Straight to stderr, not through eprintln!: libtest keeps a passing test's printed output to itself.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED {test}: nginx is not installed (apt-get install nginx-light; .ci/run does) ***\n"
        );
    }
    found
}

/// One nginx serving `root`, stopped (by its pid) when dropped.
struct Nginx {
    addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx on a free 127.0.0.1 port, serving `root`; `extra` is
    /// more config inside its `server` block.
    async fn start(binary: &Path, root: &Path, extra: &str) -> Nginx {
        // A port just free: another process may take it before nginx binds, so a few tries.
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let dir = common::temp_dir();
            std::fs::create_dir_all(dir.join("tmp")).unwrap();
            let conf = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
events {{ worker_connections 512; }}\n\
http {{\n  types {{ text/html html; image/gif gif; image/jpeg jpg; image/png png; text/css css; application/javascript js; }}\n\
  default_type application/octet-stream;\n  access_log {d}/access.log;\n  log_format plain '$status $request_method $request_uri';\n\
  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
  server {{\n    listen {addr};\n    root {root};\n    access_log {d}/access.log plain;\n{extra}\n  }}\n}}\n",
                d = dir.display(),
                root = root.display(),
            );
            std::fs::write(dir.join("nginx.conf"), conf).unwrap();
            let mut child = Command::new(binary)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("nginx starts");
            // Ready once it accepts; bounded: about 5 s, or nginx has exited (its port was taken).
            for _ in 0..500 {
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return Nginx { addr, child, dir };
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            eprintln!("nginx on {addr} did not come up, trying another port: {log}");
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        panic!("nginx did not start on any of 5 ports");
    }

    /// nginx's access log: `status method uri` per request.
    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default().lines().map(String::from).collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The pid this test started, and nothing else.
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes the test catalog as nginx's document root, as `dl7 trace
/// materialize` does: modified long ago, so that nginx's Last-Modified gives
/// a heuristic freshness well over a test's length.
fn materialize(catalog: &dl7_traces::Catalog, root: &Path) {
    dl7_services::materialize::materialize(catalog, root, false, |_| {}).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_before_two_nginx_without_health_answers_only_2xx_under_load() {
    let Some(nginx) = nginx_binary("a_front_end_before_two_nginx_without_health_answers_only_2xx_under_load") else {
        return;
    };
    let catalog = common::catalog();
    let root = common::temp_dir();
    materialize(&catalog, &root);
    let a = Nginx::start(&nginx, &root, "").await;
    let b = Nginx::start(&nginx, &root, "").await;
    // nginx has no /health: 404, as a user found. The CLI's default for `dl7 front`
    // (a TCP connect) keeps both in; dl7's own HTTP check of /health takes both
    // out, and the panic rule sends every request to its owner anyway.
    for check in [HealthCheck::Tcp, HealthCheck::Http] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = listener.local_addr().unwrap();
        let mut fc = FrontConfig::new(FrontMode::Conventional, vec![a.addr, b.addr], Vec::new());
        fc.health = HealthSpec { interval_ms: 100, rise: 2, fall: 2, check, ..HealthSpec::default() };
        let metrics = fc.metrics.clone();
        let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(dl7_services::front::run(listener, fc, async move {
            let _ = stop.await;
        }));
        let mut cfg = LoadConfig::new(front, catalog.clone());
        cfg.connections = 4;
        cfg.warmup = Duration::from_millis(200);
        // The 10 s of load with the check users get by default; the
        // panic rule's case needs only to show that it routes.
        cfg.duration = Duration::from_secs(if check == HealthCheck::Tcp { 10 } else { 3 });
        let r = load::run(cfg).await.unwrap();
        let s = metrics.stats();
        let peers: Vec<(u32, bool, u64)> = s.peers.iter().map(|p| (p.peer, p.up, p.probes)).collect();
        assert_eq!(r.errors, 0, "{check:?}: {:?} ({})", r.errors_by_kind, r.summary());
        assert!(r.requests > 100, "{check:?}: {}", r.summary());
        assert!(s.peers.iter().all(|p| p.probes >= 5), "{check:?}: the probes ran all along: {peers:?}");
        match check {
            HealthCheck::Tcp => assert!(s.peers.iter().all(|p| p.up), "{peers:?}"),
            _ => assert!(s.peers.iter().all(|p| !p.up) && s.panic_routes > 0, "{peers:?}"),
        }
        let served = |n: &Nginx| n.log().iter().filter(|l| l.starts_with("200 GET /test/")).count();
        assert!(served(&a) > 0 && served(&b) > 0, "both nginx served");
        let _ = stop_tx.send(());
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_before_nginx_passes_every_byte_and_its_validators() {
    let Some(binary) = nginx_binary("a_node_before_nginx_passes_every_byte_and_its_validators") else {
        return;
    };
    let catalog = common::catalog();
    let root = common::temp_dir();
    materialize(&catalog, &root);
    std::fs::create_dir_all(root.join("fresh")).unwrap();
    std::fs::write(root.join("fresh/always.html"), "validated every time").unwrap();
    // `expires -1`: nginx sends Cache-Control: no-cache, so every reuse is validated with it.
    let nginx = Nginx::start(&binary, &root, "    location /fresh/ { expires -1; }").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap();
    let nc = NodeConfig::new(
        ServerId(0),
        Membership::numbered(1).unwrap(),
        vec![node],
        nginx.addr,
        PolicySpec::parse("md5").unwrap(),
    );
    tokio::spawn(dl7_services::node::run(listener, nc, std::future::pending()));
    let get = |path: &str, extra: &str| format!("GET {path} HTTP/1.1\r\nHost: www.test\r\n{extra}\r\n").into_bytes();
    for o in &catalog.objects {
        let want = Pattern::of(o).body(o.size);
        let (status, direct, _) = exchange(nginx.addr, &get(&o.path, "")).await;
        assert_eq!(status, 200);
        let (etag, last_modified) = (fields(&direct, "etag")[0], fields(&direct, "last-modified")[0]);
        for (round, cache) in [(0, "MISS"), (1, "HIT")] {
            let (status, head, body) = exchange(node, &get(&o.path, "")).await;
            assert_eq!(status, 200, "{} round {round}\n{head}", o.path);
            assert!(body == want, "{} round {round}: the body differs from the file", o.path);
            assert_eq!(fields(&head, "x-cache"), [cache], "{} round {round}\n{head}", o.path);
            assert_eq!(fields(&head, "etag"), [etag], "{}: nginx's ETag\n{head}", o.path);
            assert_eq!(fields(&head, "last-modified"), [last_modified], "{}\n{head}", o.path);
            assert_eq!(fields(&head, "content-type"), fields(&direct, "content-type"), "{}", o.path);
            assert_eq!(fields(&head, "server"), fields(&direct, "server"), "{}: nginx's Server passes", o.path);
            assert!(fields(&head, "via").contains(&"1.1 dl7-node0"), "{}\n{head}", o.path);
        }
        // The client's validators get 304 from the cache, nginx's tag or date.
        let (status, head, body) = exchange(node, &get(&o.path, &format!("If-None-Match: {etag}\r\n"))).await;
        assert_eq!((status, body.len(), fields(&head, "x-cache")), (304, 0, vec!["HIT"]), "{}\n{head}", o.path);
        let ims = format!("If-Modified-Since: {last_modified}\r\n");
        assert_eq!(exchange(node, &get(&o.path, &ims)).await.0, 304, "{}", o.path);
    }
    // Every object came from nginx once, then from the cache.
    let gets = |p: &str| nginx.log().iter().filter(|l| l.ends_with(&format!("GET {p}"))).count();
    for o in &catalog.objects {
        assert_eq!(gets(&o.path), 2, "{}: once directly, once for the node", o.path);
    }
    // What nginx says to validate is validated with it: 200, then 304s, the body from the cache.
    for _ in 0..3 {
        let (status, head, body) = exchange(node, &get("/fresh/always.html", "")).await;
        assert_eq!((status, body.as_slice()), (200, &b"validated every time"[..]), "{head}");
    }
    let statuses: Vec<String> = nginx
        .log()
        .iter()
        .filter(|l| l.ends_with("GET /fresh/always.html"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["200", "304", "304"], "nginx validated the stored copy");
    // HEAD, a 404 and a POST (nginx: 405) pass through as nginx answers them.
    let (status, head, body) =
        exchange(node, &format!("HEAD {} HTTP/1.1\r\nHost: www.test\r\n\r\n", catalog.objects[3].path).into_bytes())
            .await;
    assert_eq!((status, body.len()), (200, 0));
    assert_eq!(fields(&head, "content-length"), [catalog.objects[3].size.to_string().as_str()]);
    assert_eq!(exchange(node, &get("/no/such/file", "")).await.0, 404);
    let post = b"POST /test/obj001.gif HTTP/1.1\r\nHost: www.test\r\nContent-Length: 3\r\n\r\nabc";
    assert_eq!(exchange(node, post).await.0, 405);
    let _ = std::fs::remove_dir_all(&root);
}
