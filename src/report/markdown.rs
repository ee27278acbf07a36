//! `REPORT.md`: our versions of the paper's Tables 4-12, our Surge-100 cells
//! beside the published ones, the bottleneck of every cell, and the paper's
//! conclusions checked against our numbers.
//!
//! [`render`] is a pure function of the summary rows and the reference cells,
//! so the report is byte-identical for identical rows and can be tested on
//! synthetic data. It must not read files, clocks or the environment.

use std::collections::HashMap;
use std::fmt::Write;

use super::reference::ReferenceCell;
use super::summary::SummaryRow;

/// Surge-100 fidelity target: median absolute relative error over Tables 4-5.
pub const FIDELITY_TARGET: f64 = 0.10;
/// The paper's ceiling for conventional goodput through one 100 Mbit/s NIC.
pub const CONVENTIONAL_CEILING_MBIT: f64 = 90.0;

/// The paper's table numbers for its three workloads: (req/s, Mbit/s, improvement).
fn paper_tables(workload: &str) -> Option<(u32, u32, u32)> {
    match workload {
        "surge100" => Some((4, 5, 10)),
        "unc2001" => Some((6, 7, 11)),
        "berkeley1998" => Some((8, 9, 12)),
        _ => None,
    }
}

/// A verdict on one conclusion for one workload, with the evidence.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Held(String),
    NotHeld(String),
    /// The data cannot decide (cells missing, no utilisations recorded).
    NotApplicable(String),
}

impl Verdict {
    fn cell(&self) -> String {
        match self {
            Verdict::Held(e) => format!("**held**: {e}"),
            Verdict::NotHeld(e) => format!("**not held**: {e}"),
            Verdict::NotApplicable(e) => format!("n/a: {e}"),
        }
    }
}

/// One of the paper's qualitative conclusions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    ConventionalUnder90,
    DistributedSlowerSmall,
    CrossoverFourToEight,
    DistributedWinsAtSixteen,
    ConventionalFeNicBound,
}

impl Conclusion {
    pub const ALL: [Conclusion; 5] = [
        Conclusion::ConventionalUnder90,
        Conclusion::DistributedSlowerSmall,
        Conclusion::CrossoverFourToEight,
        Conclusion::DistributedWinsAtSixteen,
        Conclusion::ConventionalFeNicBound,
    ];

