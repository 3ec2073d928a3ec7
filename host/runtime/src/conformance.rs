//! The conformance suite: what every provider must do, checked through the
//! provider interface alone, so it runs against any component. `secret-broker
//! provider test PATH.wasm` prints its report; the tests under `tests/` run it on
//! every first-party provider.
//!
//! All ids live under a fresh random prefix and are deleted at the end.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rand::Rng;

use crate::provider::{ProviderError, ProviderHost, PutOptions, PutOutcome};
use crate::secret::SecretValue;

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// `None` when it passed, else what went wrong.
    pub failure: Option<String>,
}

/// The outcome of the whole suite.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The provider's name and version.
    pub provider: String,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// Number of checks that passed.
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.failure.is_none()).count()
    }

    /// Number that failed.
    pub fn failed(&self) -> usize {
        self.checks.len() - self.passed()
    }

    /// Whether everything passed.
    pub fn ok(&self) -> bool {
        self.failed() == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of {}", self.provider)?;
        for check in &self.checks {
            match &check.failure {
                None => writeln!(f, "  PASS  {}", check.name)?,
                Some(why) => writeln!(f, "  FAIL  {}: {why}", check.name)?,
            }
        }
        writeln!(
            f,
            "conformance: {} passed, {} failed",
            self.passed(),
            self.failed()
        )
    }
}

type Outcome = Result<(), String>;

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Outcome {
    if cond { Ok(()) } else { Err(msg()) }
}

fn err(e: ProviderError) -> String {
    e.to_string()
}

fn val(s: &str) -> SecretValue {
    SecretValue::from_string(s.to_owned())
}

/// Another client of the provider's backend: it writes as something other than
/// this provider would (the backend's own client, an operator's tool), so the
/// suite can check that a put after someone else changed a value still writes.
pub trait OtherClient: Send + Sync {
    /// Stores `value` at `id` (an id of the provider's) in the backend, not
    /// through the provider.
    fn overwrite<'a>(
        &'a self,
        id: &'a str,
        value: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Runs the suite against `provider`.
pub async fn run(provider: Arc<ProviderHost>) -> Report {
    run_with(provider, None).await
}

/// Runs the suite against `provider`, and with `other` (another client of the
/// same backend) also the check that a put writes after `other` changed the
/// value, even when it puts a value the provider wrote there before.
pub async fn run_with(provider: Arc<ProviderHost>, other: Option<&dyn OtherClient>) -> Report {
    let mut suite = Suite::new(provider.clone());
    let info = provider.info();
    // Where a leading separator is optional, the provider may still refuse it
    // (a Kubernetes object name cannot start with `-`): then ids go without,
    // if the provider takes those.
    if !info.id_rules.leading_separator && provider.get(&suite.root).await.is_err() {
        let bare = &suite.root[info.id_rules.separator.len()..];
        if provider.get(bare).await.is_ok() {
            suite.root = bare.to_owned();
        }
    }
    let mut report = Report {
        provider: format!("{} {}", info.name, info.version),
        checks: Vec::new(),
    };
    macro_rules! check {
        ($name:literal, $f:ident) => {
            let failure = suite.$f().await.err();
            report.checks.push(Check {
                name: $name,
                failure,
            });
        };
    }
    check!("put then get returns the value", round_trip);
    check!("put on an existing id updates it", update);
    check!("put of the same value reports unchanged", unchanged);
    check!(
        "short and common values (1, 0, a, true, [redacted]) round-trip and compare",
        short_values
    );
    check!(
        "delete removes, and a second delete reports absence",
        delete
    );
    check!("get of a missing id is none, not an error", not_found);
    check!("list pages through a prefix in order", list_paging);
    check!("list keeps prefixes apart", list_prefixes);
    check!("ids up to the declared maximum length work", id_length);
    check!(
        "the provider itself rejects ids over its maximum length",
        id_too_long
    );
    check!("values up to the declared maximum size work", value_size);
    check!(
        "the provider itself rejects values over its maximum size",
        value_too_large
    );
    check!(
        "unicode and binary values round-trip exactly",
        unicode_and_binary
    );
    check!("an empty value is stored or refused cleanly", empty_value);
    check!("many ids stay distinct", many_ids);
    check!("concurrent calls neither lose nor mix values", concurrent);
    if let Some(other) = other {
        let failure = suite.changed_by_another_client(other).await.err();
        report.checks.push(Check {
            name: "a put after another client changed the value writes it again",
            failure,
        });
    }
    suite.cleanup().await;
    report
}

struct Suite {
    p: Arc<ProviderHost>,
    root: String,
}

impl Suite {
    fn new(p: Arc<ProviderHost>) -> Self {
        let sep = p.info().id_rules.separator.clone();
        let run: u32 = rand::thread_rng().r#gen();
        let root = format!("{sep}conformance{sep}r{run:08x}");
        Suite { p, root }
    }

