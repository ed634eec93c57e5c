//! Do the bootstrap intervals cover the true value at about the nominal rate (issue 5, "Done when")? Datasets are
//! simulated from a population whose group metrics are known exactly; each is audited with a small number of
//! replicates, and the share of 95% intervals containing the truth must lie near 0.95.
//!
//! Population: group A (200 subjects) prevalence 0.4, sensitivity 0.8, specificity 0.7; group B (120 subjects)
//! prevalence 0.5, sensitivity 0.6, specificity 0.95. True values: accuracy(A) = 0.4·0.8 + 0.6·0.7 = 0.74,
//! TPR(A) = 0.8, balanced accuracy(B) = (0.6 + 0.95) / 2 = 0.775, selection rate A 0.4·0.8 + 0.6·0.3 = 0.5 and B 0.5·0.6 + 0.5·0.05 = 0.325, so the
//! demographic parity difference is 0.175 and the equal opportunity difference 0.2 (the groups are far apart, so
//! max − min is the plain difference A − B).

use cmr_audit::audit::{self, Data, Model, Settings};
use cmr_audit::bootstrap::Estimate;
use cmr_audit::disparity::Stat;
use cmr_audit::groups::{Attribute, Grouping};
use cmr_audit::metrics::Metric;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DATASETS: usize = 400;
const REPLICATES: usize = 200;

struct Group {
    label: &'static str,
    n: usize,
    prevalence: f64,
    sensitivity: f64,
    specificity: f64,
}

const GROUPS: [Group; 2] = [
    Group { label: "A", n: 200, prevalence: 0.4, sensitivity: 0.8, specificity: 0.7 },
    Group { label: "B", n: 120, prevalence: 0.5, sensitivity: 0.6, specificity: 0.95 },
];

fn dataset(rng: &mut ChaCha8Rng) -> (Data, Vec<Grouping>) {
    let (mut y_true, mut y_pred, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for g in &GROUPS {
        for _ in 0..g.n {
            let positive = rng.random_bool(g.prevalence);
            let right = rng.random_bool(if positive { g.sensitivity } else { g.specificity });
            y_true.push(positive);
            y_pred.push(right == positive);
            labels.push(Some(g.label.to_string()));
        }
    }
    let model = Model { label: "model".into(), y_pred, y_score: None };
    let grouping = Grouping::new(&[&Attribute { name: "group".into(), values: labels }]);
    (Data { y_true, models: vec![model] }, vec![grouping])
}

fn covers(e: &Estimate, truth: f64) -> bool {
    matches!((e.ci_low, e.ci_high), (Some(low), Some(high)) if low <= truth && truth <= high)
}

#[test]
fn percentile_intervals_cover_the_truth_at_about_the_nominal_rate() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut hits = [0usize; 5];
    for i in 0..DATASETS {
        let (data, groupings) = dataset(&mut rng);
        let settings = Settings { bootstrap: REPLICATES, seed: i as u64, confidence: 0.95, min_group_size: 20 };
        let audit = audit::evaluate(&data, &groupings, &settings);
        let grouping = &audit.models[0].groupings[0];
        let (a, b) = (&grouping.groups[0], &grouping.groups[1]);
        let checks = [
            covers(a.metrics.get(Metric::Accuracy), 0.74),
            covers(a.metrics.get(Metric::Tpr), 0.8),
            covers(b.metrics.get(Metric::BalancedAccuracy), 0.775),
            covers(grouping.fairness.get(Stat::DemographicParityDifference), 0.175),
            covers(grouping.fairness.get(Stat::EqualOpportunityDifference), 0.2),
        ];
        for (hit, covered) in hits.iter_mut().zip(checks) {
            *hit += usize::from(covered);
        }
    }
    // Binomial standard error of a coverage of 0.95 over 400 datasets is 0.011; percentile intervals of
    // proportions run slightly narrow, so the band is asymmetric: [0.91, 0.985].
    let names = [
        "accuracy(A)",
        "tpr(A)",
        "balanced_accuracy(B)",
        "demographic parity difference",
        "equal opportunity difference",
    ];
    for (name, hit) in names.iter().zip(hits) {
        let coverage = hit as f64 / DATASETS as f64;
        eprintln!("{name}: coverage {coverage:.3}");
        assert!((0.91..=0.985).contains(&coverage), "{name}: coverage {coverage} of nominal 0.95");
    }
}
