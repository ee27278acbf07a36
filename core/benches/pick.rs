//! Criterion benchmarks of the scheduling core: `pick` for every policy at
//! N = 16 and N = 1024 on a 60-byte URL whose hashes are already computed,
//! `RequestKey::new` (the once-per-request hashing) on its own, and `build`.
//!
//! Targets (2-core machine): `md5`, `maglev`, `jump`, `mit_ch`, `mod_ch`,
//! `ketama`, `ht_rr` at most 50 ns per pick; maglev build for N = 1024 with
//! M = 65537 under 10 ms.
//!
//! Run: `cargo bench -p dl7-core --bench pick -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dl7_core::policy::maglev::Maglev;
use dl7_core::{Membership, NoLoad, PolicyKind, PolicySpec, RequestKey};

/// 60 bytes, a typical object URL.
const URL: &[u8] = b"http://example.com/some/fairly/typical/path/to/an/obj042.jpg";

fn keys() -> Vec<Vec<u8>> {
    // A small rotating set of keys, so that table lookups are not all one
    // cache line, yet every key is 60 bytes and hashed in advance.
    (0..1024).map(|i| format!("http://example.com/some/fairly/typical/path/to/an/o{i:05}.jpg").into_bytes()).collect()
}

fn pick(c: &mut Criterion) {
    assert_eq!(URL.len(), 60);
    let urls = keys();
    assert!(urls.iter().all(|u| u.len() == 60));
    let keys: Vec<RequestKey> = urls.iter().map(|u| RequestKey::new(u)).collect();
    let mut group = c.benchmark_group("pick");
    for n in [16usize, 1024] {
        let members = Membership::numbered(n).unwrap();
        for &kind in PolicyKind::ALL {
            let policy = PolicySpec::new(kind).build(&members).unwrap();
            let mut i = 0usize;
            group.bench_with_input(BenchmarkId::new(kind.name(), n), &n, |b, _| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    policy.pick(black_box(&keys[i]), &NoLoad)
                })
            });
        }
    }
    group.finish();
}

fn key(c: &mut Criterion) {
    c.bench_function("request_key_new/60B", |b| b.iter(|| RequestKey::new(black_box(URL))));
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    for n in [16usize, 1024] {
        let members = Membership::numbered(n).unwrap();
        for &kind in PolicyKind::ALL {
            let spec = PolicySpec::new(kind);
            group.bench_with_input(BenchmarkId::new(kind.name(), n), &n, |b, _| {
                b.iter(|| spec.build(&members).unwrap())
            });
        }
    }
    // The target: maglev, N = 1024, M = 65537 (below the spec's
    // 100 N rule, so through the bare constructor).
    let members = Membership::numbered(1024).unwrap();
    group.bench_function("maglev_m65537/1024", |b| b.iter(|| Maglev::new(&members, 65537).unwrap()));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(1));
    targets = pick, key, build
}
criterion_main!(benches);
