//! The scrubber: removes secret values from provider-originated text (errors, log
//! lines, stdout) before it reaches a log or a caller, and makes that text safe to
//! print.
//!
//! One Aho-Corasick automaton per set of values matches every value and its common
//! encodings (hex, base64, URL, JSON-escaped) in one pass over the text, leftmost
//! longest first: the work is linear in the text and the needles, and the output is
//! never matched again, so a value that spells part of [`REDACTED`] cannot make the
//! text grow more than once. A value too short to hide by marking its place (under
//! [`MIN_SCRUB_LEN`] bytes, in any encoding) withholds the whole text instead.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use memchr::memmem::Finder;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use secrecy::zeroize::Zeroizing;

use crate::secret::SecretValue;

/// What replaces a scrubbed value.
pub const REDACTED: &str = "[redacted]";

/// What replaces a whole text that holds a value too short to scrub in place.
pub const WITHHELD: &str = "[provider text withheld: it held a secret value too short to redact]";

/// Needles shorter than this withhold the whole text rather than being marked.
pub const MIN_SCRUB_LEN: usize = 4;

/// RFC 3986 unreserved characters stay as they are in URL encoding.
const URL_RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A value's needles, wiped when the last holder drops them.
pub(crate) type Needles = Arc<[Zeroizing<Vec<u8>>]>;

/// The needles of `value`, each once (none for an empty one).
pub(crate) fn needles_of(value: &[u8]) -> Needles {
    let mut out = Vec::new();
    needles(value, &mut out);
    let mut out: Vec<Zeroizing<Vec<u8>>> = out.into_iter().map(Zeroizing::new).collect();
    // Most encodings of plain text are the text itself.
    out.sort_by(|a, b| a.as_slice().cmp(b.as_slice()));
    out.dedup_by(|later, first| later.as_slice() == first.as_slice());
    out.into()
}

