//! The SURGE workload model (Barford & Crovella, SIGMETRICS 1998): hybrid
//! lognormal-body / Pareto-tail file sizes, Zipf popularity, and the ON/OFF
//! client behaviour (pages with embedded objects, active and inactive OFF
//! times). Samplers come from `rand_distr`; this module only composes them.
//!
//! It must not read files or know about TOML: [`crate::workload`] turns a
//! workload file into a [`SurgeModel`], and this module turns that into a
//! [`Catalog`].

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Pareto, StandardNormal, Weibull};

use crate::catalog::{Catalog, ContentType, Object, ObjectId};
use crate::error::TraceError;
use crate::stream::RequestStream;

/// SURGE's file-size model with the exact body/tail split: draw `z ~ N(0,1)`;
/// if `z < (ln k - mu) / sigma` the size is `exp(mu + sigma z)` (lognormal
/// body), otherwise a fresh `Pareto(k, alpha)` draw (tail).
#[derive(Debug, Clone, Copy)]
pub struct HybridSize {
    mu: f64,
    sigma: f64,
    split_z: f64,
    tail: Pareto<f64>,
}

impl HybridSize {
    /// SURGE's published shape: mu 9.357, sigma 1.318, k 133,000 B, alpha 1.1.
    pub const SURGE_MU: f64 = 9.357;
    /// Lognormal body sigma (natural log of bytes).
    pub const SURGE_SIGMA: f64 = 1.318;
    /// Pareto tail scale in bytes.
    pub const SURGE_K: f64 = 133_000.0;
    /// Pareto tail shape.
    pub const SURGE_ALPHA: f64 = 1.1;

    /// The hybrid with body `LogNormal(mu, sigma)` and tail `Pareto(k, alpha)`.
    pub fn new(mu: f64, sigma: f64, k: f64, alpha: f64) -> Result<Self, TraceError> {
        if !(mu.is_finite() && sigma.is_finite() && sigma > 0.0) {
            return Err(TraceError::Invalid(format!(
                "hybrid size: expected finite mu and sigma > 0, got mu {mu}, sigma {sigma}"
            )));
        }
        let tail = Pareto::new(k, alpha).map_err(|e| {
            TraceError::Invalid(format!("hybrid size: expected k > 0 and alpha > 0, got k {k}, alpha {alpha}: {e}"))
        })?;
        Ok(HybridSize { mu, sigma, split_z: (k.ln() - mu) / sigma, tail })
    }

    /// SURGE's shape with every size multiplied by `scale` (`mu + ln s`, `k s`).
    pub fn surge_scaled(scale: f64) -> Result<Self, TraceError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(TraceError::Invalid(format!("hybrid size: expected scale > 0, got {scale}")));
        }
        Self::new(Self::SURGE_MU + scale.ln(), Self::SURGE_SIGMA, Self::SURGE_K * scale, Self::SURGE_ALPHA)
    }

    /// The share of draws that come from the Pareto tail.
    pub fn tail_probability(&self) -> f64 {
        // 1 - Phi(split_z), via erfc-free series is overkill: integrate numerically once.
        1.0 - standard_normal_cdf(self.split_z)
    }
}

impl Distribution<f64> for HybridSize {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let z: f64 = rng.sample(StandardNormal);
        if z < self.split_z {
            (self.mu + self.sigma * z).exp()
        } else {
            self.tail.sample(rng)
        }
    }
}

/// Abramowitz-Stegun 26.2.17 approximation (error < 7.5e-8), enough for a report figure.
fn standard_normal_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.231_641_9 * x.abs());
    let poly =
        t * (0.319_381_530 + t * (-0.356_563_782 + t * (1.781_477_937 + t * (-1.821_255_978 + t * 1.330_274_429))));
    let tail = (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt() * poly;
    if x >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// Share of requests per content type; normalised on use.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentMix {
    /// `(type, share)` pairs, in the order ties are broken.
    pub shares: Vec<(ContentType, f64)>,
}

