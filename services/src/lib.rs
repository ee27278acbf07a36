//! # dl7-services: what runs inside one dl7 process
//!
//! The paper's system on real sockets, driven by the same policy objects as
//! the simulator (`dl7-core`):
//!
//! * [`origin`]: the origin web server; serves a catalog with deterministic bodies ([`content`]).
//! * [`node`]: a cache server: byte-bounded cache under its eviction ([`cache`]), single-flight misses
//!   streamed as they arrive ([`fill`]), an emulated CPU charging the shared cost model,
//!   and the L7 dispatcher that sends each request to its owner.
//! * [`health`]: active and passive health checks of the peers of every dispatcher and front end.
//! * [`front`]: the front-end balancer: `conventional` (parse, pick, proxy),
//!   `distributed` (hand the client socket to a node over `SCM_RIGHTS`: direct return),
//!   `relay` (plain L4 byte splice, IPVS-NAT-like).
//! * [`load`]: closed- and open-loop load generator that verifies every body.
//! * [`materialize`]: a catalog written as files, for any web server to serve as the origin.
//! * [`relay`], [`handoff`] and [`cpu`]: the relay node and front end share, both ends of
//!   the SCM_RIGHTS socket handoff, and the node's emulated CPU.
//! * [`rfc9111`]: the rules of a shared HTTP cache, as pure functions the node asks.
//! * [`spec`]: the typed, versioned config every service starts from; [`serve`] runs one.
//! * [`procfs`]: a process's CPU time and peak memory.
//! * [`metrics`] and [`admin`]: every service's counters, on `GET /metrics` (Prometheus) and `GET /stats` (JSON).
//!
//! Every service is `run(listener, config, shutdown)`, so tests bind port 0.
//! HTTP heads are parsed with `httparse` only ([`http`]). A service knows
//! nothing of experiments: it reads its typed config and serves; starting
//! processes and measuring them is `dl7-testbed`'s job.

pub mod admin;
pub mod cache;
pub mod content;
pub mod cpu;
pub mod defaults;
pub mod dispatch;
pub mod error;
pub mod fill;
pub mod front;
pub mod handoff;
pub mod health;
pub mod http;
pub mod load;
pub mod materialize;
pub mod metrics;
pub mod node;
pub mod origin;
pub mod procfs;
pub mod relay;
pub mod rfc9111;
pub mod serve;
pub mod service;
pub mod spec;
