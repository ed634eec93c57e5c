//! Test harness: run the binary in a temporary folder and read what it printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub use cmr_testkit::files_under;

/// A temporary working folder that runs `cmr-debias` commands.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    /// Path of `rel` inside the workspace.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `cmr-debias ARGS…` in the workspace (quiet, no colour).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cmr-debias"))
            .arg("--quiet")
            .args(args)
            .current_dir(self.dir.path())
            .env("CMR_LOG", "warn")
            .output()
            .expect("spawn cmr-debias")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "cmr-debias {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs a command that must fail with exit code 2; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "cmr-debias {args:?} should fail with 2:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }
}

/// A workspace holding `cohort/`: a copy of the small phantom cohort shared by the stage tests.
pub fn cohort() -> Workspace {
    let ws = Workspace::new();
    copy_dir(shared_cohort(), &ws.path("cohort"));
    ws
}

/// A 24-subject phantom ingested with small tensors (disease task), made once per test run: the phantom is the slow
/// part. It lives in Cargo's per-target temporary folder, named by process so that concurrent runs do not collide.
fn shared_cohort() -> &'static Path {
    static COHORT: OnceLock<PathBuf> = OnceLock::new();
    COHORT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("stage-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let run = |args: &[&str]| {
            let out =
                Command::new(env!("CARGO_BIN_EXE_cmr-debias")).arg("--quiet").args(args).current_dir(&root).output();
            let out = out.expect("spawn cmr-debias");
            assert!(out.status.success(), "cmr-debias {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&["phantom", "--out", "phantom", "--subjects", "24", "--seed", "5"]);
        run(&[
            "ingest",
            "--dataset",
            "acdc",
            "--root",
            "phantom",
            "--out",
            "cohort",
            "--task",
            "disease",
            "--size",
            "16",
            "--slices",
            "2",
        ]);
        std::fs::remove_dir_all(root.join("phantom")).unwrap();
        root.join("cohort")
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
