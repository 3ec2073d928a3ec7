//! `HttpCtx`: the `http` capability as granted to one provider instance: its
//! settings, its pooled client, the credentials it holds (configured, read from
//! files again when they change, signed afresh, or kept from an answer) and the
//! origins each may go to, and the digest keys.

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use secret_broker_runtime::SecretValue;
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::address::{CheckedResolver, Refused};
use crate::settings::{HttpSettings, Origin, SettingsError};

/// The `http` capability as granted to one provider instance: its settings, one
/// pooled client shared by the instance's Wasm instances, and the credentials the
/// provider kept from responses (a login's token).
pub struct HttpCtx {
    pub(crate) settings: HttpSettings,
    /// Digest keys: of values the host holds, and of values the provider made.
    digest_keys: [Zeroizing<[u8; 32]>; 2],
    pub(crate) client: reqwest::Client,
    /// Values kept from responses, with the origin that sent each: a kept token
    /// goes back to that origin only, or to the origins the grant binds its name to.
    pub(crate) kept: Mutex<HashMap<String, (SecretValue, Origin)>>,
    /// Each granted origin as text (`scheme://host:port`): a request naming one
    /// this way is matched without parsing it.
    pub(crate) origin_texts: Vec<(String, Origin)>,
    /// Credentials read from files, with the file's modification time and
    /// length when read: read again when either changes.
    files: Mutex<HashMap<String, (FileStamp, SecretValue)>>,
    /// Lifted values that failed their checksum, for this grant's life.
    pub(crate) checksum_failures: AtomicU32,
}

/// What tells a credential file changed.
type FileStamp = (Option<std::time::SystemTime>, u64);

