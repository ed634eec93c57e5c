//! The runner of `cmr-debias run`: builds the stages of a pipeline, writes the resolved configuration into the run
//! folder before any work, then runs the selected stages in order, each into `<run>/<stage>/`, skipping those whose
//! `stage.json` shows they are up to date (same config hash, same input fingerprints, output complete).
//!
//! Interrupted stages: every stage library writes its output folder atomically (staging folder, then rename), and
//! the record is written after it, so a kill leaves either the old complete output without a matching record (the
//! stage reruns) or nothing. Diffusion training resumes from its `.{out}.resume` checkpoint and generation keeps
//! the subjects it finished; the other stages rerun from the start.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::error::{PipelineError, Result};
use crate::fingerprint::{config_hash, folder_manifest, manifest_sha256};
use crate::load::Pipeline;
use crate::progress::Bars;
use crate::record::{StageRecord, STAGE_JSON};
use crate::stage::Stage;
use crate::stages;

/// File name of the resolved configuration inside the run folder.
pub const RESOLVED_JSON: &str = "resolved.json";

/// Which stages to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Selection {
    /// Every stage.
    #[default]
    All,
    /// This stage and every stage after it (`--from`).
    From(String),
    /// This stage alone (`--only`).
    Only(String),
}

/// What `cmr-debias run` asks for.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run folder. `None`: `runs/<pipeline file stem>/`.
    pub out: Option<PathBuf>,
    /// Stages to run; the others are neither run nor checked, and their outputs are used as they are.
    pub selection: Selection,
    /// Rerun the selected stages even when up to date.
    pub force: bool,
    /// Hide the progress bars.
    pub quiet: bool,
}

/// What happened to a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// It ran.
    Ran,
    /// Its output was up to date.
    UpToDate,
    /// `--from` / `--only` left it out.
    NotSelected,
}

/// One stage's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StageOutcome {
    /// Stage name.
    pub stage: String,
    /// What happened.
    pub status: Status,
    /// Its config hash.
    pub config_hash: String,
    /// Seconds spent (checking or running).
    pub seconds: f64,
}

/// What a run did (the `--json` output of `cmr-debias run`).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// The run folder.
    pub out: PathBuf,
    /// Every stage of the pipeline, in order.
    pub stages: Vec<StageOutcome>,
}

/// `resolved.json`: the pipeline as run.
#[derive(Serialize)]
struct Resolved<'a> {
    pipeline: &'a Path,
    config: &'a crate::tables::PipelineConfig,
    stages: Vec<ResolvedStage>,
}

#[derive(Serialize)]
struct ResolvedStage {
    stage: &'static str,
    config_hash: String,
    config: serde_json::Value,
}

/// Runs `pipeline`: [`run_stages`] of its [`stages::build`].
pub fn run(pipeline: &Pipeline, opts: &RunOptions) -> Result<RunReport> {
    let stages = stages::build(pipeline, &run_dir(pipeline, opts))?;
    run_stages(pipeline, &stages, opts)
}

/// The run folder: `opts.out`, else `runs/<pipeline name>/`.
pub fn run_dir(pipeline: &Pipeline, opts: &RunOptions) -> PathBuf {
    opts.out.clone().unwrap_or_else(|| Path::new("runs").join(&pipeline.name))
}

/// Runs `stages` (built for `pipeline` into [`run_dir`]) in order.
pub fn run_stages(pipeline: &Pipeline, stages: &[Box<dyn Stage>], opts: &RunOptions) -> Result<RunReport> {
    // 1. selection, checked before anything is written
    let out = run_dir(pipeline, opts);
    let selected = select(stages, &opts.selection)?;
    // 2. the resolved configuration, first
    std::fs::create_dir_all(&out).map_err(|e| PipelineError::io(&out, e))?;
    let resolved = Resolved {
        pipeline: &pipeline.path,
        config: &pipeline.config,
        stages: stages
            .iter()
            .map(|s| {
                let config = s.config();
                ResolvedStage { stage: s.name(), config_hash: config_hash(&config), config }
            })
            .collect(),
    };
    cmr_core::atomic::write_json(&out.join(RESOLVED_JSON), &resolved)?;
    // 3. the stages, in order
    let bars = Bars::new(opts.quiet, selected.iter().filter(|s| **s).count());
    let mut external = HashMap::new();
    let mut outcomes = Vec::with_capacity(stages.len());
    for (stage, selected) in stages.iter().zip(selected) {
        let outcome = if selected {
            run_stage(stage.as_ref(), &out.join(stage.name()), opts.force, &bars, &mut external)?
        } else {
            let config_hash = config_hash(&stage.config());
            StageOutcome { stage: stage.name().into(), status: Status::NotSelected, config_hash, seconds: 0.0 }
        };
        tracing::debug!("{}: {:?} ({:.1} s)", outcome.stage, outcome.status, outcome.seconds);
        outcomes.push(outcome);
    }
    bars.finish();
    Ok(RunReport { pipeline: pipeline.path.clone(), out, stages: outcomes })
}

