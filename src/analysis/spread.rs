//! The policies' spread on synthetic URLs: how evenly keys and Zipf requests
//! land on N servers, how many keys move when a server leaves or joins
//! (disruption), and how long a pick takes.
//!
//! [`spread`] builds each policy from the core's own [`PolicySpec`], the same
//! objects both engines use, so a figure here is a figure of the policy and
//! not of a re-implementation. It returns a [`SpreadReport`]; formatting it is
//! the caller's job (`dl7 policy spread`). The Zipf request stream comes from
//! `rand_distr::Zipf` with a seeded ChaCha8 generator, so the report is a
//! pure function of the configuration except for the timing column.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use dl7_core::fault::disruption;
use dl7_core::{LoadView, Membership, NoLoad, Params, Policy, PolicyKind, PolicySpec, RequestKey, ServerId};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

/// What to measure: N servers named `10.0.0.1:3128 ...`, `keys` URLs
/// `http://example.com/obj/<i>.html`, and as many Zipf requests over the
/// first `objects` of them.
#[derive(Debug, Clone)]
pub struct SpreadConfig {
    /// Number of servers N (at least 1).
    pub servers: usize,
    /// Number of distinct keys, and of Zipf requests.
    pub keys: usize,
    /// Zipf exponent of object popularity (0 = uniform).
    pub zipf: f64,
    /// Number of objects the Zipf requests are drawn from.
    pub objects: usize,
    /// Seed of the Zipf request stream.
    pub seed: u64,
    /// Policies to measure, in report order.
    pub policies: Vec<PolicyKind>,
    /// Parameters given to every policy.
    pub params: Params,
}

/// The figures of one policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SpreadRow {
    /// The policy measured.
    pub kind: PolicyKind,
    /// Busiest server's keys / mean keys per server (one pick per key, no load).
    pub keys_max: f64,
    /// Idlest server's keys / mean keys per server.
    pub keys_min: f64,
    /// Busiest server's Zipf requests / mean requests per server, under the
    /// in-flight window of [`request_load`].
    pub load_max: f64,
    /// Share of keys whose owner changes when the last server leaves; `None`
    /// at N = 1, where nothing can leave.
    pub moved_leave: Option<f64>,
    /// Share of keys whose owner changes when server N+1 joins.
    pub moved_join: f64,
    /// Wall time per pick over the keys, second pass, no load.
    pub ns_per_pick: f64,
}

/// Everything [`spread`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SpreadReport {
    /// One row per policy, in [`SpreadConfig::policies`] order.
    pub rows: Vec<SpreadRow>,
    /// `"<policy> <parameters>"` for each policy whose resolved parameters
    /// at N are not empty (defaults filled in), e.g. `mod_ch points=160`.
    pub parameters: Vec<String>,
}

/// A configuration the policies or the Zipf distribution reject.
#[derive(Debug, Clone, PartialEq)]
pub struct SpreadError(pub String);

impl fmt::Display for SpreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpreadError {}

fn error(e: impl fmt::Display) -> SpreadError {
    SpreadError(e.to_string())
}

