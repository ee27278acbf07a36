//! The node's emulated CPU: one FIFO server on a virtual timeline, charging
//! the shared cost model ([`dl7_core::costs`]), so that a real node on a fast
//! machine is as busy as the hardware profile it stands for.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use dl7_core::costs::Costs;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// The emulated CPU: one FIFO server on a virtual timeline.
pub(crate) struct Cpu {
    costs: Option<Costs>,
    busy_until: Mutex<Option<Instant>>,
    /// Requests at this node as owner, from lookup to response written (Squid's open connections).
    open: std::sync::atomic::AtomicU64,
    /// Where the modelled busy time is counted (`Metrics::emulated_cpu_ns`).
    metrics: Arc<Metrics>,
}

impl Cpu {
    pub(crate) fn new(costs: Option<Costs>, metrics: Arc<Metrics>) -> Self {
        Cpu { costs, busy_until: Mutex::new(None), open: Default::default(), metrics }
    }

    /// Queues the work `step` prices (nanoseconds, from the cost model)
    /// behind everything queued before and waits until it is done.
    pub(crate) async fn work(&self, step: impl FnOnce(&Costs) -> u64) {
        let Some(costs) = &self.costs else { return };
        let ns = step(costs);
        if ns == 0 {
            return;
        }
        let d = std::time::Duration::from_nanos(ns);
        let done = {
            let mut busy = self.busy_until.lock().expect("cpu lock");
            let now = Instant::now();
            let start = busy.filter(|&b| b > now).unwrap_or(now);
            let done = start + d;
            *busy = Some(done);
            done
        };
        Metrics::add(&self.metrics.emulated_cpu_ns, d.as_nanos() as u64);
        tokio::time::sleep_until(done).await;
    }
}

/// Counts a request open at its owner while alive.
pub(crate) struct Open<'a>(&'a Cpu);

impl<'a> Open<'a> {
    pub(crate) fn enter(cpu: &'a Cpu) -> (Self, u64) {
        let n = cpu.open.fetch_add(1, Relaxed) + 1;
        (Open(cpu), n)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}
