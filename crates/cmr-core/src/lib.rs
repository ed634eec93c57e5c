//! Vocabulary shared by every cmr-debias stage: subjects and their attributes, attribute bins, diagnosis codes and
//! task labels, the text prompt, the cohort table schema, seeded random streams, typed errors, atomic writes,
//! sha256 manifests, an order-keeping parallel map, and the binary-classification metrics and bootstrap that the
//! audit and federated stages share.
//! See `DESIGN.md` ("Canonical conventions") for the contracts these types encode.

pub mod atomic;
pub mod attributes;
pub mod bootstrap;
pub mod cohort;
pub mod diagnosis;
pub mod error;
pub mod manifest;
pub mod metrics;
pub mod parallel;
pub mod prompt;
pub mod seed;
pub mod split;
pub mod subject;
pub mod summary;
pub mod table;

pub use attributes::{AttributeBins, Sex};
pub use diagnosis::{Dataset, Task};
pub use error::{CoreError, Result};
pub use subject::{CohortRow, Source, Split};

/// Canonical segmentation labels (DESIGN.md): every adapter maps its dataset's codes to these on read.
pub mod labels {
    /// Background.
    pub const BACKGROUND: u8 = 0;
    /// Left-ventricular blood pool.
    pub const LV: u8 = 1;
    /// Left-ventricular myocardium.
    pub const MYO: u8 = 2;
    /// Right-ventricular blood pool.
    pub const RV: u8 = 3;
    /// Number of classes including background.
    pub const COUNT: usize = 4;
}
