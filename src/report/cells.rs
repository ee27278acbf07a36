//! The sweep's summary rows as a grid of cells keyed by (section, arch,
//! policy, servers), and the names the paper gives them: column labels
//! (`RR`, `AS-RR`), signed percentages, the resource that bounds a cell.
//! A section is a workload under one eviction ([`section`]): the report's
//! tables and figures are per section, so cells of two evictions never mix.
//!
//! Shared by the conclusions checks, the fidelity comparison, the rendering
//! of `REPORT.md` and the figures, so that all of them index and name cells
//! the same way. It lays out no text and judges nothing.

use std::collections::HashMap;

use dl7_core::eviction::Eviction;

use super::summary::SummaryRow;

/// What the report calls a workload's cells under `eviction`: the workload's
/// name for LRU (the default, and the paper's Squid's, so that the paper's
/// tables and figures keep their names and are compared with its LRU cells
/// only), `workload-eviction` for any other.
pub fn section(workload: &str, eviction: Eviction) -> String {
    match eviction {
        Eviction::Lru => workload.to_string(),
        other => format!("{workload}-{other}"),
    }
}

/// Which resource is most utilised in a cell, and how much.
pub fn bottleneck(row: &SummaryRow) -> Option<(&'static str, f64)> {
    let candidates = [
        ("FE CPU", row.fe_cpu_util),
        ("FE NIC", row.fe_nic_util),
        ("server CPU", row.max_server_cpu_util),
        ("server NIC", row.max_server_nic_util),
    ];
    let mut best = candidates[0];
    for c in &candidates[1..] {
        if c.1 > best.1 {
            best = *c;
        }
    }
    (best.1 > 0.0).then_some(best)
}

/// Rows indexed by (section, arch, policy, servers); axes in order of first
/// appearance. `workloads` are sections: a workload under one eviction.
pub(super) struct Index<'a> {
    pub(super) cells: HashMap<(&'a str, &'a str, &'a str, u32), &'a SummaryRow>,
    pub(super) workloads: Vec<&'a str>,
    pub(super) archs: Vec<&'a str>,
    pub(super) policies: Vec<&'a str>,
    pub(super) servers: Vec<u32>,
}

impl<'a> Index<'a> {
    pub(super) fn new(rows: &'a [SummaryRow]) -> Self {
        let mut idx =
            Index { cells: HashMap::new(), workloads: vec![], archs: vec![], policies: vec![], servers: vec![] };
        for r in rows {
            idx.cells.entry((&r.section, &r.arch, &r.policy, r.servers)).or_insert(r);
            push_new(&mut idx.workloads, r.section.as_str());
            push_new(&mut idx.archs, r.arch.as_str());
            push_new(&mut idx.policies, r.policy.as_str());
            push_new(&mut idx.servers, r.servers);
        }
        idx.servers.sort_unstable();
        // Conventional before distributed, as the paper's columns.
        idx.archs.sort_by_key(|a| match *a {
            "conventional" => 0,
            "distributed" => 1,
            _ => 2,
        });
        idx
    }

    pub(super) fn get(&self, w: &str, arch: &str, policy: &str, servers: u32) -> Option<&'a SummaryRow> {
        self.cells.get(&(w, arch, policy, servers)).copied()
    }

    /// (arch, policy) column pairs present for workload `w`, policy-major.
    pub(super) fn columns(&self, w: &str) -> Vec<(&'a str, &'a str)> {
        let mut cols = Vec::new();
        for &p in &self.policies {
            for &a in &self.archs {
                if self.servers.iter().any(|&n| self.get(w, a, p, n).is_some()) {
                    cols.push((a, p));
                }
            }
        }
        cols
    }

    pub(super) fn servers_of(&self, w: &str) -> Vec<u32> {
        self.servers.iter().copied().filter(|&n| self.cells.keys().any(|k| k.0 == w && k.3 == n)).collect()
    }
}

pub(super) fn push_new<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// The paper's column label: `RR` for conventional, `AS-RR` for distributed.
pub fn label(arch: &str, policy: &str) -> String {
    let p = policy.to_uppercase();
    match arch {
        "conventional" => p,
        "distributed" => format!("AS-{p}"),
        other => format!("{p} ({other})"),
    }
}

/// A relative change as a signed whole percentage, never "-0%".
pub(super) fn pct(x: f64) -> String {
    let p = (x * 100.0).round();
    if p == 0.0 {
        "+0%".into()
    } else {
        format!("{p:+.0}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_signed_and_never_negative_zero() {
        assert_eq!(pct(-0.001), "+0%");
        assert_eq!(pct(0.3449), "+34%");
        assert_eq!(pct(-0.24), "-24%");
    }
}
