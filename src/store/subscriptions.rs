//! Subscription queries, their signing secrets, and the per-trigger subscription limit.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use super::crypto;
use super::revisions::{self, Cached};
use super::schema::{subscription_flow, subscription_secrets, subscriptions, triggers};
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::duration::IsoDuration;
use crate::domain::filter::Filter;
use crate::domain::flow::{Brake, Limits};
use crate::domain::ids::{SubscriptionId, TriggerId};
use crate::domain::secret::{Secret, new_signing_secret};
use crate::domain::subscription::{
    ChainTarget, ClientCertificate, DispatchMode, HttpAuth, HttpTarget, Ordering, Subscription,
    SubscriptionSpec, Target,
};
use crate::domain::trigger::TriggerType;

/// The sealed columns ([`crypto`]).
const BASIC_PASSWORD: &str = "subscriptions.basic_password";
const BEARER_TOKEN: &str = "subscriptions.bearer_token";
const CLIENT_KEY: &str = "subscriptions.client_key";
const SIGNING_SECRET: &str = "subscription_secrets.secret";

#[derive(Queryable, Insertable, AsChangeset)]
#[diesel(table_name = subscriptions, treat_none_as_null = true)]
struct SubscriptionRow {
    id: String,
    trigger_id: String,
    name: String,
    description: Option<String>,
    kind: String,
    response_deadline: String,
    url: String,
    dispatch_mode: String,
    auth_type: String,
    basic_user: Option<String>,
    basic_password: Option<String>,
    bearer_token: Option<String>,
    enabled: bool,
    filter: Option<String>,
    created: NaiveDateTime,
    updated: NaiveDateTime,
    disabled_reason: Option<String>,
    ordering: String,
    ordering_key: Option<String>,
    chain_trigger_id: Option<String>,
    chain_input_path: Option<String>,
    rate_limit: Option<f64>,
    max_in_flight: Option<i32>,
    client_certificate: Option<String>,
    client_key: Option<String>,
}

impl SubscriptionRow {
    fn new(
        id: &SubscriptionId,
        trigger_id: &TriggerId,
        spec: &SubscriptionSpec,
        created: NaiveDateTime,
        updated: NaiveDateTime,
    ) -> Result<Self, StoreError> {
        let (kind, url, dispatch_mode, auth, chain) = match &spec.target {
            Target::Http(http) => ("HTTP", http.url.clone(), http.dispatch_mode, &http.auth, None),
            Target::Trigger(chain) => {
                ("TRIGGER", String::new(), DispatchMode::Sync, &HttpAuth::None, Some(chain))
            }
        };
        let row = id.as_str();
        let certificate = spec.target.http().and_then(|h| h.client_certificate.as_ref());
        let client_key =
            certificate.map(|c| crypto::seal(CLIENT_KEY, row, c.private_key_pem.expose())).transpose()?;
        let (auth_type, basic_user, basic_password, bearer_token) = match auth {
            HttpAuth::None => ("NO_AUTH", None, None, None),
            HttpAuth::Basic { user, password } => (
                "BASIC_AUTH",
                Some(user.clone()),
                Some(crypto::seal(BASIC_PASSWORD, row, password.expose())?),
                None,
            ),
            HttpAuth::Bearer { token } => {
                ("BEARER_TOKEN", None, None, Some(crypto::seal(BEARER_TOKEN, row, token.expose())?))
            }
        };
        Ok(Self {
            id: id.to_string(),
            trigger_id: trigger_id.to_string(),
            name: spec.name.clone(),
            description: spec.description.clone(),
            kind: kind.to_owned(),
            response_deadline: spec.response_deadline.to_string(),
            url,
            dispatch_mode: dispatch_mode.as_str().to_owned(),
            auth_type: auth_type.to_owned(),
            basic_user,
            basic_password,
            bearer_token,
            enabled: spec.enabled,
            filter: spec.filter.as_ref().map(|f| f.as_str().to_owned()),
            created,
            updated,
            disabled_reason: None,
            ordering: spec.ordering.as_str().to_owned(),
            ordering_key: match &spec.ordering {
                Ordering::Key(path) => Some(path.as_str().to_owned()),
                Ordering::None | Ordering::Subscription => None,
            },
            chain_trigger_id: chain.map(|c| c.trigger_id.to_string()),
            chain_input_path: chain.and_then(|c| c.input_path.as_ref()).map(|p| p.as_str().to_owned()),
            rate_limit: spec.limits.rate,
            max_in_flight: spec.limits.max_in_flight.map(|m| i32::try_from(m).unwrap_or(i32::MAX)),
            client_certificate: certificate.map(|c| c.certificate_pem.clone()),
            client_key,
        })
    }

