//! The classifier's data and its evaluation (issue 7, items 5 and 6):
//!
//! - [`clients`] — one client per site from a cohort folder, labelled by the task, with class weights;
//! - [`prior`] — shape priors (image × masks) that make the model input;
//! - [`augment`] — the four augmentation set-ups of Linardos et al., seeded;
//! - [`evaluation`] — metrics per client and pooled, `predictions.csv` and `metrics.json`;
//! - [`paired`] — the paired bootstrap and mean ± sd of `fed compare`;
//! - [`weights`] — per-subject loss weights (`--sample-weights`, the weights arm).
//!
//! A training step of client `c` takes `example.augmented_input(prior, &augmenter, &mut rng)` for each of
//! `c.train`, weighs its loss by `ClassWeights::of(&c.train).weight(example.label)` (times the subject's weight
//! when a weights file is given), and evaluation turns each test example's score into a [`Prediction`] for
//! [`write_evaluation`].

pub mod augment;
pub mod clients;
pub mod evaluation;
pub mod paired;
pub mod prior;
pub mod weights;

pub use augment::{AugmentConfig, Augmentation, Augmenter};
pub use clients::{ClassWeights, Client, Clients, Example};
pub use evaluation::{evaluate, write_evaluation, BinaryMetrics, Evaluation, Prediction};
pub use paired::{Arm, MeanSd, PairedBootstrap, PairedComparison};
pub use prior::ShapePrior;
pub use weights::SubjectWeights;
