//! The one `results.csv` and `timeseries.csv` writer and reader, shared by
//! every engine; the fault schedule's `faults.csv` (what the timelines mark);
//! and the real engines' per-host `nic.csv` and per-process `memory.csv`.

use std::path::Path;

use anyhow::Context;
use dl7_core::eviction::Eviction;
use dl7_core::timeseries::IntervalRow;
use dl7_core::ResultRow;
use dl7_testbed::cell::CellOutcome;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Writes `rows` as CSV with the header of [`ResultRow::COLUMNS`].
pub fn write_results(path: &Path, rows: &[ResultRow]) -> anyhow::Result<()> {
    write_csv(path, rows, ResultRow::COLUMNS)
}

/// Reads a `results.csv` (any mode); errors name the file and the line.
pub fn read_results(path: &Path) -> anyhow::Result<Vec<ResultRow>> {
    read_csv(path, "results.csv", ResultRow::COLUMNS, ResultRow::OPTIONAL)
}

/// Writes `timeseries.csv` rows with the header of [`IntervalRow::COLUMNS`].
pub fn write_timeseries(path: &Path, rows: &[IntervalRow]) -> anyhow::Result<()> {
    write_csv(path, rows, IntervalRow::COLUMNS)
}

/// Reads a `timeseries.csv`; errors name the file and the line.
pub fn read_timeseries(path: &Path) -> anyhow::Result<Vec<IntervalRow>> {
    read_csv(path, "timeseries.csv", IntervalRow::COLUMNS, IntervalRow::OPTIONAL)
}

/// True when `header` is a `timeseries.csv` header (of this release or an
/// older one), not a `results.csv` one.
pub fn is_timeseries(header: &[String]) -> bool {
    header_matches(header, IntervalRow::COLUMNS, IntervalRow::OPTIONAL)
}

/// True when `header` is `columns` in order, with any of the `optional`
/// ones left out (a file written before they existed).
fn header_matches<S: AsRef<str>>(header: &[S], columns: &[&str], optional: &[&str]) -> bool {
    let expected: Vec<&str> =
        columns.iter().copied().filter(|c| !optional.contains(c) || header.iter().any(|h| h.as_ref() == *c)).collect();
    header.len() == expected.len() && header.iter().zip(&expected).all(|(h, c)| h.as_ref() == *c)
}

/// The header of the CSV file at `path` (for telling the two files apart).
pub fn header(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| crate::input_error(format!("{}: cannot read: {e}", path.display())))?;
    let header =
        r.headers().map_err(|e| crate::input_error(format!("{}: cannot read the header: {e}", path.display())))?;
    Ok(header.iter().map(str::to_string).collect())
}

fn write_csv<T: Serialize>(path: &Path, rows: &[T], columns: &[&str]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("cannot create {}", path.display()))?;
    if rows.is_empty() {
        // serde writes the header with the first row: an empty file still says what it is.
        w.write_record(columns).with_context(|| format!("cannot write {}", path.display()))?;
    }
    for row in rows {
        w.serialize(row).with_context(|| format!("cannot write {}", path.display()))?;
    }
    w.flush().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn read_csv<T: DeserializeOwned>(
    path: &Path,
    what: &str,
    columns: &[&str],
    optional: &[&str],
) -> anyhow::Result<Vec<T>> {
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| crate::input_error(format!("{}: cannot read {what}: {e}", path.display())))?;
    let header = r
        .headers()
        .map_err(|e| crate::input_error(format!("{}: cannot read the header: {e}", path.display())))?
        .clone();
    // Files written before the `optional` columns existed are still read (those columns at their defaults).
    let names: Vec<&str> = header.iter().collect();
    if !header_matches(&names, columns, optional) {
        return Err(crate::input_error(format!(
            "{}:1: expected the {what} header {}, found {}",
            path.display(),
            columns.join(","),
            header.iter().collect::<Vec<_>>().join(",")
        )));
    }
    let mut rows = Vec::new();
    for (i, row) in r.deserialize::<T>().enumerate() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(i as u64 + 2, |p| p.line());
            crate::input_error(format!("{}:{line}: {e}", path.display()))
        })?;
        rows.push(row);
    }
    Ok(rows)
}

/// One `faults.csv` row: a fault of the schedule, as the experiment gives it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaultRow {
    /// Seconds after the measured window opens.
    pub at_s: f64,
    pub action: String,
    /// Empty for a join that takes each cell's next node.
    pub node: Option<u32>,
}

impl FaultRow {
    /// The columns of `faults.csv`.
    pub const COLUMNS: &'static [&'static str] = &["at_s", "action", "node"];

    /// The label a timeline shows at its instant.
    pub fn label(&self) -> String {
        match self.node {
            Some(n) => format!("{} node {n}", self.action),
            None => self.action.clone(),
        }
    }
}

/// Writes the fault schedule beside `timeseries.csv`, so that `dl7 plot` marks it too.
pub fn write_faults(path: &Path, faults: &[FaultRow]) -> anyhow::Result<()> {
    write_csv(path, faults, FaultRow::COLUMNS)
}

