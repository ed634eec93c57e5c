//! Helpers shared by the test suites of the workspace: the repository root and the Python venv of the oracle tests
//! (nibabel, pandas, Fairlearn, scikit-learn; made by `scripts/setup-python.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The oracle venv's python, made once per test process (concurrent `setup-python.sh` runs would race on the venv);
/// `None` when `CMR_SKIP_PYTHON_TESTS=1` skips the `test` on purpose.
///
/// # Panics
/// When the venv cannot be made: an oracle test that cannot run fails rather than passes.
pub fn oracle_python(test: &str) -> Option<&'static Path> {
    if std::env::var("CMR_SKIP_PYTHON_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("CMR_SKIP_PYTHON_TESTS=1: {test} skipped");
        return None;
    }
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    Some(PYTHON.get_or_init(|| {
        let setup = repo_root().join("scripts/setup-python.sh");
        let out = Command::new(&setup).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", setup.display()));
        assert!(
            out.status.success(),
            "{} failed; oracle tests need its venv (set CMR_SKIP_PYTHON_TESTS=1 to skip them on purpose):\n{}",
            setup.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("utf-8 path");
        PathBuf::from(stdout.lines().last().expect("setup-python.sh prints the python path").trim())
    }))
}

/// Every file under `dir`, relative to it, sorted (what a stage wrote, for "nothing else was written" checks).
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = entry.expect("a directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p.strip_prefix(dir).expect("under dir").to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files
}
