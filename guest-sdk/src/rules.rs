//! Constructors for common id rules.

use crate::IdRules;

impl IdRules {
    /// OpenMetadata-style ids: `/a/b/c`, characters `A-Za-z0-9/_-`, no depth limit.
    pub fn slash_separated(max_id_len: u32, max_value_bytes: u64) -> IdRules {
        IdRules {
            separator: "/".into(),
            allowed_chars: "A-Za-z0-9/_-".into(),
            leading_separator: true,
            max_id_len,
            max_levels: None,
            forbidden_prefixes: Vec::new(),
            max_value_bytes,
        }
    }
}
