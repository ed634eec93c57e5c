//! `diffusion evaluate` (issue 6, item 7): how faithful, realistic, diverse and original a trained ControlNet's images
//! are, on real train subjects of a cohort. For each of `subjects` subjects chosen by the seed (alternating between
//! the sexes), `samples` subjects are generated from its own mask and prompt, all slices, ED and ES, with the
//! sampling code of `diffusion generate` ([`generate_subject`]). Then, on every 2D image whose mask has a heart label
//! (1–3; other slices carry no condition to check):
//!
//! - **mask fidelity** — Dice of the [`Segmenter`]'s labels on the generated image vs the conditioning mask, beside
//!   the segmenter on the real image vs its mask, and the *shuffled-mask control*: the generated image vs the mask of
//!   another evaluated subject (the next one in the chosen order, a fixed derangement), which must score far lower.
//!   Subject tensors are cropped on the LV centroid, so the control differs in shape and size, not in position.
//!   Overall and per `sex` and `bmi_class`; one Dice per volume (a frame's heart images pooled, as ACDC scores) and
//!   one per 2D image;
//! - **Fréchet distance** of segmenter bottleneck features: each sample's images vs the images of the real train
//!   subjects not evaluated, beside the evaluated subjects' real images vs the same reference — two sets of one size;
//! - **diversity** — mean MS-SSIM between the samples of one slice, beside real slices of two subjects;
//! - **memorisation** — the share of generated images whose nearest real train image (NCC) reaches 0.95, beside the
//!   same share for the val/test subjects' images;
//! - **attribute fidelity** — a linear probe per attribute fit on every real subject not evaluated: the other train
//!   subjects and the val/test subjects (16 × 16 average-pooled ED and ES images of a slice, each standardised over
//!   its cells so that a global shift of brightness or contrast does not read as an attribute), predicting each
//!   generated subject by majority over its slices, scored against the prompted value, beside the evaluated
//!   subjects' real images;
//! - **prompt swaps** ([`super::prompt_swap`]) — one more sample per subject and swapped attribute (sex, BMI
//!   class, where a probe can score it), from the first sample's seed with that attribute of the prompt changed:
//!   does the probe's score move the way the prompt did?
//!
//! Writes `evaluation.json` and `evaluation.md` into a new `out` folder (built beside it and renamed when complete).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use cmr_core::atomic::{self, OutputDir};
use cmr_core::attributes::AttributeBins;
use cmr_core::{CohortRow, Source, Split};
use cmr_nn::text::SentenceEncoder;
use ndarray::Array4;
use rand::seq::SliceRandom;

use super::measures::{
    heart_planes, plane_of, probe_classes, probe_subjects, DiceUnit, Evaluation, Plane, Real, PROBE_GRID,
};
use super::msssim::WINDOW;
use super::prompt_swap::{plan_swaps, SwappedSample, SWAPPED};
use super::report::{EvaluatedSubject, EvaluationOptions, EvaluationReport};
use super::segmenter::{Analysis, Geometry, Segmenter};
use crate::error::{DiffusionError, Result};
use crate::pipeline::generate::{generate_subject, open_controlnet_model, Networks, SamplingOptions};
use crate::pipeline::text::PromptTable;

/// Everything an evaluation needs.
#[derive(Debug)]
pub struct EvaluateConfig<'a> {
    /// Model folder with a base UNet and a ControlNet.
    pub model: PathBuf,
    /// Cohort folder; its real train subjects are evaluated.
    pub cohort: PathBuf,
    /// Output folder to write (`evaluation.json`, `evaluation.md`).
    pub out: PathBuf,
    /// Real train subjects to evaluate. Default 16; at least 2.
    pub subjects: usize,
    /// Samples generated per subject. Default 2; at least 2.
    pub samples: usize,
    /// DDIM steps, guidance, ControlNet scale and batch.
    pub sampling: SamplingOptions,
    /// Root seed: the choice of subjects, every sample's noise, the probes. Default 0.
    pub seed: u64,
    /// myopari's `tiramisu_acdc_fp32.onnx`.
    pub segmenter: PathBuf,
    /// The frozen text encoder.
    pub text_encoder: &'a SentenceEncoder,
    /// Where to sample.
    pub device: Device,
    /// Replace an existing `out`.
    pub force: bool,
}

