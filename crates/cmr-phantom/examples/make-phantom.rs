//! Writes a phantom cohort without the CLI, for `scripts/phantom-realism.sh`:
//! `cargo run --release -p cmr-phantom --example make-phantom -- OUT N SEED [acdc|mnms1] [SCENARIO] [--force]`.

use std::path::PathBuf;

use cmr_phantom::{run, Layout, PhantomConfig, Scenario};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let force = args.iter().any(|a| a == "--force");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--force").collect();
    let usage = "usage: make-phantom OUT N SEED [acdc|mnms1] [SCENARIO] [--force]";
    let [out, n, seed, rest @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let layout = match rest.first().map(|s| s.as_str()) {
        None | Some("acdc") => Layout::Acdc,
        Some("mnms1") => Layout::Mnms1,
        Some(other) => return Err(format!("unknown layout {other:?}; {usage}").into()),
    };
    let scenario_name = rest.get(1).map_or("balanced", |s| s.as_str());
    let metadata = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../metadata");
    let scenario = Scenario::load(scenario_name, &metadata)?;
    let cfg =
        PhantomConfig { out: PathBuf::from(out), layout, subjects: n.parse()?, scenario, seed: seed.parse()?, force };
    let report = run(&cfg, &|done, total| eprint!("\r{done}/{total}"))?;
    eprintln!();
    println!("wrote {} subjects to {} ({:?})", report.subjects.len(), report.out.display(), report.by_vendor);
    Ok(())
}
