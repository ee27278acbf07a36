//! Seeded request streams over a [`Catalog`]: the sequence of objects a
//! client asks for. Independent draws by weight (the paper's WebStone-style
//! replay) use the alias method, O(1) per draw; an optional LRU
//! stack-distance model adds temporal locality.
//!
//! A stream allocates nothing per request, and the same seed gives the same
//! stream on every machine: ChaCha8 is portable and `WeightedAliasIndex`
//! samples its index as a `u32` and its threshold as a `u32` or an `f64`
//! (see `Alias`), never a platform-sized integer.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, WeightedAliasIndex};

use crate::catalog::{Catalog, ObjectId};
use crate::error::TraceError;

/// Temporal locality by LRU stack distance: with probability `probability` a
/// request re-references the object at depth `d ~ LogNormal(mu, sigma)`
/// (depth 0 = most recent, clamped to the stack) of the LRU stack of objects
/// requested so far; otherwise it is an independent draw by weight. Either
/// way the object moves to the top of the stack. SURGE's own parameters for
/// this lognormal are unverified; pick them per experiment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StackDistance {
    /// Share of requests drawn from the LRU stack, in [0, 1].
    pub probability: f64,
    /// Lognormal mu of the stack depth.
    pub mu: f64,
    /// Lognormal sigma of the stack depth.
    pub sigma: f64,
}

struct Lru {
    model: StackDistance,
    depth: LogNormal<f64>,
    /// Object ids, most recent first; `len` entries are live.
    stack: Vec<u32>,
    /// Position of each object in `stack`, `u32::MAX` if never requested.
    position: Vec<u32>,
    len: usize,
}

impl Lru {
    /// Moves `id` to the top. O(depth): the shift is what an LRU stack costs.
    fn touch(&mut self, id: u32) {
        let at = self.position[id as usize];
        let from = if at == u32::MAX {
            self.len += 1;
            self.len - 1
        } else {
            at as usize
        };
        self.stack.copy_within(0..from, 1);
        self.stack[0] = id;
        for (pos, &moved) in self.stack[..=from].iter().enumerate() {
            self.position[moved as usize] = pos as u32;
        }
    }
}

/// The alias table: integer weights when they represent the catalog's
/// weights to 1e-4 relative precision (small catalogs such as the paper's
/// 100 files; one fewer 32-bit random word per draw, about 20% faster),
/// otherwise the exact `f64` weights.
enum Alias {
    Fine(WeightedAliasIndex<u32>),
    Wide(WeightedAliasIndex<f64>),
}

impl Alias {
    fn new(weights: Vec<f64>) -> Result<Alias, rand_distr::WeightedError> {
        let n = weights.len() as f64;
        let max = weights.iter().copied().fold(0.0, f64::max);
        if max > 0.0 {
            // Every quantised weight must stay <= u32::MAX / n (rand_distr's bound).
            let scale = (u32::MAX as f64 / n).floor() / max;
            let quantised: Vec<u32> = weights.iter().map(|w| (w * scale).floor() as u32).collect();
            let precise = weights.iter().zip(&quantised).all(|(&w, &q)| w == 0.0 || q >= 10_000);
            if precise {
                return WeightedAliasIndex::new(quantised).map(Alias::Fine);
            }
        }
        WeightedAliasIndex::new(weights).map(Alias::Wide)
    }

    #[inline]
    fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        match self {
            Alias::Fine(a) => a.sample(rng),
            Alias::Wide(a) => a.sample(rng),
        }
    }
}

/// A catalog's alias table, shared by every stream that draws from it (a
/// million-object table is tens of megabytes: build it once per catalog,
/// not once per client).
#[derive(Clone)]
pub struct Draws(std::sync::Arc<Alias>);

/// An endless, seeded stream of [`ObjectId`]s drawn from a catalog.
pub struct RequestStream<'a> {
    catalog: &'a Catalog,
    rng: ChaCha8Rng,
    alias: Draws,
    lru: Option<Box<Lru>>,
}

