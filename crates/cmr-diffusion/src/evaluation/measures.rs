//! The measures of `diffusion evaluate` ([`super::run`]), computed from the evaluated subjects, their generated
//! samples and the segmenter's analyses: mask fidelity, Fréchet distance, diversity, memorisation and attribute
//! fidelity. Every per-image measure is taken on the heart images only: the `(frame, slice)` images whose mask has
//! a label 1–3 (the others carry no condition to check).

use std::collections::BTreeMap;

use cmr_core::CohortRow;
use cmr_io::store::SubjectTensor;
use ndarray::{s, Array4};

use super::attribute_probe::{accuracy_ci, AttributeProbe};
use super::dice::dice_all;
use super::frechet::frechet_distance;
use super::memorisation::{centred, NccIndex};
use super::msssim::ms_ssim;
use super::prompt_swap::{concordance, expected_position, ordered_as_prompted, SwappedSample};
use super::report::{
    Accuracy, AttributeFidelity, DiceGroup, DiversityReport, FrechetReport, MemorisationReport, PromptSwapReport,
};
use super::segmenter::Analysis;
use crate::error::Result;

/// NCC at or above which a generated image counts as a copy of a training image.
pub(crate) const MEMORISATION_THRESHOLD: f64 = 0.95;
/// Side of the average-pooled images the attribute probes read.
pub(crate) const PROBE_GRID: usize = 16;
/// Bootstrap resamples of the attribute accuracies.
const BOOTSTRAP_RESAMPLES: usize = 1000;
/// The probed attributes: the cohort columns the prompt is made of.
const ATTRIBUTES: [&str; 4] = ["sex", "age_band", "bmi_class", "label"];
/// The attributes the Dice numbers are also broken down by.
const DICE_SUBGROUPS: [&str; 2] = ["sex", "bmi_class"];

/// A real subject: its cohort row and tensor.
pub(crate) struct Real<'r> {
    pub row: &'r CohortRow,
    pub tensor: SubjectTensor,
}

/// One 2D image of a subject tensor: `(frame, slice)`.
pub(crate) type Plane = (usize, usize);

/// What one Dice value of the mask fidelity is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiceUnit {
    /// The heart images of one frame (ED or ES) of a subject, pooled: the 3D Dice per volume and phase of the ACDC
    /// challenge (Bernard et al. 2018), which weighs a slice by its area, so a few-pixel apical LV counts little.
    Volume,
    /// One 2D heart image: every slice counts alike, the apical and basal ones included.
    Image,
}

impl DiceUnit {
    /// Indices into `planes` (one subject's heart images), grouped into this unit's parts, in order.
    fn group(self, planes: &[Plane]) -> Vec<Vec<usize>> {
        match self {
            DiceUnit::Image => (0..planes.len()).map(|p| vec![p]).collect(),
            DiceUnit::Volume => {
                let mut frames: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                for (p, &(frame, _)) in planes.iter().enumerate() {
                    frames.entry(frame).or_default().push(p);
                }
                frames.into_values().collect()
            }
        }
    }
}

/// Everything the measures are computed from. Subjects are indices into `train`; the `j`-th evaluated subject is
/// `chosen[j]`, its samples `generated[j]`.
pub(crate) struct Evaluation<'a, 'r> {
    /// The real train subjects of the cohort.
    pub train: &'a [Real<'r>],
    /// The heart images of each train subject ([`heart_planes`]).
    pub planes: &'a [Vec<Plane>],
    /// The evaluated subjects.
    pub chosen: &'a [usize],
    /// The reference subjects of the Fréchet distance, as many as `chosen`.
    pub reference: &'a [usize],
    /// `[j][k]`: sample `k` of evaluated subject `j`, `[2, S, H, W]`.
    pub generated: &'a [Vec<Array4<f32>>],
    /// The segmenter on the heart images of `chosen` then `reference`, one vector per subject.
    pub real_analysis: &'a [Vec<Analysis>],
    /// `[j][k][p]`: the segmenter on heart image `p` of sample `k` of evaluated subject `j`.
    pub generated_analysis: &'a [Vec<Vec<Analysis>>],
    /// Samples made with one attribute of the prompt swapped, each paired with its subject's first sample.
    pub swapped: &'a [SwappedSample],
    /// The values of each swapped attribute, low to high ([`super::prompt_swap::ordered_values`]).
    pub orders: &'a BTreeMap<&'static str, Vec<String>>,
}

