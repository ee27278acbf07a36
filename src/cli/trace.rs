//! `dl7 trace gen|import|stats|export|materialize|calibrate`: thin wrappers over
//! dl7-traces. This module parses arguments and prints; every computation
//! lives in the library.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use dl7_traces::export::{self, ExportFormat};
use dl7_traces::import::{self, ImportOptions, LogFormat};
use dl7_traces::surge;
use dl7_traces::workload::{self, WorkloadFile};
use dl7_traces::{Trace, TraceStats};

use super::input_error;

#[derive(Subcommand)]
pub enum TraceCommand {
    /// Turn a workload (TOML file or built-in name) into a trace file: its catalog,
    /// plus N seeded requests with --requests.
    Gen(GenArgs),
    /// Import an access log into a trace file.
    Import(ImportArgs),
    /// Print statistics of a trace file, workload or (with --format) raw log.
    Stats(StatsArgs),
    /// Export a trace file to another simulator's format.
    Export(ExportArgs),
    /// Write a catalog's objects as files (their exact bodies) for a web server to serve.
    Materialize(MaterializeArgs),
    /// Fit the scale and seed of a SURGE workload to a per-request mean.
    Calibrate(CalibrateArgs),
}

#[derive(Args)]
pub struct MaterializeArgs {
    /// Trace file, workload TOML or built-in name whose catalog is written.
    trace: String,
    /// Folder to write into (a web server's document root); created if missing.
    dir: PathBuf,
    /// Leave out objects no file can hold (a query string, a clash), listing each,
    /// instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
}

#[derive(Args)]
pub struct GenArgs {
    /// Workload TOML file, WebStone file list, or built-in name (surge100, unc2001, berkeley1998, webstone).
    workload: String,
    /// Output file (`-` for standard output).
    #[arg(short, long)]
    output: PathBuf,
    /// Also write this many requests drawn from the seeded stream.
    #[arg(long, default_value_t = 0)]
    requests: u64,
    /// Seed of the request stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write a WebStone file list (`URL WEIGHT # SIZE TYPE`) instead of a trace file.
    #[arg(long)]
    file_list: bool,
}

#[derive(Args)]
pub struct LogArgs {
    /// HTTP statuses that become requests, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "200")]
    statuses: Vec<u16>,
    /// Keep the query string in the object identity.
    #[arg(long)]
    keep_query: bool,
    /// Skip malformed lines (counted per reason) instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// Log format: clf, combined, squid or webcachesim.
    #[arg(long)]
    format: LogFormat,
    /// The access log.
    log: PathBuf,
    /// Output trace file (`-` for standard output).
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    log_args: LogArgs,
}

#[derive(Args)]
pub struct StatsArgs {
    /// Trace file, workload TOML, built-in name, or a raw log with --format.
    input: String,
    /// Read INPUT as a raw log of this format (clf, combined, squid, webcachesim).
    #[arg(long)]
    format: Option<LogFormat>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// For a model workload: draw this many seeded requests instead of using the exact weights.
    #[arg(long)]
    requests: Option<u64>,
    /// Seed of those requests.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    log_args: LogArgs,
}

