//! The simulator's memory is O(servers + objects), not servers x objects: a
//! 1,000,000-object, 1,024-server cell, measured by a counting allocator
//! (this test binary's own, hence a file of its own) and by the process's
//! peak resident memory.
//!
//! The bound, derived from the model's data structures (sim/src/lib.rs's
//! module doc lists them): per catalog object, its `RequestKey` (40 B), its
//! size (8 B) and its `ObjectCosts` (80 B), plus the request stream's alias
//! table (about 12 B kept, up to about 40 B more while it is built): at
//! most 180 B, i.e. 180 MB for 10^6 objects. Per server, a few hundred
//! bytes of stations and counters and one load view of N counters (pure
//! policies keep one for the whole cluster); one Maglev table (131,101 x
//! 4 B). Per connection (63 per server: 64,512) a request slot (32 B) and
//! at most a few queue entries (16 B each, the queue doubling as it grows).
//! Caches and fetches in flight hold only what the window's few thousand
//! requests brought in. Everything but the per-object part is under 20 MB:
//! the bound is 200 MB, where the servers x objects arrays of before took
//! about 22 GB for this cell (1 + 4 + 17 bytes per server and object).

use std::sync::Arc;

use dl7_core::PolicySpec;
use dl7_sim::{simulate_with_stats, Arch, CellSpec, Hardware};

#[global_allocator]
static ALLOC: dl7_alloc_count::Counting = dl7_alloc_count::Counting;

const MB: usize = 1_000_000;

fn vm_hwm_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib * 1024
}

#[test]
fn a_million_objects_on_1024_servers_fit_in_the_derived_bound() {
    const OBJECTS: u32 = 1_000_000;
    let catalog = dl7_traces::SurgeModel::surge("/m", OBJECTS, 1.0, 1).generate().unwrap();
    let catalog_bytes = dl7_alloc_count::live_bytes();
    let cell = CellSpec {
        // A window of 2 simulated ms: the cell is built whole, and every
        // connection sends its first request.
        warmup_s: 0.0,
        measure_s: 0.002,
        ..CellSpec::paper("surge1m", Arc::new(catalog), Arch::Distributed, PolicySpec::parse("maglev").unwrap(), 1024)
    };
    let before = dl7_alloc_count::reset_peak();
    let (_, stats) = simulate_with_stats(&cell, &Hardware::kwon2008()).unwrap();
    let model_peak = dl7_alloc_count::peak_bytes() - before;
    assert!(stats.events > 64_512, "every connection must have started: {} events", stats.events);
    eprintln!(
        "catalog {} MB; simulation peak heap {} MB ({} B per object); process peak RSS {} MB",
        catalog_bytes / MB,
        model_peak / MB,
        model_peak / OBJECTS as usize,
        vm_hwm_bytes() / MB
    );
    assert!(model_peak < 200 * MB, "simulation peak heap {} MB, bound 200 MB", model_peak / MB);
    // The catalog itself (about 100 B per object with its path) comes on top,
    // and the allocator keeps some of what was freed.
    assert!(vm_hwm_bytes() < catalog_bytes + 300 * MB, "peak RSS {} MB", vm_hwm_bytes() / MB);
}
