//! Several centres (sites) per vendor, the scenario key `centres`: site sizes and condition mix of the `ukbb-like`
//! cohort, determinism by seed, validation of the key, scenarios without the key unchanged, and the site ids as
//! `cmr-io` ingests them from both layouts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cmr_core::Dataset;
use cmr_phantom::{plan_subjects, run, Condition, Layout, PhantomConfig, Scenario, SubjectSpec, Vendor};

fn metadata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../metadata")
}

fn silent(_: usize, _: usize) {}

/// The site of every vendor before `centres` existed, written out (not taken from `Vendor::site`).
fn one_site(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Siemens => "1",
        Vendor::Philips => "2",
        Vendor::Ge => "3",
        Vendor::Canon => "4",
    }
}

/// site → number of subjects.
fn per_site(plan: &[SubjectSpec]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in plan {
        *out.entry(s.site.clone()).or_insert(0) += 1;
    }
    out
}

/// (site, condition) → number of subjects.
fn per_site_condition(plan: &[SubjectSpec]) -> BTreeMap<(String, Condition), usize> {
    let mut out = BTreeMap::new();
    for s in plan {
        *out.entry((s.site.clone(), s.condition)).or_insert(0) += 1;
    }
    out
}

/// ukbb-like, n = 200: Siemens only, NOR 140, HCM 20 (7 F, 13 M), DCM 20, MINF 20 (the scenario's quotas). With
/// `centres = 4` that is 4 sites of exactly 50, each with 35 NOR and 5 of HCM, DCM and MINF.
#[test]
fn ukbb_like_200_subjects_fill_four_siemens_sites_evenly_with_every_condition() {
    // The key is in the file and in the compiled-in copy (the same text, `include_str!`).
    let file = metadata().join("phantom/scenarios/ukbb-like.toml");
    let doc: toml::Value = toml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(doc["centres"].as_integer(), Some(4));
    let scenario = Scenario::load("ukbb-like", &metadata()).unwrap();
    assert_eq!(scenario.centres, 4);
    assert_eq!(
        Scenario::builtin("ukbb-like").unwrap().unwrap(),
        Scenario { source: "<built-in>/ukbb-like.toml".into(), ..scenario.clone() }
    );

    for seed in [0, 1, 7] {
        let plan = plan_subjects(&scenario, 200, seed, Layout::Mnms1);
        let sites = per_site(&plan);
        assert_eq!(sites.keys().map(String::as_str).collect::<Vec<_>>(), ["1", "13", "5", "9"], "seed {seed}");
        for (site, &n) in &sites {
            assert!((49..=51).contains(&n), "seed {seed}: site {site} has {n}");
        }
        let cells = per_site_condition(&plan);
        for site in sites.keys() {
            for (condition, expected) in
                [(Condition::Nor, 35), (Condition::Hcm, 5), (Condition::Dcm, 5), (Condition::Minf, 5)]
            {
                let got = cells.get(&(site.clone(), condition)).copied().unwrap_or(0);
                assert_eq!(got, expected, "seed {seed}: site {site}, {condition}");
            }
        }
        // Sex is spread too: every (condition, sex) cell differs by at most one subject between sites.
        let mut by_cell: BTreeMap<_, Vec<usize>> = BTreeMap::new();
        for s in &plan {
            let counts = by_cell.entry((s.condition, s.sex)).or_insert_with(|| vec![0; 4]);
            counts[["1", "5", "9", "13"].iter().position(|x| *x == s.site).unwrap()] += 1;
        }
        for (cell, counts) in by_cell {
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "seed {seed}: {cell:?} over sites {counts:?}");
        }
    }
}

#[test]
fn centres_follow_the_seed_and_only_the_seed() {
    let scenario = Scenario::load("ukbb-like", &metadata()).unwrap();
    let a = plan_subjects(&scenario, 60, 3, Layout::Mnms1);
    assert_eq!(a, plan_subjects(&scenario, 60, 3, Layout::Mnms1));
    let b = plan_subjects(&scenario, 60, 4, Layout::Mnms1);
    // Another seed: the same site sizes (they follow from the quotas) but other subjects at each site.
    assert_eq!(per_site(&a), per_site(&b));
    assert_eq!(per_site(&a).values().copied().collect::<Vec<_>>(), [15, 15, 15, 15]);
    let who = |plan: &[SubjectSpec]| plan.iter().map(|s| (s.site.clone(), s.age, s.height_cm)).collect::<Vec<_>>();
    assert_ne!(who(&a), who(&b));
}