#[derive(Args)]
pub struct ExportArgs {
    /// webcachesim or oracle-general.
    #[arg(long)]
    format: ExportFormat,
    /// Trace file (or a workload, with --requests).
    input: String,
    /// Output file (`-` for standard output).
    #[arg(short, long)]
    output: PathBuf,
    /// For a workload without requests: draw this many seeded requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Seed of those requests.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
pub struct CalibrateArgs {
    /// SURGE workload TOML file or built-in name.
    workload: String,
    /// Target per-request mean in bytes.
    #[arg(long)]
    target: f64,
    /// Seeds tried at scale 1 to find the median per-request mean.
    #[arg(long, default_value_t = 2001)]
    trials: u64,
    /// Accepted relative distance of the chosen seed's mean from the target.
    #[arg(long, default_value_t = 0.01)]
    tolerance: f64,
}

pub fn run(cmd: TraceCommand) -> anyhow::Result<()> {
    match cmd {
        TraceCommand::Gen(a) => gen(a),
        TraceCommand::Import(a) => import_log(a),
        TraceCommand::Stats(a) => stats(a),
        TraceCommand::Export(a) => export_trace(a),
        TraceCommand::Materialize(a) => materialize(a),
        TraceCommand::Calibrate(a) => calibrate(a),
    }
}

fn options(format: LogFormat, a: &LogArgs) -> ImportOptions {
    ImportOptions {
        format,
        statuses: a.statuses.clone(),
        keep_query: a.keep_query,
        skip_invalid: a.skip_invalid,
        keep_sequence: true,
    }
}

/// Writes through `write` to `path`, or to standard output for `-`.
fn write_output(path: &Path, write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        write(&mut out)?;
        out.flush()?;
    } else {
        let file =
            std::fs::File::create(path).map_err(|e| input_error(format!("{}: cannot create: {e}", path.display())))?;
        let mut out = std::io::BufWriter::new(file);
        write(&mut out)?;
        out.flush().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// A trace from a trace file, workload or built-in; with `draw`, a model
/// without requests gets that many seeded requests.
fn load_trace(input: &str, draw: Option<u64>, seed: u64) -> anyhow::Result<Trace> {
    let mut trace = Trace::resolve(input).map_err(input_error)?;
    if let Some(n) = draw {
        if trace.requests.is_empty() {
            let stream = trace.catalog.stream(seed).map_err(input_error)?;
            trace.requests = stream.take(n as usize).collect();
        }
    }
    Ok(trace)
}

fn gen(a: GenArgs) -> anyhow::Result<()> {
    // A SURGE catalog is written as it is drawn, never held whole: memory
    // is its sizes (8 bytes per object) whatever the path lengths.
    if a.requests == 0 {
        if let Some(model) = workload::resolve_surge(&a.workload).map_err(input_error)? {
            let (mut count, mut weight, mut weighted_bytes) = (0u64, 0.0, 0.0);
            write_output(&a.output, |out| {
                let objects = model.objects().map_err(input_error)?.inspect(|o| {
                    count += 1;
                    weight += o.weight;
                    weighted_bytes += o.weight * o.size as f64;
                });
                if a.file_list {
                    workload::write_file_list_of(objects, out)?;
                } else {
                    dl7_traces::trace::write_catalog(out, u64::from(model.files), objects)?;
                }
                Ok(())
            })?;
            if a.output != Path::new("-") {
                let mean = weighted_bytes / weight;
                eprintln!("wrote {}: {count} objects, 0 requests, mean {mean:.0} B per request", a.output.display());
            }
            return Ok(());
        }
    }
    let trace = load_trace(&a.workload, (a.requests > 0).then_some(a.requests), a.seed)?;
    write_output(&a.output, |out| {
        if a.file_list {
            workload::write_file_list(&trace.catalog, out)?;
        } else {
            trace.write(out)?;
        }
        Ok(())
    })?;
    if a.output != Path::new("-") {
        eprintln!(
            "wrote {}: {} objects, {} requests, mean {:.0} B per request",
            a.output.display(),
            trace.catalog.len(),
            trace.requests.len(),
            trace.catalog.mean_request_bytes()
        );
    }
    Ok(())
}

fn import_log(a: ImportArgs) -> anyhow::Result<()> {
    let imported = import::import_path(&a.log, &options(a.format, &a.log_args)).map_err(input_error)?;
    write_output(&a.output, |out| Ok(imported.trace.write(out)?))?;
    eprintln!("{}: {}; {} objects", a.log.display(), imported.report.summary(), imported.trace.catalog.len());
    warn_if_empty(&a.log, imported.trace.requests.len());
    Ok(())
}

/// A log that gave no request is written (it is valid), but said out loud:
/// an empty file, a wrong `--format` or `--statuses` all end here.
fn warn_if_empty(log: &Path, requests: usize) {
    if requests == 0 {
        eprintln!(
            "warning: {}: no request imported (an empty log, or no line with a status in --statuses and the --format given)",
            log.display()
        );
    }
}

fn stats(a: StatsArgs) -> anyhow::Result<()> {
    let (stats, source) = match a.format {
        Some(format) => {
            let imported =
                import::import_path(Path::new(&a.input), &options(format, &a.log_args)).map_err(input_error)?;
            eprintln!("{}: {}", a.input, imported.report.summary());
            warn_if_empty(Path::new(&a.input), imported.trace.requests.len());
            (TraceStats::from_trace(&imported.trace), "the log's requests")
        }
        None => {
            let trace = load_trace(&a.input, None, a.seed)?;
            match (trace.requests.is_empty(), a.requests) {
                (false, _) => (TraceStats::from_trace(&trace), "the trace's requests"),
                (true, None) => (TraceStats::from_weights(&trace.catalog), "the catalog weights (exact; requests = 0)"),
                (true, Some(n)) => {
                    (TraceStats::from_stream(&trace.catalog, a.seed, n).map_err(input_error)?, "a seeded stream")
                }
            }
        }
    };
    if a.json {
        println!("{}", serde_json::to_string(&stats)?);
        return Ok(());
    }
    let s = &stats;
    println!("# {}: computed from {source}", a.input);
    println!("requests        {}", s.requests);
    println!("unique objects  {}", s.unique_objects);
    println!("unique bytes    {}", s.unique_bytes);
    println!("mean bytes      {:.1}", s.mean_bytes);
    println!("median bytes    {}", s.median_bytes);
    println!("p90 bytes       {}", s.p90_bytes);
    println!("p99 bytes       {}", s.p99_bytes);
    println!("top-10 share    {:.4}", s.top10_share);
    println!("top-100 share   {:.4}", s.top100_share);
    println!("zipf exponent   {:.3}", s.zipf_exponent);
    println!("image share     {:.4}", s.image_share);
    println!("html share      {:.4}", s.html_share);
    Ok(())
}

fn export_trace(a: ExportArgs) -> anyhow::Result<()> {
    let trace = load_trace(&a.input, a.requests, a.seed)?;
    if trace.requests.is_empty() {
        return Err(input_error(format!(
            "{}: has no requests to export; give --requests N to draw them from the workload",
            a.input
        )));
    }
    write_output(&a.output, |out| export::export(&trace, a.format, out).map_err(input_error))
}

fn materialize(a: MaterializeArgs) -> anyhow::Result<()> {
    let trace = load_trace(&a.trace, None, 0)?;
    let bar = dl7::sweep::progress_bar(trace.catalog.len(), "files");
    let written =
        dl7_services::materialize::materialize(&trace.catalog, &a.dir, a.skip_invalid, |n| bar.set_position(n))
            .map_err(|e| input_error(format!("{}: {e}", a.trace)))?;
    bar.finish_and_clear();
    for e in &written.skipped {
        eprintln!("left out: {e}");
    }
    let skipped = written.skipped.len();
    eprintln!(
        "wrote {}: {} files, {} bytes; {skipped} objects left out",
        a.dir.display(),
        written.files,
        written.bytes
    );
    Ok(())
}

fn calibrate(a: CalibrateArgs) -> anyhow::Result<()> {
    let (text, name) = match workload::builtin_source(&a.workload) {
        Some(t) if !Path::new(&a.workload).exists() => (t.to_string(), format!("builtin:{}", a.workload)),
        _ => (
            std::fs::read_to_string(&a.workload).map_err(|e| input_error(format!("{}: {e}", a.workload)))?,
            a.workload.clone(),
        ),
    };
    let model = WorkloadFile::parse(&text, &name).and_then(|w| w.surge_model()).map_err(input_error)?;
    let c = surge::calibrate(&model, a.target, a.trials, a.tolerance).map_err(input_error)?;
    println!("scale = {}", c.scale);
    println!("seed = {}", c.seed);
    println!(
        "# per-request mean {:.0} B (target {:.0} B); median over seeds 0..{} at scale 1: {:.0} B",
        c.mean_bytes, a.target, a.trials, c.median_mean_at_unit_scale
    );
    Ok(())
}