impl Evaluation<'_, '_> {
    /// The subject whose mask the `j`-th evaluated subject's samples are compared with in the shuffled-mask
    /// control: the next evaluated subject (a fixed derangement for two or more).
    pub fn partner(&self, j: usize) -> usize {
        self.chosen[(j + 1) % self.chosen.len()]
    }

    /// Dice of the segmenter's labels per subgroup, each value over one [`DiceUnit`]: generated vs conditioning
    /// mask, real vs its mask, generated vs the partner's mask; and of the conditioning mask vs the partner's.
    /// Subject tensors are cropped on the LV centroid, so the partner's mask differs in shape and size, not in
    /// position.
    pub fn mask_fidelity(&self, unit: DiceUnit) -> BTreeMap<String, DiceGroup> {
        let mut dice: BTreeMap<String, DiceGroup> = BTreeMap::new();
        for (j, &t) in self.chosen.iter().enumerate() {
            let (mask, partner_mask) = (&self.train[t].tensor.mask, &self.train[self.partner(j)].tensor.mask);
            let planes = &self.planes[t];
            // Each unit's label maps, one after another: heart-image indices `p` → pixels.
            let units = unit.group(planes);
            let joined = |maps: &dyn Fn(usize) -> Vec<u8>| -> Vec<Vec<u8>> {
                units.iter().map(|unit| unit.iter().flat_map(|&p| maps(p)).collect()).collect()
            };
            let truth = joined(&|p| plane_of(mask, planes[p]));
            let other = joined(&|p| plane_of(partner_mask, planes[p]));
            let real = joined(&|p| self.real_analysis[j][p].mask.clone());
            let samples: Vec<Vec<Vec<u8>>> =
                self.generated_analysis[j].iter().map(|sample| joined(&|p| sample[p].mask.clone())).collect();
            let subgroups =
                DICE_SUBGROUPS.iter().filter_map(|a| attribute(self.train[t].row, a).map(|v| format!("{a}={v}")));
            for name in std::iter::once("overall".to_string()).chain(subgroups) {
                let group = dice.entry(name).or_default();
                group.subjects += 1;
                for (u, truth) in truth.iter().enumerate() {
                    group.real.add(dice_all(&real[u], truth));
                    group.mask_overlap.add(dice_all(truth, &other[u]));
                    for sample in &samples {
                        group.generated.add(dice_all(&sample[u], truth));
                        group.shuffled.add(dice_all(&sample[u], &other[u]));
                    }
                }
            }
        }
        dice
    }

    /// Fréchet distances to the reference subjects' features: of each sample index, and of the evaluated
    /// subjects' real images.
    pub fn frechet(&self) -> FrechetReport {
        let features = |analyses: &mut dyn Iterator<Item = &Vec<Analysis>>| -> Vec<Vec<f32>> {
            analyses.flat_map(|images| images.iter().map(|a| a.features.clone())).collect()
        };
        let (real_chosen, real_reference) = self.real_analysis.split_at(self.chosen.len());
        let reference = features(&mut real_reference.iter());
        let samples = self.generated.first().map_or(0, Vec::len);
        let generated_per_sample: Vec<Option<f64>> = (0..samples)
            .map(|k| frechet_distance(&features(&mut self.generated_analysis.iter().map(|s| &s[k])), &reference))
            .collect();
        FrechetReport {
            reference_subjects: self.reference.iter().map(|&t| self.train[t].row.subject_id.clone()).collect(),
            reference_images: reference.len(),
            generated: mean(generated_per_sample.iter().copied().collect::<Option<Vec<f64>>>().unwrap_or_default()),
            real: frechet_distance(&features(&mut real_chosen.iter()), &reference),
            generated_per_sample,
        }
    }

