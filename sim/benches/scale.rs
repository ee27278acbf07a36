//! The simulator at scale: the figures behind the README's performance
//! section, printed rather than asserted (a benchmark, not a test).
//!
//! ```text
//! cargo bench -p dl7-sim --bench scale                 # medians of 5 runs
//! cargo bench -p dl7-sim --bench scale -- --repeat 3
//! ```
//!
//! Every run is a child process of this binary, so that its peak resident
//! memory (`VmHWM` in `/proc/self/status`) is its own; inside it a counting
//! allocator gives the peak heap of the simulation alone (the catalog, built
//! before, excluded). CPU time is the process's own (`/proc/self/schedstat`),
//! so a figure per core survives a machine busy with other work; wall time
//! does not, and is printed beside it.
//!
//! * **hold**: the engine alone (`benches/hold.rs`'s model: a fixed
//!   population of events, each rescheduling itself 0-65 us later), events
//!   per CPU second, for 100, 1,000 and 10,000 pending events.
//! * **paper**: the paper's model (`surge100`, `kwon2008`, 63 closed-loop
//!   connections per server, 10 s warm-up + 20 s measured) at 16 servers:
//!   simulated requests (warm-up included) per CPU second.
//! * **1M/kwon2008**: a 1,000,000-object SURGE catalog
//!   (`experiments/workloads/surge1m.toml`), `maglev`, distributed, 10
//!   simulated seconds, N = 16, 256 and 1024: wall and CPU time of the run,
//!   start-up included, peak RSS and the simulation's peak heap. The origin's
//!   100 Mbit/s link bounds these runs to a few thousand requests per
//!   simulated second, so they measure start-up and memory.
//! * **1M/modern**: the same catalog at N = 1024 on
//!   `experiments/hardware/modern.toml`, 3 simulated seconds: about a million
//!   requests; requests per CPU second of the event loop (the run's CPU time
//!   less that of the same cell with a 1 us window, i.e. less start-up).

use std::sync::Arc;
use std::time::Instant;

use dl7_core::PolicySpec;
use dl7_sim::engine::{Hold, Simulation};
use dl7_sim::{simulate_with_stats, Arch, CellSpec, Hardware};
use dl7_traces::Catalog;

#[global_allocator]
static ALLOC: dl7_alloc_count::Counting = dl7_alloc_count::Counting;

const MIB: f64 = 1024.0 * 1024.0;

fn repo_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn hardware(name: &str) -> Hardware {
    let path = repo_file(&format!("experiments/hardware/{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Hardware::from_toml_str(&text, &path.display().to_string()).unwrap()
}

fn catalog(workload: &str) -> Catalog {
    if workload == "surge100" {
        dl7_traces::workload::builtin("surge100").unwrap()
    } else {
        dl7_traces::workload::load(&repo_file(&format!("experiments/workloads/{workload}.toml"))).unwrap()
    }
}

/// CPU nanoseconds this process has run.
fn cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/self/schedstat").unwrap_or_default();
    text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn status_kib(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0)))
        .unwrap_or(0)
}

/// The hold model in the child: `POPULATION EVENTS`.
fn hold(args: &[String]) {
    let [population, events] = args else { panic!("bad hold arguments {args:?}") };
    let (population, events): (u32, u64) = (population.parse().unwrap(), events.parse().unwrap());
    let mut sim = Simulation::new(Hold::new());
    sim.init(|_, ctx| (0..population).for_each(|i| ctx.schedule_in(i as u64, i)));
    let (cpu0, t0) = (cpu_ns(), Instant::now());
    let mut end = 0;
    while sim.events() < events {
        end += 1_000_000;
        sim.run_until(end);
    }
    let (cpu, wall) = (cpu_ns() - cpu0, t0.elapsed().as_nanos() as u64);
    println!("requests=0 events={} wall_ns={wall} cpu_ns={cpu} heap=0 rss_before_kib=0 hwm_kib=0", sim.events());
}

/// One measured run, in the child: `KIND WORKLOAD HARDWARE ARCH POLICY N WARMUP MEASURE`.
fn child(args: &[String]) {
    let [workload, hw, arch, policy, n, warmup, measure] = args else { panic!("bad child arguments {args:?}") };
    let catalog = Arc::new(catalog(workload));
    let hw = hardware(hw);
    let arch = Arch::from_name(arch).unwrap();
    let cell = CellSpec {
        warmup_s: warmup.parse().unwrap(),
        measure_s: measure.parse().unwrap(),
        ..CellSpec::paper(workload, catalog, arch, PolicySpec::parse(policy).unwrap(), n.parse().unwrap())
    };
    let rss_before = status_kib("VmRSS:");
    let heap_before = dl7_alloc_count::reset_peak();
    let (cpu0, t0) = (cpu_ns(), Instant::now());
    let (_, stats) = simulate_with_stats(&cell, &hw).unwrap();
    let (cpu, wall) = (cpu_ns() - cpu0, t0.elapsed().as_nanos() as u64);
    let heap = dl7_alloc_count::peak_bytes() - heap_before;
    println!(
        "requests={} events={} wall_ns={wall} cpu_ns={cpu} heap={heap} rss_before_kib={rss_before} hwm_kib={}",
        stats.requests,
        stats.events,
        status_kib("VmHWM:")
    );
}

#[derive(Default, Clone, Copy)]
struct Run {
    requests: f64,
    events: f64,
    wall_s: f64,
    cpu_s: f64,
    heap_mib: f64,
    rss_before_mib: f64,
    hwm_mib: f64,
}

