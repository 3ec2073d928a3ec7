//! The scrubber: removes secret values from provider-originated text (errors, log
//! lines, stdout) before it reaches a log or a caller.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

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

/// Whether a scrubbing log writer is installed; until then nothing is registered.
static ENABLED: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(1);
/// Values provider calls are handling right now, for the log writer.
static IN_FLIGHT: Mutex<Vec<(u64, SecretValue)>> = Mutex::new(Vec::new());

/// Values a provider call is handling, registered for [`ScrubbingWriter`] while
/// the guard lives: log lines that third-party code (the AWS SDK, sqlx, wasmtime)
/// writes during the call are scrubbed of them. A no-op until a scrubbing writer
/// is installed.
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
        IN_FLIGHT
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, value.clone()));
        self.ids.push(id);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        IN_FLIGHT
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _)| !self.ids.contains(id));
    }
}

/// A log writer that removes every in-flight value from each line it writes.
/// `tracing-subscriber`'s fmt layer writes each event in one call, so a value is
/// never split across writes.
pub struct ScrubbingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for ScrubbingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let values = in_flight();
        if values.is_empty() {
            self.0.write_all(buf)?;
        } else {
            let clean = scrub(&String::from_utf8_lossy(buf), &values);
            self.0.write_all(clean.as_bytes())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `text` scrubbed of every value provider calls are handling now.
pub fn scrub_in_flight(text: &str) -> String {
    scrub(text, &in_flight())
}

/// The values registered now.
fn in_flight() -> Vec<SecretValue> {
    IN_FLIGHT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(_, v)| v.clone())
        .collect()
}

/// Turns on in-flight registration; call it when installing a [`ScrubbingWriter`].
pub fn enable_log_scrubbing() {
    ENABLED.store(true, Ordering::Relaxed);
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
    fn leaves_clean_text_alone() {
        let values = [
            SecretValue::from_string("zz-canary".into()),
            SecretValue::new(vec![0xff, 0xfe]),
        ];
        assert_eq!(scrub("all fine", &values), "all fine");
    }
}