    /// Mean MS-SSIM of every pair of samples of one heart image, and of each heart image with the partner's real
    /// image at the same `(frame, slice)`.
    pub fn diversity(&self) -> DiversityReport {
        let (mut generated, mut real) = (Vec::new(), Vec::new());
        for (j, &t) in self.chosen.iter().enumerate() {
            let (_, _, height, width) = self.train[t].tensor.image.dim();
            for &plane in &self.planes[t] {
                let images: Vec<Vec<f32>> = self.generated[j].iter().map(|g| plane_of(g, plane)).collect();
                for a in 0..images.len() {
                    for b in a + 1..images.len() {
                        generated.push(ms_ssim(&images[a], &images[b], height, width));
                    }
                }
                let (own, other) = (&self.train[t].tensor.image, &self.train[self.partner(j)].tensor.image);
                real.push(ms_ssim(&plane_of(own, plane), &plane_of(other, plane), height, width));
            }
        }
        DiversityReport {
            generated_pairs: generated.len(),
            generated: mean(generated),
            real_pairs: real.len(),
            real: mean(real),
        }
    }

    /// Nearest real train heart image by NCC of every generated heart image, and of the `held_out` subjects' heart
    /// images.
    pub fn memorisation(&self, held_out: &[Real]) -> MemorisationReport {
        let images_of =
            |image: &Array4<f32>, planes: &[Plane]| planes.iter().map(|&p| plane_of(image, p)).collect::<Vec<_>>();
        let references: Vec<Vec<f32>> =
            self.train.iter().zip(self.planes).flat_map(|(s, p)| images_of(&s.tensor.image, p)).collect();
        let reference_images = references.len();
        let index = NccIndex::new(references);
        let queries: Vec<Vec<f32>> = self
            .chosen
            .iter()
            .zip(self.generated)
            .flat_map(|(&t, samples)| samples.iter().flat_map(move |g| images_of(g, &self.planes[t])))
            .collect();
        let nearest = index.nearest_many(&queries);
        let held_out: Vec<Vec<f32>> =
            held_out.iter().flat_map(|s| images_of(&s.tensor.image, &heart_planes(&s.tensor.mask))).collect();
        MemorisationReport {
            threshold: MEMORISATION_THRESHOLD,
            reference_images,
            generated_rate: share_at_threshold(&nearest),
            generated_mean_ncc: mean(nearest.iter().map(|&(_, ncc)| ncc).collect()).unwrap_or(0.0),
            held_out_rate: (!held_out.is_empty()).then(|| share_at_threshold(&index.nearest_many(&held_out))),
            held_out_images: held_out.len(),
        }
    }

    /// One probe per attribute of [`ATTRIBUTES`] that has at least two classes among the `fit_on` subjects (see
    /// [`probe_subjects`]) and one of them in an evaluated subject; and with each probe, the prompt swaps of its
    /// attribute.
    pub fn attributes(&self, fit_on: &[&Real], seed: u64) -> Result<Probed> {
        let mut probed = Probed::default();
        for name in ATTRIBUTES {
            let Some((fidelity, probe)) = self.probe_attribute(name, fit_on, seed)? else { continue };
            if let Some(swaps) = self.prompt_swaps(name, &probe, &fidelity.classes, seed)? {
                probed.prompt_swaps.insert(name.to_string(), swaps);
            }
            probed.attributes.insert(name.to_string(), fidelity);
        }
        Ok(probed)
    }

