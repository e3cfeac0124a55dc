//! Parts of the ingest load benchmark: the broker it starts, the processes it measures, the
//! counters it polls and the publisher that makes the load.

pub mod broker;
pub mod counter;
pub mod process;
pub mod procfs;
pub mod publisher;
