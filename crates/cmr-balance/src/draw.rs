//! Drawing the synthetic subjects of a plan: target attributes, mask source, prompt and seed for each one.
//!
//! For each stratum that gets `k` synthetic subjects, in stratum order, with the stream
//! `seed::rng(root, ["balance", "plan", stratum name])` (so a stratum's draws do not depend on the other strata):
//! 1. a *donor* is drawn uniformly from the stratum's real train subjects; the synthetic subject takes its sex,
//!    label, diagnosis and site — the stratum's own values for every key, and the real distribution of the rest;
//! 2. age = donor's age + U(−2.5, 2.5) years, and BMI = donor's BMI + U(−1, 1) kg/m² (a kernel draw from the
//!    stratum's real distribution), reflected into the band — the stratum's age band / BMI class when it is a key,
//!    else the donor's — rounded to 0.1 and kept inside the band; a donor without age (BMI) gives none;
//! 3. the mask source follows the rule of [`crate::mask`];
//! 4. the prompt comes from `cmr_core::prompt` (the reference template); `plan_id` is `synthetic:NNNNNN` (1-based,
//!    plan order) and the subject's seed is `seed::derive(root, ["balance", "synthetic", plan_id])`.

use std::collections::HashMap;

use cmr_core::attributes::Bin;
use cmr_core::{prompt, seed, AttributeBins, Sex};
use rand::Rng;
use rayon::prelude::*;

use crate::mask::{Candidates, MaskIndex, Target, TopTwo};
use crate::strata::{Members, Strata};

/// Half-width of the age jitter (years).
pub const AGE_JITTER: f64 = 2.5;
/// Half-width of the BMI jitter (kg/m²).
pub const BMI_JITTER: f64 = 1.0;

/// Cohort columns the draw reads, one entry per cohort row.
#[derive(Debug, Clone, Copy)]
pub struct Subjects<'a> {
    /// The columns a mask source is chosen from (ids, sites, labels, sexes, ages, BMIs).
    pub candidates: Candidates<'a>,
    /// Stored age bands.
    pub age_band: &'a [Option<&'a str>],
    /// Stored BMI classes.
    pub bmi_class: &'a [Option<&'a str>],
    /// Diagnosis codes.
    pub diagnosis: &'a [&'a str],
}

/// The synthetic subjects of a plan, column by column (the plan file's columns, in order).
#[derive(Debug, Default)]
pub struct PlanColumns<'a> {
    /// `synthetic:NNNNNN`.
    pub plan_id: Vec<String>,
    /// Sex code.
    pub sex: Vec<Option<&'static str>>,
    /// Age in years.
    pub age: Vec<Option<f64>>,
    /// BMI in kg/m².
    pub bmi: Vec<Option<f64>>,
    /// BMI class.
    pub bmi_class: Vec<Option<&'a str>>,
    /// Age band.
    pub age_band: Vec<Option<&'a str>>,
    /// Task label.
    pub label: Vec<i32>,
    /// Diagnosis code.
    pub diagnosis: Vec<&'a str>,
    /// Site the subject is attributed to.
    pub site: Vec<&'a str>,
    /// Subject id of the real train subject whose mask conditions the generation.
    pub mask_source: Vec<&'a str>,
    /// Text prompt.
    pub prompt: Vec<String>,
    /// Generation seed.
    pub seed: Vec<u64>,
}

/// What a draw needs besides the cohort columns.
#[derive(Debug, Clone, Copy)]
pub struct DrawContext<'a> {
    /// The strata of the train split.
    pub strata: &'a Strata,
    /// Real train rows of each stratum (the donors).
    pub donors: &'a Members,
    /// Bins for bands and the prompt template.
    pub bins: &'a AttributeBins,
    /// Root seed.
    pub seed: u64,
    /// Mask sources from the same site only.
    pub per_site: bool,
}

