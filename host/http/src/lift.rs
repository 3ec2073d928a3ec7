//! Lifting: the secret members of an answer (the whole body, or JSON pointers)
//! taken out into values before the provider sees the body, checked against the
//! checksum the answer carries where asked (which is taken out unseen too), and
//! every discarded member wiped before it is freed.

use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine as _;
use secret_broker_runtime::SecretValue;
use secret_broker_runtime::bindings::WitError as Error;
use secret_broker_runtime::bindings::v0_2_0::secret_broker::provider0_2_0::http::{
    Checksum, ChecksumAlgorithm, Lift, LiftFrom,
};
use zeroize::Zeroizing;

/// The body without the lifted members, and the lifted values in order.
#[allow(clippy::type_complexity)]
pub(crate) fn lift_out(
    body: Zeroizing<Vec<u8>>,
    lifts: &[Lift],
    checksum_failures: &AtomicU32,
) -> Result<(Zeroizing<Vec<u8>>, Vec<Option<SecretValue>>), Error> {
    if lifts.is_empty() {
        return Ok((body, Vec::new()));
    }
    let failed = checksum_failures.load(Ordering::Relaxed);
    if failed >= MAX_CHECKSUM_FAILURES && lifts.iter().any(|l| l.check.is_some()) {
        return Err(Error::AccessDenied(format!(
            "this grant's provider has failed {failed} checksum checks: checked reads are \
             refused until the host restarts (a corrupting backend looks like this, and so \
             does a provider testing guesses of a value against checksums it planted)"
        )));
    }
    let decode = |bytes: Vec<u8>, base64: bool| -> Result<SecretValue, Error> {
        let bytes = Zeroizing::new(bytes);
        if !base64 {
            return Ok(SecretValue::new(bytes.to_vec()));
        }
        base64::engine::general_purpose::STANDARD
            .decode(bytes.as_slice())
            .map(SecretValue::new)
            .map_err(|_| Error::Backend("a value lifted as base64 is not base64".into()))
    };
    // Wiped however this returns: the answer's other members may be secret.
    let mut json = WipeOnDrop(None);
    let mut whole = false;
    let mut out = Vec::with_capacity(lifts.len());
    for lift in lifts {
        match &lift.source {
            LiftFrom::Body => {
                whole = true;
                out.push(Some(decode(body.to_vec(), lift.base64)?));
            }
            LiftFrom::Discard(pointer) => {
                if json.0.is_none() {
                    json.0 = serde_json::from_slice(&body).ok();
                }
                // Wiped here, never handed over (nor made a value to scrub).
                if let Some(discarded) = json.0.as_mut().and_then(|j| take(j, pointer)) {
                    wipe(discarded);
                }
                out.push(None);
            }
            LiftFrom::Pointer(pointer) => {
                if json.0.is_none() {
                    json.0 = serde_json::from_slice(&body).ok();
                }
                let taken = json.0.as_mut().and_then(|j| take(j, pointer));
                let value = match taken {
                    None => None,
                    Some(serde_json::Value::String(s)) => {
                        Some(decode(Zeroizing::new(s).as_bytes().to_vec(), lift.base64)?)
                    }
                    Some(other) => {
                        let text = Zeroizing::new(other.to_string());
                        wipe(other);
                        Some(decode(text.as_bytes().to_vec(), lift.base64)?)
                    }
                };
                if let Some(check) = &lift.check {
                    // Taken out whatever follows: the provider never sees it.
                    let expected = json.0.as_mut().and_then(|j| take(j, &check.pointer));
                    if let Some(value) = &value
                        && let Err(e) = verify(value, pointer, check, expected)
                    {
                        // Each failure says one guess was wrong: a provider gets
                        // few of them.
                        checksum_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(pointer, "a lifted value failed its checksum");
                        return Err(e);
                    }
                }
                out.push(value);
            }
        }
        if lift.check.is_some() && !matches!(lift.source, LiftFrom::Pointer(_)) {
            return Err(Error::Backend(
                "a checksum is checked for a value lifted by JSON pointer only".into(),
            ));
        }
    }
    let body = if whole {
        Zeroizing::new(Vec::new())
    } else if let Some(rest) = &json.0 {
        Zeroizing::new(serde_json::to_vec(rest).unwrap_or_default())
    } else {
        body
    };
    Ok((body, out))
}

