//! Fréchet distance (issue 6, item 7): zero for identical sets, the 1-D closed form, a diagonal case derived by hand,
//! and a 2-D case with non-commuting covariances against scipy.

use cmr_diffusion::evaluation::frechet::frechet_distance;

fn rows(points: &[[f32; 2]]) -> Vec<Vec<f32>> {
    points.iter().map(|p| p.to_vec()).collect()
}

#[test]
fn identical_sets_are_at_distance_zero() {
    let a = rows(&[[0.0, 1.0], [1.0, 3.0], [2.0, 2.0], [4.0, 7.0]]);
    assert!(frechet_distance(&a, &a).unwrap().abs() < 1e-9);
    assert_eq!(frechet_distance(&a[..1], &a), None, "one vector has no covariance");
}

#[test]
fn one_dimension_gives_the_closed_form() {
    // (μ₁ − μ₂)² + (σ₁ − σ₂)²: {0, 2, 4} has μ 2, σ² 4; {1, 7} has μ 4, σ² 18 (unbiased).
    let a = vec![vec![0.0], vec![2.0], vec![4.0]];
    let b = vec![vec![1.0], vec![7.0]];
    let expected = 4.0 + (2.0 - 18f64.sqrt()).powi(2);
    assert!((frechet_distance(&a, &b).unwrap() - expected).abs() < 1e-9);
}

#[test]
fn diagonal_covariances_add_per_axis() {
    // a: mean 0, Σ = diag(2/3, 8/3); b: mean (3, 1), Σ = diag(8/3, 32/3). Commuting covariances:
    // d² = |μ|² + Σ_axis (σ_a − σ_b)² = 10 + 2/3 + 8/3.
    let a = rows(&[[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]]);
    let b = rows(&[[5.0, 1.0], [1.0, 1.0], [3.0, 5.0], [3.0, -3.0]]);
    assert!((frechet_distance(&a, &b).unwrap() - (10.0 + 2.0 / 3.0 + 8.0 / 3.0)).abs() < 1e-9);
}

#[test]
fn non_commuting_covariances_match_scipy() {
    // Reference (numpy 2.2.6, scipy 1.15.3, the oracle venv of scripts/setup-python.sh), pytorch-fid's formula:
    //   m1, m2 = a.mean(0), b.mean(0); s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    //   ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    //   → 6.8857331262849595
    let a = rows(&[[0.0, 1.0], [1.0, 3.0], [2.0, 2.0], [4.0, 7.0], [3.0, 1.5]]);
    let b = rows(&[[1.0, -1.0], [2.5, 0.0], [0.5, 2.0], [3.0, -2.0], [1.5, 1.0], [2.0, 4.0]]);
    let d = frechet_distance(&a, &b).unwrap();
    assert!((d - 6.8857331262849595).abs() < 1e-9, "{d}");
    assert!((frechet_distance(&b, &a).unwrap() - d).abs() < 1e-9, "symmetric");
}