impl<'a> RequestStream<'a> {
    /// Independent draws by weight, seeded with `seed`.
    pub fn new(catalog: &'a Catalog, seed: u64) -> Result<Self, TraceError> {
        if catalog.is_empty() || catalog.len() > u32::MAX as usize {
            return Err(TraceError::Invalid(format!(
                "request stream: expected 1 to {} objects, got {}",
                u32::MAX,
                catalog.len()
            )));
        }
        let weights: Vec<f64> = catalog.objects.iter().map(|o| o.weight).collect();
        if let Some(o) = catalog.objects.iter().find(|o| !(o.weight.is_finite() && o.weight >= 0.0)) {
            return Err(TraceError::Invalid(format!(
                "request stream: object {} has weight {}, expected a finite weight >= 0",
                o.path, o.weight
            )));
        }
        let alias =
            Alias::new(weights).map_err(|e| TraceError::Invalid(format!("request stream: weights unusable: {e}")))?;
        Ok(RequestStream::with_draws(catalog, &Draws(std::sync::Arc::new(alias)), seed))
    }

    /// Independent draws by weight from `draws` (the table of a stream over
    /// the same `catalog`), seeded with `seed`: the same stream as
    /// [`RequestStream::new`] with that seed, without building the table again.
    pub fn with_draws(catalog: &'a Catalog, draws: &Draws, seed: u64) -> Self {
        RequestStream { catalog, rng: ChaCha8Rng::seed_from_u64(seed), alias: draws.clone(), lru: None }
    }

    /// This stream's alias table, for other streams over the same catalog.
    pub fn draws(&self) -> Draws {
        self.alias.clone()
    }

    /// Adds LRU stack-distance temporal locality (see [`StackDistance`]).
    pub fn with_stack_distance(mut self, model: StackDistance) -> Result<Self, TraceError> {
        if !(0.0..=1.0).contains(&model.probability) {
            return Err(TraceError::Invalid(format!(
                "stack distance: expected probability in [0, 1], got {}",
                model.probability
            )));
        }
        if !(model.mu.is_finite() && model.sigma.is_finite() && model.sigma >= 0.0) {
            return Err(TraceError::Invalid(format!(
                "stack distance: expected finite mu and sigma >= 0, got mu {}, sigma {}",
                model.mu, model.sigma
            )));
        }
        let depth = LogNormal::new(model.mu, model.sigma).map_err(|e| {
            TraceError::Invalid(format!("stack distance: lognormal({}, {}): {e}", model.mu, model.sigma))
        })?;
        let n = self.catalog.len();
        self.lru = Some(Box::new(Lru { model, depth, stack: vec![0; n], position: vec![u32::MAX; n], len: 0 }));
        Ok(self)
    }

    /// The catalog this stream draws from.
    pub fn catalog(&self) -> &'a Catalog {
        self.catalog
    }

    /// The next object.
    #[inline]
    pub fn next_id(&mut self) -> ObjectId {
        let Some(lru) = self.lru.as_deref_mut() else {
            return ObjectId(self.alias.0.sample(&mut self.rng) as u32);
        };
        let id = if lru.len > 0 && self.rng.gen::<f64>() < lru.model.probability {
            let d = lru.depth.sample(&mut self.rng);
            let d = if d.is_finite() { (d as usize).min(lru.len - 1) } else { lru.len - 1 };
            lru.stack[d]
        } else {
            self.alias.0.sample(&mut self.rng) as u32
        };
        lru.touch(id);
        ObjectId(id)
    }
}

impl Iterator for RequestStream<'_> {
    type Item = ObjectId;

    #[inline]
    fn next(&mut self) -> Option<ObjectId> {
        Some(self.next_id())
    }
}

impl Catalog {
    /// A seeded stream of independent draws by weight (same as
    /// [`RequestStream::new`]); an error if the catalog is empty or its
    /// weights are unusable.
    pub fn stream(&self, seed: u64) -> Result<RequestStream<'_>, TraceError> {
        RequestStream::new(self, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ContentType, Object};