/// Measures every policy of `config`.
///
/// ```
/// use dl7::analysis::spread::{spread, SpreadConfig};
/// use dl7_core::{Params, PolicyKind};
///
/// let config = SpreadConfig {
///     servers: 4, keys: 1000, zipf: 1.0, objects: 50, seed: 1,
///     policies: vec![PolicyKind::Rr], params: Params::default(),
/// };
/// let report = spread(&config).unwrap();
/// // Round robin over the keys in order gives every server the same count.
/// assert_eq!(report.rows[0].keys_max, 1.0);
/// ```
pub fn spread(config: &SpreadConfig) -> Result<SpreadReport, SpreadError> {
    let n = config.servers;
    let base = Membership::numbered(n).map_err(error)?;
    let left = if n > 1 { Some(Membership::numbered(n - 1).map_err(error)?) } else { None };
    let joined = Membership::numbered(n + 1).map_err(error)?;
    // Build every membership up front so a bad parameter fails before any work.
    for &kind in &config.policies {
        let spec = PolicySpec { kind, params: config.params.clone() };
        for m in [Some(&base), left.as_ref(), Some(&joined)].into_iter().flatten() {
            spec.build(m).map_err(error)?;
        }
    }
    let requests = zipf_requests(config.keys, config.objects, config.zipf, config.seed)?;
    let urls = object_urls(0..config.keys);
    let keys = keys_of(&urls);

    let mut rows = Vec::new();
    let mut parameters = Vec::new();
    for &kind in &config.policies {
        let spec = PolicySpec { kind, params: config.params.clone() };
        let build = |m: &Membership| spec.build(m).map_err(error);
        let policy = build(&base)?;
        let described = policy.describe();
        if !described.is_empty() {
            parameters.push(format!("{kind} {described}"));
        }
        let before = owners(&*policy, &keys);
        // Timed on a second pass, so the figure is the pick and not the
        // first touch of the keys and tables.
        let start = Instant::now();
        for k in &keys {
            std::hint::black_box(policy.pick(std::hint::black_box(k), &NoLoad));
        }
        let ns_per_pick = start.elapsed().as_nanos() as f64 / keys.len() as f64;
        let mut counts = vec![0u64; n];
        for &o in &before {
            counts[o as usize] += 1;
        }
        let mean = keys.len() as f64 / n as f64;
        // The last server leaves (ids of the others stay), and server N+1
        // joins at the end, so owners compare by index.
        let moved_leave = match &left {
            Some(left) => Some(disruption(&before, &owners(&*build(left)?, &keys))),
            None => None,
        };
        let moved_join = disruption(&before, &owners(&*build(&joined)?, &keys));
        // A fresh instance, so stateful policies start the stream cold.
        let load = request_load(&*build(&base)?, &requests, &keys, n);
        let load_mean = requests.len() as f64 / n as f64;
        rows.push(SpreadRow {
            kind,
            keys_max: *counts.iter().max().unwrap_or(&0) as f64 / mean,
            keys_min: *counts.iter().min().unwrap_or(&0) as f64 / mean,
            load_max: *load.iter().max().unwrap_or(&0) as f64 / load_mean,
            moved_leave,
            moved_join,
            ns_per_pick,
        });
    }
    Ok(SpreadReport { rows, parameters })
}

/// The URLs of objects `range`, `http://example.com/obj/<i>.html`.
fn object_urls(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("http://example.com/obj/{i}.html")).collect()
}

/// The request keys of `urls`; they borrow the URLs.
fn keys_of(urls: &[String]) -> Vec<RequestKey<'_>> {
    urls.iter().map(|u| RequestKey::new(u.as_bytes())).collect()
}

/// The owner index of every key, picked in order by one instance.
pub fn owners(policy: &dyn Policy, keys: &[RequestKey]) -> Vec<u32> {
    keys.iter().map(|k| policy.pick(k, &NoLoad).0).collect()
}

