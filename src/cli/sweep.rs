//! `dl7 sweep FILE` runs every cell of an experiment file in parallel and
//! writes `results.csv`, `summary.csv`, `REPORT.md` and the figures;
//! `dl7 plot RESULTS.csv` redraws the figures from any results file.
//!
//! Runs are collected in cell order whatever the number of threads, so the
//! outputs are byte-identical for 1 or N threads. This module only wires the
//! pieces: experiment files live in `experiment`, the model in `dl7_sim`, the
//! outputs in `report` and `results`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::cli::input_error;
use dl7::experiment::Plan;
use dl7::report::{self, markdown, reference, summary};
use dl7::results;

#[derive(clap::Subcommand)]
pub enum SweepCommand {
    /// Run an experiment file's sweep; write results, summary, REPORT.md and figures.
    Sweep {
        /// The experiment TOML file.
        file: PathBuf,
        /// Worker threads (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
        threads: Option<u32>,
        /// Output directory (default: reports/<experiment name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Runs per cell, overriding the file's `seeds`.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        seeds: Option<u32>,
    },
    /// Redraw the figures from a results.csv (simulated, real, or both overlaid).
    Plot {
        /// A results.csv written by `dl7 sweep` or the real-cluster runner.
        results: PathBuf,
        /// Output directory (default: the directory of the results file).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: SweepCommand) -> anyhow::Result<()> {
    match cmd {
        SweepCommand::Sweep { file, threads, out, seeds } => sweep(&file, threads, out, seeds),
        SweepCommand::Plot { results, out } => plot(&results, out),
    }
}

fn sweep(file: &Path, threads: Option<u32>, out: Option<PathBuf>, seeds: Option<u32>) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut plan = Plan::from_file(file).map_err(input_error)?;
    if let Some(k) = seeds {
        plan.seeds = k;
    }
    let experiment = plan.load().map_err(input_error)?;
    let runs = experiment.runs();
    let name = experiment.plan.name.clone();
    let out = out.unwrap_or_else(|| Path::new("reports").join(&name));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        pool = pool.num_threads(t as usize);
    }
    let pool = pool.build().context("cannot start the worker threads")?;
    let threads_used = pool.current_num_threads();

    let progress = ProgressBar::with_draw_target(Some(runs.len() as u64), ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} runs, eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let hardware = experiment.hardware.clone();
    let outcomes: Vec<_> = pool.install(|| {
        runs.par_iter()
            .map(|spec| {
                let outcome = dl7_sim::simulate(spec, &hardware);
                progress.inc(1);
                outcome
            })
            .collect()
    });
    progress.finish_and_clear();
    let mut rows = Vec::with_capacity(outcomes.len());
    for (spec, outcome) in runs.iter().zip(outcomes) {
        let row = outcome.with_context(|| {
            format!(
                "run {}/{}/{}/{} servers (seed {}) failed",
                spec.workload,
                spec.arch.name(),
                spec.policy.kind,
                spec.servers,
                spec.seed
            )
        })?;
        rows.push(row);
    }
    let sim_seconds = started.elapsed().as_secs_f64();

    let results_path = out.join("results.csv");
    results::write_results(&results_path, &rows)?;
    let summary_rows = report::summarize(&rows);
    summary::write_summary(&out.join("summary.csv"), &summary_rows)?;
    let mut command = format!("dl7 sweep {}", file.display());
    if let Some(k) = seeds {
        command.push_str(&format!(" --seeds {k}"));
    }
    let reference = reference::kwon2008_surge100();
    let text = markdown::render(&name, &command, &summary_rows, &reference);
    let report_path = out.join("REPORT.md");
    std::fs::write(&report_path, &text).with_context(|| format!("cannot write {}", report_path.display()))?;
    let figures = report::figures::draw_all(&summary_rows, &reference, &out)?;

    println!(
        "{} runs ({} cells x {} seeds) on {threads_used} threads: simulated in {sim_seconds:.1} s, {:.1} s wall in all",
        rows.len(),
        experiment.plan.cells.len(),
        experiment.plan.seeds,
        started.elapsed().as_secs_f64()
    );
    println!("wrote {}", results_path.display());
    println!("wrote {}", out.join("summary.csv").display());
    println!("wrote {}", report_path.display());
    println!("wrote {} figures (PNG and SVG) in {}", figures.len(), out.display());
    println!("{}", markdown::fidelity_summary(&summary_rows, &reference));
    Ok(())
}

fn plot(results_file: &Path, out: Option<PathBuf>) -> anyhow::Result<()> {
    let rows = results::read_results(results_file)?;
    if rows.is_empty() {
        return Err(input_error(format!("{}: no rows to plot", results_file.display())));
    }
    let out = out.unwrap_or_else(|| results_file.parent().map(Path::to_path_buf).unwrap_or_default());
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let figures = report::figures::draw_all(&report::summarize(&rows), &[], &out)?;
    for f in &figures {
        println!("wrote {}", f.display());
    }
    Ok(())
}
