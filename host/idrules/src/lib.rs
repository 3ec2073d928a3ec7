//! A provider's id rules: the one definition of what they mean. The host checks
//! every id against the rules a provider declares before calling it, and a
//! provider checks with the same code (through the guest SDK) instead of
//! re-coding its rules. Dependency-free, so it builds for the host and for Wasm.
#![deny(missing_docs)]

/// The id and size rules of a provider.
///
/// ```
/// use secret_broker_idrules::IdRules;
///
/// let rules = IdRules::slash_separated(512, 65_536);
/// assert_eq!(rules.check("/openmetadata/database/mysql_prod/password"), Ok(()));
/// assert!(rules.check("/openmetadata/a b").unwrap_err().contains("' '"));
/// assert!(rules.check_value_len(70_000).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRules {
    /// Separator between segments.
    pub separator: String,
    /// Allowed characters, as a character-class body (`A-Za-z0-9/_-`).
    pub allowed_chars: String,
    /// Whether ids start with the separator. Ids that do, or whose depth is
    /// limited, are paths: an empty segment (a doubled or trailing separator)
    /// is refused. Other ids are flat names, where it is not.
    pub leading_separator: bool,
    /// Maximum id length in bytes.
    pub max_id_len: u32,
    /// Maximum number of segments.
    pub max_levels: Option<u32>,
    /// Prefixes ids may not start with.
    pub forbidden_prefixes: Vec<String>,
    /// Maximum value size in bytes.
    pub max_value_bytes: u64,
}

/// A value over a provider's size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// Size of the value in bytes.
    pub size: u64,
    /// The limit in bytes.
    pub limit: u64,
}

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

    /// Whether `c` is allowed in an id.
    pub fn allows(&self, c: char) -> bool {
        CharClass::new(&self.allowed_chars).allows(c)
    }

    /// Checks a value's size against `max_value_bytes`.
    pub fn check_value_len(&self, size: u64) -> Result<(), TooLarge> {
        self.borrowed().check_value_len(size)
    }

    /// Checks the rules themselves: see [`Rules::validate`].
    pub fn validate(&self, max_id_len: u32, max_value_bytes: u64) -> Result<(), String> {
        self.borrowed().validate(max_id_len, max_value_bytes)
    }

    /// Checks `id`, returning a message naming the rule it breaks.
    pub fn check(&self, id: &str) -> Result<(), String> {
        self.borrowed().check(id)
    }

    /// The same rules, borrowed.
    pub fn borrowed(&self) -> Rules<'_> {
        Rules {
            separator: &self.separator,
            allowed_chars: &self.allowed_chars,
            leading_separator: self.leading_separator,
            max_id_len: self.max_id_len,
            max_levels: self.max_levels,
            forbidden_prefixes: &self.forbidden_prefixes,
            max_value_bytes: self.max_value_bytes,
        }
    }
}

/// [`IdRules`] borrowed from wherever they are kept (the guest SDK borrows its
/// WIT record), so a check never copies or allocates unless it fails.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Separator between segments.
    pub separator: &'a str,
    /// Allowed characters, as a character-class body.
    pub allowed_chars: &'a str,
    /// Whether ids start with the separator.
    pub leading_separator: bool,
    /// Maximum id length in bytes.
    pub max_id_len: u32,
    /// Maximum number of segments.
    pub max_levels: Option<u32>,
    /// Prefixes ids may not start with (ASCII case-insensitive).
    pub forbidden_prefixes: &'a [String],
    /// Maximum value size in bytes.
    pub max_value_bytes: u64,
}

