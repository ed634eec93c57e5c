//! Subject planning: the scenario's exact quotas become a list of subjects in a seeded random order, each with
//! attributes drawn from the population model conditional on its (sex, condition) group. Every draw uses its own
//! named stream (`cmr_core::seed`), so a subject's attributes depend only on the seed and its position.
//!
//! With several centres per vendor (scenario key `centres = k`), each vendor's subjects are dealt over its k sites
//! by an exact stratified split ([`assign_centres`]): site sizes differ by at most one, and so do the counts of every
//! (condition, sex) cell across sites. The split uses no random stream of its own, so `centres = 1` leaves every
//! subject (order, attributes, id, site) exactly as before.

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
    /// Site: [`Vendor::centre_site`] of the subject's centre (with one centre per vendor, [`Vendor::site`]).
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

/// Plans `n` subjects of `scenario` under `seed`: exactly the quota counts, shuffled, attributes drawn, each vendor's
/// subjects dealt over its `scenario.centres` sites.
pub fn plan_subjects(scenario: &Scenario, n: usize, seed: u64, layout: Layout) -> Vec<SubjectSpec> {
    let mut groups: Vec<(Vendor, Condition, Sex)> = Vec::with_capacity(n);
    for cell in scenario.quotas(n).cells {
        groups.extend(std::iter::repeat_n((cell.vendor, cell.diagnosis, cell.sex), cell.count));
    }
    groups.shuffle(&mut cmr_core::seed::rng(seed, &["phantom", "order"]));
    let centres = assign_centres(&groups, scenario.centres);
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
                site: vendor.centre_site(centres[index]),
                sex,
                condition,
                age,
                height_cm,
                weight_kg,
            }
        })
        .collect()
}

/// The centre (0-based, `< k`) of every planned subject, given its (vendor, condition, sex) cell in planned order.
///
/// Exact stratified split: a vendor's subjects are listed cell by cell (conditions and sexes in name order, as the
/// quota table) and, within a cell, in planned (seeded, shuffled) order; the j-th subject of that list goes to
/// centre `j mod k`. The counter runs on across cells, so
/// - every centre of a vendor gets ⌊n_v/k⌋ or ⌈n_v/k⌉ of its n_v subjects;
/// - every (condition, sex) cell of count c, being a run of c consecutive positions, puts ⌊c/k⌋ or ⌈c/k⌉ subjects
///   in each centre, and so does every condition (its sexes are adjacent): a centre lacks a condition only when
///   the vendor has fewer than k subjects with it;
/// - which subject goes to which centre follows the seeded shuffle, so it changes with the seed, while the counts
///   per centre depend only on the quotas.
///
/// With `k = 1` every subject is at centre 0.
///
/// # Panics
/// If `k` is 0 (a [`Scenario`] is validated to have `centres ≥ 1`).
pub fn assign_centres(groups: &[(Vendor, Condition, Sex)], k: usize) -> Vec<usize> {
    assert!(k >= 1, "a scenario has at least one centre per vendor");
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&i| groups[i]); // stable: planned order within a cell
    let mut centre = vec![0; groups.len()];
    let mut dealt = std::collections::BTreeMap::<Vendor, usize>::new();
    for i in order {
        let j = dealt.entry(groups[i].0).or_insert(0);
        centre[i] = *j % k;
        *j += 1;
    }
    centre
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

    #[test]
    fn centres_are_dealt_per_vendor_cell_by_cell() {
        use Condition::{Hcm, Nor};
        use Sex::{F, M};
        use Vendor::{Philips, Siemens};
        // Planned order (after the shuffle); cells sort as (vendor, condition, sex).
        let groups = [
            (Siemens, Nor, F), // Siemens list: Hcm M (pos 3), Nor F (pos 0, 4, 6), Nor M (pos 2)
            (Philips, Hcm, F), // Philips list: Hcm F (pos 1, 5)
            (Siemens, Nor, M),
            (Siemens, Hcm, M),
            (Siemens, Nor, F),
            (Philips, Hcm, F),
            (Siemens, Nor, F),
        ];
        // Siemens: pos 3 → 0, pos 0 → 1, pos 4 → 2, pos 6 → 0, pos 2 → 1; Philips: pos 1 → 0, pos 5 → 1.
        assert_eq!(assign_centres(&groups, 3), [1, 0, 1, 0, 2, 1, 0]);
        assert_eq!(assign_centres(&groups, 1), [0; 7]);
    }
}
