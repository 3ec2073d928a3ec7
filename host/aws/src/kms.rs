//! A key-encryption key held by AWS KMS: data keys are wrapped (`Encrypt`) and
//! unwrapped (`Decrypt`) by a KMS key id, each bound to an encryption context,
//! so no process holds the key that protects them.

use aws_sdk_kms::primitives::Blob;

use secret_broker_runtime::SecretValue;

use secret_broker_runtime::bindings::WitError;

use crate::{AwsConfigError, AwsGrantBase, AwsSettings, map_sdk_error};

/// The message of a mapped SDK error (it names the operation and AWS's code).
fn failed(err: WitError) -> anyhow::Error {
    match err {
        WitError::AccessDenied(m)
        | WitError::Unavailable(m)
        | WitError::Conflict(m)
        | WitError::Backend(m)
        | WitError::InvalidId(m) => anyhow::anyhow!(m),
        other => anyhow::anyhow!("{other:?}"),
    }
}

/// A KMS key that wraps and unwraps small secrets (data keys).
pub struct KmsKey {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl std::fmt::Debug for KmsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl KmsKey {
    /// The KMS key `key_id` (an id, ARN or `alias/NAME`), reached with
    /// `settings` (region, credentials, endpoint, retries and timeouts). Fails
    /// before any request when the region or the credentials are missing.
    pub async fn connect(settings: &AwsSettings, key_id: &str) -> Result<Self, AwsConfigError> {
        if key_id.trim().is_empty() {
            return Err(AwsConfigError::Invalid(
                "kms_key_id",
                "empty: give a KMS key id, ARN or alias/NAME".into(),
            ));
        }
        let base = AwsGrantBase::new(settings).await?;
        Ok(KmsKey {
            client: aws_sdk_kms::Client::new(&base.sdk),
            key_id: key_id.trim().to_owned(),
        })
    }

    /// The key id as configured.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Encrypts `plaintext` under the key, bound to `context`.
    pub async fn wrap(
        &self,
        plaintext: &SecretValue,
        context: &[(&str, &str)],
    ) -> anyhow::Result<Vec<u8>> {
        let mut request = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext.expose().to_vec()));
        for (k, v) in context {
            request = request.encryption_context(*k, *v);
        }
        let what = format!("KMS Encrypt with key {}", self.key_id);
        let out = request
            .send()
            .await
            .map_err(|e| failed(map_sdk_error(&what, &e)))?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| anyhow::anyhow!("{what}: KMS returned no ciphertext"))
    }

    /// Decrypts what [`KmsKey::wrap`] produced with the same `context`.
    pub async fn unwrap(
        &self,
        ciphertext: &[u8],
        context: &[(&str, &str)],
    ) -> anyhow::Result<SecretValue> {
        let mut request = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext.to_vec()));
        for (k, v) in context {
            request = request.encryption_context(*k, *v);
        }
        let what = format!("KMS Decrypt with key {}", self.key_id);
        let out = request
            .send()
            .await
            .map_err(|e| failed(map_sdk_error(&what, &e)))?;
        out.plaintext
            .map(|p| SecretValue::new(p.into_inner()))
            .ok_or_else(|| anyhow::anyhow!("{what}: KMS returned no plaintext"))
    }
}
