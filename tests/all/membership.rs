//! Leave and join on the real cluster (engine local), as an experiment's
//! `[[faults]]` run them: the measured `moved_frac` (owners read from a
//! live dispatcher before and after the change) equals the core's
//! disruption figure for that policy and membership change, exactly, and a
//! graceful leave fails no request. A join's new node serves its share,
//! also behind an admin token and with a ramp-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dl7::experiment::Plan;
use dl7_core::{PolicySpec, RequestKey};
use dl7_testbed::cell as engine;
use dl7_testbed::placement;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("membership").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn experiment(arch: &str, policy: &str, fault: &str) -> String {
    format!(
        "name = \"m\"\nengine = \"local\"\nseed = 5\nhardware = \"kwon2008\"\n\
         [sweep]\nservers = [4]\npolicies = [\"{policy}\"]\narchs = [\"{arch}\"]\nworkloads = [\"surge100\"]\n\
         [clients]\nmode = \"closed\"\nper_server = 2\n[run]\nwarmup_s = 0.5\nmeasure_s = 2.0\ncache_mb = 16.0\n\
         [real]\nhealth_interval_ms = 200\n[[faults]]\nat_s = 0.5\n{fault}\n"
    )
}

/// The core's share of surge100 paths whose owner (a node index) differs
/// between membership `before` and `after` (node `i` is `10.0.0.{i+1}`).
fn core_moved(policy: &str, before: &[usize], after: &[usize]) -> f64 {
    let catalog = dl7_traces::workload::builtin("surge100").unwrap();
    let keys: Vec<RequestKey> = catalog.objects.iter().map(|o| RequestKey::new(o.path.as_bytes())).collect();
    let ids = |v: &[usize]| v.iter().map(|&i| i as u32).collect::<Vec<u32>>();
    let spec = PolicySpec::parse(policy).unwrap();
    dl7_core::fault::moved_frac(&spec, &ids(before), &ids(after), &keys).unwrap().expect("a pure policy")
}

#[test]
fn leave_and_join_move_the_cores_share_of_owners_and_a_graceful_leave_fails_nothing() {
    let exe = Path::new(env!("CARGO_BIN_EXE_dl7"));
    let rt = dl7_services::service::runtime(None).unwrap();
    let cases = [
        ("distributed", "ketama", "action = \"leave\"\nnode = 1", vec![0, 1, 2, 3], vec![0, 2, 3]),
        ("conventional", "md5", "action = \"leave\"\nnode = 2", vec![0, 1, 2, 3], vec![0, 1, 3]),
        ("distributed", "md5", "action = \"join\"\nnode = 4", vec![0, 1, 2, 3], vec![0, 1, 2, 3, 4]),
        ("conventional", "ketama", "action = \"join\"\nnode = 4", vec![0, 1, 2, 3], vec![0, 1, 2, 3, 4]),
    ];
    for (k, (arch, policy, fault, before, after)) in cases.into_iter().enumerate() {
        let dir = scratch(&k.to_string());
        let plan = Plan::parse(&experiment(arch, policy, fault), "m.toml", &dir).unwrap();
        let experiment = Arc::new(plan.load().unwrap());
        let run = &experiment.runs()[0];
        let mut cell = dl7::sweep::real_cell(&experiment, run);
        if k == 2 {
            // Services that ask for an admin token: the schedule's membership changes carry it
            // (a 401 would fail the run), and a ramp-up changes the routing, not the ownership.
            cell.settings.admin_token = Some(dl7_services::admin::AdminToken::new("membership-test").unwrap());
            cell.settings.rampup_s = 0.5;
        }
        let out = rt.block_on(engine::run_cell(exe, &cell, &placement::local(), &dir)).unwrap();
        let want = core_moved(policy, &before, &after);
        let name = format!("{arch} {policy} {}", fault.replace('\n', " "));
        eprintln!("{name}: moved_frac {:?} (core {want:.4}); {}", out.row.moved_frac, out.load.summary());
        assert_eq!(out.row.moved_frac, Some(want), "{name}");
        assert!(out.load.requests > 100, "{name}: {}", out.load.summary());
        assert_eq!(out.load.errors, 0, "{name}: {}", out.load.summary());
        if fault.contains("join") {
            assert!(out.load.served_by.get(&4).is_some_and(|&n| n > 0), "{name}: the new node served nothing");
        } else {
            let gone = before.iter().find(|i| !after.contains(i)).unwrap();
            let late = out.load.served_by.get(&(*gone as u32)).copied().unwrap_or(0);
            eprintln!("{name}: the leaving node served {late} responses in the window (before it left)");
        }
    }
}
