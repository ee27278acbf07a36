//! # dl7-sim: discrete-event model of a web-cache cluster
