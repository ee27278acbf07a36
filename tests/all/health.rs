//! A node process killed under load (SIGKILL) and restarted, with active
//! health checks, on loopback: 3 md5 nodes, conventional and distributed
//! front ends with 2 fallbacks each.
//!
//! * No request that starts after the kill is lost or even resent: a load
//!   run started once the node is dead finishes with no error.
//! * The run under way at the kill loses (or resends) at most the requests
//!   that were in flight on the dead node: in closed loop one per connection,
//!   so at most its handed-off client connections (distributed), plus the
//!   responses other relays were streaming from it (`upstream_aborted`).
//! * The restarted node (empty cache) serves again within `rise` probes:
//!   `rise x interval` after its ready line, plus the slack stated below.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dl7_services::admin::fetch_stats;
use dl7_services::http::ClientConn;
use dl7_services::load::{self, LoadConfig, LoadReport, Requests};
use dl7_services::metrics::Stats;
use dl7_testbed::process::{Host, Proc};

const EXE: &str = env!("CARGO_BIN_EXE_dl7");
const INTERVAL_MS: u64 = 300;
const RISE: u64 = 2;
const FALL: u64 = 3;
/// Beyond `rise x interval`: one probe's round trip, process scheduling on a
/// busy 2-core machine, and the test's own polling. Measured figures are
/// printed; this only bounds them.
const SLACK: Duration = Duration::from_millis(1500);
const VICTIM: usize = 1;
use dl7_testbed::process::Signal;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("health-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn health_args() -> Vec<String> {
    args(&["--health-interval-ms", &INTERVAL_MS.to_string(), "--rise", &RISE.to_string(), "--fall", &FALL.to_string()])
}

struct Cluster {
    origin: Proc,
    nodes: Vec<Option<Proc>>,
    node_args: Vec<Vec<String>>,
    node_addrs: Vec<SocketAddr>,
    front: Proc,
    front_addr: SocketAddr,
    front_admin: SocketAddr,
}

async fn start(mode: &str, dir: &Path) -> Cluster {
    let exe = Path::new(EXE);
    let host = Host::default();
    let mut origin = Proc::spawn(exe, &host, "origin", &args(&["origin", "--workload", "surge100"])).unwrap();
    let origin_addr = origin.ready(Duration::from_secs(10)).await.unwrap().listen.to_string();
    let node_addrs: Vec<SocketAddr> =
        (0..3).map(|_| SocketAddr::new(host.addr, dl7_testbed::process::reserve_port(host.addr).unwrap())).collect();
    let list = node_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
    let socks: Vec<String> = (0..3).map(|i| dir.join(format!("n{i}.sock")).display().to_string()).collect();
    let mut nodes = Vec::new();
    let mut node_args = Vec::new();
    for (i, sock) in socks.iter().enumerate() {
        let mut a = args(&["node", "--id", &i.to_string(), "--nodes", &list, "--origin", &origin_addr]);
        a.extend(args(&["--handoff", sock, "--upstream-timeout-ms", "500"]));
        a.extend(health_args());
        let mut p = Proc::spawn(exe, &host, &format!("node{i}"), &a).unwrap();
        p.ready(Duration::from_secs(10)).await.unwrap();
        nodes.push(Some(p));
        node_args.push(a);
    }
    let mut a = args(&["front", "--mode", mode, "--nodes", &list, "--upstream-timeout-ms", "500"]);
    a.extend(args(&["--handoff", &socks.join(","), "--admin", "127.0.0.1:0"]));
    a.extend(health_args());
    let mut front = Proc::spawn(exe, &host, "front", &a).unwrap();
    let ready = front.ready(Duration::from_secs(10)).await.unwrap();
    Cluster { origin, nodes, node_args, node_addrs, front, front_addr: ready.listen, front_admin: ready.admin.unwrap() }
}

