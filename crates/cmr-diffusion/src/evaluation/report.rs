//! What `diffusion evaluate` finds ([`super::run::evaluate`]), as `evaluation.json` (this module's types, serialised)
//! and `evaluation.md` (the same numbers as tables for people). Neither holds a path of the run's own output or a
//! time, so the same inputs give byte-identical files.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::dice::{DiceMean, DiceMeans, Structure};
use super::segmenter::Geometry;
use crate::pipeline::generate::SamplingOptions;

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationReport {
    /// The model folder evaluated.
    pub model: PathBuf,
    /// sha256 naming the generator ([`crate::pipeline::model_dir::ModelDir::generator_sha256`]).
    pub generator_sha256: String,
    /// The cohort the subjects come from.
    pub cohort: PathBuf,
    /// The segmenter's ONNX file.
    pub segmenter: PathBuf,
    /// Where the segmenter puts an image in its input ([`Geometry::for_images`]).
    pub segmenter_geometry: Geometry,
    /// Options of the run.
    pub options: EvaluationOptions,
    /// The evaluated subjects, in the order the seed chose them.
    pub subjects: Vec<EvaluatedSubject>,
    /// Real 2D images (one frame of one slice) of the evaluated subjects whose mask has a heart label: the images
    /// every per-image number is computed on. Each sample of a subject has as many generated images.
    pub heart_images: usize,
    /// Mask fidelity per subgroup (`overall`, `sex=F`, `bmi_class=normal`, …), one Dice per volume: the heart
    /// images of one frame of a subject pooled, as the ACDC challenge scores segmentations.
    pub dice: BTreeMap<String, DiceGroup>,
    /// The same, one Dice per 2D heart image: basal and apical slices weigh as much as mid-ventricular ones.
    pub dice_per_image: BTreeMap<String, DiceGroup>,
    /// Fréchet distance on segmenter features.
    pub frechet: FrechetReport,
    /// MS-SSIM between samples of one slice, and between real slices.
    pub diversity: DiversityReport,
    /// Nearest real train image by normalised cross-correlation.
    pub memorisation: MemorisationReport,
    /// Attribute probes, by attribute (`sex`, `age_band`, `bmi_class`, `label`); attributes with fewer than two
    /// classes among the probe's training subjects are left out.
    pub attributes: BTreeMap<String, AttributeFidelity>,
    /// Prompt swaps (`sex`, `bmi_class`) scored by the attribute's probe ([`super::prompt_swap`]); an attribute
    /// without a probe or a swap is left out.
    pub prompt_swaps: BTreeMap<String, PromptSwapReport>,
}

/// The options of an evaluation (the config, less paths and the device).
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationOptions {
    /// Real train subjects evaluated.
    pub subjects: usize,
    /// Samples generated per subject.
    pub samples: usize,
    /// DDIM steps, guidance, ControlNet scale and batch of the generated samples.
    #[serde(flatten)]
    pub sampling: SamplingOptions,
    /// Root seed.
    pub seed: u64,
}

/// One evaluated subject.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluatedSubject {
    /// Its id.
    pub subject_id: String,
    /// The subject whose mask its generated images are compared with in the shuffled-mask control.
    pub shuffled_partner: String,
    /// Its prompt, the condition of its samples.
    pub prompt: String,
    /// The prompts of its swapped samples, by attribute swapped.
    pub swapped_prompts: BTreeMap<String, String>,
}

/// Dice of one subgroup of subjects; `n` counts volumes or images ([`EvaluationReport::dice`],
/// [`EvaluationReport::dice_per_image`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiceGroup {
    /// Subjects in the group.
    pub subjects: usize,
    /// Segmenter on the generated images vs their conditioning mask.
    pub generated: DiceMeans,
    /// Segmenter on the real images vs their own mask: what the segmenter achieves on real data.
    pub real: DiceMeans,
    /// Segmenter on the generated images vs another subject's mask (the control: must be far below `generated`).
    pub shuffled: DiceMeans,
    /// The conditioning mask vs that other subject's mask, once per volume or image: what a generator that reproduced
    /// its mask exactly would score in the control, so how far below `generated` the control can fall at all.
    pub mask_overlap: DiceMeans,
}

/// Fréchet distances (the squared form, as FID) between Gaussians fitted to segmenter features. The reference is
/// the heart images of as many other real train subjects as are evaluated (chosen by the seed alike); one sample of
/// the generated subjects and the evaluated subjects' real images are two sets of one size and one geometry, so
/// the two distances have the same estimator bias and differ by realism alone.
#[derive(Debug, Clone, Serialize)]
pub struct FrechetReport {
    /// The reference subjects.
    pub reference_subjects: Vec<String>,
    /// Images in the reference set.
    pub reference_images: usize,
    /// Mean over samples of the distance between one sample of every evaluated subject and the reference.
    pub generated: Option<f64>,
    /// The distance of each sample index.
    pub generated_per_sample: Vec<Option<f64>>,
    /// The real images of the evaluated subjects vs the reference: the floor `generated` is to be compared with.
    pub real: Option<f64>,
}

