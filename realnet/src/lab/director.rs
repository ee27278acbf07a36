//! The lab's keepalived: while a distributed cell runs behind the kernel
//! front end (the nftables `fwd` map), probe its nodes as every dispatcher
//! does ([`crate::health`], from the root namespace over the bridge) and,
//! when one goes out or comes back, replace the map in place so that the
//! front end stops forwarding new connections to a dead node
//! ([`LabPlan::direct_routing_reroute`]): ldirectord's job on an IPVS box.
//!
//! It only rewrites the rule; the architecture switch between cells stays
//! [`super::set_architecture`]'s.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::LabPlan;
use crate::health::{Health, HealthSpec};
use crate::http::wait_true;

/// Watches the first `nodes.len()` nodes of `plan` until `stop` turns true.
/// Returns the health it kept (for counters), once the probes are running.
pub fn spawn(plan: LabPlan, nodes: Vec<SocketAddr>, spec: HealthSpec, mut stop: watch::Receiver<bool>) -> Arc<Health> {
    let health = Health::new(spec, nodes.iter().map(|_| true));
    health.spawn_probes(&nodes, stop.clone());
    let (h, mut changes) = (health.clone(), health.subscribe());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                c = changes.changed() => if c.is_err() { return },
                _ = wait_true(&mut stop) => return,
            }
            let up: Vec<bool> = (0..nodes.len()).map(|i| h.is_up(i)).collect();
            let step = plan.direct_routing_reroute(nodes.len(), &up);
            let applied = tokio::task::spawn_blocking(move || super::exec::run_steps(&[step], &mut |_| {})).await;
            match applied {
                Ok(Ok(())) => tracing::warn!("lab front end: nodes up {up:?}"),
                Ok(Err(e)) => tracing::warn!("lab front end: cannot update the forwarding map: {e}"),
                Err(e) => tracing::warn!("lab front end: {e}"),
            }
        }
    });
    health
}
