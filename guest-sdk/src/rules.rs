//! Id rules: the provider declares them in its info, and checks ids and values
//! with the same code the host uses (`secret-broker-idrules`), so a provider never
//! re-codes the rules it declares.

use crate::{Error, IdRules, Secret, SizeLimit};

impl IdRules {
    /// OpenMetadata-style ids: `/a/b/c`, characters `A-Za-z0-9/_-`, no depth limit.
    pub fn slash_separated(max_id_len: u32, max_value_bytes: u64) -> IdRules {
        from_rules(secret_broker_idrules::IdRules::slash_separated(
            max_id_len,
            max_value_bytes,
        ))
    }

    /// Checks `id` against these rules; the error names the rule it breaks.
    pub fn check(&self, id: &str) -> Result<(), Error> {
        borrowed(self).check(id).map_err(Error::InvalidId)
    }

    /// Checks a value's size against `max-value-bytes`.
    pub fn check_value(&self, value: &Secret) -> Result<(), Error> {
        borrowed(self).check_value_len(value.len()).map_err(|t| {
            Error::ValueTooLarge(SizeLimit {
                size: t.size,
                limit: t.limit,
            })
        })
    }
}

fn borrowed(r: &IdRules) -> secret_broker_idrules::Rules<'_> {
    secret_broker_idrules::Rules {
        separator: &r.separator,
        allowed_chars: &r.allowed_chars,
        leading_separator: r.leading_separator,
        max_id_len: r.max_id_len,
        max_levels: r.max_levels,
        forbidden_prefixes: &r.forbidden_prefixes,
        max_value_bytes: r.max_value_bytes,
    }
}

fn from_rules(r: secret_broker_idrules::IdRules) -> IdRules {
    IdRules {
        separator: r.separator,
        allowed_chars: r.allowed_chars,
        leading_separator: r.leading_separator,
        max_id_len: r.max_id_len,
        max_levels: r.max_levels,
        forbidden_prefixes: r.forbidden_prefixes,
        max_value_bytes: r.max_value_bytes,
    }
}
