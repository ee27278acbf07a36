//! A sweep: every run of an experiment handed to one engine, and the outputs
//! written (`results.csv`, `timeseries.csv`, `summary.csv`, `REPORT.md`,
//! figures; for the real engines `memory.csv`, every process's peak
//! resident memory, and for the lab and SSH engines `nic.csv`).
//!
//! Runs are collected in cell order whatever the number of threads, so the
//! simulator's outputs are byte-identical for 1 or N threads. The real
//! engines run one cell at a time (they measure this machine) and keep the
//! rows measured before a failure or a Ctrl-C. The SSH engine connects to
//! every host once for the sweep and applies and undoes each cell's per-host
//! setup around the cell.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use dl7_core::timeseries::{Interval, IntervalRow};
use dl7_core::ResultRow;
use dl7_testbed::cell::{self, CellOutcome, RealCell};
use dl7_testbed::lab::LabConfig;
use dl7_testbed::placement::{self, Placement};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::experiment::{Engine, Experiment, Run};
use crate::report;
use crate::shard::{Manifest, Shard};
use crate::{input_error, results};

/// How to run a sweep, beyond what the experiment file says.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// Overrides the file's `engine`.
    pub engine: Option<Engine>,
    /// Simulator worker threads (default: one per core).
    pub threads: Option<usize>,
    /// Output directory (default: `reports/<name>`).
    pub out: Option<PathBuf>,
    /// The command line, for REPORT.md (without `--shard`: a merge of the
    /// shards writes the unsharded run's report).
    pub command: String,
    /// Run only this shard's cells ([`Shard`]); `None`: every cell.
    pub shard: Option<Shard>,
}

/// What a sweep wrote.
#[derive(Debug, Clone)]
pub struct SweepOutput {
    /// The rows, in run order.
    pub rows: Vec<ResultRow>,
    /// The `timeseries.csv` rows: each run's intervals, in run order.
    pub series: Vec<IntervalRow>,
    /// Every file written.
    pub files: Vec<PathBuf>,
    /// One line for the terminal: runs, engine, time.
    pub summary: String,
}

/// Runs every run of `experiment` (or of one shard) on its engine and writes
/// the outputs; a shard writes its rows and a manifest for `dl7 merge`.
pub fn run(experiment: &Experiment, opts: &SweepOptions) -> anyhow::Result<SweepOutput> {
    let started = Instant::now();
    let plan = &experiment.plan;
    let engine = opts.engine.unwrap_or(plan.engine);
    let lab = plan.check_engine(engine).map_err(input_error)?;
    let out = opts.out.clone().unwrap_or_else(|| default_out(&plan.name, plan.engine, engine));
    refuse_other_engines(&out, engine)?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut files = Vec::new();
    let in_shard = |r: &Run| match opts.shard {
        Some(s) => s.holds(r.cell),
        None => true,
    };
    let runs: Vec<Run> = experiment.runs().into_iter().filter(in_shard).collect();

    let (runs_done, failure) = match engine {
        Engine::Sim => (simulate(experiment, &runs, opts.threads)?, None),
        Engine::Local | Engine::Lab | Engine::Ssh => {
            let (outcomes, failure) = run_real(experiment, &runs, engine, lab.as_ref())?;
            if outcomes.iter().any(|o| !o.nic.is_empty()) {
                let path = out.join("nic.csv");
                results::write_nic(&path, &outcomes)?;
                files.push(path);
            }
            if !outcomes.is_empty() {
                let path = out.join("memory.csv");
                results::write_memory(&path, &outcomes)?;
                files.push(path);
            }
            (outcomes.into_iter().map(|o| (o.row, o.load.intervals)).collect(), failure)
        }
    };
    let series: Vec<IntervalRow> =
        runs_done.iter().flat_map(|(row, intervals)| intervals.iter().map(|i| IntervalRow::new(row, i))).collect();
    let rows: Vec<ResultRow> = runs_done.into_iter().map(|(row, _)| row).collect();

    let results_path = out.join("results.csv");
    results::write_results(&results_path, &rows)?;
    files.push(results_path);
    let series_path = out.join("timeseries.csv");
    results::write_timeseries(&series_path, &series)?;
    files.push(series_path);
    let faults: Vec<results::FaultRow> = plan
        .faults
        .iter()
        .map(|f| results::FaultRow { at_s: f.at_s, action: f.action.name().into(), node: f.node })
        .collect();
    if !faults.is_empty() {
        let path = out.join("faults.csv");
        results::write_faults(&path, &faults)?;
        files.push(path);
    }
    if let Some(e) = failure {
        // Keep what was measured before the failure or the interruption.
        return Err(e.context(format!(
            "wrote {} and {} ({} of {} runs)",
            files[files.len() - 2].display(),
            files[files.len() - 1].display(),
            rows.len(),
            runs.len()
        )));
    }
    let took = started.elapsed().as_secs_f64();
    if let Some(shard) = opts.shard {
        files.push(Manifest::new(experiment, engine, shard, &opts.command).write(&out)?);
        let line = format!(
            "shard {shard}: {} runs of {} on engine {}: {took:.1} s wall; `dl7 merge` combines the shards",
            rows.len(),
            plan.run_count(),
            engine.name()
        );
        return Ok(SweepOutput { rows, series, files, summary: line });
    }
    let fidelity = report::write_all(
        &plan.name,
        &opts.command,
        &rows,
        &series,
        &faults,
        experiment.paper_testbed(engine),
        &out,
        &mut files,
    )?;
    let mut line = format!(
        "{} runs ({} cells x {} seeds) on engine {}: {took:.1} s wall",
        rows.len(),
        plan.cells.len(),
        plan.seeds,
        engine.name()
    );
    if experiment.paper_testbed(engine) {
        line.push('\n');
        line.push_str(&fidelity);
    }
    Ok(SweepOutput { rows, series, files, summary: line })
}

