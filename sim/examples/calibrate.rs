//! Runs the paper's 60 Surge-100 cells (120 table entries: req/s and Mbit/s)
//! against `experiments/reference/kwon2008_surge100.csv` and prints every
//! cell's relative error and the median absolute relative error.
//!
//! ```text
//! cargo run -p dl7-sim --release --example calibrate [-- [--seeds K] [--warmup S] [--measure S]
//!     [--set key=value]... [--fit key,key,...]]
//! ```
//! `--set` overrides a hardware parameter (`server.frame_us=40`); `--fit`
//! runs a coordinate search over the named parameters, minimising the mean
//! absolute log error over the 120 entries, and prints the best values.

use std::sync::Arc;

use dl7_core::{PolicyKind, PolicySpec};
use dl7_sim::{simulate_with_stats, Arch, CellSpec, Hardware};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

struct Reference {
    metric: String,
    arch: Arch,
    policy: String,
    servers: u32,
    value: f64,
}

fn read_reference() -> Vec<Reference> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/reference/kwon2008_surge100.csv");
    let text = std::fs::read_to_string(path).expect("reference table");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Reference {
                metric: f[2].to_string(),
                arch: Arch::from_name(f[3]).expect("arch"),
                policy: f[4].to_string(),
                servers: f[5].parse().expect("servers"),
                value: f[6].parse().expect("value"),
            }
        })
        .collect()
}

fn param<'a>(hw: &'a mut Hardware, key: &str) -> &'a mut f64 {
    match key {
        "server.frame_us" => &mut hw.server.frame_us,
        "server.copy_ns_per_byte" => &mut hw.server.copy_ns_per_byte,
        "server.conn_us" => &mut hw.server.conn_us,
        "server.squid_request_us" => &mut hw.server.squid_request_us,
        "server.l7_parse_us" => &mut hw.server.l7_parse_us,
        "server.poll_ns_per_conn" => &mut hw.server.poll_ns_per_conn,
        "front_end.frame_us" => &mut hw.front_end.frame_us,
        "front_end.l7_parse_us" => &mut hw.front_end.l7_parse_us,
        "front_end.conn_us" => &mut hw.front_end.conn_us,
        other => panic!("unknown parameter {other}"),
    }
}

type Cell = (Arch, String, u32);

/// Engine events, completed requests and runs, over every run so far.
static EVENTS: AtomicU64 = AtomicU64::new(0);
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static RUNS: AtomicU64 = AtomicU64::new(0);

/// Simulated warm-up and measured seconds (`--warmup`, `--measure`).
static TIMES: std::sync::OnceLock<(f64, f64)> = std::sync::OnceLock::new();

