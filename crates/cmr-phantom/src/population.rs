//! The population model (`metadata/phantom/population.toml`): distributions of height by sex and of age and BMI by
//! condition, from which every phantom subject's attributes are drawn. A scenario may override the age and BMI
//! distributions of a condition (`[attributes.CODE]`), which is how `ukbb-like` makes young and normal-BMI patients
//! rare. The repository's file is compiled in as the default.

use std::collections::BTreeMap;
use std::path::Path;

use cmr_core::Sex;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::Deserialize;

use crate::{Condition, Error};

/// The repository's `metadata/phantom/population.toml`, compiled in.
pub const DEFAULT_POPULATION_TOML: &str = include_str!("../../../metadata/phantom/population.toml");

/// A normal distribution truncated to `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dist {
    /// Mean of the untruncated normal.
    pub mean: f64,
    /// Standard deviation of the untruncated normal (> 0).
    pub sd: f64,
    /// Smallest value drawn.
    pub min: f64,
    /// Largest value drawn.
    pub max: f64,
}

impl Dist {
    /// Checks `sd > 0`, `min < max` and finite numbers; `field` names the table in errors.
    pub fn validate(&self, path: &Path, field: &str) -> Result<(), Error> {
        let ok = [self.mean, self.sd, self.min, self.max].iter().all(|v| v.is_finite())
            && self.sd > 0.0
            && self.min < self.max;
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(path, field, "finite mean, sd > 0 and min < max", format!("{self:?}")))
        }
    }

    /// Draws one value by rejection (at most 100 tries, then the nearest bound, which only a distribution whose
    /// mass lies almost entirely outside `[min, max]` can reach).
    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        let normal = Normal::new(self.mean, self.sd).expect("validated: sd > 0");
        for _ in 0..100 {
            let x = normal.sample(rng);
            if (self.min..=self.max).contains(&x) {
                return x;
            }
        }
        self.mean.clamp(self.min, self.max)
    }
}

/// Age and BMI distributions of one condition.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionAttributes {
    /// Age in years.
    pub age: Dist,
    /// Body-mass index in kg/m².
    pub bmi: Dist,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPopulation {
    height_cm: BTreeMap<String, Dist>,
    attributes: BTreeMap<String, ConditionAttributes>,
}

/// Attribute distributions of the phantom population.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Population {
    /// Height in cm by sex.
    pub height_cm: BTreeMap<Sex, Dist>,
    /// Age and BMI by condition.
    pub attributes: BTreeMap<Condition, ConditionAttributes>,
}

impl Default for Population {
    fn default() -> Self {
        Self::parse(DEFAULT_POPULATION_TOML, Path::new("metadata/phantom/population.toml"))
            .expect("the compiled-in population.toml is valid (tested)")
    }
}

impl Population {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// `metadata_dir/phantom/population.toml` when it exists, else the compiled-in default.
    pub fn load_or_default(metadata_dir: &Path) -> Result<Self, Error> {
        let path = metadata_dir.join("phantom").join("population.toml");
        if path.is_file() {
            Self::load(&path)
        } else {
            Ok(Self::default())
        }
    }

    /// Parses population TOML; `path` names the file in errors. Every sex and every condition must be present.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let raw: RawPopulation = toml::from_str(text).map_err(|e| Error::toml(path, e))?;
        let mut height_cm = BTreeMap::new();
        for (key, dist) in raw.height_cm {
            let field = format!("height_cm.{key}");
            let sex = parse_sex(&key).ok_or_else(|| Error::invalid(path, &field, "a sex, F or M", &key))?;
            dist.validate(path, &field)?;
            height_cm.insert(sex, dist);
        }
        for sex in [Sex::F, Sex::M] {
            if !height_cm.contains_key(&sex) {
                return Err(Error::missing(path, format!("height_cm.{sex}")));
            }
        }
        let mut attributes = BTreeMap::new();
        for (key, attrs) in raw.attributes {
            let field = format!("attributes.{key}");
            let condition = key.parse::<Condition>().map_err(|e| Error::invalid(path, &field, e, &key))?;
            attrs.age.validate(path, &format!("{field}.age"))?;
            attrs.bmi.validate(path, &format!("{field}.bmi"))?;
            attributes.insert(condition, attrs);
        }
        for condition in Condition::ALL {
            if !attributes.contains_key(&condition) {
                return Err(Error::missing(path, format!("attributes.{}", condition.acdc_code())));
            }
        }
        Ok(Self { height_cm, attributes })
    }
}

/// Only the two codes; the scenario and population files are ours, so no free spelling.
pub(crate) fn parse_sex(key: &str) -> Option<Sex> {
    match key {
        "F" => Some(Sex::F),
        "M" => Some(Sex::M),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_population_parses_and_samples_within_bounds() {
        let pop = Population::default();
        let mut rng = cmr_core::seed::rng(1, &["t"]);
        let d = pop.attributes[&Condition::Nor].age;
        for _ in 0..1000 {
            let x = d.sample(&mut rng);
            assert!((d.min..=d.max).contains(&x));
        }
    }

    #[test]
    fn unknown_keys_and_missing_tables_name_the_file() {
        let text = DEFAULT_POPULATION_TOML.replacen("[height_cm.F]", "[height_cm.F]\ncolour = 1", 1);
        let err = Population::parse(&text, Path::new("pop.toml")).unwrap_err().to_string();
        assert!(err.contains("pop.toml") && err.contains("colour"), "{err}");
        let text = DEFAULT_POPULATION_TOML.replace("[attributes.DCM", "[attributes.XYZ");
        let err = Population::parse(&text, Path::new("pop.toml")).unwrap_err().to_string();
        assert!(err.contains("pop.toml") && err.contains("attributes.XYZ"), "{err}");
    }
}
