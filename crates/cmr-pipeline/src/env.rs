//! `${VAR}` in pipeline values: data roots come from the environment (`root = "${ACDC_ROOT}"`), so one pipeline file
//! serves every machine. Only the `${NAME}` form is expanded; a `$` not followed by `{` stays as written.

/// `text` with every `${NAME}` replaced by `lookup(NAME)`; `Err(NAME)` for the first variable `lookup` lacks (or an
/// unterminated `${`, reported as its text).
///
/// ```
/// let home = |name: &str| (name == "ROOT").then(|| "/data".to_string());
/// assert_eq!(cmr_pipeline::env::expand("${ROOT}/acdc", home).unwrap(), "/data/acdc");
/// assert_eq!(cmr_pipeline::env::expand("${NOPE}", home).unwrap_err(), "NOPE");
/// ```
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| rest[start..].to_string())?;
        let name = &after[..end];
        out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The process environment as a lookup; an empty variable counts as unset (`ACDC_ROOT=` is a mistake, not the
/// current folder).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_several_variables_and_leaves_plain_dollars() {
        let lookup = |name: &str| Some(format!("<{name}>"));
        assert_eq!(expand("${A}/x/${B}", lookup).unwrap(), "<A>/x/<B>");
        assert_eq!(expand("cost $5", lookup).unwrap(), "cost $5");
    }

    #[test]
    fn unterminated_reference_is_an_error() {
        assert_eq!(expand("a/${ROOT", |_| Some(String::new())).unwrap_err(), "${ROOT");
    }
}