fn run_cells(hw: &Hardware, cells: &[Cell], seeds: u64, catalog: &Arc<dl7_traces::Catalog>) -> Vec<(f64, f64)> {
    let (warmup_s, measure_s) = *TIMES.get_or_init(|| (dl7_sim::DEFAULT_WARMUP_S, dl7_sim::DEFAULT_MEASURE_S));
    cells
        .par_iter()
        .map(|(arch, policy, servers)| {
            let mut req = 0.0;
            let mut mbit = 0.0;
            for seed in 1..=seeds {
                let policy = PolicySpec::parse(policy).unwrap();
                let cell = CellSpec {
                    warmup_s,
                    measure_s,
                    seed,
                    ..CellSpec::paper("surge100", catalog.clone(), *arch, policy, *servers)
                };
                let (row, stats) = simulate_with_stats(&cell, hw).expect("simulate");
                EVENTS.fetch_add(stats.events, Ordering::Relaxed);
                REQUESTS.fetch_add(stats.requests, Ordering::Relaxed);
                RUNS.fetch_add(1, Ordering::Relaxed);
                req += row.req_per_s;
                mbit += row.mbit_per_s;
            }
            (req / seeds as f64, mbit / seeds as f64)
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut hw = Hardware::kwon2008();
    let mut seeds = 1;
    let mut fit: Vec<String> = Vec::new();
    let (mut warmup_s, mut measure_s) = (dl7_sim::DEFAULT_WARMUP_S, dl7_sim::DEFAULT_MEASURE_S);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seeds" => seeds = args[i + 1].parse().expect("--seeds N"),
            "--set" => {
                let (k, v) = args[i + 1].split_once('=').expect("--set key=value");
                *param(&mut hw, k) = v.parse().expect("number");
            }
            "--warmup" => warmup_s = args[i + 1].parse().expect("--warmup SECONDS"),
            "--measure" => measure_s = args[i + 1].parse().expect("--measure SECONDS"),
            "--fit" => fit = args[i + 1].split(',').map(String::from).collect(),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    TIMES.set((warmup_s, measure_s)).expect("set once");
    let catalog = Arc::new(dl7_traces::workload::builtin("surge100").expect("surge100"));
    let reference = read_reference();
    let members = dl7_core::Membership::numbered(2).unwrap();
    let mut cells: Vec<Cell> = Vec::new();
    for r in &reference {
        let buildable =
            PolicyKind::from_name(&r.policy).is_ok() && PolicySpec::parse(&r.policy).unwrap().build(&members).is_ok();
        let cell = (r.arch, r.policy.clone(), r.servers);
        if buildable && !cells.contains(&cell) {
            cells.push(cell);
        }
    }
    let score = |hw: &Hardware| -> (f64, f64, Vec<(f64, f64)>) {
        let out = run_cells(hw, &cells, seeds, &catalog);
        let mut errs = Vec::new();
        for r in &reference {
            if let Some(k) = cells.iter().position(|c| c.0 == r.arch && c.1 == r.policy && c.2 == r.servers) {
                let v = if r.metric == "req_per_s" { out[k].0 } else { out[k].1 };
                errs.push(v / r.value);
            }
        }
        let mean_log = errs.iter().map(|e: &f64| e.ln().abs()).sum::<f64>() / errs.len() as f64;
        let mut abs: Vec<f64> = errs.iter().map(|e| (e - 1.0).abs()).collect();
        abs.sort_by(f64::total_cmp);
        (mean_log, abs[abs.len() / 2], out)
    };

    if !fit.is_empty() {
        let mut best = score(&hw).0;
        let mut step = 0.2;
        while step > 0.01 {
            let mut improved = false;
            for k in &fit {
                for dir in [1.0 + step, 1.0 / (1.0 + step)] {
                    let mut trial = hw.clone();
                    *param(&mut trial, k) *= dir;
                    let s = score(&trial).0;
                    if s < best {
                        best = s;
                        hw = trial;
                        improved = true;
                        eprintln!("{k} -> {:.3}  mean|log err| {s:.4}", *param(&mut hw.clone(), k));
                    }
                }
            }
            if !improved {
                step /= 2.0;
            }
        }
        for k in &fit {
            println!("{k} = {:.3}", *param(&mut hw.clone(), k));
        }
    }

    let (runs0, events0, requests0) =
        (RUNS.load(Ordering::Relaxed), EVENTS.load(Ordering::Relaxed), REQUESTS.load(Ordering::Relaxed));
    let started = std::time::Instant::now();
    let (mean_log, median, out) = score(&hw);
    let wall = started.elapsed().as_secs_f64();
    let runs = RUNS.load(Ordering::Relaxed) - runs0;
    let events = EVENTS.load(Ordering::Relaxed) - events0;
    let requests = REQUESTS.load(Ordering::Relaxed) - requests0;
    println!("table,metric,arch,policy,servers,paper,sim,rel_err");
    let mut worst: Vec<(f64, String)> = Vec::new();
    for r in &reference {
        let Some(k) = cells.iter().position(|c| c.0 == r.arch && c.1 == r.policy && c.2 == r.servers) else { continue };
        let v = if r.metric == "req_per_s" { out[k].0 } else { out[k].1 };
        let e = v / r.value - 1.0;
        let line =
            format!("{},{},{},{},{:.0},{:.1},{:+.3}", r.metric, r.arch.name(), r.policy, r.servers, r.value, v, e);
        println!("{line}");
        worst.push((e.abs(), line));
    }
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!(
        "\nentries {} (of {}), median |rel err| {:.3}, mean |log err| {:.3}",
        worst.len(),
        reference.len(),
        median,
        mean_log
    );
    println!(
        "{runs} runs in {wall:.2} s wall ({} threads): {:.1} ms per run; {:.2} events per simulated request; {:.1} M events/s overall",
        rayon::current_num_threads(),
        wall * 1000.0 / runs as f64 * rayon::current_num_threads() as f64,
        events as f64 / requests as f64,
        events as f64 / wall / 1e6
    );
    println!("worst:");
    for (_, l) in worst.iter().take(8) {
        println!("  {l}");
    }
}