/// The fault schedule in the `faults.csv` beside `timeseries`, if there is one.
pub fn read_faults_beside(timeseries: &Path) -> anyhow::Result<Vec<FaultRow>> {
    let path = timeseries.with_file_name("faults.csv");
    if !path.exists() {
        return Ok(Vec::new());
    }
    read_csv(&path, "faults.csv", FaultRow::COLUMNS, &[])
}

/// One `memory.csv` row: a process's peak resident memory over one run.
#[derive(serde::Serialize)]
struct MemoryRow<'a> {
    workload: &'a str,
    arch: &'a str,
    policy: &'a str,
    // Runs of two evictions share their seed: this tells them apart.
    eviction: Eviction,
    servers: u32,
    seed: u64,
    role: &'a str,
    index: u32,
    peak_rss_bytes: u64,
    peak_rss_mib: f64,
}

/// Writes every process's peak resident memory (`VmHWM`) per run.
pub fn write_memory(path: &Path, outcomes: &[CellOutcome]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("cannot create {}", path.display()))?;
    for o in outcomes {
        for m in &o.memory {
            w.serialize(MemoryRow {
                workload: &o.row.workload,
                arch: &o.row.arch,
                policy: &o.row.policy,
                eviction: o.row.eviction,
                servers: o.row.servers,
                seed: o.row.seed,
                role: m.role,
                index: m.index,
                peak_rss_bytes: m.peak_rss_bytes,
                peak_rss_mib: (m.peak_rss_bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0,
            })
            .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    w.flush().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// One `nic.csv` row: a lab host's NIC bytes over one run's measured window.
#[derive(serde::Serialize)]
struct NicRow<'a> {
    arch: &'a str,
    policy: &'a str,
    eviction: Eviction,
    servers: u32,
    seed: u64,
    host: &'a str,
    role: &'a str,
    tx_bytes: u64,
    rx_bytes: u64,
    window_s: f64,
    link_mbit_per_s: f64,
    utilisation: f64,
}

/// Writes every lab host's NIC bytes per run (from the kernel's counters).
pub fn write_nic(path: &Path, outcomes: &[CellOutcome]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("cannot create {}", path.display()))?;
    for o in outcomes {
        for u in &o.nic {
            w.serialize(NicRow {
                arch: &o.row.arch,
                policy: &o.row.policy,
                eviction: o.row.eviction,
                servers: o.row.servers,
                seed: o.row.seed,
                host: &u.host,
                role: u.role,
                tx_bytes: u.tx_bytes,
                rx_bytes: u.rx_bytes,
                window_s: u.window_s,
                link_mbit_per_s: u.link_mbit_per_s,
                utilisation: u.utilisation(),
            })
            .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    w.flush().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dl7-results-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A `results.csv` row in this release's columns, `eviction` between `policy` and `servers`.
    const NEW: &str = "w,distributed,md5,sieve,4,9,1,2,0.5,0.5,1,2,0,0,0,0,1,0.75,10,20,sim,0,0,0,,";

    #[test]
    fn files_without_the_eviction_or_fault_columns_read_as_lru() {
        let dir = scratch("old");
        let all = ResultRow::COLUMNS.join(",");
        let without = |drop: &[&str]| {
            ResultRow::COLUMNS.iter().copied().filter(|c| !drop.contains(c)).collect::<Vec<_>>().join(",")
        };
        let old_row = "w,distributed,md5,4,9,1,2,0.5,0.5,1,2,0,0,0,0,1,0.75,10,20,sim,0,0,0";
        let path = dir.join("results.csv");
        for (header, row, eviction) in [
            (all.clone(), NEW.to_string(), Eviction::Sieve),
            // Before the eviction column: the fault columns, then neither.
            (without(&["eviction"]), format!("{old_row},,"), Eviction::Lru),
            (without(&ResultRow::OPTIONAL), old_row.to_string(), Eviction::Lru),
        ] {
            std::fs::write(&path, format!("{header}\n{row}\n")).unwrap();
            let rows = read_results(&path).unwrap_or_else(|e| panic!("{header}: {e}"));
            assert_eq!((rows[0].eviction, rows[0].servers, rows[0].cache_bytes), (eviction, 4, 10), "{header}");
        }
        // A column out of its place is not an older file: the error names the file's first line.
        let moved = all.replace("policy,eviction,servers", "policy,servers,eviction");
        std::fs::write(&path, format!("{moved}\n{NEW}\n")).unwrap();
        let e = read_results(&path).unwrap_err().to_string();
        assert!(e.contains("results.csv:1: expected the results.csv header"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_timeseries_header_is_told_apart_with_or_without_its_eviction() {
        let now: Vec<String> = IntervalRow::COLUMNS.iter().map(|c| c.to_string()).collect();
        let old: Vec<String> = now.iter().filter(|c| *c != "eviction").cloned().collect();
        let results: Vec<String> = ResultRow::COLUMNS.iter().map(|c| c.to_string()).collect();
        assert!(is_timeseries(&now) && is_timeseries(&old) && !is_timeseries(&results));
    }
}
