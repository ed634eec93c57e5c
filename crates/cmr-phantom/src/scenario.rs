//! Bias scenarios (`metadata/phantom/scenarios/*.toml`): vendor shares, condition prevalence and sex mix (overall,
//! per condition and per vendor), the number of centres (sites) per vendor and optional per-condition attribute
//! distributions. The file format is documented in the header of `metadata/phantom/scenarios/balanced.toml`; the
//! repository's scenarios are also compiled in (`include_str!` of the same files), so the binary works outside the
//! repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmr_core::Sex;
use serde::Deserialize;

use crate::population::{parse_sex, ConditionAttributes, Population};
use crate::quota::{largest_remainder, QuotaCell, Quotas};
use crate::{Condition, Error, Vendor};

/// Scenarios compiled into the binary: (name, TOML text).
pub const BUILTIN_SCENARIOS: [(&str, &str); 3] = [
    ("balanced", include_str!("../../../metadata/phantom/scenarios/balanced.toml")),
    ("ukbb-like", include_str!("../../../metadata/phantom/scenarios/ukbb-like.toml")),
    ("vendor-shift", include_str!("../../../metadata/phantom/scenarios/vendor-shift.toml")),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    description: String,
    centres: Option<i64>,
    vendors: BTreeMap<String, f64>,
    diagnosis: BTreeMap<String, f64>,
    sex: BTreeMap<String, f64>,
    #[serde(default)]
    sex_by_diagnosis: BTreeMap<String, BTreeMap<String, f64>>,
    #[serde(default)]
    vendor: BTreeMap<String, RawVendor>,
    #[serde(default)]
    attributes: BTreeMap<String, ConditionAttributes>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVendor {
    diagnosis: Option<BTreeMap<String, f64>>,
    sex: Option<BTreeMap<String, f64>>,
}

/// Per-vendor overrides of a scenario.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct VendorOverride {
    /// Condition prevalence of this vendor (`None`: the scenario's `[diagnosis]`).
    pub diagnosis: Option<BTreeMap<Condition, f64>>,
    /// Sex mix of this vendor (`None`: `[sex_by_diagnosis]` / `[sex]`).
    pub sex: Option<BTreeMap<Sex, f64>>,
}

/// A validated bias scenario together with the population model it draws attributes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scenario {
    /// Name (the file stem).
    pub name: String,
    /// Where it was read from (`<built-in>/NAME.toml` for a compiled-in copy).
    pub source: PathBuf,
    /// Free-text description.
    pub description: String,
    /// Centres (sites) per vendor, ≥ 1 (`centres` key; absent: 1, one site per vendor). Each vendor's subjects are
    /// dealt over its centres by [`crate::plan::plan_subjects`]; centre `c` of vendor `v` is site
    /// [`Vendor::centre_site`]`(c)`. Left out of the serialised scenario when 1, so the config of a scenario
    /// without the key serialises (and hashes) as before.
    #[serde(skip_serializing_if = "is_one")]
    pub centres: usize,
    /// Vendor → share.
    pub vendors: BTreeMap<Vendor, f64>,
    /// Condition → prevalence share, for vendors without an override.
    pub diagnosis: BTreeMap<Condition, f64>,
    /// Sex → share, for cells without a more specific mix.
    pub sex: BTreeMap<Sex, f64>,
    /// Condition → sex mix.
    pub sex_by_diagnosis: BTreeMap<Condition, BTreeMap<Sex, f64>>,
    /// Per-vendor overrides.
    pub vendor: BTreeMap<Vendor, VendorOverride>,
    /// Attribute distributions (population.toml with the scenario's `[attributes.CODE]` applied).
    pub population: Population,
}