/// Which stages `selection` runs.
fn select(stages: &[Box<dyn Stage>], selection: &Selection) -> Result<Vec<bool>> {
    let position = |name: &str| {
        stages.iter().position(|s| s.name() == name).ok_or_else(|| PipelineError::UnknownStage {
            name: name.to_string(),
            known: stages.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "),
        })
    };
    Ok(match selection {
        Selection::All => vec![true; stages.len()],
        Selection::From(name) => {
            let start = position(name)?;
            (0..stages.len()).map(|i| i >= start).collect()
        }
        Selection::Only(name) => {
            let only = position(name)?;
            (0..stages.len()).map(|i| i == only).collect()
        }
    })
}

/// Runs one stage into `dir` unless it is up to date (or `force`). `external` holds the fingerprints of inputs from
/// outside the run already taken in this run (the text encoder is read by three stages); an upstream stage's output
/// is fingerprinted afresh, since it may have just been rewritten.
fn run_stage(
    stage: &dyn Stage,
    dir: &Path,
    force: bool,
    bars: &Bars,
    external: &mut HashMap<PathBuf, String>,
) -> Result<StageOutcome> {
    let started = Instant::now();
    let name = stage.name();
    // 1. inputs: present, fingerprinted
    let mut inputs = BTreeMap::new();
    for input in stage.inputs() {
        if !input.path.exists() {
            return Err(match input.from {
                Some(from) => {
                    PipelineError::MissingUpstream { stage: name.into(), path: input.path, from: from.into() }
                }
                None => PipelineError::MissingInput { stage: name.into(), path: input.path },
            });
        }
        let fingerprint = match (input.from, external.get(&input.path)) {
            (None, Some(known)) => known.clone(),
            (None, None) => external.entry(input.path.clone()).or_insert(input.fingerprint()?).clone(),
            (Some(_), _) => input.fingerprint()?,
        };
        inputs.insert(input.path.display().to_string(), fingerprint);
    }
    let config = stage.config();
    let hash = config_hash(&config);
    let outcome = |status| StageOutcome {
        stage: name.into(),
        status,
        config_hash: hash.clone(),
        seconds: started.elapsed().as_secs_f64(),
    };
    if !force && StageRecord::read(dir).is_some_and(|r| r.is_current(dir, &hash, &inputs)) {
        bars.done(None);
        return Ok(outcome(Status::UpToDate));
    }
    // 2. run; an older record goes first, so that no record ever describes an output it did not make
    let record = dir.join(STAGE_JSON);
    if record.exists() {
        std::fs::remove_file(&record).map_err(|e| PipelineError::io(&record, e))?;
    }
    remove_leftovers(dir)?;
    tracing::info!("{name}: running into {}", dir.display());
    let bar = bars.stage(name);
    let report = stage.run(dir, &bar)?;
    bars.done(Some(bar));
    tracing::info!("{name}: done in {:.1} s", started.elapsed().as_secs_f64());
    // 3. the record, last
    let listed = folder_manifest(dir)?;
    let record = StageRecord {
        stage: name.into(),
        config_hash: hash.clone(),
        config,
        inputs,
        output_sha256: manifest_sha256(&listed),
        outputs: listed.files.into_iter().map(|(rel, entry)| (rel, entry.sha256)).collect(),
        seconds: started.elapsed().as_secs_f64(),
        report,
    };
    record.write(dir)?;
    Ok(outcome(Status::Ran))
}

/// Removes what a killed run left beside the stage folder `dir`: the atomic writer's staging folders and replaced
/// outputs (`.{stage}.partial-PID`, `.{stage}.old-PID`; `cmr_core::atomic`). Resume state that a stage picks up
/// (`.{stage}.resume`, `.{stage}.generating`) is kept. One run per run folder at a time.
fn remove_leftovers(dir: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else { return Ok(()) };
    let Ok(entries) = std::fs::read_dir(parent) else { return Ok(()) };
    let name = name.to_string_lossy();
    let prefixes = [format!(".{name}.partial-"), format!(".{name}.old-")];
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if prefixes.iter().any(|p| file_name.to_string_lossy().starts_with(p.as_str())) {
            let path = entry.path();
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.map_err(|e| PipelineError::io(&path, e))?;
        }
    }
    Ok(())
}
