//! `audit verify`: walks the entries (numbered, each linked to the line before
//! it) and the signed checkpoints, with the public key alone. It finds a
//! changed, inserted, reordered or removed entry anywhere, entries cut off the
//! end (up to the last checkpoint) or the start, a rotated file missing or
//! given out of order, an emptied log, and a deleted, altered or foreign-signed
//! checkpoint; and it says how far back the chain is proven and what it could
//! not check.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::AuditError;
use super::chain::{GENESIS, hash, read_link};
use super::checkpoint::{Checkpoint, PublicKey};

/// What to verify against.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The checkpoint file (`None`: no checkpoints are checked, and the end of
    /// the chain is not proven).
    pub checkpoints: Option<PathBuf>,
    /// The public keys trusted to sign checkpoints (a hand-over checkpoint
    /// signed by one of them adds the key it names).
    pub keys: Vec<PublicKey>,
    /// The first entry given is number `from`: earlier ones were rotated away
    /// on purpose and are not asked for.
    pub from: Option<u64>,
}

/// Where the chain broke: the file, the line (from 1), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The file.
    pub file: PathBuf,
    /// The line, from 1 (0: the file as a whole).
    pub line: usize,
    /// What is wrong, and what it means.
    pub why: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.why)
        } else {
            write!(
                f,
                "{} line {}: {}",
                self.file.display(),
                self.line,
                self.why
            )
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Numbered entries whose links checked.
    pub entries: u64,
    /// The first and last entry numbers given.
    pub range: Option<(u64, u64)>,
    /// Lines written before entries were numbered (counted, not checked).
    pub unnumbered: u64,
    /// Lines that are not whole entries (torn by a crash or a full disk).
    pub torn: u64,
    /// Checkpoints whose signatures checked.
    pub checkpoints: u64,
    /// The last entry a checked checkpoint covers, and when it was signed.
    pub proven_through: Option<(u64, String)>,
    /// The keys that signed the checkpoints.
    pub signers: Vec<String>,
    /// What could not be checked, in words.
    pub unchecked: Vec<String>,
    /// The first break found.
    pub broken: Option<Broken>,
}

/// The hashes of the numbered entries seen, by number.
struct Seen {
    first: u64,
    /// What the first entry links to: the hash of the entry before it (or of
    /// the chain's start), which a checkpoint at `first - 1` signed.
    base: String,
    hashes: Vec<String>,
}

impl Seen {
    fn get(&self, seq: u64) -> Option<&String> {
        if seq + 1 == self.first {
            return Some(&self.base);
        }
        seq.checked_sub(self.first)
            .and_then(|i| self.hashes.get(i as usize))
    }

    fn last(&self) -> u64 {
        self.first + self.hashes.len() as u64 - 1
    }
}

/// Checks the chain through `files`, oldest first (rotated files, then the
/// current one), and the checkpoints of `options`.
pub fn verify(files: &[PathBuf], options: &VerifyOptions) -> Result<Report, AuditError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| AuditError::Io {
            path: path.display().to_string(),
            source,
        })
    };
    let mut texts = Vec::with_capacity(files.len());
    for path in files {
        texts.push((path.clone(), read(path)?));
    }
    let checkpoints = match &options.checkpoints {
        Some(path) => Some((path.clone(), read(path)?)),
        None => None,
    };
    Ok(verify_texts(&texts, checkpoints.as_ref(), options))
}

/// [`verify`] on contents already read: `(name, bytes)` per log file, and the
/// checkpoints' likewise.
pub fn verify_texts(
    files: &[(PathBuf, Vec<u8>)],
    checkpoints: Option<&(PathBuf, Vec<u8>)>,
    options: &VerifyOptions,
) -> Report {
    let mut report = Report::default();
    let seen = match entries(files, options, &mut report) {
        Ok(seen) => seen,
        Err(broken) => {
            report.broken = Some(broken);
            return report;
        }
    };
    match checkpoints {
        Some((path, text)) => {
            if let Err(broken) = check_checkpoints(path, text, seen.as_ref(), options, &mut report)
            {
                report.broken = Some(broken);
            }
        }
        None => report.unchecked.push(
            "no checkpoint file was given: the end of the chain is not proven (entries cut off \
             the end, or the log emptied, would go unnoticed)"
                .into(),
        ),
    }
    report
}

