//! The scrubber: removes secret values from provider-originated text (errors, log
//! lines, stdout) before it reaches a log or a caller.

use crate::secret::SecretValue;

/// What replaces a scrubbed value.
pub const REDACTED: &str = "[redacted]";

/// Replaces every occurrence of each value in `text`. Values are matched as their
/// UTF-8 text; the longest first, so a value containing another is removed whole.
pub fn scrub(text: &str, values: &[SecretValue]) -> String {
    let mut needles: Vec<&str> = values
        .iter()
        .filter_map(SecretValue::expose_str)
        .filter(|s| !s.is_empty())
        .collect();
    needles.sort_by_key(|s| std::cmp::Reverse(s.len()));
    needles.dedup();
    let mut out = text.to_owned();
    for needle in needles {
        if out.contains(needle) {
            out = out.replace(needle, REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_every_touched_value() {
        let values = [
            SecretValue::from_string("pa55".into()),
            SecretValue::from_string("xpa55y".into()),
        ];
        let out = scrub("failed for xpa55y and pa55, twice: pa55", &values);
        assert_eq!(
            out,
            "failed for [redacted] and [redacted], twice: [redacted]"
        );
    }

    #[test]
    fn leaves_clean_text_alone() {
        let values = [
            SecretValue::from_string("zz-canary".into()),
            SecretValue::new(vec![0xff, 0xfe]),
        ];
        assert_eq!(scrub("all fine", &values), "all fine");
    }
}