/// The forms of `value` the scrubber looks for: the bytes, and their encodings.
fn needles(value: &[u8], out: &mut Vec<Vec<u8>>) {
    if value.is_empty() {
        return;
    }
    out.push(value.to_vec());
    out.push(hex::encode(value).into_bytes());
    out.push(hex::encode_upper(value).into_bytes());
    out.push(
        base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(value)
            .into_bytes(),
    );
    out.push(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(value)
            .into_bytes(),
    );
    let url = percent_encoding::percent_encode(value, URL_RESERVED).to_string();
    out.push(url.replace("%20", "+").into_bytes());
    out.push(url.into_bytes());
    out.push(
        percent_encoding::percent_encode(value, NON_ALPHANUMERIC)
            .to_string()
            .into_bytes(),
    );
    if let Ok(json) = std::str::from_utf8(value)
        .map(|text| Zeroizing::new(serde_json::Value::from(text).to_string()))
    {
        let escaped = &json[1..json.len() - 1];
        // JSON with every non-ASCII character escaped too, as some encoders write it.
        let mut ascii = String::with_capacity(escaped.len());
        for c in escaped.chars() {
            if c.is_ascii() {
                ascii.push(c);
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    ascii.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out.push(escaped.as_bytes().to_vec());
        out.push(ascii.into_bytes());
    }
}

/// Bytes of a needle the automaton holds: a longer needle is matched by its
/// first and last this many bytes (and removed whole where it occurs whole), so
/// the automaton stays small however large the values.
const WINDOW: usize = 64;

/// Texts up to this size are searched needle by needle with `memchr` on the
/// needle's first byte (no searcher to build); longer ones with `memmem`
/// searchers, built at the first such text.
const SHORT_TEXT: usize = 16 * 1024;

/// One pattern: a needle, or a window of a long one.
struct Pattern {
    /// Too short to mark in place: the whole text is withheld.
    short: bool,
    /// The needle: its value's index and its index among that value's needles.
    at: (usize, usize),
    part: Part,
}

/// Which bytes of its needle a pattern searches for.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Whole,
    /// The leading window of a long needle, which is removed whole where it
    /// occurs whole.
    Head,
    Tail,
}

/// A compiled set of values to remove from text.
pub struct Scrubber {
    /// Each value's needles (shared with the value when it keeps them).
    sources: Vec<Needles>,
    /// Sorted by their bytes, without duplicates.
    patterns: Vec<Pattern>,
    automaton: Option<AhoCorasick>,
    /// For a one-shot scrubber's long texts: a searcher per pattern.
    finders: OnceLock<Vec<Finder<'static>>>,
}

impl Scrubber {
    /// A scrubber for `values` and their encodings, built for many texts (a
    /// DFA: slower to build, fastest to run).
    pub fn new(values: &[SecretValue]) -> Self {
        Self::build(values, false)
    }

    /// A scrubber for one short text (an HTTP answer): no automaton is built; each
    /// needle is searched on its own, with the same leftmost-longest result.
    pub fn one_shot(values: &[SecretValue]) -> Self {
        Self::build(values, true)
    }

    fn build(values: &[SecretValue], one_shot: bool) -> Self {
        let sources: Vec<Needles> = values
            .iter()
            .filter(|v| !v.is_empty())
            .map(SecretValue::needles)
            .collect();
        // What the search runs on: a short needle itself, a long one by its
        // leading window (removing the whole needle where it occurs whole) and
        // its trailing window. Sorted and deduplicated by bytes, no hashing.
        let mut patterns = Vec::new();
        for (v, needles) in sources.iter().enumerate() {
            for (n, needle) in needles.iter().enumerate() {
                let at = (v, n);
                if needle.len() <= WINDOW {
                    let short = needle.len() < MIN_SCRUB_LEN;
                    patterns.push(Pattern {
                        short,
                        at,
                        part: Part::Whole,
                    });
                } else {
                    for part in [Part::Head, Part::Tail] {
                        patterns.push(Pattern {
                            short: false,
                            at,
                            part,
                        });
                    }
                }
            }
        }
        patterns.sort_by(|a, b| window(&sources, a).cmp(window(&sources, b)));
        patterns.dedup_by(|later, first| window(&sources, later) == window(&sources, first));
        let automaton = if one_shot || patterns.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|p| window(&sources, p)))
                .ok()
        };
        Scrubber {
            sources,
            patterns,
            automaton,
            finders: OnceLock::new(),
        }
    }

    /// Every occurrence of every pattern in `text`: (start, end, pattern).
    fn occurrences(&self, text: &[u8], first_only: bool) -> Vec<(usize, usize, usize)> {
        let mut all = Vec::new();
        if text.len() <= SHORT_TEXT {
            for (i, p) in self.patterns.iter().enumerate() {
                let needle = window(&self.sources, p);
                let Some((&first, rest)) = needle.split_first() else {
                    continue;
                };
                let Some(last_start) = text.len().checked_sub(needle.len()) else {
                    continue;
                };
                for start in memchr::memchr_iter(first, &text[..=last_start]) {
                    if text[start + 1..start + needle.len()] == *rest {
                        all.push((start, start + needle.len(), i));
                        if first_only {
                            return all;
                        }
                    }
                }
            }
            return all;
        }
        let finders = self.finders.get_or_init(|| {
            self.patterns
                .iter()
                .map(|p| Finder::new(window(&self.sources, p)).into_owned())
                .collect()
        });
        for (i, finder) in finders.iter().enumerate() {
            let len = finder.needle().len();
            for start in finder.find_iter(text) {
                all.push((start, start + len, i));
                if first_only {
                    return all;
                }
            }
        }
        all
    }

    /// `text` with every value replaced by [`REDACTED`], or [`WITHHELD`] if a value
    /// too short to mark occurs in it. Borrowed when nothing matched.
    pub fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match self.scrub_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // A needle that is not UTF-8 may have cut a character: what is left
            // of it is replaced, never passed on.
            Cow::Owned(buf) => Cow::Owned(String::from_utf8_lossy(&buf).into_owned()),
        }
    }

    /// [`Scrubber::scrub`] for bytes that need not be text (an HTTP body).
    pub fn scrub_bytes<'t>(&self, bytes: &'t [u8]) -> Cow<'t, [u8]> {
        let matches: Vec<(usize, usize, usize)> = match &self.automaton {
            Some(ac) => ac
                .find_iter(bytes)
                .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
                .collect(),
            None if self.patterns.is_empty() => return Cow::Borrowed(bytes),
            None => leftmost_longest(self.occurrences(bytes, false)),
        };
        self.replace(bytes, matches)
    }

    /// `token`, one token of structured data (a JSON string's decoded text, a
    /// number's text, a header value), with every value of [`MIN_SCRUB_LEN`]
    /// bytes or more, in each of its encodings, replaced by [`REDACTED`]. A
    /// shorter value is left: inside such a token it is indistinguishable from
    /// the token's own characters (`1` in a version number, `a` in a word), and
    /// withholding every token that holds one would corrupt what an honest
    /// provider receives. What keeps a short value from coming back is where the
    /// host lets it go, not a search for it. Borrowed when nothing matched.
    pub fn scrub_token<'t>(&self, token: &'t str) -> Cow<'t, str> {
        let long: Vec<(usize, usize, usize)> = self
            .occurrences(token.as_bytes(), false)
            .into_iter()
            .filter(|(_, _, p)| self.patterns.get(*p).is_some_and(|p| !p.short))
            .collect();
        match self.replace(token.as_bytes(), leftmost_longest(long)) {
            Cow::Borrowed(_) => Cow::Borrowed(token),
            Cow::Owned(buf) => Cow::Owned(String::from_utf8_lossy(&buf).into_owned()),
        }
    }

    /// `bytes` with each of `matches` (leftmost-longest, from this scrubber's
    /// patterns) replaced by [`REDACTED`], or [`WITHHELD`] whole if one is a
    /// value too short to mark.
    fn replace<'t>(&self, bytes: &'t [u8], matches: Vec<(usize, usize, usize)>) -> Cow<'t, [u8]> {
        if matches.is_empty() {
            return Cow::Borrowed(bytes);
        }
        let mut out: Option<Vec<u8>> = None;
        let mut last = 0;
        for (start, end, pattern) in matches {
            if start < last {
                // Inside a long value already removed whole.
                continue;
            }
            let Some(pattern) = self.patterns.get(pattern) else {
                return Cow::Owned(WITHHELD.as_bytes().to_vec());
            };
            if pattern.short {
                return Cow::Owned(WITHHELD.as_bytes().to_vec());
            }
            let whole = &self.sources[pattern.at.0][pattern.at.1];
            let end = match pattern.part {
                Part::Head if bytes[start..].starts_with(whole) => start + whole.len(),
                _ => end,
            };
            let buf = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
            buf.extend_from_slice(&bytes[last..start]);
            buf.extend_from_slice(REDACTED.as_bytes());
            last = end;
        }
        match out {
            None => Cow::Borrowed(bytes),
            Some(mut buf) => {
                buf.extend_from_slice(&bytes[last..]);
                Cow::Owned(buf)
            }
        }
    }

    /// Whether any value occurs in `text`.
    pub fn matches(&self, text: &str) -> bool {
        self.matches_bytes(text.as_bytes())
    }

    /// Whether any value occurs in `bytes`.
    pub fn matches_bytes(&self, bytes: &[u8]) -> bool {
        match &self.automaton {
            Some(ac) => ac.is_match(bytes),
            None => !self.occurrences(bytes, true).is_empty(),
        }
    }
}

