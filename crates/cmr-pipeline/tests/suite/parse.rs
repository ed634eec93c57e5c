//! Pipeline files (issue 8, item 1): unknown keys get a suggestion, type errors name the key and the file, paths are
//! relative to the file, `${VAR}` comes from the environment, and precedence is default < file < `--set`.

use std::path::{Path, PathBuf};

use cmr_pipeline::tables::Arm;
use cmr_pipeline::{Pipeline, PipelineError};

const FILE: &str = "/work/pipelines/test.toml";

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str, sets: &[&str]) -> Result<Pipeline, PipelineError> {
    parse_env(text, sets, &no_env)
}

fn parse_env(text: &str, sets: &[&str], env: &dyn Fn(&str) -> Option<String>) -> Result<Pipeline, PipelineError> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Pipeline::parse(text, Path::new(FILE), &sets, env, Path::new("/cwd"))
}

fn error(text: &str, sets: &[&str]) -> String {
    parse(text, sets).expect_err("the pipeline should be refused").to_string()
}

#[test]
fn an_empty_file_is_the_built_in_defaults() {
    let p = parse("", &[]).unwrap();
    assert_eq!(p.name, "test");
    assert_eq!(p.config.seed, 0);
    assert_eq!((p.config.cohort.size, p.config.cohort.slices), (96, 8));
    assert_eq!(p.config.diffusion.generate.steps, 20);
    assert_eq!(p.config.balance.strategy, "not-majority");
    assert_eq!(p.config.federated.arms, [Arm::Baseline, Arm::Augmented, Arm::Weights]);
    assert_eq!(p.config.audit.bootstrap, 1000);
}

#[test]
fn a_misspelt_key_names_file_table_and_the_key_it_meant() {
    assert_eq!(
        error("[diffusion.generate]\nguidnace = 3.0\n", &[]),
        format!("{FILE}: unknown key `guidnace` in [diffusion.generate]; did you mean `guidance`?")
    );
    assert_eq!(
        error("[balance]\nmax-synthetic-ratio = 1.0\n", &[]),
        format!("{FILE}: unknown key `max-synthetic-ratio` in [balance]; did you mean `max_synthetic_ratio`?")
    );
    assert_eq!(
        error("[cohrt]\nsize = 3\n", &[]),
        format!("{FILE}: unknown key `cohrt` in [top level]; did you mean `cohort`?")
    );
    assert_eq!(error("[audit]\ncolour = 'red'\n", &[]), format!("{FILE}: unknown key `colour` in [audit]"));
}

#[test]
fn a_wrong_type_names_the_key_and_where_it_came_from() {
    let err = error("[cohort]\nsubjects = 'many'\n", &[]);
    assert!(err.starts_with(&format!("{FILE}: [cohort] subjects: invalid type: string")), "{err}");
    let err = error("[diffusion.base]\nsteps = 2.5\n", &[]);
    assert!(err.starts_with(&format!("{FILE}: [diffusion.base] steps: invalid type")), "{err}");
    let err = error("", &["federated.shape_prior=circle"]);
    assert!(
        err.starts_with("--set federated.shape_prior=circle: [federated] shape_prior: unknown variant `circle`"),
        "{err}"
    );
    let err = error("", &["cohort.size"]);
    assert!(err.starts_with("--set cohort.size: expected TABLE.KEY=VALUE"), "{err}");
}

#[test]
fn values_out_of_range_name_the_key() {
    assert_eq!(
        error("[cohort]\nval_fraction = 0.6\ntest_fraction = 0.5\n", &[]),
        format!("{FILE}: [cohort] test_fraction: val_fraction + test_fraction must leave a train share, got 1.1")
    );
    let err = error("[balance]\nstrategy = 'weights'\n", &[]);
    assert!(err.contains("[balance] strategy") && err.contains("arms"), "{err}");
    let err = error("", &["federated.strategy=fedprox"]);
    assert!(err.starts_with("--set federated.strategy=fedprox: [federated] strategy:"), "{err}");
    assert!(err.contains("dual-lora"), "the message lists the strategies: {err}");
    let err = error("[federated]\narms = ['baseline', 'baseline']\n", &[]);
    assert!(err.contains("[federated] arms: lists an arm twice"), "{err}");
    let err = error("[federated]\narms = ['augmented']\n", &[]);
    assert!(err.contains("[federated] arms: needs `baseline`"), "{err}");
    let err = error("[fm]\nmodel = 'fm'\nepochs = 3\n", &[]);
    assert!(err.contains("[fm] model: `epochs` pretrains a model, but `model` names one to use"), "{err}");
    let err = error("[diffusion]\nmodel = 'm'\n[diffusion.base]\nsteps = 3\n", &[]);
    assert!(err.contains("[diffusion] model") && err.contains("[diffusion.base]"), "{err}");
    let err = error("[diffusion.controlnet]\nseed = 3\n", &[]);
    assert!(err.contains("[diffusion.controlnet] seed: the pipeline has one seed"), "{err}");
    let err = error("[cohort]\nroot = '/data'\nsubjects = 4\ndataset = 'acdc'\n", &[]);
    assert!(err.contains("[cohort] subjects: is a phantom option"), "{err}");
}