    fn into_domain(self, trigger_name: String, brake: Option<Brake>) -> Result<Subscription, StoreError> {
        let corrupt =
            |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("subscriptions.{what}: {e}"));
        let opened = |column: &str, stored: Option<&str>| {
            crypto::open(column, &self.id, stored.unwrap_or_default()).map(Secret::new)
        };
        let auth = match self.auth_type.as_str() {
            "NO_AUTH" => HttpAuth::None,
            "BASIC_AUTH" => HttpAuth::Basic {
                password: opened(BASIC_PASSWORD, self.basic_password.as_deref())?,
                user: self.basic_user.clone().unwrap_or_default(),
            },
            "BEARER_TOKEN" => HttpAuth::Bearer { token: opened(BEARER_TOKEN, self.bearer_token.as_deref())? },
            other => return Err(corrupt("auth_type", &other)),
        };
        let client_certificate = match (&self.client_certificate, &self.client_key) {
            (Some(certificate), Some(_)) => Some(ClientCertificate {
                certificate_pem: certificate.clone(),
                private_key_pem: opened(CLIENT_KEY, self.client_key.as_deref())?,
            }),
            _ => None,
        };
        Ok(Subscription {
            id: self.id.parse().map_err(|e| corrupt("id", &e))?,
            trigger_id: self.trigger_id.parse().map_err(|e| corrupt("trigger_id", &e))?,
            trigger_name,
            spec: SubscriptionSpec {
                name: self.name,
                description: self.description,
                response_deadline: self
                    .response_deadline
                    .parse::<IsoDuration>()
                    .map_err(|e| corrupt("response_deadline", &e))?,
                target: match (self.kind.as_str(), self.chain_trigger_id) {
                    ("TRIGGER", Some(trigger)) => Target::Trigger(ChainTarget {
                        trigger_id: trigger.parse().map_err(|e| corrupt("chain_trigger_id", &e))?,
                        input_path: self
                            .chain_input_path
                            .as_deref()
                            .map(Filter::parse)
                            .transpose()
                            .map_err(|e| corrupt("chain_input_path", &e))?,
                    }),
                    ("HTTP", _) => Target::Http(HttpTarget {
                        url: self.url,
                        dispatch_mode: DispatchMode::parse(&self.dispatch_mode)
                            .ok_or_else(|| corrupt("dispatch_mode", &self.dispatch_mode))?,
                        auth,
                        client_certificate,
                    }),
                    (other, _) => return Err(corrupt("type", &other)),
                },
                enabled: self.enabled,
                filter: self
                    .filter
                    .as_deref()
                    .map(Filter::parse)
                    .transpose()
                    .map_err(|e| corrupt("filter", &e))?,
                ordering: match (self.ordering.as_str(), self.ordering_key.as_deref()) {
                    ("NONE", _) => Ordering::None,
                    ("SUBSCRIPTION", _) => Ordering::Subscription,
                    ("KEY", Some(key)) => {
                        Ordering::Key(Filter::parse(key).map_err(|e| corrupt("ordering_key", &e))?)
                    }
                    (other, _) => return Err(corrupt("ordering", &other)),
                },
                limits: Limits {
                    rate: self.rate_limit,
                    max_in_flight: self.max_in_flight.and_then(|m| u32::try_from(m).ok()),
                },
            },
            created: self.created,
            updated: self.updated,
            disabled_reason: self.disabled_reason,
            brake,
        })
    }
}

type Joined = (SubscriptionRow, String, Option<f64>, Option<NaiveDateTime>);

/// Subscriptions with their trigger's name and their brake.
macro_rules! joined {
    () => {
        subscriptions::table.inner_join(triggers::table).left_join(subscription_flow::table).select((
            subscriptions::all_columns,
            triggers::name,
            subscription_flow::braked_rate.nullable(),
            subscription_flow::braked_at.nullable(),
        ))
    };
}

fn from_joined((row, trigger_name, braked_rate, braked_at): Joined) -> Result<Subscription, StoreError> {
    let brake = Brake::stored(braked_rate, braked_at);
    row.into_domain(trigger_name, brake)
}

pub fn list(conn: &mut AnyConnection) -> Result<Vec<Subscription>, StoreError> {
    joined!()
        .order((subscriptions::created, subscriptions::id))
        .load::<Joined>(conn)?
        .into_iter()
        .map(from_joined)
        .collect()
}

pub fn get(conn: &mut AnyConnection, id: &SubscriptionId) -> Result<Subscription, StoreError> {
    from_joined(joined!().filter(subscriptions::id.eq(id.as_str())).first::<Joined>(conn)?)
}

