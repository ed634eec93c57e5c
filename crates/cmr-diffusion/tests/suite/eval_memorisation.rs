//! Nearest-neighbour memorisation check by NCC (issue 6, item 7): invariance to brightness and contrast, sign,
//! a hand-computed case, the constant-image convention and the memorised fraction.

use cmr_diffusion::evaluation::memorisation::{memorised_fraction, NccIndex};
use rand::{Rng, SeedableRng};

fn random_images(seed: u64, count: usize, pixels: usize) -> Vec<Vec<f32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|_| (0..pixels).map(|_| rng.random::<f32>()).collect()).collect()
}

#[test]
fn a_reference_up_to_brightness_and_contrast_is_found_with_ncc_one() {
    let references = random_images(1, 300, 64 * 64);
    let index = NccIndex::new(references.clone());
    for (i, a, b) in [(17, 1.0, 0.0), (123, 0.3, 0.5), (299, 4.0, -2.0)] {
        let query: Vec<f32> = references[i].iter().map(|v| a * v + b).collect();
        let (j, ncc) = index.nearest(&query);
        assert_eq!(j, i, "{a}·x + {b}");
        assert!((ncc - 1.0).abs() < 1e-5, "{a}·x + {b}: NCC {ncc}");
    }
}

#[test]
fn an_inverted_reference_has_ncc_minus_one() {
    // the only reference is the query negated: its NCC is the best there is
    let reference: Vec<f32> = random_images(2, 1, 256).remove(0);
    let index = NccIndex::new(vec![reference.clone()]);
    let inverted: Vec<f32> = reference.iter().map(|v| 1.0 - 2.0 * v).collect();
    let (j, ncc) = index.nearest(&inverted);
    assert_eq!(j, 0);
    assert!((ncc + 1.0).abs() < 1e-6, "NCC {ncc}");
}

#[test]
fn hand_computed_ncc() {
    // query q = [1, 2, 3, 4]: q − q̄ = [−1.5, −0.5, 0.5, 1.5], ‖·‖² = 5.
    // r0 = [1, 3, 2, 4]: r0 − r̄0 = [−1.5, 0.5, −0.5, 1.5]; ⟨·,·⟩ = 2.25 − 0.25 − 0.25 + 2.25 = 4 → NCC 4/5 = 0.8.
    // r1 = [4, 1, 1, 2]: r1 − r̄1 = [2, −1, −1, 0], ‖·‖² = 6; ⟨·,·⟩ = −3 + 0.5 − 0.5 + 0 = −3 → NCC −3/√30.
    // r2 = [0, 0, 5, 5]: r2 − r̄2 = [−2.5, −2.5, 2.5, 2.5], ‖·‖² = 25; ⟨·,·⟩ = 3.75 + 1.25 + 1.25 + 3.75 = 10
    //   → NCC 10/(√5·5) = 2/√5 ≈ 0.894.
    let index = NccIndex::new(vec![vec![1.0, 3.0, 2.0, 4.0], vec![4.0, 1.0, 1.0, 2.0], vec![0.0, 0.0, 5.0, 5.0]]);
    let (j, ncc) = index.nearest(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(j, 2);
    assert!((ncc - 2.0 / 5f64.sqrt()).abs() < 1e-6, "NCC {ncc}");
    let only = |r: Vec<f32>| NccIndex::new(vec![r]).nearest(&[1.0, 2.0, 3.0, 4.0]).1;
    assert!((only(vec![1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-6);
    assert!((only(vec![4.0, 1.0, 1.0, 2.0]) + 3.0 / 30f64.sqrt()).abs() < 1e-6);
}

#[test]
fn constant_images_have_ncc_zero() {
    let index = NccIndex::new(vec![vec![0.5; 16], random_images(3, 1, 16).remove(0)]);
    assert_eq!(index.nearest(&[0.2; 16]), (0, 0.0), "a constant query: NCC 0 with everything, lowest index");
    let only_constant = NccIndex::new(vec![vec![0.7; 16]]);
    assert_eq!(only_constant.nearest(&random_images(4, 1, 16)[0]), (0, 0.0));
}

#[test]
fn batched_and_single_queries_agree() {
    // more queries than one block of the batched product
    let index = NccIndex::new(random_images(5, 40, 100));
    let queries = random_images(6, 300, 100);
    let batched = index.nearest_many(&queries);
    for (q, got) in queries.iter().zip(&batched) {
        let single = index.nearest(q);
        assert_eq!(single.0, got.0);
        assert!((single.1 - got.1).abs() < 1e-6);
    }
}

#[test]
fn memorised_fraction_counts_queries_at_or_above_the_threshold() {
    let references = random_images(7, 50, 400);
    let index = NccIndex::new(references.clone());
    // 3 copies (one with changed contrast) and 7 fresh images, which correlate ~0 with every reference
    let mut queries = random_images(8, 7, 400);
    queries.push(references[3].clone());
    queries.push(references[10].iter().map(|v| 0.5 * v + 0.1).collect());
    queries.push(references[49].clone());
    assert!((memorised_fraction(&index, &queries, 0.95) - 0.3).abs() < 1e-12);
    assert_eq!(memorised_fraction(&index, &queries, -1.0), 1.0);
}