impl std::fmt::Debug for HttpCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCtx")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HttpCtx {
    /// Builds the grant's client: no proxy from the environment, rustls with the
    /// system roots plus the CA file, the checked resolver, redirects within the
    /// origin only.
    pub fn new(settings: HttpSettings) -> Result<HttpCtx, SettingsError> {
        settings.check()?;
        crate::ensure_crypto_provider();
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A system certificate rustls cannot parse is skipped, as browsers do.
            let _ = roots.add(cert);
        }
        let mut add_pem = |what: String,
                           certs: Result<Vec<CertificateDer<'static>>, String>|
         -> Result<(), SettingsError> {
            let ca_error = |reason: String| SettingsError::CaFile {
                path: what.clone(),
                reason,
            };
            let certs = certs.map_err(ca_error)?;
            if certs.is_empty() {
                return Err(ca_error("holds no PEM certificate".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| ca_error(format!("a certificate rustls refuses: {e}")))?;
            }
            Ok(())
        };
        if let Some(path) = &settings.ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| e.to_string())
                .and_then(|iter| {
                    iter.collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string())
                });
            add_pem(path.display().to_string(), certs)?;
        }
        if let Some(pem) = &settings.ca_pem {
            let certs = CertificateDer::pem_slice_iter(pem)
                .map(|c| c.map(CertificateDer::into_owned))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string());
            add_pem("(inline certificate-authority-data)".into(), certs)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SettingsError::Client(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let max_redirects = settings.max_redirects;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let previous = attempt.previous();
            if previous.len() > max_redirects {
                return attempt.error(Refused::Redirects(max_redirects));
            }
            let from = previous.first().and_then(Origin::of);
            let to = Origin::of(attempt.url());
            match (from, to) {
                (Some(from), Some(to)) if from == to => attempt.follow(),
                (from, _) => {
                    let to = attempt.url().origin().ascii_serialization();
                    attempt.error(Refused::CrossOrigin {
                        from: from.map(|o| o.to_string()).unwrap_or_default(),
                        to,
                    })
                }
            }
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .use_preconfigured_tls(tls)
            .dns_resolver(Arc::new(CheckedResolver {
                allow_private: settings.allow_private,
            }))
            .redirect(redirects)
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| SettingsError::Client(e.to_string()))?;
        let mut base = Zeroizing::new([0u8; 32]);
        match &settings.digest_key {
            Some(key) => base.copy_from_slice(&sha2::Sha256::digest(key.expose())),
            None => rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, base.as_mut()),
        }
        let derive = |label: &[u8]| {
            let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(base.as_ref())
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
            hmac::Mac::update(&mut mac, label);
            let mut key = Zeroizing::new([0u8; 32]);
            key.copy_from_slice(&hmac::Mac::finalize(mac).into_bytes());
            key
        };
        Ok(HttpCtx {
            digest_keys: [
                derive(b"http digest: host-held"),
                derive(b"http digest: provider-made"),
            ],
            origin_texts: settings
                .origins
                .iter()
                .map(|o| (o.to_string(), o.clone()))
                .collect(),
            settings,
            client,
            kept: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            checksum_failures: AtomicU32::new(0),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    pub(crate) fn credential(&self, name: &str) -> Option<SecretValue> {
        self.credential_for(name, None)
    }

    /// Whether the grant holds the credential `name`, without making its value
    /// (no assertion signed, no file read).
    pub(crate) fn holds(&self, name: &str) -> bool {
        self.settings.credentials.contains_key(name)
            || self.settings.credential_files.contains_key(name)
            || self.settings.signers.contains_key(name)
            || self
                .kept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains_key(name)
    }

    /// The credential `name`, if it may go to `origin` (any origin: `None`).
    pub(crate) fn credential_for(
        &self,
        name: &str,
        origin: Option<&Origin>,
    ) -> Option<SecretValue> {
        let allowed = || match (origin, self.settings.credential_origins.get(name)) {
            (Some(origin), Some(bound)) => bound.contains(origin),
            _ => true,
        };
        if let Some(v) = self.settings.credentials.get(name) {
            return allowed().then(|| v.clone());
        }
        if let Some(path) = self.settings.credential_files.get(name) {
            return if allowed() {
                self.file_credential(name, path)
            } else {
                None
            };
        }
        if let Some(signer) = self.settings.signers.get(name) {
            if !allowed() {
                return None;
            }
            return match signer.sign() {
                Ok(assertion) => Some(assertion),
                Err(e) => {
                    tracing::error!(credential = name, error = %e, "signing an assertion failed");
                    None
                }
            };
        }
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .filter(|(_, from)| {
                // Back to its origin, or where the grant binds the name (an OAuth
                // token is for the API, not for the authority that issued it).
                origin.is_none_or(|o| {
                    o == from
                        || self
                            .settings
                            .credential_origins
                            .get(name)
                            .is_some_and(|bound| bound.contains(o))
                })
            })
            .map(|(v, _)| v.clone())
    }

    /// The credential `name` from the file `path`: the value read before while
    /// the file is unchanged, else read again (trailing newlines removed). A
    /// file that cannot be read keeps the value read before, if any.
    fn file_credential(&self, name: &str, path: &std::path::Path) -> Option<SecretValue> {
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cached = files.get(name);
        if let (Some(stamp), Some((seen, value))) = (stamp, cached)
            && stamp == *seen
        {
            return Some(value.clone());
        }
        match (stamp, std::fs::read(path)) {
            (Some(stamp), Ok(bytes)) => {
                let mut bytes = Zeroizing::new(bytes);
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                let value = SecretValue::new(bytes.to_vec());
                files.insert(name.to_owned(), (stamp, value.clone()));
                Some(value)
            }
            (_, result) => {
                let reason = result
                    .err()
                    .map_or_else(|| "gone".to_owned(), |e| e.to_string());
                tracing::warn!(credential = name, path = %path.display(), %reason, "reading a credential file failed; keeping the value read before");
                cached.map(|(_, value)| value.clone())
            }
        }
    }

    /// Keeps a value lifted from a response as the credential `name`. It stays
    /// marked as the provider's own making: the provider shaped the request, so
    /// fetched back as a credential it must not compare as a value the host holds.
    pub(crate) fn keep(&self, name: &str, value: &SecretValue, from: &Origin) {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                name.to_owned(),
                (value.clone().marked_guest_made(), from.clone()),
            );
    }

    /// `hmac-sha256:<hex>` of `value` under the key of its provenance.
    pub fn digest(&self, value: &SecretValue) -> String {
        let key = &self.digest_keys[usize::from(value.is_guest_made())];
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        hmac::Mac::update(&mut mac, value.expose());
        format!(
            "hmac-sha256:{}",
            hex::encode(hmac::Mac::finalize(mac).into_bytes())
        )
    }

    pub(crate) fn allowed(&self, origin: &Origin) -> bool {
        self.settings.origins.contains(origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_value_stays_the_providers_own_and_digests_apart() {
        let ctx = HttpCtx::new(
            HttpSettings::new(&["http://127.0.0.1:1"])
                .unwrap()
                .credential("token", SecretValue::from_string("configured-token".into()))
                .unwrap(),
        )
        .unwrap();
        let echoed = SecretValue::from_string("a-guess-1234".into());
        let origin = Origin::parse("http://127.0.0.1:1").unwrap();
        ctx.keep("session", &echoed, &origin);
        let elsewhere = Origin::parse("http://127.0.0.1:2").unwrap();
        assert!(
            ctx.credential_for("session", Some(&elsewhere)).is_none(),
            "a kept token goes back to its origin only"
        );
        let kept = ctx.credential("session").unwrap();
        assert!(kept.is_guest_made(), "a kept value would launder a guess");
        assert!(!ctx.credential("token").unwrap().is_guest_made());
        let host_held = SecretValue::from_string("a-guess-1234".into());
        assert_ne!(ctx.digest(&kept), ctx.digest(&host_held));
        assert_eq!(ctx.digest(&host_held), ctx.digest(&host_held.clone()));
    }

    /// An OAuth token comes from the authority and is for the API: the grant
    /// may bind the kept name to the API's origin; no other origin gets it.
    #[test]
    fn a_kept_value_goes_where_the_grant_binds_its_name() {
        let (authority, api, other) = (
            "https://127.0.0.1:1",
            "https://127.0.0.1:2",
            "https://127.0.0.1:3",
        );
        let ctx = HttpCtx::new(
            HttpSettings::new(&[authority, api, other])
                .unwrap()
                .bind_credential("access-token", &[api])
                .unwrap(),
        )
        .unwrap();
        let o = |t| Origin::parse(t).unwrap();
        ctx.keep(
            "access-token",
            &SecretValue::from_string("tok".into()),
            &o(authority),
        );
        assert!(ctx.credential_for("access-token", Some(&o(api))).is_some());
        assert!(
            ctx.credential_for("access-token", Some(&o(authority)))
                .is_some()
        );
        assert!(
            ctx.credential_for("access-token", Some(&o(other)))
                .is_none()
        );
    }

    #[test]
    fn a_credential_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first-token\n").unwrap();
        let ctx = HttpCtx::new(
            HttpSettings::new(&["http://127.0.0.1:1"])
                .unwrap()
                .credential_file("token", &path)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            ctx.credential("token").unwrap().expose_str(),
            Some("first-token")
        );
        // Rotated (another length, so the change shows whatever the clock's
        // resolution): the next use reads the new token.
        std::fs::write(&path, "second-token-rotated\n").unwrap();
        assert_eq!(
            ctx.credential("token").unwrap().expose_str(),
            Some("second-token-rotated")
        );
        // Gone for a moment (a rotation's rename): the token read before serves.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            ctx.credential("token").unwrap().expose_str(),
            Some("second-token-rotated")
        );
        assert!(
            HttpSettings::new(&["http://127.0.0.1:1"])
                .unwrap()
                .credential_file("token", dir.path().join("missing"))
                .is_err()
        );
    }
}
