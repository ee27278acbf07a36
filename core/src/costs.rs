//! The one cost model: what each step of a request costs, in nanoseconds of
//! CPU or of wire time, computed from a hardware profile and the object's
//! size. The simulator charges these to its modelled hosts; a real node with
//! an emulated CPU (`[real] emulate_cpu = true`) charges the same steps, from
//! the same function, to its virtual CPU. Nothing else in dl7 turns a
//! profile into costs.
//!
//! One HTTP/1.0 exchange is one TCP connection between a *requester* and a
//! *responder*. Its frames: the request (`ceil(q / MSS)` data frames) with
//! the requester's control frames (SYN, ACK, FIN, ACK), and the response
//! (`ceil(p / MSS)` data frames) with the responder's control frames and the
//! requester's delayed ACKs (one per `ack_every_frames`). Every frame costs
//! wire time on the sender's TX and the receiver's RX, and CPU at both
//! endpoints (`frame_us`); every byte a process or KTCPVS moves between
//! buffers costs `copy_ns_per_byte`; each endpoint pays `conn_us` once.
//! A loopback connection (receiver = owner) costs the connection set-up and
//! the copies but no frames and no wire.

use crate::Hardware;

/// Nanoseconds (of CPU or of wire).
pub type Time = u64;

/// Per-request framing of one TCP exchange.
#[derive(Debug, Clone, Copy)]
struct Exchange {
    /// Frames each endpoint handles in the request half (request data + requester control).
    req_half_frames: f64,
    /// Frames each endpoint handles in the response half (data, ACKs, responder control).
    resp_half_frames: f64,
    /// Response payload bytes (headers + body).
    resp_bytes: f64,
}

/// Wire and CPU costs that depend on the object (its size and type).
#[derive(Debug, Clone, Copy, Default)]
pub struct ObjectCosts {
    /// Response message on the responder's TX and the requester's RX.
    pub resp_wire: Time,
    /// The requester's ACKs for the response, on the reverse direction.
    pub ack_wire: Time,
    /// Conventional front end: receive from the server, send to the client.
    pub fe_relay: Time,
    /// Distributed front end: IPVS forwarding of the client's response ACKs.
    pub fe_l4_acks: Time,
    /// Owner serves a hit to a requester over the network (conventional, or forwarded).
    pub serve_net: Time,
    /// Owner serves a hit to its own KTCPVS over loopback.
    pub serve_local: Time,
    /// Receiver relays a response that came over the network from the owner.
    pub relay_fwd: Time,
    /// Receiver relays a response that came over loopback.
    pub relay_local: Time,
    /// Origin serves a miss.
    pub origin_serve: Time,
    /// Owner receives the origin's response, distills images and stores.
    pub store: Time,
}

/// The object-independent costs of a profile; [`Costs::object`] gives the rest.
#[derive(Debug, Clone)]
pub struct Costs {
    /// Wire time of one full frame: how far a receiver lags its sender when
    /// a message is received frame by frame (cut-through).
    pub frame_wire: Time,
    /// Request message (with the requester's control frames) on TX and RX.
    pub req_wire: Time,
    /// Conventional front end: accept, parse, pick, connect to the server.
    pub fe_parse: Time,
    /// Distributed front end: IPVS forwarding of the request's frames.
    pub fe_l4_req: Time,
    /// Receiver: accept, parse, pick, and connect to a remote owner.
    pub parse_fwd: Time,
    /// Receiver: accept, parse, pick, and connect to itself over loopback.
    pub parse_local: Time,
    /// Owner: the miss itself and the connection to the origin.
    pub miss: Time,
    /// Squid's poll() cost per open connection per request served, ns.
    pub poll_ns_per_conn: f64,
    hw: Hardware,
}

fn ns(us: f64) -> Time {
    (us * 1000.0).round().max(0.0) as Time
}

impl Costs {
    /// The costs of profile `hw`.
    pub fn new(hw: &Hardware) -> Self {
        let net = &hw.network;
        let frames = |bytes: f64| (bytes / net.mss_bytes as f64).ceil().max(1.0);
        let us_per_wire_byte = 8.0 / net.link_mbit_per_s;
        let min_frame = net.min_frame_wire_bytes as f64;
        let wire_us = |payload: f64, control: f64| {
            let f = frames(payload);
            let data = (payload + f * net.frame_overhead_bytes as f64).max(f * min_frame);
            (data + control * min_frame) * us_per_wire_byte
        };
        let q = net.http_request_bytes as f64;
        let req_half_frames = frames(q) + net.requester_control_frames as f64;
        let (fe, s) = (&hw.front_end, &hw.server);
        let requester_req = |frame: f64, copy_ns: f64, conn: f64| conn + req_half_frames * frame + q * copy_ns / 1000.0;
        let responder_req = |frame: f64, conn: f64| conn + req_half_frames * frame;
        let fe_parse = responder_req(fe.frame_us, fe.conn_us)
            + fe.l7_parse_us
            + requester_req(fe.frame_us, fe.copy_ns_per_byte, fe.conn_us);
        let parse_common = responder_req(s.frame_us, s.conn_us) + s.l7_parse_us;
        let parse_fwd = parse_common + requester_req(s.frame_us, s.copy_ns_per_byte, s.conn_us);
        // Loopback: a connection and a copy of the request, no frames.
        let parse_local = parse_common + s.conn_us + q * s.copy_ns_per_byte / 1000.0;
        let miss = s.miss_us + requester_req(s.frame_us, s.copy_ns_per_byte, s.conn_us);
        Costs {
            frame_wire: ns((net.mss_bytes as f64 + net.frame_overhead_bytes as f64) * us_per_wire_byte),
            req_wire: ns(wire_us(q, net.requester_control_frames as f64)),
            fe_parse: ns(fe_parse),
            fe_l4_req: ns(fe.l4_frame_us * req_half_frames),
            parse_fwd: ns(parse_fwd),
            parse_local: ns(parse_local),
            miss: ns(miss),
            poll_ns_per_conn: s.poll_ns_per_conn,
            hw: hw.clone(),
        }
    }