fn run_child(args: &[&str]) -> Run {
    let (mode, args) = match args {
        ["--hold", rest @ ..] => ("--hold", rest),
        _ => ("--child", args),
    };
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(mode)
        .args(args)
        .output()
        .expect("run the benchmark's child");
    assert!(out.status.success(), "child {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("requests=")).expect("a result line");
    let get = |k: &str| -> f64 {
        line.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{k}="))).unwrap().parse().unwrap()
    };
    Run {
        requests: get("requests"),
        events: get("events"),
        wall_s: get("wall_ns") / 1e9,
        cpu_s: get("cpu_ns") / 1e9,
        heap_mib: get("heap") / MIB,
        rss_before_mib: get("rss_before_kib") / 1024.0,
        hwm_mib: get("hwm_kib") / 1024.0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// `repeat` runs of one cell: the median of each figure, and the spread of wall times.
fn measure(repeat: usize, args: &[&str]) -> (Run, f64, f64) {
    let runs: Vec<Run> = (0..repeat).map(|_| run_child(args)).collect();
    let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let walls: Vec<f64> = runs.iter().map(|r| r.wall_s).collect();
    let (lo, hi) = (walls.iter().copied().fold(f64::MAX, f64::min), walls.iter().copied().fold(0.0, f64::max));
    let run = Run {
        requests: m(|r| r.requests),
        events: m(|r| r.events),
        wall_s: m(|r| r.wall_s),
        cpu_s: m(|r| r.cpu_s),
        heap_mib: m(|r| r.heap_mib),
        rss_before_mib: m(|r| r.rss_before_mib),
        hwm_mib: m(|r| r.hwm_mib),
    };
    (run, lo, hi)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--hold") {
        return hold(&args[1..]);
    }
    let repeat = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(5usize);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# dl7-sim scale benchmark: medians of {repeat} runs, each in its own process");
    println!("# load average at start: {}", load.trim());

    println!("\n## hold model: 10,000,000 events");
    println!("pending   events/s per cpu-s   events/s wall");
    for population in ["100", "1000", "10000"] {
        let (r, _, _) = measure(repeat, &["--hold", population, "10000000"]);
        println!("{population:<9} {:>20.0} {:>15.0}", r.events / r.cpu_s, r.events / r.wall_s);
    }

    println!("\n## paper model: surge100, kwon2008, 63 connections per server, 10 s + 20 s, N = 16");
    println!(
        "cell                    requests   events/req  wall s (min-max)      cpu s   req/s per cpu-s  req/s wall"
    );
    for (arch, policy) in [("distributed", "md5"), ("distributed", "rr"), ("conventional", "md5")] {
        let (r, lo, hi) = measure(repeat, &["surge100", "kwon2008", arch, policy, "16", "10", "20"]);
        println!(
            "{:<22} {:>9.0} {:>12.2} {:>7.3} ({:.3}-{:.3}) {:>9.3} {:>16.0} {:>11.0}",
            format!("{arch} {policy}"),
            r.requests,
            r.events / r.requests,
            r.wall_s,
            lo,
            hi,
            r.cpu_s,
            r.requests / r.cpu_s,
            r.requests / r.wall_s
        );
    }

    println!("\n## 1M/kwon2008: surge1m, maglev, distributed, 0 s + 10 s (start-up included)");
    println!("N      requests  wall s (min-max)       cpu s  peak RSS MiB  RSS before MiB  sim peak heap MiB");
    let mut walls = Vec::new();
    for n in ["16", "256", "1024"] {
        let (r, lo, hi) = measure(repeat, &["surge1m", "kwon2008", "distributed", "maglev", n, "0", "10"]);
        println!(
            "{n:<6} {:>8.0} {:>7.3} ({:.3}-{:.3}) {:>9.3} {:>13.0} {:>15.0} {:>18.0}",
            r.requests, r.wall_s, lo, hi, r.cpu_s, r.hwm_mib, r.rss_before_mib, r.heap_mib
        );
        walls.push((r.wall_s, r.cpu_s));
    }
    println!(
        "N = 256 / N = 16: wall {:.2}x, cpu {:.2}x; N = 1024 / N = 16: wall {:.2}x, cpu {:.2}x",
        walls[1].0 / walls[0].0,
        walls[1].1 / walls[0].1,
        walls[2].0 / walls[0].0,
        walls[2].1 / walls[0].1
    );

    println!("\n## 1M/modern: surge1m, maglev, distributed, N = 1024, modern.toml, 0 s + 3 s");
    let (full, lo, hi) = measure(repeat, &["surge1m", "modern", "distributed", "maglev", "1024", "0", "3"]);
    let (setup, _, _) = measure(repeat, &["surge1m", "modern", "distributed", "maglev", "1024", "0", "0.000001"]);
    let loop_cpu = full.cpu_s - setup.cpu_s;
    let loop_wall = full.wall_s - setup.wall_s;
    println!(
        "requests {:.0}, events/req {:.2}; run wall {:.3} s ({lo:.3}-{hi:.3}), cpu {:.3} s; start-up (1 us window) wall {:.3} s, cpu {:.3} s",
        full.requests,
        full.events / full.requests,
        full.wall_s,
        full.cpu_s,
        setup.wall_s,
        setup.cpu_s
    );
    println!(
        "event loop: {:.0} req/s per cpu-s, {:.0} req/s wall; peak RSS {:.0} MiB, sim peak heap {:.0} MiB",
        full.requests / loop_cpu,
        full.requests / loop_wall,
        full.hwm_mib,
        full.heap_mib
    );
}