    fn id(&self, parts: &[&str]) -> String {
        let sep = &self.p.info().id_rules.separator;
        let mut id = self.root.clone();
        for part in parts {
            id.push_str(sep);
            id.push_str(part);
        }
        id
    }

    async fn put(&self, id: &str, v: &SecretValue) -> Result<PutOutcome, String> {
        self.p.put(id, v, &PutOptions::default()).await.map_err(err)
    }

    async fn expect_value(&self, id: &str, want: &SecretValue) -> Outcome {
        match self.p.get(id).await.map_err(err)? {
            Some(got) => ensure(got.ct_eq(want), || {
                format!(
                    "get {id} returned a different value ({} bytes, want {})",
                    got.len(),
                    want.len()
                )
            }),
            None => Err(format!("get {id} returned none after a put")),
        }
    }

    async fn round_trip(&self) -> Outcome {
        let id = self.id(&["rt"]);
        let v = val("round-trip-value");
        let outcome = self.put(&id, &v).await?;
        ensure(outcome == PutOutcome::Created, || {
            format!("first put reported {outcome:?}, want Created")
        })?;
        self.expect_value(&id, &v).await
    }

    async fn update(&self) -> Outcome {
        let id = self.id(&["upd"]);
        self.put(&id, &val("first")).await?;
        let outcome = self.put(&id, &val("second")).await?;
        ensure(outcome == PutOutcome::Updated, || {
            format!("second put reported {outcome:?}, want Updated")
        })?;
        self.expect_value(&id, &val("second")).await
    }

    async fn unchanged(&self) -> Outcome {
        let id = self.id(&["same"]);
        self.put(&id, &val("same-value")).await?;
        let outcome = self.put(&id, &val("same-value")).await?;
        ensure(outcome == PutOutcome::Unchanged, || {
            format!("repeated put reported {outcome:?}, want Unchanged")
        })?;
        self.expect_value(&id, &val("same-value")).await
    }

    /// Values a scrubber or a parser could mistake for the text around them: an
    /// honest provider stores, reads back, updates and compares them like any
    /// other.
    async fn short_values(&self) -> Outcome {
        const VALUES: [&str; 5] = ["1", "0", "a", "true", "[redacted]"];
        for (i, value) in VALUES.iter().enumerate() {
            let id = self.id(&["short", &format!("s{i}")]);
            let v = val(value);
            let what =
                |step: &str, e: String| format!("value #{i} ({} bytes): {step}: {e}", v.len());
            let first = self.put(&id, &v).await.map_err(|e| what("put", e))?;
            ensure(first == PutOutcome::Created, || {
                what("first put", format!("reported {first:?}, want Created"))
            })?;
            self.expect_value(&id, &v)
                .await
                .map_err(|e| what("get", e))?;
            let again = self.put(&id, &v).await.map_err(|e| what("put again", e))?;
            ensure(again == PutOutcome::Unchanged, || {
                what(
                    "repeated put",
                    format!("reported {again:?}, want Unchanged"),
                )
            })?;
            // The next value of the list replaces it: an update, read back.
            let next = val(VALUES[(i + 1) % VALUES.len()]);
            let changed = self.put(&id, &next).await.map_err(|e| what("update", e))?;
            ensure(changed == PutOutcome::Updated, || {
                what("update", format!("reported {changed:?}, want Updated"))
            })?;
            self.expect_value(&id, &next)
                .await
                .map_err(|e| what("get after update", e))?;
        }
        Ok(())
    }

