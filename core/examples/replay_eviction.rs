//! Replays a trace of `obj_id,size` lines through every eviction algorithm
//! at each given cache size and prints one CSV row per pair:
//! `algo,cache_bytes,hit_ratio,byte_hit_ratio`.
//!
//! A request is a hit when its object is cached; a miss inserts it (with
//! the largest object stored = the capacity, as libCacheSim admits any
//! object that fits). This is what `.ci/libcachesim-check.py` compares with
//! libCacheSim.
//!
//! ```text
//! cargo run -p dl7-core --example replay_eviction -- TRACE.csv BYTES... [--eviction lru,sieve]
//! ```
//!
//! A first line that does not start with a number is a header and skipped.

use std::process::ExitCode;

use dl7_core::eviction::{Cache, Eviction};

struct Args {
    trace: String,
    sizes: Vec<u64>,
    evictions: Vec<Eviction>,
}

fn parse_args() -> Result<Args, String> {
    let mut trace = None;
    let mut sizes = Vec::new();
    let mut evictions = Eviction::ALL.to_vec();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--eviction" {
            let list = args.next().ok_or("--eviction needs a list, e.g. lru,sieve")?;
            evictions = list.split(',').map(|s| s.parse().map_err(|e| format!("{e}"))).collect::<Result<_, _>>()?;
        } else if trace.is_none() {
            trace = Some(arg);
        } else {
            sizes.push(arg.parse::<u64>().map_err(|e| format!("cache size `{arg}`: {e}"))?);
        }
    }
    let trace = trace.ok_or("usage: replay_eviction TRACE.csv BYTES... [--eviction lru,sieve]")?;
    if sizes.is_empty() {
        return Err("give at least one cache size in bytes".into());
    }
    Ok(Args { trace, sizes, evictions })
}

fn read_trace(path: &str) -> Result<Vec<(u64, u64)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut requests = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && !line.starts_with(|c: char| c.is_ascii_digit())) {
            continue;
        }
        let mut fields = line.split(',').map(str::trim);
        let (Some(id), Some(size)) = (fields.next(), fields.next()) else {
            return Err(format!("{path}:{}: expected obj_id,size", n + 1));
        };
        let id = id.parse().map_err(|e| format!("{path}:{}: obj_id `{id}`: {e}", n + 1))?;
        let size = size.parse().map_err(|e| format!("{path}:{}: size `{size}`: {e}", n + 1))?;
        requests.push((id, size));
    }
    Ok(requests)
}

/// Hit ratio and byte hit ratio of `requests` through one cache.
fn replay(eviction: Eviction, capacity: u64, requests: &[(u64, u64)]) -> (f64, f64) {
    let mut cache: Cache<u64, ()> = Cache::new(eviction, capacity);
    let (mut hits, mut hit_bytes, mut bytes) = (0u64, 0u64, 0u64);
    for &(id, size) in requests {
        bytes += size;
        if cache.lookup(&id) {
            hits += 1;
            hit_bytes += size;
        } else {
            cache.insert(id, (), size);
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    (ratio(hits, requests.len() as u64), ratio(hit_bytes, bytes))
}

fn main() -> ExitCode {
    let run = || -> Result<(), String> {
        let args = parse_args()?;
        let requests = read_trace(&args.trace)?;
        println!("algo,cache_bytes,hit_ratio,byte_hit_ratio");
        for &eviction in &args.evictions {
            for &capacity in &args.sizes {
                let (hit, byte_hit) = replay(eviction, capacity, &requests);
                println!("{eviction},{capacity},{hit:.6},{byte_hit:.6}");
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replay_eviction: {e}");
            ExitCode::FAILURE
        }
    }
}
