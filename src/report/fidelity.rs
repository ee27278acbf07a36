//! How close our cells are to the paper's published ones: every Surge-100
//! cell of its Tables 4 and 5 matched with ours, the relative error of each,
//! the median absolute error against the target, and the paper's own
//! distributed-over-conventional improvement for comparison with ours.
//!
//! Numbers and the one-line verdict only; the tables of `REPORT.md` that
//! show them are the renderer's.

use super::cells::Index;
use super::reference::ReferenceCell;
use super::summary::SummaryRow;

/// Surge-100 fidelity target: median absolute relative error over Tables 4-5.
pub const FIDELITY_TARGET: f64 = 0.10;

/// The paper's improvement of AS-x over x, from its published req/s cells.
pub(super) fn paper_improvement(reference: &[ReferenceCell], w: &str, policy: &str, n: u32) -> Option<f64> {
    let find = |arch: &str| {
        reference
            .iter()
            .find(|r| {
                r.workload == w && r.metric == "req_per_s" && r.arch == arch && r.policy == policy && r.servers == n
            })
            .map(|r| r.value)
    };
    let (conv, dist) = (find("conventional")?, find("distributed")?);
    (conv > 0.0).then(|| dist / conv - 1.0)
}

/// Our cells matched with the published ones.
pub(super) struct Comparison<'a> {
    /// (reference, ours, relative error)
    pub(super) cells: Vec<(&'a ReferenceCell, f64, f64)>,
    /// Published cells we have no number for.
    pub(super) missing: usize,
    pub(super) workload: Option<String>,
}

pub(super) fn compare_with_reference<'a>(idx: &Index, reference: &'a [ReferenceCell]) -> Comparison<'a> {
    let mut cells = Vec::new();
    let mut missing = 0;
    for r in reference {
        let ours = idx.get(&r.workload, &r.arch, &r.policy, r.servers).map(|row| match r.metric.as_str() {
            "req_per_s" => Some(row.req_per_s),
            "mbit_per_s" => Some(row.mbit_per_s),
            _ => None,
        });
        match ours.flatten() {
            Some(v) if r.value > 0.0 => cells.push((r, v, v / r.value - 1.0)),
            _ => missing += 1,
        }
    }
    Comparison { cells, missing, workload: reference.first().map(|r| r.workload.clone()) }
}

/// Median of the absolute values; `None` when empty.
pub fn median_abs(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().map(f64::abs).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}

pub(super) fn fidelity_line(c: &Comparison) -> String {
    let workload = c.workload.as_deref().unwrap_or("reference");
    match median_abs(c.cells.iter().map(|x| x.2)) {
        None => format!(
            "{workload}: no cell of this experiment matches the paper's published tables; fidelity not measured."
        ),
        Some(m) => {
            let verdict = if m <= FIDELITY_TARGET {
                "**met**".to_string()
            } else {
                format!("**missed** by {:.1} percentage points", (m - FIDELITY_TARGET) * 100.0)
            };
            let coverage =
                if c.missing > 0 { format!(" ({} published cells not in this run)", c.missing) } else { String::new() };
            format!(
                "{workload}: median absolute relative error {:.1}% over {} cells of the paper's tables{coverage}; target <= {:.0}%: {verdict}.",
                m * 100.0,
                c.cells.len(),
                FIDELITY_TARGET * 100.0
            )
        }
    }
}

/// The fidelity line of the report, as plain text (for the terminal).
pub fn fidelity_summary(rows: &[SummaryRow], reference: &[ReferenceCell]) -> String {
    fidelity_line(&compare_with_reference(&Index::new(rows), reference)).replace("**", "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::reference::kwon2008_surge100;
    use crate::report::reference::tests::paper_rows;

    #[test]
    fn median_of_even_and_odd_lists() {
        assert_eq!(median_abs([-3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_abs([-4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median_abs(Vec::<f64>::new()), None);
    }

    #[test]
    fn fidelity_reports_the_miss() {
        let rows: Vec<SummaryRow> = paper_rows()
            .into_iter()
            .map(|mut r| {
                r.req_per_s *= 1.2;
                r.mbit_per_s *= 1.2;
                r
            })
            .collect();
        let reference = kwon2008_surge100();
        let text = fidelity_line(&compare_with_reference(&Index::new(&rows), &reference));
        assert!(text.contains("median absolute relative error 20.0%"), "{text}");
        assert!(text.contains("**missed** by 10.0 percentage points"), "{text}");
    }
}