#[test]
fn centres_zero_is_an_error_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(metadata().join("phantom/scenarios/ukbb-like.toml")).unwrap();
    for (name, bad) in [("zero.toml", "centres = 0"), ("negative.toml", "centres = -1")] {
        let file = dir.path().join(name);
        std::fs::write(&file, text.replace("centres = 4", bad)).unwrap();
        let err = Scenario::load(file.to_str().unwrap(), &metadata()).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("`centres`") && err.contains("≥ 1"), "{err}");
    }
    // A misspelt key is an unknown key, named like any other.
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, text.replace("centres = 4", "centers = 4")).unwrap();
    let err = Scenario::load(file.to_str().unwrap(), &metadata()).unwrap_err().to_string();
    assert!(err.contains("typo.toml") && err.contains("centers"), "{err}");
}

#[test]
fn scenarios_without_the_key_keep_one_site_per_vendor_and_the_same_subjects() {
    for name in ["balanced", "vendor-shift"] {
        let scenario = Scenario::load(name, &metadata()).unwrap();
        assert_eq!(scenario.centres, 1, "{name}");
        for layout in [Layout::Acdc, Layout::Mnms1] {
            for s in plan_subjects(&scenario, 97, 11, layout) {
                assert_eq!(s.site, one_site(s.vendor), "{name}: {}", s.id);
            }
        }
    }
    // ukbb-like without the key: one site "1", and otherwise the very subjects of the 4-centre cohort (the split
    // draws no random numbers, so order, ids and attributes do not depend on it).
    let text = std::fs::read_to_string(metadata().join("phantom/scenarios/ukbb-like.toml")).unwrap();
    assert!(text.contains("\ncentres = 4\n"));
    let population = cmr_phantom::Population::default();
    let four = Scenario::parse(&text, Path::new("ukbb-like.toml"), population.clone()).unwrap();
    let one = Scenario::parse(&text.replace("\ncentres = 4\n", "\n"), Path::new("ukbb-like.toml"), population).unwrap();
    assert_eq!(one.centres, 1);
    let (p4, p1) = (plan_subjects(&four, 200, 0, Layout::Mnms1), plan_subjects(&one, 200, 0, Layout::Mnms1));
    assert!(p1.iter().all(|s| s.site == "1"));
    let strip = |plan: &[SubjectSpec]| {
        plan.iter().map(|s| SubjectSpec { site: String::new(), ..s.clone() }).collect::<Vec<_>>()
    };
    assert_eq!(strip(&p1), strip(&p4));
}

/// Site ids as `ingest` reads them: the M&Ms `Centre` integer becomes `mnms1-centre{N}`; ACDC's `Site` is kept.
#[test]
fn both_layouts_write_centre_sites_that_ingest_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario::load("ukbb-like", &metadata()).unwrap();
    for (layout, dataset, prefix) in
        [(Layout::Mnms1, Dataset::Mnms1, "mnms1-centre"), (Layout::Acdc, Dataset::Acdc, "")]
    {
        let out = dir.path().join(format!("{layout:?}"));
        let cfg =
            PhantomConfig { out: out.clone(), layout, subjects: 4, scenario: scenario.clone(), seed: 2, force: false };
        let report = run(&cfg, &silent).unwrap();
        let found = cmr_io::adapters::discover(dataset, &out).unwrap();
        assert_eq!(found.subjects.len(), 4);
        let truth: BTreeMap<_, _> = report.subjects.iter().map(|s| (s.id.clone(), s.site.clone())).collect();
        let mut sites = BTreeSet::new();
        for record in &found.subjects {
            assert_eq!(record.site, format!("{prefix}{}", truth[&record.id]), "{layout:?}: {}", record.id);
            sites.insert(record.site.clone());
        }
        let expected: BTreeSet<String> = ["1", "5", "9", "13"].iter().map(|c| format!("{prefix}{c}")).collect();
        assert_eq!(sites, expected, "{layout:?}");
    }
}
