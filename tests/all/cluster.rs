//! The real cluster as processes: `dl7 sweep --engine local` end to end, a
//! node stopped mid-run (a killed one: `tests/health.rs`), Ctrl-C leaving no
//! orphans, and bad experiment files (old formats included) exiting with 2.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dl7_services::load::{self, LoadConfig};
use dl7_testbed::process::{Host, Proc};

const EXE: &str = env!("CARGO_BIN_EXE_dl7");

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cluster_file(dir: &Path, name: &str, archs: &str, duration_s: f64) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\nengine = \"local\"\nseed = 1\nhardware = \"kwon2008\"\n\
         [sweep]\nservers = [2]\npolicies = [\"md5\"]\narchs = [{archs}]\nworkloads = [\"surge100\"]\n\
         [clients]\nmode = \"closed\"\nper_server = 4\n[run]\nwarmup_s = 0.2\nmeasure_s = {duration_s}\ncache_mb = 16.0\n"
    );
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Pids of the live children of `parent` (from /proc/<pid>/stat).
fn children_of(parent: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) && f.first() != Some(&"Z") {
            out.insert(pid);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn the_local_engine_measures_both_architectures_and_writes_real_rows() {
    let dir = scratch("run");
    let file = cluster_file(&dir, "t-run", "\"conventional\", \"distributed\"", 0.5);
    let out = dir.join("out");
    let o = Command::new(EXE).args(["sweep", file.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(String::from).collect()).collect();
    assert_eq!(rows.len(), 2);
    for (row, arch) in rows.iter().zip(["conventional", "distributed"]) {
        assert_eq!(row[col("arch")], arch);
        assert_eq!(row[col("mode")], "real");
        assert_eq!(row[col("errors")], "0", "{csv}");
        assert!(row[col("requests")].parse::<u64>().unwrap() > 50, "{csv}");
        assert!(row[col("req_per_s")].parse::<f64>().unwrap() > 0.0);
        // Warm caches after the warm-up run: most owner requests hit.
        assert!(row[col("hit_ratio")].parse::<f64>().unwrap() > 0.5, "{csv}");
    }
    // Only the distributed architecture forwards between nodes.
    assert_eq!(rows[0][col("forwarded_frac")].parse::<f64>().unwrap(), 0.0);
    assert!(rows[1][col("forwarded_frac")].parse::<f64>().unwrap() > 0.2);
}

#[test]
fn ctrl_c_stops_every_child_process() {
    let dir = scratch("interrupt");
    let file = cluster_file(&dir, "t-int", "\"distributed\"", 60.0);
    let mut cluster = Command::new(EXE)
        .args(["sweep", file.to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = cluster.id();
    // origin + 2 nodes + front + warm-up or measured load = 5 children at once.
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    while seen.len() < 5 {
        assert!(started.elapsed() < Duration::from_secs(30), "children seen: {seen:?}");
        seen.extend(children_of(pid));
        std::thread::yield_now();
    }
    dl7_testbed::process::send_signal(pid, dl7_testbed::process::Signal::INT).unwrap(); // as Ctrl-C sends
    let status = cluster.wait().unwrap();
    assert!(!status.success());
    let leftover: Vec<u32> = seen.iter().copied().filter(|&p| alive(p)).collect();
    assert!(leftover.is_empty(), "orphans: {leftover:?}");
}

#[test]
fn bad_experiment_files_exit_with_2_and_name_the_field() {
    let dir = scratch("bad");
    let path = cluster_file(&dir, "b", "\"distributed\"", 0.5);
    let text = std::fs::read_to_string(&path).unwrap().replace("servers = [2]", "servers = [0]");
    std::fs::write(&path, text).unwrap();
    let o = Command::new(EXE).args(["sweep", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cluster.toml:") && err.contains("`sweep.servers`"), "{err}");
    // A file of the old cluster format: the key names where it went.
    let old = dir.join("old.toml");
    std::fs::write(&old, "name = \"b\"\nworkload = \"surge100\"\nservers = [2]\n").unwrap();
    let o = Command::new(EXE).args(["sweep", old.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("old.toml:2:") && err.contains("`sweep.workloads`"), "{err}");
    let o = Command::new(EXE)
        .args(["node", "--id", "3", "--nodes", "127.0.0.1:1", "--origin", "127.0.0.1:2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Origin, 3 node processes and a front end; returns them and the front's address.
async fn processes(mode: &str, dir: &Path) -> (Vec<Proc>, std::net::SocketAddr, Vec<String>) {
    let exe = Path::new(EXE);
    let host = Host::default();
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut origin = Proc::spawn(exe, &host, "origin", &args(&["origin", "--workload", "surge100"])).unwrap();
    let origin_addr = origin.ready(Duration::from_secs(10)).await.unwrap().listen.to_string();
    let nodes: Vec<String> =
        (0..3).map(|_| format!("127.0.0.1:{}", dl7_testbed::process::reserve_port(host.addr).unwrap())).collect();
    let socks: Vec<String> = (0..3).map(|i| dir.join(format!("n{i}.sock")).display().to_string()).collect();
    let mut procs = vec![origin];
    for (i, sock) in socks.iter().enumerate() {
        let id = i.to_string();
        let mut a = args(&["node", "--id", &id, "--nodes", &nodes.join(","), "--origin", &origin_addr]);
        a.extend(args(&["--handoff", sock, "--upstream-timeout-ms", "500"]));
        let mut p = Proc::spawn(exe, &host, &format!("node{i}"), &a).unwrap();
        p.ready(Duration::from_secs(10)).await.unwrap();
        procs.push(p);
    }
    let mut a = args(&["front", "--mode", mode, "--nodes", &nodes.join(","), "--upstream-timeout-ms", "500"]);
    a.extend(args(&["--handoff", &socks.join(",")]));
    let mut front = Proc::spawn(exe, &host, "front", &a).unwrap();
    let addr = front.ready(Duration::from_secs(10)).await.unwrap().listen;
    procs.push(front);
    (procs, addr, nodes)
}

#[test]
fn a_stopped_node_process_costs_a_bounded_number_of_requests() {
    let rt = dl7_services::service::runtime(None).unwrap();
    let dir = scratch("sigstop");
    rt.block_on(async {
        let (procs, front, _) = processes("distributed", &dir).await;
        let catalog = Arc::new(dl7_traces::workload::builtin("surge100").unwrap());
        let mut cfg = LoadConfig::new(front, catalog);
        cfg.connections = 6;
        cfg.timeout = Duration::from_secs(1);
        cfg.duration = Duration::from_millis(300);
        let before = load::run(cfg.clone()).await.unwrap();
        assert_eq!(before.errors, 0);
        procs[2].signal(dl7_testbed::process::Signal::STOP); // node 1: it neither reads its handoffs nor answers peers
        cfg.duration = Duration::from_millis(3000);
        let r = load::run(cfg).await.unwrap();
        procs[2].signal(dl7_testbed::process::Signal::CONT); // so that it can drain and exit
        eprintln!("SIGSTOP run: {}", r.summary());
        assert!(r.requests > 100, "{}", r.summary());
        // Clients handed to the stopped node time out until the front end sees it
        // stop acknowledging (MAX_UNACKED_HANDOFFS); requests it owns are re-routed.
        assert!(r.errors <= 20, "{}", r.summary());
        drop(procs);
    });
}
