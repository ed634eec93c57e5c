//! Integration tests of cmr-fed.

mod data;
mod fixtures;
mod federated;
mod model;
mod train;
