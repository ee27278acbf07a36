//! Memory stays bounded whatever the object sizes: an object eight times
//! larger than a node's whole cache, requested at once by several clients
//! through the distributed and the conventional front ends, arrives byte
//! exact while every process (origin, nodes, front end) stays far below the
//! object's size, and a transfer that lasts longer than the upstream timeout
//! completes (the timeout is an idle timeout). Processes, so that each one's
//! peak resident memory (`VmHWM`, on its `/stats`) is its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dl7_services::admin::fetch_stats;
use dl7_services::content::Pattern;
use dl7_services::http::ClientConn;
use dl7_testbed::process::{Host, Proc};
use dl7_traces::{Catalog, ContentType, Object, ObjectId, Trace};

const EXE: &str = env!("CARGO_BIN_EXE_dl7");
const CACHE_MB: u64 = 16;
/// Eight caches' worth.
const BIG: u64 = (8 * CACHE_MB) << 20;
/// Far below the object: what a node may hold is its cache (not filled
/// here: nothing fits), a 128 KiB window per object in transit and a relay
/// buffer per connection, beside its code and runtime (about 10 MiB).
const BOUND: u64 = 48 << 20;
const CLIENTS: usize = 3;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("memory-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A big binary object and a small one, as a trace file (catalog only).
fn catalog_file(dir: &Path) -> (PathBuf, Arc<Catalog>) {
    let obj = |i: u32, size: u64, t, name: &str| Object {
        id: ObjectId(i),
        path: format!("/mem/{name}.{}", dl7_traces::surge::extension(t)),
        size,
        content_type: t,
        weight: 1.0,
    };
    let catalog =
        Catalog { objects: vec![obj(0, BIG, ContentType::Jpeg, "big"), obj(1, 12_345, ContentType::Gif, "small")] };
    let path = dir.join("mem.trace");
    Trace { catalog: catalog.clone(), requests: Vec::new(), times: Vec::new() }.save(&path).unwrap();
    (path, Arc::new(catalog))
}

/// GETs `path` and checks every byte as it arrives; returns the status.
async fn fetch_verified(target: SocketAddr, o: &Object) -> (u16, u64) {
    let pattern = Pattern::of(o);
    let mut conn = ClientConn::connect(target, Duration::from_secs(10)).await.unwrap();
    let (mut at, mut equal) = (0u64, true);
    let head = conn
        .get_with(&o.path, false, |_, chunk| {
            equal &= pattern.matches(at, chunk);
            at += chunk.len() as u64;
        })
        .await
        .unwrap();
    assert!(equal, "{}: body differs", o.path);
    (head.status, at)
}

#[test]
fn an_object_larger_than_the_whole_cache_streams_through_in_bounded_memory() {
    let rt = dl7_services::service::runtime(None).unwrap();
    for mode in ["distributed", "conventional"] {
        let dir = scratch(mode);
        let (trace, catalog) = catalog_file(&dir);
        rt.block_on(async {
            let exe = Path::new(EXE);
            let host = Host::default();
            let mut origin =
                Proc::spawn(exe, &host, "origin", &args(&["origin", "--workload", trace.to_str().unwrap()])).unwrap();
            let origin_addr = origin.ready(Duration::from_secs(10)).await.unwrap().listen;
            let nodes: Vec<SocketAddr> = (0..2)
                .map(|_| SocketAddr::new(host.addr, dl7_testbed::process::reserve_port(host.addr).unwrap()))
                .collect();
            let list = nodes.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
            let socks: Vec<String> = (0..2).map(|i| dir.join(format!("n{i}.sock")).display().to_string()).collect();
            let mut procs = Vec::new();
            for (i, sock) in socks.iter().enumerate() {
                let mut a = args(&["node", "--id", &i.to_string(), "--nodes", &list]);
                a.extend(args(&["--origin", &origin_addr.to_string(), "--handoff", sock]));
                // Shorter than the transfer: only an idle timeout lets it finish.
                a.extend(args(&["--cache-mb", &CACHE_MB.to_string(), "--upstream-timeout-ms", "250"]));
                let mut p = Proc::spawn(exe, &host, &format!("node{i}"), &a).unwrap();
                p.ready(Duration::from_secs(10)).await.unwrap();
                procs.push(p);
            }
            let mut a = args(&["front", "--mode", mode, "--nodes", &list, "--handoff", &socks.join(",")]);
            a.extend(args(&["--admin", "127.0.0.1:0", "--upstream-timeout-ms", "250"]));
            let mut front = Proc::spawn(exe, &host, "front", &a).unwrap();
            let ready = front.ready(Duration::from_secs(10)).await.unwrap();

            let big = catalog.objects[0].clone();
            let started = Instant::now();
            let fetches: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let big = big.clone();
                    tokio::spawn(async move { fetch_verified(ready.listen, &big).await })
                })
                .collect();
            for f in fetches {
                assert_eq!(f.await.unwrap(), (200, BIG), "{mode}");
            }
            let took = started.elapsed();
            assert_eq!(fetch_verified(ready.listen, &catalog.objects[1]).await, (200, 12_345), "{mode}");

            let mut peaks = vec![("origin", fetch_stats(origin_addr, Duration::from_secs(2)).await.unwrap())];
            for (i, &n) in nodes.iter().enumerate() {
                let s = fetch_stats(n, Duration::from_secs(2)).await.unwrap();
                assert!(s.cache_bytes <= CACHE_MB << 20, "{mode}: node {i} caches {} bytes", s.cache_bytes);
                peaks.push(("node", s));
            }
            peaks.push(("front", fetch_stats(ready.admin.unwrap(), Duration::from_secs(2)).await.unwrap()));
            let origin_fetches: u64 = peaks.iter().map(|(_, s)| s.origin_fetches).sum();
            let summary: Vec<String> =
                peaks.iter().map(|(r, s)| format!("{r} {:.1} MiB", s.peak_rss_bytes as f64 / 1048576.0)).collect();
            eprintln!(
                "{mode}: {CLIENTS} x {} MiB in {took:?}, {origin_fetches} origin fetches; peak RSS {}",
                BIG >> 20,
                summary.join(", ")
            );
            for (role, s) in &peaks {
                assert!(s.peak_rss_bytes > 0, "{mode}: {role} reports no peak memory");
                assert!(s.peak_rss_bytes < BOUND, "{mode}: {role} peaked at {} bytes", s.peak_rss_bytes);
                assert_eq!((s.bad_gateway, s.upstream_aborted), (0, 0), "{mode}: {role}");
            }
            // The small object once, the big one once per client at most (shared while the window allows).
            assert!((2..=CLIENTS as u64 + 1).contains(&origin_fetches), "{mode}: {origin_fetches} origin fetches");
            drop(front);
            drop(procs);
            drop(origin);
        });
    }
}