/// Where a sweep writes when `--out` is not given: `reports/NAME` on the
/// experiment's own engine, `reports/NAME/ENGINE` on another one, so that
/// `--engine` never writes over the evidence of the file's own engine.
pub fn default_out(name: &str, own: Engine, engine: Engine) -> PathBuf {
    let dir = Path::new("reports").join(name);
    if engine == own {
        dir
    } else {
        dir.join(engine.name())
    }
}

/// Refuses an output folder that already holds rows of another engine
/// (its `results.csv` or `timeseries.csv` has another `mode`): a sweep
/// never mixes engines in one folder, nor writes over another engine's rows.
fn refuse_other_engines(out: &Path, engine: Engine) -> anyhow::Result<()> {
    for name in ["results.csv", "timeseries.csv"] {
        let path = out.join(name);
        let Ok(mut reader) = csv::Reader::from_path(&path) else { continue };
        let Some(col) = reader.headers().ok().and_then(|h| h.iter().position(|c| c == "mode")) else { continue };
        let mut others = std::collections::BTreeSet::new();
        for record in reader.records().flatten() {
            match record.get(col) {
                Some(m) if m != engine.mode() => {
                    others.insert(m.to_string());
                }
                _ => {}
            }
        }
        if !others.is_empty() {
            let modes: Vec<String> = others.into_iter().collect();
            return Err(input_error(format!(
                "{} holds rows of mode {} (this sweep's engine {} writes mode {}): choose another folder with --out, or remove that one first",
                path.display(),
                modes.join(", "),
                engine.name(),
                engine.mode()
            )));
        }
    }
    Ok(())
}