/// The bytes a pattern searches for.
fn window<'s>(sources: &'s [Needles], p: &Pattern) -> &'s [u8] {
    let needle: &[u8] = &sources[p.at.0][p.at.1];
    match p.part {
        Part::Whole => needle,
        Part::Head => &needle[..WINDOW],
        Part::Tail => &needle[needle.len() - WINDOW..],
    }
}

/// The matches an Aho-Corasick automaton with leftmost-longest semantics would
/// report, from every occurrence of every needle: at each position the longest
/// needle starting there wins, and the search goes on after it.
fn leftmost_longest(mut all: Vec<(usize, usize, usize)>) -> Vec<(usize, usize, usize)> {
    // Leftmost first; at one start, longest first.
    all.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out = Vec::new();
    let mut next = 0;
    for m in all {
        if m.0 >= next {
            next = m.1;
            out.push(m);
        }
    }
    out
}

/// Replaces every occurrence of each value (and its encodings) in `text`.
pub fn scrub(text: &str, values: &[SecretValue]) -> String {
    Scrubber::new(values).scrub(text).into_owned()
}

/// `text` made safe for a terminal or a log line: control characters (newlines,
/// escape sequences) and bidirectional overrides are written as escapes, so what a
/// provider says can neither forge a log entry nor redraw what an operator sees.
pub fn printable(text: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Values an instance granted `reveal` touched in earlier calls, most recent last:
/// it holds their plaintext, so what it says later is scrubbed of them too.
#[derive(Default)]
pub struct Remembered {
    values: VecDeque<SecretValue>,
    ids: HashSet<usize>,
}

impl Remembered {
    /// How many values are kept.
    pub const CAPACITY: usize = 1024;

    /// Remembers `values`, forgetting the oldest beyond [`Remembered::CAPACITY`].
    pub fn extend(&mut self, values: &[SecretValue]) {
        for value in values {
            if self.ids.insert(value.buffer_id()) {
                self.values.push_back(value.clone());
            }
        }
        while self.values.len() > Self::CAPACITY {
            if let Some(old) = self.values.pop_front() {
                self.ids.remove(&old.buffer_id());
            }
        }
    }

    /// The values remembered.
    pub fn values(&self) -> impl Iterator<Item = &SecretValue> {
        self.values.iter()
    }
}

/// Whether a scrubbing log writer is installed; until then nothing is registered.
static ENABLED: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Values provider calls are handling right now, for the log writer, and the
/// scrubber compiled from them (rebuilt after a change, when first needed).
#[derive(Default)]
struct Registry {
    values: HashMap<u64, SecretValue>,
    compiled: Option<Arc<Scrubber>>,
}

static IN_FLIGHT: Mutex<Option<Registry>> = Mutex::new(None);

fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(Registry::default))
}

