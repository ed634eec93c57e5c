//! The HTML report renders with its charts (issue 5, "Done when"): headless Chromium (Debian's `chromium`, installed
//! by `scripts/setup-chromium.sh`) screenshots `report.html`, and the screenshot must show the page — mostly white
//! paper, but with text, the bar colours of the charts and many distinct colours.
//!
//! When Chromium cannot be installed this test FAILS; set `CMR_SKIP_BROWSER_TESTS=1` to skip it on purpose.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use cmr_audit::AuditConfig;

use crate::common::{simulate, write_predictions};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 1600;

fn chromium() -> Option<PathBuf> {
    if std::env::var("CMR_SKIP_BROWSER_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("CMR_SKIP_BROWSER_TESTS=1: HTML render test skipped");
        return None;
    }
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-chromium.sh");
    let out = Command::new(&setup).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", setup.display()));
    assert!(
        out.status.success(),
        "{} failed; this test needs chromium (set CMR_SKIP_BROWSER_TESTS=1 to skip it on purpose):\n{}",
        setup.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    Some(PathBuf::from(stdout.lines().last().expect("setup-chromium.sh prints the binary path").trim()))
}

/// Decodes an RGB(A) PNG into `(width, height, rgb pixels)`.
fn decode(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let mut reader =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    let pixels = buf[..info.buffer_size()].chunks_exact(channels).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, info.height, pixels)
}

#[test]
fn the_html_report_renders_its_charts_in_headless_chromium() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let subjects = simulate(400, 9);
    let mut cfg = AuditConfig::new(
        write_predictions(&dir.path().join("b.csv"), &subjects, false, true),
        dir.path().join("audit"),
    );
    cfg.compare = Some(write_predictions(&dir.path().join("a.csv"), &subjects, true, false));
    cfg.by = vec!["sex".into(), "site".into()];
    cfg.bootstrap = 100;
    cmr_audit::run(&cfg).unwrap();
    let html = dir.path().join("audit/report.html").canonicalize().unwrap();
    let png = dir.path().join("shot.png");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(&chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(png.exists(), "chromium wrote no screenshot ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));

    let (width, height, pixels) = decode(&png);
    assert_eq!((width, height), (WIDTH, HEIGHT));
    let white = pixels.iter().filter(|p| p.iter().all(|&c| c >= 250)).count();
    let inked = pixels.len() - white;
    assert!(inked * 100 > pixels.len() * 3, "only {inked} of {} pixels are not white", pixels.len());
    assert!(white * 100 > pixels.len() * 40, "the page is mostly white paper, got {white} white pixels");
    let distinct: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(distinct.len() > 50, "{} distinct colours", distinct.len());
    // The first chart's bars: balanced accuracy in #0072B2, sensitivity in #009E73 (opaque groups, exact colours).
    for (name, colour) in [("balanced accuracy", [0x00, 0x72, 0xB2]), ("sensitivity", [0x00, 0x9E, 0x73])] {
        let count = pixels.iter().filter(|&&p| p == colour).count();
        assert!(count > 500, "{name} bars: {count} pixels of {colour:?}");
    }
}
