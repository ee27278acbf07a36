//! `dl7 policy pick|spread`: the scheduling core from the command line.
//!
//! `pick` answers "which server owns this URL" exactly as the engines would
//! (its one-index-per-line output is relied on by external checks); `spread`
//! prints the comparison of key spread, Zipf request load, disruption and
//! speed that `dl7::analysis::spread` measures. This module only parses,
//! checks arguments and prints; neither command reads files or the network.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use dl7::analysis::spread::{SpreadConfig, SpreadReport};
use dl7_core::{Membership, NoLoad, Params, PolicyKind, PolicySpec, RequestKey};

use super::input_error;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the server that owns each URL, one line each: its 0-based index, its name and the URL, tab-separated.
    Pick(PickArgs),
    /// Compare policies: key spread, Zipf request load, keys moved on leave/join, ns per pick.
    Spread(SpreadArgs),
}

#[derive(Args)]
pub struct PickArgs {
    /// Policy name.
    #[arg(long)]
    policy: String,
    /// Comma-separated server names, e.g. 10.0.0.1:3128,10.0.0.2:3128.
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Policy parameter, key=value (repeatable).
    #[arg(long = "param")]
    params: Vec<String>,
    /// URLs to place.
    urls: Vec<String>,
}

#[derive(Args)]
pub struct SpreadArgs {
    /// Number of servers, named 10.0.0.1:3128 ... 10.0.0.N:3128.
    #[arg(long, default_value_t = 16, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=dl7_core::server::MAX_SERVERS as i64))]
    servers: u32,
    /// Number of distinct keys http://example.com/obj/<i>.html (also the
    /// number of Zipf requests).
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    /// Zipf exponent of object popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Number of objects the Zipf requests are drawn from.
    #[arg(long, default_value_t = 100)]
    objects: usize,
    /// Seed of the Zipf request stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only these policies (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    policy: Vec<String>,
    /// Policy parameter, key=value (repeatable), given to every selected policy.
    #[arg(long = "param")]
    params: Vec<String>,
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Pick(args) => pick(args),
        PolicyCommand::Spread(args) => spread(args),
    }
}

fn pick(args: PickArgs) -> anyhow::Result<()> {
    let kind = PolicyKind::from_name(&args.policy).map_err(input_error)?;
    let params = Params::parse(args.params.iter().map(String::as_str)).map_err(input_error)?;
    let members =
        Membership::from_names(args.servers.iter().filter(|s| !s.is_empty()).cloned()).map_err(input_error)?;
    let policy = PolicySpec { kind, params }.build(&members).map_err(input_error)?;
    let mut out = String::new();
    for url in &args.urls {
        let key = RequestKey::new(url.as_bytes());
        let id = policy.pick(&key, &NoLoad);
        // index, server, URL: tab-separated, the index first for scripts (`cut -f1`).
        out.push_str(&format!("{}\t{}\t{url}\n", id.0, members.server(id).name));
    }
    print!("{out}");
    Ok(())
}

fn spread(args: SpreadArgs) -> anyhow::Result<()> {
    if args.keys == 0 {
        return Err(input_error("bad value `0` for --keys: expected a positive number of keys"));
    }
    if args.objects == 0 {
        return Err(input_error("bad value `0` for --objects: expected a positive number of objects"));
    }
    if !(args.zipf.is_finite() && args.zipf >= 0.0) {
        return Err(input_error(format!("bad value `{}` for --zipf: expected a number >= 0", args.zipf)));
    }
    let policies: Vec<PolicyKind> = if args.policy.is_empty() {
        PolicyKind::ALL.to_vec()
    } else {
        args.policy.iter().map(|p| PolicyKind::from_name(p)).collect::<Result<_, _>>().map_err(input_error)?
    };
    let params = Params::parse(args.params.iter().map(String::as_str)).map_err(input_error)?;
    let config = SpreadConfig {
        servers: args.servers as usize,
        keys: args.keys,
        zipf: args.zipf,
        objects: args.objects,
        seed: args.seed,
        policies,
        params,
    };
    let report = dl7::analysis::spread::spread(&config).map_err(input_error)?;
    print!("{}", render(&config, &report));
    Ok(())
}

fn render(config: &SpreadConfig, report: &SpreadReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} servers, {} keys http://example.com/obj/<i>.html; {} Zipf({}) requests over {} objects, seed {}",
        config.servers, config.keys, config.keys, config.zipf, config.objects, config.seed
    );
    let _ = writeln!(
        out,
        "{:<13} {:>9} {:>9} {:>10} {:>11} {:>10} {:>8}",
        "policy", "keys max", "keys min", "req max", "moved leave", "moved join", "ns/pick"
    );
    for r in &report.rows {
        let leave = r.moved_leave.map_or("-".to_string(), |m| format!("{m:.4}"));
        let _ = writeln!(
            out,
            "{:<13} {:>9.3} {:>9.3} {:>10.3} {:>11} {:>10.4} {:>8.0}",
            r.kind.name(),
            r.keys_max,
            r.keys_min,
            r.load_max,
            leave,
            r.moved_join,
            r.ns_per_pick
        );
    }
    if !report.parameters.is_empty() {
        let _ = write!(out, "\nparameters at N = {}: {}.", config.servers, report.parameters.join("; "));
    }
    out.push_str(concat!(
        "\nkeys max/min: busiest and idlest server's keys / mean, one pick per key with no load.\n",
        "req max: busiest server's requests / mean; each request stays in flight for the next 4 N picks,\n",
        "  which is the load bounded, p2c and lard see (with no load, bounded = maglev and p2c = hrw).\n",
        "moved: share of keys whose owner changes when the last server leaves / server N+1 joins\n",
        "  (the last server is the only clean departure for jump). mit_ch's default V = ceil(log2 N)\n",
        "  changes with N, so crossing a power of two rebuilds every point.\n",
        "Stateful policies (rr, ht_rr, ht_rr_shared, lard) run a fresh instance per column over the keys\n",
        "  in order: their key spread is round robin by construction, and 'moved' is what a cold restart\n",
        "  with the new membership would do (rr, ht_rr: nearly everything moves).\n",
        "ns/pick: wall time per pick over the keys (second pass, no load) on this machine; the only\n",
        "  non-deterministic column (criterion benchmarks: cargo bench -p dl7-core).\n",
    ));
    out
}
