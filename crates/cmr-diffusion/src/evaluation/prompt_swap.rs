//! Prompt swaps: with the mask and the noise fixed, does changing one attribute of the prompt change the image the
//! way the attribute should? This is what rebalancing relies on — it asks for other sexes and BMI classes on the
//! masks it has — and it takes the mask out of the measure: a probe's accuracy on samples made with their own
//! prompt can also come from the geometry, which correlates with sex and BMI.
//!
//! For each evaluated subject and each attribute of [`SWAPPED`], one more sample is made with the seed of the
//! subject's first sample and the prompt with the attribute swapped ([`swap_target`]). The attribute's probe
//! scores each image by the expected position of its class in the attribute's order ([`ordered_values`]), averaged
//! over the slices. A pair is right when the sample prompted with the higher value scores higher: chance is 0.5
//! whatever the classes' frequencies.

use std::collections::BTreeMap;

use cmr_core::attributes::AttributeBins;
use cmr_core::{CohortRow, Sex};
use ndarray::Array4;

/// The attributes swapped.
pub(crate) const SWAPPED: [&str; 2] = ["sex", "bmi_class"];

/// One swap: an evaluated subject's prompt with one attribute changed.
pub(crate) struct Swap {
    /// The evaluated subject: an index into the evaluated subjects.
    pub evaluated: usize,
    /// The attribute swapped, one of [`SWAPPED`].
    pub attribute: &'static str,
    /// The value it is swapped to.
    pub value: String,
    /// The swapped prompt.
    pub prompt: String,
}

/// A swap and the sample made with it, `[2, S, H, W]`.
pub(crate) struct SwappedSample {
    /// What was swapped.
    pub swap: Swap,
    /// The sample.
    pub image: Array4<f32>,
}

/// The swaps of the evaluated subjects `rows` (in their order) for every attribute of `attributes` (those of
/// [`SWAPPED`] a probe can score) the subject records, and each attribute's order, both with `bins`.
pub(crate) fn plan_swaps<'r>(
    bins: &AttributeBins,
    attributes: &[&'static str],
    rows: impl Iterator<Item = &'r CohortRow>,
) -> (Vec<Swap>, BTreeMap<&'static str, Vec<String>>) {
    let orders: BTreeMap<&'static str, Vec<String>> =
        attributes.iter().map(|&a| (a, ordered_values(bins, a))).collect();
    let mut swaps = Vec::new();
    for (evaluated, row) in rows.enumerate() {
        for &attribute in attributes {
            let Some(own) = super::measures::attribute(row, attribute) else { continue };
            let Some(value) = swap_target(&orders[attribute], &own) else { continue };
            if let Some(prompt) = swapped_prompt(bins, row, attribute, value) {
                swaps.push(Swap { evaluated, attribute, value: value.to_string(), prompt });
            }
        }
    }
    (swaps, orders)
}

/// The values of `attribute` from low to high: `F`, `M` for sex; the bins' order for the BMI class.
pub(crate) fn ordered_values(bins: &AttributeBins, attribute: &str) -> Vec<String> {
    match attribute {
        "sex" => vec![Sex::F.code().to_string(), Sex::M.code().to_string()],
        other => bins.labels(other).unwrap_or_default().into_iter().map(str::to_string).collect(),
    }
}

/// The value a subject with `own` is swapped to: from the lower half of `values`, the highest value; from the upper
/// half, the highest of the lower half. Sex swaps F ↔ M; the BMI class swaps underweight or normal to obese and
/// overweight or obese to normal — the usual lean class rather than the rare underweight. `None` when `own` is not
/// in `values`.
pub(crate) fn swap_target<'v>(values: &'v [String], own: &str) -> Option<&'v str> {
    let position = values.iter().position(|v| v == own)?;
    let half = values.len() / 2;
    let target = if position < half { values.len() - 1 } else { half.checked_sub(1)? };
    Some(values[target].as_str())
}