/// Values a provider call is handling, registered for [`ScrubbingWriter`] while
/// the guard lives: log lines that third-party code (the AWS SDK, sqlx, wasmtime)
/// writes during the call are scrubbed of them. A no-op until a scrubbing writer
/// is installed. Registering and releasing cost O(1) per value.
#[derive(Default)]
pub struct InFlight {
    ids: Vec<u64>,
}

impl InFlight {
    /// Registers `value` until this guard drops.
    pub fn add(&mut self, value: &SecretValue) {
        if !ENABLED.load(Ordering::Relaxed) || value.is_empty() {
            return;
        }
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        with_registry(|r| {
            r.values.insert(id, value.clone());
            r.compiled = None;
        });
        self.ids.push(id);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        with_registry(|r| {
            for id in &self.ids {
                r.values.remove(id);
            }
            r.compiled = None;
        });
    }
}

/// The scrubber of every value in flight now.
fn in_flight() -> Option<Arc<Scrubber>> {
    with_registry(|r| {
        if r.values.is_empty() {
            return None;
        }
        if r.compiled.is_none() {
            let values: Vec<SecretValue> = r.values.values().cloned().collect();
            r.compiled = Some(Arc::new(Scrubber::new(&values)));
        }
        r.compiled.clone()
    })
}