impl Rules<'_> {
    /// Checks a value's size against `max_value_bytes`.
    pub fn check_value_len(&self, size: u64) -> Result<(), TooLarge> {
        if size > self.max_value_bytes {
            return Err(TooLarge {
                size,
                limit: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Checks that the rules themselves are sane for a host that accepts ids of at
    /// most `max_id_len` bytes and values of at most `max_value_bytes`: sizes within
    /// those limits and above zero, a well-formed character class, a short
    /// separator, and few, short forbidden prefixes. The message names the field.
    pub fn validate(&self, max_id_len: u32, max_value_bytes: u64) -> Result<(), String> {
        const MAX_CLASS: usize = 1024;
        const MAX_SEPARATOR: usize = 4;
        const MAX_PREFIXES: usize = 64;
        const MAX_PREFIX_LEN: usize = 256;
        if self.max_id_len == 0 || self.max_id_len > max_id_len {
            return Err(format!(
                "max-id-len is {}: give 1 to {max_id_len}",
                self.max_id_len
            ));
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > max_value_bytes {
            return Err(format!(
                "max-value-bytes is {}: give 1 to {max_value_bytes}",
                self.max_value_bytes
            ));
        }
        if self.allowed_chars.is_empty() || self.allowed_chars.len() > MAX_CLASS {
            return Err(format!(
                "allowed-chars is {} bytes: give a class of 1 to {MAX_CLASS} bytes",
                self.allowed_chars.len()
            ));
        }
        let mut reversed = None;
        for_each_range(self.allowed_chars, |lo, hi| {
            if lo > hi {
                reversed = Some((lo, hi));
            }
            reversed.is_some()
        });
        if let Some((lo, hi)) = reversed {
            return Err(format!(
                "allowed-chars has the range {lo:?}-{hi:?}, whose start is after its end"
            ));
        }
        if self.separator.len() > MAX_SEPARATOR || self.separator.chars().any(char::is_control) {
            return Err(format!(
                "the separator is {} bytes: give at most {MAX_SEPARATOR} printable bytes",
                self.separator.len()
            ));
        }
        if self.leading_separator && self.separator.is_empty() {
            return Err("leading-separator is set but the separator is empty".into());
        }
        if self.max_levels == Some(0) {
            return Err("max-levels is 0: give at least 1, or none".into());
        }
        if self.forbidden_prefixes.len() > MAX_PREFIXES {
            return Err(format!(
                "forbidden-prefixes has {} entries: give at most {MAX_PREFIXES}",
                self.forbidden_prefixes.len()
            ));
        }
        if let Some(p) = self
            .forbidden_prefixes
            .iter()
            .find(|p| p.is_empty() || p.len() > MAX_PREFIX_LEN)
        {
            return Err(format!(
                "a forbidden prefix is {} bytes: give 1 to {MAX_PREFIX_LEN}",
                p.len()
            ));
        }
        Ok(())
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
        let class = CharClass::new(self.allowed_chars);
        // Most ids are ASCII: bytes against the bitmap, characters only otherwise.
        let ascii_ok = id.bytes().all(|b| class.allows_byte(b));
        if let Some(c) = (!ascii_ok)
            .then(|| id.chars().find(|&c| !class.allows(c)))
            .flatten()
        {
            return Err(format!(
                "the id contains {c:?}, outside the allowed characters [{}]",
                self.allowed_chars
            ));
        }
        let body = match id.strip_prefix(self.separator) {
            Some(rest) => rest,
            None if self.leading_separator => {
                return Err(format!("the id must start with {:?}", self.separator));
            }
            None => id,
        };
        if !self.separator.is_empty() {
            let (mut levels, mut empty) = (0usize, false);
            let mut visit = |segment: &str| {
                levels += 1;
                empty |= segment.is_empty();
            };
            // A one-character separator splits by `char`: no substring searcher.
            let mut sep = self.separator.chars();
            match (sep.next(), sep.next()) {
                (Some(c), None) => body.split(c).for_each(&mut visit),
                _ => body.split(self.separator).for_each(&mut visit),
            }
            // Segments matter where ids are paths (they start with the
            // separator, or their depth is limited); elsewhere an id is a flat
            // name whose separator is a convention, and a doubled, leading or
            // trailing one is a character like any other (OpenMetadata writes
            // `openmetadata-database--password` for a name that cleans to
            // nothing on Azure Key Vault).
            let paths = self.leading_separator || self.max_levels.is_some();
            if empty && paths {
                return Err(format!(
                    "the id has an empty segment (a doubled or trailing {:?})",
                    self.separator
                ));
            }
            if let Some(max) = self.max_levels.filter(|&m| levels > m as usize) {
                return Err(format!(
                    "the id has {levels} levels, over the limit of {max}"
                ));
            }
        }
        let starts_with = |p: &str| {
            body.len() >= p.len() && body.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
        };
        if let Some(p) = self.forbidden_prefixes.iter().find(|p| starts_with(p)) {
            return Err(format!("ids may not start with {p:?}"));
        }
        Ok(())
    }
}

/// A character-class body (`A-Za-z0-9/_-`: `a-z` ranges, other characters
/// literal, a leading or trailing `-` literal), with its ASCII part as a bitmap in
/// two `u64` halves (Wasm has no native 128-bit shifts).
struct CharClass<'a> {
    class: &'a str,
    ascii: [u64; 2],
}

impl<'a> CharClass<'a> {
    fn new(class: &'a str) -> Self {
        let mut ascii = [0u64; 2];
        for_each_range(class, |lo, hi| {
            let (lo, hi) = (lo as u32, (hi as u32).min(127));
            for (half, word) in ascii.iter_mut().enumerate() {
                let base = half as u32 * 64;
                if lo > base + 63 || hi < base || lo > hi {
                    continue;
                }
                let (from, to) = (lo.max(base) - base, hi.min(base + 63) - base);
                // Bits from..=to in two shifts, whatever the width of the range.
                *word |= (u64::MAX >> (63 - to)) & (u64::MAX << from);
            }
            false
        });
        CharClass { class, ascii }
    }

    fn allows_byte(&self, b: u8) -> bool {
        b < 128 && self.ascii[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn allows(&self, c: char) -> bool {
        if c.is_ascii() {
            return self.allows_byte(c as u8);
        }
        for_each_range(self.class, |lo, hi| lo <= c && c <= hi)
    }
}

/// Calls `f` with each range of the class (a single character as `(c, c)`) until
/// it returns true; returns whether it did.
fn for_each_range(class: &str, mut f: impl FnMut(char, char) -> bool) -> bool {
    let mut chars = class.chars();
    while let Some(lo) = chars.next() {
        let mut ahead = chars.clone();
        if let (Some('-'), Some(hi)) = (ahead.next(), ahead.next()) {
            if f(lo, hi) {
                return true;
            }
            chars = ahead;
        } else if f(lo, lo) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allowed: &str, max_levels: Option<u32>) -> IdRules {
        IdRules {
            separator: "/".into(),
            allowed_chars: allowed.into(),
            leading_separator: true,
            max_id_len: 40,
            max_levels,
            forbidden_prefixes: vec!["aws".into(), "ssm".into()],
            max_value_bytes: 10,
        }
    }

    #[test]
    fn validate_refuses_insane_rules() {
        let ok = rules("A-Za-z0-9/_-", None);
        assert_eq!(ok.validate(4096, 1 << 20), Ok(()));
        let mut r = ok.clone();
        r.max_id_len = 0;
        assert!(
            r.validate(4096, 1 << 20)
                .unwrap_err()
                .contains("max-id-len")
        );
        let mut r = ok.clone();
        r.max_value_bytes = u64::MAX;
        assert!(
            r.validate(4096, 1 << 20)
                .unwrap_err()
                .contains("max-value-bytes")
        );
        let mut r = ok.clone();
        r.allowed_chars = "z-a".into();
        assert!(r.validate(4096, 1 << 20).unwrap_err().contains("range"));
        let mut r = ok.clone();
        r.forbidden_prefixes = vec!["p".into(); 65];
        assert!(
            r.validate(4096, 1 << 20)
                .unwrap_err()
                .contains("forbidden-prefixes")
        );
        let mut r = ok;
        r.separator = "\u{1b}[2J".into();
        assert!(r.validate(4096, 1 << 20).unwrap_err().contains("separator"));
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

    /// Flat names (no leading separator, no depth limit) take doubled, leading
    /// and trailing separators: OpenMetadata writes them for names that clean
    /// to nothing. Paths do not.
    #[test]
    fn flat_names_take_empty_segments_paths_do_not() {
        let flat = IdRules {
            separator: "-".into(),
            allowed_chars: "A-Za-z0-9-".into(),
            leading_separator: false,
            max_id_len: 127,
            max_levels: None,
            forbidden_prefixes: Vec::new(),
            max_value_bytes: 10,
        };
        for id in [
            "openmetadata-database--password",
            "-database-x",
            "x-",
            "a---b",
        ] {
            assert_eq!(flat.check(id), Ok(()), "{id}");
        }
        let mut levelled = flat.clone();
        levelled.max_levels = Some(15);
        assert!(
            levelled
                .check("a--b")
                .unwrap_err()
                .contains("empty segment")
        );
        assert!(rules("A-Za-z0-9/_-", None).check("/a//b").is_err());
    }

    #[test]
    fn value_size() {
        let r = rules("a-z/", None);
        assert_eq!(r.check_value_len(10), Ok(()));
        assert_eq!(
            r.check_value_len(11),
            Err(TooLarge {
                size: 11,
                limit: 10
            })
        );
    }

    #[test]
    fn classes_parse_ranges_literals_and_non_ascii() {
        let r = rules("a-c-x\u{e9}\u{100}-\u{17f}", None);
        assert!(r.allows('b') && r.allows('-') && r.allows('x') && !r.allows('d'));
        assert!(r.allows('\u{e9}') && r.allows('\u{101}') && !r.allows('\u{e8}'));
        let r = rules("-a", None);
        assert!(r.allows('-') && r.allows('a') && !r.allows('b'));
        let r = rules("\u{0}-\u{7f}", None);
        assert!(r.allows('\u{0}') && r.allows('\u{7f}') && !r.allows('\u{80}'));
        let r = rules("z-a", None);
        assert!(!r.allows('m') && !r.allows('z'));
    }

    #[test]
    fn class_with_symbols() {
        let r = rules("A-Za-z0-9/_+=.@-", None);
        assert!(r.allows('@') && r.allows('-') && r.allows('=') && !r.allows(' '));
    }
}
