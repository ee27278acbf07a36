//! Per-interval figures, `timeseries.csv`: one [`Recorder`] that both
//! engines feed with what their clients saw (the simulator on its clock, the
//! load generator on its own), and the [`IntervalRow`] it becomes.
//!
//! Intervals lie on a grid of `interval` seconds from the start of the
//! measured window (`t_s` = 0): interval `k` covers `[k * interval,
//! (k + 1) * interval)`, clipped to what was observed, so warm-up intervals
//! have negative `t_s` and the first and last may be shorter (their rates
//! are over the part observed). An interval in which nothing completed is
//! still written, with zeros: a quiet stretch of a replayed log is a result.
//!
//! Each figure is of the responses the clients received in the interval,
//! by the instant they completed: `hit_ratio` is the share of them that
//! their owner served from its cache (the simulator knows it; real nodes
//! say it in `X-Cache`), `errors` the failed ones, `p99_ms` their 99th
//! percentile latency (2 significant digits). A timeline of other events
//! (faults, membership changes) is drawn over these rows, not stored in them.
//!
//! Pure: times are numbers the caller gives, nanoseconds from the start of
//! the measured window.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::eviction::Eviction;
use crate::ResultRow;

/// One interval's figures, without the run's keys (what a load generator reports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Start of the interval (of its observed part), seconds from the start of the measured window.
    pub t_s: f64,
    /// Responses completed per second.
    pub req_per_s: f64,
    /// Response payload, Mbit/s (10^6 bits).
    pub mbit_per_s: f64,
    /// Share of the completed responses served from the owner's cache.
    pub hit_ratio: f64,
    /// Failed or unverified responses.
    pub errors: u64,
    /// 99th percentile latency of the completed responses, ms (0 when none).
    pub p99_ms: f64,
}

/// One `timeseries.csv` row: a run's keys (as in `results.csv`) and one interval.
/// Field order is the column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalRow {
    pub mode: String,
    pub workload: String,
    pub arch: String,
    pub policy: String,
    /// As in `results.csv`: files written before the column read as `lru`.
    #[serde(default)]
    pub eviction: Eviction,
    pub servers: u32,
    pub seed: u64,
    pub t_s: f64,
    pub req_per_s: f64,
    pub mbit_per_s: f64,
    pub hit_ratio: f64,
    pub errors: u64,
    pub p99_ms: f64,
}

impl IntervalRow {
    /// The CSV header, in column order.
    pub const COLUMNS: &'static [&'static str] = &[
        "mode",
        "workload",
        "arch",
        "policy",
        "eviction",
        "servers",
        "seed",
        "t_s",
        "req_per_s",
        "mbit_per_s",
        "hit_ratio",
        "errors",
        "p99_ms",
    ];

    /// Columns that files written before them lack: such files are still
    /// read, `eviction` as `lru`.
    pub const OPTIONAL: &'static [&'static str] = &["eviction"];

    /// The row of interval `i` of the run whose result row is `run`.
    pub fn new(run: &ResultRow, i: &Interval) -> Self {
        IntervalRow {
            mode: run.mode.clone(),
            workload: run.workload.clone(),
            arch: run.arch.clone(),
            policy: run.policy.clone(),
            eviction: run.eviction,
            servers: run.servers,
            seed: run.seed,
            t_s: i.t_s,
            req_per_s: i.req_per_s,
            mbit_per_s: i.mbit_per_s,
            hit_ratio: i.hit_ratio,
            errors: i.errors,
            p99_ms: i.p99_ms,
        }
    }

    /// True when this row is of the run whose result row is `run`.
    pub fn of_run(&self, run: &ResultRow) -> bool {
        self.mode == run.mode
            && self.workload == run.workload
            && self.arch == run.arch
            && self.policy == run.policy
            // Runs of two evictions share their seed (the same request streams).
            && self.eviction == run.eviction
            && self.servers == run.servers
            && self.seed == run.seed
    }
}

