//! Assertions the host signs for a grant (RFC 7523 JWT bearer client
//! assertions, as a Google service account logs in): the provider splices one by
//! the credential's name into a token request, and never holds the key.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject as _;
use secret_broker_runtime::SecretValue;
use zeroize::Zeroizing;

use crate::settings::SettingsError;

/// The longest life an assertion may be given (Google's limit: one hour).
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// Signs a fresh RS256 JWT each time its credential is spliced: the configured
/// claims (`iss`, `aud`, `scope`, ...) plus `iat` and `exp`.
#[derive(Clone)]
pub struct JwtSigner {
    key: Arc<RsaKeyPair>,
    key_id: Option<String>,
    claims: serde_json::Map<String, serde_json::Value>,
    lifetime: Duration,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("key_id", &self.key_id)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl JwtSigner {
    /// A signer with the RSA private key `pem` (PKCS#8 PEM, as a Google service
    /// account key's `private_key`), its id `key_id` (the JWT's `kid`), and
    /// `claims` (an object) written into every assertion, which lives `lifetime`
    /// (at most an hour).
    pub fn rs256(
        name: &str,
        pem: &SecretValue,
        key_id: Option<String>,
        claims: serde_json::Value,
        lifetime: Duration,
    ) -> Result<JwtSigner, SettingsError> {
        let refuse = |reason: &str| SettingsError::Signer {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.expose()).map_err(|_| {
            refuse("the key is not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)")
        })?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|_| refuse("the key is not an RSA key of 2048 bits or more"))?;
        let serde_json::Value::Object(claims) = claims else {
            return Err(refuse("the claims are not a JSON object"));
        };
        if claims.contains_key("iat") || claims.contains_key("exp") {
            return Err(refuse("`iat` and `exp` are written by the host at signing"));
        }
        if lifetime.is_zero() || lifetime > MAX_LIFETIME {
            return Err(refuse("the lifetime must be 1 s to 1 h"));
        }
        Ok(JwtSigner {
            key: Arc::new(key),
            key_id,
            claims,
            lifetime,
        })
    }

    /// A fresh assertion: `header.claims.signature`, base64url without padding.
    pub(crate) fn sign(&self) -> Result<SecretValue, String> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.clone().into();
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the clock is before 1970".to_owned())?
            .as_secs();
        let mut claims = self.claims.clone();
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + self.lifetime.as_secs()).into());
        let mut out = Zeroizing::new(format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(serde_json::Value::Object(claims).to_string())
        ));
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                out.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the assertion failed".to_owned())?;
        out.push('.');
        out.push_str(&b64.encode(&signature));
        Ok(SecretValue::new(out.as_bytes().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A 2048-bit RSA key made for this test only.
    fn test_key() -> SecretValue {
        use aws_lc_rs::encoding::AsDer as _;
        let key = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = key.as_der().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        SecretValue::from_string(pem)
    }

    #[test]
    fn assertions_carry_the_claims_a_fresh_time_and_verify() {
        let key = test_key();
        let signer = JwtSigner::rs256(
            "assertion",
            &key,
            Some("kid-1".into()),
            serde_json::json!({"iss": "sa@p.iam.gserviceaccount.com", "aud": "https://t/token"}),
            Duration::from_secs(600),
        )
        .unwrap();
        let jwt = signer.sign().unwrap();
        let text = jwt.expose_str().unwrap();
        let parts: Vec<_> = text.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "kid-1");
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "sa@p.iam.gserviceaccount.com");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            600
        );
        // The signature verifies under the key's public half.
        let pair = RsaKeyPair::from_pkcs8(
            PrivatePkcs8KeyDer::from_pem_slice(key.expose())
                .unwrap()
                .secret_pkcs8_der(),
        )
        .unwrap();
        use aws_lc_rs::signature::KeyPair as _;
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            pair.public_key().as_ref(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(signed.as_bytes(), &b64.decode(parts[2]).unwrap())
            .unwrap();
        let mut forged = b64.decode(parts[2]).unwrap();
        forged[0] ^= 1;
        assert!(public.verify(signed.as_bytes(), &forged).is_err());
    }

    #[test]
    fn bad_keys_and_claims_are_refused_without_printing_the_key() {
        let not_a_key = SecretValue::from_string("canary-not-a-key-5521".into());
        let err = JwtSigner::rs256(
            "assertion",
            &not_a_key,
            None,
            serde_json::json!({}),
            Duration::from_secs(60),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("PKCS#8") && !err.contains("canary"), "{err}");
        for (claims, life) in [
            (serde_json::json!({"exp": 1}), 60),
            (serde_json::json!([]), 60),
            (serde_json::json!({}), 7200),
        ] {
            assert!(
                JwtSigner::rs256("a", &test_key(), None, claims, Duration::from_secs(life))
                    .is_err()
            );
        }
    }
}
