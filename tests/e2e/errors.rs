//! Bad input at the binary's surface: one clear message naming the file and field, exit code 2, nothing written.

use crate::util::{cohort, files_under, Workspace};

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

/// `cmr-debias cohort summary cohort | head -0`: the reader is gone before the first line. The process ends by
/// SIGPIPE, as any Unix tool would, not by a panic on the failed write (exit code 101 and a backtrace hint).
#[cfg(unix)]
#[test]
fn a_closed_output_pipe_ends_the_process_quietly() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    let ws = cohort();
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fresh descriptors into `fds`, each then owned by exactly one OwnedFd.
    let (read_end, write_end) = unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    drop(read_end);
    let out = Command::new(env!("CARGO_BIN_EXE_cmr-debias"))
        .args(["--quiet", "cohort", "summary", "cohort"])
        .current_dir(ws.path(""))
        .stdout(Stdio::from(write_end))
        .output()
        .expect("spawn cmr-debias");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}
