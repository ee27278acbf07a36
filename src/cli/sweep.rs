//! `dl7 sweep FILE` runs an experiment file on an engine (`dl7::sweep`),
//! all of it or one shard; `dl7 merge` combines shards (`dl7::shard`);
//! `dl7 plot FILE` redraws the figures from any `results.csv` or
//! `timeseries.csv`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::input_error;
use dl7::experiment::{Engine, Plan};
use dl7::report;
use dl7::results;
use dl7::shard::Shard;
use dl7::sweep::SweepOptions;

#[derive(clap::Subcommand)]
pub enum SweepCommand {
    /// Run an experiment file on an engine; write results, summary, REPORT.md and figures.
    Sweep {
        /// The experiment TOML file.
        file: PathBuf,
        /// Worker threads (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
        threads: Option<u32>,
        /// Output directory (default: reports/<experiment name>, or reports/<name>/<engine> when
        /// --engine is not the file's own); a folder holding another engine's rows is refused.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Runs per cell, overriding the file's `seeds`.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        seeds: Option<u32>,
        /// The engine: sim, local (processes on loopback), lab (the emulated lab, root) or ssh
        /// (the lab file's hosts over SSH); overrides the file's `engine`.
        #[arg(long)]
        engine: Option<String>,
        /// Run only shard K of N (cells whose index is K-1 modulo N); `dl7 merge` combines the shards.
        #[arg(long, value_name = "K/N", value_parser = parse_shard)]
        shard: Option<Shard>,
    },
    /// Merge the output directories of `dl7 sweep --shard K/N` into the unsharded outputs.
    Merge {
        /// One directory per shard.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Redraw the figures from a results.csv or a timeseries.csv (simulated, real, or both overlaid).
    Plot {
        /// A results.csv or timeseries.csv written by `dl7 sweep` (or several concatenated, one header).
        results: PathBuf,
        /// Output directory (default: the directory of the results file).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: SweepCommand) -> anyhow::Result<()> {
    match cmd {
        SweepCommand::Sweep { file, threads, out, seeds, engine, shard } => {
            // The real engines' events (faults carried out, a lab front end's map changes) on stderr.
            dl7_services::service::init_logging();
            sweep(&file, threads, out, seeds, engine, shard)
        }
        SweepCommand::Merge { dirs, out } => merge(&dirs, &out),
        SweepCommand::Plot { results, out } => plot(&results, out),
    }
}

fn sweep(
    file: &Path,
    threads: Option<u32>,
    out: Option<PathBuf>,
    seeds: Option<u32>,
    engine: Option<String>,
    shard: Option<Shard>,
) -> anyhow::Result<()> {
    let mut plan = Plan::from_file(file).map_err(input_error)?;
    if let Some(k) = seeds {
        plan.seeds = k;
    }
    // A secret has no place in an experiment file: the real engines take it from the environment.
    plan.real.admin_token = crate::cli::real::admin_token()?;
    let engine =
        engine.map(|e| Engine::from_name(&e).map_err(|m| input_error(format!("--engine: {m}")))).transpose()?;
    let experiment = plan.load().map_err(input_error)?;
    let mut command = format!("dl7 sweep {}", file.display());
    if let Some(e) = engine {
        command.push_str(&format!(" --engine {}", e.name()));
    }
    if let Some(k) = seeds {
        command.push_str(&format!(" --seeds {k}"));
    }
    let opts = SweepOptions { engine, threads: threads.map(|t| t as usize), out, command, shard };
    let output = dl7::sweep::run(&experiment, &opts)?;
    println!("{}", output.summary);
    for f in &output.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    Shard::parse(text)
}

fn merge(dirs: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let merged = dl7::shard::merge(dirs, out)?;
    println!("{} runs from {} shards", merged.rows.len(), dirs.len());
    for f in &merged.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn plot(file: &Path, out: Option<PathBuf>) -> anyhow::Result<()> {
    let timeseries = results::is_timeseries(&results::header(file)?);
    let out = out.unwrap_or_else(|| file.parent().map(Path::to_path_buf).unwrap_or_default());
    let no_rows = || input_error(format!("{}: no rows to plot", file.display()));
    let figures = if timeseries {
        let rows = results::read_timeseries(file)?;
        if rows.is_empty() {
            return Err(no_rows());
        }
        std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
        // The schedule the sweep wrote beside it, if any, is marked on the timelines.
        let marks: Vec<report::timeline::Mark> = results::read_faults_beside(file)?
            .iter()
            .map(|f| report::timeline::Mark { t_s: f.at_s, label: f.label() })
            .collect();
        report::timeline::draw_all(&rows, &marks, &out)?
    } else {
        let rows = results::read_results(file)?;
        if rows.is_empty() {
            return Err(no_rows());
        }
        std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
        // The paper's cells are drawn, as the sweep draws them, for the rows of its testbed:
        // the sweep's REPORT.md beside them says so.
        let report = file.with_file_name("REPORT.md");
        let paper =
            std::fs::read_to_string(&report).is_ok_and(|t| t.lines().any(|l| l == report::markdown::FIDELITY_HEADING));
        let reference = if paper { report::reference::kwon2008_surge100() } else { Vec::new() };
        report::figures::draw_all(&report::summarize(&rows), &reference, &out)?
    };
    for f in &figures {
        println!("wrote {}", f.display());
    }
    Ok(())
}
