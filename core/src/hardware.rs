//! The hardware profile: link rates, TCP framing and the CPU cost of every
//! operation on every kind of host, read strictly from TOML. It holds numbers
//! only; what the numbers mean for a request is decided in `crate::model`.
//!
//! Costs are split into per-request, per-frame and per-byte parts so that a
//! workload with a different size distribution is predicted by the same
//! physics rather than by a refit. It lives in the core because both engines
//! need it: the simulator for its model, the real nodes for their emulated
//! CPU ([`crate::costs`] turns it into per-step costs for both).

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Source};

/// The profile embedded from `experiments/hardware/kwon2008.toml`.
const KWON2008: &str = include_str!("../../experiments/hardware/kwon2008.toml");
/// The profile embedded from `experiments/hardware/lab10mbit.toml`.
const LAB10MBIT: &str = include_str!("../../experiments/hardware/lab10mbit.toml");
/// The profile embedded from `experiments/hardware/modern.toml`.
const MODERN: &str = include_str!("../../experiments/hardware/modern.toml");

/// Names of the built-in profiles, for messages.
pub const BUILTIN: &[&str] = &["kwon2008", "lab10mbit", "modern"];

/// A hardware profile (see `experiments/hardware/kwon2008.toml` for every
/// field's physical meaning and how its value was chosen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardware {
    pub network: Network,
    pub front_end: FrontEnd,
    pub server: Server,
    pub origin: Origin,
}

/// The switched Ethernet and the TCP/HTTP framing on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Link rate of every host's NIC, each direction, 10^6 bit/s.
    pub link_mbit_per_s: f64,
    /// TCP payload bytes per full frame.
    pub mss_bytes: u32,
    /// Wire bytes per frame beyond its TCP payload (headers, FCS, preamble, gap).
    pub frame_overhead_bytes: u32,
    /// Wire bytes of the smallest frame (a bare ACK), preamble and gap included.
    pub min_frame_wire_bytes: u32,
    /// The receiver acknowledges every this many data frames.
    pub ack_every_frames: u32,
    /// Frames without payload the client side of a connection sends (SYN, ACK, FIN, ACK).
    pub requester_control_frames: u32,
    /// Frames without payload the server side of a connection sends (SYN-ACK, ACK, FIN).
    pub responder_control_frames: u32,
    /// HTTP request bytes (request line and headers).
    pub http_request_bytes: u32,
    /// HTTP response header bytes added to every body.
    pub http_response_header_bytes: u32,
}

/// The front-end balancer (KTCPVS in conventional runs, IPVS-DR in distributed ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontEnd {
    /// CPU per frame sent or received at a TCP endpoint (interrupt, driver, TCP/IP), microseconds.
    pub frame_us: f64,
    /// CPU per byte copied between socket buffers, nanoseconds.
    pub copy_ns_per_byte: f64,
    /// CPU per TCP connection opened or accepted and closed, microseconds.
    pub conn_us: f64,
    /// KTCPVS: parse the HTTP request and pick the server, microseconds.
    pub l7_parse_us: f64,
    /// IPVS-DR: forward one frame (lookup, rewrite MAC, transmit), microseconds.
    pub l4_frame_us: f64,
}

/// A cache server (Squid, the distiller and, in distributed runs, KTCPVS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// CPU per frame sent or received at a TCP endpoint, microseconds.
    pub frame_us: f64,
    /// CPU per byte copied between user and kernel or socket buffers, nanoseconds.
    pub copy_ns_per_byte: f64,
    /// CPU per TCP connection opened or accepted and closed, microseconds.
    pub conn_us: f64,
    /// Squid: parse, look up, build headers, log one request, microseconds.
    pub squid_request_us: f64,
    /// Squid's poll() over its open connections, per connection per request
    /// served, nanoseconds (Squid 2.x on Linux 2.4 has no epoll).
    pub poll_ns_per_conn: f64,
    /// KTCPVS on the server: parse the request and pick the owner, microseconds.
    pub l7_parse_us: f64,
    /// Squid: extra work of a miss (origin request, store), microseconds.
    pub miss_us: f64,
    /// Distiller: CPU per byte of an image object on a miss, nanoseconds.
    pub distill_ns_per_byte: f64,
    /// Cache capacity per server, bytes.
    pub cache_bytes: u64,
}

/// Share of a cache its largest stored object may take unless an experiment
/// says otherwise (`run.max_object_mb`), as Squid's `maximum_object_size`
/// keeps big objects from flushing a cache: an eighth, so that a cache holds
/// at least eight of its largest objects.
pub const MAX_OBJECT_SHARE: u64 = 8;

/// The largest object a cache of `cache_bytes` stores by default.
pub fn default_max_object_bytes(cache_bytes: u64) -> u64 {
    cache_bytes / MAX_OBJECT_SHARE
}