/// Checks `value`, lifted from `pointer`, against the checksum the answer
/// carried (`expected`, taken from `check.pointer`).
fn verify(
    value: &SecretValue,
    pointer: &str,
    check: &Checksum,
    expected: Option<serde_json::Value>,
) -> Result<(), Error> {
    let ChecksumAlgorithm::Crc32c = check.algorithm;
    let expected = match expected {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => {
            return Err(Error::Backend(format!(
                "the answer carries no CRC32C at {} for the value at {pointer}: the \
                 backend is not the one the provider expects",
                check.pointer
            )));
        }
    };
    let actual = u64::from(CRC32C.checksum(value.expose()));
    if expected != Some(actual) {
        return Err(Error::Backend(format!(
            "the value at {pointer} fails its CRC32C check ({}): it was corrupted on the \
             way or at rest; retry, and if it persists restore an earlier version",
            check.pointer
        )));
    }
    Ok(())
}

/// Checksum failures a grant's provider may meet before checked reads are
/// refused: a mismatch tells the provider its planted checksum was not the
/// value's, so unbounded failures would let it test a dictionary of guesses.
/// Real corruption is rare enough that an honest provider never comes near.
pub(crate) const MAX_CHECKSUM_FAILURES: u32 = 8;

/// CRC32C (Castagnoli, as iSCSI uses it).
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// A parsed answer, wiped when dropped.
pub(crate) struct WipeOnDrop(pub(crate) Option<serde_json::Value>);

impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            wipe(value);
        }
    }
}

/// Zeroizes every string of `value`, member names too, as it is dropped: a
/// member the provider was not to see may hold another field of the secret.
/// (Nesting is bounded by the JSON parser's depth limit.)
fn wipe(value: serde_json::Value) {
    use zeroize::Zeroize as _;
    match value {
        serde_json::Value::String(mut text) => text.zeroize(),
        serde_json::Value::Array(items) => items.into_iter().for_each(wipe),
        serde_json::Value::Object(map) => {
            for (mut name, member) in map {
                name.zeroize();
                wipe(member);
            }
        }
        _ => {}
    }
}

