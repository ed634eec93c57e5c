//! "Did you mean …": the known key closest to a misspelt one, by edit distance.

/// Edit distance between `a` and `b` counting insertions, deletions, substitutions and swaps of two adjacent
/// characters as one edit each (optimal string alignment), so the common typos `stpes` and `guidnace` are one edit
/// from `steps` and `guidance`.
///
/// ```
/// assert_eq!(cmr_pipeline::suggest::distance("stpes", "steps"), 1);
/// assert_eq!(cmr_pipeline::suggest::distance("lr", "lr"), 0);
/// ```
pub fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: distance between a[..i] and b[..j]; three rows are enough for the swap.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let substitution = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            current[j] = substitution.min(previous[j] + 1).min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

/// The known key `key` most likely meant: the same key with `-` for `_` (a flag's spelling), else the closest key
/// within a third of the longer length (at least 1 edit); `None` when nothing is close.
pub fn did_you_mean<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let snake = key.replace('-', "_");
    if let Some(exact) = known.iter().find(|k| **k == snake) {
        return Some(exact);
    }
    known
        .iter()
        .map(|k| (distance(key, k), *k))
        .filter(|(d, k)| *d <= (key.chars().count().max(k.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("guidance", "guidnace"), 1);
        assert_eq!(distance("ab", "ba"), 1);
    }

    #[test]
    fn suggests_the_closest_key_or_the_snake_case_spelling() {
        let known = ["steps", "batch", "lr", "max_synthetic_ratio"];
        assert_eq!(did_you_mean("stpes", &known), Some("steps"));
        assert_eq!(did_you_mean("max-synthetic-ratio", &known), Some("max_synthetic_ratio"));
        assert_eq!(did_you_mean("lrr", &known), Some("lr"));
        assert_eq!(did_you_mean("temperature", &known), None);
    }
}