/// Mean MS-SSIM ([`super::msssim::ms_ssim`]): high means alike.
#[derive(Debug, Clone, Serialize)]
pub struct DiversityReport {
    /// Between the samples of one subject's slice (same mask, same prompt, other seeds), over all pairs.
    pub generated: Option<f64>,
    /// Pairs of samples averaged.
    pub generated_pairs: usize,
    /// Between the real images of a subject and of its shuffled partner at the same slice and frame.
    pub real: Option<f64>,
    /// Real pairs averaged.
    pub real_pairs: usize,
}

/// Memorisation: how close generated images come to a real train image.
#[derive(Debug, Clone, Serialize)]
pub struct MemorisationReport {
    /// NCC at or above which an image counts as a copy.
    pub threshold: f64,
    /// Real train heart images searched.
    pub reference_images: usize,
    /// Fraction of generated heart images whose nearest real train image reaches the threshold.
    pub generated_rate: f64,
    /// Mean NCC of generated images with their nearest real train image.
    pub generated_mean_ncc: f64,
    /// The same rate for the heart images of the val and test subjects, which the generator never saw: how often
    /// the threshold is reached between different real subjects. `None` without val or test subjects.
    pub held_out_rate: Option<f64>,
    /// Held-out images searched.
    pub held_out_images: usize,
}

/// One attribute probe.
#[derive(Debug, Clone, Serialize)]
pub struct AttributeFidelity {
    /// The classes, in the probe's order.
    pub classes: Vec<String>,
    /// Slices the probe was fit on (the real subjects not evaluated: other train subjects, val and test).
    pub train_slices: usize,
    /// Prediction on the generated subjects (one per sample, by majority over its slices) vs the prompted value.
    pub generated: Accuracy,
    /// Prediction on the real images of the evaluated subjects (held out from the probe) vs their recorded value.
    pub real: Accuracy,
}

/// An accuracy with its bootstrap interval.
#[derive(Debug, Clone, Serialize)]
pub struct Accuracy {
    /// Fraction predicted right.
    pub accuracy: f64,
    /// 2.5th percentile of the bootstrap replicates.
    pub lo: f64,
    /// 97.5th percentile.
    pub hi: f64,
    /// Predictions scored.
    pub n: usize,
    /// The accuracy of a guess that ignores the image: the share of the most common true class for a probe's
    /// predictions, 0.5 for the order of a pair.
    pub chance: f64,
}

/// The prompt swaps of one attribute: pairs of samples of one subject, same mask and noise, prompted with two values.
#[derive(Debug, Clone, Serialize)]
pub struct PromptSwapReport {
    /// The attribute's values, low to high; an image's score is the expected position of its class (probe
    /// probabilities, averaged over its slices).
    pub order: Vec<String>,
    /// Share of the pairs whose scores are ordered as their prompted values, with its bootstrap interval.
    pub ordered: Accuracy,
    /// Mean score of the sample prompted with the higher value minus the other's, in positions of `order`.
    pub mean_shift: f64,
    /// The same order between the real images of evaluated subjects with different recorded values: the share of
    /// such pairs of subjects the probe orders right (`None` without one).
    pub real_concordance: Option<f64>,
    /// Pairs of real subjects behind `real_concordance`.
    pub real_pairs: usize,
}

impl EvaluationReport {
    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let o = &self.options;
        let _ = writeln!(md, "# Diffusion evaluation\n");
        let _ = writeln!(
            md,
            "Model `{}` (generator {}), cohort `{}`: {} real train subjects × {} samples, {} DDIM steps, guidance {}, \
             ControlNet scale {}, seed {}. Segmenter `{}`, images resized to {} px on a {}-px canvas. {} heart images \
             per sample.\n",
            self.model.display(),
            &self.generator_sha256[..12.min(self.generator_sha256.len())],
            self.cohort.display(),
            o.subjects,
            o.samples,
            o.sampling.steps,
            o.sampling.guidance,
            o.sampling.conditioning_scale,
            o.seed,
            self.segmenter.display(),
            self.segmenter_geometry.content,
            self.segmenter_geometry.canvas,
            self.heart_images
        );

