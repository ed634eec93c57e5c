//! The independent segmenter (issue 6, item 7): myopari's ACDC-trained Tiramisu finds the LV of a phantom slice at
//! the demo scale (64 px, 2 mm), its features are fixed-length, and a bad file gives an error naming it. The ONNX
//! file comes from `scripts/fetch-assets.sh myopari` (CI runs it); without it these tests fail, they do not skip.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cmr_core::{Dataset, Task};
use cmr_diffusion::evaluation::dice::dice_all;
use cmr_diffusion::evaluation::segmenter::{Geometry, Segmenter};
use cmr_io::ingest::IngestConfig;
use cmr_io::store::SubjectTensor;
use cmr_nn::resolve::{Resolver, MYOPARI};
use cmr_phantom::{Layout, PhantomConfig, Scenario};

/// models/external/myopari/tiramisu_acdc_fp32.onnx.
pub fn segmenter_path() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/external");
    let resolver = Resolver { external_root: root, hf_cache: None, ..Default::default() };
    let model = resolver.resolve(&MYOPARI).expect("myopari's segmenter (run scripts/fetch-assets.sh myopari)");
    model.file(MYOPARI.files[0]).to_path_buf()
}

/// One phantom subject at the demo scale: ACDC layout, ingested at 64 × 64 pixels of 2 mm, 8 slices.
fn phantom_subject() -> &'static SubjectTensor {
    static SUBJECT: OnceLock<SubjectTensor> = OnceLock::new();
    SUBJECT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let scenario = Scenario::builtin("balanced").unwrap().unwrap();
        let raw = dir.path().join("phantom");
        let cfg =
            PhantomConfig { out: raw.clone(), layout: Layout::Acdc, subjects: 1, scenario, seed: 3, force: false };
        cmr_phantom::run(&cfg, &|_, _| {}).unwrap();
        let cohort = dir.path().join("cohort");
        let ingest = IngestConfig {
            task: Task::Disease,
            size: 64,
            spacing_mm: 2.0,
            ..IngestConfig::new(Dataset::Acdc, &raw, &cohort)
        };
        cmr_io::ingest::run(&ingest, &|_, _| {}).unwrap();
        let rows = cmr_core::cohort::read(&cohort).unwrap();
        cmr_io::store::read_tensor(&cohort.join(&rows[0].tensor_path)).unwrap()
    })
}

#[test]
fn the_segmenter_finds_the_lv_of_a_phantom_slice() {
    // Prepare: the ED and ES images of the mid-ventricular slice.
    let subject = phantom_subject();
    let (_, slices, h, w) = subject.image.dim();
    let mid = slices / 2;
    let plane = |a: &ndarray::Array4<f32>, f: usize| a.slice(ndarray::s![f, mid, .., ..]).iter().copied().collect();
    let images: Vec<Vec<f32>> = (0..2).map(|f| plane(&subject.image, f)).collect();
    let geometry = Geometry::for_images(h, w, subject.spacing_mm[1]);
    let segmenter = Segmenter::load(&segmenter_path(), geometry).unwrap();

    // Execute.
    let analyses = segmenter.analyse(&images, h, w).unwrap();

    // Assert: labels in the project's codes on the input grid that overlap the phantom's LV well; one 48-value
    // feature vector per image; `segment` and `features` agree with `analyse`.
    for (f, analysis) in analyses.iter().enumerate() {
        let truth: Vec<u8> = subject.mask.slice(ndarray::s![f, mid, .., ..]).iter().copied().collect();
        assert_eq!(analysis.mask.len(), h * w);
        assert!(analysis.mask.iter().all(|&l| l <= 3));
        let [lv, myo, _] = dice_all(&analysis.mask, &truth);
        assert!(lv.unwrap() > 0.7, "frame {f}: LV Dice {lv:?}");
        assert!(myo.unwrap() > 0.3, "frame {f}: MYO Dice {myo:?}");
        assert_eq!(analysis.features.len(), 48);
        assert!(analysis.features.iter().all(|v| v.is_finite()));
    }
    assert_eq!(segmenter.segment(&images[..1], h, w).unwrap()[0], analyses[0].mask);
    assert_eq!(segmenter.features(&images[1..], h, w).unwrap()[0], analyses[1].features);
}

#[test]
fn a_file_that_is_not_the_segmenter_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.onnx");
    let geometry = Geometry { content: 96, canvas: 192 };
    let message = Segmenter::load(&missing, geometry).unwrap_err().to_string();
    assert!(message.contains("absent.onnx") && message.contains("scripts/fetch-assets.sh myopari"), "{message}");

    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"not a protobuf").unwrap();
    let message = Segmenter::load(&garbage, geometry).unwrap_err().to_string();
    assert!(message.contains("garbage.onnx"), "{message}");

    let message = Segmenter::load(Path::new(&segmenter_path()), Geometry { content: 96, canvas: 100 }).unwrap_err();
    let message = message.to_string();
    assert!(message.contains("multiple of 32"), "{message}");
}
