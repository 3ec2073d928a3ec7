//! Scrubbing an answer before the provider receives it: every value the call
//! spliced or lifted, in every encoding the scrubber knows, is marked out of
//! the body and the header values, so an echoing backend is no oracle.

use secret_broker_runtime::scrub::Scrubber;
use zeroize::Zeroizing;

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
    if scrubber.matches_bytes(&joined) {
        let headers = response_headers
            .into_iter()
            .map(|(n, v)| (n, scrubber.scrub(&v).into_owned()))
            .collect();
        (scrubber.scrub_bytes(&body).into_owned(), headers)
    } else {
        (std::mem::take(&mut *body), response_headers)
    }
}
