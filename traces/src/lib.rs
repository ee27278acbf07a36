//! # dl7-traces: the request streams both engines replay
//!
//! Workload models (SURGE), the paper's three 100-file workloads, real
//! access-log importers and exporters, and trace statistics.

pub mod catalog;

pub use catalog::{Catalog, ContentType, Object, ObjectId};