/// Draws `planned[s]` synthetic subjects for every stratum `s` (see the module doc). The strata are drawn in
/// parallel, each from its own stream; the mask-source rule that looks at the previous row runs after, in plan order.
///
/// # Panics
/// If a stratum with `planned[s] > 0` has no donor (the guards ensure one: `--min-real` ≥ 1).
pub fn draw<'a>(ctx: DrawContext<'a>, subjects: Subjects<'a>, planned: &[u64]) -> PlanColumns<'a> {
    let c = subjects.candidates;
    let real_train = (0..ctx.strata.len()).flat_map(|s| ctx.donors.of(s).iter().copied());
    let masks = MaskIndex::new(c, real_train, ctx.per_site);
    // Each stratum's rows are numbered from where the previous strata's end, so every row is complete after the
    // parallel step but for the previous-row rule.
    let mut first = 0;
    let strata: Vec<(usize, u64, usize)> = planned
        .iter()
        .enumerate()
        .filter(|(_, k)| **k > 0)
        .map(|(s, &k)| {
            first += k as usize;
            (s, k, first - k as usize)
        })
        .collect();
    let drawn: Vec<Vec<Drawn<'a>>> =
        strata.into_par_iter().map(|(s, k, first)| draw_stratum(&ctx, &subjects, &masks, s, k, first)).collect();
    let mut plan = PlanColumns::default();
    let mut previous = None;
    for row in drawn.into_iter().flatten() {
        let d = row.donor;
        let mask = row.masks.avoiding(previous);
        previous = Some(mask);
        plan.plan_id.push(row.plan_id);
        plan.seed.push(row.seed);
        plan.prompt.push(row.prompt);
        plan.sex.push(c.sex[d].map(Sex::code));
        plan.age.push(row.age);
        plan.bmi.push(row.bmi);
        plan.bmi_class.push(row.bmi_class);
        plan.age_band.push(row.age_band);
        plan.label.push(c.label[d]);
        plan.diagnosis.push(subjects.diagnosis[d]);
        plan.site.push(c.site[d]);
        plan.mask_source.push(c.subject_id[mask as usize]);
    }
    plan
}

/// One synthetic subject after steps 1, 2 and 4 of the module doc, with its two best mask sources; the
/// previous-row rule (step 3) picks one in plan order.
struct Drawn<'a> {
    donor: usize,
    age: Option<f64>,
    bmi: Option<f64>,
    age_band: Option<&'a str>,
    bmi_class: Option<&'a str>,
    masks: TopTwo,
    plan_id: String,
    seed: u64,
    prompt: String,
}

/// What a prompt is made of: sex, age decade, BMI class and diagnosis.
type PromptKey<'a> = (Option<Sex>, Option<u32>, Option<&'a str>, &'a str);

