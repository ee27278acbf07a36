//! The lab for real: `up`, `status` and `down` of a 1-node lab, and `down`
//! after a half-made `up`. Needs root and the `ip`, `tc`, `nft` and `sysctl`
//! commands; without them each test prints why and returns (skips) instead of
//! failing, so the suite stays green on a laptop. `.ci/lab-smoke` drives
//! traffic through a lab; these tests check the bookkeeping.

use dl7_core::Arch;
use dl7_testbed::lab::{LabConfig, LabPlan};
use dl7_testbed::netns as exec;

fn skip_reason() -> Option<String> {
    if !exec::is_root() {
        return Some("not root".into());
    }
    exec::require_tools().err().map(|e| e.to_string())
}

macro_rules! require_lab_machine {
    () => {
        if let Some(reason) = skip_reason() {
            eprintln!("SKIPPED: {reason} (this test needs root and ip/tc/nft/sysctl)");
            return;
        }
    };
}

/// Each test its own prefix and subnet, so they may run in parallel with
/// each other and with `.ci/lab-smoke`.
fn plan(prefix: &str, third_octet: u8) -> LabPlan {
    plan_of(prefix, third_octet, 1)
}

fn plan_of(prefix: &str, third_octet: u8, nodes: u32) -> LabPlan {
    let text = format!(
        "prefix = \"{prefix}\"\nsubnet = \"198.19.{third_octet}.0/24\"\nnodes = {nodes}\nclients = 1\nport = 8080\n[links]\nnode = \"10mbit\"\n"
    );
    LabPlan::new(&LabConfig::parse(&text, "test.toml").unwrap())
}

fn quiet(_: &str) {}

#[test]
fn up_status_down_on_a_one_node_lab() {
    require_lab_machine!();
    let plan = plan("dl7ita", 201);
    exec::down(&plan, &mut quiet).unwrap();

    exec::up(&plan, false, &mut quiet).unwrap();
    let status = exec::status(&plan).unwrap();
    let report = status.to_string();
    assert_eq!(status.state(), "up", "{report}");
    assert_eq!(status.front_tables, vec!["netdev dl7ita_dr".to_string()], "{report}");
    let n1 = status.hosts.iter().find(|h| h.short == "n1").unwrap();
    assert!(n1.addrs.contains(&"lo:198.19.201.250/32".to_string()), "{report}");
    assert!(n1.addrs.contains(&"eth0:198.19.201.11/24".to_string()), "{report}");
    assert!(n1.shaping.as_deref().unwrap_or("").contains("10Mbit"), "{report}");
    let fe = status.hosts.iter().find(|h| h.short == "fe").unwrap();
    assert!(fe.shaping.is_none(), "front end is unshaped in this file: {report}");
    assert_eq!(exec::read_counters(&plan).unwrap().len(), plan.hosts.len());

    // A second `up` refuses instead of building over the lab.
    let err = exec::up(&plan, false, &mut quiet).unwrap_err().to_string();
    assert!(err.contains("already (partly) there"), "{err}");

    exec::down(&plan, &mut quiet).unwrap();
    assert!(exec::existing(&plan).unwrap().is_empty());
    assert_eq!(exec::status(&plan).unwrap().state(), "absent");
    // Idempotent.
    exec::down(&plan, &mut quiet).unwrap();
}

#[test]
fn down_cleans_a_half_made_lab_and_up_clean_replaces_it() {
    require_lab_machine!();
    let plan = plan("dl7itb", 202);
    exec::down(&plan, &mut quiet).unwrap();

    // Stop `up` part-way: after the second host's veth exists but before its shaping.
    let cut = plan.up.iter().position(|s| s.to_string().starts_with("ip link set dl7itb-origin master")).unwrap();
    exec::run_steps(&plan.up[..cut], &mut quiet).unwrap();
    let half = exec::status(&plan).unwrap();
    assert_eq!(half.state(), "half-made", "{half}");
    let err = exec::up(&plan, false, &mut quiet).unwrap_err().to_string();
    assert!(err.contains("dl7itb-fe"), "{err}");

    exec::up(&plan, true, &mut quiet).unwrap();
    assert_eq!(exec::status(&plan).unwrap().state(), "up");
    exec::down(&plan, &mut quiet).unwrap();
    assert!(exec::existing(&plan).unwrap().is_empty());
}

#[test]
fn not_root_is_a_clear_error() {
    if exec::is_root() {
        eprintln!("SKIPPED: running as root, the not-root error cannot show");
        return;
    }
    let err = exec::up(&plan("dl7itc", 203), false, &mut quiet).unwrap_err().to_string();
    assert!(err.contains("must run as root"), "{err}");
}

#[test]
fn architecture_switch_removes_and_restores_the_rule() {
    require_lab_machine!();
    let plan = plan("dl7itd", 204);
    exec::down(&plan, &mut quiet).unwrap();
    exec::up(&plan, false, &mut quiet).unwrap();
    let tables = |plan: &LabPlan| exec::status(plan).unwrap().front_tables;
    exec::set_architecture(&plan, Arch::Conventional, None, &mut quiet).unwrap();
    assert!(tables(&plan).is_empty());
    exec::set_architecture(&plan, Arch::Conventional, None, &mut quiet).unwrap();
    exec::set_architecture(&plan, Arch::Distributed, None, &mut quiet).unwrap();
    exec::set_architecture(&plan, Arch::Distributed, None, &mut quiet).unwrap();
    assert_eq!(tables(&plan), vec!["netdev dl7itd_dr".to_string()]);
    let fe = plan.front().netns.clone();
    let rules =
        exec::run_command(&["ip", "netns", "exec", &fe, "nft", "list", "ruleset"].map(String::from), None).unwrap();
    assert_eq!(rules.matches(" fwd ").count(), 1, "{rules}");
    let err = exec::set_architecture(&plan, Arch::Distributed, Some(2), &mut quiet).unwrap_err().to_string();
    assert!(err.contains("expected 1 to 1"), "{err}");
    exec::down(&plan, &mut quiet).unwrap();
    let err = exec::set_architecture(&plan, Arch::Conventional, None, &mut quiet).unwrap_err().to_string();
    assert!(err.contains("is not up"), "{err}");
}

#[test]
fn a_node_out_is_rerouted_in_place_and_back() {
    require_lab_machine!();
    let plan = plan_of("dl7ite", 205, 2);
    exec::down(&plan, &mut quiet).unwrap();
    exec::up(&plan, false, &mut quiet).unwrap();
    exec::set_architecture(&plan, Arch::Distributed, None, &mut quiet).unwrap();
    let fe = plan.front().netns.clone();
    let rules =
        || exec::run_command(&["ip", "netns", "exec", &fe, "nft", "list", "ruleset"].map(String::from), None).unwrap();
    exec::run_steps(&[plan.direct_routing_reroute(2, &[false, true])], &mut quiet).unwrap();
    let out = rules();
    assert_eq!(out.matches(" fwd ").count(), 1, "{out}");
    assert!(out.contains("mod 2 seed 0x5eed map { 0 : 198.19.205.12, 1 : 198.19.205.12 }"), "{out}");
    exec::run_steps(&[plan.direct_routing_reroute(2, &[true, true])], &mut quiet).unwrap();
    let out = rules();
    assert_eq!(out.matches(" fwd ").count(), 1, "{out}");
    assert!(out.contains("map { 0 : 198.19.205.11, 1 : 198.19.205.12 }"), "{out}");
    exec::down(&plan, &mut quiet).unwrap();
}
