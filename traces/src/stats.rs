//! Summary statistics of a trace or a model workload: what `dl7 trace stats`
//! prints. Everything is computed from per-object request counts (a trace)
//! or weights (a model), so it costs memory in the catalog, not the log.
//!
//! This module computes; it must not print or read files.

use serde::Serialize;

use crate::catalog::{Catalog, ContentType};
use crate::error::TraceError;
use crate::trace::Trace;

/// The statistics `dl7 trace stats` prints; the JSON keys are these field names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceStats {
    /// Requests counted (0 when computed from model weights).
    pub requests: u64,
    /// Objects requested at least once (or with weight > 0).
    pub unique_objects: u64,
    /// Bytes of one copy of each of those objects.
    pub unique_bytes: u64,
    /// Per-request mean response size.
    pub mean_bytes: f64,
    /// Per-request median response size.
    pub median_bytes: u64,
    /// Per-request 90th percentile response size.
    pub p90_bytes: u64,
    /// Per-request 99th percentile response size.
    pub p99_bytes: u64,
    /// Share of requests to the 10 most requested objects.
    pub top10_share: f64,
    /// Share of requests to the 100 most requested objects.
    pub top100_share: f64,
    /// Zipf exponent: minus the least-squares slope of ln(count) on ln(rank), ranks 1-100.
    pub zipf_exponent: f64,
    /// Share of requests to images (gif, jpeg, png).
    pub image_share: f64,
    /// Share of requests to HTML.
    pub html_share: f64,
}

impl TraceStats {
    /// From the catalog's weights: the exact expectation of independent draws.
    pub fn from_weights(catalog: &Catalog) -> TraceStats {
        let weights: Vec<f64> = catalog.objects.iter().map(|o| o.weight.max(0.0)).collect();
        Self::compute(catalog, &weights, 0)
    }

    /// From `counts[i]` requests to object `i`.
    pub fn from_counts(catalog: &Catalog, counts: &[u64]) -> TraceStats {
        let weights: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        Self::compute(catalog, &weights, counts.iter().sum())
    }

    /// From a trace's requests; a trace without requests (a model catalog) uses weights.
    pub fn from_trace(trace: &Trace) -> TraceStats {
        if trace.requests.is_empty() {
            return Self::from_weights(&trace.catalog);
        }
        let mut counts = vec![0u64; trace.catalog.len()];
        for id in &trace.requests {
            if let Some(c) = counts.get_mut(id.index()) {
                *c += 1;
            }
        }
        Self::from_counts(&trace.catalog, &counts)
    }

    /// From an import: its requests, or its catalog's counts when the
    /// import did not keep the sequence.
    pub fn from_imported(imported: &crate::import::Imported) -> TraceStats {
        if imported.trace.requests.is_empty() && imported.report.requests > 0 {
            let counts: Vec<u64> = imported.trace.catalog.objects.iter().map(|o| o.weight as u64).collect();
            return Self::from_counts(&imported.trace.catalog, &counts);
        }
        Self::from_trace(&imported.trace)
    }

    /// From `n` requests of the seeded independent stream over `catalog`.
    pub fn from_stream(catalog: &Catalog, seed: u64, n: u64) -> Result<TraceStats, TraceError> {
        let mut counts = vec![0u64; catalog.len()];
        let mut stream = catalog.stream(seed)?;
        for _ in 0..n {
            counts[stream.next_id().index()] += 1;
        }
        Ok(Self::from_counts(catalog, &counts))
    }