/// Latency histograms kept per recorder: the latest intervals only. A
/// completion recorded after its interval has left them (its recorder saw
/// completions [`OPEN`] intervals later first) still counts in the
/// interval's figures but not in its `p99_ms`; in time order, as the
/// simulator records, that never happens.
const OPEN: usize = 4;

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    completed: u64,
    bytes: u64,
    hits: u64,
    errors: u64,
    p99_us: u64,
}

/// Accumulates completions and failures by interval.
#[derive(Debug)]
pub struct Recorder {
    interval_ns: u64,
    /// The first instant observed (<= 0 with a warm-up).
    begin_ns: i64,
    /// Grid index of `counts[0]`.
    first: i64,
    counts: Vec<Counts>,
    /// Histograms of the latest intervals by grid index, ascending.
    open: Vec<(i64, Histogram<u64>)>,
    /// Histograms of closed intervals, reset, for reuse.
    spare: Vec<Histogram<u64>>,
    /// The latest instant recorded.
    last_ns: i64,
}

/// How far below its value before a fault the hit ratio may be and still
/// count as refilled: one point.
pub const REFILL_TOLERANCE: f64 = 0.01;

/// `refill_s` of a run whose first fault came `fault_s` seconds into the
/// window, from its `interval_s`-long intervals: the seconds from the fault
/// to the end of the first interval, after the hit ratio fell more than one
/// point below its value before the fault (the request-weighted mean of the
/// whole intervals before it), in which it is back within one point; 0 if
/// it never fell that far; `None` if it never came back, or if no whole
/// interval precedes the fault to compare with. An interval without a
/// completed response counts as fallen.
pub fn refill_s(intervals: &[Interval], interval_s: f64, fault_s: f64) -> Option<f64> {
    let before: Vec<&Interval> =
        intervals.iter().filter(|i| i.t_s >= 0.0 && i.t_s + interval_s <= fault_s + 1e-9).collect();
    let weight: f64 = before.iter().map(|i| i.req_per_s).sum();
    if weight <= 0.0 {
        return None;
    }
    let baseline = before.iter().map(|i| i.hit_ratio * i.req_per_s).sum::<f64>() / weight;
    let ok = |i: &Interval| i.req_per_s > 0.0 && i.hit_ratio >= baseline - REFILL_TOLERANCE;
    let mut after = intervals.iter().filter(|i| i.t_s + 1e-9 >= fault_s);
    if after.by_ref().find(|i| !ok(i)).is_none() {
        return Some(0.0);
    }
    after.find(|i| ok(i)).map(|i| i.t_s + interval_s - fault_s)
}

impl Recorder {
    /// A recorder of `interval_ns`-long intervals (at least 1 ns) observing
    /// from `begin_ns` (negative: the warm-up's start).
    pub fn new(interval_ns: u64, begin_ns: i64) -> Self {
        let interval_ns = interval_ns.max(1);
        Recorder {
            interval_ns,
            begin_ns,
            first: begin_ns.div_euclid(interval_ns as i64),
            counts: Vec::new(),
            open: Vec::new(),
            spare: Vec::new(),
            last_ns: begin_ns,
        }
    }

    /// A response completed at `at_ns` with `bytes` of payload after
    /// `latency_us`; `hit` when its owner served it from its cache.
    pub fn completed(&mut self, at_ns: i64, bytes: u64, latency_us: u64, hit: bool) {
        let k = self.index(at_ns);
        let c = self.counts_mut(k);
        c.completed += 1;
        c.bytes += bytes;
        c.hits += u64::from(hit);
        if let Some(h) = self.histogram(k) {
            h.saturating_record(latency_us.max(1));
        }
    }

    /// A request failed (or its response did not verify) at `at_ns`.
    pub fn failed(&mut self, at_ns: i64) {
        let k = self.index(at_ns);
        self.counts_mut(k).errors += 1;
    }