        let _ = writeln!(md, "## Mask fidelity (Dice of the segmenter's labels)\n");
        let _ = writeln!(
            md,
            "A structure absent from both label maps is not counted. *generated*: vs the conditioning mask; *real*: \
             the segmenter on the real image; *shuffled*: vs another subject's mask; *masks*: the conditioning mask \
             itself vs that other mask, the score of the shuffled control for a generator that reproduced its mask \
             exactly.\n"
        );
        let _ = writeln!(
            md,
            "### Per volume: the heart images of one frame (ED or ES) of a subject pooled, as ACDC scores\n"
        );
        dice_table(&mut md, &self.dice);
        let _ = writeln!(md, "\n### Per 2D heart image: apical and basal slices count as much as the others\n");
        dice_table(&mut md, &self.dice_per_image);

        let f = &self.frechet;
        let _ = writeln!(md, "\n## Fréchet distance (segmenter bottleneck features)\n");
        let _ = writeln!(
            md,
            "Reference: {} heart images of {} other real train subjects.\n",
            f.reference_images,
            f.reference_subjects.len()
        );
        let _ = writeln!(md, "| compared set | distance |\n|---|---:|");
        let _ = writeln!(md, "| generated (mean over samples) | {} |", number(f.generated));
        let _ = writeln!(md, "| real images of the same subjects | {} |", number(f.real));

        let d = &self.diversity;
        let _ = writeln!(md, "\n## Diversity (mean MS-SSIM, lower is more diverse)\n");
        let _ = writeln!(md, "| pairs | MS-SSIM | n |\n|---|---:|---:|");
        let _ = writeln!(md, "| samples of one slice | {} | {} |", number(d.generated), d.generated_pairs);
        let _ = writeln!(md, "| real slices of two subjects | {} | {} |", number(d.real), d.real_pairs);

        let m = &self.memorisation;
        let _ = writeln!(md, "\n## Memorisation (nearest real train image by NCC)\n");
        let _ = writeln!(md, "| images | share with NCC ≥ {} | mean nearest NCC |\n|---|---:|---:|", m.threshold);
        let _ = writeln!(md, "| generated | {:.3} | {:.3} |", m.generated_rate, m.generated_mean_ncc);
        let _ = writeln!(md, "| real val/test ({}) | {} | |", m.held_out_images, number(m.held_out_rate));

        let _ =
            writeln!(md, "\n## Attribute fidelity (linear probes on 16×16-pooled ED + ES slices, each standardised)\n");
        let _ = writeln!(md, "| attribute | classes | generated accuracy (95% CI) | real accuracy (95% CI) | chance |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|");
        for (name, a) in &self.attributes {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {:.3} |",
                a.classes.join(", "),
                accuracy_cell(&a.generated),
                accuracy_cell(&a.real),
                a.generated.chance
            );
        }

        let _ = writeln!(md, "\n## Prompt swaps (one attribute of the prompt changed; same mask, same noise)\n");
        let _ = writeln!(
            md,
            "Each subject's first sample beside one made from the same seed with the attribute swapped (F ↔ M; BMI \
             class underweight or normal → obese, overweight or obese → normal). The attribute's probe scores an \
             image by the expected position of its class in the order; a pair counts when the scores are ordered as \
             the prompts. *real*: the same order between real subjects with different values.\n"
        );
        let _ = writeln!(md, "| attribute | order | pairs ordered as prompted (95% CI) | chance | mean shift | real |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
        for (name, swap) in &self.prompt_swaps {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {:.3} | {:+.3} | {}, {} pairs |",
                swap.order.join(" < "),
                accuracy_cell(&swap.ordered),
                swap.ordered.chance,
                swap.mean_shift,
                number(swap.real_concordance),
                swap.real_pairs
            );
        }
        md
    }
}

/// One row per subgroup: generated, real, shuffled and masks for each structure.
fn dice_table(md: &mut String, groups: &BTreeMap<String, DiceGroup>) {
    let _ = write!(md, "| group | subjects |");
    for s in Structure::ALL {
        let _ = write!(md, " {0} generated | {0} real | {0} shuffled | {0} masks |", s.name());
    }
    let _ = writeln!(md, "\n|---|---:|{}", "---:|".repeat(4 * Structure::ALL.len()));
    for (name, group) in groups {
        let _ = write!(md, "| {name} | {} |", group.subjects);
        for s in Structure::ALL {
            for means in [&group.generated, &group.real, &group.shuffled, &group.mask_overlap] {
                let _ = write!(md, " {} |", dice_cell(means.get(s)));
            }
        }
        md.push('\n');
    }
}

fn dice_cell(d: DiceMean) -> String {
    d.mean.map_or_else(|| "–".into(), |m| format!("{m:.3}"))
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.3}"))
}

fn accuracy_cell(a: &Accuracy) -> String {
    format!("{:.3} ({:.3}–{:.3}), n = {}", a.accuracy, a.lo, a.hi, a.n)
}
