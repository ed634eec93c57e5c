//! Issue 2: subjects listed in the metadata whose images are absent are skipped with ONE warning listing them.
//! Alone in its test binary: `tracing`'s per-callsite interest cache is process-wide, so a thread-local subscriber
//! can miss events while other tests run concurrently without one.

#[path = "suite/common.rs"]
mod common;

use std::sync::{Arc, Mutex};

use cmr_core::Dataset;
use cmr_io::ingest::{self, IngestConfig};
use common::*;

/// Collects what `tracing` writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn subjects_without_images_are_listed_in_one_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("acdc");
    acdc_dataset(&root);
    let extra = root.join("training/patient005");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("Info.cfg"), "ED: 1\nES: 2\nGroup: HCM\nNbFrame: 2\n").unwrap();
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt().with_writer(captured.clone()).with_ansi(false).finish();
    let report = tracing::subscriber::with_default(subscriber, || {
        ingest::run(
            &IngestConfig { size: 24, slices: 3, ..IngestConfig::new(Dataset::Acdc, &root, tmp.path().join("c")) },
            &|_, _| {},
        )
    })
    .unwrap();
    assert_eq!(report.skipped_missing_images, ["acdc:patient004", "acdc:patient005"]);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("patient004, patient005"), "{log}");
}
