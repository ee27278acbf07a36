//! `ketama`: the nginx-exact consistent ring (`hash $request_uri consistent`,
//! also Pingora's `Consistent`), so that dl7 places URLs exactly where a real
//! nginx front end would.
//!
//! Build, as `ngx_http_upstream_init_chash` does: a server name `host:port`
//! is split at its last `:` when the part after it is all digits (otherwise
//! the port is nginx's default `80`); `base = crc32(host ++ "\0" ++ port)`
//! left *unfinalised*; a server of weight `w` gets `160 * w` points (`w` is
//! rounded, at least one point), `point_j = crc32(base continued with the
//! previous point as 4 little-endian bytes)`, the previous point starting at
//! 0. Points are sorted and equal points deduplicated (the lower server index
//! keeps a duplicate; nginx's `qsort` leaves this unspecified).
//! Lookup: `crc32(url)`, first point `>= hash`, wrapping.
//!
//! `candidates` is the clockwise walk over distinct servers.

use super::ring::{SortedRing, MAX_RING_POINTS};
use super::{Policy, PolicyKind, State};
use crate::{LoadView, Membership, PolicyError, RequestKey, ServerId};

/// Points per unit of weight, as in nginx and libketama.
pub const POINTS_PER_WEIGHT: f64 = 160.0;

/// The nginx ketama ring. Points are stored shifted into the high half of a
/// u64 so the shared [`SortedRing`] lookup gives nginx's u32 comparison.
#[derive(Debug, Clone)]
pub struct Ketama {
    ring: SortedRing,
    servers: usize,
}

/// Splits `host:port` as nginx does; the default port is `80`.
fn split_host_port(name: &str) -> (&str, &str) {
    if let Some((host, port)) = name.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return (host, port);
        }
    }
    (name, "80")
}

/// The points nginx computes for one server of `points` points.
pub fn server_points(name: &str, points: usize) -> impl Iterator<Item = u32> {
    let (host, port) = split_host_port(name);
    let mut base = crc32fast::Hasher::new();
    base.update(host.as_bytes());
    base.update(b"\0");
    base.update(port.as_bytes());
    let mut prev = 0u32;
    (0..points).map(move |_| {
        let mut h = base.clone();
        h.update(&prev.to_le_bytes());
        prev = h.finalize();
        prev
    })
}

impl Ketama {
    /// Builds the ring; a weight so large that the ring would exceed
    /// [`MAX_RING_POINTS`] is an error naming the server.
    pub fn new(members: &Membership) -> Result<Self, PolicyError> {
        let mut pairs = Vec::new();
        for (i, s) in members.servers().iter().enumerate() {
            let points = (POINTS_PER_WEIGHT * s.weight).round().max(1.0);
            if points + pairs.len() as f64 > MAX_RING_POINTS as f64 {
                return Err(PolicyError::BadServer {
                    name: s.name.clone(),
                    reason: format!("weight {} gives more than {MAX_RING_POINTS} ketama points in total", s.weight),
                });
            }
            pairs.extend(server_points(&s.name, points as usize).map(|p| ((p as u64) << 32, i as u32)));
        }
        Ok(Self { ring: SortedRing::new(pairs, true), servers: members.len() })
    }
}

impl Policy for Ketama {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Ketama
    }
    fn state(&self) -> State {
        State::Pure
    }
    fn servers(&self) -> usize {
        self.servers
    }
    #[inline]
    fn pick(&self, key: &RequestKey, _: &dyn LoadView) -> ServerId {
        ServerId(self.ring.owner((key.crc32() as u64) << 32))
    }
    fn walk(&self, key: &RequestKey, _: &dyn LoadView, visit: &mut dyn FnMut(ServerId) -> bool) {
        self.ring.walk((key.crc32() as u64) << 32, self.servers, visit);
    }
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn host_port_split_follows_nginx() {
        assert_eq!(split_host_port("127.0.0.1:7777"), ("127.0.0.1", "7777"));
        assert_eq!(split_host_port("cache-a"), ("cache-a", "80"));
        assert_eq!(split_host_port("[::1]:8080"), ("[::1]", "8080"));
    }
}
