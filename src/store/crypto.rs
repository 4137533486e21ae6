//! Secrets at rest: the columns that hold subscriber credentials, signing secrets and source
//! secrets are sealed with the process's keyring ([`crate::domain::keyring`]), each value bound
//! to its column and row. The keyring is installed once at start ([`install`]) from the settings.
//!
//! A check value in `meta` records which key the database's secrets are sealed with: a start
//! with keys that cannot open it fails with a clear error instead of reading garbage. The first
//! start with a keyring seals what was stored in plaintext before; `hookgate keys rotate`
//! seals everything again under a new key, a batch per transaction, while instances run.

use std::sync::{Arc, PoisonError, RwLock};

use diesel::prelude::*;
use serde::Serialize;

use super::schema::{meta, sources, subscription_secrets, subscriptions};
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::keyring::{Keyring, OpenError};

static KEYRING: RwLock<Option<Arc<Keyring>>> = RwLock::new(None);

/// The `meta` key of the check value.
const CHECK: &str = "encryption_check";
const CHECK_TEXT: &str = "hookgate";

/// Rows sealed again per transaction.
const BATCH: i64 = 200;

/// Makes `keyring` the one every store in this process seals and opens with.
pub fn install(keyring: Keyring) {
    *KEYRING.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(keyring));
}

fn ring() -> Result<Arc<Keyring>, StoreError> {
    KEYRING
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or_else(|| StoreError::Open("no encryption key is installed".into()))
}

fn context(column: &str, row: &str) -> String {
    format!("{column}:{row}")
}

/// Seals a secret for `column` of row `row`.
pub(super) fn seal(column: &str, row: &str, plaintext: &str) -> Result<String, StoreError> {
    Ok(ring()?.seal(&context(column, row), plaintext))
}

/// Opens what [`seal`] stored (a value stored before secrets were sealed is read as it is).
pub(super) fn open(column: &str, row: &str, stored: &str) -> Result<String, StoreError> {
    if !Keyring::is_sealed(stored) {
        return Ok(stored.to_owned());
    }
    ring()?
        .open(&context(column, row), stored)
        .map_err(|e| StoreError::Corrupt(format!("{column} of {row} cannot be opened: {e}")))
}

/// Checks that the keyring opens this database's secrets; on a database that has no check yet,
/// seals what is stored in plaintext and records the check. Returns how many values it sealed.
pub fn adopt(conn: &mut AnyConnection) -> Result<u64, StoreError> {
    let ring = ring()?;
    let check: Option<String> = meta::table.find(CHECK).select(meta::value).first(conn).optional()?;
    if let Some(check) = check {
        return match ring.open(CHECK, &check) {
            Ok(_) => Ok(0),
            Err(OpenError::UnknownKey(id)) => Err(StoreError::Open(format!(
                "this database's secrets are sealed with encryption key {id}, and the configured keys are {}; \
                 set HOOKGATE_ENCRYPTION_KEY or HOOKGATE_ENCRYPTION_KEY_FILE to the key it was created with",
                ring.ids().join(", ")
            ))),
            Err(e) => Err(StoreError::Open(format!("the database's encryption check does not open: {e}"))),
        };
    }
    let sealed = reseal(conn, &ring)?.total();
    let recorded = diesel::insert_into(meta::table)
        .values((meta::key.eq(CHECK), meta::value.eq(ring.seal(CHECK, CHECK_TEXT))))
        .execute(conn);
    match recorded {
        // Another instance starting at once recorded it first.
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {}
        other => {
            other?;
        }
    }
    Ok(sealed)
}

/// What a reseal did, by column.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resealed {
    pub basic_passwords: u64,
    pub bearer_tokens: u64,
    pub client_keys: u64,
    pub signing_secrets: u64,
    pub source_configs: u64,
    pub source_tokens: u64,
}

impl Resealed {
    pub fn total(&self) -> u64 {
        self.basic_passwords
            + self.bearer_tokens
            + self.client_keys
            + self.signing_secrets
            + self.source_configs
            + self.source_tokens
    }
}

/// Seals every secret under `ring`'s current key (opening each with any key of the ring), in
/// batches, each its own transaction; then records the check under that key. A value changed
/// meanwhile is left as the change wrote it.
pub fn rotate(conn: &mut AnyConnection, ring: &Keyring) -> Result<Resealed, StoreError> {
    let done = reseal(conn, ring)?;
    let check = ring.seal(CHECK, CHECK_TEXT);
    let replaced = diesel::update(meta::table.find(CHECK)).set(meta::value.eq(&check)).execute(conn)?;
    if replaced == 0 {
        diesel::insert_into(meta::table)
            .values((meta::key.eq(CHECK), meta::value.eq(&check)))
            .execute(conn)?;
    }
    Ok(done)
}

/// Seals the values of one column that are not yet under the current key, a batch at a time.
macro_rules! reseal_column {
    ($conn:expr, $ring:expr, $table:ident, $column:ident) => {{
        let name = concat!(stringify!($table), ".", stringify!($column));
        let current = $ring.current().id().to_owned();
        let (mut after, mut count) = (String::new(), 0u64);
        loop {
            let rows: Vec<(String, Option<String>)> = $table::table
                .filter($table::id.gt(&after))
                .filter($table::$column.is_not_null())
                .order($table::id)
                .select(($table::id, $table::$column.nullable()))
                .limit(BATCH)
                .load($conn)?;
            let Some((last, _)) = rows.last() else { break };
            after = last.clone();
            count += write_transaction($conn, |conn| {
                let mut n = 0u64;
                for (id, value) in &rows {
                    let Some(old) = value else { continue };
                    if Keyring::sealed_with(old) == Some(current.as_str()) {
                        continue;
                    }
                    let plain = if Keyring::is_sealed(old) {
                        $ring.open(&context(name, id), old).map_err(|e| {
                            StoreError::Corrupt(format!("{name} of {id} cannot be opened: {e}"))
                        })?
                    } else {
                        old.clone()
                    };
                    let new = $ring.seal(&context(name, id), &plain);
                    n += u64::try_from(
                        diesel::update(
                            $table::table.filter($table::id.eq(id)).filter($table::$column.eq(old)),
                        )
                        .set($table::$column.eq(&new))
                        .execute(conn)?,
                    )
                    .unwrap_or(0);
                }
                Ok(n)
            })?;
        }
        count
    }};
}

fn reseal(conn: &mut AnyConnection, ring: &Keyring) -> Result<Resealed, StoreError> {
    Ok(Resealed {
        basic_passwords: reseal_column!(conn, ring, subscriptions, basic_password),
        bearer_tokens: reseal_column!(conn, ring, subscriptions, bearer_token),
        client_keys: reseal_column!(conn, ring, subscriptions, client_key),
        signing_secrets: reseal_column!(conn, ring, subscription_secrets, secret),
        source_configs: reseal_column!(conn, ring, sources, config),
        source_tokens: reseal_column!(conn, ring, sources, hook_token),
    })
}
