//! Fine-tuning the classifier (issue 7, items 2 and 5): the site trainer the federated runtime drives, its loss, and
//! `fed train` — clients from the cohort, one strategy, evaluation of every site's model — and `fed compare`.

pub mod compare;
pub mod loss;
pub mod run;
pub mod trainer;

pub use compare::{CompareConfig, Comparison, StrategyRow};
pub use run::{run, FedTrainConfig, FedTrainOptions, FedTrainReport, RunRecord, CENTRAL_CLIENT};
pub use trainer::{ClassifierTrainer, LocalTraining};
