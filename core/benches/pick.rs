//! Criterion benchmarks of `pick` and `build` (filled in by the policy work).
use criterion::{criterion_group, criterion_main, Criterion};
use dl7_core::{Membership, NoLoad, PolicySpec, RequestKey};

fn bench(c: &mut Criterion) {
    let members = Membership::numbered(16).unwrap();
    let mut policy = PolicySpec::parse("md5").unwrap().build(&members).unwrap();
    let key = RequestKey::new(b"http://example.com/some/fairly/typical/path/to/an/object.jpg");
    c.bench_function("md5/16", |b| b.iter(|| policy.pick(&key, &NoLoad)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
