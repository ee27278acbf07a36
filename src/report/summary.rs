//! Means over seeds and Student-t 95% confidence intervals: `summary.csv`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use dl7_core::eviction::Eviction;
use dl7_core::ResultRow;
use serde::Serialize;

/// One cell (workload, arch, policy, eviction, servers, mode) summarised over its runs.
/// Columns are those of `results.csv` without `seed`, as means, followed by
/// the half-widths of the 95% confidence intervals of the two throughputs
/// (empty when the cell has a single run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub workload: String,
    pub arch: String,
    pub policy: String,
    pub eviction: Eviction,
    pub servers: u32,
    pub req_per_s: f64,
    pub mbit_per_s: f64,
    pub hit_ratio: f64,
    pub byte_hit_ratio: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub fe_cpu_util: f64,
    pub fe_nic_util: f64,
    pub max_server_cpu_util: f64,
    pub max_server_nic_util: f64,
    pub imbalance: f64,
    pub forwarded_frac: f64,
    pub cache_bytes: f64,
    pub requests: f64,
    pub mode: String,
    pub errors: f64,
    pub replayed: f64,
    pub dropped: f64,
    /// Mean over the runs that have one.
    pub moved_frac: Option<f64>,
    /// Mean over the runs that have one (a run whose hit ratio never came back has none).
    pub refill_s: Option<f64>,
    pub req_per_s_ci95: Option<f64>,
    pub mbit_per_s_ci95: Option<f64>,
    /// Number of runs (seeds) averaged; not written to the CSV.
    #[serde(skip)]
    pub runs: usize,
    /// What the report calls the workload's cells of this eviction
    /// ([`super::cells::section`]); not written to the CSV.
    #[serde(skip)]
    pub section: String,
}

/// Groups rows by cell (in order of first appearance) and averages each group.
pub fn summarize(rows: &[ResultRow]) -> Vec<SummaryRow> {
    let mut order: Vec<Vec<&ResultRow>> = Vec::new();
    let mut index: HashMap<(&str, &str, &str, Eviction, u32, &str), usize> = HashMap::new();
    for row in rows {
        let key = (
            row.workload.as_str(),
            row.arch.as_str(),
            row.policy.as_str(),
            row.eviction,
            row.servers,
            row.mode.as_str(),
        );
        let i = *index.entry(key).or_insert_with(|| {
            order.push(Vec::new());
            order.len() - 1
        });
        order[i].push(row);
    }
    order.into_iter().map(|group| summarize_group(&group)).collect()
}

fn summarize_group(group: &[&ResultRow]) -> SummaryRow {
    let first = group[0];
    let mean = |f: fn(&ResultRow) -> f64| mean(group.iter().map(|r| f(r)));
    let req: Vec<f64> = group.iter().map(|r| r.req_per_s).collect();
    let mbit: Vec<f64> = group.iter().map(|r| r.mbit_per_s).collect();
    SummaryRow {
        workload: first.workload.clone(),
        arch: first.arch.clone(),
        policy: first.policy.clone(),
        eviction: first.eviction,
        servers: first.servers,
        req_per_s: mean(|r| r.req_per_s),
        mbit_per_s: mean(|r| r.mbit_per_s),
        hit_ratio: mean(|r| r.hit_ratio),
        byte_hit_ratio: mean(|r| r.byte_hit_ratio),
        p50_ms: mean(|r| r.p50_ms),
        p99_ms: mean(|r| r.p99_ms),
        fe_cpu_util: mean(|r| r.fe_cpu_util),
        fe_nic_util: mean(|r| r.fe_nic_util),
        max_server_cpu_util: mean(|r| r.max_server_cpu_util),
        max_server_nic_util: mean(|r| r.max_server_nic_util),
        imbalance: mean(|r| r.imbalance),
        forwarded_frac: mean(|r| r.forwarded_frac),
        cache_bytes: mean(|r| r.cache_bytes as f64),
        requests: mean(|r| r.requests as f64),
        mode: first.mode.clone(),
        errors: mean(|r| r.errors as f64),
        replayed: mean(|r| r.replayed as f64),
        dropped: mean(|r| r.dropped as f64),
        moved_frac: mean_of_some(group.iter().map(|r| r.moved_frac)),
        refill_s: mean_of_some(group.iter().map(|r| r.refill_s)),
        req_per_s_ci95: ci95_half_width(&req),
        mbit_per_s_ci95: ci95_half_width(&mbit),
        runs: group.len(),
        section: super::cells::section(&first.workload, first.eviction),
    }
}

