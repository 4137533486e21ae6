//! Subscription filters: Jayway-style JSONPath, as SailPoint documents them. A subscription
//! receives an event when its filter selects at least one node of the event's input.

mod ast;
mod eval;
mod parser;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

pub use parser::ParseError;

/// A parsed filter; it keeps the text it was written as.
#[derive(Clone)]
pub struct Filter {
    source: String,
    path: ast::Path,
}

/// What `validate-filter` reports about a filter and a sample input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validation {
    /// The expression parses.
    pub valid_json_path: bool,
    /// Every `$` path it names selects something in the input (predicates aside).
    pub path_exists: bool,
    /// The filter matches the input.
    pub valid: bool,
}

impl Filter {
    pub fn parse(source: &str) -> Result<Self, ParseError> {
        let path = parser::parse(source)?;
        Ok(Self { source: source.to_owned(), path })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, input: &Value) -> bool {
        !eval::select(&self.path, input, input, eval::Mode::Apply).is_empty()
    }

    /// Every node the path selects.
    pub fn all<'a>(&self, input: &'a Value) -> Vec<&'a Value> {
        eval::select(&self.path, input, input, eval::Mode::Apply)
    }

    /// The first node the path selects, if any.
    pub fn first<'a>(&self, input: &'a Value) -> Option<&'a Value> {
        eval::select(&self.path, input, input, eval::Mode::Apply).into_iter().next()
    }

    pub fn validate(source: &str, input: &Value) -> Validation {
        let Ok(filter) = Self::parse(source) else {
            return Validation { valid_json_path: false, path_exists: false, valid: false };
        };
        let mut paths = Vec::new();
        eval::absolute_paths(&filter.path, &mut paths);
        let path_exists =
            paths.iter().all(|p| !eval::select(p, input, input, eval::Mode::IgnorePredicates).is_empty());
        Validation { valid_json_path: true, path_exists, valid: filter.matches(input) }
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter").field(&self.source).finish()
    }
}