/// Locks the trigger row on PostgreSQL, so concurrent creates cannot both pass the limit
/// (SQLite's `BEGIN IMMEDIATE` already serialises writers).
fn lock_trigger(conn: &mut AnyConnection, id: &TriggerId) -> Result<Option<(String, String)>, StoreError> {
    let query = triggers::table.find(id.as_str()).select((triggers::name, triggers::kind));
    let found = match conn {
        AnyConnection::Postgresql(pg) => query.for_update().first(pg).optional()?,
        AnyConnection::Sqlite(sqlite) => query.first(sqlite).optional()?,
    };
    Ok(found)
}

fn trigger_type(stored: &str) -> Result<TriggerType, StoreError> {
    TriggerType::parse(stored).ok_or_else(|| StoreError::Corrupt(format!("triggers.type: '{stored}'")))
}

/// Creates a subscription and its first signing secret, within the trigger's limit.
pub fn insert(
    conn: &mut AnyConnection,
    trigger_id: &TriggerId,
    spec: &SubscriptionSpec,
    now: NaiveDateTime,
) -> Result<(Subscription, Secret), StoreError> {
    write_transaction(conn, |conn| {
        let Some((trigger_name, kind)) = lock_trigger(conn, trigger_id)? else {
            return Err(StoreError::Invalid(format!("triggerId '{trigger_id}' does not name a trigger")));
        };
        let kind = trigger_type(&kind)?;
        let count = count_for_trigger(conn, trigger_id)?;
        let max = kind.max_subscriptions();
        if usize::try_from(count).unwrap_or(usize::MAX) >= max {
            return Err(StoreError::Invalid(format!(
                "trigger '{trigger_id}' is {} and already has {count} subscription(s); the limit is {max}",
                kind.as_str()
            )));
        }
        super::chains::check(conn, trigger_id, kind, spec, None)?;
        let id = SubscriptionId::generate();
        let row = SubscriptionRow::new(&id, trigger_id, spec, now, now)?;
        diesel::insert_into(subscriptions::table).values(&row).execute(conn)?;
        let secret = new_signing_secret();
        insert_secret(conn, &id, &secret, now)?;
        revisions::changed(conn, Cached::Subscriptions)?;
        Ok((row.into_domain(trigger_name, None)?, secret))
    })
}

