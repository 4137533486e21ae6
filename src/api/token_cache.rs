//! Bearer tokens as requests present them: a token found valid is remembered, so most requests
//! cost no database read. A remembered token is trusted only until it expires, for a minute at
//! most, and only while no client has been revoked since it was read: a revocation in this
//! process counts at once, one made elsewhere (another instance, or `hookgate client revoke`)
//! as soon as this instance hears of it ([`crate::store::revisions`]), within a quarter second.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use crate::domain::secret;
use crate::store::clients::{self, Bearer};
use crate::store::revisions::Cached;
use crate::store::{Store, StoreError};

/// The longest a token is trusted from memory.
const TRUST_FOR: Duration = Duration::from_secs(60);

/// Tokens remembered at most; beyond that the memory starts over.
const MAX_TOKENS: usize = 10_000;

struct Remembered {
    bearer: Bearer,
    /// The count of client changes when it was read.
    seen: u64,
    read: Instant,
}

#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, Remembered>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache")
    }
}

impl TokenCache {
    /// Whom `token` stands for, if it is valid at `now`.
    pub async fn authenticate(
        &self,
        store: &Store,
        token: &str,
        now: NaiveDateTime,
    ) -> Result<Option<Bearer>, StoreError> {
        let hash = secret::hash(token);
        let seen = store.seen(Cached::Clients);
        if let Some(known) = self.lock().get(&hash)
            && known.seen == seen
            && known.bearer.expires_at > now
            && known.read.elapsed() < TRUST_FOR
        {
            return Ok(Some(known.bearer.clone()));
        }
        let key = hash.clone();
        let found = store.run(move |c| clients::authenticate(c, &key, now)).await?;
        let mut tokens = self.lock();
        match &found {
            Some(bearer) => {
                if tokens.len() >= MAX_TOKENS {
                    tokens.clear();
                }
                tokens.insert(hash, Remembered { bearer: bearer.clone(), seen, read: Instant::now() });
            }
            None => {
                tokens.remove(&hash);
            }
        }
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Remembered>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