async fn stats(addr: SocketAddr) -> Stats {
    fetch_stats(addr, Duration::from_secs(2)).await.unwrap()
}

fn peer_up(s: &Stats, peer: usize) -> bool {
    s.peers.iter().find(|p| p.peer as usize == peer).expect("the victim is a checked peer").up
}

/// Polls `cond` until true, failing after `limit` with `what`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Paths of surge100 objects whose md5 owner among 3 nodes is `owner`.
fn owned_by(catalog: &dl7_traces::Catalog, owner: usize) -> Vec<String> {
    let p = dl7_core::PolicySpec::parse("md5").unwrap().build(&dl7_core::Membership::numbered(3).unwrap()).unwrap();
    catalog
        .objects
        .iter()
        .filter(|o| p.pick(&dl7_core::RequestKey::new(o.path.as_bytes()), &dl7_core::NoLoad).index() == owner)
        .map(|o| o.path.clone())
        .collect()
}

/// True when `rounds` fresh connections in a row (each handed or dispatched
/// anew) get `path` served by the victim.
async fn victim_serves(front: SocketAddr, path: &str, rounds: usize) -> bool {
    for _ in 0..rounds {
        let Ok(mut c) = ClientConn::connect(front, Duration::from_secs(2)).await else { return false };
        let mut body = Vec::new();
        match c.get(path, false, &mut body).await {
            Ok(h) if h.status == 200 && h.served_by == Some(VICTIM as u32) => {}
            _ => return false,
        }
    }
    true
}

fn aborted(s: &[Stats]) -> u64 {
    s.iter().map(|s| s.upstream_aborted).sum()
}