fn insert_secret(
    conn: &mut AnyConnection,
    id: &SubscriptionId,
    secret: &Secret,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let row = uuid::Uuid::now_v7().to_string();
    let sealed = crypto::seal(SIGNING_SECRET, &row, secret.expose())?;
    diesel::insert_into(subscription_secrets::table)
        .values((
            subscription_secrets::id.eq(&row),
            subscription_secrets::subscription_id.eq(id.as_str()),
            subscription_secrets::secret.eq(&sealed),
            subscription_secrets::created.eq(now),
            subscription_secrets::expires_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Replaces a subscription with what `change` makes of the current one, in one transaction.
pub fn update(
    conn: &mut AnyConnection,
    id: &SubscriptionId,
    now: NaiveDateTime,
    change: impl FnOnce(&Subscription) -> Result<SubscriptionSpec, StoreError>,
) -> Result<Subscription, StoreError> {
    write_transaction(conn, |conn| {
        // Concurrent updates queue here instead of overwriting each other.
        lock(conn, id)?;
        let current = get(conn, id)?;
        let spec = change(&current)?;
        let kind: String =
            triggers::table.find(current.trigger_id.as_str()).select(triggers::kind).first(conn)?;
        super::chains::check(conn, &current.trigger_id, trigger_type(&kind)?, &spec, Some(id))?;
        let mut row = SubscriptionRow::new(id, &current.trigger_id, &spec, current.created, now)?;
        // The reason a subscription was switched off stays while it stays off; switched on, it
        // starts with a clean bill of health.
        row.disabled_reason = if spec.enabled { None } else { current.disabled_reason.clone() };
        if spec.enabled && !current.spec.enabled {
            super::health::forget(conn, id)?;
        }
        diesel::update(subscriptions::table.find(id.as_str())).set(&row).execute(conn)?;
        revisions::changed(conn, Cached::Subscriptions)?;
        row.into_domain(current.trigger_name, current.brake)
    })
}

/// How many subscriptions `trigger` has.
pub fn count_for_trigger(conn: &mut AnyConnection, trigger: &TriggerId) -> Result<i64, StoreError> {
    Ok(subscriptions::table
        .filter(subscriptions::trigger_id.eq(trigger.as_str()))
        .count()
        .get_result(conn)?)
}

/// Every subscription of a trigger, enabled or not (test invocations reach them all).
pub fn all_for_trigger(
    conn: &mut AnyConnection,
    trigger: &TriggerId,
) -> Result<Vec<Subscription>, StoreError> {
    joined!()
        .filter(subscriptions::trigger_id.eq(trigger.as_str()))
        .order((subscriptions::created, subscriptions::id))
        .load::<Joined>(conn)?
        .into_iter()
        .map(from_joined)
        .collect()
}

/// Locks a subscription's row until the transaction ends (PostgreSQL; SQLite's writer
/// serialises writes anyway).
pub(super) fn lock(conn: &mut AnyConnection, id: &SubscriptionId) -> Result<(), StoreError> {
    if let AnyConnection::Postgresql(pg) = conn {
        subscriptions::table
            .find(id.as_str())
            .select(subscriptions::id)
            .for_update()
            .first::<String>(pg)
            .optional()?;
    }
    Ok(())
}

/// Per subscription, its signing secrets, each with the end of its rotation overlap (`None` for
/// the current one).
pub type SecretsOf = std::collections::HashMap<String, Vec<(Secret, Option<NaiveDateTime>)>>;

/// The signing secrets of several subscriptions at `now`, current secret first.
pub fn signing_secrets_of(
    conn: &mut AnyConnection,
    ids: &[&str],
    now: NaiveDateTime,
) -> Result<SecretsOf, StoreError> {
    let mut rows: Vec<(String, String, String, Option<NaiveDateTime>)> = subscription_secrets::table
        .filter(subscription_secrets::subscription_id.eq_any(ids))
        .filter(subscription_secrets::expires_at.is_null().or(subscription_secrets::expires_at.gt(now)))
        .select((
            subscription_secrets::id,
            subscription_secrets::subscription_id,
            subscription_secrets::secret,
            subscription_secrets::expires_at,
        ))
        .load(conn)?;
    rows.sort_by(|a, b| current_first(a.3, b.3));
    let mut out: std::collections::HashMap<String, Vec<_>> = std::collections::HashMap::new();
    for (row, sub, secret, expires_at) in rows {
        let secret = crypto::open(SIGNING_SECRET, &row, &secret)?;
        out.entry(sub).or_default().push((Secret::new(secret), expires_at));
    }
    Ok(out)
}

/// Orders secrets: the current one (no expiry) first, then by how long they have left.
fn current_first(a: Option<NaiveDateTime>, b: Option<NaiveDateTime>) -> std::cmp::Ordering {
    match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x),
    }
}

/// Subscriptions by id, for the delivery worker.
pub fn by_ids(conn: &mut AnyConnection, ids: &[&str]) -> Result<Vec<Subscription>, StoreError> {
    joined!()
        .filter(subscriptions::id.eq_any(ids))
        .load::<Joined>(conn)?
        .into_iter()
        .map(from_joined)
        .collect()
}

pub fn delete(conn: &mut AnyConnection, id: &SubscriptionId) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let deleted = diesel::delete(subscriptions::table.find(id.as_str())).execute(conn)?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        revisions::changed(conn, Cached::Subscriptions)
    })
}

/// Issues a new signing secret; the current ones stay valid for `overlap`, older ones end now.
pub fn rotate_secret(
    conn: &mut AnyConnection,
    id: &SubscriptionId,
    now: NaiveDateTime,
    overlap: TimeDelta,
) -> Result<Secret, StoreError> {
    write_transaction(conn, |conn| {
        get(conn, id)?;
        let mine = subscription_secrets::subscription_id.eq(id.as_str());
        diesel::update(
            subscription_secrets::table.filter(mine).filter(subscription_secrets::expires_at.gt(now)),
        )
        .set(subscription_secrets::expires_at.eq(now))
        .execute(conn)?;
        diesel::update(
            subscription_secrets::table.filter(mine).filter(subscription_secrets::expires_at.is_null()),
        )
        .set(subscription_secrets::expires_at.eq(now + overlap))
        .execute(conn)?;
        let secret = new_signing_secret();
        insert_secret(conn, id, &secret, now)?;
        revisions::changed(conn, Cached::Subscriptions)?;
        Ok(secret)
    })
}

/// The secrets a delivery is signed with at `now`: the current one first, then those still
/// in their rotation overlap.
pub fn signing_secrets(
    conn: &mut AnyConnection,
    id: &SubscriptionId,
    now: NaiveDateTime,
) -> Result<Vec<Secret>, StoreError> {
    let mut found = signing_secrets_of(conn, &[id.as_str()], now)?;
    Ok(found.remove(id.as_str()).unwrap_or_default().into_iter().map(|(secret, _)| secret).collect())
}
