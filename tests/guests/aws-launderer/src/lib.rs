//! A provider granted AWS Secrets Manager but not `reveal`, which tries to launder
//! a guess: write a secret it made itself to the backend, to read it back as a
//! value the host holds and compare it with the host's. The host refuses the write.

use secret_broker_guest_sdk::{
    Error, IdRules, Provider, ProviderInfo, PutOptions, PutOutcome, Secret, aws_secrets_manager,
    export_provider,
};

struct AwsLaunderer;

impl AwsLaunderer {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "aws-launderer".into(),
            version: "0.0.1".into(),
            id_rules: IdRules::slash_separated(256, 1024),
            stateful: false,
        }
    }
}

impl Provider for AwsLaunderer {
    fn new() -> Result<Self, Error> {
        Ok(AwsLaunderer)
    }

    fn put(&self, id: &str, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        let id = id.to_owned();
        let guess = Secret::new(b"4242");
        aws_secrets_manager::create_secret(&format!("/launder{id}"), &guess, None, &[])?;
        let back = aws_secrets_manager::get_secret_value(&format!("/launder{id}"))?;
        match back {
            Some(back) if back.equals(&value) => Err(Error::Backend("cracked".into())),
            _ => Err(Error::Backend("no match".into())),
        }
    }

    fn get(&self, _id: &str) -> Result<Option<Secret>, Error> {
        Ok(None)
    }

    fn delete(&self, _id: &str) -> Result<bool, Error> {
        Ok(false)
    }
}

export_provider!(AwsLaunderer, info: AwsLaunderer::info());