/// The prompt of `row` with `attribute` set to `value`, rendered with `bins`; `None` when `bins` do not render the
/// row's own prompt (the cohort was built with another template) or `value` is not a sex for `sex`.
pub(crate) fn swapped_prompt(bins: &AttributeBins, row: &CohortRow, attribute: &str, value: &str) -> Option<String> {
    let render = |sex: Option<Sex>, bmi_class: Option<&str>| {
        cmr_core::prompt::prompt(bins, sex, row.age, bmi_class, Some(&row.diagnosis))
    };
    if render(row.sex, row.bmi_class.as_deref()) != row.prompt {
        return None;
    }
    match attribute {
        "sex" => Some(render(Some(value.parse().ok()?), row.bmi_class.as_deref())),
        "bmi_class" => Some(render(row.sex, Some(value))),
        _ => None,
    }
}

/// Expected position of an image's class: `probabilities` (one row per slice, over the probe's classes) weighted by
/// `positions` (each class's index in the attribute's order), averaged over the slices.
pub(crate) fn expected_position(probabilities: &[Vec<f64>], positions: &[f64]) -> f64 {
    let per_slice = probabilities.iter().map(|p| p.iter().zip(positions).map(|(p, x)| p * x).sum::<f64>());
    per_slice.sum::<f64>() / probabilities.len().max(1) as f64
}

/// Whether two scored images are ordered as their prompted positions: `(position, score)` each, positions differing.
pub(crate) fn ordered_as_prompted(a: (usize, f64), b: (usize, f64)) -> bool {
    (a.0 > b.0 && a.1 > b.1) || (a.0 < b.0 && a.1 < b.1)
}

/// Share of the pairs of `scored` (`(position, score)` per real subject) with different positions whose scores are
/// ordered alike, and the number of such pairs; `None` without one.
pub(crate) fn concordance(scored: &[(usize, f64)]) -> (Option<f64>, usize) {
    let (mut pairs, mut agree) = (0usize, 0usize);
    for (i, &a) in scored.iter().enumerate() {
        for &b in &scored[i + 1..] {
            if a.0 != b.0 {
                pairs += 1;
                agree += usize::from(ordered_as_prompted(a, b));
            }
        }
    }
    ((pairs > 0).then(|| agree as f64 / pairs as f64), pairs)
}

#[cfg(test)]
mod tests {
    use cmr_core::subject::RawAttributes;
    use cmr_core::{Source, Split};

    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn swaps_cross_the_middle_of_the_order() {
        let bins = AttributeBins::default();
        let bmi = ordered_values(&bins, "bmi_class");
        assert_eq!(bmi, strings(&["underweight", "normal", "overweight", "obese"]));
        let targets: Vec<_> = bmi.iter().map(|own| swap_target(&bmi, own).unwrap()).collect();
        assert_eq!(targets, ["obese", "obese", "normal", "normal"]);
        let sex = ordered_values(&bins, "sex");
        assert_eq!((swap_target(&sex, "F"), swap_target(&sex, "M")), (Some("M"), Some("F")));
        assert_eq!(swap_target(&sex, "X"), None);
    }

    /// A real row whose attribute columns and prompt are derived as ingestion derives them.
    fn row(sex: Sex, age: f64, bmi: f64, diagnosis: &str) -> CohortRow {
        let raw = RawAttributes { sex: Some(sex), age: Some(age), bmi: Some(bmi), ..Default::default() };
        let derived = raw.derive(&AttributeBins::default(), diagnosis);
        CohortRow {
            subject_id: "acdc:s1".into(),
            dataset: "acdc".into(),
            site: "acdc".into(),
            vendor: "Siemens".into(),
            sex: Some(sex),
            age: Some(age),
            height_cm: None,
            weight_kg: None,
            bmi: derived.bmi,
            age_band: derived.age_band,
            bmi_class: derived.bmi_class,
            diagnosis: diagnosis.into(),
            label: 1,
            split: Split::Train,
            source: Source::Real,
            parent_subject: None,
            generator_sha256: None,
            seed: None,
            prompt: derived.prompt,
            tensor_path: String::new(),
            tensor_sha256: String::new(),
        }
    }

