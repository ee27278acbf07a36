//! Fits the scale and seed of a SURGE workload to a per-request mean, the way
//! the built-in workloads were fitted (see `dl7_traces::surge::calibrate`):
//! `cargo run -p dl7-traces --release --example fit_workload -- surge100 22000`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(target)) = (args.first(), args.get(1).and_then(|t| t.parse::<f64>().ok())) else {
        eprintln!("usage: calibrate WORKLOAD(.toml|builtin name) TARGET_MEAN_BYTES");
        std::process::exit(2);
    };
    let text = match dl7_traces::workload::builtin_source(name) {
        Some(t) => t.to_string(),
        None => std::fs::read_to_string(name).unwrap_or_else(|e| {
            eprintln!("{name}: {e}");
            std::process::exit(2)
        }),
    };
    let run = || -> Result<(), dl7_traces::TraceError> {
        let model = dl7_traces::workload::WorkloadFile::parse(&text, name)?.surge_model()?;
        let c = dl7_traces::surge::calibrate(&model, target, 2001, 0.01)?;
        println!(
            "scale = {}\nseed = {}\n# per-request mean {:.0} B (target {target:.0} B); median over seeds 0..=2000 at scale 1: {:.0} B",
            c.scale, c.seed, c.mean_bytes, c.median_mean_at_unit_scale
        );
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("{e}");
        std::process::exit(2);
    }
}