    /// Fits the probe of attribute `name` on the slices of the `fit_on` subjects and scores it on the evaluated
    /// subjects' generated samples (one prediction per sample, by majority over its slices) and real images; `None`
    /// when it cannot be fit or scored.
    fn probe_attribute(
        &self,
        name: &str,
        fit_on: &[&Real],
        seed: u64,
    ) -> Result<Option<(AttributeFidelity, AttributeProbe)>> {
        let evaluated = self.chosen.iter().map(|&t| self.train[t].row);
        let Some(classes) = probe_classes(name, fit_on.iter().map(|s| s.row), evaluated) else { return Ok(None) };
        let class_of = |row: &CohortRow| attribute(row, name).and_then(|v| classes.iter().position(|c| *c == v));
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for subject in fit_on {
            if let Some(class) = class_of(subject.row) {
                let rows = probe_features(&subject.tensor.image, &subject.tensor.mask);
                labels.extend(std::iter::repeat_n(class, rows.len()));
                features.extend(rows);
            }
        }
        let probe =
            AttributeProbe::fit(&features, &labels, classes.len(), cmr_core::seed::derive(seed, &["probe", name]))?;
        let predict = |image: &Array4<f32>, mask: &Array4<u8>| -> Result<usize> {
            Ok(majority(&probe.predict(&probe_features(image, mask))?, classes.len()))
        };
        let (mut generated, mut real) = ((vec![], vec![]), (vec![], vec![]));
        for (j, &t) in self.chosen.iter().enumerate() {
            let Some(class) = class_of(self.train[t].row) else { continue };
            let subject = &self.train[t].tensor;
            for image in &self.generated[j] {
                generated.0.push(class);
                generated.1.push(predict(image, &subject.mask)?);
            }
            real.0.push(class);
            real.1.push(predict(&subject.image, &subject.mask)?);
        }
        let score = |(truth, predicted): (Vec<usize>, Vec<usize>), set: &str| {
            let seed = cmr_core::seed::derive(seed, &["probe", name, set]);
            let (accuracy, lo, hi) = accuracy_ci(&truth, &predicted, BOOTSTRAP_RESAMPLES, seed);
            let most = (0..classes.len()).map(|c| truth.iter().filter(|&&x| x == c).count()).max().unwrap_or(0);
            Accuracy { accuracy, lo, hi, n: truth.len(), chance: most as f64 / truth.len() as f64 }
        };
        let fidelity = AttributeFidelity {
            train_slices: features.len(),
            generated: score(generated, "generated"),
            real: score(real, "real"),
            classes,
        };
        Ok(Some((fidelity, probe)))
    }

    /// The prompt swaps of attribute `name` scored by its `probe` (over `classes`): each swapped sample against its
    /// subject's first sample, and the evaluated subjects' real images against each other; `None` without a swap
    /// or when a class of the probe is not in the attribute's order.
    fn prompt_swaps(
        &self,
        name: &str,
        probe: &AttributeProbe,
        classes: &[String],
        seed: u64,
    ) -> Result<Option<PromptSwapReport>> {
        let Some(order) = self.orders.get(name) else { return Ok(None) };
        let position = |value: &str| order.iter().position(|v| v == value);
        let Some(positions) = classes.iter().map(|c| position(c).map(|p| p as f64)).collect::<Option<Vec<f64>>>()
        else {
            return Ok(None);
        };
        let score = |image: &Array4<f32>, mask: &Array4<u8>| -> Result<f64> {
            Ok(expected_position(&probe.probabilities(&probe_features(image, mask))?, &positions))
        };
        let (mut ordered, mut shift) = (Vec::new(), Vec::new());
        for SwappedSample { swap, image } in self.swapped.iter().filter(|s| s.swap.attribute == name) {
            let subject = &self.train[self.chosen[swap.evaluated]];
            let own = attribute(subject.row, name).and_then(|v| position(&v));
            let (Some(own), Some(other)) = (own, position(&swap.value)) else { continue };
            let own = (own, score(&self.generated[swap.evaluated][0], &subject.tensor.mask)?);
            let other = (other, score(image, &subject.tensor.mask)?);
            ordered.push(usize::from(ordered_as_prompted(own, other)));
            let (low, high) = if own.0 < other.0 { (own, other) } else { (other, own) };
            shift.push(high.1 - low.1);
        }
        if ordered.is_empty() {
            return Ok(None);
        }
        let mut real = Vec::new();
        for &t in self.chosen {
            let subject = &self.train[t];
            if let Some(p) = attribute(subject.row, name).and_then(|v| position(&v)) {
                real.push((p, score(&subject.tensor.image, &subject.tensor.mask)?));
            }
        }
        let (real_concordance, real_pairs) = concordance(&real);
        let resample_seed = cmr_core::seed::derive(seed, &["prompt swap", name]);
        let (accuracy, lo, hi) = accuracy_ci(&vec![1; ordered.len()], &ordered, BOOTSTRAP_RESAMPLES, resample_seed);
        Ok(Some(PromptSwapReport {
            order: order.clone(),
            ordered: Accuracy { accuracy, lo, hi, n: ordered.len(), chance: 0.5 },
            mean_shift: mean(shift).unwrap_or(0.0),
            real_concordance,
            real_pairs,
        }))
    }
}

