//! `GET /audit/v1`: the audit log, newest first, and the entries the changing handlers record.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::auth::Principal;
use super::error::ApiError;
use super::iso;
use super::list::{ListParams, TimeBound, all_of, page_response, time_bound};
use crate::domain::query::{self, CmpOp, Expr, FilterFields};
use crate::domain::scope;
use crate::store::audit::{self, Condition, Entry, Recorded};

const READ: &[&str] = &[scope::AUDIT_READ];

const FILTERS: FilterFields = &[
    ("actor", &[CmpOp::Eq]),
    ("action", &[CmpOp::Eq]),
    ("resourceType", &[CmpOp::Eq]),
    ("resourceId", &[CmpOp::Eq]),
    ("at", &[CmpOp::Ge, CmpOp::Gt, CmpOp::Le, CmpOp::Lt]),
];

/// An entry made by `auth`'s client; `before` and `after` are wire representations, which hold
/// no write-only secret.
pub(super) fn entry(
    actor: &str,
    action: &'static str,
    resource_type: &'static str,
    resource_id: String,
    before: Option<&impl Serialize>,
    after: Option<&impl Serialize>,
) -> Entry {
    Entry {
        actor: actor.to_owned(),
        action,
        resource_type,
        resource_id,
        before: before.and_then(|v| serde_json::to_value(v).ok()),
        after: after.and_then(|v| serde_json::to_value(v).ok()),
    }
}

/// `None` for a side of an entry that has no representation.
pub(super) const NOTHING: Option<&Value> = None;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryOut {
    id: String,
    at: String,
    actor: String,
    action: &'static str,
    resource_type: &'static str,
    resource_id: String,
    before: Option<Value>,
    after: Option<Value>,
}

impl From<Recorded> for EntryOut {
    fn from(r: Recorded) -> Self {
        Self {
            id: r.id,
            at: iso(r.at),
            actor: r.entry.actor,
            action: r.entry.action,
            resource_type: r.entry.resource_type,
            resource_id: r.entry.resource_id,
            before: r.entry.before,
            after: r.entry.after,
        }
    }
}

fn conditions(expr: &Expr, out: &mut Vec<Condition>) -> Result<(), ApiError> {
    all_of(expr, "audit", out, &|field, op, values| {
        let first = values.first().cloned().unwrap_or_default();
        Ok(match (field, op) {
            ("actor", _) => Condition::ActorIs(first),
            ("action", _) => Condition::ActionIs(first),
            ("resourceType", _) => Condition::ResourceTypeIs(first),
            ("resourceId", _) => Condition::ResourceIdIs(first),
            ("at", op) => match time_bound(op, &first)? {
                TimeBound::AtLeast(at) => Condition::AtLeast(at),
                TimeBound::Before(at) => Condition::Before(at),
            },
            (other, _) => {
                return Err(ApiError::bad_request(format!("filtering on '{other}' is not supported")));
            }
        })
    })
}

/// Entries newest first; filters `actor`, `action`, `resourceType`, `resourceId` (eq) and `at`
/// (ge, gt, le, lt), joined by `and`.
pub async fn list(
    auth: Principal,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(READ)?;
    let page = params.page()?;
    let mut conds = Vec::new();
    if let Some(text) = params.filters() {
        conditions(&query::parse_filters(text, FILTERS).map_err(ApiError::bad_request)?, &mut conds)?;
    }
    let (offset, limit) = (i64::from(page.offset), i64::from(page.limit));
    let (entries, total) = state.store.run(move |c| audit::list(c, &conds, offset, limit)).await?;
    let out: Vec<EntryOut> = entries.into_iter().map(EntryOut::from).collect();
    Ok(page_response(out, page.count.then_some(usize::try_from(total).unwrap_or(0))))
}
