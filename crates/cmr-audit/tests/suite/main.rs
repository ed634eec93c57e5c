//! cmr-audit's integration tests, linked into one binary (each file is a module).

mod answer;
mod bad_input;
mod common;
mod coverage;
mod fairlearn_oracle;
mod html_render;
mod reports;