/// Evaluates the model; `progress(done, total)` after each generated sample.
pub fn evaluate(cfg: &EvaluateConfig, progress: &dyn Fn(usize, usize)) -> Result<EvaluationReport> {
    // 1. check inputs
    cfg.sampling.check()?;
    if cfg.subjects < 2 {
        let message = format!("must be at least 2 (the shuffled-mask control pairs subjects), got {}", cfg.subjects);
        return Err(DiffusionError::option("subjects", message));
    }
    if cfg.samples < 2 {
        let message = format!("must be at least 2 (diversity compares samples of one slice), got {}", cfg.samples);
        return Err(DiffusionError::option("samples", message));
    }
    let out = OutputDir::create(&cfg.out, cfg.force)?;
    let model = open_controlnet_model(&cfg.model)?;
    let rows = cmr_core::cohort::read(&cfg.cohort)?;
    let real_rows =
        |splits: &'static [Split]| rows.iter().filter(move |r| r.source == Source::Real && splits.contains(&r.split));
    let train = load_subjects(&cfg.cohort, real_rows(&[Split::Train]), None)?;
    if train.len() < 2 * cfg.subjects {
        let message = format!(
            "the cohort has {} real train subjects; the evaluation needs twice --subjects ({}): as many others are \
             the reference of the Fréchet distance",
            train.len(),
            cfg.subjects
        );
        return Err(DiffusionError::option("subjects", message));
    }
    let shape = train[0].tensor.image.dim();
    let held_out = load_subjects(&cfg.cohort, real_rows(&[Split::Val, Split::Test]), Some(shape))?;
    let geometry = Geometry::for_images(shape.2, shape.3, train[0].tensor.spacing_mm[1]);
    let segmenter = Segmenter::load(&cfg.segmenter, geometry)?;

    // 2. the evaluated subjects (each paired with the next for the shuffled-mask control), then as many reference
    //    subjects for the Fréchet distance
    let order = choose_subjects(&train, 2 * cfg.subjects, cfg.seed);
    let (chosen, reference) = order.split_at(cfg.subjects);

    // 3. generate `samples` subjects from each evaluated subject's mask and prompt, then one more per prompt swap
    //    from the seed of its first sample
    //    (for the attributes a probe can score: without one, the swapped samples would go unused)
    let evaluated = || chosen.iter().map(|&t| train[t].row);
    let fit_on = probe_subjects(&train, chosen, &held_out);
    let probed: Vec<&str> =
        SWAPPED.into_iter().filter(|a| probe_classes(a, fit_on.iter().map(|s| s.row), evaluated()).is_some()).collect();
    let (swaps, orders) = plan_swaps(&AttributeBins::default(), &probed, evaluated());
    let networks = Networks::load(&model, cfg.sampling.steps, &cfg.device)?;
    let (sampler, batch) = (networks.sampler(&cfg.sampling), cfg.sampling.batch);
    let prompts = chosen.iter().map(|&t| train[t].row.prompt.as_str()).chain(swaps.iter().map(|s| s.prompt.as_str()));
    let table = PromptTable::build(cfg.text_encoder, prompts)?;
    tracing::info!(subjects = chosen.len(), samples = cfg.samples, swaps = swaps.len(), "generating");
    let total = chosen.len() * cfg.samples + swaps.len();
    let sample_seed = |row: &CohortRow, k: usize| {
        cmr_core::seed::derive(cfg.seed, &["diffusion", "evaluate", &row.subject_id, &k.to_string()])
    };
    let mut generated: Vec<Vec<Array4<f32>>> = Vec::with_capacity(chosen.len());
    for (j, &t) in chosen.iter().enumerate() {
        let Real { row, tensor } = &train[t];
        let mut samples = Vec::with_capacity(cfg.samples);
        for k in 0..cfg.samples {
            let seed = sample_seed(row, k);
            samples.push(generate_subject(&sampler, &table, &tensor.mask, &row.prompt, seed, batch, &cfg.device)?);
            progress(j * cfg.samples + k + 1, total);
        }
        generated.push(samples);
    }
    let mut swapped = Vec::with_capacity(swaps.len());
    for (i, swap) in swaps.into_iter().enumerate() {
        let Real { row, tensor } = &train[chosen[swap.evaluated]];
        let seed = sample_seed(row, 0);
        let image = generate_subject(&sampler, &table, &tensor.mask, &swap.prompt, seed, batch, &cfg.device)?;
        swapped.push(SwappedSample { swap, image });
        progress(chosen.len() * cfg.samples + i + 1, total);
    }

    // 4. the segmenter on the heart images of the evaluated and reference subjects, and of the generated ones
    let planes: Vec<Vec<Plane>> = train.iter().map(|s| heart_planes(&s.tensor.mask)).collect();
    tracing::info!(?geometry, "segmenting real and generated heart images");
    let real_analysis = analyse(&segmenter, order.iter().map(|&t| (&train[t].tensor.image, &planes[t])))?;
    let generated_analysis: Vec<Vec<Vec<Analysis>>> = chosen
        .iter()
        .zip(&generated)
        .map(|(&t, samples)| analyse(&segmenter, samples.iter().map(|image| (image, &planes[t]))))
        .collect::<Result<_>>()?;

    // 5. measures
    let evaluation = Evaluation {
        train: &train,
        planes: &planes,
        chosen,
        reference,
        generated: &generated,
        real_analysis: &real_analysis,
        generated_analysis: &generated_analysis,
        swapped: &swapped,
        orders: &orders,
    };
    let probed = evaluation.attributes(&fit_on, cfg.seed)?;
    let report = EvaluationReport {
        model: cfg.model.clone(),
        generator_sha256: model.generator_sha256(),
        cohort: cfg.cohort.clone(),
        segmenter: cfg.segmenter.clone(),
        segmenter_geometry: geometry,
        options: EvaluationOptions {
            subjects: cfg.subjects,
            samples: cfg.samples,
            sampling: cfg.sampling,
            seed: cfg.seed,
        },
        subjects: (0..chosen.len())
            .map(|j| EvaluatedSubject {
                subject_id: train[chosen[j]].row.subject_id.clone(),
                shuffled_partner: train[evaluation.partner(j)].row.subject_id.clone(),
                prompt: train[chosen[j]].row.prompt.clone(),
                swapped_prompts: swapped
                    .iter()
                    .filter(|s| s.swap.evaluated == j)
                    .map(|s| (s.swap.attribute.to_string(), s.swap.prompt.clone()))
                    .collect(),
            })
            .collect(),
        heart_images: chosen.iter().map(|&t| planes[t].len()).sum(),
        dice: evaluation.mask_fidelity(DiceUnit::Volume),
        dice_per_image: evaluation.mask_fidelity(DiceUnit::Image),
        frechet: evaluation.frechet(),
        diversity: evaluation.diversity(),
        memorisation: evaluation.memorisation(&held_out),
        attributes: probed.attributes,
        prompt_swaps: probed.prompt_swaps,
    };

    // 6. write
    atomic::write_json(&out.path().join("evaluation.json"), &report)?;
    atomic::write_bytes(&out.path().join("evaluation.md"), report.markdown().as_bytes())?;
    out.commit()?;
    Ok(report)
}