    #[test]
    fn a_swapped_prompt_is_the_prompt_of_a_subject_with_the_other_value() {
        let bins = AttributeBins::default();
        let mut subject = row(Sex::F, 54.0, 27.0, "HCM");
        assert_eq!(subject.bmi_class.as_deref(), Some("overweight"));
        let normal = swapped_prompt(&bins, &subject, "bmi_class", "normal").unwrap();
        assert_eq!(normal, row(Sex::F, 54.0, 22.0, "HCM").prompt);
        assert_eq!(swapped_prompt(&bins, &subject, "sex", "M").unwrap(), row(Sex::M, 54.0, 27.0, "HCM").prompt);
        assert_ne!(normal, subject.prompt);
        subject.prompt = "a prompt of another template".into();
        assert_eq!(swapped_prompt(&bins, &subject, "sex", "M"), None);
    }

    #[test]
    fn swaps_are_planned_for_the_given_attributes_only() {
        let bins = AttributeBins::default();
        let rows = [row(Sex::F, 54.0, 27.0, "HCM"), row(Sex::M, 61.0, 19.0, "NOR")];
        let (swaps, orders) = plan_swaps(&bins, &["sex", "bmi_class"], rows.iter());
        let planned: Vec<_> = swaps.iter().map(|s| (s.evaluated, s.attribute, s.value.as_str())).collect();
        assert_eq!(planned, [(0, "sex", "M"), (0, "bmi_class", "normal"), (1, "sex", "F"), (1, "bmi_class", "obese")]);
        assert_eq!(orders.len(), 2);
        let (swaps, orders) = plan_swaps(&bins, &["sex"], rows.iter());
        assert!(swaps.iter().all(|s| s.attribute == "sex") && swaps.len() == 2);
        assert_eq!(orders.keys().copied().collect::<Vec<_>>(), ["sex"]);
    }

    /// Only an attribute with two classes among the probe's subjects, one of them in an evaluated subject, is probed
    /// (and so swapped).
    #[test]
    fn an_attribute_is_probed_with_two_classes_and_an_evaluated_subject_in_one() {
        use crate::evaluation::measures::probe_classes;
        let lean = [row(Sex::F, 54.0, 22.0, "HCM"), row(Sex::M, 60.0, 21.0, "NOR")];
        let mixed = [row(Sex::F, 54.0, 22.0, "HCM"), row(Sex::M, 60.0, 31.0, "NOR")];
        let evaluated = [row(Sex::F, 70.0, 27.0, "HCM")];
        assert_eq!(probe_classes("sex", lean.iter(), evaluated.iter()), Some(strings(&["F", "M"])));
        assert_eq!(probe_classes("bmi_class", lean.iter(), evaluated.iter()), None, "one class only");
        assert_eq!(probe_classes("bmi_class", mixed.iter(), evaluated.iter()), None, "the evaluated class is unseen");
        let evaluated = [row(Sex::F, 70.0, 23.0, "HCM")];
        assert_eq!(probe_classes("bmi_class", mixed.iter(), evaluated.iter()), Some(strings(&["normal", "obese"])));
    }

    #[test]
    fn scores_and_pairs_follow_the_order() {
        // Two slices: class 2 of 3 for sure, then half class 0 and half class 1.
        let score = expected_position(&[vec![0.0, 0.0, 1.0], vec![0.5, 0.5, 0.0]], &[0.0, 1.0, 2.0]);
        assert!((score - 1.25).abs() < 1e-12);
        assert!(ordered_as_prompted((3, 0.9), (1, 0.2)) && ordered_as_prompted((1, 0.2), (3, 0.9)));
        assert!(!ordered_as_prompted((3, 0.2), (1, 0.9)) && !ordered_as_prompted((1, 0.5), (3, 0.5)));
        // Positions 0, 1, 1, 2 scored 0.1, 0.5, 0.3, 0.2: of the 5 pairs with different positions, 3 agree.
        assert_eq!(concordance(&[(0, 0.1), (1, 0.5), (1, 0.3), (2, 0.2)]), (Some(0.6), 5));
        assert_eq!(concordance(&[(1, 0.1), (1, 0.5)]), (None, 0));
    }
}
