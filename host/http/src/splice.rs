//! Splicing: a request's header values and body assembled from the provider's
//! parts, each secret handle and credential written by the host in the encoding
//! asked for, a credential only toward the origins it is bound to.

use base64::Engine as _;
use secret_broker_runtime::bindings::WitError as Error;
use secret_broker_runtime::bindings::v0_2_0::secret_broker::provider0_2_0::http::{Encoding, Part};
use secret_broker_runtime::try_grant;
use zeroize::Zeroizing;

use crate::cap::{HostResult, HttpView, denied};
use crate::settings::Origin;

/// Writes `value` into `out` in `encoding`.
fn encode(value: &[u8], encoding: Encoding, out: &mut Vec<u8>) -> Result<(), Error> {
    match encoding {
        Encoding::Raw => out.extend_from_slice(value),
        Encoding::JsonString => {
            let text = std::str::from_utf8(value).map_err(|_| {
                Error::Backend("a secret spliced as a JSON string is not UTF-8 text".into())
            })?;
            let json = Zeroizing::new(serde_json::Value::from(text).to_string());
            out.extend_from_slice(json.as_bytes());
        }
        Encoding::Base64 => {
            let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(value));
            out.extend_from_slice(text.as_bytes());
        }
        Encoding::Url => {
            let text = Zeroizing::new(
                percent_encoding::percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
            out.extend_from_slice(text.as_bytes());
        }
    }
    Ok(())
}

impl HttpView<'_> {
    /// Concatenates `parts`, splicing secrets and credentials.
    pub(crate) fn assemble(
        &mut self,
        parts: Vec<Part>,
        to: &Origin,
    ) -> HostResult<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::new());
        for part in parts {
            match part {
                Part::Bytes(bytes) => {
                    self.host.charge(bytes.len())?;
                    out.extend_from_slice(&bytes);
                }
                Part::Secret((handle, encoding)) => {
                    let value = self.host.splice_value(&handle)?;
                    try_grant!(encode(value.expose(), encoding, &mut out));
                }
                Part::Credential((name, encoding)) => {
                    self.host.charge(name.len())?;
                    let ctx = try_grant!(self.ctx());
                    let Some(value) = ctx.credential_for(&name, Some(to)) else {
                        if ctx.holds(&name) {
                            return Ok(Err(denied(format!(
                                "the credential `{name}` may not be sent to {to}: it is bound to \
                                 other origins (its `origins` in the http grant's credentials)"
                            ))));
                        }
                        return Ok(Err(denied(format!(
                            "the http grant holds no credential `{name}`: configure it in the \
                             grant's `credentials`, or keep one from a response (`keep-as`)"
                        ))));
                    };
                    self.host.touch(&value);
                    try_grant!(encode(value.expose(), encoding, &mut out));
                }
            }
        }
        Ok(Ok(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let mut out = Vec::new();
        encode(b"a\"b", Encoding::JsonString, &mut out).unwrap();
        encode(b"/x y", Encoding::Url, &mut out).unwrap();
        encode(b"hi", Encoding::Base64, &mut out).unwrap();
        assert_eq!(out, b"\"a\\\"b\"%2Fx%20yaGk=");
    }
}
