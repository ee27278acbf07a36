//! # dl7-realnet: the cluster for real on tokio

pub mod lab;
