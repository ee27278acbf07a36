//! Golden-file tests of the generated lab text: the `dl7 lab up`/`down`
//! command lists, the per-host cell plan the SSH engine runs and the
//! `dl7 deploy` scripts for lab PCs (both from `lab::hostplan`), compared exactly.
//! Set `DL7_UPDATE_GOLDEN=1` to rewrite the files after a deliberate change
//! (then read the diff before committing it).

use std::path::PathBuf;

use dl7_core::Arch;
use dl7_testbed::deploy;
use dl7_testbed::lab::{LabConfig, LabPlan};

const LAB2: &str = r#"
prefix = "dl7"
subnet = "198.18.0.0/24"
vip = "198.18.0.250"
port = 8080
nodes = 2
clients = 2

[links]
front = "10mbit"
node = "10mbit"
origin = "10mbit"
burst = "32kb"
latency = "100ms"

[deploy]
policy = "md5"
workload = "surge100"
"#;

fn golden(name: &str, actual: &str) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "golden", name].iter().collect();
    if std::env::var_os("DL7_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with DL7_UPDATE_GOLDEN=1 to create it)", path.display()));
    if expected != actual {
        let line = expected.lines().zip(actual.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{} differs from the generated text at line {}:\n  golden:    {:?}\n  generated: {:?}\n(DL7_UPDATE_GOLDEN=1 rewrites it)",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

fn plan_and_deploy(arch: Arch) -> (LabPlan, dl7_testbed::lab::config::DeployConfig) {
    let config = LabConfig::parse(LAB2, "lab2.toml").unwrap();
    let mut deploy = config.deploy.clone();
    deploy.architecture = arch;
    (LabPlan::new(&config), deploy)
}

fn lines(steps: &[dl7_testbed::lab::Step]) -> String {
    steps.iter().map(|s| format!("{s}\n")).collect()
}

#[test]
fn lab_up_commands_match_golden() {
    let (plan, _) = plan_and_deploy(Arch::Distributed);
    golden("lab2-up.txt", &lines(&plan.up));
}

#[test]
fn lab_down_commands_match_golden() {
    let (plan, _) = plan_and_deploy(Arch::Distributed);
    golden("lab2-down.txt", &lines(&plan.down));
}

#[test]
fn deploy_distributed_matches_golden() {
    let (plan, deploy) = plan_and_deploy(Arch::Distributed);
    golden("deploy2-distributed.txt", &deploy::render_all(&plan, &deploy));
}

#[test]
fn deploy_conventional_matches_golden() {
    let (plan, deploy) = plan_and_deploy(Arch::Conventional);
    golden("deploy2-conventional.txt", &deploy::render_all(&plan, &deploy));
}

#[test]
fn ssh_cell_plans_match_golden() {
    use dl7_testbed::hostplan::{cell, render_cell, Forwarding};
    let (plan, _) = plan_and_deploy(Arch::Distributed);
    let eth0 = |_: &dl7_testbed::lab::Host| "eth0".to_string();
    for (arch, fwd, name) in [
        (Arch::Distributed, Forwarding::Nft, "cell2-distributed-nft.txt"),
        (Arch::Distributed, Forwarding::Ipvs, "cell2-distributed-ipvs.txt"),
        (Arch::Conventional, Forwarding::Nft, "cell2-conventional.txt"),
    ] {
        golden(name, &render_cell(&cell(&plan, &eth0, arch, 2, fwd)));
    }
}

#[test]
fn deploy_folder_holds_the_same_scripts_as_the_printed_text() {
    let (plan, deploy) = plan_and_deploy(Arch::Distributed);
    let dir = std::env::temp_dir().join(format!("dl7-deploy-test-{}", std::process::id()));
    let written = deploy::write_dir(&plan, &deploy, &dir).unwrap();
    assert_eq!(written.len(), 2 * plan.hosts.len());
    let printed = deploy::render_all(&plan, &deploy);
    for m in deploy::machine_scripts(&plan, &deploy) {
        for (suffix, text) in [("up", &m.up), ("down", &m.down)] {
            let file = std::fs::read_to_string(dir.join(format!("{}.{suffix}.sh", m.short))).unwrap();
            assert_eq!(&file, text);
            assert!(printed.contains(&file));
            assert!(file.starts_with("#!/bin/sh\n"));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shipped_lab_files_are_valid() {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "experiments"].iter().collect();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("lab-") && name.ends_with("nodes.toml") {
            let config = LabConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!LabPlan::new(&config).up.is_empty());
            seen += 1;
        }
    }
    assert!(seen >= 1, "no experiments/lab-*nodes.toml found");
}

#[test]
fn services_start_inside_their_namespace() {
    let (plan, _) = plan_and_deploy(Arch::Distributed);
    let n2 = plan.hosts.iter().find(|h| h.short == "n2").unwrap();
    let mut cmd = dl7_testbed::netns::command_in(n2, "dl7");
    cmd.args(["node", "--id", "2"]);
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    assert_eq!(cmd.get_program(), "ip");
    assert_eq!(args, ["netns", "exec", "dl7-n2", "dl7", "node", "--id", "2"]);
}
