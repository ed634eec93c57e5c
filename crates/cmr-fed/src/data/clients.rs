//! Federated clients from a cohort folder (issue 7, item 5): one client per distinct `site` (sorted by name), each
//! with its train / val / test examples for a task, and the pooled view that the `central` reference trains on.
//!
//! A subject's label comes from its diagnosis through [`Task::label`] (NOR vs HCM as Linardos et al.; normal vs any
//! disease as Med-DualLoRA); subjects the task excludes are left out. Every site must be able to train: it needs
//! train subjects of both classes. Every subject must have the same tensor shape, since one model reads them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmr_core::{cohort, CohortRow, Split, Task};
use ndarray::Array4;
use rand_chacha::ChaCha8Rng;

use super::augment::Augmenter;
use super::prior::ShapePrior;
use crate::error::{FedError, Result};

/// One labelled subject as the classifier sees it, kept compact: f32 image, u8 mask.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// `{dataset}:{id}` from the cohort.
    pub subject_id: String,
    /// The client it belongs to.
    pub site: String,
    /// Task label: `true` for the positive class (HCM, or disease).
    pub label: bool,
    /// `[2, S, H, W]`, channel 0 ED, 1 ES, values in \[0, 1\].
    pub image: Array4<f32>,
    /// `[2, S, H, W]`, canonical labels (0 background, 1 LV, 2 MYO, 3 RV).
    pub mask: Array4<u8>,
}

impl Example {
    /// The model input without augmentation (validation, test): `[prior.channels(), S, H, W]`.
    pub fn input(&self, prior: ShapePrior) -> Array4<f32> {
        prior.apply(&self.image, &self.mask)
    }

    /// The model input of one training step: a random augmentation drawn from `rng` moves image and mask
    /// together, then the shape prior masks the augmented image with the augmented mask.
    pub fn augmented_input(&self, prior: ShapePrior, augmenter: &Augmenter, rng: &mut ChaCha8Rng) -> Array4<f32> {
        let (image, mask) = augmenter.apply(&self.image, Some(&self.mask), rng);
        prior.apply(&image, mask.as_ref().expect("a mask was passed"))
    }
}

/// Per-class weights of a weighted loss against class imbalance: inverse class frequency, normalised so the mean
/// weight per example is 1 (scikit-learn's `class_weight="balanced"`: `n / (classes · n_class)`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ClassWeights {
    /// Weight of an example with label `false`.
    pub negative: f32,
    /// Weight of an example with label `true`.
    pub positive: f32,
}

impl ClassWeights {
    /// The weights over `examples`. Only classes present count in `classes`; an absent class gets weight 0 (it
    /// has no example to weigh), and no examples at all give weight 1 to both.
    pub fn of<'a>(examples: impl IntoIterator<Item = &'a Example>) -> Self {
        let (mut negatives, mut positives) = (0usize, 0usize);
        for example in examples {
            if example.label {
                positives += 1;
            } else {
                negatives += 1;
            }
        }
        let n = negatives + positives;
        if n == 0 {
            return Self { negative: 1.0, positive: 1.0 };
        }
        let classes = usize::from(negatives > 0) + usize::from(positives > 0);
        let weight = |count: usize| if count == 0 { 0.0 } else { n as f32 / (classes * count) as f32 };
        Self { negative: weight(negatives), positive: weight(positives) }
    }

    /// The weight of an example with `label`.
    pub fn weight(&self, label: bool) -> f32 {
        if label {
            self.positive
        } else {
            self.negative
        }
    }
}

/// One site's examples.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// The `site` value.
    pub site: String,
    /// Train examples (both classes present), in cohort order.
    pub train: Vec<Example>,
    /// Validation examples, in cohort order (may be empty).
    pub val: Vec<Example>,
    /// Test examples, in cohort order (may be empty).
    pub test: Vec<Example>,
}

impl Client {
    /// The examples of `split`.
    pub fn split(&self, split: Split) -> &[Example] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }

    /// Class weights of this client's train set.
    pub fn class_weights(&self) -> ClassWeights {
        ClassWeights::of(&self.train)
    }
}

/// Every client of a cohort for one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Clients {
    /// The cohort table the clients were read from.
    pub cohort: PathBuf,
    /// The task that labelled them.
    pub task: Task,
    /// Shape `[2, S, H, W]` shared by every subject tensor.
    pub shape: [usize; 4],
    /// One client per site, sorted by site.
    pub clients: Vec<Client>,
}

