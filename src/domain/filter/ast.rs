//! The syntax tree of a Jayway-style JSONPath expression.

use regex::Regex;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Path {
    pub root: Root,
    pub steps: Vec<Step>,
    /// A trailing function such as `.length()`.
    pub function: Option<Function>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `$`: the whole document.
    Document,
    /// `@`: the node a filter is testing.
    Current,
}

#[derive(Debug, Clone)]
pub enum Step {
    Child(Selector),
    /// `..`: the selector applied to the node and every node below it.
    Descendant(Selector),
}

#[derive(Debug, Clone)]
pub enum Selector {
    Name(String),
    Names(Vec<String>),
    Wildcard,
    Index(i64),
    Indexes(Vec<i64>),
    Slice { start: Option<i64>, end: Option<i64>, step: Option<i64> },
    Filter(Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Length,
}

#[derive(Debug, Clone)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// A bare path: true when it selects anything.
    Exists(Path),
    Compare(Operand, Op, Operand),
}

#[derive(Debug, Clone)]
pub enum Operand {
    Path(Path),
    Literal(Value),
    Regex(Regex),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
    In,
    Nin,
    SubsetOf,
    AnyOf,
    NoneOf,
    Size,
    Empty,
    Contains,
}

impl Path {
    /// A definite path selects at most one node (no wildcard, union, slice, filter or `..`).
    pub fn is_definite(&self) -> bool {
        self.steps.iter().all(|s| matches!(s, Step::Child(Selector::Name(_) | Selector::Index(_))))
    }
}