impl ContentMix {
    /// The proxy-trace mix from Wessels, *Web Caching* (IRCache): gif 40.8%,
    /// html 35.1%, jpeg 19.0% of requests; the remaining 5.1% other.
    pub fn wessels() -> Self {
        ContentMix {
            shares: vec![
                (ContentType::Gif, 0.408),
                (ContentType::Html, 0.351),
                (ContentType::Jpeg, 0.190),
                (ContentType::Other, 0.051),
            ],
        }
    }

    /// Assigns a type to each object, one at a time in rank order, so that the share of
    /// request weight per type tracks the mix: each object takes the type
    /// furthest below its target share of the weight assigned so far. Types
    /// are deterministic given the weights (no random draw), which keeps the
    /// content mix of a 100-file workload close to the mix instead of at the
    /// mercy of which type the most popular file happened to get.
    pub fn assigner(&self) -> MixAssigner<'_> {
        MixAssigner {
            mix: self,
            total: self.shares.iter().map(|(_, s)| s.max(0.0)).sum(),
            assigned: vec![0.0; self.shares.len()],
            so_far: 0.0,
        }
    }
}

/// The running state of [`ContentMix::assigner`]: the weight given to each type so far.
pub struct MixAssigner<'a> {
    mix: &'a ContentMix,
    total: f64,
    assigned: Vec<f64>,
    so_far: f64,
}

impl MixAssigner<'_> {
    /// The type of the next object, of weight `w`.
    pub fn next(&mut self, w: f64) -> ContentType {
        if self.total <= 0.0 {
            return ContentType::Other;
        }
        self.so_far += w;
        let mut best = 0;
        let mut best_deficit = f64::NEG_INFINITY;
        for (i, (_, share)) in self.mix.shares.iter().enumerate() {
            let deficit = share.max(0.0) / self.total * self.so_far - self.assigned[i];
            if deficit > best_deficit {
                best = i;
                best_deficit = deficit;
            }
        }
        self.assigned[best] += w;
        self.mix.shares[best].0
    }
}

/// The URL extension used for generated objects of type `t`.
pub fn extension(t: ContentType) -> &'static str {
    match t {
        ContentType::Html => "html",
        ContentType::Gif => "gif",
        ContentType::Jpeg => "jpg",
        ContentType::Png => "png",
        ContentType::Css => "css",
        ContentType::Js => "js",
        ContentType::Other => "bin",
    }
}

/// Most objects a generated workload may have: far above any experiment,
/// low enough that a typo cannot ask for terabytes of catalog.
pub const MAX_FILES: u32 = 10_000_000;

/// A SURGE-model workload of `files` objects, fully determined by its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SurgeModel {
    /// URL prefix, e.g. `/surge100`; paths are `{prefix}/obj017.jpg`.
    pub path_prefix: String,
    /// Number of objects.
    pub files: u32,
    /// Zipf exponent `a`: the object of rank r has weight `1 / r^a`.
    pub zipf_exponent: f64,
    /// Lognormal body mu before scaling.
    pub body_mu: f64,
    /// Lognormal body sigma.
    pub body_sigma: f64,
    /// Pareto tail k in bytes before scaling.
    pub tail_k: f64,
    /// Pareto tail alpha.
    pub tail_alpha: f64,
    /// Every size is multiplied by this (the fitted calibration knob).
    pub scale: f64,
    /// Seed of the size draws and the size-to-rank permutation.
    pub seed: u64,
    /// Content types by share of requests.
    pub mix: ContentMix,
}