/// The attribute probes and prompt swaps of an evaluation, by attribute.
#[derive(Default)]
pub(crate) struct Probed {
    /// [`super::report::EvaluationReport::attributes`].
    pub attributes: BTreeMap<String, AttributeFidelity>,
    /// [`super::report::EvaluationReport::prompt_swaps`].
    pub prompt_swaps: BTreeMap<String, PromptSwapReport>,
}

/// The `(frame, slice)` images whose mask has a heart label.
pub(crate) fn heart_planes(mask: &Array4<u8>) -> Vec<Plane> {
    let (frames, slices, _, _) = mask.dim();
    (0..frames)
        .flat_map(|f| (0..slices).map(move |s| (f, s)))
        .filter(|&(f, s)| mask.slice(s![f, s, .., ..]).iter().any(|&l| l > 0))
        .collect()
}

/// One `height × width` image of a `[2, S, H, W]` tensor, row-major.
pub(crate) fn plane_of<T: Copy>(tensor: &Array4<T>, (frame, slice): Plane) -> Vec<T> {
    tensor.slice(s![frame, slice, .., ..]).iter().copied().collect()
}

/// The real subjects the attribute probes are fit on: the train subjects not evaluated (`chosen` indexes `train`)
/// and the `held_out` val/test subjects.
pub(crate) fn probe_subjects<'a, 'r>(
    train: &'a [Real<'r>],
    chosen: &[usize],
    held_out: &'a [Real<'r>],
) -> Vec<&'a Real<'r>> {
    (0..train.len()).filter(|t| !chosen.contains(t)).map(|t| &train[t]).chain(held_out).collect()
}

/// The classes of attribute `name` among the `fit_on` subjects, sorted, when its probe can be fit and scored: at
/// least two classes, and one of them recorded for an `evaluated` subject.
pub(crate) fn probe_classes<'r>(
    name: &str,
    fit_on: impl Iterator<Item = &'r CohortRow>,
    mut evaluated: impl Iterator<Item = &'r CohortRow>,
) -> Option<Vec<String>> {
    let mut classes: Vec<String> = fit_on.filter_map(|row| attribute(row, name)).collect();
    classes.sort();
    classes.dedup();
    let scored = evaluated.any(|row| attribute(row, name).is_some_and(|v| classes.contains(&v)));
    (classes.len() >= 2 && scored).then_some(classes)
}

/// The value of a probed or subgroup attribute of `row`, as text; `None` when not recorded.
pub(crate) fn attribute(row: &CohortRow, name: &str) -> Option<String> {
    match name {
        "sex" => row.sex.map(|s| s.code().to_string()),
        "age_band" => row.age_band.clone(),
        "bmi_class" => row.bmi_class.clone(),
        "label" => Some(row.label.to_string()),
        _ => unreachable!("attribute {name} is not one of ATTRIBUTES"),
    }
}