/// The origin web server (Apache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// CPU per frame sent or received, microseconds.
    pub frame_us: f64,
    /// CPU per byte copied, nanoseconds.
    pub copy_ns_per_byte: f64,
    /// CPU per TCP connection, microseconds.
    pub conn_us: f64,
    /// Apache: per request work for a static file, microseconds.
    pub request_us: f64,
}

impl Hardware {
    /// Parses a profile; `origin` names the file in errors, which give the
    /// line, column and the offending key.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let src = Source::new(text, origin);
        let hw: Hardware = src.parse()?;
        hw.validate().map_err(|(key, expected)| src.whole(format!("{key}: expected {expected}")))?;
        Ok(hw)
    }

    /// The paper's testbed (Kwon et al. 2008), from the embedded
    /// `experiments/hardware/kwon2008.toml`.
    pub fn kwon2008() -> Self {
        Self::builtin("kwon2008").expect("the embedded kwon2008 profile is valid (checked by a test)")
    }

    /// A profile shipped with dl7, by name (see [`BUILTIN`]).
    pub fn builtin(name: &str) -> Result<Self, ConfigError> {
        let (text, origin) = match name {
            "kwon2008" => (KWON2008, "experiments/hardware/kwon2008.toml"),
            "lab10mbit" => (LAB10MBIT, "experiments/hardware/lab10mbit.toml"),
            "modern" => (MODERN, "experiments/hardware/modern.toml"),
            other => {
                return Err(ConfigError(format!(
                    "unknown built-in hardware profile {other:?}, expected one of {} or a path to a profile file",
                    BUILTIN.join(", ")
                )))
            }
        };
        Self::from_toml_str(text, origin)
    }

    fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let positive = "a finite number > 0";
        let non_negative = "a finite number >= 0";
        let pos = |v: f64, key| if v.is_finite() && v > 0.0 { Ok(()) } else { Err((key, positive)) };
        let nonneg = |v: f64, key| if v.is_finite() && v >= 0.0 { Ok(()) } else { Err((key, non_negative)) };
        let n = &self.network;
        pos(n.link_mbit_per_s, "network.link_mbit_per_s")?;
        if n.mss_bytes == 0 {
            return Err(("network.mss_bytes", "an integer > 0"));
        }
        if n.ack_every_frames == 0 {
            return Err(("network.ack_every_frames", "an integer > 0"));
        }
        if n.min_frame_wire_bytes == 0 {
            return Err(("network.min_frame_wire_bytes", "an integer > 0"));
        }
        let f = &self.front_end;
        nonneg(f.frame_us, "front_end.frame_us")?;
        nonneg(f.copy_ns_per_byte, "front_end.copy_ns_per_byte")?;
        nonneg(f.conn_us, "front_end.conn_us")?;
        nonneg(f.l7_parse_us, "front_end.l7_parse_us")?;
        nonneg(f.l4_frame_us, "front_end.l4_frame_us")?;
        let s = &self.server;
        nonneg(s.frame_us, "server.frame_us")?;
        nonneg(s.copy_ns_per_byte, "server.copy_ns_per_byte")?;
        nonneg(s.conn_us, "server.conn_us")?;
        nonneg(s.squid_request_us, "server.squid_request_us")?;
        nonneg(s.l7_parse_us, "server.l7_parse_us")?;
        nonneg(s.poll_ns_per_conn, "server.poll_ns_per_conn")?;
        nonneg(s.miss_us, "server.miss_us")?;
        nonneg(s.distill_ns_per_byte, "server.distill_ns_per_byte")?;
        let o = &self.origin;
        nonneg(o.frame_us, "origin.frame_us")?;
        nonneg(o.copy_ns_per_byte, "origin.copy_ns_per_byte")?;
        nonneg(o.conn_us, "origin.conn_us")?;
        nonneg(o.request_us, "origin.request_us")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_profiles_parse() {
        assert_eq!(Hardware::kwon2008().network.link_mbit_per_s, 100.0);
        assert_eq!(Hardware::builtin("lab10mbit").unwrap().network.link_mbit_per_s, 10.0);
        assert_eq!(Hardware::builtin("modern").unwrap().network.link_mbit_per_s, 25000.0);
        assert!(Hardware::builtin("cray").unwrap_err().0.contains("kwon2008, lab10mbit, modern"));
    }

    #[test]
    fn an_unknown_key_names_the_file_line_and_key() {
        let text = KWON2008.replace("[server]\n", "[server]\nturbo = 2\n");
        let err = Hardware::from_toml_str(&text, "hw.toml").unwrap_err().to_string();
        assert!(err.starts_with("hw.toml:"), "{err}");
        assert!(err.contains("`server.turbo`"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_bad_value_names_the_key_and_what_was_expected() {
        let text = KWON2008.replace("link_mbit_per_s = 100.0", "link_mbit_per_s = -1.0");
        let err = Hardware::from_toml_str(&text, "hw.toml").unwrap_err().to_string();
        assert_eq!(err, "hw.toml: network.link_mbit_per_s: expected a finite number > 0");
    }
}
