//! Integration tests of cmr-pipeline: one test binary for the crate (each binary links polars and candle).

mod cohort;
mod parse;
mod runner;
mod stages;
