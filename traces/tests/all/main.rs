//! dl7-traces' integration tests, one binary: importers, the request
//! stream, the built-in workloads and the parsers' fuzz cases.

mod fuzz;
mod import;
mod stream;
mod workloads;