#[test]
fn paths_are_relative_to_the_file_and_flag_paths_to_the_working_directory() {
    let text = "[cohort]\nmetadata = '../metadata'\nattributes = '/abs/attributes.toml'\n\
                [balance]\nstrategy = 'counts:targets.csv'\n[diffusion]\ntext_encoder = 'minilm'\n";
    let p = parse(text, &["fm.model=models/fm"]).unwrap();
    assert_eq!(p.config.cohort.metadata, Some(PathBuf::from("/work/pipelines/../metadata")));
    assert_eq!(p.config.cohort.attributes, Some(PathBuf::from("/abs/attributes.toml")));
    assert_eq!(p.config.balance.strategy, "counts:/work/pipelines/targets.csv");
    assert_eq!(p.config.diffusion.text_encoder, Some(PathBuf::from("/work/pipelines/minilm")));
    assert_eq!(p.config.fm.model, Some(PathBuf::from("/cwd/models/fm")));
    // A scenario is a name unless it looks like a file.
    let p = parse("[cohort]\nscenario = 'ukbb-like'\n", &[]).unwrap();
    assert_eq!(p.config.cohort.scenario.as_deref(), Some("ukbb-like"));
    let p = parse("[cohort]\nscenario = 'mine.toml'\n", &[]).unwrap();
    assert_eq!(p.config.cohort.scenario.as_deref(), Some("/work/pipelines/mine.toml"));
}

#[test]
fn precedence_is_default_then_file_then_flag() {
    let text = "seed = 4\n[diffusion.generate]\nsteps = 10\n";
    let p = parse(text, &[]).unwrap();
    assert_eq!((p.config.seed, p.config.diffusion.generate.steps, p.config.diffusion.generate.guidance), (4, 10, 4.0));
    let p = parse(text, &["diffusion.generate.steps=5", "seed=9", "audit.by=[\"sex\"]", "fm.device=cuda"]).unwrap();
    assert_eq!((p.config.seed, p.config.diffusion.generate.steps), (9, 5));
    assert_eq!(p.config.audit.by, ["sex"]);
    assert_eq!(p.config.fm.device, "cuda", "a bare string is a string");
}

#[test]
fn environment_variables_are_expanded_and_errors_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_string_lossy().into_owned();
    let env = |name: &str| (name == "ACDC_ROOT").then(|| root.clone());
    let text = "[cohort]\nroot = '${ACDC_ROOT}'\ndataset = 'acdc'\n";
    let p = parse_env(text, &[], &env).unwrap();
    assert_eq!(p.config.cohort.root.as_deref(), Some(dir.path()));

    assert_eq!(
        parse_env(text, &[], &no_env).unwrap_err().to_string(),
        format!("{FILE}: [cohort] root: environment variable ACDC_ROOT is not set; export ACDC_ROOT=/path/to/the/data")
    );
    let missing = |name: &str| (name == "ACDC_ROOT").then(|| "/no/such/acdc".to_string());
    let err = parse_env(text, &[], &missing).unwrap_err().to_string();
    assert!(err.contains("[cohort] root: /no/such/acdc (from \"${ACDC_ROOT}\") is not a folder"), "{err}");
}

#[test]
fn shipped_pipelines_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    for name in ["demo", "demo-train"] {
        let path = root.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let p = Pipeline::parse(&text, &path, &[], &no_env, Path::new("/cwd")).unwrap();
        assert_eq!(p.config.cohort.scenario.as_deref(), Some("ukbb-like"), "{name}");
    }
    for (name, vars) in [("acdc-mnms-hcm", &["ACDC_ROOT", "MNMS_ROOT"][..]), ("ukbb-debias", &["UKBB_ROOT"])] {
        let path = root.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let err = Pipeline::parse(&text, &path, &[], &no_env, Path::new("/cwd")).unwrap_err().to_string();
        assert!(err.contains(&format!("environment variable {} is not set", vars[0])), "{name}: {err}");
        let dir = tempfile::tempdir().unwrap();
        let set = |n: &str| vars.contains(&n).then(|| dir.path().join(n).to_string_lossy().into_owned());
        let err = Pipeline::parse(&text, &path, &[], &set, Path::new("/cwd")).unwrap_err().to_string();
        assert!(err.contains(&format!("(from \"${{{}}}\") is not a folder", vars[0])), "{name}: {err}");
        for var in vars {
            std::fs::create_dir(dir.path().join(var)).unwrap();
        }
        Pipeline::parse(&text, &path, &[], &set, Path::new("/cwd")).unwrap();
    }
}

#[test]
fn several_dataset_folders_are_sources_each_checked() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["acdc", "mnms"] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
    }
    let env = |name: &str| match name {
        "ACDC_ROOT" => Some(dir.path().join("acdc").to_string_lossy().into_owned()),
        "MNMS_ROOT" => Some("/no/such/mnms".to_string()),
        _ => None,
    };
    let sources = "[[cohort.sources]]\ndataset = 'acdc'\nroot = '${ACDC_ROOT}'\n\
                   [[cohort.sources]]\ndataset = 'mnms1'\nroot = '${MNMS_ROOT}'\n";
    let err = parse_env(sources, &[], &env).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{FILE}: [cohort.sources] root: /no/such/mnms (from \"${{MNMS_ROOT}}\") is not a folder; point it at the \
             mnms1 dataset"
        )
    );
    let err = error("[[cohort.sources]]\ndataset = 'acdc'\nrot = 'x'\n", &[]);
    assert_eq!(err, format!("{FILE}: unknown key `rot` in [cohort.sources]; did you mean `root`?"));
    let twice = format!(
        "[[cohort.sources]]\ndataset = 'acdc'\nroot = '{0}'\n[[cohort.sources]]\ndataset = 'acdc'\nroot = '{0}'\n",
        dir.path().display()
    );
    let err = error(&twice, &[]);
    assert!(err.ends_with("[cohort.sources] dataset: acdc is given twice; one folder per dataset"), "{err}");
    let both = format!(
        "[cohort]\nroot = '{}'\ndataset = 'acdc'\n[[cohort.sources]]\ndataset = 'mnms1'\n",
        dir.path().display()
    );
    assert!(error(&both, &[]).contains("[cohort] sources: give `root` + `dataset` or [[cohort.sources]], not both"));
}