/// Reads the tensors of `rows`; all must have the shape of the first (or `shape`), with sides of at least
/// [`PROBE_GRID`] (and so of MS-SSIM's window). Without `shape`, `rows` must not be empty.
fn load_subjects<'r>(
    cohort: &Path,
    rows: impl Iterator<Item = &'r CohortRow>,
    mut shape: Option<(usize, usize, usize, usize)>,
) -> Result<Vec<Real<'r>>> {
    let required = shape.is_none();
    let mut subjects = Vec::new();
    for row in rows {
        let path = cohort.join(&row.tensor_path);
        let tensor = cmr_io::store::read_tensor(&path)?;
        let dim = tensor.image.dim();
        let expected = *shape.get_or_insert(dim);
        if dim != expected {
            let message = format!("tensor of shape {dim:?}, expected {expected:?} like the others");
            return Err(DiffusionError::input(&path, message));
        }
        if dim.2.min(dim.3) < PROBE_GRID.max(WINDOW) {
            let message = format!("slices of {}×{} pixels; the evaluation needs at least {PROBE_GRID}", dim.2, dim.3);
            return Err(DiffusionError::input(&path, message));
        }
        subjects.push(Real { row, tensor });
    }
    if required && subjects.is_empty() {
        return Err(DiffusionError::input(cohort, "no real train subject"));
    }
    Ok(subjects)
}

/// `n` indices into `train`, chosen by `seed`: each sex (and the unrecorded) shuffled, then taken in turn.
fn choose_subjects(train: &[Real], n: usize, seed: u64) -> Vec<usize> {
    let mut rng = cmr_core::seed::rng(seed, &["diffusion", "evaluate", "subjects"]);
    let mut by_sex: BTreeMap<Option<cmr_core::Sex>, Vec<usize>> = BTreeMap::new();
    for (t, subject) in train.iter().enumerate() {
        by_sex.entry(subject.row.sex).or_default().push(t);
    }
    let mut queues: Vec<std::vec::IntoIter<usize>> = by_sex
        .into_values()
        .map(|mut group| {
            group.shuffle(&mut rng);
            group.into_iter()
        })
        .collect();
    let mut chosen = Vec::with_capacity(n);
    while chosen.len() < n {
        for queue in &mut queues {
            if let Some(t) = queue.next().filter(|_| chosen.len() < n) {
                chosen.push(t);
            }
        }
    }
    chosen
}

/// The segmenter on the given planes of each image tensor; one vector of analyses per tensor, in plane order.
fn analyse<'a>(
    segmenter: &Segmenter,
    subjects: impl Iterator<Item = (&'a Array4<f32>, &'a Vec<Plane>)>,
) -> Result<Vec<Vec<Analysis>>> {
    let (mut images, mut counts, mut shape) = (Vec::new(), Vec::new(), None);
    for (image, planes) in subjects {
        shape.get_or_insert(image.dim());
        counts.push(planes.len());
        images.extend(planes.iter().map(|&p| plane_of(image, p)));
    }
    let Some((_, _, height, width)) = shape else { return Ok(vec![]) };
    let mut analyses = segmenter.analyse(&images, height, width)?.into_iter();
    Ok(counts.into_iter().map(|n| analyses.by_ref().take(n).collect()).collect())
}
