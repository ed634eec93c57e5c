//! Per-structure Dice (issue 6, item 7) on hand-computed label maps, including the both-empty convention.

use cmr_diffusion::evaluation::dice::{dice, dice_all, DiceMeans, Structure};

#[test]
fn dice_counts_each_structure_by_its_label() {
    // Prepare: 3 × 4 maps. Truth: LV 4 px, MYO 4 px, RV 2 px. Prediction: LV 3 px (all inside), MYO 3 px of which
    // 2 overlap, RV 2 px of which none overlap.
    #[rustfmt::skip]
    let truth = [
        1, 1, 2, 3,
        1, 1, 2, 3,
        2, 2, 0, 0,
    ];
    #[rustfmt::skip]
    let pred = [
        1, 1, 2, 0,
        1, 2, 0, 0,
        2, 0, 3, 3,
    ];

    // Execute + Assert: LV 2·3/(3+4), MYO 2·2/(3+4), RV 0/(2+2).
    assert_eq!(dice(&pred, &truth, Structure::Lv), Some(6.0 / 7.0));
    assert_eq!(dice(&pred, &truth, Structure::Myo), Some(4.0 / 7.0));
    assert_eq!(dice(&pred, &truth, Structure::Rv), Some(0.0));
    assert_eq!(dice_all(&truth, &truth), [Some(1.0); 3]);
    assert_eq!(dice(&pred, &truth, Structure::Lv), dice(&truth, &pred, Structure::Lv), "symmetric");
}

#[test]
fn a_structure_absent_from_both_maps_is_undefined_and_not_averaged() {
    let truth = [1, 1, 0, 0];
    let empty_rv = dice_all(&[1, 0, 0, 0], &truth);
    assert_eq!(empty_rv, [Some(2.0 / 3.0), None, None]);
    // Only one map has it: 0, counted.
    assert_eq!(dice(&[3, 0, 0, 0], &truth, Structure::Rv), Some(0.0));

    let mut means = DiceMeans::default();
    means.add(empty_rv);
    means.add([Some(1.0), Some(0.5), None]);
    let lv = means.get(Structure::Lv);
    assert_eq!((lv.mean, lv.n), (Some((2.0 / 3.0 + 1.0) / 2.0), 2));
    assert_eq!((means.get(Structure::Myo).mean, means.get(Structure::Myo).n), (Some(0.5), 1));
    assert_eq!((means.get(Structure::Rv).mean, means.get(Structure::Rv).n), (None, 0));
    let json = serde_json::to_value(&means).unwrap();
    assert_eq!(json["RV"], serde_json::json!({"mean": null, "n": 0}));
    assert_eq!(json["MYO"]["mean"], 0.5);
}
