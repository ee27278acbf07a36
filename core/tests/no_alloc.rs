//! `pick` allocates nothing, and `candidates` nothing beyond the caller's
//! `Vec`: counted with a global allocator. Its own `main` without the libtest
//! harness (Cargo.toml), whose thread allocates while a test runs (its
//! "running for over 60 seconds" note on a busy machine did, once).

use dl7_core::{LoadView, Membership, PolicyKind, PolicySpec, RequestKey, ServerId};

#[global_allocator]
static ALLOC: dl7_alloc_count::Counting = dl7_alloc_count::Counting;

/// Some load, so that bounded walks and p2c and lard compare.
struct Skewed;

impl LoadView for Skewed {
    fn inflight(&self, s: ServerId) -> u64 {
        if s.0 % 3 < 1 {
            100
        } else {
            s.0 as u64
        }
    }
    fn total_inflight(&self) -> u64 {
        300
    }
}

fn main() {
    pick_and_candidates_do_not_allocate();
    println!("no_alloc: pick and candidates of every policy at N = 1, 16, 70: no allocation");
}

fn pick_and_candidates_do_not_allocate() {
    // Fewer URLs than lard's initial table capacity (its table grows only
    // past that, by design).
    let urls: Vec<String> = (0..500).map(|i| format!("http://example.com/obj/{i}.html")).collect();
    let keys: Vec<RequestKey> = urls.iter().map(|u| RequestKey::new(u.as_bytes())).collect();
    for n in [1usize, 16, 70] {
        let members = Membership::numbered(n).unwrap();
        for &kind in PolicyKind::ALL {
            let policy = PolicySpec::new(kind).build(&members).unwrap();
            let mut out = Vec::with_capacity(n);
            let before = dl7_alloc_count::allocations();
            for key in &keys {
                std::hint::black_box(policy.pick(key, &Skewed));
                policy.candidates(key, &Skewed, n, &mut out);
            }
            let allocated = dl7_alloc_count::allocations() - before;
            assert_eq!(allocated, 0, "{kind} at N = {n} allocated {allocated} times");
        }
    }
}