/// Walks the entries; returns their hashes by number.
fn entries(
    files: &[(PathBuf, Vec<u8>)],
    options: &VerifyOptions,
    report: &mut Report,
) -> Result<Option<Seen>, Broken> {
    // Files given out of order: say which comes first, before anything else.
    let firsts: Vec<Option<u64>> = files
        .iter()
        .map(|(_, text)| {
            text.split(|b| *b == b'\n')
                .find_map(|l| read_link(l).and_then(|(seq, _)| seq))
        })
        .collect();
    for (i, later) in firsts.iter().enumerate() {
        for (j, earlier) in firsts[..i].iter().enumerate() {
            if let (Some(later), Some(earlier)) = (later, earlier)
                && later < earlier
            {
                return Err(Broken {
                    file: files[i].0.clone(),
                    line: 0,
                    why: format!(
                        "its entries start at {later}, before those of {} (at {earlier}): give {} \
                         before {}",
                        files[j].0.display(),
                        files[i].0.display(),
                        files[j].0.display()
                    ),
                });
            }
        }
    }
    let mut seen: Option<Seen> = None;
    // The hash of the last whole line, numbered or not.
    let mut prev: Option<String> = None;
    let mut prev_file: Option<&Path> = None;
    for (file, text) in files {
        let mut first_in_file = true;
        let broken = |line: usize, why: String| Broken {
            file: file.clone(),
            line,
            why,
        };
        for (n, line) in text.split(|b| *b == b'\n').enumerate() {
            let at = n + 1;
            if line.is_empty() {
                continue;
            }
            let Some((seq, link)) = read_link(line) else {
                // A torn line: the next entry links past it, so an edited
                // entry cannot hide as one (its successor's link breaks).
                report.torn += 1;
                continue;
            };
            let Some(seq) = seq else {
                if seen.is_some() {
                    return Err(broken(
                        at,
                        "an entry without a number after numbered ones: inserted or edited".into(),
                    ));
                }
                report.unnumbered += 1;
                prev = Some(hash(line));
                first_in_file = false;
                continue;
            };
            let link = link.unwrap_or_default();
            match &mut seen {
                None => {
                    let expected_first = options.from.unwrap_or(1);
                    if seq != expected_first {
                        let why = if seq > expected_first {
                            format!(
                                "the chain given starts at entry {seq}, so entries \
                                 {expected_first} to {} are missing: the first entries were cut \
                                 off, or the rotated files holding them were not given (give \
                                 them oldest first, or `--from {seq}` to check from here on)",
                                seq - 1
                            )
                        } else {
                            format!(
                                "the chain given starts at entry {seq}, before `--from \
                                 {expected_first}`"
                            )
                        };
                        return Err(broken(at, why));
                    }
                    let genesis = hash(GENESIS);
                    if seq == 1 && link != genesis && prev.as_ref() != Some(&link) {
                        return Err(broken(
                            at,
                            "the first entry does not link to the start of the chain: it was \
                             changed, or entries before it were removed"
                                .into(),
                        ));
                    }
                    if seq > 1 {
                        report.unchecked.push(format!(
                            "entries before {seq} (rotated away; `--from {seq}`) and the link of \
                             entry {seq} to them"
                        ));
                    }
                    seen = Some(Seen {
                        first: seq,
                        base: link.clone(),
                        hashes: Vec::new(),
                    });
                }
                Some(s) => {
                    let expected = s.last() + 1;
                    if seq != expected {
                        let why = match (first_in_file, prev_file) {
                            (true, Some(before)) if seq < expected => format!(
                                "this file starts at entry {seq}, but {} already reached entry \
                                 {}: give {} before {}",
                                before.display(),
                                expected - 1,
                                file.display(),
                                before.display()
                            ),
                            (true, Some(before)) => format!(
                                "this file starts at entry {seq}, but {} ends at entry {}: \
                                 entries {expected} to {} are missing (a rotated file is \
                                 missing from the files given, or they were removed)",
                                before.display(),
                                expected - 1,
                                seq - 1
                            ),
                            _ if seq > expected => format!(
                                "entry {seq} follows entry {}: entries {expected} to {} were \
                                 removed",
                                expected - 1,
                                seq - 1
                            ),
                            _ => format!(
                                "entry {seq} follows entry {}: entries were reordered or \
                                 inserted",
                                expected - 1
                            ),
                        };
                        return Err(broken(at, why));
                    }
                    if prev.as_ref() != Some(&link) {
                        return Err(broken(
                            at,
                            format!(
                                "entry {seq} does not link to the entry before it: that entry \
                                 was changed, or this one was"
                            ),
                        ));
                    }
                }
            }
            let h = hash(line);
            if let Some(s) = &mut seen {
                s.hashes.push(h.clone());
            }
            prev = Some(h);
            report.entries += 1;
            first_in_file = false;
        }
        prev_file = Some(file);
    }
    let seen = seen.filter(|s| !s.hashes.is_empty());
    report.range = seen.as_ref().map(|s| (s.first, s.last()));
    Ok(seen)
}

