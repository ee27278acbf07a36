//! Offline analyses of the scheduling policies: figures computed from the
//! policy objects alone, on synthetic keys and seeded request streams.
//!
//! Nothing here reads files, opens sockets or prints; the binary turns the
//! typed results into text.

pub mod spread;