#[test]
fn a_killed_node_costs_only_its_in_flight_requests_and_serves_again_after_rise_probes() {
    let rt = dl7_services::service::runtime(None).unwrap();
    let catalog = Arc::new(dl7_traces::workload::builtin("surge100").unwrap());
    let victim_paths = owned_by(&catalog, VICTIM);
    for mode in ["conventional", "distributed"] {
        let dir = scratch(mode);
        rt.block_on(async {
            let mut c = start(mode, &dir).await;
            let survivors = [0, 2].map(|i| c.node_addrs[i]);
            let mut cfg = LoadConfig::new(c.front_addr, catalog.clone());
            cfg.connections = 6;
            cfg.duration = Duration::from_millis(1500);
            cfg.timeout = Duration::from_secs(3);
            let before_front = stats(c.front_admin).await;
            let mut before_nodes = Vec::new();
            for a in survivors {
                before_nodes.push(stats(a).await);
            }
            let during = tokio::spawn(load::run(cfg.clone()));
            // Kill the victim once it has served traffic (its counters, no fixed sleep).
            let victim = c.node_addrs[VICTIM];
            wait_until(Duration::from_secs(10), "the victim serves 20 requests", || async {
                stats(victim).await.requests >= 20
            })
            .await;
            // Closed-loop connections stay open while nothing fails: the victim's
            // handoffs are the client connections it holds, each with at most one request.
            let held = stats(victim).await.handoffs;
            let mut p = c.nodes[VICTIM].take().unwrap();
            p.signal(Signal::KILL);
            p.stop(Duration::from_secs(5)); // reaps it: dead from here on
            let killed = Instant::now();

            // A run that starts after the kill: nothing of it may be lost, or resent.
            let mut after_cfg = cfg.clone();
            after_cfg.requests = Requests::Stream { seed: 9 };
            after_cfg.duration = Duration::from_secs(4);
            let after = tokio::spawn(load::run(after_cfg));

            // The probes take the victim out after `fall` failures.
            wait_until(Duration::from_secs(10), "the front end takes the victim out", || async {
                !peer_up(&stats(c.front_admin).await, VICTIM)
            })
            .await;
            let out_after = killed.elapsed();
            for a in survivors {
                wait_until(Duration::from_secs(10), "every node takes the victim out", || async {
                    !peer_up(&stats(a).await, VICTIM)
                })
                .await;
            }

            // Restart it (empty cache): it serves again within `rise` probes.
            let mut p = Proc::spawn(Path::new(EXE), &Host::default(), "node1-again", &c.node_args[VICTIM]).unwrap();
            p.ready(Duration::from_secs(10)).await.unwrap();
            let ready = Instant::now();
            c.nodes[VICTIM] = Some(p);
            let bound = Duration::from_millis(RISE * INTERVAL_MS) + SLACK;
            let path = &victim_paths[0];
            wait_until(bound, "the restarted node serves its objects through every receiver", || async {
                peer_up(&stats(c.front_admin).await, VICTIM) && victim_serves(c.front_addr, path, 6).await
            })
            .await;
            let back_after = ready.elapsed();
            if mode == "distributed" {
                assert!(stats(victim).await.handoffs > 0, "the front end hands the restarted node clients again");
            }

            let during: LoadReport = during.await.unwrap().unwrap();
            let after: LoadReport = after.await.unwrap().unwrap();
            let front = stats(c.front_admin).await;
            let mut nodes_now = Vec::new();
            for a in survivors {
                nodes_now.push(stats(a).await);
            }
            let relayed_cut = match mode {
                "conventional" => front.upstream_aborted - before_front.upstream_aborted,
                _ => aborted(&nodes_now) - aborted(&before_nodes),
            };
            // The front end's own connections to the victim are its relays (conventional);
            // distributed clients sit on the victim itself.
            let in_flight_bound = relayed_cut + if mode == "distributed" { held } else { 0 };
            eprintln!(
                "{mode}: taken out {out_after:?} after the kill, serving {back_after:?} after its restart; \
                 victim held {held} client connections, {relayed_cut} relayed responses cut;\n  \
                 during: {}\n  after: {}",
                during.summary(),
                after.summary()
            );
            assert!(mode == "conventional" || held > 0, "the victim held no client connection: nothing tested");
            assert!(
                during.errors + during.retried <= in_flight_bound,
                "{mode}: lost {} and resent {} requests; in flight on the victim: at most {in_flight_bound}",
                during.errors,
                during.retried
            );
            assert!(after.requests > 100, "{mode}: {}", after.summary());
            assert_eq!((after.errors, after.retried), (0, 0), "{mode}: {}", after.summary());
            let seen = front.peers.iter().find(|p| p.peer as usize == VICTIM).unwrap();
            assert!(seen.downs == 1 && seen.ups == 1, "{mode}: {:?}", front.peers);
            drop(c.front);
            drop(c.nodes);
            drop(c.origin);
        });
    }
}