fn mean_of_some(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let present: Vec<f64> = values.flatten().collect();
    (!present.is_empty()).then(|| mean(present.into_iter()))
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n as f64
}

/// Half-width of the two-sided 95% confidence interval of the mean,
/// `t(0.975, n-1) * s / sqrt(n)` with `s` the sample standard deviation;
/// `None` for fewer than two values.
pub fn ci95_half_width(values: &[f64]) -> Option<f64> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let m = values.iter().sum::<f64>() / n as f64;
    let var = values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1) as f64;
    Some(student_t_975(n - 1) * var.sqrt() / (n as f64).sqrt())
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom: exact
/// table values up to 30, a Cornish-Fisher expansion around the normal
/// quantile beyond (error below 0.001 there).
pub fn student_t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    assert!(df >= 1, "Student t needs at least one degree of freedom");
    if df <= TABLE.len() {
        return TABLE[df - 1];
    }
    let z: f64 = 1.959_964;
    let d = df as f64;
    z + (z.powi(3) + z) / (4.0 * d) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
}

/// Writes `summary.csv`.
pub fn write_summary(path: &Path, rows: &[SummaryRow]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("cannot create {}", path.display()))?;
    for row in rows {
        w.serialize(row).with_context(|| format!("cannot write {}", path.display()))?;
    }
    w.flush().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A result row with the given identity and throughput; other fields zero.
    pub(crate) fn row(
        workload: &str,
        arch: &str,
        policy: &str,
        servers: u32,
        seed: u64,
        req: f64,
        mbit: f64,
    ) -> ResultRow {
        ResultRow {
            workload: workload.into(),
            arch: arch.into(),
            policy: policy.into(),
            eviction: Eviction::Lru,
            servers,
            seed,
            req_per_s: req,
            mbit_per_s: mbit,
            hit_ratio: 0.0,
            byte_hit_ratio: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            fe_cpu_util: 0.0,
            fe_nic_util: 0.0,
            max_server_cpu_util: 0.0,
            max_server_nic_util: 0.0,
            imbalance: 1.0,
            forwarded_frac: 0.0,
            cache_bytes: 1000 * seed,
            requests: 10 * seed,
            mode: "sim".into(),
            errors: 0,
            replayed: 0,
            dropped: 0,
            moved_frac: None,
            refill_s: None,
        }
    }

    /// A summary row with the given identity and throughput; caches hold
    /// 1 MB per server, every resource is idle.
    pub(crate) fn summary_row(
        workload: &str,
        arch: &str,
        policy: &str,
        servers: u32,
        mode: &str,
        req: f64,
        mbit: f64,
    ) -> SummaryRow {
        SummaryRow {
            workload: workload.into(),
            arch: arch.into(),
            policy: policy.into(),
            eviction: Eviction::Lru,
            servers,
            req_per_s: req,
            mbit_per_s: mbit,
            hit_ratio: 1.0,
            byte_hit_ratio: 1.0,
            p50_ms: 1.0,
            p99_ms: 1.0,
            fe_cpu_util: 0.0,
            fe_nic_util: 0.0,
            max_server_cpu_util: 0.0,
            max_server_nic_util: 0.0,
            imbalance: 1.0,
            forwarded_frac: 0.0,
            cache_bytes: 1e6 * f64::from(servers),
            requests: 1.0,
            mode: mode.into(),
            errors: 0.0,
            replayed: 0.0,
            dropped: 0.0,
            moved_frac: None,
            refill_s: None,
            req_per_s_ci95: None,
            mbit_per_s_ci95: None,
            runs: 1,
            section: workload.into(),
        }
    }

    #[test]
    fn ci95_matches_hand_computation() {
        // mean 20, s = 10, n = 3: 4.303 * 10 / sqrt(3)
        let hw = ci95_half_width(&[10.0, 20.0, 30.0]).unwrap();
        assert!((hw - 4.303 * 10.0 / 3f64.sqrt()).abs() < 1e-9, "{hw}");
        assert_eq!(ci95_half_width(&[5.0]), None);
        assert_eq!(ci95_half_width(&[5.0, 5.0]), Some(0.0));
    }

    #[test]
    fn t_quantile_is_continuous_past_the_table_and_tends_to_normal() {
        assert!((student_t_975(31) - 2.040).abs() < 0.001, "{}", student_t_975(31));
        assert!((student_t_975(60) - 2.000).abs() < 0.001, "{}", student_t_975(60));
        assert!((student_t_975(120) - 1.980).abs() < 0.001, "{}", student_t_975(120));
        assert!((student_t_975(100_000) - 1.960).abs() < 0.001);
    }

    #[test]
    fn groups_keep_first_appearance_order_and_average() {
        let rows = vec![
            row("w", "conventional", "rr", 2, 1, 100.0, 10.0),
            row("w", "conventional", "rr", 1, 1, 50.0, 5.0),
            row("w", "conventional", "rr", 2, 2, 300.0, 30.0),
            row("w", "conventional", "rr", 1, 2, 70.0, 7.0),
        ];
        let s = summarize(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].servers, s[0].runs), (2, 2));
        assert_eq!(s[0].req_per_s, 200.0);
        assert_eq!(s[0].mbit_per_s, 20.0);
        assert_eq!(s[0].cache_bytes, 1500.0);
        assert_eq!(s[1].req_per_s, 60.0);
        let hw = s[0].req_per_s_ci95.unwrap();
        assert!((hw - 12.706 * 141.421_356_237 / 2f64.sqrt()).abs() < 1e-6, "{hw}");
    }

    #[test]
    fn cells_of_two_evictions_are_kept_apart_and_named_by_section() {
        let sieve =
            |seed| ResultRow { eviction: Eviction::Sieve, ..row("w", "conventional", "rr", 1, seed, 10.0, 1.0) };
        // The same seeds under two evictions (they share request streams): two cells.
        let rows = vec![
            row("w", "conventional", "rr", 1, 1, 50.0, 5.0),
            sieve(1),
            row("w", "conventional", "rr", 1, 2, 70.0, 7.0),
            sieve(2),
        ];
        let s = summarize(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].eviction, s[0].req_per_s, s[0].section.as_str()), (Eviction::Lru, 60.0, "w"));
        assert_eq!((s[1].eviction, s[1].req_per_s, s[1].section.as_str()), (Eviction::Sieve, 10.0, "w-sieve"));
    }

    #[test]
    fn summary_csv_has_results_columns_without_seed_plus_ci() {
        let rows = vec![row("w", "conventional", "rr", 1, 1, 50.0, 5.0)];
        let dir = std::env::temp_dir().join(format!("dl7-summary-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("summary.csv");
        write_summary(&path, &summarize(&rows)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let mut expected: Vec<&str> = ResultRow::COLUMNS.iter().copied().filter(|c| *c != "seed").collect();
        assert_eq!(expected[3], "eviction");
        expected.extend(["req_per_s_ci95", "mbit_per_s_ci95"]);
        assert_eq!(header, expected);
        assert!(text.lines().nth(1).unwrap().ends_with(",,"), "single run: empty intervals\n{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
