//! End-to-end tests of `dl7 sweep` and `dl7 plot`, run on the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dl7(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dl7")).args(args).output().expect("the dl7 binary runs")
}

/// A fresh directory for one test under cargo's per-target temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sweep-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn repo_file(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel).display().to_string()
}

const GOOD: &str = r#"name = "t"
seed = 7
hardware = "kwon2008"

[sweep]
servers = [1, 2]
policies = ["rr", "md5"]
archs = ["conventional", "distributed"]
workloads = ["surge100"]

[run]
warmup_s = 0.1
measure_s = 0.2
"#;

/// Runs `dl7 sweep` on `text` and returns (exit code, stderr, file path).
fn sweep_text(test: &str, text: &str) -> (Option<i32>, String, String) {
    let dir = scratch(test);
    let file = dir.join("exp.toml");
    std::fs::write(&file, text).unwrap();
    let file = file.display().to_string();
    let out = dl7(&["sweep", &file, "--out", &dir.join("out").display().to_string()]);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), file)
}

fn assert_input_error(test: &str, text: &str, key: &str, line: usize) {
    let (code, stderr, file) = sweep_text(test, text);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{file}:{line}:")), "file and line in: {stderr}");
    assert!(stderr.contains(key), "key {key} in: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn unknown_key_exits_2_naming_file_line_and_key() {
    assert_input_error("unknown-key", &GOOD.replace("[run]\n", "[run]\nwarmup = 1.0\n"), "warmup", 12);
}

#[test]
fn wrong_type_exits_2_naming_the_key() {
    assert_input_error("wrong-type", &GOOD.replace("servers = [1, 2]", "servers = \"two\""), "`sweep.servers`", 6);
}

#[test]
fn unknown_policy_exits_2_naming_the_key() {
    assert_input_error("unknown-policy", &GOOD.replace("\"md5\"]", "\"md55\"]"), "`sweep.policies`", 7);
}

#[test]
fn empty_servers_exits_2_naming_the_key() {
    assert_input_error("empty-servers", &GOOD.replace("[1, 2]", "[]"), "`sweep.servers`", 6);
}

#[test]
fn unknown_workload_exits_2_naming_the_key() {
    assert_input_error("unknown-workload", &GOOD.replace("\"surge100\"", "\"surge1000\""), "`sweep.workloads`", 9);
}

#[test]
fn missing_experiment_file_exits_2() {
    let out = dl7(&["sweep", "no/such/experiment.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/experiment.toml"));
}

#[test]
fn plot_overlays_real_rows_on_simulated_ones() {
    let dir = scratch("plot");
    // The columns of files written before `eviction`: still read, as lru.
    let header = "workload,arch,policy,servers,seed,req_per_s,mbit_per_s,hit_ratio,byte_hit_ratio,p50_ms,p99_ms,\
                  fe_cpu_util,fe_nic_util,max_server_cpu_util,max_server_nic_util,imbalance,forwarded_frac,\
                  cache_bytes,requests,mode,errors,replayed,dropped";
    let mut csv = format!("{header}\n");
    for (arch, mode, servers, req) in [
        ("conventional", "sim", 1, 380.0),
        ("conventional", "sim", 2, 470.0),
        ("distributed", "sim", 1, 270.0),
        ("distributed", "sim", 2, 340.0),
        ("distributed", "real", 2, 330.0),
    ] {
        csv.push_str(&format!(
            "w,{arch},rr,{servers},1,{req},{},0.9,0.9,1,2,0.1,0.2,0.3,0.4,1,0.5,1000,100,{mode},0,0,0\n",
            req * 0.18
        ));
    }
    let results = dir.join("results.csv");
    std::fs::write(&results, csv).unwrap();
    let out = dl7(&["plot", &results.display().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for stem in ["w_req_per_s", "w_mbit_per_s", "w_cache_bytes"] {
        assert!(dir.join(format!("{stem}.png")).exists(), "{stem}.png");
        assert!(dir.join(format!("{stem}.svg")).exists(), "{stem}.svg");
    }
    let svg = std::fs::read_to_string(dir.join("w_req_per_s.svg")).unwrap();
    assert!(svg.contains("AS-RR (real)"), "real rows are labelled");
}

#[test]
fn plot_rejects_a_file_that_is_not_results_csv() {
    let dir = scratch("plot-bad");
    let bad = dir.join("results.csv");
    std::fs::write(&bad, "a,b\n1,2\n").unwrap();
    let out = dl7(&["plot", &bad.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected the results.csv header"));
}

#[test]
fn quick_sweep_is_byte_identical_for_one_and_two_threads() {
    let dir = scratch("threads");
    let quick = repo_file("experiments/quick.toml");
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out_dir = dir.join(format!("t{threads}"));
        let out = dl7(&["sweep", &quick, "--threads", threads, "--out", &out_dir.display().to_string()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        outputs.push(out_dir);
    }
    for file in ["results.csv", "timeseries.csv", "summary.csv", "REPORT.md"] {
        let a = std::fs::read(outputs[0].join(file)).unwrap();
        let b = std::fs::read(outputs[1].join(file)).unwrap();
        assert!(!a.is_empty(), "{file} is written");
        assert_eq!(a, b, "{file} differs between 1 and 2 threads");
    }
    let results = std::fs::read_to_string(outputs[0].join("results.csv")).unwrap();
    // quick.toml: 2 servers x 2 policies x 2 archs x 1 workload x 1 seed.
    assert_eq!(results.lines().count(), 1 + 8, "{results}");
    let report = std::fs::read_to_string(outputs[0].join("REPORT.md")).unwrap();
    // A one-second window is not the paper's method: no comparison with its tables.
    assert!(report.contains("not of the paper's testbed"), "{report}");
    assert!(!report.contains("median absolute relative error"), "{report}");
    assert!(outputs[0].join("surge100_req_per_s.png").exists());
}

#[test]
fn unknown_hardware_profile_exits_2_naming_the_key() {
    assert_input_error("unknown-hardware", &GOOD.replace("\"kwon2008\"", "\"kwon2009\""), "`hardware`", 3);
}

/// `dl7 sweep --shard K/N` then `dl7 merge`: the unsharded outputs, byte for byte.
#[test]
fn three_shards_merge_into_the_unsharded_run_and_foreign_or_missing_shards_are_refused() {
    let dir = scratch("shards");
    let quick = repo_file("experiments/quick.toml");
    let out = |name: &str| dir.join(name).display().to_string();
    for k in 1..=3 {
        let o = dl7(&["sweep", &quick, "--shard", &format!("{k}/3"), "--out", &out(&format!("s{k}"))]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(dl7(&["sweep", &quick, "--out", &out("all")]).status.success());
    let o = dl7(&["merge", &out("s1"), &out("s2"), &out("s3"), "--out", &out("merged")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for file in [
        "results.csv",
        "timeseries.csv",
        "summary.csv",
        "REPORT.md",
        "surge100_req_per_s.svg",
        "surge100_4servers_timeseries.svg",
    ] {
        let a = std::fs::read(dir.join("all").join(file)).unwrap();
        let m = std::fs::read(dir.join("merged").join(file)).unwrap();
        assert!(a == m, "{file} differs after the merge");
    }
    // quick.toml: 8 runs of 1.5 s (0.5 s of warm-up) in 1 s intervals: 2 each, the first negative.
    let series = std::fs::read_to_string(dir.join("merged").join("timeseries.csv")).unwrap();
    let mut lines = series.lines();
    assert_eq!(
        lines.next(),
        Some("mode,workload,arch,policy,eviction,servers,seed,t_s,req_per_s,mbit_per_s,hit_ratio,errors,p99_ms")
    );
    let t: Vec<&str> = lines.map(|l| l.split(',').nth(7).unwrap()).collect();
    assert_eq!(t, [&["-0.5", "0.0"][..]; 8].concat(), "{series}");
    let o = dl7(&["merge", &out("s1"), &out("s3"), "--out", &out("x")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing shard 2/3"));
    // A shard of the same file with another run count is another sweep.
    assert!(dl7(&["sweep", &quick, "--seeds", "2", "--shard", "2/3", "--out", &out("other")]).status.success());
    let o = dl7(&["merge", &out("s1"), &out("other"), &out("s3"), "--out", &out("x")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another sweep"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn plot_draws_a_timeseries_csv_and_rejects_a_bad_one() {
    let dir = scratch("plot-series");
    let mut csv =
        "mode,workload,arch,policy,servers,seed,t_s,req_per_s,mbit_per_s,hit_ratio,errors,p99_ms\n".to_string();
    for (mode, t, req) in [("sim", -1.0, 10.0), ("sim", 0.0, 20.0), ("real", 0.0, 19.0), ("real", 1.0, 21.0)] {
        csv.push_str(&format!("{mode},w,distributed,md5,4,1,{t},{req},1.5,0.8,0,3.2\n"));
    }
    let file = dir.join("timeseries.csv");
    std::fs::write(&file, csv).unwrap();
    let out = dl7(&["plot", &file.display().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(dir.join("w_4servers_timeseries.svg")).unwrap();
    assert!(svg.contains("AS-MD5 (real)") && svg.contains("hit ratio"), "sim and real on one timeline");
    assert!(dir.join("w_4servers_timeseries.png").exists());
    std::fs::write(&file, "mode,workload,arch,policy,servers,seed,t_s,req_per_s,mbit_per_s,hit_ratio,errors,p99_ms\nsim,w,x,y,4,1,zero,1,1,1,0,1\n").unwrap();
    let out = dl7(&["plot", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timeseries.csv:2:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_empty_log_imports_with_a_warning() {
    let dir = scratch("empty-log");
    let log = dir.join("access.log");
    std::fs::write(&log, "").unwrap();
    let trace = dir.join("empty.trace");
    let out = dl7(&[
        "trace",
        "import",
        "--format",
        "combined",
        &log.display().to_string(),
        "-o",
        &trace.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning:") && stderr.contains("no request imported"), "{stderr}");
}

#[test]
fn a_sweep_refuses_a_folder_holding_another_engines_rows() {
    let dir = scratch("other-engine");
    std::fs::write(dir.join("results.csv"), "mode,workload\nreal,surge100\n").unwrap();
    let quick = repo_file("experiments/quick.toml");
    let out = dl7(&["sweep", &quick, "--out", &dir.display().to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds rows of mode real") && stderr.contains("--out"), "{stderr}");
    assert_eq!(std::fs::read_to_string(dir.join("results.csv")).unwrap(), "mode,workload\nreal,surge100\n");
}

#[test]
fn another_engine_writes_beside_the_files_own() {
    let own = dl7::experiment::Engine::Lab;
    assert_eq!(dl7::sweep::default_out("lab-scaling", own, own), Path::new("reports/lab-scaling"));
    assert_eq!(
        dl7::sweep::default_out("lab-scaling", own, dl7::experiment::Engine::Sim),
        Path::new("reports/lab-scaling/sim")
    );
}
