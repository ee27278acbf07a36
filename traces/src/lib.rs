//! # dl7-traces: the request streams both engines replay
//!
//! Workload models (SURGE), the paper's three 100-file workloads, real
//! access-log importers and exporters, and trace statistics.
//!
//! ```
//! use dl7_traces::workload;
//! let catalog = workload::builtin("surge100").unwrap();
//! let first: Vec<_> = catalog.stream(7).unwrap().take(3).collect();
//! assert_eq!(first, catalog.stream(7).unwrap().take(3).collect::<Vec<_>>());
//! ```

pub mod catalog;
pub mod error;
pub mod export;
pub mod import;
pub mod schedule;
pub mod stats;
pub mod stream;
pub mod surge;
pub mod trace;
pub mod workload;

pub use catalog::{Catalog, ContentType, Object, ObjectId};
pub use error::{TraceError, UnknownFormat};
pub use schedule::{Schedule, ScheduleError};
pub use stats::TraceStats;
pub use stream::{Draws, RequestStream, StackDistance};
pub use surge::{HybridSize, SurgeModel, SurgeStep, SurgeUser, SurgeUserParams};
pub use trace::Trace;