    /// Every interval from the first observed to the one holding `end_ns`
    /// (exclusive; at least past the latest instant recorded), in order.
    pub fn finish(mut self, end_ns: i64) -> Vec<Interval> {
        while !self.open.is_empty() {
            self.close_oldest();
        }
        let end = end_ns.max(self.last_ns + 1).max(self.begin_ns + 1);
        let step = self.interval_ns as i64;
        let last = (end - 1).div_euclid(step);
        (self.first..=last)
            .map(|k| {
                let c = self.counts.get((k - self.first) as usize).copied().unwrap_or_default();
                let from = (k * step).max(self.begin_ns);
                let span_s = ((k + 1) * step).min(end).saturating_sub(from) as f64 / 1e9;
                Interval {
                    t_s: from as f64 / 1e9,
                    req_per_s: c.completed as f64 / span_s,
                    mbit_per_s: c.bytes as f64 * 8.0 / 1e6 / span_s,
                    hit_ratio: if c.completed == 0 { 0.0 } else { c.hits as f64 / c.completed as f64 },
                    errors: c.errors,
                    p99_ms: c.p99_us as f64 / 1000.0,
                }
            })
            .collect()
    }

    /// The grid index of instant `at_ns` (instants before the first observed count in the first interval).
    fn index(&mut self, at_ns: i64) -> i64 {
        let at = at_ns.max(self.begin_ns);
        self.last_ns = self.last_ns.max(at);
        at.div_euclid(self.interval_ns as i64)
    }

