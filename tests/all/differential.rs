//! The differential test: one experiment, two engines. A fixed trace is
//! replayed in order over one connection on 4 servers with small caches, in
//! the simulator and on the real cluster on loopback, for md5, maglev, carp,
//! rr and ht_rr (independent instances) in both architectures under LRU, and
//! for md5 in both architectures under every other eviction. The engines
//! must agree exactly on what a request's route and its owner's cache
//! decide: requests, hit ratios, forwarded share, imbalance, cache bytes, and
//! every node's cache contents at the end. A difference is a bug in one of them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dl7::experiment::Plan;
use dl7_testbed::cell as engine;
use dl7_testbed::placement;
use dl7_traces::{Catalog, Trace};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 2,000 requests drawn from surge100 (seed 7): 100 objects of 0.1 KB to
/// several MB, so that with 256 KiB caches some objects are larger than a
/// cache and the rest evict each other.
fn fixed_trace(dir: &Path) -> PathBuf {
    let catalog: Catalog = dl7_traces::workload::builtin("surge100").unwrap();
    let mut stream = catalog.stream(7).unwrap();
    let requests = (0..2000).map(|_| stream.next_id()).collect();
    let cache = 256 * 1024;
    assert!(catalog.objects.iter().any(|o| o.size > cache), "some objects must not fit a cache");
    let trace = Trace { catalog, requests, times: Vec::new() };
    let path = dir.join("fixed.trace");
    trace.save(&path).unwrap();
    path
}

/// The policies under LRU, the default eviction.
const EXPERIMENT: &str = r#"
name = "differential"
seed = 1
hardware = "kwon2008"
[sweep]
servers = [4]
policies = ["md5", "maglev", "carp", "rr", "ht_rr"]
archs = ["conventional", "distributed"]
workloads = ["fixed.trace"]
[clients]
mode = "replay"
connections = 1
[run]
cache_mb = 0.25
"#;

/// Object ids in a node's `/_dl7/cache` page (`object_id path bytes` lines).
fn cached_ids(page: &str) -> Vec<u32> {
    let mut ids: Vec<u32> =
        page.lines().map(|l| l.split_whitespace().next().unwrap().parse().expect("an object id")).collect();
    ids.sort_unstable();
    ids
}

/// Every other eviction, under one policy: what differs is the owner's cache.
const EVICTIONS: &str = r#"
name = "differential-evictions"
seed = 1
hardware = "kwon2008"
[sweep]
servers = [4]
policies = ["md5"]
archs = ["conventional", "distributed"]
workloads = ["fixed.trace"]
evictions = ["fifo", "sieve", "s3fifo", "gdsf"]
[clients]
mode = "replay"
connections = 1
[run]
cache_mb = 0.25
# Objects up to 100 KiB (not the default eighth of the cache): the caches fill
# and evict, so each eviction keeps other objects.
max_object_mb = 0.1
"#;

#[test]
fn simulator_and_real_cluster_route_the_same_requests_the_same_way() {
    agree(EXPERIMENT, "run", 10);
}

#[test]
fn simulator_and_real_cluster_keep_the_same_objects_under_every_eviction() {
    let hits = agree(EVICTIONS, "evictions", 8);
    let mut distinct = hits.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "each eviction must keep other objects, or the test shows nothing: {hits:?}");
}

/// Runs every run of `experiment` (`runs` of them) in both engines and
/// fails naming every figure on which they differ; returns each run's hit ratio.
fn agree(experiment: &str, name: &str, runs: usize) -> Vec<f64> {
    let dir = scratch(name);
    fixed_trace(&dir);
    let plan = Plan::parse(experiment, "differential.toml", &dir).unwrap();
    let experiment = Arc::new(plan.load().unwrap());
    let exe = Path::new(env!("CARGO_BIN_EXE_dl7"));
    let rt = dl7_services::service::runtime(None).unwrap();
    let runs_of = experiment.runs();
    assert_eq!(runs_of.len(), runs);
    let runs = runs_of;
    let mut hits = Vec::new();
    let mut failures = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let (sim, stats) = dl7_sim::simulate_with_stats(&experiment.sim_spec(run), &experiment.hardware).unwrap();
        let cell = dl7::sweep::real_cell(&experiment, run);
        let cell_dir = dir.join(i.to_string());
        std::fs::create_dir_all(&cell_dir).unwrap();
        let real = rt.block_on(engine::run_cell(exe, &cell, &placement::local(), &cell_dir)).unwrap();
        let name = format!("{} {} {}", sim.arch, sim.policy, sim.eviction);
        assert_eq!(real.row.eviction, sim.eviction, "{name}");
        let r = &real.row;
        assert_eq!((r.errors, sim.errors), (0, 0), "{name}");
        hits.push(sim.hit_ratio);
        let figures = [
            ("requests", sim.requests as f64, r.requests as f64),
            ("hit_ratio", sim.hit_ratio, r.hit_ratio),
            ("byte_hit_ratio", sim.byte_hit_ratio, r.byte_hit_ratio),
            ("forwarded_frac", sim.forwarded_frac, r.forwarded_frac),
            ("imbalance", sim.imbalance, r.imbalance),
            ("cache_bytes", sim.cache_bytes as f64, r.cache_bytes as f64),
        ];
        for (what, s, real) in figures {
            if s != real {
                failures.push(format!("{name}: {what} sim {s} real {real}"));
            }
        }
        let real_caches: Vec<Vec<u32>> = real.caches.iter().map(|p| cached_ids(p)).collect();
        if real_caches != stats.cached {
            failures.push(format!("{name}: cache contents differ: sim {:?} real {:?}", stats.cached, real_caches));
        }
        eprintln!(
            "{name}: requests {} hit {:.4} byte hit {:.4} forwarded {:.4} imbalance {:.4} cache {} B",
            r.requests, r.hit_ratio, r.byte_hit_ratio, r.forwarded_frac, r.imbalance, r.cache_bytes
        );
    }
    assert!(failures.is_empty(), "the engines differ:\n{}", failures.join("\n"));
    hits
}
