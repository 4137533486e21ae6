//! API clients (OAuth client credentials) and the bearer tokens issued to them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{api_clients, api_tokens};
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::ids::ClientId;
use crate::domain::scope::Scopes;
use crate::domain::secret::{self, Secret};

#[derive(Debug, Clone)]
pub struct ApiClient {
    pub id: ClientId,
    pub name: String,
    pub scopes: Scopes,
    pub created: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Queryable)]
struct ClientRow {
    id: String,
    name: String,
    secret_hash: String,
    scopes: String,
    created: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
}

impl ClientRow {
    fn into_domain(self) -> Result<(ApiClient, String), StoreError> {
        let client = ApiClient {
            id: self.id.parse().map_err(|e| StoreError::Corrupt(format!("api_clients.id: {e}")))?,
            name: self.name,
            scopes: Scopes::parse(&self.scopes).map_err(StoreError::Corrupt)?,
            created: self.created,
            revoked_at: self.revoked_at,
        };
        Ok((client, self.secret_hash))
    }
}

/// Creates a client; the secret is returned once and only its hash is kept.
pub fn create(
    conn: &mut AnyConnection,
    name: &str,
    scopes: &Scopes,
    now: NaiveDateTime,
) -> Result<(ApiClient, Secret), StoreError> {
    let id = ClientId::generate();
    let client_secret = secret::new_token("hgs_");
    diesel::insert_into(api_clients::table)
        .values((
            api_clients::id.eq(id.as_str()),
            api_clients::name.eq(name),
            api_clients::secret_hash.eq(secret::hash(client_secret.expose())),
            api_clients::scopes.eq(scopes.to_string()),
            api_clients::created.eq(now),
        ))
        .execute(conn)?;
    let client =
        ApiClient { id, name: name.to_owned(), scopes: scopes.clone(), created: now, revoked_at: None };
    Ok((client, client_secret))
}

pub fn list(conn: &mut AnyConnection) -> Result<Vec<ApiClient>, StoreError> {
    api_clients::table
        .order((api_clients::created, api_clients::id))
        .load::<ClientRow>(conn)?
        .into_iter()
        .map(|row| row.into_domain().map(|(client, _)| client))
        .collect()
}

/// Revokes a client and every token it holds, and tells every instance to stop trusting tokens
/// it remembers ([`super::revisions`]).
pub fn revoke(conn: &mut AnyConnection, id: &ClientId, now: NaiveDateTime) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let updated =
            diesel::update(api_clients::table.find(id.as_str()).filter(api_clients::revoked_at.is_null()))
                .set(api_clients::revoked_at.eq(now))
                .execute(conn)?;
        if updated == 0 {
            let exists = api_clients::table.find(id.as_str()).count().get_result::<i64>(conn)? > 0;
            return if exists { Ok(()) } else { Err(StoreError::NotFound) };
        }
        diesel::delete(api_tokens::table.filter(api_tokens::client_id.eq(id.as_str()))).execute(conn)?;
        super::revisions::changed(conn, super::revisions::Cached::Clients)
    })
}

/// The active client whose id and secret match; `None` for any mismatch, without saying which.
pub fn verify_credentials(
    conn: &mut AnyConnection,
    id: &str,
    client_secret: &str,
) -> Result<Option<ApiClient>, StoreError> {
    let row = api_clients::table
        .find(id)
        .filter(api_clients::revoked_at.is_null())
        .first::<ClientRow>(conn)
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let (client, hash) = row.into_domain()?;
    Ok(secret::constant_time_eq(&hash, &secret::hash(client_secret)).then_some(client))
}

/// Stores a new bearer token for the client and drops its expired ones.
pub fn issue_token(
    conn: &mut AnyConnection,
    client: &ClientId,
    scopes: &Scopes,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Result<Secret, StoreError> {
    let token = secret::new_token("hgt_");
    write_transaction(conn, |conn| {
        diesel::delete(
            api_tokens::table
                .filter(api_tokens::client_id.eq(client.as_str()))
                .filter(api_tokens::expires_at.le(now)),
        )
        .execute(conn)?;
        diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::token_hash.eq(secret::hash(token.expose())),
                api_tokens::client_id.eq(client.as_str()),
                api_tokens::scopes.eq(scopes.to_string()),
                api_tokens::created.eq(now),
                api_tokens::expires_at.eq(expires_at),
            ))
            .execute(conn)?;
        Ok(())
    })?;
    Ok(token)
}

/// Whom a bearer token stands for, and until when.
#[derive(Debug, Clone)]
pub struct Bearer {
    pub client_id: ClientId,
    pub scopes: Scopes,
    pub expires_at: NaiveDateTime,
}

/// The client and scopes behind a bearer token (given by its hash) that is unexpired and whose
/// client is active.
pub fn authenticate(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<Bearer>, StoreError> {
    let found: Option<(String, String, NaiveDateTime)> = api_tokens::table
        .inner_join(api_clients::table)
        .filter(api_tokens::token_hash.eq(token_hash))
        .filter(api_tokens::expires_at.gt(now))
        .filter(api_clients::revoked_at.is_null())
        .select((api_tokens::client_id, api_tokens::scopes, api_tokens::expires_at))
        .first(conn)
        .optional()?;
    found
        .map(|(id, scopes, expires_at)| {
            let client_id =
                id.parse().map_err(|e| StoreError::Corrupt(format!("api_tokens.client_id: {e}")))?;
            Ok(Bearer { client_id, scopes: Scopes::parse(&scopes).map_err(StoreError::Corrupt)?, expires_at })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn client_secrets_are_stored_only_as_hashes() {
        let store = Store::open(":memory:", 1, std::time::Duration::from_secs(5)).unwrap();
        store.migrate().unwrap();
        let now = chrono::Utc::now().naive_utc();
        let scopes = Scopes::parse("sp:scopes:all").unwrap();
        let (client, secret) = store.run_blocking(|c| create(c, "x", &scopes, now)).unwrap();
        let stored: String = store
            .run_blocking(|c| {
                api_clients::table
                    .find(client.id.as_str())
                    .select(api_clients::secret_hash)
                    .first(c)
                    .map_err(Into::into)
            })
            .unwrap();
        assert_ne!(stored, secret.expose());
        assert_eq!(stored, secret::hash(secret.expose()));
        let found =
            store.run_blocking(|c| verify_credentials(c, client.id.as_str(), secret.expose())).unwrap();
        assert!(found.is_some());
        let wrong = store.run_blocking(|c| verify_credentials(c, client.id.as_str(), "hgs_wrong")).unwrap();
        assert!(wrong.is_none());
    }
}