/// The lab's kernel front end: a killed node leaves the nftables map (its
/// slot goes to the next node up, the others keep theirs) and comes back
/// after its restart; a node that leaves the membership goes out of it at
/// once, and back when it joins. Root only; elsewhere it says SKIPPED.
#[test]
fn the_lab_director_takes_a_killed_or_departed_node_out_of_the_kernel_map_and_back() {
    use dl7_testbed::lab::{LabConfig, LabPlan};
    use dl7_testbed::netns as exec;
    if let Some(why) =
        (!exec::is_root()).then(|| "not root".to_string()).or(exec::require_tools().err().map(|e| e.to_string()))
    {
        eprintln!("SKIPPED: {why} (this test needs root and ip/tc/nft/sysctl)");
        return;
    }
    let text = "prefix = \"dl7ith\"\nsubnet = \"198.19.206.0/24\"\nnodes = 2\nclients = 1\nport = 8080\n";
    let plan = LabPlan::new(&LabConfig::parse(text, "health-test.toml").unwrap());
    let quiet = &mut |_: &str| {};
    exec::down(&plan, quiet).unwrap();
    exec::up(&plan, false, quiet).unwrap();
    exec::set_architecture(&plan, dl7_core::Arch::Distributed, None, quiet).unwrap();
    let rt = dl7_services::service::runtime(None).unwrap();
    rt.block_on(async {
        let exe = Path::new(EXE);
        let at = |h: &dl7_testbed::lab::Host, bind: bool| Host {
            run: dl7_testbed::process::Runner::Netns(h.netns.clone()),
            addr: std::net::IpAddr::V4(h.addr),
            bind: bind.then_some(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            port: Some(plan.port),
        };
        let o = at(plan.origin(), false);
        let mut origin = Proc::spawn(
            exe,
            &o,
            "origin",
            &args(&["origin", "--workload", "surge100", "--listen", &format!("{}:{}", o.addr, plan.port)]),
        )
        .unwrap();
        origin.ready(Duration::from_secs(10)).await.unwrap();
        let hosts: Vec<Host> = plan.hosts_of(dl7_testbed::lab::Role::Node).map(|h| at(h, true)).collect();
        let addrs: Vec<SocketAddr> = hosts.iter().map(|h| SocketAddr::new(h.addr, plan.port)).collect();
        let list = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
        let node_args = |i: usize| {
            let mut a = args(&["node", "--id", &i.to_string(), "--nodes", &list]);
            a.extend(args(&[
                "--origin",
                &format!("{}:{}", o.addr, plan.port),
                "--listen",
                &format!("0.0.0.0:{}", plan.port),
            ]));
            a
        };
        let mut nodes = Vec::new();
        for (i, h) in hosts.iter().enumerate() {
            let mut p = Proc::spawn(exe, h, &format!("node{i}"), &node_args(i)).unwrap();
            p.ready(Duration::from_secs(10)).await.unwrap();
            nodes.push(p);
        }
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let spec = dl7_services::health::HealthSpec {
            interval_ms: INTERVAL_MS,
            rise: RISE as u32,
            fall: FALL as u32,
            ..Default::default()
        };
        let (members_tx, members) = tokio::sync::watch::channel(vec![0, 1]);
        let reroute = dl7_testbed::director::lab_map(plan.clone());
        let health = dl7_testbed::director::spawn(reroute, addrs.clone(), spec, members, stop).await.unwrap();
        let fe = plan.front().netns.clone();
        let ruleset = || {
            exec::run_command(&["ip", "netns", "exec", &fe, "nft", "list", "ruleset"].map(String::from), None).unwrap()
        };
        let n = |i: usize| addrs[i].ip().to_string();
        let both = format!("map {{ 0 : {}, 1 : {} }}", n(0), n(1));
        let only_first = format!("map {{ 0 : {}, 1 : {} }}", n(0), n(0));
        assert!(ruleset().contains(&both), "{}", ruleset());

        nodes[1].signal(Signal::KILL);
        wait_until(Duration::from_secs(10), "the map sends node 1's share to node 0", || async {
            !health.is_up(1) && ruleset().contains(&only_first)
        })
        .await;
        assert_eq!(ruleset().matches(" fwd ").count(), 1);
        nodes[1] = Proc::spawn(exe, &hosts[1], "node1-again", &node_args(1)).unwrap();
        nodes[1].ready(Duration::from_secs(10)).await.unwrap();
        wait_until(Duration::from_millis(RISE * INTERVAL_MS) + SLACK, "node 1 is back in the map", || async {
            ruleset().contains(&both)
        })
        .await;
        // A leave and a join of the fault schedule: the map follows the membership at once.
        members_tx.send_replace(vec![0]);
        wait_until(SLACK, "node 1 left the map", || async { ruleset().contains(&only_first) }).await;
        members_tx.send_replace(vec![0, 1]);
        wait_until(SLACK, "node 1 joined the map", || async { ruleset().contains(&both) }).await;
        let _ = stop_tx.send(true);
        drop(nodes);
        drop(origin);
    });
    exec::down(&plan, quiet).unwrap();
}
