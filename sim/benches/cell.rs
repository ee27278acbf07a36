//! One simulated run of the cluster model at the sweep's defaults (10 s
//! warm-up + 20 s measured): the busiest paper cell (distributed rr on 16
//! servers, about 2,100 requests/s) and a conventional one. Throughput is in
//! engine events, so the figure is also the model's event rate; the sweep's
//! budget is about 0.2 s per run.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dl7_core::PolicySpec;
use dl7_sim::{simulate_with_stats, Arch, CellSpec, Hardware};

fn cell(arch: Arch, policy: &str) -> CellSpec {
    let catalog = Arc::new(dl7_traces::workload::builtin("surge100").unwrap());
    CellSpec::paper("surge100", catalog, arch, PolicySpec::parse(policy).unwrap(), 16)
}

fn cells(c: &mut Criterion) {
    let hw = Hardware::kwon2008();
    let mut group = c.benchmark_group("cell");
    group.sample_size(10);
    for (name, arch, policy) in
        [("distributed_rr_16", Arch::Distributed, "rr"), ("conventional_md5_16", Arch::Conventional, "md5")]
    {
        let spec = cell(arch, policy);
        let (_, stats) = simulate_with_stats(&spec, &hw).unwrap();
        eprintln!("{name}: {} events, {:.2} events per request", stats.events, stats.events_per_request());
        group.throughput(Throughput::Elements(stats.events));
        group.bench_function(name, |b| b.iter(|| simulate_with_stats(&spec, &hw).unwrap().1.events));
    }
    group.finish();
}

criterion_group!(benches, cells);
criterion_main!(benches);
