//! The engine's hold model: a fixed population of events, each of which
//! reschedules itself a pseudo-random delay later. Measures raw engine speed
//! (queue push + pop + dispatch); target >= 10 million events/s on one core.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dl7_sim::engine::{Hold, Simulation};

fn hold(c: &mut Criterion) {
    let mut group = c.benchmark_group("hold");
    const EVENTS: u64 = 1_000_000;
    group.throughput(Throughput::Elements(EVENTS));
    for population in [100u32, 1_000, 10_000] {
        group.bench_with_input(BenchmarkId::from_parameter(population), &population, |b, &pop| {
            b.iter(|| {
                let mut sim = Simulation::new(Hold::new());
                sim.init(|_, ctx| (0..pop).for_each(|i| ctx.schedule_in(i as u64, i)));
                let mut end = 0;
                while sim.events() < EVENTS {
                    end += 1_000_000;
                    sim.run_until(end);
                }
                sim.events()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hold);
criterion_main!(benches);
