//! The `dl7` crate's integration tests, one binary (one link instead of
//! eight): each module is one concern, run against the built `dl7` binary
//! or the libraries, on 127.0.0.1 port 0; the emulated lab's cases need
//! root and say SKIPPED elsewhere.

mod cluster;
mod differential;
mod failover;
mod health;
mod membership;
mod memory;
mod paper_pins;
mod sweep;