/// Removes the member `pointer` names from `json` and returns it.
fn take(json: &mut serde_json::Value, pointer: &str) -> Option<serde_json::Value> {
    let (parent, last) = pointer.rsplit_once('/')?;
    let key = last.replace("~1", "/").replace("~0", "~");
    match json.pointer_mut(parent)? {
        serde_json::Value::Object(map) => map.remove(&key),
        serde_json::Value::Array(items) => {
            let i: usize = key.parse().ok()?;
            items
                .get_mut(i)
                .map(|v| std::mem::replace(v, serde_json::Value::Null))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An allocator that, while armed, looks into every block freed for the
    /// canary below: what a test of plaintext left in freed memory needs. The
    /// only unsafe code in the project: a test's allocator cannot be written
    /// without it.
    #[allow(unsafe_code)]
    mod freed {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::sync::atomic::{AtomicBool, Ordering};

        pub const CANARY: &[u8] = b"canary-other-field-4f1d9a";
        pub static ARMED: AtomicBool = AtomicBool::new(false);
        pub static SEEN: AtomicBool = AtomicBool::new(false);

        struct Scanning;

        // SAFETY: every call is passed on to the system allocator unchanged; a
        // block is only read, before it is freed.
        unsafe impl GlobalAlloc for Scanning {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                if ARMED.load(Ordering::SeqCst) {
                    // SAFETY: the block is live until the call below.
                    let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
                    if block.windows(CANARY.len()).any(|w| w == CANARY) {
                        SEEN.store(true, Ordering::SeqCst);
                    }
                }
                unsafe { System.dealloc(ptr, layout) }
            }
        }

        #[global_allocator]
        static ALLOCATOR: Scanning = Scanning;
    }

    /// The other fields of a secret, discarded so the provider never sees
    /// them, and the rest of the answer once re-serialized, are wiped before
    /// their memory is freed.
    #[test]
    fn discarded_members_leave_no_plaintext_in_freed_memory() {
        use std::sync::atomic::Ordering;
        let canary = String::from_utf8(freed::CANARY.to_vec()).unwrap();
        let body = Zeroizing::new(
            format!(
                r#"{{"data":{{"data":{{"value":"s3cr3t-xyz","password":"{canary}"}}}},"note":"{canary}"}}"#
            )
            .into_bytes(),
        );
        let lifts = vec![
            Lift {
                source: LiftFrom::Pointer("/data/data/value".into()),
                base64: false,
                keep_as: None,
                check: None,
            },
            Lift {
                source: LiftFrom::Discard("/data/data".into()),
                base64: false,
                keep_as: None,
                check: None,
            },
            Lift {
                source: LiftFrom::Discard("/note".into()),
                base64: false,
                keep_as: None,
                check: None,
            },
        ];
        freed::SEEN.store(false, Ordering::SeqCst);
        freed::ARMED.store(true, Ordering::SeqCst);
        let (rest, lifted) = lift_out(body, &lifts, &AtomicU32::new(0)).unwrap();
        drop((rest, lifted));
        freed::ARMED.store(false, Ordering::SeqCst);
        drop(canary);
        assert!(
            !freed::SEEN.load(Ordering::SeqCst),
            "a discarded field's plaintext was freed without being wiped"
        );
    }

    #[test]
    fn a_checksum_is_checked_and_never_reaches_the_provider() {
        // CRC32C("123456789") = 0xE3069283, Google's `dataCrc32c` as text.
        let answer = |crc: &str| {
            Zeroizing::new(
                format!(r#"{{"name":"v/1","payload":{{"data":"MTIzNDU2Nzg5"{crc}}}}}"#)
                    .into_bytes(),
            )
        };
        let lifts = [Lift {
            source: LiftFrom::Pointer("/payload/data".into()),
            base64: true,
            keep_as: None,
            check: Some(Checksum {
                algorithm: ChecksumAlgorithm::Crc32c,
                pointer: "/payload/dataCrc32c".into(),
            }),
        }];
        let failures = AtomicU32::new(0);
        for good in [
            r#","dataCrc32c":"3808858755""#,
            r#","dataCrc32c":3808858755"#,
        ] {
            let (rest, lifted) = lift_out(answer(good), &lifts, &failures).unwrap();
            assert_eq!(lifted[0].as_ref().unwrap().expose_str(), Some("123456789"));
            let rest = String::from_utf8(rest.to_vec()).unwrap();
            assert!(
                !rest.contains("3808858755") && rest.contains("v/1"),
                "{rest}"
            );
        }
        let bad = lift_out(answer(r#","dataCrc32c":"3808858756""#), &lifts, &failures).unwrap_err();
        assert!(
            format!("{bad:?}").contains("fails its CRC32C check"),
            "{bad:?}"
        );
        let missing = lift_out(answer(""), &lifts, &failures).unwrap_err();
        assert!(format!("{missing:?}").contains("no CRC32C"), "{missing:?}");
        // A provider testing guesses against checksums it planted gets few
        // answers: after the budget, checked reads are refused, even right ones.
        for guess in 1..MAX_CHECKSUM_FAILURES {
            let planted = format!(r#","dataCrc32c":"{guess}""#);
            assert!(lift_out(answer(&planted), &lifts, &failures).is_err());
        }
        let refused =
            lift_out(answer(r#","dataCrc32c":"3808858755""#), &lifts, &failures).unwrap_err();
        assert!(
            matches!(&refused, Error::AccessDenied(m) if m.contains("until the host restarts")),
            "{refused:?}"
        );
        // Reads without a check go on.
        let plain = [Lift {
            check: None,
            ..lifts[0].clone()
        }];
        assert!(lift_out(answer(""), &plain, &failures).unwrap().1[0].is_some());
    }

    #[test]
    fn lifting_removes_members_and_keeps_the_rest() {
        let body = Zeroizing::new(
            br#"{"data":{"data":{"value":"s3cr3t-xyz","other":1}},"auth":null}"#.to_vec(),
        );
        let mut lifts = vec![
            Lift {
                source: LiftFrom::Pointer("/data/data/value".into()),
                base64: false,
                keep_as: None,
                check: None,
            },
            Lift {
                source: LiftFrom::Pointer("/nope/x".into()),
                base64: false,
                keep_as: None,
                check: None,
            },
        ];
        lifts.push(Lift {
            source: LiftFrom::Discard("/data/data".into()),
            base64: false,
            keep_as: None,
            check: None,
        });
        let (rest, lifted) = lift_out(body, &lifts, &AtomicU32::new(0)).unwrap();
        assert!(lifted[2].is_none(), "a discarded member lifts nothing");
        assert_eq!(lifted[0].as_ref().unwrap().expose_str(), Some("s3cr3t-xyz"));
        assert!(lifted[1].is_none());
        let rest = String::from_utf8(rest.to_vec()).unwrap();
        assert!(
            !rest.contains("s3cr3t-xyz") && !rest.contains("other") && rest.contains("auth"),
            "{rest}"
        );
    }
}
