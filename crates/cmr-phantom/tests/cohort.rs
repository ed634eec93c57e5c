//! End-to-end tests of the phantom writer: exact quotas (checked against an independent reading of the scenario
//! file), counts after writing, determinism (byte-identical files), NIfTI round trip through `cmr_io::nifti`, both
//! layouts, anatomy seen in the written masks, and refusal to overwrite.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmr_io::nifti::read_volume;
use cmr_phantom::{run, Layout, PhantomConfig, Scenario};

fn metadata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../metadata")
}

fn silent(_: usize, _: usize) {}

/// Largest remainder written again from the description in the scenario file header, on plain TOML tables.
fn hamilton(n: usize, shares: &BTreeMap<String, f64>) -> BTreeMap<String, usize> {
    let total: f64 = shares.values().sum();
    let mut out: BTreeMap<String, usize> =
        shares.iter().map(|(k, s)| (k.clone(), (n as f64 * s / total).floor() as usize)).collect();
    let left = n - out.values().sum::<usize>();
    let mut rem: Vec<(String, f64)> =
        shares.iter().map(|(k, s)| (k.clone(), n as f64 * s / total - out[k] as f64)).collect();
    rem.sort_by(|a, b| ((b.1 * 1e9).round()).total_cmp(&(a.1 * 1e9).round()).then(a.0.cmp(&b.0)));
    for (k, _) in rem.into_iter().take(left) {
        *out.get_mut(&k).unwrap() += 1;
    }
    out
}

fn table(v: &toml::Value) -> BTreeMap<String, f64> {
    v.as_table()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_float().or(v.as_integer().map(|i| i as f64)).unwrap()))
        .collect()
}

/// (vendor, diagnosis, sex) → count, computed from the scenario file alone.
fn independent_quotas(file: &Path, n: usize) -> BTreeMap<(String, String, String), usize> {
    let doc: toml::Value = toml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for (vendor, nv) in hamilton(n, &table(&doc["vendors"])) {
        let over = doc.get("vendor").and_then(|t| t.get(&vendor));
        let prevalence = over.and_then(|o| o.get("diagnosis")).unwrap_or(&doc["diagnosis"]);
        for (dx, nd) in hamilton(nv, &table(prevalence)) {
            let by_dx = doc.get("sex_by_diagnosis").and_then(|t| t.get(&dx));
            let sex = over.and_then(|o| o.get("sex")).or(by_dx).unwrap_or(&doc["sex"]);
            for (s, c) in hamilton(nd, &table(sex)) {
                if c > 0 {
                    out.insert((vendor.clone(), dx.clone(), s), c);
                }
            }
        }
    }
    out
}

#[test]
fn quotas_equal_an_independent_reading_of_every_scenario_file() {
    for name in ["balanced", "ukbb-like", "vendor-shift"] {
        let file = metadata().join("phantom/scenarios").join(format!("{name}.toml"));
        let scenario = Scenario::load(name, &metadata()).unwrap();
        for n in [1, 7, 13, 50, 97, 200, 1001] {
            let got: BTreeMap<_, _> = cmr_phantom::quotas(&scenario, n)
                .cells
                .into_iter()
                .filter(|c| c.count > 0)
                .map(|c| {
                    (
                        (c.vendor.name().to_string(), c.diagnosis.acdc_code().to_string(), c.sex.code().to_string()),
                        c.count,
                    )
                })
                .collect();
            assert_eq!(got, independent_quotas(&file, n), "{name}, n = {n}");
        }
    }
}

fn info_cfg(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect()
}

#[test]
fn acdc_layout_counts_round_trip_and_anatomy() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("acdc");
    let scenario = Scenario::load("vendor-shift", &metadata()).unwrap();
    let n = 9;
    let cfg = PhantomConfig {
        out: out.clone(),
        layout: Layout::Acdc,
        subjects: n,
        scenario: scenario.clone(),
        seed: 4,
        force: false,
    };
    let report = run(&cfg, &silent).unwrap();
    assert_eq!(report.subjects.len(), n);

    // Counts read back from Info.cfg equal the quotas of the scenario file.
    let mut counted = BTreeMap::new();
    for s in &report.subjects {
        let cfg = info_cfg(&out.join(&s.id).join("Info.cfg"));
        let key = (cfg["Vendor"].clone(), cfg["Group"].clone(), cfg["Sex"].clone());
        *counted.entry(key).or_insert(0) += 1;
        assert_eq!(cfg["Site"], s.site);
        assert_eq!(cfg["ED"], "1");
        assert_eq!(cfg["ES"], (s.es + 1).to_string());
        assert_eq!(cfg["NbFrame"], s.frames.to_string());
    }
    let file = metadata().join("phantom/scenarios/vendor-shift.toml");
    assert_eq!(counted, independent_quotas(&file, n));

    for s in &report.subjects {
        let sub = out.join(&s.id);
        let cine = read_volume(&sub.join(format!("{}_4d.nii.gz", s.id))).unwrap();
        let shape = cine.data.shape().to_vec();
        assert_eq!(shape.len(), 4);
        assert_eq!(shape[3], s.frames);
        assert!((8..=12).contains(&shape[2]), "{shape:?}");
        assert!(cine.data.iter().all(|v| *v >= 0.0 && *v <= 32767.0 && v.fract() == 0.0));
        for frame in [s.ed, s.es] {
            let stem = sub.join(format!("{}_frame{:02}", s.id, frame + 1));
            let img = read_volume(&stem.with_extension("nii.gz")).unwrap();
            let gt = read_volume(&PathBuf::from(format!("{}_gt.nii.gz", stem.display()))).unwrap();
            assert_eq!(img.data.shape(), &shape[..3]);
            assert_eq!(gt.data.shape(), &shape[..3]);
            assert_eq!(img.affine, cine.affine);
            assert_eq!(img.pixdim[..3], cine.pixdim[..3]);
            assert!((1.2..=1.6).contains(&img.pixdim[0]) && img.pixdim[0] == img.pixdim[1]);
            // The 3D frame is the 4D file's frame.
            let from_cine = cine.data.index_axis(ndarray::Axis(3), frame);
            assert_eq!(img.data, from_cine.to_owned().into_dyn());
            // ACDC codes: 1 = RV, 2 = MYO, 3 = LV; all present.
            let mut hist = [0usize; 4];
            for v in gt.data.iter() {
                hist[*v as usize] += 1;
            }
            assert!(hist[1] > 0 && hist[2] > 0 && hist[3] > 0, "{hist:?}");
            if frame == s.ed {
                rv_is_patient_right_of_lv(&gt);
            }
        }
    }
}