/// One probe input per slice with a heart label in either frame: the ED and the ES image, each average-pooled to
/// [`PROBE_GRID`] × [`PROBE_GRID`] (a pixel goes to cell `⌊r · 16 / H⌋, ⌊c · 16 / W⌋`) and standardised to mean 0
/// and standard deviation 1 over its cells (left at 0 when constant), concatenated.
///
/// The standardisation makes the probe blind to a frame's overall brightness and contrast. A generator whose images
/// are globally brighter or flatter than the real ones (the Fréchet distance reports that) would otherwise move a
/// probe fit on real images to one class, and the accuracy would measure that shift rather than whether the prompted
/// attribute shows.
fn probe_features(image: &Array4<f32>, mask: &Array4<u8>) -> Vec<Vec<f32>> {
    let (frames, slices, height, width) = image.dim();
    (0..slices)
        .filter(|&s| mask.slice(s![.., s, .., ..]).iter().any(|&l| l > 0))
        .map(|s| {
            let mut row = Vec::with_capacity(frames * PROBE_GRID * PROBE_GRID);
            for f in 0..frames {
                let (mut sums, mut counts) = ([0f32; PROBE_GRID * PROBE_GRID], [0u32; PROBE_GRID * PROBE_GRID]);
                for ((r, c), &v) in image.slice(s![f, s, .., ..]).indexed_iter() {
                    let cell = (r * PROBE_GRID / height) * PROBE_GRID + c * PROBE_GRID / width;
                    sums[cell] += v;
                    counts[cell] += 1;
                }
                let pooled: Vec<f32> = sums.iter().zip(&counts).map(|(&sum, &n)| sum / n as f32).collect();
                row.extend(centred(&pooled, (pooled.len() as f64).sqrt())); // mean 0, standard deviation 1
            }
            row
        })
        .collect()
}

/// The most frequent of `predictions` (each below `classes`), the lowest class on ties.
fn majority(predictions: &[usize], classes: usize) -> usize {
    let mut counts = vec![0usize; classes];
    for &p in predictions {
        counts[p] += 1;
    }
    (0..classes).rev().max_by_key(|&c| counts[c]).unwrap_or(0)
}

/// The share of nearest-neighbour matches at or above [`MEMORISATION_THRESHOLD`]; 0 for none.
fn share_at_threshold(nearest: &[(usize, f64)]) -> f64 {
    let hits = nearest.iter().filter(|&&(_, ncc)| ncc >= MEMORISATION_THRESHOLD).count();
    if nearest.is_empty() {
        0.0
    } else {
        hits as f64 / nearest.len() as f64
    }
}

/// The mean; `None` for no values.
fn mean(values: Vec<f64>) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_features_ignore_a_frames_brightness_and_contrast_but_not_its_pattern() {
        let mut mask = Array4::<u8>::zeros((2, 3, 32, 32));
        mask[[0, 1, 10, 10]] = 1; // slices 0 and 2 have no heart
        let image = Array4::from_shape_fn((2, 3, 32, 32), |(f, s, r, c)| ((r * 7 + c * 3 + f * 5 + s) % 11) as f32);
        let features = probe_features(&image, &mask);
        assert_eq!(features.len(), 1, "one row per heart slice");
        assert_eq!(features[0].len(), 2 * PROBE_GRID * PROBE_GRID);
        for frame in features[0].chunks(PROBE_GRID * PROBE_GRID) {
            let mean = frame.iter().sum::<f32>() / frame.len() as f32;
            let var = frame.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / frame.len() as f32;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "mean {mean}, variance {var}");
        }

        // Brighter and flatter in ED only: the same features.
        let mut shifted = image.clone();
        shifted.slice_mut(s![0, .., .., ..]).mapv_inplace(|v| 0.3 * v + 2.0);
        let moved = probe_features(&shifted, &mask);
        assert!(features[0].iter().zip(&moved[0]).all(|(a, b)| (a - b).abs() < 1e-4));

        // Another pattern: other features; a constant frame gives zeros, not NaN.
        let mut other = image.clone();
        other.slice_mut(s![1, 1, .., ..]).fill(4.0);
        other[[0, 1, 0, 0]] = 50.0;
        let changed = probe_features(&other, &mask);
        assert!(changed[0][PROBE_GRID * PROBE_GRID..].iter().all(|&v| v == 0.0));
        assert!(changed[0].iter().zip(&features[0]).any(|(a, b)| (a - b).abs() > 0.1));
    }
}
