//! The relay both the node and the front end use to stream a remote
//! answer (an owner's, a node's) to their client as it arrives.

use crate::http::{Relay, RelayError, ResponseHead, ServerConn, UpstreamBody};
use crate::metrics::Metrics;

/// Streams a remote answer (head from `up`, body from `body`) to the client
/// from the upstream connection's buffer, its end-to-end fields passed on
/// and `via` added. Returns false when the client connection must be
/// closed: the client went away, a 502 with `Connection: close` was sent, or
/// the upstream died after the head was sent (counted in `upstream_aborted`:
/// the client sees the connection close short of its framing, the only way
/// left to tell it).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn relay_remote(
    conn: &mut ServerConn,
    m: &Metrics,
    up: &ResponseHead,
    body: &mut UpstreamBody,
    server: u32,
    keep: bool,
    head_only: bool,
    via: &str,
) -> bool {
    if up.status == 502 {
        Metrics::add(&m.bad_gateway, 1);
    }
    let r = Relay { status: up.status, via, served_by: Some(server), cache: None, keep_alive: keep, head_only };
    // relay_response counts `payload_out` itself, before the write that ends the response.
    match conn.relay_response(body, &r).await {
        Ok(_) => true,
        Err(RelayError::UpstreamBeforeHead(e)) => {
            tracing::debug!("server {server} failed before its body: {e}");
            Metrics::add(&m.bad_gateway, 1);
            let _ = conn.write_error(502).await;
            false
        }
        Err(RelayError::UpstreamAborted(e)) => {
            tracing::debug!("server {server} failed mid-body: {e}");
            Metrics::add(&m.upstream_aborted, 1);
            false
        }
        Err(RelayError::Client(_)) => false,
    }
}