    /// put A; another client writes B; put A: the provider must not take its
    /// own record of A (a digest beside the value) for what the backend holds.
    async fn changed_by_another_client(&self, other: &dyn OtherClient) -> Outcome {
        let id = self.id(&["other"]);
        let mine = val("written-by-the-provider");
        self.put(&id, &mine).await?;
        other
            .overwrite(&id, b"written-by-another-client")
            .await
            .map_err(|e| format!("the other client could not write {id}: {e}"))?;
        self.expect_value(&id, &val("written-by-another-client"))
            .await
            .map_err(|e| format!("after the other client wrote: {e}"))?;
        let again = self.put(&id, &mine).await?;
        ensure(again == PutOutcome::Updated, || {
            format!(
                "putting the provider's earlier value again reported {again:?}, want Updated: \
                 the other client's value is still there, and the put was lost"
            )
        })?;
        self.expect_value(&id, &mine).await
    }

    async fn delete(&self) -> Outcome {
        let id = self.id(&["del"]);
        self.put(&id, &val("doomed")).await?;
        ensure(self.p.delete(&id).await.map_err(err)?, || {
            "delete of an existing id reported false".into()
        })?;
        ensure(self.p.get(&id).await.map_err(err)?.is_none(), || {
            "get after delete returned a value".into()
        })?;
        ensure(!self.p.delete(&id).await.map_err(err)?, || {
            "second delete reported true".into()
        })
    }

    async fn not_found(&self) -> Outcome {
        let got = self
            .p
            .get(&self.id(&["never", "written"]))
            .await
            .map_err(err)?;
        ensure(got.is_none(), || {
            "get of a never-written id returned a value".into()
        })
    }