/// Walks the checkpoints: each signed by a trusted key, naming the one before,
/// and matching the entry it signed.
fn check_checkpoints(
    path: &Path,
    text: &[u8],
    seen: Option<&Seen>,
    options: &VerifyOptions,
    report: &mut Report,
) -> Result<(), Broken> {
    let broken = |line: usize, why: String| Broken {
        file: path.to_path_buf(),
        line,
        why,
    };
    let mut trusted: HashSet<String> = options.keys.iter().map(ToString::to_string).collect();
    let mut retired: HashSet<String> = HashSet::new();
    let mut last: Option<Checkpoint> = None;
    let mut before_given = 0u64;
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        let at = n + 1;
        if line.is_empty() {
            continue;
        }
        let Ok(cp) = serde_json::from_slice::<Checkpoint>(line) else {
            return Err(broken(
                at,
                "not a whole checkpoint (edited, or torn by a crash)".into(),
            ));
        };
        let expected = last.as_ref().map_or(1, |l| l.n + 1);
        if cp.n != expected {
            return Err(broken(
                at,
                format!(
                    "checkpoint {} comes where checkpoint {expected} should: checkpoints were \
                     removed, reordered or inserted",
                    cp.n
                ),
            ));
        }
        let prev_sig = last.as_ref().map(|l| l.sig.as_str()).unwrap_or("");
        if cp.prev != prev_sig {
            return Err(broken(
                at,
                format!(
                    "checkpoint {} does not name the signature of the checkpoint before it: one \
                     of them was altered or replaced",
                    cp.n
                ),
            ));
        }
        if retired.contains(&cp.key) {
            return Err(broken(
                at,
                format!(
                    "checkpoint {} is signed by {}, a key an earlier checkpoint retired (handed \
                     over to another): signed with a stolen or restored old key",
                    cp.n, cp.key
                ),
            ));
        }
        if !trusted.contains(&cp.key) {
            return Err(broken(
                at,
                format!(
                    "checkpoint {} is signed by {}, which is not a public key given \
                     (--public-key) nor one a trusted checkpoint handed over to",
                    cp.n, cp.key
                ),
            ));
        }
        let signed = cp
            .key
            .parse::<PublicKey>()
            .ok()
            .zip(B64.decode(&cp.sig).ok())
            .is_some_and(|(key, sig)| key.verifies(&cp.message(), &sig));
        if !signed {
            return Err(broken(
                at,
                format!(
                    "checkpoint {}'s signature does not verify: it was altered",
                    cp.n
                ),
            ));
        }
        if !report.signers.contains(&cp.key) {
            report.signers.push(cp.key.clone());
        }
        if let Some(next) = &cp.next {
            retired.insert(cp.key.clone());
            trusted.insert(next.clone());
        }
        if cp.seq == 0 && seen.is_none() {
            if cp.head != hash(GENESIS) && report.unnumbered == 0 {
                return Err(broken(
                    at,
                    "the first checkpoint does not sign the start of the chain".into(),
                ));
            }
        } else {
            match seen.and_then(|s| s.get(cp.seq)) {
                Some(h) if *h == cp.head => {
                    if cp.seq > 0 {
                        report.proven_through = Some((cp.seq, cp.time.clone()));
                    }
                }
                Some(_) => {
                    return Err(broken(
                        at,
                        format!(
                            "entry {} is not the entry checkpoint {} signed ({}): it, or an \
                             entry before it, was changed and the chain rebuilt",
                            cp.seq, cp.n, cp.time
                        ),
                    ));
                }
                None if seen.is_some_and(|s| cp.seq < s.first) => before_given += 1,
                None => {
                    let ends = seen.map_or_else(
                        || "the log given has no entries".to_owned(),
                        |s| format!("the log given ends at entry {}", s.last()),
                    );
                    return Err(broken(
                        at,
                        format!(
                            "{ends}, but checkpoint {} signed the chain through entry {} at {}: \
                             entries were cut off the end, or the log was emptied (or the \
                             current file was not given)",
                            cp.n, cp.seq, cp.time
                        ),
                    ));
                }
            }
        }
        report.checkpoints += 1;
        last = Some(cp);
    }
    let Some(last) = last else {
        return Err(broken(
            0,
            "holds no checkpoint: the checkpoint file was deleted or emptied (every chain \
             starts with one)"
                .into(),
        ));
    };
    if before_given > 0 {
        report.unchecked.push(format!(
            "{before_given} checkpoints cover entries before the first one given"
        ));
    }
    if let Some(s) = seen
        && s.last() > last.seq
    {
        report.unchecked.push(format!(
            "entries {} to {} are after the last checkpoint ({}): they link to the proven \
             chain, but removing some of them from the end would go unnoticed until the next \
             checkpoint",
            last.seq.max(s.first - 1) + 1,
            s.last(),
            last.time
        ));
    }
    Ok(())
}
