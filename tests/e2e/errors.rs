//! Bad input at the binary's surface: one clear message naming the file and field, exit code 2, nothing written.

use crate::util::{files_under, Workspace};

#[test]
fn an_existing_output_is_kept_without_force() {
    let ws = Workspace::new();
    ws.ok(&["phantom", "--out", "p", "--subjects", "2", "--seed", "1"]);
    let before = files_under(&ws.path("p"));
    let err = ws.fails(&["phantom", "--out", "p", "--subjects", "3", "--seed", "2"]);
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
    assert_eq!(files_under(&ws.path("p")), before);
    ws.ok(&["ingest", "--dataset", "acdc", "--root", "p", "--out", "c", "--task", "disease"]);
    let err = ws.fails(&["ingest", "--dataset", "acdc", "--root", "p", "--out", "c", "--task", "disease"]);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn an_info_cfg_without_ed_is_named_and_nothing_is_written() {
    let ws = Workspace::new();
    ws.ok(&["phantom", "--out", "p", "--subjects", "2", "--seed", "1"]);
    let cfg = ws.path("p/patient001/Info.cfg");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let without_ed: String = text.lines().filter(|l| !l.starts_with("ED")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&cfg, without_ed).unwrap();
    let err = ws.fails(&["ingest", "--dataset", "acdc", "--root", "p", "--out", "c", "--task", "disease"]);
    assert!(err.contains("Info.cfg") && err.contains("ED"), "{err}");
    assert!(!ws.path("c").exists());
    let leftovers: Vec<_> = std::fs::read_dir(ws.path("")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only the phantom folder remains: {leftovers:?}");
}

#[test]
fn an_unknown_dataset_or_scenario_is_refused() {
    let ws = Workspace::new();
    let err = ws.run(&["ingest", "--dataset", "acdcc", "--root", "x", "--out", "y"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("acdc, mnms1, mnms2, ukbb"));
    let err = ws.fails(&["phantom", "--out", "p", "--scenario", "ukbb-lik"]);
    assert!(err.contains("ukbb-lik"), "{err}");
    assert!(!ws.path("p").exists());
}