impl SurgeModel {
    /// SURGE's published shape for `files` objects, scale 1.
    pub fn surge(path_prefix: &str, files: u32, zipf_exponent: f64, seed: u64) -> Self {
        SurgeModel {
            path_prefix: path_prefix.to_string(),
            files,
            zipf_exponent,
            body_mu: HybridSize::SURGE_MU,
            body_sigma: HybridSize::SURGE_SIGMA,
            tail_k: HybridSize::SURGE_K,
            tail_alpha: HybridSize::SURGE_ALPHA,
            scale: 1.0,
            seed,
            mix: ContentMix::wessels(),
        }
    }

    /// The size distribution after scaling.
    pub fn size_distribution(&self) -> Result<HybridSize, TraceError> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(TraceError::Invalid(format!("surge: expected scale > 0, got {}", self.scale)));
        }
        HybridSize::new(self.body_mu + self.scale.ln(), self.body_sigma, self.tail_k * self.scale, self.tail_alpha)
    }

    #[inline]
    fn zipf_weight(&self, rank: u32) -> f64 {
        (rank as f64).powf(-self.zipf_exponent)
    }

    /// Draws the sizes, assigns them to popularity ranks by a random
    /// permutation, and names each object after its rank and type.
    pub fn generate(&self) -> Result<Catalog, TraceError> {
        Ok(Catalog { objects: self.objects()?.collect() })
    }

    /// The objects of [`SurgeModel::generate`], one at a time and in order,
    /// holding only the drawn sizes (8 bytes per object): what writes a
    /// catalog of millions of objects without keeping it in memory.
    pub fn objects(&self) -> Result<impl Iterator<Item = Object> + '_, TraceError> {
        if !(1..=MAX_FILES).contains(&self.files) {
            return Err(TraceError::Invalid(format!("surge: expected 1 to {MAX_FILES} files, got {}", self.files)));
        }
        if !(self.zipf_exponent.is_finite() && self.zipf_exponent >= 0.0) {
            return Err(TraceError::Invalid(format!("surge: expected zipf_exponent >= 0, got {}", self.zipf_exponent)));
        }
        let sizes_dist = self.size_distribution()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut sizes: Vec<u64> =
            (0..self.files).map(|_| sizes_dist.sample(&mut rng).round().clamp(1.0, 1e15) as u64).collect();
        // The draws are already independent of rank; the permutation makes the
        // independence explicit and matches SURGE's "sizes assigned to ranks".
        sizes.shuffle(&mut rng);
        let mut types = self.mix.assigner();
        let width = (self.files - 1).to_string().len().max(3);
        let prefix = self.path_prefix.trim_end_matches('/');
        Ok(sizes.into_iter().enumerate().map(move |(i, size)| {
            let weight = self.zipf_weight(i as u32 + 1);
            let content_type = types.next(weight);
            Object {
                id: ObjectId(i as u32),
                path: format!("{prefix}/obj{i:0width$}.{}", extension(content_type)),
                size,
                content_type,
                weight,
            }
        }))
    }
}

/// What [`calibrate`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// The fitted size scale (three decimals).
    pub scale: f64,
    /// The first seed whose per-request mean is within tolerance.
    pub seed: u64,
    /// The per-request mean at `scale` and `seed`.
    pub mean_bytes: f64,
    /// Median per-request mean over the trial seeds at scale 1.
    pub median_mean_at_unit_scale: f64,
}

/// Searches the scale and seed of `model` so that the per-request mean hits
/// `target_bytes`, keeping the shape: the scale is `target / median`, where
/// the median is over the per-request means of seeds `0..trials` at scale 1;
/// the seed is then the first (from 0) whose mean at that scale is within
/// `tolerance` (a fraction) of the target.
pub fn calibrate(
    model: &SurgeModel,
    target_bytes: f64,
    trials: u64,
    tolerance: f64,
) -> Result<Calibration, TraceError> {
    let mut probe = model.clone();
    probe.scale = 1.0;
    let mut means = Vec::with_capacity(trials as usize);
    for seed in 0..trials {
        probe.seed = seed;
        means.push(probe.generate()?.mean_request_bytes());
    }
    means.sort_by(f64::total_cmp);
    let median =
        means.get(means.len() / 2).copied().ok_or_else(|| TraceError::Invalid("calibrate: trials = 0".into()))?;
    // Three decimals: the scale is written into a TOML file by hand-checkable value.
    let scale = (target_bytes / median * 1000.0).round() / 1000.0;
    probe.scale = scale;
    for seed in 0..1_000_000 {
        probe.seed = seed;
        let mean = probe.generate()?.mean_request_bytes();
        if ((mean - target_bytes) / target_bytes).abs() <= tolerance {
            return Ok(Calibration { scale, seed, mean_bytes: mean, median_mean_at_unit_scale: median });
        }
    }
    Err(TraceError::Invalid(format!("calibrate: no seed below 1,000,000 within {tolerance} of {target_bytes}")))
}

