//! The attribute probe (issue 6, item 7): its loss's gradient against finite differences, fitting separable data,
//! determinism, input errors, and the bootstrap interval of its accuracy.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use cmr_diffusion::evaluation::attribute_probe::{accuracy_ci, penalised_nll, AttributeProbe};
use cmr_nn::grad_check::{check, randomize, GradCheckConfig};
use rand::{Rng, SeedableRng};

#[test]
fn loss_gradients_match_finite_differences() -> Result<()> {
    let (n, d, k) = (7, 4, 3);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let (weight, bias) = (vb.get((k, d), "weight")?, vb.get(k, "bias")?);
    randomize(&varmap, 3, 1.0)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let x: Vec<f64> = (0..n * d).map(|_| rng.random_range(-2.0..2.0)).collect();
    let x = Tensor::from_vec(x, (n, d), &Device::Cpu)?;
    let labels = [0usize, 2, 1, 1, 0, 2, 2];
    let mut one_hot = vec![0.0f64; n * k];
    labels.iter().enumerate().for_each(|(i, &l)| one_hot[i * k + l] = 1.0);
    let one_hot = Tensor::from_vec(one_hot, (n, k), &Device::Cpu)?;
    // a large λ, so a wrong penalty gradient would show
    let cfg = GradCheckConfig { max_entries: None, ..Default::default() };
    let report = check(&[x], &varmap, &cfg, |xs| penalised_nll(&weight, &bias, &xs[0], &one_hot, 0.3))?;
    assert!(report.passed(), "{report}");
    assert_eq!(report.tensors.len(), 3, "the features, the weights and the bias are checked");
    Ok(())
}

/// `per_class` points per class in `dim` dimensions, uniform within ±1 of centres `separation` apart (above 2 the
/// classes are separable), on features of different scales (standardisation must cope), with a constant feature.
fn blobs(seed: u64, classes: usize, per_class: usize, dim: usize, separation: f32) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut features, mut labels) = (Vec::new(), Vec::new());
    for c in 0..classes {
        for _ in 0..per_class {
            let row = (0..dim)
                .map(|j| match j {
                    0 => 7.0,
                    _ => {
                        let centre = if j % classes == c { separation } else { 0.0 };
                        (centre + rng.random_range(-1.0..1.0)) * (j as f32 * 10.0)
                    }
                })
                .collect();
            features.push(row);
            labels.push(c);
        }
    }
    (features, labels)
}

#[test]
fn separable_classes_are_learnt_and_held_out_points_predicted() {
    let (train, train_labels) = blobs(1, 3, 40, 7, 4.0);
    let probe = AttributeProbe::fit(&train, &train_labels, 3, 0).unwrap();
    assert_eq!(probe.predict(&train).unwrap(), train_labels);
    let (test, test_labels) = blobs(2, 3, 30, 7, 4.0);
    let (accuracy, low, high) = accuracy_ci(&test_labels, &probe.predict(&test).unwrap(), 500, 0);
    assert_eq!((accuracy, low, high), (1.0, 1.0, 1.0));
    // Probabilities: rows sum to 1 and their largest is the predicted class.
    for (p, &label) in probe.probabilities(&test).unwrap().iter().zip(&test_labels) {
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{p:?}");
        assert!(p.iter().enumerate().all(|(k, &q)| k == label || q < p[label]), "{p:?} for class {label}");
    }
}

#[test]
fn the_same_seed_gives_the_same_probe() {
    // overlapping classes, so predictions depend on the exact weights
    let (train, labels) = blobs(3, 2, 50, 3, 0.5);
    let (test, _) = blobs(4, 2, 200, 3, 0.5);
    let fit = |seed| AttributeProbe::fit(&train, &labels, 2, seed).unwrap().predict(&test).unwrap();
    assert_eq!(fit(5), fit(5));
}

#[test]
fn bad_inputs_name_the_argument() {
    let err = |features: &[Vec<f32>], labels: &[usize], classes| {
        AttributeProbe::fit(features, labels, classes, 0).unwrap_err().to_string()
    };
    assert!(err(&[], &[], 2).contains("`features`"));
    assert!(err(&[vec![1.0, 2.0], vec![1.0]], &[0, 1], 2).contains("`features`: row 1 has 1 features, expected 2"));
    assert!(err(&[vec![1.0], vec![f32::NAN]], &[0, 1], 2).contains("`features`"));
    assert!(err(&[vec![1.0], vec![2.0]], &[0], 2).contains("`labels`"));
    assert!(err(&[vec![1.0], vec![2.0]], &[0, 2], 2).contains("`labels`: label 2 at row 1"));
    assert!(err(&[vec![1.0], vec![2.0]], &[0, 0], 1).contains("`classes`"));
    let probe = AttributeProbe::fit(&[vec![1.0, 0.0], vec![2.0, 1.0]], &[0, 1], 2, 0).unwrap();
    assert!(probe.predict(&[vec![1.0]]).unwrap_err().to_string().contains("`features`"));
    assert_eq!(probe.predict(&[]).unwrap(), Vec::<usize>::new());
}

#[test]
fn accuracy_interval_brackets_the_estimate_and_repeats_per_seed() {
    let truth: Vec<usize> = (0..200).map(|i| i % 3).collect();
    let predicted: Vec<usize> =
        truth.iter().enumerate().map(|(i, &t)| if i % 4 == 0 { (t + 1) % 3 } else { t }).collect();
    let (accuracy, low, high) = accuracy_ci(&truth, &predicted, 1000, 9);
    assert_eq!(accuracy, 0.75);
    assert!(low < accuracy && accuracy < high, "({low}, {high})");
    // binomial standard error √(0.75·0.25/200) ≈ 0.031: the 95% interval is about ±0.06
    assert!((0.03..0.09).contains(&(accuracy - low)) && (0.03..0.09).contains(&(high - accuracy)), "({low}, {high})");
    assert_eq!(accuracy_ci(&truth, &predicted, 1000, 9), (accuracy, low, high));
    assert_eq!(accuracy_ci(&truth, &truth, 100, 1), (1.0, 1.0, 1.0));
    assert_eq!(accuracy_ci(&[0, 1], &[1, 0], 100, 1), (0.0, 0.0, 0.0));
}