    fn counts_mut(&mut self, k: i64) -> &mut Counts {
        let i = (k - self.first) as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, Counts::default());
        }
        &mut self.counts[i]
    }

    /// The histogram of interval `k`, opened if it is among the latest [`OPEN`];
    /// `None` when it has been closed.
    fn histogram(&mut self, k: i64) -> Option<&mut Histogram<u64>> {
        // Nearly every completion falls in the newest interval.
        if self.open.last().is_some_and(|(i, _)| *i == k) {
            return self.open.last_mut().map(|(_, h)| h);
        }
        let newest = self.open.last().map_or(i64::MIN, |(i, _)| *i);
        if k <= newest.saturating_sub(OPEN as i64) {
            return None;
        }
        let at = match self.open.binary_search_by_key(&k, |(i, _)| *i) {
            Ok(at) => at,
            Err(at) => {
                let h = self.spare.pop().unwrap_or_else(|| {
                    // 1 us to 1 hour at 2 significant digits: about 26 kB each.
                    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
                });
                self.open.insert(at, (k, h));
                let newest = self.open.last().expect("just inserted").0;
                let mut at = at;
                while self.open.first().is_some_and(|(i, _)| *i <= newest - OPEN as i64) {
                    self.close_oldest();
                    at -= 1;
                }
                at
            }
        };
        Some(&mut self.open[at].1)
    }

    fn close_oldest(&mut self) {
        let (k, mut h) = self.open.remove(0);
        if !h.is_empty() {
            let p99 = h.value_at_quantile(0.99);
            self.counts_mut(k).p99_us = p99;
        }
        h.reset();
        self.spare.push(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn intervals_cover_the_observed_span_with_rates_over_their_observed_part() {
        // Warm-up of 0.5 s, 1 s intervals, measured until 2.25 s.
        let mut r = Recorder::new(S as u64, -S / 2);
        r.completed(-S / 4, 1000, 500, false);
        r.completed(S / 10, 125_000, 2_000, true);
        r.completed(S / 5, 125_000, 4_000, false);
        r.failed(S + 1);
        r.completed(2 * S + 1, 10, 10, true);
        let iv = r.finish(2 * S + S / 4);
        let t: Vec<f64> = iv.iter().map(|i| i.t_s).collect();
        assert_eq!(t, [-0.5, 0.0, 1.0, 2.0]);
        assert_eq!(iv[0].req_per_s, 2.0, "one response in the half second observed");
        assert_eq!((iv[1].req_per_s, iv[1].mbit_per_s, iv[1].hit_ratio), (2.0, 2.0, 0.5));
        assert!((iv[1].p99_ms - 4.0).abs() < 0.05, "{}", iv[1].p99_ms);
        assert_eq!((iv[2].req_per_s, iv[2].errors, iv[2].p99_ms), (0.0, 1, 0.0), "a quiet interval is written");
        assert_eq!(iv[3].req_per_s, 4.0, "a quarter second observed");
    }

    #[test]
    fn a_late_completion_counts_but_leaves_the_closed_p99_alone() {
        let mut r = Recorder::new(S as u64, 0);
        r.completed(0, 1, 1_000, false);
        for k in 1..=OPEN as i64 {
            r.completed(k * S, 1, 1_000, false);
        }
        // Interval 0 is closed now: a latency of 1 s arriving late is not in its p99.
        r.completed(S / 2, 1, 1_000_000, false);
        // Interval 1 is still open.
        r.completed(S + S / 2, 1, 1_000_000, false);
        let iv = r.finish(0);
        assert_eq!(iv.len(), OPEN + 1, "up to the latest instant recorded");
        assert_eq!(iv[0].req_per_s, 2.0);
        assert!(iv[0].p99_ms < 2.0 && iv[1].p99_ms > 900.0, "{} {}", iv[0].p99_ms, iv[1].p99_ms);
    }

    #[test]
    fn refill_is_the_time_until_the_hit_ratio_is_back_within_a_point() {
        let iv = |t_s: f64, hit_ratio: f64| Interval {
            t_s,
            req_per_s: 100.0,
            mbit_per_s: 1.0,
            hit_ratio,
            errors: 0,
            p99_ms: 1.0,
        };
        let run =
            [iv(-1.0, 0.2), iv(0.0, 0.9), iv(1.0, 0.9), iv(2.0, 0.6), iv(3.0, 0.85), iv(4.0, 0.895), iv(5.0, 0.7)];
        // Baseline 0.9 from [0, 2); fallen at 2, still below at 3, back (0.895 >= 0.89) in [4, 5).
        assert_eq!(refill_s(&run, 1.0, 2.0), Some(3.0));
        assert_eq!(refill_s(&run[..6], 1.0, 4.0), Some(0.0), "never fell a point");
        assert_eq!(refill_s(&run[..5], 1.0, 2.0), None, "never back");
        assert_eq!(refill_s(&run, 1.0, 0.0), None, "nothing before the fault");
    }

    #[test]
    fn rows_carry_the_run_keys_in_the_documented_column_order() {
        let run = ResultRow {
            workload: "w".into(),
            arch: "distributed".into(),
            policy: "md5".into(),
            eviction: Eviction::Lru,
            servers: 4,
            seed: 9,
            req_per_s: 0.0,
            mbit_per_s: 0.0,
            hit_ratio: 0.0,
            byte_hit_ratio: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            fe_cpu_util: 0.0,
            fe_nic_util: 0.0,
            max_server_cpu_util: 0.0,
            max_server_nic_util: 0.0,
            imbalance: 0.0,
            forwarded_frac: 0.0,
            cache_bytes: 0,
            requests: 0,
            mode: "sim".into(),
            errors: 0,
            replayed: 0,
            dropped: 0,
            moved_frac: None,
            refill_s: None,
        };
        let iv = Recorder::new(S as u64, 0).finish(S);
        let row = IntervalRow::new(&run, &iv[0]);
        assert!(row.of_run(&run) && !row.of_run(&ResultRow { seed: 8, ..run.clone() }));
        assert!(!row.of_run(&ResultRow { eviction: Eviction::Sieve, ..run.clone() }), "same seed, other eviction");
        // The names external checks rely on, pinned as written; the CSV writer's
        // header is held to COLUMNS wherever a file is read back (`dl7 merge`, `dl7 plot`).
        let names = [
            "mode",
            "workload",
            "arch",
            "policy",
            "eviction",
            "servers",
            "seed",
            "t_s",
            "req_per_s",
            "mbit_per_s",
            "hit_ratio",
            "errors",
            "p99_ms",
        ];
        assert_eq!(IntervalRow::COLUMNS, names);
    }
}
