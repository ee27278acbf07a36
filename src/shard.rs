//! Sharded sweeps: `dl7 sweep FILE --shard K/N` runs the cells whose index
//! is `K-1` modulo `N` (cells in the file's order) and writes their rows
//! (`results.csv`, `timeseries.csv`) with a manifest; `dl7 merge DIR...
//! --out DIR` puts the shards' rows back in run order and writes what the
//! unsharded sweep writes, byte for byte. Any job
//! array runs the shards: a Slurm array task, a Kubernetes Indexed Job, GNU
//! parallel on one machine.
//!
//! The assignment is fixed and documented so that shards can run anywhere
//! and be merged anywhere; a merge refuses shards of another experiment (or
//! of the same file with other overrides), a missing shard, or one given
//! twice.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use dl7_core::timeseries::IntervalRow;
use dl7_core::ResultRow;
use serde::{Deserialize, Serialize};

use crate::experiment::{Engine, Experiment};
use crate::{input_error, results};

/// One shard of a sweep: `index` of `count`, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1..=count.
    pub index: u32,
    /// Shards in all.
    pub count: u32,
}

impl Shard {
    /// Parses `K/N` with 1 <= K <= N.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("{text:?}: expected K/N with 1 <= K <= N (e.g. 2/8)");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// True when cell `cell` (its index in the plan) belongs to this shard.
    pub fn holds(&self, cell: usize) -> bool {
        cell % self.count as usize == (self.index - 1) as usize
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What a shard's directory says about itself (`shard.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The experiment's name.
    pub experiment: String,
    /// [`crate::experiment::Plan::fingerprint`] of the plan the shard ran.
    pub fingerprint: String,
    /// The engine's name.
    pub engine: String,
    /// 1-based shard index.
    pub shard: u32,
    /// Shards in all.
    pub shards: u32,
    /// Cells and runs per cell of the whole sweep.
    pub cells: usize,
    pub seeds: u32,
    /// The unsharded command, for the merged REPORT.md.
    pub command: String,
    /// The runs are of the paper's testbed (compared with its tables).
    pub paper_testbed: bool,
}

const MANIFEST: &str = "shard.json";

impl Manifest {
    /// The manifest of `shard` of `experiment`.
    pub fn new(experiment: &Experiment, engine: Engine, shard: Shard, command: &str) -> Manifest {
        let plan = &experiment.plan;
        Manifest {
            experiment: plan.name.clone(),
            fingerprint: format!("{:016x}", plan.fingerprint()),
            engine: engine.name().to_string(),
            shard: shard.index,
            shards: shard.count,
            cells: plan.cells.len(),
            seeds: plan.seeds,
            command: command.to_string(),
            paper_testbed: experiment.paper_testbed(engine),
        }
    }

    /// Writes it into `dir`; returns its path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    fn read(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| input_error(format!("{}: not a shard directory ({e})", path.display())))?;
        serde_json::from_str(&text).map_err(|e| input_error(format!("{}: {e}", path.display())))
    }

    /// The same sweep: everything but the shard index agrees.
    fn same_sweep(&self, other: &Manifest) -> bool {
        Manifest { shard: 0, ..self.clone() } == Manifest { shard: 0, ..other.clone() }
    }
}

/// What a merge wrote.
pub struct Merged {
    /// The rows, in run order.
    pub rows: Vec<ResultRow>,
    /// Every file written.
    pub files: Vec<PathBuf>,
}

/// One shard's rows, taken in run order.
struct ShardRows {
    dir: PathBuf,
    rows: std::vec::IntoIter<ResultRow>,
    series: std::iter::Peekable<std::vec::IntoIter<IntervalRow>>,
}

