//! Integration tests of cmr-fed.

mod data;
mod federated;
mod fixtures;
mod model;
mod train;
