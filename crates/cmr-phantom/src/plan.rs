//! Subject planning: the scenario's exact quotas become a list of subjects in a seeded random order, each with
//! attributes drawn from the population model conditional on its (sex, condition) group. Every draw uses its own
//! named stream (`cmr_core::seed`), so a subject's attributes depend only on the seed and its position.

use cmr_core::Sex;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::{Condition, Layout, Scenario, Vendor};

/// One planned subject.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SubjectSpec {
    /// Position in the output (0-based).
    pub index: usize,
    /// Id in the layout: `patientNNN` (ACDC, 1-based, at least 3 digits) or a 6-character M&Ms-style code.
    pub id: String,
    /// Scanner vendor.
    pub vendor: Vendor,
    /// Site of the vendor.
    pub site: String,
    /// Sex.
    pub sex: Sex,
    /// Condition.
    pub condition: Condition,
    /// Age in whole years.
    pub age: u32,
    /// Height in cm (0.1 cm).
    pub height_cm: f64,
    /// Weight in kg (0.1 kg).
    pub weight_kg: f64,
}

/// Plans `n` subjects of `scenario` under `seed`: exactly the quota counts, shuffled, attributes drawn.
pub fn plan_subjects(scenario: &Scenario, n: usize, seed: u64, layout: Layout) -> Vec<SubjectSpec> {
    let mut groups: Vec<(Vendor, Condition, Sex)> = Vec::with_capacity(n);
    for cell in scenario.quotas(n).cells {
        groups.extend(std::iter::repeat_n((cell.vendor, cell.diagnosis, cell.sex), cell.count));
    }
    groups.shuffle(&mut cmr_core::seed::rng(seed, &["phantom", "order"]));
    let mut codes = std::collections::BTreeSet::new();
    groups
        .into_iter()
        .enumerate()
        .map(|(index, (vendor, condition, sex))| {
            let mut rng = cmr_core::seed::rng(seed, &["phantom", "attributes", &index.to_string()]);
            let attrs = scenario.population.attributes[&condition];
            let age = attrs.age.sample(&mut rng).floor() as u32;
            let height_cm = round1(scenario.population.height_cm[&sex].sample(&mut rng));
            let bmi = attrs.bmi.sample(&mut rng);
            let weight_kg = round1(bmi * (height_cm / 100.0).powi(2));
            let id = match layout {
                Layout::Acdc => format!("patient{:03}", index + 1),
                Layout::Mnms1 => mnms_code(seed, index, &mut codes),
            };
            SubjectSpec {
                index,
                id,
                vendor,
                site: vendor.site().to_string(),
                sex,
                condition,
                age,
                height_cm,
                weight_kg,
            }
        })
        .collect()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// An M&Ms-1-style external code (letter digit letter digit letter digit, e.g. `A0S9V9`), unique in the cohort.
fn mnms_code(seed: u64, index: usize, taken: &mut std::collections::BTreeSet<String>) -> String {
    const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    for attempt in 0u32.. {
        let mut rng = cmr_core::seed::rng(seed, &["phantom", "code", &index.to_string(), &attempt.to_string()]);
        let code: String = (0..6)
            .map(|i| {
                if i % 2 == 0 {
                    LETTERS[rng.random_range(0..LETTERS.len())] as char
                } else {
                    char::from(b'0' + rng.random_range(0..10u8))
                }
            })
            .collect();
        if taken.insert(code.clone()) {
            return code;
        }
    }
    unreachable!("24³·10³ codes cannot all be taken by a cohort that fits in memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_realises_quotas_and_is_deterministic() {
        let s = Scenario::builtin("vendor-shift").unwrap().unwrap();
        let plan = plan_subjects(&s, 97, 5, Layout::Mnms1);
        assert_eq!(plan, plan_subjects(&s, 97, 5, Layout::Mnms1));
        for cell in s.quotas(97).cells {
            let got = plan
                .iter()
                .filter(|p| (p.vendor, p.condition, p.sex) == (cell.vendor, cell.diagnosis, cell.sex))
                .count();
            assert_eq!(got, cell.count, "{cell:?}");
        }
        let ids: std::collections::BTreeSet<_> = plan.iter().map(|p| &p.id).collect();
        assert_eq!(ids.len(), 97);
    }
}