    /// The costs that depend on the object: its body size in bytes and
    /// whether it is an image (the distiller's input).
    pub fn object(&self, body: u64, image: bool) -> ObjectCosts {
        let hw = &self.hw;
        let net = &hw.network;
        let frames = |bytes: f64| (bytes / net.mss_bytes as f64).ceil().max(1.0);
        // Microseconds of wire per byte at the link rate.
        let us_per_wire_byte = 8.0 / net.link_mbit_per_s;
        let min_frame = net.min_frame_wire_bytes as f64;
        let x = Exchange::new(hw, body);
        let data = frames(x.resp_bytes);
        let acks = (data / net.ack_every_frames as f64).ceil();
        let resp_wire = (x.resp_bytes + data * net.frame_overhead_bytes as f64).max(data * min_frame)
            + net.responder_control_frames as f64 * min_frame;

        let (fe, s, o) = (&hw.front_end, &hw.server, &hw.origin);
        // The endpoint roles, for a host with (frame, copy, conn) costs.
        let responder_req = |frame: f64, conn: f64| conn + x.req_half_frames * frame;
        let responder_resp = |frame: f64, copy_ns: f64| x.resp_half_frames * frame + x.resp_bytes * copy_ns / 1000.0;
        // Receiving the response includes copying it out of the socket.
        let requester_resp = responder_resp;
        let copy_p = x.resp_bytes * s.copy_ns_per_byte / 1000.0;
        ObjectCosts {
            resp_wire: ns(resp_wire * us_per_wire_byte),
            ack_wire: ns(acks * min_frame * us_per_wire_byte),
            fe_relay: ns(
                requester_resp(fe.frame_us, fe.copy_ns_per_byte) + responder_resp(fe.frame_us, fe.copy_ns_per_byte)
            ),
            fe_l4_acks: ns(fe.l4_frame_us * acks),
            serve_net: ns(responder_req(s.frame_us, s.conn_us)
                + s.squid_request_us
                + responder_resp(s.frame_us, s.copy_ns_per_byte)),
            serve_local: ns(s.conn_us + s.squid_request_us + copy_p),
            relay_fwd: ns(
                requester_resp(s.frame_us, s.copy_ns_per_byte) + responder_resp(s.frame_us, s.copy_ns_per_byte)
            ),
            relay_local: ns(copy_p + responder_resp(s.frame_us, s.copy_ns_per_byte)),
            origin_serve: ns(responder_req(o.frame_us, o.conn_us)
                + o.request_us
                + responder_resp(o.frame_us, o.copy_ns_per_byte)),
            // The distiller works on images at miss time; the stored size is the object's.
            store: ns(requester_resp(s.frame_us, s.copy_ns_per_byte)
                + if image { body as f64 * s.distill_ns_per_byte / 1000.0 } else { 0.0 }),
        }
    }
}

impl Exchange {
    fn new(hw: &Hardware, body: u64) -> Self {
        let net = &hw.network;
        let frames = |bytes: f64| (bytes / net.mss_bytes as f64).ceil().max(1.0);
        let p = body as f64 + net.http_response_header_bytes as f64;
        let data = frames(p);
        let acks = (data / net.ack_every_frames as f64).ceil();
        Exchange {
            req_half_frames: frames(net.http_request_bytes as f64) + net.requester_control_frames as f64,
            resp_half_frames: data + acks + net.responder_control_frames as f64,
            resp_bytes: p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_frame_costs_1538_bytes_of_wire_and_acks_are_minimum_frames() {
        let hw = Hardware::kwon2008();
        // Body chosen so that body + headers is exactly 10 full segments.
        let body = 10 * 1448 - hw.network.http_response_header_bytes as u64;
        let c = Costs::new(&hw);
        let o = c.object(body, false);
        // 10 data frames of 1538 B + 3 control frames of 84 B at 80 ns/B.
        assert_eq!(o.resp_wire, (10 * 1538 + 3 * 84) * 80);
        // 5 delayed ACKs of 84 B.
        assert_eq!(o.ack_wire, 5 * 84 * 80);
        // Request: 200 B + 90 B overhead in one frame, plus 4 control frames.
        assert_eq!(c.req_wire, (290 + 4 * 84) * 80);
    }
}