    fn compute(catalog: &Catalog, weights: &[f64], requests: u64) -> TraceStats {
        let live: Vec<(u64, f64, ContentType)> = catalog
            .objects
            .iter()
            .zip(weights)
            .filter(|(_, &w)| w > 0.0)
            .map(|(o, &w)| (o.size, w, o.content_type))
            .collect();
        let total: f64 = live.iter().map(|l| l.1).sum();
        // `+ 0.0`: an empty f64 sum is -0.0, which would print as "-0".
        let share = |pred: fn(ContentType) -> bool| {
            if total > 0.0 {
                (live.iter().filter(|l| pred(l.2)).map(|l| l.1).sum::<f64>() + 0.0) / total
            } else {
                0.0
            }
        };
        let mut by_size: Vec<(u64, f64)> = live.iter().map(|l| (l.0, l.1)).collect();
        by_size.sort_by_key(|l| l.0);
        let quantile = |q: f64| -> u64 {
            let mut cum = 0.0;
            for &(size, w) in &by_size {
                cum += w;
                // Tolerance: float sums of weights must not skip the exact boundary.
                if cum >= q * total * (1.0 - 1e-12) {
                    return size;
                }
            }
            by_size.last().map_or(0, |l| l.0)
        };
        let mut ranked: Vec<f64> = live.iter().map(|l| l.1).collect();
        ranked.sort_by(|a, b| b.total_cmp(a));
        let top = |k: usize| if total > 0.0 { ranked.iter().take(k).sum::<f64>() / total } else { 0.0 };
        TraceStats {
            requests,
            unique_objects: live.len() as u64,
            unique_bytes: live.iter().map(|l| l.0).sum(),
            mean_bytes: if total > 0.0 { live.iter().map(|l| l.0 as f64 * l.1).sum::<f64>() / total } else { 0.0 },
            median_bytes: quantile(0.5),
            p90_bytes: quantile(0.9),
            p99_bytes: quantile(0.99),
            top10_share: top(10),
            top100_share: top(100),
            zipf_exponent: zipf_fit(&ranked[..ranked.len().min(100)]),
            image_share: share(ContentType::is_image),
            html_share: share(|t| t == ContentType::Html),
        }
    }
}

/// Minus the least-squares slope of ln(value) on ln(rank) for values sorted
/// descending; 0 with fewer than two points.
pub fn zipf_fit(sorted_desc: &[f64]) -> f64 {
    let points: Vec<(f64, f64)> = sorted_desc
        .iter()
        .enumerate()
        .filter(|(_, &v)| v > 0.0)
        .map(|(i, &v)| (((i + 1) as f64).ln(), v.ln()))
        .collect();
    if points.len() < 2 {
        return 0.0;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    // `0.0 -` rather than unary minus: a flat fit gives 0, not -0.
    0.0 - sxy / sxx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Object, ObjectId};

    fn catalog(sizes: &[u64], weights: &[f64]) -> Catalog {
        Catalog {
            objects: sizes
                .iter()
                .zip(weights)
                .enumerate()
                .map(|(i, (&s, &w))| Object {
                    id: ObjectId(i as u32),
                    path: format!("/o{i}.gif"),
                    size: s,
                    content_type: if i == 0 { ContentType::Html } else { ContentType::Gif },
                    weight: w,
                })
                .collect(),
        }
    }

    #[test]
    fn zipf_fit_recovers_exponent() {
        for a in [0.6, 0.75, 1.0] {
            let w: Vec<f64> = (1..=100).map(|r| (r as f64).powf(-a)).collect();
            assert!((zipf_fit(&w) - a).abs() < 1e-9);
        }
    }

    #[test]
    fn weighted_quantiles_and_shares() {
        let c = catalog(&[100, 200, 300, 400], &[1.0, 1.0, 1.0, 7.0]);
        let s = TraceStats::from_weights(&c);
        assert_eq!((s.median_bytes, s.p90_bytes, s.p99_bytes), (400, 400, 400));
        assert_eq!(s.unique_bytes, 1000);
        assert!((s.mean_bytes - 340.0).abs() < 1e-9);
        assert!((s.html_share - 0.1).abs() < 1e-12 && (s.image_share - 0.9).abs() < 1e-12);
        let s = TraceStats::from_counts(&c, &[5, 3, 2, 0]);
        assert_eq!((s.requests, s.unique_objects, s.unique_bytes), (10, 3, 600));
        assert_eq!((s.median_bytes, s.p90_bytes), (100, 300));
        assert!((s.top10_share - 1.0).abs() < 1e-12);
    }

    #[test]
    fn stream_stats_approach_weight_stats() {
        let c = crate::workload::builtin("surge100").unwrap();
        let exact = TraceStats::from_weights(&c);
        let drawn = TraceStats::from_stream(&c, 3, 200_000).unwrap();
        assert_eq!(drawn.requests, 200_000);
        assert!((drawn.top10_share - exact.top10_share).abs() < 0.01);
        assert!((drawn.mean_bytes - exact.mean_bytes).abs() / exact.mean_bytes < 0.05);
    }
}
