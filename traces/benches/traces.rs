//! Throughput of the hot paths: CLF import (target >= 1M lines/s on one
//! core) and request-stream generation (target >= 50M requests/s).
//! Run: `cargo bench -p dl7-traces`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dl7_traces::import::{import, ImportOptions, LogFormat};
use dl7_traces::stream::StackDistance;
use dl7_traces::workload;
use rand::{Rng, SeedableRng};

const LINES: usize = 1_000_000;

/// A CLF log of `LINES` lines over 20,000 objects with Zipf-like reuse, 10% non-200.
fn clf_log() -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut out = Vec::with_capacity(LINES * 100);
    for i in 0..LINES {
        let u: f64 = rng.gen();
        let object = (20_000f64.powf(u)) as u32;
        let status = if rng.gen_ratio(1, 10) { 304 } else { 200 };
        let secs = i / 50;
        out.extend_from_slice(
            format!(
                "10.0.{}.{} - - [17/May/2015:{:02}:{:02}:{:02} +0000] \"GET /site/dir{}/file{}.html?q={} HTTP/1.1\" {} {}\n",
                i % 200,
                i % 250,
                (secs / 3600) % 24,
                (secs / 60) % 60,
                secs % 60,
                object % 97,
                object,
                i % 7,
                status,
                1000 + object * 13
            )
            .as_bytes(),
        );
    }
    out
}

fn bench_import(c: &mut Criterion) {
    let log = clf_log();
    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("clf_1M_lines", |b| {
        b.iter(|| {
            let imported = import(&log[..], "bench.log", &ImportOptions::new(LogFormat::Clf)).unwrap();
            assert_eq!(imported.report.lines, LINES as u64);
            imported
        })
    });
    group.finish();
}

fn bench_stream(c: &mut Criterion) {
    let catalog = workload::builtin("surge100").unwrap();
    const N: u64 = 10_000_000;
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.bench_function("surge100_independent", |b| {
        b.iter_batched(
            || catalog.stream(1).unwrap(),
            |mut s| {
                let mut acc = 0u64;
                for _ in 0..N {
                    acc = acc.wrapping_add(u64::from(s.next_id().0));
                }
                acc
            },
            BatchSize::LargeInput,
        )
    });
    let locality = StackDistance { probability: 0.3, mu: 1.0, sigma: 1.0 };
    group.bench_function("surge100_stack_distance", |b| {
        b.iter_batched(
            || catalog.stream(1).unwrap().with_stack_distance(locality).unwrap(),
            |mut s| {
                let mut acc = 0u64;
                for _ in 0..N {
                    acc = acc.wrapping_add(u64::from(s.next_id().0));
                }
                acc
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_import, bench_stream);
criterion_main!(benches);