    async fn list_all(&self, prefix: &str, limit: u32) -> Result<Vec<String>, String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let page = self
                .p
                .list(prefix, cursor.as_deref(), limit)
                .await
                .map_err(err)?;
            ensure(page.ids.len() <= limit as usize, || {
                format!("a page held {} ids, over the limit {limit}", page.ids.len())
            })?;
            ids.extend(page.ids);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(ids),
            }
        }
        Err("list did not finish within 1000 pages".into())
    }

    async fn list_paging(&self) -> Outcome {
        let mut want = Vec::new();
        for i in 0..23 {
            let id = self.id(&["paged", &format!("k{i:03}")]);
            self.put(&id, &val(&format!("v{i}"))).await?;
            want.push(id);
        }
        let got = self.list_all(&self.id(&["paged"]), 5).await?;
        ensure(got == want, || {
            format!(
                "listed {} ids, want {} in ascending order",
                got.len(),
                want.len()
            )
        })
    }

    async fn list_prefixes(&self) -> Outcome {
        for name in ["alpha", "alphabet", "beta"] {
            self.put(&self.id(&["pfx", name, "x"]), &val(name)).await?;
        }
        let sep = self.p.info().id_rules.separator.clone();
        let alpha = self
            .list_all(&format!("{}{sep}", self.id(&["pfx", "alpha"])), 10)
            .await?;
        ensure(alpha == vec![self.id(&["pfx", "alpha", "x"])], || {
            format!("prefix alpha/ listed {alpha:?}")
        })?;
        let all = self.list_all(&self.id(&["pfx"]), 2).await?;
        ensure(all.len() == 3, || {
            format!("prefix pfx listed {} ids, want 3", all.len())
        })?;
        let none = self.list_all(&self.id(&["nothing-here"]), 10).await?;
        ensure(none.is_empty(), || {
            format!("an unused prefix listed {none:?}")
        })
    }

    fn id_of_len(&self, len: usize) -> String {
        let base = self.id(&["len", ""]);
        let fill = len.saturating_sub(base.len());
        format!("{base}{}", "a".repeat(fill))
    }

    async fn id_length(&self) -> Outcome {
        let max = self.p.info().id_rules.max_id_len as usize;
        for len in [max - 1, max] {
            let id = self.id_of_len(len);
            let v = val(&format!("len{len}"));
            self.put(&id, &v)
                .await
                .map_err(|e| format!("id of {len} bytes (limit {max}): {e}"))?;
            self.expect_value(&id, &v).await?;
        }
        Ok(())
    }

    async fn id_too_long(&self) -> Outcome {
        let max = self.p.info().id_rules.max_id_len as usize;
        let id = self.id_of_len(max + 1);
        match self.p.put_unchecked(&id, &val("x")).await {
            Err(ProviderError::InvalidId(_)) => Ok(()),
            Err(e) => Err(format!(
                "an id of {} bytes gave {e}, want an invalid-id error",
                max + 1
            )),
            Ok(o) => Err(format!(
                "an id of {} bytes (limit {max}) was accepted ({o:?})",
                max + 1
            )),
        }
    }

    async fn value_size(&self) -> Outcome {
        let max = self.p.info().id_rules.max_value_bytes as usize;
        for size in [max - 1, max] {
            let id = self.id(&["size", &size.to_string()]);
            let v = SecretValue::new(vec![b'v'; size]);
            self.put(&id, &v)
                .await
                .map_err(|e| format!("a value of {size} bytes (limit {max}): {e}"))?;
            self.expect_value(&id, &v).await?;
        }
        Ok(())
    }

    async fn value_too_large(&self) -> Outcome {
        let max = self.p.info().id_rules.max_value_bytes as usize;
        let id = self.id(&["size", "over"]);
        match self
            .p
            .put_unchecked(&id, &SecretValue::new(vec![b'v'; max + 1]))
            .await
        {
            Err(ProviderError::ValueTooLarge { .. }) => Ok(()),
            Err(e) => Err(format!(
                "a value of {} bytes gave {e}, want value-too-large",
                max + 1
            )),
            Ok(o) => Err(format!(
                "a value of {} bytes (limit {max}) was accepted ({o:?})",
                max + 1
            )),
        }
    }

    async fn unicode_and_binary(&self) -> Outcome {
        let unicode = val("пароль-密码-🔑-\"quoted\"\n\ttabs\\");
        self.put(&self.id(&["uni"]), &unicode).await?;
        self.expect_value(&self.id(&["uni"]), &unicode).await?;
        let binaryish =
            val("-----BEGIN PRIVATE KEY-----\nMIIEv+/=\u{0}\u{7f}\n-----END PRIVATE KEY-----");
        self.put(&self.id(&["bin"]), &binaryish).await?;
        self.expect_value(&self.id(&["bin"]), &binaryish).await
    }

    async fn empty_value(&self) -> Outcome {
        let id = self.id(&["empty"]);
        match self.p.put(&id, &val(""), &PutOptions::default()).await {
            Ok(_) => self.expect_value(&id, &val("")).await,
            Err(
                ProviderError::ValueTooLarge { .. }
                | ProviderError::Backend(_)
                | ProviderError::InvalidId(_),
            ) => Ok(()),
            Err(e) => Err(format!("an empty value gave {e}")),
        }
    }

    async fn many_ids(&self) -> Outcome {
        let n = 150;
        for i in 0..n {
            self.put(
                &self.id(&["many", &format!("m{i:04}")]),
                &val(&format!("value-{i}")),
            )
            .await?;
        }
        for i in (0..n).step_by(7) {
            self.expect_value(
                &self.id(&["many", &format!("m{i:04}")]),
                &val(&format!("value-{i}")),
            )
            .await?;
        }
        let listed = self.list_all(&self.id(&["many"]), 50).await?;
        ensure(listed.len() == n, || {
            format!("listed {} of {n} ids", listed.len())
        })
    }

    async fn concurrent(&self) -> Outcome {
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..16 {
            let p = self.p.clone();
            let id = self.id(&["conc", &format!("t{t:02}")]);
            tasks.spawn(async move {
                for round in 0..5 {
                    let v = val(&format!("task-{t}-round-{round}"));
                    p.put(&id, &v, &PutOptions::default()).await.map_err(err)?;
                    let got = p.get(&id).await.map_err(err)?;
                    ensure(got.is_some_and(|g| g.ct_eq(&v)), || {
                        format!("{id} read back another value")
                    })?;
                }
                Ok::<(), String>(())
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| format!("a task failed: {e}"))??;
        }
        Ok(())
    }

    async fn cleanup(&self) {
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let Ok(page) = self.p.list(&self.root, cursor.as_deref(), 100).await else {
                return;
            };
            for id in &page.ids {
                let _ = self.p.delete(id).await;
            }
            // Deleting shifts the listing: restart from the top until it is empty.
            if page.ids.is_empty() {
                return;
            }
            cursor = None;
        }
    }
}