    fn catalog(weights: &[f64]) -> Catalog {
        Catalog {
            objects: weights
                .iter()
                .enumerate()
                .map(|(i, &w)| Object {
                    id: ObjectId(i as u32),
                    path: format!("/o{i}"),
                    size: 100,
                    content_type: ContentType::Other,
                    weight: w,
                })
                .collect(),
        }
    }

    #[test]
    fn a_shared_table_gives_each_seed_its_own_stream() {
        let c = catalog(&[1.0, 2.0, 3.0, 4.0]);
        let draws = c.stream(1).unwrap().draws();
        for seed in [1, 2, 99] {
            let own: Vec<ObjectId> = c.stream(seed).unwrap().take(500).collect();
            let shared: Vec<ObjectId> = RequestStream::with_draws(&c, &draws, seed).take(500).collect();
            assert_eq!(own, shared, "seed {seed}");
        }
    }

    #[test]
    fn zero_weight_objects_are_never_drawn() {
        let c = catalog(&[1.0, 0.0, 3.0]);
        assert!(c.stream(1).unwrap().take(10_000).all(|id| id.0 != 1));
    }

    #[test]
    fn bad_catalogs_are_errors_not_panics() {
        assert!(RequestStream::new(&catalog(&[]), 1).is_err());
        assert!(RequestStream::new(&catalog(&[0.0, 0.0]), 1).is_err());
        assert!(RequestStream::new(&catalog(&[1.0, f64::NAN]), 1).is_err());
        assert!(RequestStream::new(&catalog(&[1.0, -1.0]), 1).is_err());
    }

    #[test]
    fn large_catalogs_use_exact_weights_and_match_them() {
        let weights: Vec<f64> = (1..=5000).map(|r| 1.0 / r as f64).collect();
        let c = catalog(&weights);
        let s = RequestStream::new(&c, 1).unwrap();
        assert!(matches!(*s.alias.0, Alias::Wide(_)));
        assert!(matches!(*RequestStream::new(&catalog(&weights[..100]), 1).unwrap().alias.0, Alias::Fine(_)));
        let n = 500_000;
        let mut counts = vec![0u32; c.len()];
        s.take(n).for_each(|id| counts[id.index()] += 1);
        let total: f64 = weights.iter().sum();
        let expected_first = n as f64 * weights[0] / total;
        assert!((counts[0] as f64 - expected_first).abs() < 5.0 * expected_first.sqrt(), "{}", counts[0]);
        let tail: u32 = counts[2500..].iter().sum();
        let expected_tail = n as f64 * weights[2500..].iter().sum::<f64>() / total;
        assert!((tail as f64 - expected_tail).abs() < 5.0 * expected_tail.sqrt(), "{tail} vs {expected_tail}");
    }

    #[test]
    fn stack_distance_adds_reuse() {
        let weights: Vec<f64> = (0..1000).map(|_| 1.0).collect();
        let c = catalog(&weights);
        let repeats = |s: RequestStream| {
            let ids: Vec<u32> = s.take(20_000).map(|i| i.0).collect();
            ids.windows(2).filter(|w| w[0] == w[1]).count()
        };
        let independent = repeats(c.stream(5).unwrap());
        let local = StackDistance { probability: 0.5, mu: 0.0, sigma: 0.5 };
        let with_lru = repeats(c.stream(5).unwrap().with_stack_distance(local).unwrap());
        assert!(with_lru > 10 * independent.max(1), "{with_lru} vs {independent}");
    }

    #[test]
    fn lru_positions_stay_consistent() {
        let c = catalog(&[1.0; 50]);
        let mut s =
            c.stream(3).unwrap().with_stack_distance(StackDistance { probability: 0.7, mu: 1.0, sigma: 1.0 }).unwrap();
        for _ in 0..5_000 {
            s.next_id();
        }
        let lru = s.lru.as_ref().unwrap();
        for (pos, &id) in lru.stack[..lru.len].iter().enumerate() {
            assert_eq!(lru.position[id as usize] as usize, pos);
        }
    }
}