/// A log writer that removes every in-flight value from each line it writes.
/// `tracing-subscriber`'s fmt layer writes each event in one call, so a value is
/// never split across writes.
pub struct ScrubbingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for ScrubbingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match in_flight() {
            None => self.0.write_all(buf)?,
            Some(scrubber) => {
                let text = String::from_utf8_lossy(buf);
                let clean = scrubber.scrub(&text);
                if matches!(clean, Cow::Borrowed(WITHHELD)) {
                    self.0.write_all(WITHHELD.as_bytes())?;
                    self.0.write_all(b"\n")?;
                } else {
                    self.0.write_all(clean.as_bytes())?;
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `text` scrubbed of every value provider calls are handling now.
pub fn scrub_in_flight(text: &str) -> String {
    match in_flight() {
        None => text.to_owned(),
        Some(s) => s.scrub(text).into_owned(),
    }
}

/// Turns on in-flight registration; call it when installing a [`ScrubbingWriter`].
pub fn enable_log_scrubbing() {
    ENABLED.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(list: &[&str]) -> Vec<SecretValue> {
        list.iter()
            .map(|s| SecretValue::from_string((*s).to_owned()))
            .collect()
    }

    #[test]
    fn one_shot_scrubbing_matches_the_automaton() {
        let long = "L".repeat(300) + "-tail-of-a-long-secret";
        let vals = values(&[
            "pa55word",
            "pa55",
            "s3cr3t-xyz",
            "abc",
            long.as_str(),
            "ünïcode-välue",
        ]);
        let texts = [
            String::new(),
            "nothing here".to_owned(),
            "pa55word then pa55 then pa55wordpa55".to_owned(),
            format!(
                "{{\"v\":\"s3cr3t-xyz\",\"h\":\"{}\"}}",
                hex::encode("s3cr3t-xyz")
            ),
            format!("a{long}b {} c", &long[..WINDOW + 3]),
            "x czFjcjN0LXh5eg y %C3%BCn%C3%AFcode".to_owned(),
            "has abc in it".to_owned(),
            // Past the short-text search: the one-shot scrubber's searchers.
            format!("{}pa55word {long} s3cr3t-xyz", "x".repeat(SHORT_TEXT)),
            format!("{}nothing", "y".repeat(SHORT_TEXT)),
        ];
        let (many, one) = (Scrubber::new(&vals), Scrubber::one_shot(&vals));
        for text in &texts {
            assert_eq!(many.scrub(text), one.scrub(text), "{text}");
            assert_eq!(many.matches(text), one.matches(text), "{text}");
        }
    }

    #[test]
    fn a_small_value_keeps_its_needles_and_a_large_one_does_not() {
        let small = SecretValue::from_string("a-credential-sent-every-call".into());
        assert!(Arc::ptr_eq(&small.needles(), &small.clone().needles()));
        let large = SecretValue::new(vec![b'k'; 4096]);
        assert!(!Arc::ptr_eq(&large.needles(), &large.needles()));
        // Each form once: plain ASCII is its own URL and JSON form.
        let forms = small.needles();
        let mut unique: Vec<&[u8]> = forms.iter().map(|n| n.as_slice()).collect();
        unique.dedup();
        assert_eq!(unique.len(), forms.len());
        assert!(
            forms
                .iter()
                .any(|n| n.as_slice() == b"a-credential-sent-every-call")
        );
    }

    #[test]
    fn removes_every_touched_value() {
        let out = scrub(
            "failed for xpa55y and pa55, twice: pa55",
            &values(&["pa55", "xpa55y"]),
        );
        assert_eq!(
            out,
            "failed for [redacted] and [redacted], twice: [redacted]"
        );
    }

    #[test]
    fn never_rematches_its_own_output() {
        // Values that spell pieces of the marker: one pass, so the text grows at
        // most once, never again on the marker it wrote.
        let pieces = values(&["[red", "[reda", "acted]", "dacted]", "redacted"]);
        let once = scrub("[redacted] [redacted]", &pieces);
        assert!(once.len() <= 4 * REDACTED.len() + 1, "{once}");
        let twice = scrub(&once, &pieces);
        assert!(twice.len() <= 2 * once.len() + 1, "{twice}");
    }

    #[test]
    fn linear_in_text_and_needles() {
        // 2,000 needles over 1 MB: the old replace-per-needle took quadratic time;
        // here it is one pass (the test only checks the result).
        let many: Vec<SecretValue> = (0..2000)
            .map(|i| SecretValue::from_string(format!("needle-{i:05}")))
            .collect();
        let text = "needle-00042 ".repeat(80_000);
        let out = scrub(&text, &many);
        assert_eq!(out, "[redacted] ".repeat(80_000));
    }

    #[test]
    fn removes_common_encodings() {
        let v = values(&["s3cr\u{e9}t \"pw\"/+?"]);
        let raw = "s3cr\u{e9}t \"pw\"/+?";
        let forms = [
            hex::encode(raw),
            hex::encode_upper(raw),
            base64::engine::general_purpose::STANDARD.encode(raw),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
            percent_encoding::percent_encode(raw.as_bytes(), NON_ALPHANUMERIC).to_string(),
            serde_json::to_string(raw).unwrap(),
            "s3cr\\u00e9t \\\"pw\\\"/+?".to_owned(),
        ];
        for form in forms {
            let out = scrub(&format!("value={form};"), &v);
            assert!(out.contains(REDACTED), "{form} survived: {out}");
            assert!(!out.contains("s3cr"), "{out}");
        }
    }

    #[test]
    fn non_utf8_values_are_removed_in_their_encodings() {
        let v = [SecretValue::new(vec![0xff, 0xfe, 0x00, 0x81, 0x42])];
        let out = scrub("got fffe008142 and //4AgUI", &v);
        assert_eq!(out, "got [redacted] and [redacted]");
    }

    #[test]
    fn long_values_are_removed_whole_or_by_either_end() {
        let long: String = (0..300)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let v = values(&[&long]);
        assert_eq!(scrub(&format!("x {long} y"), &v), "x [redacted] y");
        // Its first or last 64 bytes alone are removed too.
        let head = &long[..100];
        assert!(!scrub(head, &v).contains(&long[..64]));
        let tail = &long[200..];
        assert!(!scrub(tail, &v).contains(&long[236..]));
    }

    #[test]
    fn short_values_withhold_the_whole_text() {
        let out = scrub("pin is 42 and more", &values(&["42"]));
        assert_eq!(out, WITHHELD);
        assert_eq!(scrub("no digits here", &values(&["42"])), "no digits here");
    }

    #[test]
    fn printable_escapes_controls_and_bidi() {
        assert_eq!(
            printable("a\nb\u{1b}[2J\u{202e}c"),
            "a\\nb\\u{1b}[2J\\u{202e}c"
        );
        assert!(matches!(printable("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_writer_scrubs_values_in_flight_only() {
        use std::io::Write;
        enable_log_scrubbing();
        let mut out = ScrubbingWriter(Vec::new());
        {
            let mut guard = InFlight::default();
            guard.add(&SecretValue::from_string("in-flight-canary".into()));
            out.write_all(b"sdk: body=in-flight-canary\n").unwrap();
        }
        out.write_all(b"later: in-flight-canary\n").unwrap();
        let text = String::from_utf8(out.0).unwrap();
        assert_eq!(text, "sdk: body=[redacted]\nlater: in-flight-canary\n");
    }

    #[test]
    fn remembered_values_are_bounded() {
        let mut r = Remembered::default();
        let all: Vec<SecretValue> = (0..Remembered::CAPACITY + 10)
            .map(|i| SecretValue::from_string(format!("value-{i}")))
            .collect();
        r.extend(&all);
        r.extend(&all[all.len() - 5..]);
        assert_eq!(r.values().count(), Remembered::CAPACITY);
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
