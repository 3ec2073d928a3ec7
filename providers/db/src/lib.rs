//! The `db` provider: the embedded default. Each value is sealed by the host
//! keyring (bound to its id) and stored as a versioned row in the host record store
//! (SQLite, PostgreSQL or MariaDB). It imports only those two capabilities and never
//! sees plaintext: handles go from the host to the keyring and back.
//!
//! Writes are compare-and-set on the row version, so two hosts writing the same id
//! never lose an update silently: a lost race is retried against the new version.

use secret_broker_guest_sdk::record_store::{self, Condition, Row};
use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, PutOptions, PutOutcome, Secret, export_provider, keyring,
};

/// Ids as OpenMetadata writes them, up to AWS Secrets Manager's 512.
const MAX_ID_LEN: u32 = 512;
/// Well under the host's per-call data limit once sealed.
const MAX_VALUE_BYTES: u64 = 256 * 1024;
/// Attempts at a compare-and-set write before reporting the conflict.
const CAS_ATTEMPTS: usize = 8;

struct Db;

fn open(row: &Row) -> Result<Secret, Error> {
    keyring::open(&row.value, row.key.as_bytes())
}

impl Provider for Db {
    fn new() -> Result<Self, Error> {
        Ok(Db)
    }

    fn put(&self, id: &str, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        let sealed = keyring::seal(&value, id.as_bytes())?;
        for attempt in 0..=CAS_ATTEMPTS {
            let (condition, outcome) = match record_store::get(id)? {
                None => (Condition::Absent, PutOutcome::Created),
                Some(row) => {
                    // Opening the current value first means a host with the wrong
                    // master key fails here instead of overwriting it.
                    if open(&row)?.equals(&value) {
                        return Ok(PutOutcome::Unchanged);
                    }
                    (Condition::Version(row.version), PutOutcome::Updated)
                }
            };
            // Under heavy contention a put is a blind write at last: last writer
            // wins, which is what a put means; the CAS only keeps outcomes exact.
            let condition = if attempt == CAS_ATTEMPTS {
                Condition::Any
            } else {
                condition
            };
            match record_store::put(id, &sealed, condition) {
                Ok(_) => return Ok(outcome),
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!(
            "{id} kept changing under {CAS_ATTEMPTS} attempts to write it"
        )))
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        record_store::get(id)?.map(|row| open(&row)).transpose()
    }

    fn delete(&self, id: &str) -> Result<bool, Error> {
        record_store::remove(id, Condition::Any)
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, Error> {
        // One row past the page tells whether another page follows.
        let limit = limit.clamp(1, 1000);
        let rows = record_store::scan(prefix, cursor, limit + 1)?;
        Ok(ListPage::from_sorted(
            rows.into_iter().map(|r| r.key),
            None,
            limit,
        ))
    }

    fn reseal(&self, id: &str) -> Result<bool, Error> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(row) = record_store::get(id)? else {
                return Ok(false);
            };
            let Some(resealed) = keyring::reseal(&row.value, id.as_bytes())? else {
                return Ok(false);
            };
            match record_store::put(id, &resealed, Condition::Version(row.version)) {
                Ok(_) => return Ok(true),
                // Rewritten meanwhile (by a put sealing under the current key, or
                // another rotation): look again.
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!(
            "{id} kept changing during the re-seal"
        )))
    }
}

export_provider!(
    Db,
    name: "db",
    rules: IdRules::slash_separated(MAX_ID_LEN, MAX_VALUE_BYTES),
);