/// `count` object indices in `0..objects` drawn from Zipf(`s`) (object `j`
/// has weight `1 / (j + 1)^s`) by `rand_distr::Zipf` over a ChaCha8
/// generator seeded with `seed`: the same arguments give the same stream on
/// every platform.
pub fn zipf_requests(count: usize, objects: usize, s: f64, seed: u64) -> Result<Vec<usize>, SpreadError> {
    let zipf = Zipf::new(objects as u64, s).map_err(error)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Zipf draws ranks 1..=objects as floats; the clamp only guards rounding
    // for very large `objects`.
    Ok((0..count).map(|_| (zipf.sample(&mut rng) as usize).clamp(1, objects) - 1).collect())
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

/// Requests served per server (of `n`) for the stream `requests` of object
/// indices; object `i` is `keys[i]`, and objects past the end of `keys` are
/// hashed here.
pub fn request_load(policy: &dyn Policy, requests: &[usize], keys: &[RequestKey], n: usize) -> Vec<u64> {
    let mut served = vec![0u64; n];
    let depth = 4 * n;
    let mut w = Window { inflight: vec![0; n], total: 0, recent: VecDeque::with_capacity(depth + 1), depth };
    let objects = requests.iter().max().map_or(0, |m| m + 1);
    let extra_urls = object_urls(keys.len()..objects);
    let extra_keys = keys_of(&extra_urls);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: PolicyKind, servers: usize, keys: usize) -> SpreadConfig {
        SpreadConfig {
            servers,
            keys,
            zipf: 1.0,
            objects: 100,
            seed: 1,
            policies: vec![kind],
            params: Params::default(),
        }
    }

    fn share(draws: &[usize], object: usize) -> f64 {
        draws.iter().filter(|&&o| o == object).count() as f64 / draws.len() as f64
    }

    #[test]
    fn mod_ch_join_at_16_moves_about_one_seventeenth() {
        // Consistent hashing moves only the new server's share, 1 / (N + 1).
        let report = spread(&config(PolicyKind::ModCh, 16, 20_000)).unwrap();
        let moved = report.rows[0].moved_join;
        assert!((moved - 1.0 / 17.0).abs() < 0.01, "mod_ch moved {moved}");
    }

    #[test]
    fn md5_modulo_join_moves_nearly_everything() {
        // hash mod N: a key stays only if hash mod 16 = hash mod 17, 1/17 of keys.
        let report = spread(&config(PolicyKind::Md5, 16, 20_000)).unwrap();
        let moved = report.rows[0].moved_join;
        assert!((moved - 16.0 / 17.0).abs() < 0.01, "md5 moved {moved}");
    }

    #[test]
    fn one_server_has_no_leave_figure() {
        let report = spread(&config(PolicyKind::Md5, 1, 100)).unwrap();
        assert_eq!(report.rows[0].moved_leave, None);
    }

    #[test]
    fn same_seed_gives_the_same_draws() {
        assert_eq!(zipf_requests(5_000, 100, 1.0, 7).unwrap(), zipf_requests(5_000, 100, 1.0, 7).unwrap());
    }

    #[test]
    fn different_seed_gives_different_draws() {
        assert_ne!(zipf_requests(5_000, 100, 1.0, 7).unwrap(), zipf_requests(5_000, 100, 1.0, 8).unwrap());
    }

    #[test]
    fn draws_stay_within_the_objects() {
        assert!(zipf_requests(20_000, 100, 1.0, 3).unwrap().iter().all(|&o| o < 100));
    }

    #[test]
    fn zipf_1_draws_concentrate_on_the_first_objects() {
        // Under s = 1 object 0 has weight 1 / H(100) = 19.3% of the requests
        // (uniform would give 1%).
        let draws = zipf_requests(20_000, 100, 1.0, 7).unwrap();
        let top = share(&draws, 0);
        assert!((top - 0.193).abs() < 0.01, "object 0 drew {top}");
    }

    #[test]
    fn zipf_0_draws_are_uniform() {
        let draws = zipf_requests(20_000, 4, 0.0, 1).unwrap();
        let last = share(&draws, 3);
        assert!((last - 0.25).abs() < 0.02, "uniform object 3 drew {last}");
    }

    #[test]
    fn negative_exponent_is_an_error() {
        assert!(zipf_requests(10, 10, -1.0, 1).is_err());
    }

    #[test]
    fn request_load_counts_every_request_once() {
        let urls = object_urls(0..10);
        let keys = keys_of(&urls);
        let requests = zipf_requests(1000, 20, 1.0, 1).unwrap();
        let members = Membership::numbered(4).unwrap();
        let rr = PolicySpec::new(PolicyKind::Rr).build(&members).unwrap();
        // Objects beyond the key list are hashed on the fly.
        let served = request_load(&*rr, &requests, &keys, 4);
        assert_eq!(served, [250, 250, 250, 250]);
    }
}
