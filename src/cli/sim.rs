//! `dl7 sim`: simulate one cell (one run) and print its result row as CSV.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use dl7_core::{Params, PolicyKind, PolicySpec};
use dl7_sim::{Arch, CellSpec, ClientMode, Hardware};

use super::input_error;

#[derive(clap::Subcommand)]
pub enum SimCommand {
    /// Simulate one cell (one seed) and print the CSV header and its row.
    Sim(SimArgs),
}

/// The client models `--clients` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    /// WebStone: `--clients-per-server` connections per server, zero think time.
    Closed,
    /// Open loop: Poisson arrivals at `--rate` requests per second.
    Poisson,
    /// SURGE ON/OFF users, `--clients-per-server` per server.
    Onoff,
}

#[derive(Args)]
pub struct SimArgs {
    /// Workload: a built-in name (surge100, unc2001, berkeley1998, webstone) or a workload file.
    #[arg(long)]
    workload: String,
    /// Architecture: conventional or distributed.
    #[arg(long)]
    arch: String,
    /// Request-distribution policy (rr, md5, mit_ch, carp, mod_ch, ht_rr, ...).
    #[arg(long)]
    policy: String,
    /// Policy parameter, key=value (repeatable).
    #[arg(long = "param")]
    params: Vec<String>,
    /// What the policy hashes: url (path and query) or path (the query left out).
    #[arg(long, default_value_t = dl7_core::HashKey::default().to_string(), value_name = "url|path")]
    hash_key: String,
    /// Number of cache servers (1 to 1024).
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=dl7_core::server::MAX_SERVERS as i64))]
    servers: u32,
    /// Run seed: every random number of the run derives from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Hardware profile TOML (default: the embedded experiments/hardware/kwon2008.toml).
    #[arg(long)]
    hardware: Option<PathBuf>,
    /// Client model.
    #[arg(long, value_enum, default_value_t = ClientKind::Closed)]
    clients: ClientKind,
    /// Closed-loop connections (or ON/OFF users) per cache server.
    #[arg(long, default_value_t = 63)]
    clients_per_server: u32,
    /// Open-loop arrival rate, requests per second (with --clients poisson).
    #[arg(long)]
    rate: Option<f64>,
    /// Simulated seconds of warm-up, excluded from every statistic.
    #[arg(long, default_value_t = dl7_sim::DEFAULT_WARMUP_S)]
    warmup: f64,
    /// Simulated seconds measured.
    #[arg(long, default_value_t = dl7_sim::DEFAULT_MEASURE_S)]
    measure: f64,
    /// One cluster-wide policy instance instead of one per dispatcher.
    #[arg(long)]
    shared_state: bool,
    /// Cache bytes per server (default: the hardware profile's).
    #[arg(long)]
    cache_bytes: Option<u64>,
    /// Largest object cached, bytes (default: an eighth of the cache).
    #[arg(long)]
    max_object_bytes: Option<u64>,
    /// Which object a full cache drops: lru, fifo, sieve, s3fifo or gdsf.
    #[arg(long, default_value = "lru")]
    eviction: String,
}

pub fn run(cmd: SimCommand) -> anyhow::Result<()> {
    match cmd {
        SimCommand::Sim(args) => sim(args),
    }
}

fn sim(args: SimArgs) -> anyhow::Result<()> {
    let catalog = dl7_traces::workload::resolve(&args.workload).map_err(input_error)?;
    let workload = if dl7_traces::workload::BUILTIN.contains(&args.workload.as_str()) {
        args.workload.clone()
    } else {
        PathBuf::from(&args.workload)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| args.workload.clone())
    };
    let arch = Arch::from_name(&args.arch)
        .ok_or_else(|| input_error(format!("--arch {}: expected conventional or distributed", args.arch)))?;
    let kind = PolicyKind::from_name(&args.policy).map_err(input_error)?;
    let params = Params::parse(args.params.iter().map(String::as_str)).map_err(input_error)?;
    let hw = match &args.hardware {
        None => Hardware::kwon2008(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| input_error(format!("{}: cannot read: {e}", path.display())))?;
            Hardware::from_toml_str(&text, &path.display().to_string()).map_err(input_error)?
        }
    };
    let clients = match args.clients {
        ClientKind::Closed => ClientMode::Closed { per_server: args.clients_per_server },
        ClientKind::Onoff => ClientMode::OnOff { per_server: args.clients_per_server },
        ClientKind::Poisson => ClientMode::Poisson {
            rate: args.rate.ok_or_else(|| input_error("--clients poisson needs --rate REQUESTS_PER_S"))?,
        },
    };
    let eviction = args.eviction.parse().map_err(|e| input_error(format!("--eviction: {e}")))?;
    let cell = CellSpec {
        workload,
        catalog: Arc::new(catalog),
        arch,
        policy: PolicySpec { kind, params },
        hash_key: args.hash_key.parse().map_err(|e| input_error(format!("--hash-key: {e}")))?,
        servers: args.servers,
        shared_state: args.shared_state,
        clients,
        warmup_s: args.warmup,
        measure_s: args.measure,
        seed: args.seed,
        cache_bytes_per_server: args.cache_bytes,
        max_object_bytes: args.max_object_bytes,
        eviction,
        requests: None,
        times: None,
        interval_s: 1.0,
        faults: Vec::new(),
    };
    // Every simulate error is about the cell the user described.
    let row = dl7_sim::simulate(&cell, &hw).map_err(input_error)?;
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.serialize(&row)?;
    out.flush()?;
    Ok(())
}
