//! # dl7-realnet: the cluster for real on tokio
