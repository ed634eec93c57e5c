//! Loading a pipeline file: TOML → `${VAR}` expansion → paths made relative to the file → `--set` flags on top →
//! unknown-key check (with a suggestion) → typed tables → value checks. Precedence: built-in default < pipeline file
//! < `--set TABLE.KEY=VALUE`. A relative path in the file is relative to the file's folder; one in a `--set` flag is
//! relative to the working directory, as any other command-line path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::env;
use crate::error::{Origin, PipelineError, Result};
use crate::schema::{join, Schema, Section};
use crate::tables::PipelineConfig;

/// Where every given value came from, for error messages.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    file: PathBuf,
    /// Dotted key → the `--set` text that gave it.
    flags: BTreeMap<String, String>,
    /// (Dotted key, final value) → the value as written, before `${VAR}` expansion (only values that had a `${`;
    /// keyed by value too because the tables of an array share their dotted keys).
    raw: BTreeMap<(String, String), String>,
    /// Every dotted key given, by the file or a flag.
    given: BTreeSet<String>,
}

impl Origins {
    /// Origins of values that all come from `file` (tests, programmatic pipelines).
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Self { file: file.into(), ..Default::default() }
    }

    /// Where the value of `dotted` came from.
    pub fn of(&self, dotted: &str) -> Origin {
        match self.flags.get(dotted) {
            Some(flag) => Origin::Flag(flag.clone()),
            None => Origin::File(self.file.clone()),
        }
    }

    /// An [`PipelineError::Invalid`] for `[table] key`.
    pub fn invalid(&self, table: &str, key: &str, message: String) -> PipelineError {
        let origin = self.of(&join(table, key));
        PipelineError::Invalid { origin, table: table.to_string(), key: key.to_string(), message }
    }

    /// How value `value` of `dotted` was written, when it referenced environment variables.
    pub fn raw(&self, dotted: &str, value: &str) -> Option<&str> {
        self.raw.get(&(dotted.to_string(), value.to_string())).map(String::as_str)
    }

    /// Whether the file or a flag gave `dotted`.
    pub fn is_set(&self, dotted: &str) -> bool {
        self.given.contains(dotted)
    }
}

/// A loaded, checked pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The pipeline file.
    pub path: PathBuf,
    /// Its file stem: the default run folder is `runs/<name>/`.
    pub name: String,
    /// Every table, defaults filled in, paths resolved.
    pub config: PipelineConfig,
    /// Where each value came from.
    pub origins: Origins,
}

impl Pipeline {
    /// Loads `path` with `--set` flags `sets`, expanding `${VAR}` from the process environment.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        let cwd = std::env::current_dir().map_err(|e| PipelineError::io(".", e))?;
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
        Self::parse(&text, path, sets, &env::process_env, &cwd)
    }

    /// Parses pipeline TOML `text` as if read from `path`; `lookup` gives environment variables and `cwd` is the
    /// base of relative paths in `sets`.
    pub fn parse(
        text: &str,
        path: &Path,
        sets: &[String],
        lookup: &dyn Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Result<Self> {
        let schema = Schema::of::<PipelineConfig>();
        let mut origins = Origins::file(path);
        // 1. the file: syntax, ${VAR}, paths relative to its folder
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| PipelineError::Syntax { path: path.into(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new(""));
        prepare(&mut table, &schema, "", base, lookup, &mut origins)?;
        // 2. --set flags on top
        for set in sets {
            apply_set(&mut table, &schema, set, lookup, cwd, &mut origins)?;
        }
        // 3. keys, types, values
        let origin = |dotted: &str| origins.of(dotted);
        schema.check_keys(&table, "", &origin)?;
        let config: PipelineConfig = toml::Value::Table(table.clone()).try_into().map_err(|e: toml::de::Error| {
            // Every wrong value is found at its key; serde's own message is the fallback.
            let whole = || PipelineError::Syntax { path: path.into(), message: e.message().to_string() };
            schema.locate_error(&table, "", &origin).unwrap_or_else(whole)
        })?;
        config.check(&origins)?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "pipeline".into());
        Ok(Self { path: path.into(), name, config, origins })
    }
}

/// Expands `${VAR}` in every string of `table` (named `name`) and resolves its path values against `base`,
/// recording the keys given and the raw text of expanded values.
fn prepare(
    table: &mut toml::Table,
    schema: &Schema,
    name: &str,
    base: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    origins: &mut Origins,
) -> Result<()> {
    for (key, value) in table.iter_mut() {
        let dotted = join(name, key);
        origins.given.insert(dotted.clone());
        match (value, schema.child(key)) {
            (toml::Value::Table(sub), Some(child)) => prepare(sub, &child, &dotted, base, lookup, origins)?,
            (toml::Value::Array(items), Some(child)) => {
                for sub in items.iter_mut().filter_map(toml::Value::as_table_mut) {
                    prepare(sub, &child, &dotted, base, lookup, origins)?;
                }
            }
            (value, _) => prepare_value(value, schema, name, key, base, lookup, origins)?,
        }
    }
    Ok(())
}

/// [`prepare`] for one value (strings, and strings inside arrays).
fn prepare_value(
    value: &mut toml::Value,
    schema: &Schema,
    table: &str,
    key: &str,
    base: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    origins: &mut Origins,
) -> Result<()> {
    match value {
        toml::Value::String(text) => {
            let dotted = join(table, key);
            let expanded = env::expand(text, lookup).map_err(|var| PipelineError::UnsetVariable {
                origin: origins.of(&dotted),
                table: table.to_string(),
                key: key.to_string(),
                var,
            })?;
            let resolved = match (schema.path_offset)(key, &expanded) {
                Some(at) => format!("{}{}", &expanded[..at], base.join(&expanded[at..]).display()),
                None => expanded.clone(),
            };
            if expanded != *text {
                origins.raw.insert((dotted, resolved.clone()), text.clone());
            }
            *text = resolved;
        }
        toml::Value::Array(items) => {
            for item in items {
                prepare_value(item, schema, table, key, base, lookup, origins)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Applies one `--set TABLE.KEY=VALUE`: VALUE is TOML (`3`, `true`, `["a", "b"]`, `"text"`), or a bare string.
fn apply_set(
    table: &mut toml::Table,
    schema: &Schema,
    set: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
    origins: &mut Origins,
) -> Result<()> {
    let bad = || PipelineError::BadOverride(set.to_string());
    let (dotted, text) = set.split_once('=').ok_or_else(bad)?;
    let dotted = dotted.trim();
    let parts: Vec<&str> = dotted.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let mut value = toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()));
    origins.flags.insert(dotted.to_string(), set.to_string());
    // Walk to the table holding the key, creating tables the file left out.
    let (key, tables) = parts.split_last().expect("split yields one part at least");
    let (mut target, mut schema, mut name) = (table, *schema, String::new());
    for part in tables {
        let entry = target.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(sub) = entry else { return Err(bad()) };
        name = join(&name, part);
        // An unknown table is reported by the key check; its values are then not resolved.
        schema = schema.child(part).unwrap_or(Schema::of::<Empty>());
        target = sub;
    }
    origins.given.insert(dotted.to_string());
    prepare_value(&mut value, &schema, &name, key, cwd, lookup, origins)?;
    target.insert(key.to_string(), value);
    Ok(())
}

/// The schema of a table with no keys (where a `--set` names an unknown table).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

impl Section for Empty {}
