//! Collection parameters shared by every list endpoint: `limit`, `offset`, `count`,
//! `filters`, `sorters`; `count=true` sets `X-Total-Count`.

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::domain::query::{self, FilterFields, MAX_LIMIT};

/// Turns a filter of `and`-ed comparisons into conditions, each made by `leaf` from a field, an
/// operator and the values; `what` names the list in the refusal of `or` and `not`.
pub fn all_of<C>(
    expr: &query::Expr,
    what: &str,
    out: &mut Vec<C>,
    leaf: &impl Fn(&str, query::CmpOp, &[String]) -> Result<C, ApiError>,
) -> Result<(), ApiError> {
    match expr {
        query::Expr::And(a, b) => {
            all_of(a, what, out, leaf)?;
            all_of(b, what, out, leaf)
        }
        query::Expr::Or(..) | query::Expr::Not(_) => {
            Err(ApiError::bad_request(format!("{what} filters combine comparisons with 'and' only")))
        }
        query::Expr::Cmp { field, op, values } => {
            out.push(leaf(field, *op, values)?);
            Ok(())
        }
    }
}

/// One side of a time range a filter sets (`created ge "…"`, `at lt "…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    AtLeast(chrono::NaiveDateTime),
    Before(chrono::NaiveDateTime),
}

/// What `op` (ge, gt, le or lt) with an ISO-8601 `value` bounds.
pub fn time_bound(op: query::CmpOp, value: &str) -> Result<TimeBound, ApiError> {
    use query::CmpOp;
    let at = chrono::DateTime::parse_from_rfc3339(value).map(|t| t.naive_utc()).map_err(|_| {
        ApiError::bad_request(format!("'{value}' is not an ISO-8601 time such as 2026-01-01T00:00:00Z"))
    })?;
    let tick = chrono::TimeDelta::microseconds(1);
    Ok(match op {
        CmpOp::Gt => TimeBound::AtLeast(at + tick),
        CmpOp::Lt => TimeBound::Before(at),
        CmpOp::Le => TimeBound::Before(at + tick),
        _ => TimeBound::AtLeast(at),
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    offset: Option<String>,
    count: Option<String>,
    filters: Option<String>,
    sorters: Option<String>,
}

/// What a list endpoint supports.
pub struct ListSpec<T> {
    pub filters: FilterFields,
    pub sorters: &'static [&'static str],
    /// The text value of a field, for filters and sorting.
    pub field: fn(&T, &str) -> Option<String>,
}

fn parse_number(name: &str, text: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    let Some(text) = text else { return Ok(default) };
    match text.parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => {
            Err(ApiError::bad_request(format!("{name} must be a whole number from 0 to {max}, not '{text}'")))
        }
    }
}

/// The checked paging parameters.
pub struct Page {
    pub limit: u32,
    pub offset: u32,
    pub count: bool,
}

/// A `true`/`false` query parameter; absent is false.
pub fn parse_flag(name: &str, text: Option<&str>) -> Result<bool, ApiError> {
    match text {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!("{name} must be true or false, not '{other}'"))),
    }
}

impl ListParams {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = parse_number("limit", self.limit.as_deref(), MAX_LIMIT, MAX_LIMIT)?;
        let offset = parse_number("offset", self.offset.as_deref(), 0, i32::MAX.unsigned_abs())?;
        let count = parse_flag("count", self.count.as_deref())?;
        Ok(Page { limit, offset, count })
    }

    pub fn filters(&self) -> Option<&str> {
        self.filters.as_deref().filter(|t| !t.trim().is_empty())
    }

    pub fn sorters(&self) -> Option<&str> {
        self.sorters.as_deref()
    }

    /// Filters, sorts and pages `items`, then renders the page with `render`.
    pub fn respond<T, W: Serialize>(
        &self,
        mut items: Vec<T>,
        spec: &ListSpec<T>,
        render: impl Fn(T) -> W,
    ) -> Result<HttpResponse, ApiError> {
        let Page { limit, offset, count } = self.page()?;
        if let Some(text) = self.filters() {
            let expr = query::parse_filters(text, spec.filters).map_err(ApiError::bad_request)?;
            items.retain(|item| expr.matches(&|name| (spec.field)(item, name)));
        }
        if let Some(text) = &self.sorters {
            let sorters = query::parse_sorters(text, spec.sorters).map_err(ApiError::bad_request)?;
            items.sort_by(|a, b| {
                query::compare_by(a, b, &sorters, &|item, name| (spec.field)(item, name).unwrap_or_default())
            });
        }
        let total = items.len();
        let page: Vec<W> = items
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(render)
            .collect();
        Ok(page_response(page, count.then_some(total)))
    }
}

/// A JSON page, with `X-Total-Count` when the total was asked for.
pub fn page_response<W: Serialize>(page: Vec<W>, total: Option<usize>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(total) = total {
        response.insert_header(("X-Total-Count", total.to_string()));
    }
    response.json(page)
}