/// The progress bar of every long job (a sweep's runs, a catalog's files), on stderr.
pub fn progress_bar(len: usize, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(&format!("{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {unit}, eta {{eta}}"))
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

/// Every run's row and intervals, in run order.
fn simulate(
    experiment: &Experiment,
    runs: &[Run],
    threads: Option<usize>,
) -> anyhow::Result<Vec<(ResultRow, Vec<Interval>)>> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        pool = pool.num_threads(t);
    }
    let pool = pool.build().context("cannot start the worker threads")?;
    let progress = progress_bar(runs.len(), "runs");
    let hardware = experiment.hardware.clone();
    let outcomes: Vec<_> = pool.install(|| {
        runs.par_iter()
            .map(|run| {
                let outcome = dl7_sim::simulate_with_stats(&experiment.sim_spec(run), &hardware);
                progress.inc(1);
                // Only the row and the intervals are kept: the rest (cache contents) goes now.
                outcome.map(|(row, stats)| (row, stats.intervals))
            })
            .collect()
    });
    progress.finish_and_clear();
    let mut rows = Vec::with_capacity(outcomes.len());
    for (run, outcome) in runs.iter().zip(outcomes) {
        rows.push(outcome.with_context(|| format!("run {} failed", describe(experiment, run)))?);
    }
    Ok(rows)
}

/// `surge100/lru/distributed/md5/4 servers (seed N)`, for messages.
fn describe(experiment: &Experiment, run: &Run) -> String {
    let plan = &experiment.plan;
    let cell = &plan.cells[run.cell];
    format!(
        "{}/{}/{}/{}/{} servers (seed {})",
        plan.workloads[cell.workload].0,
        cell.eviction,
        cell.arch.name(),
        cell.policy.kind,
        cell.servers,
        run.seed
    )
}

/// The real engine's description of a run.
pub fn real_cell(experiment: &Experiment, run: &Run) -> RealCell {
    let plan = &experiment.plan;
    let cell = &plan.cells[run.cell];
    RealCell {
        workload: plan.workloads[cell.workload].0.clone(),
        workload_source: plan.workloads[cell.workload].1.argument(),
        arch: cell.arch,
        policy: cell.policy.clone(),
        hash_key: plan.hash_key,
        servers: cell.servers,
        seed: run.seed,
        clients: plan.clients,
        warmup_s: plan.warmup_s,
        measure_s: plan.measure_s,
        interval_s: plan.interval_s,
        cache_bytes: experiment.cache_bytes_per_server(),
        eviction: cell.eviction,
        max_object_bytes: experiment.max_object_bytes(),
        settings: plan.real.clone(),
        emulate_cpu: plan.real.emulate_cpu.then(|| (*experiment.hardware).clone()),
        faults: plan.faults_for(cell.servers),
    }
}

