//! Scrubbing an answer before the provider receives it: every value the call
//! spliced or lifted, in every encoding the scrubber knows, is marked out of
//! the body and the header values, so an echoing backend is no oracle.
//!
//! A JSON body is scrubbed token by token (each string, member name and
//! number), so what the provider receives stays valid JSON with every member
//! that holds no value intact: a value of a few bytes (`1`, `true`) is not
//! hunted inside a version number or a flag, which an honest provider must be
//! able to read (`Scrubber::scrub_token`). A body that is not JSON is scrubbed
//! as bytes, withheld whole where a short value occurs.

use std::borrow::Cow;

use secret_broker_runtime::scrub::{REDACTED, Scrubber};
use serde_json::Value;
use zeroize::{Zeroize as _, Zeroizing};

use crate::lift::WipeOnDrop;

/// The answer's body and headers scrubbed by `scrubber`. One search over the
/// body and every header value together first: an answer seldom holds a value
/// the call touched, and then nothing is searched twice or copied. Each text is
/// a substring of the joined one, so no match there means none in any of them.
pub(crate) fn scrub_answer(
    scrubber: &Scrubber,
    mut body: Zeroizing<Vec<u8>>,
    response_headers: Vec<(String, String)>,
) -> (Vec<u8>, Vec<(String, String)>) {
    let mut joined = Zeroizing::new(Vec::with_capacity(
        body.len()
            + response_headers
                .iter()
                .map(|(_, v)| v.len() + 1)
                .sum::<usize>(),
    ));
    joined.extend_from_slice(&body);
    for (_, value) in &response_headers {
        joined.push(b'\n');
        joined.extend_from_slice(value.as_bytes());
    }
    if !scrubber.matches_bytes(&joined) {
        return (std::mem::take(&mut *body), response_headers);
    }
    let headers = response_headers
        .into_iter()
        .map(|(name, value)| {
            let scrubbed = scrubber.scrub_token(&value).into_owned();
            (name, scrubbed)
        })
        .collect();
    let mut json = WipeOnDrop(serde_json::from_slice::<Value>(&body).ok());
    let body = match json.0.as_mut() {
        Some(doc) => {
            if scrub_json(doc, scrubber) {
                serde_json::to_vec(doc).unwrap_or_default()
            } else {
                std::mem::take(&mut *body)
            }
        }
        None => scrubber.scrub_bytes(&body).into_owned(),
    };
    (body, headers)
}

/// Scrubs every string, member name and number of `doc` in place; true when
/// something was replaced. Literals (`true`, `false`, `null`) are left: they
/// are the same for every answer.
fn scrub_json(doc: &mut Value, scrubber: &Scrubber) -> bool {
    match doc {
        Value::String(text) => match scrubber.scrub_token(text) {
            Cow::Borrowed(_) => false,
            Cow::Owned(scrubbed) => {
                text.zeroize();
                *text = scrubbed;
                true
            }
        },
        Value::Number(n) => {
            let text = Zeroizing::new(n.to_string());
            let matched = matches!(scrubber.scrub_token(&text), Cow::Owned(_));
            if matched {
                *doc = Value::String(REDACTED.to_owned());
            }
            matched
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| scrub_json(item, scrubber) | changed),
        Value::Object(map) => {
            let mut changed = false;
            let named = map
                .keys()
                .any(|name| matches!(scrubber.scrub_token(name), Cow::Owned(_)));
            if named {
                let old = std::mem::take(map);
                for (mut name, member) in old {
                    let scrubbed = scrubber.scrub_token(&name).into_owned();
                    name.zeroize();
                    map.insert(scrubbed, member);
                }
                changed = true;
            }
            for member in map.values_mut() {
                changed |= scrub_json(member, scrubber);
            }
            changed
        }
        Value::Bool(_) | Value::Null => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secret_broker_runtime::SecretValue;

    fn scrub(values: &[&str], body: &str) -> String {
        let values: Vec<SecretValue> = values
            .iter()
            .map(|v| SecretValue::from_string((*v).to_owned()))
            .collect();
        let scrubber = Scrubber::one_shot(&values);
        let (body, _) = scrub_answer(
            &scrubber,
            Zeroizing::new(body.as_bytes().to_vec()),
            Vec::new(),
        );
        String::from_utf8(body).unwrap()
    }

    /// Short values are not hunted inside the answer's own members: an honest
    /// provider reads versions, counts and flags as the backend wrote them.
    #[test]
    fn short_values_leave_an_honest_answer_intact() {
        let body = r#"{"count":"1","version":1,"succeeded":true,"name":"a-b","deleted":false}"#;
        for value in ["1", "0", "a", "tru"] {
            assert_eq!(scrub(&[value], body), body, "{value}");
        }
        // `true` is four bytes: as a JSON literal it is the backend's own.
        assert_eq!(scrub(&["true"], body), body);
    }

    /// A value of four bytes or more is marked wherever a string, a member name
    /// or a number holds it, and the answer stays JSON with its other members.
    #[test]
    fn longer_values_are_marked_in_every_token_and_the_json_stays_valid() {
        let body = r#"{"echo":"x-s3cr3t-y","s3cr3t":{"n":2468},"list":["czNjcjN0"],"ok":true}"#;
        let out = scrub(&["s3cr3t", "2468"], body);
        let doc: Value = serde_json::from_str(&out).expect("still JSON");
        assert!(!out.contains("s3cr3t") && !out.contains("2468"), "{out}");
        assert!(!out.contains("czNjcjN0"), "base64 form: {out}");
        assert_eq!(doc["echo"], "x-[redacted]-y");
        assert_eq!(doc["[redacted]"]["n"], "[redacted]");
        assert_eq!(doc["ok"], true);
    }

    /// A body that is not JSON is scrubbed as bytes; a short value there
    /// withholds it whole, as before.
    #[test]
    fn other_bodies_are_scrubbed_as_bytes() {
        assert_eq!(scrub(&["s3cr3t"], "echo s3cr3t!"), "echo [redacted]!");
        assert!(!scrub(&["ab"], "xaby").contains("ab"));
    }
}