/// The RV lies towards the patient's right (RAS +x) of the LV in world space, so any viewer that honours the affine
/// shows it on the image left in radiological display, as ACDC.
fn rv_is_patient_right_of_lv(gt: &cmr_io::nifti::Volume) {
    let centroid = |code: f32| {
        let (mut sum, mut count) = ([0.0f64; 3], 0.0);
        for (idx, v) in gt.data.indexed_iter() {
            if *v == code {
                for (s, row) in sum.iter_mut().zip(&gt.affine) {
                    *s += row[0] * idx[0] as f64 + row[1] * idx[1] as f64 + row[2] * idx[2] as f64;
                }
                count += 1.0;
            }
        }
        sum.map(|s| s / count)
    };
    let (rv, lv) = (centroid(1.0), centroid(3.0));
    assert!(rv[0] > lv[0] + 10.0, "RV x {} vs LV x {}", rv[0], lv[0]);
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario::load("balanced", &metadata()).unwrap();
    let write = |name: &str, seed: u64| {
        let cfg = PhantomConfig {
            out: dir.path().join(name),
            layout: Layout::Acdc,
            subjects: 2,
            scenario: scenario.clone(),
            seed,
            force: false,
        };
        run(&cfg, &silent).unwrap();
        std::fs::read_to_string(dir.path().join(name).join("manifest.json")).unwrap()
    };
    let (a, b, c) = (write("a", 9), write("b", 9), write("c", 10));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let files = |root: &Path| {
        let mut v = vec![];
        for e in std::fs::read_dir(root.join("patient001")).unwrap() {
            v.push(e.unwrap().path());
        }
        v.sort();
        v
    };
    for (fa, fb) in files(&dir.path().join("a")).iter().zip(files(&dir.path().join("b"))) {
        assert_eq!(std::fs::read(fa).unwrap(), std::fs::read(&fb).unwrap(), "{}", fa.display());
    }
}

#[test]
fn mnms_layout_has_the_csv_and_labels_only_at_ed_and_es() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mnms");
    let scenario = Scenario::load("balanced", &metadata()).unwrap();
    let cfg = PhantomConfig { out: out.clone(), layout: Layout::Mnms1, subjects: 4, scenario, seed: 1, force: false };
    let report = run(&cfg, &silent).unwrap();
    let text = std::fs::read_to_string(out.join("211230_M&Ms_Dataset_information_diagnosis_opendataset.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "External code,VendorName,Vendor,Centre,ED,ES,Age,Pathology,Sex,Height,Weight");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4);
    for (row, s) in rows.iter().zip(&report.subjects) {
        assert_eq!(row[0], s.id);
        assert_eq!(row[7], s.diagnosis.mnms_code());
        assert!(row[7] != "MINF");
        assert_eq!(row[4], "0");
        let sub = out.join("Training/Labeled").join(&s.id);
        let img = read_volume(&sub.join(format!("{}_sa.nii.gz", s.id))).unwrap();
        let gt = read_volume(&sub.join(format!("{}_sa_gt.nii.gz", s.id))).unwrap();
        assert_eq!(img.data.shape(), gt.data.shape());
        for t in 0..s.frames {
            let frame = gt.data.index_axis(ndarray::Axis(3), t);
            let labelled = frame.iter().any(|v| *v > 0.0);
            assert_eq!(labelled, t == s.ed || t == s.es, "frame {t}");
        }
        // M&Ms codes: 1 = LV lies inside the MYO ring: the LV centroid is surrounded by label 2 somewhere.
        let ed = gt.data.index_axis(ndarray::Axis(3), s.ed);
        assert!(ed.iter().any(|v| *v == 1.0) && ed.iter().any(|v| *v == 3.0));
    }
}

#[test]
fn existing_output_is_refused_without_force_and_nothing_partial_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exists");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let scenario = Scenario::load("balanced", &metadata()).unwrap();
    let cfg = PhantomConfig { out: out.clone(), layout: Layout::Acdc, subjects: 1, scenario, seed: 0, force: false };
    let err = run(&cfg, &silent).unwrap_err().to_string();
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("keep.txt")).unwrap(), "mine");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let zero = PhantomConfig { subjects: 0, out: dir.path().join("zero"), ..cfg };
    assert!(run(&zero, &silent).is_err());
    assert!(!dir.path().join("zero").exists());
}

#[test]
fn unknown_scenario_keys_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("odd.toml");
    std::fs::write(
        &file,
        "description = \"x\"\nvendors = { Siemens = 1 }\ndiagnosis = { NOR = 1 }\nsex = { F = 1 }\nprevalence = 3\n",
    )
    .unwrap();
    let err = Scenario::load(file.to_str().unwrap(), &metadata()).unwrap_err().to_string();
    assert!(err.contains("odd.toml") && err.contains("prevalence"), "{err}");
}
