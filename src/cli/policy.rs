//! `dl7 policy pick|spread`: the scheduling core from the command line.
//!
//! `pick` answers "which server owns this URL" exactly as the engines would
//! (its one-index-per-line output is relied on by external checks); `spread`
//! compares the policies' key spread, Zipf request load, disruption and
//! speed on synthetic URLs. Neither reads files or the network.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Instant;

use clap::{Args, Subcommand};
use dl7_core::{LoadView, Membership, NoLoad, Params, Policy, PolicyKind, PolicySpec, RequestKey, ServerId};
use rand::{Rng, SeedableRng};

use super::input_error;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the 0-based index of the server that owns each URL, one per line.
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
    #[arg(long, default_value_t = 16)]
    servers: usize,
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
    let mut policy = PolicySpec { kind, params }.build(&members).map_err(input_error)?;
    let mut out = String::new();
    for url in &args.urls {
        let key = RequestKey::new(url.as_bytes());
        out.push_str(&policy.pick(&key, &NoLoad).0.to_string());
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

/// One row of the spread table.
struct SpreadRow {
    name: &'static str,
    keys_max: f64,
    keys_min: f64,
    load_max: f64,
    moved_leave: Option<f64>,
    moved_join: f64,
    ns_per_pick: f64,
}

fn spread(args: SpreadArgs) -> anyhow::Result<()> {
    if args.servers == 0 {
        return Err(input_error("bad value `0` for --servers: expected a positive number of servers"));
    }
    if args.keys == 0 {
        return Err(input_error("bad value `0` for --keys: expected a positive number of keys"));
    }
    if args.objects == 0 {
        return Err(input_error("bad value `0` for --objects: expected a positive number of objects"));
    }
    if !(args.zipf.is_finite() && args.zipf >= 0.0) {
        return Err(input_error(format!("bad value `{}` for --zipf: expected a number >= 0", args.zipf)));
    }
    let kinds: Vec<PolicyKind> = if args.policy.is_empty() {
        PolicyKind::ALL.to_vec()
    } else {
        args.policy.iter().map(|p| PolicyKind::from_name(p)).collect::<Result<_, _>>().map_err(input_error)?
    };
    let params = Params::parse(args.params.iter().map(String::as_str)).map_err(input_error)?;
    let n = args.servers;
    let base = Membership::numbered(n).map_err(input_error)?;
    let left = if n > 1 { Some(Membership::numbered(n - 1).map_err(input_error)?) } else { None };
    let joined = Membership::numbered(n + 1).map_err(input_error)?;
    // Build every membership up front so a bad --param fails before any work.
    for &kind in &kinds {
        let spec = PolicySpec { kind, params: params.clone() };
        for m in [Some(&base), left.as_ref(), Some(&joined)].into_iter().flatten() {
            spec.build(m).map_err(input_error)?;
        }
    }

    let urls: Vec<String> = (0..args.keys).map(|i| format!("http://example.com/obj/{i}.html")).collect();
    let keys: Vec<RequestKey> = urls.iter().map(|u| RequestKey::new(u.as_bytes())).collect();
    let requests = zipf_requests(args.keys, args.objects, args.zipf, args.seed);

    let mut rows = Vec::new();
    let mut resolved = Vec::new();
    for &kind in &kinds {
        let spec = PolicySpec { kind, params: params.clone() };
        let build = |m: &Membership| spec.build(m).map_err(input_error);
        let mut policy = build(&base)?;
        let described = policy.describe();
        if !described.is_empty() {
            resolved.push(format!("{kind} {described}"));
        }
        let owners = owners(&mut *policy, &keys);
        // Timed on a second pass, so the figure is the pick and not the
        // first touch of the keys and tables.
        let start = Instant::now();
        for k in &keys {
            std::hint::black_box(policy.pick(std::hint::black_box(k), &NoLoad));
        }
        let ns_per_pick = start.elapsed().as_nanos() as f64 / keys.len() as f64;
        let mut counts = vec![0u64; n];
        for &o in &owners {
            counts[o as usize] += 1;
        }
        let mean = keys.len() as f64 / n as f64;
        // The last server leaves (ids of the others stay), and server N+1
        // joins at the end, so owners compare by index.
        let moved_leave = match &left {
            Some(left) => Some(moved(&owners, &self::owners(&mut *build(left)?, &keys))),
            None => None,
        };
        let moved_join = moved(&owners, &self::owners(&mut *build(&joined)?, &keys));
        let load = request_load(&mut *build(&base)?, &requests, &keys, n);
        let load_mean = requests.len() as f64 / n as f64;
        rows.push(SpreadRow {
            name: kind.name(),
            keys_max: *counts.iter().max().unwrap_or(&0) as f64 / mean,
            keys_min: *counts.iter().min().unwrap_or(&0) as f64 / mean,
            load_max: *load.iter().max().unwrap_or(&0) as f64 / load_mean,
            moved_leave,
            moved_join,
            ns_per_pick,
        });
    }
    print!("{}", render(&args, &rows, &resolved));
    Ok(())
}

/// The owner index of every key, picked in order by one instance.
fn owners(policy: &mut dyn Policy, keys: &[RequestKey]) -> Vec<u32> {
    keys.iter().map(|k| policy.pick(k, &NoLoad).0).collect()
}

fn moved(before: &[u32], after: &[u32]) -> f64 {
    before.iter().zip(after).filter(|(a, b)| a != b).count() as f64 / before.len() as f64
}

/// `count` object indices drawn from Zipf(`s`) over `objects` objects
/// (object `j` has weight `1 / (j + 1)^s`), from a seeded generator.
fn zipf_requests(count: usize, objects: usize, s: f64, seed: u64) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(objects);
    let mut total = 0.0;
    for j in 0..objects {
        total += 1.0 / ((j + 1) as f64).powf(s);
        cdf.push(total);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let u = rng.gen::<f64>() * total;
            cdf.partition_point(|&c| c <= u).min(objects - 1)
        })
        .collect()
}

