//! The `aws-secrets-manager` provider, with OpenMetadata's behaviour: create with
//! description and tags, UpdateSecret for a new value, GetSecretValue, DeleteSecret
//! with ForceDeleteWithoutRecovery. Names and sizes are checked here before any
//! request; the host checks the grant's prefix. Values are handles throughout.

use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, PutOptions, PutOutcome, Secret, aws_secrets_manager as sm,
    collect_sorted, export_provider,
};

/// AWS limits: names up to 512 characters of `A-Za-z0-9/_+=.@-`, values up to 64 KiB.
const MAX_NAME: u32 = 512;
const MAX_VALUE: u64 = 65_536;
const CHARSET: &str = "A-Za-z0-9/_+=.@-";

struct SecretsManager;

fn rules() -> IdRules {
    IdRules {
        separator: "/".into(),
        allowed_chars: CHARSET.into(),
        leading_separator: false,
        max_id_len: MAX_NAME,
        max_levels: None,
        forbidden_prefixes: Vec::new(),
        max_value_bytes: MAX_VALUE,
    }
}

/// All names under `prefix`, sorted: AWS lists in no useful order, so a page of
/// ascending ids needs the whole listing (fine for migration and inventory).
fn all_names(prefix: &str) -> Result<Vec<String>, Error> {
    collect_sorted(prefix, |query, token| sm::list_secrets(query, token, 100))
}

impl Provider for SecretsManager {
    fn new() -> Result<Self, Error> {
        Ok(SecretsManager)
    }

    fn put(&self, id: &str, value: Secret, options: PutOptions) -> Result<PutOutcome, Error> {
        if value.len() == 0 {
            // A secret created without a value has no version AWS can return.
            return Err(Error::Backend(
                "AWS Secrets Manager keeps no empty value: delete the secret instead".into(),
            ));
        }
        if let Some(old) = sm::get_secret_value(id)? {
            if old.equals(&value) {
                return Ok(PutOutcome::Unchanged);
            }
            if sm::update_secret(id, &value)? {
                return Ok(PutOutcome::Updated);
            }
        }
        match sm::create_secret(id, &value, options.description.as_deref(), &options.tags) {
            Ok(()) => Ok(PutOutcome::Created),
            // Created by someone else since we looked: update it.
            Err(Error::Conflict(m)) if !m.contains("scheduled for deletion") => {
                sm::update_secret(id, &value)?;
                Ok(PutOutcome::Updated)
            }
            Err(e) => Err(e),
        }
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        sm::get_secret_value(id)
    }

    fn delete(&self, id: &str) -> Result<bool, Error> {
        // With ForceDeleteWithoutRecovery AWS reports success for a missing name
        // too, so look first to tell the caller whether it existed.
        if sm::get_secret_value(id)?.is_none() {
            return Ok(false);
        }
        sm::delete_secret(id)
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, Error> {
        Ok(ListPage::from_sorted(all_names(prefix)?, cursor, limit))
    }
}

export_provider!(SecretsManager, name: "aws-secrets-manager", rules: rules());
