//! A few runs of the paper's sweep, simulated here, give exactly their rows
//! of the committed `reports/paper/results.csv`: the simulator's data
//! structures (shared pure policies, caches and single flight sized by what
//! they hold, the event queue) changed nothing in its answers. The whole
//! file is checked by `cargo run --release -- sweep experiments/paper.toml`
//! and `cmp` (docs/performance.md); these cells cover each kind of policy instance:
//! pure and shared (md5, mit_ch, carp, mod_ch), stateful per dispatcher
//! (rr, ht_rr), and the conventional front end's single instance.

use std::path::Path;

use dl7::experiment::Plan;

#[test]
fn pinned_paper_cells_give_their_committed_rows_byte_for_byte() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let experiment = Plan::from_file(&root.join("experiments/paper.toml")).unwrap().load().unwrap();
    let committed = std::fs::read_to_string(root.join("reports/paper/results.csv")).unwrap();
    let pins = [
        ("surge100", "distributed", "md5", 16),
        ("surge100", "distributed", "ht_rr", 8),
        ("surge100", "conventional", "carp", 4),
        ("unc2001", "distributed", "mod_ch", 16),
        ("berkeley1998", "distributed", "rr", 4),
        ("berkeley1998", "distributed", "mit_ch", 2),
    ];
    let mut checked = 0;
    for run in experiment.runs().iter().filter(|r| r.index == 0) {
        let spec = experiment.sim_spec(run);
        let key = (spec.workload.as_str(), spec.arch.name(), spec.policy.kind.name(), spec.servers);
        if !pins.contains(&key) {
            continue;
        }
        let row = dl7_sim::simulate(&spec, &experiment.hardware).unwrap();
        let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        w.serialize(&row).unwrap();
        let line = String::from_utf8(w.into_inner().unwrap()).unwrap();
        // The row's keys in column order: workload, arch, policy, eviction, servers, seed.
        let prefix = format!("{},{},{},{},{},{},", key.0, key.1, key.2, spec.eviction, key.3, run.seed);
        let expected = committed.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{prefix}"));
        assert_eq!(line.trim_end(), expected, "{key:?}");
        checked += 1;
    }
    assert_eq!(checked, pins.len());
}
