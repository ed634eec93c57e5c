//! The text prompt of a subject, as the reference code builds it from metadata:
//! `"{Sex}, age in {decade}0s, {bmi_class} BMI, {condition}"` (Skorupko et al., arXiv 2403.19508).

use crate::attributes::{AttributeBins, Sex};

/// Builds the prompt of a subject. A missing attribute drops its clause (the template's comma-separated part that
/// holds its placeholder); all attributes missing give the empty, unconditional prompt.
///
/// ```
/// use cmr_core::{attributes::AttributeBins, prompt::prompt, Sex};
/// let bins = AttributeBins::default();
/// assert_eq!(prompt(&bins, Some(Sex::F), Some(74.0), Some("overweight"), Some("HCM")),
///            "Female, age in 70s, overweight BMI, hypertrophic cardiomyopathy");
/// assert_eq!(prompt(&bins, Some(Sex::M), None, None, Some("NOR")), "Male, healthy");
/// ```
pub fn prompt(
    bins: &AttributeBins,
    sex: Option<Sex>,
    age: Option<f64>,
    bmi_class: Option<&str>,
    diagnosis: Option<&str>,
) -> String {
    let decade = age.map(|a| decade(a).to_string());
    let condition = diagnosis.map(|code| bins.prompt.condition.get(code).map(String::as_str).unwrap_or(code));
    let fills: [(&str, Option<&str>); 4] = [
        ("{sex}", sex.map(Sex::word)),
        ("{decade}", decade.as_deref()),
        ("{bmi_class}", bmi_class),
        ("{condition}", condition),
    ];
    bins.prompt
        .template
        .split(',')
        .filter_map(|clause| {
            let mut clause = clause.trim().to_string();
            for (placeholder, value) in fills {
                if clause.contains(placeholder) {
                    clause = clause.replace(placeholder, value?);
                }
            }
            Some(clause)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The decade a prompt names for `age` years (`74.0` → `7`, "age in 70s"): two ages with the same decade, sex, BMI
/// class and diagnosis have the same prompt.
pub fn decade(age: f64) -> u32 {
    (age.max(0.0) / 10.0).floor() as u32
}
