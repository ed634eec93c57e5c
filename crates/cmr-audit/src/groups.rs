//! Groups of subjects: one grouping per `--by` attribute and, with `--intersections`, one over every combination of
//! their values (as Fairlearn's `MetricFrame` does when given several sensitive features). Only combinations that
//! occur form groups. Subjects with no value for an attribute form the group [`MISSING`], reported like any other.

use std::collections::BTreeMap;

use cmr_core::AttributeBins;

/// Label of the group of subjects whose attribute value is null.
pub const MISSING: &str = "(missing)";

/// Joins the column names of an intersection and the values of its groups: `sex × age_band`, `F × 60s`.
pub const JOIN: &str = " × ";

/// An attribute column: its name and one value per subject (`None` when missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// Column name (`sex`, `age_band`, …).
    pub name: String,
    /// Value per subject, in the order of the predictions.
    pub values: Vec<Option<String>>,
}

/// The groups of one attribute, or of an intersection of attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// `sex`, or `sex × age_band` for an intersection.
    pub name: String,
    /// The attribute columns it is made of.
    pub columns: Vec<String>,
    /// Groups in display order: bins in bin order (age bands, BMI classes), other values sorted, missing last.
    pub groups: Vec<Group>,
}

/// One group of a [`Grouping`].
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// `F`, or `F × 60s` for an intersection.
    pub label: String,
    /// The value of each of the grouping's columns.
    pub values: Vec<String>,
    /// Indices of its subjects, increasing.
    pub members: Vec<usize>,
}

impl Grouping {
    /// Groups the subjects by the combined values of `attributes` (one attribute gives a plain grouping).
    ///
    /// # Panics
    /// If `attributes` is empty or their value vectors differ in length (programmer errors).
    pub fn new(attributes: &[&Attribute]) -> Self {
        assert!(!attributes.is_empty(), "a grouping needs at least one attribute");
        let n = attributes[0].values.len();
        assert!(attributes.iter().all(|a| a.values.len() == n), "attribute columns differ in length");
        let bins = AttributeBins::default();
        let mut by_key: BTreeMap<Vec<(usize, String)>, Vec<usize>> = BTreeMap::new();
        for subject in 0..n {
            let key = attributes.iter().map(|a| sort_key(&bins, &a.name, a.values[subject].as_deref())).collect();
            by_key.entry(key).or_default().push(subject);
        }
        let groups = by_key
            .into_iter()
            .map(|(key, members)| {
                let values: Vec<String> = key.into_iter().map(|(_, value)| value).collect();
                Group { label: values.join(JOIN), values, members }
            })
            .collect();
        let columns: Vec<String> = attributes.iter().map(|a| a.name.clone()).collect();
        Self { name: columns.join(JOIN), columns, groups }
    }

    /// One grouping per attribute, then (with `intersections` and more than one attribute) their full cross.
    pub fn all(attributes: &[Attribute], intersections: bool) -> Vec<Self> {
        let mut groupings: Vec<Self> = attributes.iter().map(|a| Self::new(&[a])).collect();
        if intersections && attributes.len() > 1 {
            groupings.push(Self::new(&attributes.iter().collect::<Vec<_>>()));
        }
        groupings
    }
}

/// Orders bins by their position in `metadata/attributes.toml`, then everything else by name, missing last.
fn sort_key(bins: &AttributeBins, column: &str, value: Option<&str>) -> (usize, String) {
    let Some(value) = value else { return (usize::MAX, MISSING.to_string()) };
    let rank = bins.labels(column).and_then(|labels| labels.iter().position(|l| *l == value));
    (rank.unwrap_or(usize::MAX - 1), value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(name: &str, values: &[Option<&str>]) -> Attribute {
        Attribute { name: name.into(), values: values.iter().map(|v| v.map(str::to_string)).collect() }
    }

    #[test]
    fn bins_keep_their_order_and_missing_comes_last() {
        let age = attribute("age_band", &[Some("80s+"), None, Some("<20"), Some("60s"), Some("80s+")]);
        let g = Grouping::new(&[&age]);
        let labels: Vec<&str> = g.groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["<20", "60s", "80s+", MISSING]);
        assert_eq!(g.groups[2].members, [0, 4]);
        let site = attribute("site", &[Some("b"), Some("a"), None, Some("c"), Some("a")]);
        let labels: Vec<String> = Grouping::new(&[&site]).groups.into_iter().map(|g| g.label).collect();
        assert_eq!(labels, ["a", "b", "c", MISSING]);
    }

    #[test]
    fn intersections_cross_every_attribute_and_keep_only_occurring_combinations() {
        let sex = attribute("sex", &[Some("F"), Some("M"), Some("F"), Some("M")]);
        let age = attribute("age_band", &[Some("60s"), Some("60s"), Some("30s"), Some("60s")]);
        let all = Grouping::all(&[sex, age], true);
        assert_eq!(all.len(), 3);
        let cross = &all[2];
        assert_eq!(cross.name, "sex × age_band");
        assert_eq!(cross.columns, ["sex", "age_band"]);
        let groups: Vec<(&str, &[usize])> = cross.groups.iter().map(|g| (g.label.as_str(), &g.members[..])).collect();
        assert_eq!(groups, [("F × 30s", &[2][..]), ("F × 60s", &[0][..]), ("M × 60s", &[1, 3][..])]);
        assert_eq!(cross.groups[0].values, ["F", "30s"]);
        let one = Grouping::all(&[attribute("site", &[Some("a")])], true);
        assert_eq!(one.len(), 1, "one attribute has no intersection");
    }
}