/// In-flight requests of a sliding window: each request stays in flight
/// for the next `4 N` picks, so load-aware policies see a live load.
struct Window {
    inflight: Vec<u64>,
    total: u64,
    recent: VecDeque<ServerId>,
    depth: usize,
}

impl LoadView for Window {
    fn inflight(&self, s: ServerId) -> u64 {
        self.inflight[s.index()]
    }
    fn total_inflight(&self) -> u64 {
        self.total
    }
}

/// Requests served per server for the Zipf stream (objects are the first
/// `--objects` keys).
fn request_load(policy: &mut dyn Policy, requests: &[usize], keys: &[RequestKey], n: usize) -> Vec<u64> {
    let mut served = vec![0u64; n];
    let depth = 4 * n;
    let mut w = Window { inflight: vec![0; n], total: 0, recent: VecDeque::with_capacity(depth + 1), depth };
    let objects = requests.iter().max().map_or(0, |m| m + 1);
    let extra: Vec<String> = (keys.len()..objects).map(|i| format!("http://example.com/obj/{i}.html")).collect();
    let extra_keys: Vec<RequestKey> = extra.iter().map(|u| RequestKey::new(u.as_bytes())).collect();
    for &obj in requests {
        let key = if obj < keys.len() { &keys[obj] } else { &extra_keys[obj - keys.len()] };
        let s = policy.pick(key, &w);
        served[s.index()] += 1;
        w.inflight[s.index()] += 1;
        w.total += 1;
        w.recent.push_back(s);
        if w.recent.len() > w.depth {
            let done = w.recent.pop_front().expect("window is non-empty");
            w.inflight[done.index()] -= 1;
            w.total -= 1;
        }
    }
    served
}

fn render(args: &SpreadArgs, rows: &[SpreadRow], resolved: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} servers, {} keys http://example.com/obj/<i>.html; {} Zipf({}) requests over {} objects, seed {}",
        args.servers, args.keys, args.keys, args.zipf, args.objects, args.seed
    );
    let _ = writeln!(
        out,
        "{:<13} {:>9} {:>9} {:>10} {:>11} {:>10} {:>8}",
        "policy", "keys max", "keys min", "req max", "moved leave", "moved join", "ns/pick"
    );
    for r in rows {
        let leave = r.moved_leave.map_or("-".to_string(), |m| format!("{m:.4}"));
        let _ = writeln!(
            out,
            "{:<13} {:>9.3} {:>9.3} {:>10.3} {:>11} {:>10.4} {:>8.0}",
            r.name, r.keys_max, r.keys_min, r.load_max, leave, r.moved_join, r.ns_per_pick
        );
    }
    if !resolved.is_empty() {
        let _ = write!(out, "\nparameters at N = {}: {}.", args.servers, resolved.join("; "));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_requests_follow_the_seed_and_favour_low_ranks() {
        let a = zipf_requests(20_000, 100, 1.0, 7);
        assert_eq!(a, zipf_requests(20_000, 100, 1.0, 7));
        assert_ne!(a, zipf_requests(20_000, 100, 1.0, 8));
        assert!(a.iter().all(|&o| o < 100));
        // Object 0 has weight 1 / H(100) = 19.3% of the requests under s = 1.
        let top = a.iter().filter(|&&o| o == 0).count() as f64 / a.len() as f64;
        assert!((top - 0.193).abs() < 0.01, "object 0 drew {top}");
        let uniform = zipf_requests(20_000, 4, 0.0, 1);
        let last = uniform.iter().filter(|&&o| o == 3).count() as f64 / 20_000.0;
        assert!((last - 0.25).abs() < 0.02, "uniform object 3 drew {last}");
    }

    #[test]
    fn request_load_counts_every_request_once() {
        let urls: Vec<String> = (0..10).map(|i| format!("http://example.com/obj/{i}.html")).collect();
        let keys: Vec<RequestKey> = urls.iter().map(|u| RequestKey::new(u.as_bytes())).collect();
        let requests = zipf_requests(1000, 20, 1.0, 1);
        let members = Membership::numbered(4).unwrap();
        let mut rr = PolicySpec::new(PolicyKind::Rr).build(&members).unwrap();
        // Objects beyond the key list are hashed on the fly.
        let served = request_load(&mut *rr, &requests, &keys, 4);
        assert_eq!(served, [250, 250, 250, 250]);
    }

    #[test]
    fn moved_counts_changed_owners() {
        assert_eq!(moved(&[0, 1, 2, 3], &[0, 1, 1, 3]), 0.25);
    }
}