/// Active OFF time (between the embedded objects of one page). SURGE gives
/// Weibull "1.46, 0.382" without saying which is the shape. We read it in Law
/// & Kelton's notation, Weibull(alpha = shape, beta = scale), which SURGE's
/// authors cite: shape 1.46, scale 0.382 s, mean 0.35 s. The other reading
/// (shape 0.382, scale 1.46 s) has mean 5.5 s, longer than a page's usual
/// embedded-object burst; set [`SurgeUserParams::active_off_shape`] and
/// `active_off_scale_s` to use it.
pub const ACTIVE_OFF_SHAPE: f64 = 1.46;
/// Active OFF scale in seconds (see [`ACTIVE_OFF_SHAPE`]).
pub const ACTIVE_OFF_SCALE_S: f64 = 0.382;

/// Parameters of SURGE's ON/OFF user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurgeUserParams {
    /// Objects per page (base + embedded) ~ floor(Pareto(k, alpha)): k 1, alpha 2.43.
    pub embedded_k: f64,
    /// See `embedded_k`.
    pub embedded_alpha: f64,
    /// Inactive OFF (user think time between pages) ~ Pareto(k seconds, alpha): k 1 s, alpha 1.5.
    pub inactive_off_k_s: f64,
    /// See `inactive_off_k_s`.
    pub inactive_off_alpha: f64,
    /// Active OFF ~ Weibull(scale, shape); see [`ACTIVE_OFF_SHAPE`].
    pub active_off_scale_s: f64,
    /// See `active_off_scale_s`.
    pub active_off_shape: f64,
}

impl Default for SurgeUserParams {
    fn default() -> Self {
        SurgeUserParams {
            embedded_k: 1.0,
            embedded_alpha: 2.43,
            inactive_off_k_s: 1.0,
            inactive_off_alpha: 1.5,
            active_off_scale_s: ACTIVE_OFF_SCALE_S,
            active_off_shape: ACTIVE_OFF_SHAPE,
        }
    }
}

/// One request of a SURGE user: wait `think_ns` after the previous response
/// completed, then request `object`. `page_start` marks the page's base object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurgeStep {
    /// The object to request.
    pub object: ObjectId,
    /// Think time before the request, in nanoseconds.
    pub think_ns: u64,
    /// True for the first object of a page (after an inactive OFF time).
    pub page_start: bool,
}

/// A SURGE ON/OFF user: pages of `floor(Pareto)` objects, an active OFF time
/// between a page's objects and an inactive OFF time before the next page.
/// Objects are drawn from a [`RequestStream`] (by weight, or with temporal
/// locality if the stream has it). Allocates nothing per step.
pub struct SurgeUser<'a> {
    objects: RequestStream<'a>,
    rng: ChaCha8Rng,
    embedded: Pareto<f64>,
    inactive: Pareto<f64>,
    active: Weibull<f64>,
    left_in_page: u64,
    first_page: bool,
}

