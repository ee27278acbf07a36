//! The eviction caches allocate nothing per hit, and nothing per insertion
//! once they (and S3-FIFO's ghost) have held their most objects: counted
//! with a global allocator. Its own `main` without the libtest harness
//! (Cargo.toml), whose thread allocates while a test runs.

use dl7_core::eviction::{Cache, Eviction};

#[global_allocator]
static ALLOC: dl7_alloc_count::Counting = dl7_alloc_count::Counting;

fn main() {
    for &e in Eviction::ALL {
        hits_and_full_insertions_do_not_allocate(e);
        string_keys_move_without_allocating(e);
    }
    println!("eviction_no_alloc: hits and full-cache insertions of every algorithm: no allocation");
}

/// A Zipf-like stream (a cheap LCG skewed by squaring, sizes from the key)
/// over 5,000 objects into a cache of about 300 of them.
fn requests(n: usize, seed: u64) -> impl Iterator<Item = (u32, u64)> {
    let mut x = seed;
    (0..n).map(move |_| {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        let key = (u * u * 5_000.0) as u32;
        (key, 100 + u64::from(key.wrapping_mul(2_654_435_761) % 900))
    })
}

fn replay(c: &mut Cache<u32, u64>, n: usize, seed: u64) {
    for (key, bytes) in requests(n, seed) {
        if !c.lookup(&key) {
            c.insert(key, bytes, bytes);
        }
    }
}

fn hits_and_full_insertions_do_not_allocate(e: Eviction) {
    let mut c = Cache::new(e, 150_000);
    // Warm-up long enough for every slab, free list and table to reach the
    // most it will hold (S3-FIFO's ghost counts bytes, so its entry count
    // varies with the sizes it remembers).
    replay(&mut c, 400_000, 1);
    let before = dl7_alloc_count::allocations();
    replay(&mut c, 200_000, 2);
    let allocated = dl7_alloc_count::allocations() - before;
    assert_eq!(allocated, 0, "{e}: {allocated} allocations in 200,000 requests to a full cache");
}

/// With `String` keys made before counting, a full cache stores each by
/// moving it: into its slot, and for S3-FIFO into the ghost on eviction.
fn string_keys_move_without_allocating(e: Eviction) {
    let mut c: Cache<String, ()> = Cache::new(e, 150_000);
    let warm: Vec<(String, u64)> = requests(400_000, 3).map(|(k, b)| (format!("/obj/{k}"), b)).collect();
    let measured: Vec<(String, u64)> = requests(100_000, 4).map(|(k, b)| (format!("/obj/{k}"), b)).collect();
    for (key, bytes) in warm {
        if !c.lookup(key.as_str()) {
            c.insert(key, (), bytes);
        }
    }
    // Dropping a key the cache declined or already holds frees; it does not allocate.
    let before = dl7_alloc_count::allocations();
    for (key, bytes) in measured {
        if !c.lookup(key.as_str()) {
            c.insert(key, (), bytes);
        }
    }
    let allocated = dl7_alloc_count::allocations() - before;
    assert_eq!(allocated, 0, "{e}: {allocated} allocations with String keys");
}