impl Clients {
    /// Reads the cohort folder `dir` (its table and subject tensors) into clients for `task`.
    ///
    /// # Errors
    /// A site without train subjects for the task, a site whose train split lacks one of the two classes, or a
    /// subject whose tensor shape differs from the others' — each naming the cohort table and the site, label or
    /// subject; a cohort or tensor file that cannot be read.
    pub fn load(dir: &Path, task: Task) -> Result<Self> {
        let rows = cohort::read(dir)?;
        Self::from_rows(dir, &rows, task)
    }

    /// Clients from the cohort `rows` of the folder `dir` (tensor paths are relative to it); see [`Clients::load`].
    pub fn from_rows(dir: &Path, rows: &[CohortRow], task: Task) -> Result<Self> {
        let table = dir.join(cohort::COHORT_PARQUET);
        // 1. labels and sites, checked before any tensor is read
        let mut sites: BTreeMap<&str, Vec<(&CohortRow, bool)>> = BTreeMap::new();
        for row in rows {
            let labelled = task.label(&row.diagnosis).map(|label| (row, label == 1));
            sites.entry(row.site.as_str()).or_default().extend(labelled);
        }
        if sites.is_empty() {
            return Err(FedError::input(&table, "the cohort has no subjects"));
        }
        for (site, members) in &sites {
            check_site(&table, task, site, members)?;
        }
        // 2. tensors, one shape for all
        let mut shape: Option<([usize; 4], &str)> = None;
        let mut clients = Vec::with_capacity(sites.len());
        for (site, members) in sites {
            let mut client = Client { site: site.to_string(), train: vec![], val: vec![], test: vec![] };
            for (row, label) in members {
                let tensor = cmr_io::store::read_tensor(&dir.join(&row.tensor_path))?;
                let dim = tensor.image.dim();
                let this = [dim.0, dim.1, dim.2, dim.3];
                match shape {
                    None => shape = Some((this, &row.subject_id)),
                    Some((first, first_id)) if first != this => {
                        return Err(FedError::input(
                            &table,
                            format!(
                                "subject `{}` of site `{site}` ({}) has tensor shape {this:?}, but subject \
                                 `{first_id}` has {first:?}; every subject needs one shape (preprocess the cohort \
                                 with one crop size and slice count)",
                                row.subject_id, row.tensor_path
                            ),
                        ));
                    }
                    Some(_) => {}
                }
                let example = Example {
                    subject_id: row.subject_id.clone(),
                    site: site.to_string(),
                    label,
                    image: tensor.image,
                    mask: tensor.mask,
                };
                match row.split {
                    Split::Train => client.train.push(example),
                    Split::Val => client.val.push(example),
                    Split::Test => client.test.push(example),
                }
            }
            clients.push(client);
        }
        let shape = shape.map(|(s, _)| s).expect("every site has train subjects");
        Ok(Self { cohort: table, task, shape, clients })
    }

    /// Every client's examples of `split` together, in client order: the data of the `central` reference.
    pub fn pooled(&self, split: Split) -> Vec<&Example> {
        self.clients.iter().flat_map(|c| c.split(split)).collect()
    }

    /// Class weights of the pooled train set.
    pub fn pooled_class_weights(&self) -> ClassWeights {
        ClassWeights::of(self.pooled(Split::Train))
    }
}

/// A site can train only with train subjects of both classes.
fn check_site(table: &Path, task: Task, site: &str, members: &[(&CohortRow, bool)]) -> Result<()> {
    let train: Vec<bool> = members.iter().filter(|(row, _)| row.split == Split::Train).map(|&(_, l)| l).collect();
    if train.is_empty() {
        return Err(FedError::input(
            table,
            format!(
                "site `{site}` has no train subjects for task `{}`; every site is a client and must train (move \
                 subjects of the site into the train split, or remove the site from the cohort)",
                task.name()
            ),
        ));
    }
    for label in [false, true] {
        if !train.contains(&label) {
            let other = train.len();
            return Err(FedError::input(
                table,
                format!(
                    "site `{site}` has no train subjects with label {} for task `{}` (all {other} have label {}); \
                     every client needs both classes to train",
                    u8::from(label),
                    task.name(),
                    u8::from(!label)
                ),
            ));
        }
    }
    Ok(())
}