impl Scenario {
    /// Loads a scenario by name or path. A value ending in `.toml` or containing a path separator is a file;
    /// otherwise `NAME` resolves to `metadata_dir/phantom/scenarios/NAME.toml`, falling back to the compiled-in
    /// scenario of that name. The population model is `metadata_dir/phantom/population.toml` when present, else
    /// the compiled-in one.
    pub fn load(name_or_path: &str, metadata_dir: &Path) -> Result<Scenario, Error> {
        let population = Population::load_or_default(metadata_dir)?;
        let is_path = name_or_path.ends_with(".toml") || name_or_path.contains(['/', '\\']);
        if is_path {
            let path = Path::new(name_or_path);
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            return Self::parse(&text, path, population);
        }
        let file = metadata_dir.join("phantom").join("scenarios").join(format!("{name_or_path}.toml"));
        if file.is_file() {
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
            return Self::parse(&text, &file, population);
        }
        match Self::builtin_with(name_or_path, population) {
            Some(scenario) => scenario,
            None => Err(Error::UnknownScenario {
                name: name_or_path.to_string(),
                looked: file,
                builtin: BUILTIN_SCENARIOS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// The compiled-in scenario `name` with the compiled-in population, if there is one.
    pub fn builtin(name: &str) -> Option<Result<Scenario, Error>> {
        Self::builtin_with(name, Population::default())
    }

    fn builtin_with(name: &str, population: Population) -> Option<Result<Scenario, Error>> {
        let (_, text) = BUILTIN_SCENARIOS.iter().find(|(n, _)| *n == name)?;
        Some(Self::parse(text, &PathBuf::from(format!("<built-in>/{name}.toml")), population))
    }

    /// Parses and validates scenario TOML; `path` names the file in errors and gives the scenario its name.
    pub fn parse(text: &str, path: &Path, mut population: Population) -> Result<Scenario, Error> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| Error::toml(path, e))?;
        let centres = match raw.centres {
            None => 1,
            Some(c) => usize::try_from(c).ok().filter(|&c| c >= 1).ok_or_else(|| {
                Error::invalid(path, "centres", "an integer ≥ 1 (sites per vendor; leave the key out for one)", c)
            })?,
        };
        let vendors = shares(path, "vendors", &raw.vendors, |k| k.parse::<Vendor>())?;
        let diagnosis = shares(path, "diagnosis", &raw.diagnosis, |k| k.parse::<Condition>())?;
        let sex = shares(path, "sex", &raw.sex, sex_key)?;
        let mut sex_by_diagnosis = BTreeMap::new();
        for (key, mix) in &raw.sex_by_diagnosis {
            let field = format!("sex_by_diagnosis.{key}");
            let condition = key.parse::<Condition>().map_err(|e| Error::invalid(path, &field, e, key))?;
            sex_by_diagnosis.insert(condition, shares(path, &field, mix, sex_key)?);
        }
        let mut vendor = BTreeMap::new();
        for (key, over) in &raw.vendor {
            let field = format!("vendor.{key}");
            let v = key.parse::<Vendor>().map_err(|e| Error::invalid(path, &field, e, key))?;
            if !vendors.contains_key(&v) {
                return Err(Error::invalid(path, &field, "a vendor listed in [vendors]", key));
            }
            let diagnosis = match &over.diagnosis {
                Some(map) => Some(shares(path, &format!("{field}.diagnosis"), map, |k| k.parse::<Condition>())?),
                None => None,
            };
            let sex = match &over.sex {
                Some(map) => Some(shares(path, &format!("{field}.sex"), map, sex_key)?),
                None => None,
            };
            vendor.insert(v, VendorOverride { diagnosis, sex });
        }
        for (key, attrs) in &raw.attributes {
            let field = format!("attributes.{key}");
            let condition = key.parse::<Condition>().map_err(|e| Error::invalid(path, &field, e, key))?;
            attrs.age.validate(path, &format!("{field}.age"))?;
            attrs.bmi.validate(path, &format!("{field}.bmi"))?;
            population.attributes.insert(condition, *attrs);
        }
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Scenario {
            name,
            source: path.to_path_buf(),
            description: raw.description,
            centres,
            vendors,
            diagnosis,
            sex,
            sex_by_diagnosis,
            vendor,
            population,
        })
    }

    /// Condition prevalence used for `vendor`.
    pub fn diagnosis_shares(&self, vendor: Vendor) -> &BTreeMap<Condition, f64> {
        self.vendor.get(&vendor).and_then(|o| o.diagnosis.as_ref()).unwrap_or(&self.diagnosis)
    }

    /// Sex mix used for the (vendor, condition) cell: the vendor's `sex`, else the condition's, else `[sex]`.
    pub fn sex_shares(&self, vendor: Vendor, condition: Condition) -> &BTreeMap<Sex, f64> {
        self.vendor
            .get(&vendor)
            .and_then(|o| o.sex.as_ref())
            .or_else(|| self.sex_by_diagnosis.get(&condition))
            .unwrap_or(&self.sex)
    }

    /// The exact counts for `n` subjects (see [`crate::quota`]).
    pub fn quotas(&self, n: usize) -> Quotas {
        let mut cells = Vec::new();
        for (&vendor, &n_vendor) in &largest_remainder(n, &self.vendors) {
            for (&diagnosis, &n_cell) in &largest_remainder(n_vendor, self.diagnosis_shares(vendor)) {
                for (&sex, &count) in &largest_remainder(n_cell, self.sex_shares(vendor, diagnosis)) {
                    cells.push(QuotaCell { vendor, diagnosis, sex, count });
                }
            }
        }
        Quotas { cells }
    }
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn sex_key(key: &str) -> Result<Sex, String> {
    parse_sex(key).ok_or_else(|| "F or M".to_string())
}

/// Validates a share table: known keys, finite non-negative shares, a positive sum.
fn shares<K: Ord>(
    path: &Path,
    field: &str,
    raw: &BTreeMap<String, f64>,
    parse: impl Fn(&str) -> Result<K, String>,
) -> Result<BTreeMap<K, f64>, Error> {
    let mut out = BTreeMap::new();
    for (key, &share) in raw {
        let at = format!("{field}.{key}");
        let k = parse(key).map_err(|e| Error::invalid(path, &at, e, key))?;
        if !(share.is_finite() && share >= 0.0) {
            return Err(Error::invalid(path, &at, "a finite share ≥ 0", share));
        }
        out.insert(k, share);
    }
    if out.values().sum::<f64>() <= 0.0 {
        return Err(Error::invalid(path, field, "at least one positive share", format!("{raw:?}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for (name, _) in BUILTIN_SCENARIOS {
            let s = Scenario::builtin(name).unwrap().unwrap();
            assert_eq!(s.name, name);
            assert_eq!(s.quotas(200).total(), 200);
        }
    }

    #[test]
    fn bad_files_are_errors_naming_file_and_field() {
        let pop = Population::default();
        let text = BUILTIN_SCENARIOS[0].1.replacen("\n[sex]\n", "\n[sex]\nX = 1.0\n", 1);
        let err = Scenario::parse(&text, Path::new("s.toml"), pop.clone()).unwrap_err().to_string();
        assert!(err.contains("s.toml") && err.contains("sex.X"), "{err}");
        let text = format!("colour2 = 1\n{}", BUILTIN_SCENARIOS[0].1);
        let err = Scenario::parse(&text, Path::new("s.toml"), pop.clone()).unwrap_err().to_string();
        assert!(err.contains("s.toml") && err.contains("colour2"), "{err}");
        let text = BUILTIN_SCENARIOS[0].1.replace("GE = 1.0", "GE = -1.0");
        let err = Scenario::parse(&text, Path::new("s.toml"), pop.clone()).unwrap_err().to_string();
        assert!(err.contains("vendors.GE"), "{err}");
        let text = BUILTIN_SCENARIOS[1].1.replace("[sex_by_diagnosis.HCM]", "[vendor.GE]\n[sex_by_diagnosis.HCM]");
        let err = Scenario::parse(&text, Path::new("s.toml"), pop).unwrap_err().to_string();
        assert!(err.contains("vendor.GE") && err.contains("[vendors]"), "{err}");
    }

    #[test]
    fn centres_defaults_to_one_and_must_be_at_least_one() {
        let pop = Population::default();
        let s = Scenario::parse(BUILTIN_SCENARIOS[0].1, Path::new("s.toml"), pop.clone()).unwrap();
        assert_eq!(s.centres, 1);
        // Serialised without the key, so configs hashed from it are unchanged (cmr-pipeline's phantom stage).
        let text = toml::to_string(&s).unwrap();
        assert!(!text.contains("centres") && text.contains("vendors"), "{text}");
        let text = format!("centres = 3\n{}", BUILTIN_SCENARIOS[0].1);
        assert_eq!(Scenario::parse(&text, Path::new("s.toml"), pop.clone()).unwrap().centres, 3);
        for bad in ["0", "-2"] {
            let text = format!("centres = {bad}\n{}", BUILTIN_SCENARIOS[0].1);
            let err = Scenario::parse(&text, Path::new("s.toml"), pop.clone()).unwrap_err().to_string();
            assert!(err.contains("s.toml") && err.contains("`centres`") && err.contains("≥ 1"), "{err}");
        }
        let text = format!("centres = 2.5\n{}", BUILTIN_SCENARIOS[0].1);
        let err = Scenario::parse(&text, Path::new("s.toml"), pop).unwrap_err().to_string();
        assert!(err.contains("s.toml") && err.contains("centres"), "{err}");
    }

    #[test]
    fn names_resolve_to_files_then_builtins() {
        let dir = tempfile::tempdir().unwrap();
        let s = Scenario::load("vendor-shift", dir.path()).unwrap();
        assert!(s.source.starts_with("<built-in>"));
        let scen = dir.path().join("phantom").join("scenarios");
        std::fs::create_dir_all(&scen).unwrap();
        std::fs::write(scen.join("mine.toml"), BUILTIN_SCENARIOS[0].1).unwrap();
        let s = Scenario::load("mine", dir.path()).unwrap();
        assert_eq!(s.name, "mine");
        let err = Scenario::load("nope", dir.path()).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("balanced"), "{err}");
    }
}
