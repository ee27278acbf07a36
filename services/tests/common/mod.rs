//! An in-process cluster on 127.0.0.1 port 0 for the end-to-end tests.
#![allow(dead_code)]

pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use dl7_core::{Membership, PolicySpec, ServerId};
use dl7_services::front::{FrontConfig, FrontMode};
use dl7_services::http::ClientConn;
use dl7_services::metrics::Metrics;
use dl7_services::node::NodeConfig;
use dl7_services::origin::OriginConfig;
use dl7_traces::{Catalog, ContentType, Object, ObjectId};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::oneshot;

/// 24 objects of mixed types and sizes (60 B to 70 KB), Zipf-like weights.
pub fn catalog() -> Arc<Catalog> {
    let types =
        [ContentType::Html, ContentType::Gif, ContentType::Jpeg, ContentType::Css, ContentType::Png, ContentType::Js];
    let objects = (0..24u32)
        .map(|i| {
            let t = types[i as usize % types.len()];
            Object {
                id: ObjectId(i),
                path: format!("/test/obj{i:03}.{}", dl7_traces::surge::extension(t)),
                size: 60 + (i as u64 * 7919 * 13) % 70_000,
                content_type: t,
                weight: 1.0 / (i as f64 + 1.0),
            }
        })
        .collect();
    Arc::new(Catalog { objects })
}

/// Every object `times` times, interleaved.
pub fn request_list(catalog: &Catalog, times: usize) -> Arc<Vec<ObjectId>> {
    Arc::new((0..times).flat_map(|_| catalog.objects.iter().map(|o| o.id)).collect())
}

pub fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("dl7-rt-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct TestCluster {
    pub catalog: Arc<Catalog>,
    pub origin: SocketAddr,
    pub origin_metrics: Arc<Metrics>,
    pub nodes: Vec<SocketAddr>,
    pub node_metrics: Vec<Arc<Metrics>>,
    pub front: SocketAddr,
    pub front_metrics: Arc<Metrics>,
    node_stops: Vec<Option<oneshot::Sender<()>>>,
    others: Vec<oneshot::Sender<()>>,
    pub dir: PathBuf,
}

pub struct Options {
    pub nodes: usize,
    pub policy: &'static str,
    pub mode: FrontMode,
    pub fallbacks: usize,
    pub origin_delay_ms: u64,
    pub upstream_timeout_ms: u64,
    /// Node 0 is the owner directory for every node (shared policy instance).
    pub directory: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: 3,
            policy: "md5",
            mode: FrontMode::Distributed,
            fallbacks: 2,
            origin_delay_ms: 0,
            upstream_timeout_ms: 2000,
            directory: false,
        }
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

fn stopper() -> (oneshot::Sender<()>, impl std::future::Future<Output = ()> + Send + 'static) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

impl TestCluster {
    pub async fn start(opts: Options) -> Self {
        let catalog = catalog();
        let dir = temp_dir();
        let mut others = Vec::new();

        let origin_l = bind().await;
        let origin = origin_l.local_addr().unwrap();
        let mut oc = OriginConfig::new(catalog.clone());
        oc.delay = std::time::Duration::from_millis(opts.origin_delay_ms);
        let origin_metrics = oc.metrics.clone();
        let (tx, stop) = stopper();
        others.push(tx);
        tokio::spawn(dl7_services::origin::run(origin_l, oc, stop));

        let mut listeners = Vec::new();
        for _ in 0..opts.nodes {
            listeners.push(bind().await);
        }
        let nodes: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let members = Membership::numbered(opts.nodes).unwrap();
        let policy = PolicySpec::parse(opts.policy).unwrap();
        let mut node_metrics = Vec::new();
        let mut node_stops = Vec::new();
        let mut handoff = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let mut nc = NodeConfig::new(ServerId(i as u32), members.clone(), nodes.clone(), origin, policy.clone());
            nc.directory = opts.directory.then_some(nodes[0]);
            nc.fallbacks = opts.fallbacks;
            nc.limits.upstream_timeout = std::time::Duration::from_millis(opts.upstream_timeout_ms);
            nc.limits.drain_timeout = std::time::Duration::from_millis(200);
            let path = dir.join(format!("node{i}.sock"));
            nc.handoff = Some(UnixListener::bind(&path).unwrap());
            handoff.push(path);
            node_metrics.push(nc.metrics.clone());
            let (tx, stop) = stopper();
            node_stops.push(Some(tx));
            tokio::spawn(dl7_services::node::run(l, nc, stop));
        }

        let front_l = bind().await;
        let front = front_l.local_addr().unwrap();
        let mut fc = FrontConfig::new(opts.mode, nodes.clone(), handoff);
        fc.policy = policy;
        fc.members = members;
        fc.fallbacks = opts.fallbacks;
        fc.limits.upstream_timeout = std::time::Duration::from_millis(opts.upstream_timeout_ms);
        let front_metrics = fc.metrics.clone();
        let (tx, stop) = stopper();
        others.push(tx);
        tokio::spawn(dl7_services::front::run(front_l, fc, stop));

        Self { catalog, origin, origin_metrics, nodes, node_metrics, front, front_metrics, node_stops, others, dir }
    }

    /// Stops node `i` (its listener closes; its connections close after their current request).
    pub fn stop_node(&mut self, i: usize) {
        if let Some(tx) = self.node_stops[i].take() {
            let _ = tx.send(());
        }
    }

    /// Object ids listed by `GET /_dl7/cache` on node `i`.
    pub async fn cached_ids(&self, i: usize) -> Vec<u32> {
        let text = get_text(self.nodes[i], dl7_services::admin::CACHE_PATH).await;
        let mut ids: Vec<u32> = text.lines().map(|l| l.split(' ').next().unwrap().parse().unwrap()).collect();
        ids.sort();
        ids
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GETs `path` and returns the body as text (panics on non-200: test helper).
pub async fn get_text(addr: SocketAddr, path: &str) -> String {
    let mut c = ClientConn::connect(addr, std::time::Duration::from_secs(2)).await.unwrap();
    let mut body = Vec::new();
    let head = c.get(path, false, &mut body).await.unwrap();
    assert_eq!(head.status, 200, "GET {path} on {addr}");
    String::from_utf8(body).unwrap()
}

/// The owner the core computes for `path` over `Membership::numbered(n)`.
pub fn core_owner(policy: &str, n: usize, path: &str) -> u32 {
    let p = PolicySpec::parse(policy).unwrap().build(&Membership::numbered(n).unwrap()).unwrap();
    p.pick(&dl7_core::RequestKey::new(path.as_bytes()), &dl7_core::NoLoad).0
}
