//! The paper's qualitative conclusions (conventional NIC-bound under
//! 90 Mbit/s, distributed slower at 1-2 servers, a crossover at 4-8 servers,
//! distributed ahead at 16), each checked against our cells for one workload
//! with the evidence for the verdict.
//!
//! Judgement only: the wording of a verdict in `REPORT.md` is the renderer's.

use super::cells::{bottleneck, label, pct, Index};
use super::summary::SummaryRow;

/// The paper's ceiling for conventional goodput through one 100 Mbit/s NIC.
pub const CONVENTIONAL_CEILING_MBIT: f64 = 90.0;

/// A verdict on one conclusion for one workload, with the evidence.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Held(String),
    NotHeld(String),
    /// The data cannot decide (cells missing, no utilisations recorded).
    NotApplicable(String),
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

/// Checks one conclusion on one workload's rows.
#[cfg(test)]
pub fn check_conclusion(c: Conclusion, rows: &[SummaryRow], workload: &str) -> Verdict {
    check(c, &Index::new(rows), workload)
}

pub(super) fn check(c: Conclusion, idx: &Index, w: &str) -> Verdict {
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
    // The conventional cells with two servers or more: where the front end is the limit.
    fn conventional_from_two<'a>(idx: &'a Index, w: &str, servers: &[u32]) -> Vec<&'a SummaryRow> {
        idx.policies
            .iter()
            .flat_map(|p| servers.iter().filter(|&&n| n >= 2).filter_map(move |&n| idx.get(w, "conventional", p, n)))
            .collect()
    }
    let pair = |p: &str, n: u32| -> Option<(f64, f64)> {
        Some((idx.get(w, "conventional", p, n)?.req_per_s, idx.get(w, "distributed", p, n)?.req_per_s))
    };
    match c {
        Conclusion::ConventionalUnder90 => {
            let conv = conventional_from_two(idx, w, &servers);
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
            let conv = conventional_from_two(idx, w, &servers);
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
    use crate::report::reference::tests::paper_rows;

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
}
