//! A provider's declared id rules, enforced by the host before every call so a
//! provider never sees an id it declared invalid.

use crate::bindings::WitIdRules;

/// The id rules of a provider, in host form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IdRules {
    /// Separator between segments.
    pub separator: String,
    /// Allowed characters, as a character-class body (`A-Za-z0-9/_-`).
    pub allowed_chars: String,
    /// Whether ids start with the separator.
    pub leading_separator: bool,
    /// Maximum id length in bytes.
    pub max_id_len: u32,
    /// Maximum number of segments.
    pub max_levels: Option<u32>,
    /// Prefixes ids may not start with.
    pub forbidden_prefixes: Vec<String>,
    /// Maximum value size in bytes.
    pub max_value_bytes: u64,
    #[serde(skip)]
    ranges: Vec<(char, char)>,
}

impl IdRules {
    pub(crate) fn from_wit(rules: WitIdRules) -> Self {
        let ranges = parse_class(&rules.allowed_chars);
        IdRules {
            separator: rules.separator,
            allowed_chars: rules.allowed_chars,
            leading_separator: rules.leading_separator,
            max_id_len: rules.max_id_len,
            max_levels: rules.max_levels,
            forbidden_prefixes: rules.forbidden_prefixes,
            max_value_bytes: rules.max_value_bytes,
            ranges,
        }
    }

    /// Whether `c` is allowed in an id.
    pub fn allows(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
    }

    /// Checks `id`, returning a message naming the rule it breaks.
    pub fn check(&self, id: &str) -> Result<(), String> {
        if id.is_empty() {
            return Err("the id is empty".into());
        }
        if id.len() > self.max_id_len as usize {
            return Err(format!(
                "the id is {} bytes long, over the limit of {}",
                id.len(),
                self.max_id_len
            ));
        }
        if let Some(c) = id.chars().find(|&c| !self.allows(c)) {
            return Err(format!(
                "the id contains {c:?}, outside the allowed characters [{}]",
                self.allowed_chars
            ));
        }
        let body = match id.strip_prefix(self.separator.as_str()) {
            Some(rest) => rest,
            None if self.leading_separator => {
                return Err(format!("the id must start with {:?}", self.separator));
            }
            None => id,
        };
        if !self.separator.is_empty() {
            if body.split(self.separator.as_str()).any(str::is_empty) {
                return Err(format!(
                    "the id has an empty segment (a doubled or trailing {:?})",
                    self.separator
                ));
            }
            let levels = body.split(self.separator.as_str()).count();
            if let Some(max) = self.max_levels.filter(|&m| levels > m as usize) {
                return Err(format!(
                    "the id has {levels} levels, over the limit of {max}"
                ));
            }
        }
        let lower = body.to_ascii_lowercase();
        if let Some(p) = self
            .forbidden_prefixes
            .iter()
            .find(|p| lower.starts_with(&p.to_ascii_lowercase()))
        {
            return Err(format!("ids may not start with {p:?}"));
        }
        Ok(())
    }
}

/// Parses a character-class body: `a-z` ranges, other characters literal, a
/// leading or trailing `-` literal.
fn parse_class(class: &str) -> Vec<(char, char)> {
    let chars: Vec<char> = class.chars().collect();
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if i + 2 < chars.len() && chars[i + 1] == '-' {
            ranges.push((chars[i], chars[i + 2]));
            i += 3;
        } else {
            ranges.push((chars[i], chars[i]));
            i += 1;
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allowed: &str, max_levels: Option<u32>) -> IdRules {
        IdRules::from_wit(WitIdRules {
            separator: "/".into(),
            allowed_chars: allowed.into(),
            leading_separator: true,
            max_id_len: 40,
            max_levels,
            forbidden_prefixes: vec!["aws".into(), "ssm".into()],
            max_value_bytes: 10,
        })
    }

    #[test]
    fn openmetadata_ids_pass() {
        let r = rules("A-Za-z0-9/_-", None);
        assert_eq!(r.check("/openmetadata/bot/ingestion-bot/x"), Ok(()));
    }

    #[test]
    fn each_rule_names_itself() {
        let r = rules("A-Za-z0-9/_-", Some(3));
        assert!(r.check("no-slash").unwrap_err().contains("must start with"));
        assert!(r.check("/a b").unwrap_err().contains("' '"));
        assert!(r.check("/a//b").unwrap_err().contains("empty segment"));
        assert!(r.check("/a/b/c/d").unwrap_err().contains("4 levels"));
        assert!(r.check("/AWS/x").unwrap_err().contains("may not start"));
        assert!(
            r.check(&format!("/{}", "a".repeat(40)))
                .unwrap_err()
                .contains("over the limit of 40")
        );
    }

    #[test]
    fn class_with_symbols() {
        let r = rules("A-Za-z0-9/_+=.@-", None);
        assert!(r.allows('@') && r.allows('-') && r.allows('=') && !r.allows(' '));
    }
}