    /// The conclusion as the paper states it, with the test we apply.
    pub fn statement(self) -> &'static str {
        match self {
            Conclusion::ConventionalUnder90 => {
                "Conventional stays at or under 90 Mbit/s from 2 servers on (every conventional cell with >= 2 servers)"
            }
            Conclusion::DistributedSlowerSmall => {
                "Distributed is slower at 1-2 servers (every policy: AS-x req/s < x req/s at 1 and 2 servers)"
            }
            Conclusion::CrossoverFourToEight => {
                "Crossover between 4 and 8 servers (every policy: distributed first overtakes conventional, and stays ahead, at 4 or 8 servers)"
            }
            Conclusion::DistributedWinsAtSixteen => {
                "At 16 servers every distributed policy beats its conventional twin and AS-RR is highest"
            }
            Conclusion::ConventionalFeNicBound => {
                "Conventional runs from 2 servers on saturate the front end's NIC (its utilisation is the highest of the four resources)"
            }
        }
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

/// Rows indexed by (workload, arch, policy, servers); axes in order of first appearance.
struct Index<'a> {
    cells: HashMap<(&'a str, &'a str, &'a str, u32), &'a SummaryRow>,
    workloads: Vec<&'a str>,
    archs: Vec<&'a str>,
    policies: Vec<&'a str>,
    servers: Vec<u32>,
}

impl<'a> Index<'a> {
    fn new(rows: &'a [SummaryRow]) -> Self {
        let mut idx =
            Index { cells: HashMap::new(), workloads: vec![], archs: vec![], policies: vec![], servers: vec![] };
        for r in rows {
            idx.cells.entry((&r.workload, &r.arch, &r.policy, r.servers)).or_insert(r);
            push_new(&mut idx.workloads, r.workload.as_str());
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

    fn get(&self, w: &str, arch: &str, policy: &str, servers: u32) -> Option<&'a SummaryRow> {
        self.cells.get(&(w, arch, policy, servers)).copied()
    }

    /// (arch, policy) column pairs present for workload `w`, policy-major.
    fn columns(&self, w: &str) -> Vec<(&'a str, &'a str)> {
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

    fn servers_of(&self, w: &str) -> Vec<u32> {
        self.servers.iter().copied().filter(|&n| self.cells.keys().any(|k| k.0 == w && k.3 == n)).collect()
    }
}

fn push_new<T: PartialEq>(v: &mut Vec<T>, x: T) {
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

/// Renders `REPORT.md`. `command` is how the rows were produced (shown in the
/// header); `reference` holds the published cells to compare with.
pub fn render(name: &str, command: &str, rows: &[SummaryRow], reference: &[ReferenceCell]) -> String {
    let idx = Index::new(rows);
    let mut out = String::new();
    let runs: usize = rows.iter().map(|r| r.runs).sum();
    let seeds_min = rows.iter().map(|r| r.runs).min().unwrap_or(0);
    let seeds_max = rows.iter().map(|r| r.runs).max().unwrap_or(0);
    let seeds = if seeds_min == seeds_max { seeds_min.to_string() } else { format!("{seeds_min}-{seeds_max}") };
    let modes: Vec<&str> = rows.iter().fold(Vec::new(), |mut v, r| {
        push_new(&mut v, r.mode.as_str());
        v
    });

    let _ = writeln!(out, "# dl7 reproduction report: {name}\n");
    let _ = writeln!(
        out,
        "Generated by `{command}` from {runs} runs ({} cells x {seeds} seeds; mode {}). \
         Every number is a mean over seeds; `summary.csv` has the 95% confidence intervals and `results.csv` every run. \
         Columns follow the paper: `RR` is the conventional scheme (one KTCPVS front end), `AS-RR` the distributed one \
         (IPVS-DR in front, an L7 dispatcher on every server).\n",
        rows.len(),
        modes.join(", ")
    );

    // Fidelity first: it is what a reader looks for.
    let comparison = compare_with_reference(&idx, reference);
    let verdicts: Vec<(Conclusion, Vec<Verdict>)> =
        Conclusion::ALL.iter().map(|&c| (c, idx.workloads.iter().map(|w| check(c, &idx, w)).collect())).collect();
    let _ = writeln!(out, "## Fidelity\n");
    let _ = writeln!(out, "- {}", fidelity_line(&comparison));
    let held_out: Vec<&str> =
        idx.workloads.iter().copied().filter(|w| *w != "surge100" && paper_tables(w).is_some()).collect();
    if !held_out.is_empty() {
        let _ = writeln!(
            out,
            "- {}: the paper's tables for these are held out of calibration; our numbers for them are predictions.",
            held_out.join(", ")
        );
    }
    for &w in &idx.workloads {
        let held = verdicts.iter().filter(|(_, v)| matches!(v[idx_of(&idx.workloads, w)], Verdict::Held(_))).count();
        let decided =
            verdicts.iter().filter(|(_, v)| !matches!(v[idx_of(&idx.workloads, w)], Verdict::NotApplicable(_))).count();
        let _ = writeln!(out, "- {w}: {held} of {decided} decidable qualitative conclusions held.");
    }
    let _ = writeln!(out);

    let _ = writeln!(out, "## The paper's conclusions, checked against our data\n");
    let _ = write!(out, "| conclusion |");
    for w in &idx.workloads {
        let _ = write!(out, " {w} |");
    }
    let _ = write!(out, "\n|---|");
    for _ in &idx.workloads {
        let _ = write!(out, "---|");
    }
    let _ = writeln!(out);
    for (c, vs) in &verdicts {
        let _ = write!(out, "| {} |", c.statement());
        for v in vs {
            let _ = write!(out, " {} |", v.cell());
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out);

    if !comparison.cells.is_empty() {
        render_comparison(&mut out, &idx, &comparison);
    }

    let _ = writeln!(out, "## Throughput (our Tables 4-9)\n");
    for &w in &idx.workloads {
        let tables = paper_tables(w);
        let title = |n: Option<u32>, what: &str| match n {
            Some(n) => format!("### Table {n} (ours): {w}, {what}\n"),
            None => format!("### {w}: {what}\n"),
        };
        let _ = writeln!(out, "{}", title(tables.map(|t| t.0), "requests per second"));
        render_grid(&mut out, &idx, w, |r| format!("{:.0}", r.req_per_s));
        let _ = writeln!(out, "{}", title(tables.map(|t| t.1), "Mbit/s of response payload to clients"));
        render_grid(&mut out, &idx, w, |r| format!("{:.1}", r.mbit_per_s));
        let _ = writeln!(out, "### Bottlenecks: {w} (most utilised resource, mean utilisation)\n");
        render_grid(&mut out, &idx, w, |r| match bottleneck(r) {
            Some((name, u)) => format!("{name} {:.0}%", u * 100.0),
            None => "n/a".into(),
        });
        let _ = writeln!(out, "### Cache and forwarding: {w} (hit ratio, share forwarded to another owner)\n");
        render_grid(&mut out, &idx, w, |r| format!("{:.2} / {:.2}", r.hit_ratio, r.forwarded_frac));
    }

    let _ = writeln!(out, "## Improvement of distributed over conventional (our Tables 10-12)\n");
    let _ = writeln!(
        out,
        "`(AS-x - x) / x` in requests per second, percent; in parentheses the paper's, where it published both cells.\n"
    );
    for &w in &idx.workloads {
        match paper_tables(w) {
            Some((_, _, n)) => {
                let _ = writeln!(out, "### Table {n} (ours): {w}\n");
            }
            None => {
                let _ = writeln!(out, "### {w}\n");
            }
        }
        let policies: Vec<&str> = idx
            .policies
            .iter()
            .copied()
            .filter(|p| idx.servers_of(w).iter().any(|&n| improvement(&idx, w, p, n).is_some()))
            .collect();
        if policies.is_empty() {
            let _ = writeln!(out, "(needs both architectures)\n");
            continue;
        }
        grid_header(&mut out, policies.iter().map(|p| label("distributed", p)));
        for n in idx.servers_of(w) {
            let _ = write!(out, "| {n} |");
            for p in &policies {
                match improvement(&idx, w, p, n) {
                    Some(x) => match paper_improvement(reference, w, p, n) {
                        Some(y) => {
                            let _ = write!(out, " {} ({}) |", pct(x), pct(y));
                        }
                        None => {
                            let _ = write!(out, " {} |", pct(x));
                        }
                    },
                    None => {
                        let _ = write!(out, " |");
                    }
                }
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "## Figures\n");
    for &w in &idx.workloads {
        for (kind, what) in
            [("req_per_s", "requests per second"), ("mbit_per_s", "Mbit/s"), ("cache_bytes", "total cache storage")]
        {
            let file = super::figures::file_stem(w, kind);
            let _ = writeln!(out, "![{w}: {what} against servers]({file}.png)");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "Solid lines are the conventional scheme, dashed the distributed one; one colour per policy. \
         Each figure is also written as SVG."
    );
    out
}

fn idx_of(v: &[&str], x: &str) -> usize {
    v.iter().position(|y| *y == x).expect("present")
}

/// The header and alignment rows of a table with a `servers` column
/// followed by one right-aligned column per label.
fn grid_header(out: &mut String, labels: impl Iterator<Item = String>) {
    let mut rule = String::from("|---:|");
    let _ = write!(out, "| servers |");
    for l in labels {
        let _ = write!(out, " {l} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "\n{rule}");
}

fn render_grid(out: &mut String, idx: &Index, w: &str, cell: impl Fn(&SummaryRow) -> String) {
    let cols = idx.columns(w);
    grid_header(out, cols.iter().map(|(a, p)| label(a, p)));
    for n in idx.servers_of(w) {
        let _ = write!(out, "| {n} |");
        for (a, p) in &cols {
            match idx.get(w, a, p, n) {
                Some(r) => {
                    let _ = write!(out, " {} |", cell(r));
                }
                None => {
                    let _ = write!(out, " |");
                }
            }
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out);
}

/// A relative change as a signed whole percentage, never "-0%".
fn pct(x: f64) -> String {
    let p = (x * 100.0).round();
    if p == 0.0 {
        "+0%".into()
    } else {
        format!("{p:+.0}%")
    }
}

/// The paper's improvement of AS-x over x, from its published req/s cells.
fn paper_improvement(reference: &[ReferenceCell], w: &str, policy: &str, n: u32) -> Option<f64> {
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

fn improvement(idx: &Index, w: &str, policy: &str, n: u32) -> Option<f64> {
    let conv = idx.get(w, "conventional", policy, n)?;
    let dist = idx.get(w, "distributed", policy, n)?;
    (conv.req_per_s > 0.0).then(|| dist.req_per_s / conv.req_per_s - 1.0)
}

/// Our cells matched with the published ones.
struct Comparison<'a> {
    /// (reference, ours, relative error)
    cells: Vec<(&'a ReferenceCell, f64, f64)>,
    /// Published cells we have no number for.
    missing: usize,
    workload: Option<String>,
}

fn compare_with_reference<'a>(idx: &Index, reference: &'a [ReferenceCell]) -> Comparison<'a> {
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

fn fidelity_line(c: &Comparison) -> String {
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

fn render_comparison(out: &mut String, idx: &Index, c: &Comparison) {
    let workload = c.workload.clone().unwrap_or_default();
    let _ = writeln!(out, "## {workload} against the paper (its Tables 4 and 5)\n");
    let _ = writeln!(out, "Each cell: ours / paper (relative error of ours).\n");
    for (metric, what, fmt_digits) in [("req_per_s", "requests per second", 0usize), ("mbit_per_s", "Mbit/s", 1)] {
        let cells: Vec<&(&ReferenceCell, f64, f64)> = c.cells.iter().filter(|x| x.0.metric == metric).collect();
        if cells.is_empty() {
            continue;
        }
        let table = &cells[0].0.table;
        let table = table.strip_prefix('T').map_or(table.clone(), |n| format!("Table {n}"));
        let _ = writeln!(out, "### The paper's {table}: {workload}, {what}\n");
        let cols = idx.columns(&workload);
        grid_header(out, cols.iter().map(|(a, p)| label(a, p)));
        for n in idx.servers_of(&workload) {
            let _ = write!(out, "| {n} |");
            for (a, p) in &cols {
                match cells.iter().find(|x| x.0.arch == *a && x.0.policy == *p && x.0.servers == n) {
                    Some((r, ours, err)) => {
                        let _ = write!(out, " {ours:.prec$} / {:.prec$} ({}) |", r.value, pct(*err), prec = fmt_digits);
                    }
                    None => {
                        let _ = write!(out, " |");
                    }
                }
            }
            let _ = writeln!(out);
        }
        let m = median_abs(cells.iter().map(|x| x.2)).unwrap_or(f64::NAN);
        let _ =
            writeln!(out, "\nMedian absolute relative error, {what}: {:.1}% over {} cells.\n", m * 100.0, cells.len());
    }
}

/// The fidelity line of the report, as plain text (for the terminal).
pub fn fidelity_summary(rows: &[SummaryRow], reference: &[ReferenceCell]) -> String {
    fidelity_line(&compare_with_reference(&Index::new(rows), reference)).replace("**", "")
}

/// Checks one conclusion on one workload's rows.
#[cfg(test)]
pub fn check_conclusion(c: Conclusion, rows: &[SummaryRow], workload: &str) -> Verdict {
    check(c, &Index::new(rows), workload)
}

fn check(c: Conclusion, idx: &Index, w: &str) -> Verdict {
    let servers = idx.servers_of(w);
    // Policies that have both architectures in this workload.
    let twins: Vec<&str> = idx
        .policies
        .iter()
        .copied()
        .filter(|p| {
            servers
                .iter()
                .any(|&n| idx.get(w, "conventional", p, n).is_some() && idx.get(w, "distributed", p, n).is_some())
        })
        .collect();
    let pair = |p: &str, n: u32| -> Option<(f64, f64)> {
        Some((idx.get(w, "conventional", p, n)?.req_per_s, idx.get(w, "distributed", p, n)?.req_per_s))
    };
    match c {
        Conclusion::ConventionalUnder90 => {
            let conv: Vec<&SummaryRow> = idx
                .policies
                .iter()
                .flat_map(|p| {
                    servers.iter().filter(|&&n| n >= 2).filter_map(move |&n| idx.get(w, "conventional", p, n))
                })
                .collect();
            let Some(max) = conv.iter().max_by(|a, b| a.mbit_per_s.total_cmp(&b.mbit_per_s)) else {
                return Verdict::NotApplicable("no conventional cell with >= 2 servers".into());
            };
            let e = format!(
                "max {:.1} Mbit/s ({}, {} servers)",
                max.mbit_per_s,
                label("conventional", &max.policy),
                max.servers
            );
            if max.mbit_per_s <= CONVENTIONAL_CEILING_MBIT {
                Verdict::Held(e)
            } else {
                Verdict::NotHeld(e)
            }
        }
        Conclusion::DistributedSlowerSmall => {
            let mut pairs = Vec::new();
            for p in &twins {
                for n in [1, 2] {
                    if let Some((conv, dist)) = pair(p, n) {
                        pairs.push((*p, n, dist / conv - 1.0));
                    }
                }
            }
            if pairs.is_empty() {
                return Verdict::NotApplicable("no 1- or 2-server cell with both architectures".into());
            }
            let failing: Vec<String> = pairs
                .iter()
                .filter(|x| x.2 >= 0.0)
                .map(|(p, n, d)| format!("{} at {n}: {}", label("distributed", p), pct(*d)))
                .collect();
            let lo = pairs.iter().map(|x| x.2).fold(f64::INFINITY, f64::min);
            let hi = pairs.iter().map(|x| x.2).fold(f64::NEG_INFINITY, f64::max);
            if failing.is_empty() {
                Verdict::Held(format!("{} pairs, {} to {}", pairs.len(), pct(lo), pct(hi)))
            } else {
                Verdict::NotHeld(format!("not slower: {}", failing.join("; ")))
            }
        }
        Conclusion::CrossoverFourToEight => {
            if !(servers.contains(&4) && servers.contains(&8)) || twins.is_empty() {
                return Verdict::NotApplicable("needs 4- and 8-server cells with both architectures".into());
            }
            let mut found = Vec::new();
            for p in &twins {
                // The smallest count from which distributed is ahead at every larger count.
                let mut crossover = None;
                for &n in servers.iter().rev() {
                    match pair(p, n) {
                        Some((conv, dist)) if dist > conv => crossover = Some(n),
                        _ => break,
                    }
                }
                found.push((*p, crossover));
            }
            let describe = |(p, x): &(&str, Option<u32>)| match x {
                Some(n) => format!("{} {n}", label("distributed", p)),
                None => format!("{} never", label("distributed", p)),
            };
            let text = found.iter().map(describe).collect::<Vec<_>>().join(", ");
            if found.iter().all(|(_, x)| matches!(x, Some(4) | Some(8))) {
                Verdict::Held(format!("overtakes at: {text}"))
            } else {
                Verdict::NotHeld(format!("overtakes at: {text}"))
            }
        }
        Conclusion::DistributedWinsAtSixteen => {
            if !servers.contains(&16) || twins.is_empty() {
                return Verdict::NotApplicable("needs 16-server cells with both architectures".into());
            }
            let losers: Vec<String> = twins
                .iter()
                .filter_map(|p| pair(p, 16).map(|x| (p, x)))
                .filter(|(_, (conv, dist))| dist <= conv)
                .map(|(p, (conv, dist))| format!("{} {dist:.0} <= {conv:.0}", label("distributed", p)))
                .collect();
            let at16: Vec<&SummaryRow> =
                idx.archs.iter().flat_map(|a| idx.policies.iter().filter_map(move |p| idx.get(w, a, p, 16))).collect();
            let top = at16.iter().max_by(|a, b| a.req_per_s.total_cmp(&b.req_per_s)).expect("16 is present");
            let top_label = label(&top.arch, &top.policy);
            let rr_top = top.arch == "distributed" && top.policy == "rr";
            let e = format!("highest {top_label} {:.0} req/s", top.req_per_s);
            match (losers.is_empty(), rr_top) {
                (true, true) => Verdict::Held(format!("all {} win; {e}", twins.len())),
                (true, false) => Verdict::NotHeld(format!("all win, but {e}")),
                (false, _) => Verdict::NotHeld(format!("not ahead: {}; {e}", losers.join(", "))),
            }
        }
        Conclusion::ConventionalFeNicBound => {
            let conv: Vec<&SummaryRow> = idx
                .policies
                .iter()
                .flat_map(|p| {
                    servers.iter().filter(|&&n| n >= 2).filter_map(move |&n| idx.get(w, "conventional", p, n))
                })
                .collect();
            if conv.is_empty() {
                return Verdict::NotApplicable("no conventional cell with >= 2 servers".into());
            }
            let named: Vec<(&SummaryRow, &str)> =
                conv.iter().filter_map(|r| bottleneck(r).map(|(b, _)| (*r, b))).collect();
            if named.is_empty() {
                return Verdict::NotApplicable("no utilisation recorded".into());
            }
            let others: Vec<String> = named
                .iter()
                .filter(|(_, b)| *b != "FE NIC")
                .map(|(r, b)| format!("{} at {}: {b}", label("conventional", &r.policy), r.servers))
                .collect();
            if others.is_empty() {
                let min = named.iter().map(|(r, _)| r.fe_nic_util).fold(f64::INFINITY, f64::min);
                Verdict::Held(format!("{} cells, FE NIC utilisation >= {:.0}%", named.len(), min * 100.0))
            } else {
                Verdict::NotHeld(format!(
                    "{} of {} cells bound elsewhere, e.g. {}",
                    others.len(),
                    named.len(),
                    others[0]
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::reference::kwon2008_surge100;

    /// Summary rows built from the paper's own Surge-100 numbers (no utilisations).
    fn paper_rows() -> Vec<SummaryRow> {
        let reference = kwon2008_surge100();
        let mut rows: Vec<SummaryRow> = Vec::new();
        for r in reference.iter().filter(|r| r.metric == "req_per_s") {
            let mbit = reference
                .iter()
                .find(|m| {
                    m.metric == "mbit_per_s" && m.arch == r.arch && m.policy == r.policy && m.servers == r.servers
                })
                .unwrap()
                .value;
            rows.push(synthetic(&r.arch, &r.policy, r.servers, r.value, mbit));
        }
        rows
    }

    fn synthetic(arch: &str, policy: &str, servers: u32, req: f64, mbit: f64) -> SummaryRow {
        crate::report::summary::tests::summary_row("surge100", arch, policy, servers, "sim", req, mbit)
    }

    #[test]
    fn the_papers_own_numbers_hold_its_conclusions() {
        let rows = paper_rows();
        for c in [
            Conclusion::ConventionalUnder90,
            Conclusion::DistributedSlowerSmall,
            Conclusion::CrossoverFourToEight,
            Conclusion::DistributedWinsAtSixteen,
        ] {
            let v = check_conclusion(c, &rows, "surge100");
            assert!(matches!(v, Verdict::Held(_)), "{c:?}: {v:?}");
        }
        // The published tables carry no utilisations.
        assert!(matches!(
            check_conclusion(Conclusion::ConventionalFeNicBound, &rows, "surge100"),
            Verdict::NotApplicable(_)
        ));
    }

    #[test]
    fn the_papers_own_numbers_have_zero_error() {
        let text = render("paper", "test", &paper_rows(), &kwon2008_surge100());
        assert!(text.contains("median absolute relative error 0.0% over 120 cells"), "{text}");
        assert!(text.contains("**met**"));
        assert!(text.contains("| 16 |") && text.contains("2147 / 2147 (+0%)"));
        assert!(text.contains("### Table 10 (ours): surge100"));
        assert!(text.contains("+343% (+343%)"), "RR improvement at 16 servers: 2147/485");
        assert!(text.contains("### The paper's Table 4: surge100"));
    }

    #[test]
    fn broken_conclusions_are_marked_not_held() {
        let mut rows = paper_rows();
        for r in rows.iter_mut() {
            if r.arch == "conventional" && r.servers == 8 && r.policy == "md5" {
                r.mbit_per_s = 95.0;
            }
            if r.arch == "distributed" && r.servers == 2 && r.policy == "carp" {
                r.req_per_s = 600.0;
            }
            if r.arch == "distributed" && r.servers == 16 && r.policy == "md5" {
                r.req_per_s = 3000.0;
            }
            if r.arch == "distributed" && r.servers == 8 && r.policy == "mit_ch" {
                r.req_per_s = 100.0;
            }
        }
        let verdict = |c| check_conclusion(c, &rows, "surge100");
        assert!(matches!(verdict(Conclusion::ConventionalUnder90), Verdict::NotHeld(e) if e.contains("95.0")));
        assert!(
            matches!(verdict(Conclusion::DistributedSlowerSmall), Verdict::NotHeld(e) if e.contains("AS-CARP at 2"))
        );
        assert!(matches!(verdict(Conclusion::CrossoverFourToEight), Verdict::NotHeld(e) if e.contains("AS-MIT_CH 16")));
        assert!(matches!(verdict(Conclusion::DistributedWinsAtSixteen), Verdict::NotHeld(e) if e.contains("AS-MD5")));
    }

    #[test]
    fn bottleneck_names_the_busiest_resource() {
        let mut r = synthetic("conventional", "rr", 4, 1.0, 1.0);
        r.fe_cpu_util = 0.3;
        r.fe_nic_util = 0.97;
        r.max_server_cpu_util = 0.5;
        assert_eq!(bottleneck(&r), Some(("FE NIC", 0.97)));
        let mut rows = vec![r.clone()];
        assert!(matches!(check_conclusion(Conclusion::ConventionalFeNicBound, &rows, "surge100"), Verdict::Held(_)));
        rows[0].max_server_cpu_util = 0.99;
        assert_eq!(bottleneck(&rows[0]), Some(("server CPU", 0.99)));
        assert!(matches!(check_conclusion(Conclusion::ConventionalFeNicBound, &rows, "surge100"), Verdict::NotHeld(_)));
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
        let text = render("paper", "test", &rows, &kwon2008_surge100());
        assert!(text.contains("median absolute relative error 20.0%"), "{text}");
        assert!(text.contains("**missed** by 10.0 percentage points"), "{text}");
    }

    #[test]
    fn percentages_are_signed_and_never_negative_zero() {
        assert_eq!(pct(-0.001), "+0%");
        assert_eq!(pct(0.3449), "+34%");
        assert_eq!(pct(-0.24), "-24%");
    }

    #[test]
    fn median_of_even_and_odd_lists() {
        assert_eq!(median_abs([-3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_abs([-4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median_abs(Vec::<f64>::new()), None);
    }
}