impl<'a> SurgeUser<'a> {
    /// A user over `catalog`; `seed` drives both object choice and timing.
    pub fn new(catalog: &'a Catalog, params: SurgeUserParams, seed: u64) -> Result<Self, TraceError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| TraceError::Invalid(format!("surge user: {what}: {e}"));
        Ok(SurgeUser {
            objects: RequestStream::new(catalog, seed)?,
            // A different stream from the object draws, derived from the same seed.
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5375_7267_6555_7365),
            embedded: Pareto::new(params.embedded_k, params.embedded_alpha).map_err(|e| bad("embedded", &e))?,
            inactive: Pareto::new(params.inactive_off_k_s, params.inactive_off_alpha)
                .map_err(|e| bad("inactive OFF", &e))?,
            active: Weibull::new(params.active_off_scale_s, params.active_off_shape)
                .map_err(|e| bad("active OFF", &e))?,
            left_in_page: 0,
            first_page: true,
        })
    }

    /// The next request and the think time before it.
    pub fn next_step(&mut self) -> SurgeStep {
        let object = self.objects.next_id();
        if self.left_in_page == 0 {
            let n = self.embedded.sample(&mut self.rng).floor();
            self.left_in_page = if n.is_finite() { (n as u64).clamp(1, 10_000) } else { 1 } - 1;
            let think_s = if self.first_page { 0.0 } else { self.inactive.sample(&mut self.rng) };
            self.first_page = false;
            SurgeStep { object, think_ns: seconds_to_ns(think_s), page_start: true }
        } else {
            self.left_in_page -= 1;
            SurgeStep { object, think_ns: seconds_to_ns(self.active.sample(&mut self.rng)), page_start: false }
        }
    }
}

impl Iterator for SurgeUser<'_> {
    type Item = SurgeStep;
    fn next(&mut self) -> Option<SurgeStep> {
        Some(self.next_step())
    }
}

/// Heavy tails can exceed u64 nanoseconds; cap at one day, far beyond any run.
fn seconds_to_ns(s: f64) -> u64 {
    (s.clamp(0.0, 86_400.0) * 1e9) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_matches_spec() {
        let h = HybridSize::surge_scaled(1.0).unwrap();
        assert!((h.split_z - 1.852).abs() < 0.002, "{}", h.split_z);
        assert!((h.tail_probability() - 0.032).abs() < 0.001, "{}", h.tail_probability());
    }

    #[test]
    fn content_mix_tracks_request_shares() {
        let m = SurgeModel::surge("/t", 100, 1.0, 1);
        let c = m.generate().unwrap();
        let total: f64 = c.objects.iter().map(|o| o.weight).sum();
        let gif: f64 = c.objects.iter().filter(|o| o.content_type == ContentType::Gif).map(|o| o.weight).sum();
        assert!((gif / total - 0.408).abs() < 0.03, "gif share {}", gif / total);
        assert!(c.objects[0].path.starts_with("/t/obj000."));
        assert!(c.objects.iter().all(|o| o.path.ends_with(extension(o.content_type))));
    }

    #[test]
    fn surge_user_pages_and_think_times() {
        let c = SurgeModel::surge("/t", 100, 1.0, 1).generate().unwrap();
        let steps: Vec<_> = SurgeUser::new(&c, SurgeUserParams::default(), 9).unwrap().take(20_000).collect();
        let pages = steps.iter().filter(|s| s.page_start).count();
        // floor(Pareto(1, 2.43)) has mean about 1.2 objects per page.
        let per_page = steps.len() as f64 / pages as f64;
        assert!((1.05..1.6).contains(&per_page), "{per_page}");
        let active: Vec<f64> = steps.iter().filter(|s| !s.page_start).map(|s| s.think_ns as f64 / 1e9).collect();
        let mean_active = active.iter().sum::<f64>() / active.len() as f64;
        assert!((mean_active - 0.346).abs() < 0.03, "active OFF mean {mean_active}");
        assert!(steps.iter().filter(|s| s.page_start).skip(1).all(|s| s.think_ns >= 1_000_000_000));
    }
}