/// Runs every run on the real cluster: on loopback, in the emulated lab or
/// on the lab's hosts over SSH, one at a time. A failure or a Ctrl-C stops
/// the sweep; the rows measured so far are returned with it.
fn run_real(
    experiment: &Experiment,
    runs: &[Run],
    engine: Engine,
    lab: Option<&LabConfig>,
) -> anyhow::Result<(Vec<CellOutcome>, Option<anyhow::Error>)> {
    let exe = std::env::current_exe().context("cannot find the dl7 executable")?;
    let plan = &experiment.plan;
    let rt = dl7_services::service::runtime(None).context("cannot start the runtime")?;
    // From here a Ctrl-C is ours: seen between cells and during one.
    let interrupt = dl7_services::service::Interrupt::install(&rt).context("cannot catch signals")?;
    let placement = open_placement(engine, lab)?;
    let scratch = cell::scratch_dir(&plan.name).context("cannot create a scratch directory")?;
    let progress = progress_bar(runs.len(), "runs");
    let mut outcomes = Vec::new();
    let mut failure = None;
    let interrupted = || anyhow::anyhow!("interrupted: all processes stopped");
    for (i, run) in runs.iter().enumerate() {
        if interrupt.is_set() {
            failure = Some(interrupted());
            break;
        }
        let cell = real_cell(experiment, run);
        // Hosts are set up for every node the cell will have, the ones its faults join included.
        if let Err(e) = placement.prepare(&cell, cell.node_count()) {
            failure = Some(anyhow::anyhow!("run {}: {e}", describe(experiment, run)));
            break;
        }
        let dir = scratch.join(i.to_string());
        if let Err(e) = std::fs::create_dir_all(&dir) {
            failure = Some(anyhow::Error::new(e).context(format!("cannot create {}", dir.display())));
            break;
        }
        let outcome = rt.block_on(interrupt.guard(cell::run_cell(&exe, &cell, &placement, &dir)));
        // Undo the cell's setup on every host whatever happened (the services are stopped by now).
        let undo = placement.finish();
        match (outcome, undo) {
            (None, undo) => {
                failure = Some(match undo {
                    Ok(()) => interrupted(),
                    Err(u) => anyhow::anyhow!("interrupted; undoing the setup: {u}"),
                });
                break;
            }
            (Some(Err(e)), undo) => {
                let also = undo.err().map(|u| format!("; undoing the setup: {u}")).unwrap_or_default();
                failure = Some(anyhow::anyhow!("run {} failed: {e}{also}", describe(experiment, run)));
                break;
            }
            (Some(Ok(o)), undo) => {
                // On stdout whether or not stderr is a terminal (a hidden bar drops its println).
                progress.suspend(|| println!("{}", progress_line(&o)));
                outcomes.push(o);
                if let Err(u) = undo {
                    failure = Some(anyhow::anyhow!("run {}: undoing the setup: {u}", describe(experiment, run)));
                    break;
                }
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let _ = std::fs::remove_dir_all(&scratch);
    let errors = placement.close();
    if !errors.is_empty() {
        let text = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        failure = Some(match failure {
            Some(f) => f.context(format!("and at the end of the sweep: {text}")),
            None => anyhow::anyhow!("at the end of the sweep: {text}"),
        });
    }
    Ok((outcomes, failure))
}

/// The placement of a real engine: loopback, the emulated lab (brought up
/// if it is not there) or the lab's hosts over SSH (connected for the sweep).
fn open_placement(engine: Engine, lab: Option<&LabConfig>) -> anyhow::Result<Arc<dyn Placement>> {
    Ok(match (engine, lab) {
        (Engine::Lab, Some(l)) => {
            Arc::new(placement::Netns::open(l, &mut |line| eprintln!("{line}")).map_err(input_error)?)
        }
        (Engine::Ssh, Some(l)) => {
            let version = format!("dl7 {}", env!("CARGO_PKG_VERSION"));
            Arc::new(placement::Ssh::open(l, &version, ssh_log).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        _ => Arc::new(placement::Local),
    })
}

/// The SSH engine's log: what it chose and found; each host's commands with `DL7_SSH_VERBOSE=1`.
fn ssh_log(line: &str) {
    if line.starts_with("ssh:") || std::env::var_os("DL7_SSH_VERBOSE").is_some() {
        eprintln!("{line}");
    }
}

/// One line per measured run, as the rows come in.
fn progress_line(o: &CellOutcome) -> String {
    let r = &o.row;
    let mut line = format!(
        "{:<12} {:<8} {:>3} servers: {:>9.1} req/s {:>8.2} Mbit/s p99 {:>8.3} ms, hit {:.3}, fwd {:.3}, errors {}",
        r.arch, r.policy, r.servers, r.req_per_s, r.mbit_per_s, r.p99_ms, r.hit_ratio, r.forwarded_frac, r.errors
    );
    if r.eviction != dl7_core::eviction::Eviction::Lru {
        line.push_str(&format!(", eviction {}", r.eviction));
    }
    if r.replayed > 0 {
        line.push_str(&format!(", replayed {} dropped {}", r.replayed, r.dropped));
    }
    if o.load.send_lag_max_ms > 0.0 {
        line.push_str(&format!(
            ", sent late by p99 {:.3} ms max {:.3} ms",
            o.load.send_lag_p99_ms, o.load.send_lag_max_ms
        ));
    }
    if let Some(fe) = o.nic.iter().find(|u| u.role == "front") {
        // Direct routing: the front end transmits only forwarded requests, a few % of the payload.
        line.push_str(&format!(
            "; front end tx {:.1}% of the payload",
            fe.tx_bytes as f64 * 100.0 / o.load.payload_bytes.max(1) as f64
        ));
    }
    line
}