/// The `k` subjects of stratum `s`, from the stratum's own stream; `first` is the plan index of its first row.
fn draw_stratum<'a>(
    ctx: &DrawContext<'a>,
    subjects: &Subjects<'a>,
    masks: &MaskIndex<'a>,
    s: usize,
    k: u64,
    first: usize,
) -> Vec<Drawn<'a>> {
    let c = subjects.candidates;
    let donors = ctx.donors.of(s);
    assert!(!donors.is_empty(), "stratum {} is planned without a real subject", ctx.strata.name(s));
    let mut rng = seed::rng(ctx.seed, &["balance", "plan", &ctx.strata.name(s)]);
    let band_key = |keys: [&str; 2]| keys.into_iter().find_map(|key| ctx.strata.value_of(s, key));
    let (age_key, bmi_key) = (band_key(["age_band", "age"]), band_key(["bmi_class", "bmi"]));
    // Prompts repeat across thousands of rows: each distinct (sex, decade, BMI class, diagnosis) is built once.
    let mut prompts: HashMap<PromptKey, String> = HashMap::new();
    (0..k as usize)
        .map(|i| {
            // 1. donor
            let d = donors[rng.random_range(0..donors.len())] as usize;
            // 2. age and BMI inside the band
            let age_band = age_key.or_else(|| c.age[d].map(|a| ctx.bins.age_band(a))).or(subjects.age_band[d]);
            let bmi_class = bmi_key.or_else(|| c.bmi[d].map(|b| ctx.bins.bmi_class(b))).or(subjects.bmi_class[d]);
            let age = jitter(&mut rng, c.age[d], AGE_JITTER, bounds(&ctx.bins.age_band, age_band));
            let bmi = jitter(&mut rng, c.bmi[d], BMI_JITTER, bounds(&ctx.bins.bmi_class, bmi_class));
            // 3. mask-source candidates
            let target = Target { site: c.site[d], label: c.label[d], sex: c.sex[d], age, bmi };
            let masks = masks.ranked(&target).expect("the donor itself is a candidate");
            // 4. id, seed, prompt
            let plan_id = format!("synthetic:{:06}", first + i + 1);
            let seed = seed::derive(ctx.seed, &["balance", "synthetic", &plan_id]);
            let key = (c.sex[d], age.map(prompt::decade), bmi_class, subjects.diagnosis[d]);
            let prompt = prompts
                .entry(key)
                .or_insert_with(|| prompt::prompt(ctx.bins, c.sex[d], age, bmi_class, Some(subjects.diagnosis[d])))
                .clone();
            Drawn { donor: d, age, bmi, age_band, bmi_class, masks, plan_id, seed, prompt }
        })
        .collect()
}

/// `[lo, hi)` of the bin labelled `label` (`None` for a label the bins do not have).
fn bounds(bins: &[Bin], label: Option<&str>) -> Option<(f64, f64)> {
    let i = bins.iter().position(|b| Some(b.label.as_str()) == label)?;
    let lo = if i == 0 { f64::NEG_INFINITY } else { bins[i - 1].below.unwrap_or(f64::NEG_INFINITY) };
    Some((lo, bins[i].below.unwrap_or(f64::INFINITY)))
}

/// `value + U(−half, half)`, reflected into `[lo, hi)`, rounded to 0.1 and kept in the band and ≥ 0. The jitter is
/// drawn even for a missing value so that one donor's gaps do not shift the next draws.
fn jitter(rng: &mut impl Rng, value: Option<f64>, half: f64, band: Option<(f64, f64)>) -> Option<f64> {
    let u: f64 = rng.random_range(-half..half);
    let x = value? + u;
    let (lo, hi) = band.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    let x = if x < lo {
        2.0 * lo - x
    } else if x >= hi {
        2.0 * hi - x
    } else {
        x
    };
    Some(((x * 10.0).round() / 10.0).min(hi - 0.1).max(lo).max(0.0))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn jittered_values_stay_in_their_band() {
        let bins = AttributeBins::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..2000 {
            let donor: f64 = rng.random_range(60.0..70.0);
            let age = jitter(&mut rng, Some(donor), AGE_JITTER, bounds(&bins.age_band, Some("60s"))).unwrap();
            assert_eq!(bins.age_band(age), "60s", "{donor} → {age}");
            assert_eq!(age, (age * 10.0).round() / 10.0);
            let bmi = jitter(&mut rng, Some(18.6), BMI_JITTER, bounds(&bins.bmi_class, Some("normal"))).unwrap();
            assert_eq!(bins.bmi_class(bmi), "normal", "{bmi}");
            let young = jitter(&mut rng, Some(0.5), AGE_JITTER, bounds(&bins.age_band, Some("<20"))).unwrap();
            assert!((0.0..20.0).contains(&young), "{young}");
        }
        assert_eq!(jitter(&mut rng, None, AGE_JITTER, None), None);
        assert_eq!(bounds(&bins.bmi_class, Some("obese")), Some((30.0, f64::INFINITY)));
        assert_eq!(bounds(&bins.bmi_class, Some("huge")), None);
    }
}
