//! The fault schedule in the simulator: a kill costs the distributed
//! cluster about the dead node's share of its throughput until the restart,
//! then the empty cache refills; a leave or a join moves exactly the core's
//! share of owners and a graceful leave loses nothing.

use std::sync::Arc;

use dl7_core::{Fault, FaultAction, PolicySpec, RequestKey};
use dl7_sim::{simulate_with_stats, Arch, CellSpec, Hardware};

fn cell(policy: &str, servers: u32, faults: Vec<Fault>) -> CellSpec {
    let catalog = Arc::new(dl7_traces::workload::builtin("surge100").unwrap());
    CellSpec {
        warmup_s: 5.0,
        measure_s: 20.0,
        seed: 3,
        faults,
        ..CellSpec::paper("surge100", catalog, Arch::Distributed, PolicySpec::parse(policy).unwrap(), servers)
    }
}

fn fault(at_s: f64, action: FaultAction, node: u32) -> Fault {
    Fault { at_s, action, node }
}

/// Mean req/s of the intervals starting in `[from, to)`.
fn rate(iv: &[dl7_core::timeseries::Interval], from: f64, to: f64) -> f64 {
    let v: Vec<f64> = iv.iter().filter(|i| i.t_s >= from && i.t_s < to).map(|i| i.req_per_s).collect();
    v.iter().sum::<f64>() / v.len() as f64
}

/// req/s before the kill, between the kill and the restart, and at the end.
fn dip(policy: &str) -> (f64, f64, f64, dl7_core::ResultRow) {
    let faults = vec![fault(5.0, FaultAction::Kill, 1), fault(11.0, FaultAction::Restart, 1)];
    let (row, stats) = simulate_with_stats(&cell(policy, 8, faults), &Hardware::kwon2008()).unwrap();
    let iv = &stats.intervals;
    // From the second after the kill (the one it falls in mixes both) to the restart.
    let (before, during, after) = (rate(iv, 0.0, 5.0), rate(iv, 6.0, 11.0), rate(iv, 16.0, 20.0));
    eprintln!("{policy}: req/s before {before:.1} during {during:.1} after {after:.1}; errors {}", row.errors);
    (before, during, after, row)
}

#[test]
fn a_kill_costs_about_the_nodes_share_until_the_restart_refills_it() {
    // Round robin spreads the load evenly over the eight CPU-bound servers: one gone takes an eighth.
    let (before, during, after, row) = dip("rr");
    let share = 1.0 - during / before;
    assert!((share - 1.0 / 8.0).abs() < 0.03, "rr: throughput fell by {share:.3}, expected 1/8");
    assert!(after > 0.95 * before, "rr: not recovered after the restart: {after:.1} vs {before:.1}");
    assert!(row.errors > 0, "the requests the dead node held are lost");
    // Each of the 504 clients has one request out; about an eighth of them touch the dead node.
    assert!(row.errors < 2 * 63, "at most what was in flight on it: {}", row.errors);
    // A hash policy over 100 Zipf objects is imbalanced (the busiest owner bounds the
    // closed loop): the dead node's objects land on live owners, busy ones included, so
    // the dip is its share or more, up to twice.
    let (before, during, after, row) = dip("md5");
    let share = 1.0 - during / before;
    assert!(share > 1.0 / 8.0 - 0.03 && share < 2.0 / 8.0, "md5: throughput fell by {share:.3}");
    assert!(after > 0.9 * before, "md5: not recovered after the restart: {after:.1} vs {before:.1}");
    assert_eq!(row.moved_frac, Some(0.0), "a kill and a restart change no owner");
    assert!(row.refill_s.is_some(), "the hit ratio comes back after the restart");
}

/// Share of surge100 objects whose owner (a node) differs between memberships.
fn core_moved(policy: &str, before: &[usize], after: &[usize]) -> f64 {
    let catalog = dl7_traces::workload::builtin("surge100").unwrap();
    let keys: Vec<RequestKey> = catalog.objects.iter().map(|o| RequestKey::new(o.path.as_bytes())).collect();
    let ids = |v: &[usize]| v.iter().map(|&i| i as u32).collect::<Vec<u32>>();
    let spec = PolicySpec::parse(policy).unwrap();
    dl7_core::fault::moved_frac(&spec, &ids(before), &ids(after), &keys).unwrap().expect("a pure policy")
}

#[test]
fn leave_and_join_move_the_cores_share_and_a_leave_loses_nothing() {
    let all: Vec<usize> = (0..8).collect();
    for policy in ["md5", "ketama", "maglev", "carp"] {
        let leave = vec![fault(5.0, FaultAction::Leave, 3)];
        let (row, _) = simulate_with_stats(&cell(policy, 8, leave), &Hardware::kwon2008()).unwrap();
        let left: Vec<usize> = all.iter().copied().filter(|&i| i != 3).collect();
        assert_eq!(row.moved_frac, Some(core_moved(policy, &all, &left)), "{policy} leave");
        assert_eq!(row.errors, 0, "{policy}: a graceful leave loses no request");
        let join = vec![fault(5.0, FaultAction::Join, 8)];
        let (row, stats) = simulate_with_stats(&cell(policy, 8, join), &Hardware::kwon2008()).unwrap();
        let joined: Vec<usize> = (0..9).collect();
        assert_eq!(row.moved_frac, Some(core_moved(policy, &all, &joined)), "{policy} join");
        assert_eq!(row.errors, 0, "{policy}: a join loses no request");
        assert!(stats.intervals.iter().all(|i| i.errors == 0));
        eprintln!(
            "{policy}: leave moved {:.3}, join moved {:.3}",
            core_moved(policy, &all, &left),
            row.moved_frac.unwrap()
        );
    }
    // Modulo hashing moves most owners, consistent policies about 1/N.
    assert!(core_moved("md5", &all, &(0..9).collect::<Vec<_>>()) > 0.7);
    assert!(core_moved("ketama", &all, &(0..9).collect::<Vec<_>>()) < 0.25);
}

#[test]
fn the_same_schedule_gives_the_same_bytes() {
    let faults =
        vec![fault(2.0, FaultAction::Kill, 0), fault(4.0, FaultAction::Restart, 0), fault(6.0, FaultAction::Join, 4)];
    let a = simulate_with_stats(&cell("maglev", 4, faults.clone()), &Hardware::kwon2008()).unwrap();
    let b = simulate_with_stats(&cell("maglev", 4, faults), &Hardware::kwon2008()).unwrap();
    assert_eq!(a.0, b.0);
    assert_eq!(a.1.intervals, b.1.intervals);
}
