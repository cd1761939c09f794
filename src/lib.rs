
pub mod metrics;