/// Merges the shard directories `dirs` into `out`: `results.csv`,
/// `timeseries.csv`, `summary.csv`, `REPORT.md` and figures, as the
/// unsharded sweep writes them.
pub fn merge(dirs: &[PathBuf], out: &Path) -> anyhow::Result<Merged> {
    let mut shards = Vec::new();
    for dir in dirs {
        let m = Manifest::read(dir)?;
        let rows = results::read_results(&dir.join("results.csv"))?;
        let series = results::read_timeseries(&dir.join("timeseries.csv"))?;
        shards.push((dir.clone(), m, rows, series));
    }
    let Some((first_dir, first, _, _)) = shards.first() else {
        return Err(input_error("dl7 merge: no shard directories given"));
    };
    let first = first.clone();
    let first_dir = first_dir.clone();
    for (dir, m, _, _) in &shards {
        if !m.same_sweep(&first) {
            return Err(input_error(format!(
                "{}: shard of another sweep ({} {} x{} on {}, fingerprint {}) than {} ({} {} x{} on {}, fingerprint {})",
                dir.display(),
                m.experiment,
                m.shards,
                m.seeds,
                m.engine,
                m.fingerprint,
                first_dir.display(),
                first.experiment,
                first.shards,
                first.seeds,
                first.engine,
                first.fingerprint
            )));
        }
    }
    let mut by_index: Vec<Option<ShardRows>> = (0..first.shards).map(|_| None).collect();
    for (dir, m, rows, series) in shards {
        let slot = &mut by_index[(m.shard - 1) as usize];
        if let Some(other) = slot {
            return Err(input_error(format!(
                "shard {}/{} given twice: {} and {}",
                m.shard,
                m.shards,
                other.dir.display(),
                dir.display()
            )));
        }
        *slot = Some(ShardRows { dir, rows: rows.into_iter(), series: series.into_iter().peekable() });
    }
    let missing: Vec<String> = (0..first.shards)
        .filter(|&i| by_index[i as usize].is_none())
        .map(|i| format!("{}/{}", i + 1, first.shards))
        .collect();
    if !missing.is_empty() {
        return Err(input_error(format!("missing shard {} of {}", missing.join(", "), first.experiment)));
    }
    // Run order: cells in order, each cell's seeds in order; cell c is in shard c mod N.
    let mut rows = Vec::with_capacity(first.cells * first.seeds as usize);
    let mut series = Vec::new();
    for cell in 0..first.cells {
        let shard = by_index[cell % first.shards as usize].as_mut().expect("checked above");
        for _ in 0..first.seeds {
            let row = shard.rows.next().ok_or_else(|| {
                input_error(format!("{}: fewer rows than its shard's runs (an unfinished shard?)", shard.dir.display()))
            })?;
            // A run's intervals are the consecutive rows with its keys.
            while let Some(i) = shard.series.next_if(|i| i.of_run(&row)) {
                series.push(i);
            }
            rows.push(row);
        }
    }
    for shard in by_index.iter_mut().flatten() {
        if shard.rows.next().is_some() {
            return Err(input_error(format!("{}: more rows than its shard's runs", shard.dir.display())));
        }
        if let Some(i) = shard.series.next() {
            return Err(input_error(format!(
                "{}: timeseries.csv has intervals of no run of results.csv, or out of order (first: {} {} {} {} servers seed {})",
                shard.dir.display(),
                i.workload,
                i.arch,
                i.policy,
                i.servers,
                i.seed
            )));
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let results_path = out.join("results.csv");
    results::write_results(&results_path, &rows)?;
    let series_path = out.join("timeseries.csv");
    results::write_timeseries(&series_path, &series)?;
    let mut files = vec![results_path, series_path];
    // Every shard ran the same experiment, so the first one's schedule is the sweep's.
    let faults = results::read_faults_beside(&first_dir.join("timeseries.csv"))?;
    if !faults.is_empty() {
        let path = out.join("faults.csv");
        results::write_faults(&path, &faults)?;
        files.push(path);
    }
    crate::report::write_all(
        &first.experiment,
        &first.command,
        &rows,
        &series,
        &faults,
        first.paper_testbed,
        out,
        &mut files,
    )?;
    Ok(Merged { rows, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_cells_by_index_modulo_the_count() {
        let s = Shard::parse("2/3").unwrap();
        let held: Vec<usize> = (0..8).filter(|&c| s.holds(c)).collect();
        assert_eq!(held, [1, 4, 7]);
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
