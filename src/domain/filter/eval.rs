//! Evaluation with Jayway's semantics: a filter on an object tests the object itself, a filter
//! on an array tests each element, and an expression matches when it selects anything.

use std::borrow::Cow;

use serde_json::Value;

use super::ast::{Expr, Function, Op, Operand, Path, Root, Selector, Step};

/// Filters either apply their predicates or, to see which paths exist, let everything through.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    IgnorePredicates,
}

pub fn select<'a>(path: &Path, root: &'a Value, current: &'a Value, mode: Mode) -> Vec<&'a Value> {
    let start = match path.root {
        Root::Document => root,
        Root::Current => current,
    };
    let mut nodes = vec![start];
    for step in &path.steps {
        let mut next = Vec::new();
        for node in nodes {
            match step {
                Step::Child(selector) => apply(selector, node, root, mode, &mut next),
                Step::Descendant(selector) => {
                    let mut all = Vec::new();
                    descendants_or_self(node, &mut all);
                    for n in all {
                        // A filter reached by `..` tests objects; arrays are walked, not tested.
                        if matches!(selector, Selector::Filter(_)) {
                            if !n.is_array()
                                && (mode == Mode::IgnorePredicates || test_node(selector, n, root))
                            {
                                next.push(n);
                            }
                        } else {
                            apply(selector, n, root, mode, &mut next);
                        }
                    }
                }
            }
        }
        nodes = next;
        if nodes.is_empty() {
            break;
        }
    }
    nodes
}

fn test_node(selector: &Selector, node: &Value, root: &Value) -> bool {
    match selector {
        Selector::Filter(expr) => holds(expr, root, node),
        _ => true,
    }
}

fn descendants_or_self<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(node);
    match node {
        Value::Array(items) => items.iter().for_each(|v| descendants_or_self(v, out)),
        Value::Object(map) => map.values().for_each(|v| descendants_or_self(v, out)),
        _ => {}
    }
}

fn index(items: &[Value], i: i64) -> Option<&Value> {
    let len = i64::try_from(items.len()).ok()?;
    let i = if i < 0 { len + i } else { i };
    usize::try_from(i).ok().and_then(|i| items.get(i))
}

fn apply<'a>(selector: &Selector, node: &'a Value, root: &'a Value, mode: Mode, out: &mut Vec<&'a Value>) {
    match (selector, node) {
        (Selector::Name(name), Value::Object(map)) => out.extend(map.get(name)),
        (Selector::Names(names), Value::Object(map)) => out.extend(names.iter().filter_map(|n| map.get(n))),
        (Selector::Wildcard, Value::Object(map)) => out.extend(map.values()),
        (Selector::Wildcard, Value::Array(items)) => out.extend(items.iter()),
        (Selector::Index(i), Value::Array(items)) => out.extend(index(items, *i)),
        (Selector::Indexes(is), Value::Array(items)) => {
            out.extend(is.iter().filter_map(|i| index(items, *i)));
        }
        (Selector::Slice { start, end, step }, Value::Array(items)) => slice(items, *start, *end, *step, out),
        (Selector::Filter(expr), Value::Array(items)) => {
            out.extend(items.iter().filter(|item| mode == Mode::IgnorePredicates || holds(expr, root, item)));
        }
        (Selector::Filter(expr), Value::Object(_))
            if (mode == Mode::IgnorePredicates || holds(expr, root, node)) =>
        {
            out.push(node);
        }
        _ => {}
    }
}

fn slice<'a>(
    items: &'a [Value],
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
    out: &mut Vec<&'a Value>,
) {
    let Ok(len) = i64::try_from(items.len()) else { return };
    let step = step.unwrap_or(1);
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
    let push = |i: i64, out: &mut Vec<&'a Value>| {
        if let Some(v) = usize::try_from(i).ok().and_then(|i| items.get(i)) {
            out.push(v);
        }
    };
    if step > 0 {
        let (mut i, end) = (norm(start.unwrap_or(0)), norm(end.unwrap_or(len)));
        while i < end {
            push(i, out);
            i += step;
        }
    } else {
        let mut i = start.map_or(len - 1, |s| if s < 0 { len + s } else { s.min(len - 1) });
        let end = end.map_or(-1, |e| if e < 0 { (len + e).max(-1) } else { e });
        while i > end {
            push(i, out);
            i += step;
        }
    }
}

/// The value an operand stands for, or `None` when its path selects nothing.
fn resolve<'a>(operand: &'a Operand, root: &'a Value, current: &'a Value) -> Option<Cow<'a, Value>> {
    match operand {
        Operand::Literal(v) => Some(Cow::Borrowed(v)),
        Operand::Regex(_) => None,
        Operand::Path(path) => {
            let nodes = select(path, root, current, Mode::Apply);
            let value = if path.is_definite() {
                Cow::Borrowed(*nodes.first()?)
            } else {
                Cow::Owned(Value::Array(nodes.into_iter().cloned().collect()))
            };
            match path.function {
                None => Some(value),
                Some(Function::Length) => length(&value).map(|n| Cow::Owned(Value::from(n))),
            }
        }
    }
}

fn length(v: &Value) -> Option<usize> {
    match v {
        Value::String(s) => Some(s.chars().count()),
        Value::Array(a) => Some(a.len()),
        Value::Object(o) => Some(o.len()),
        _ => None,
    }
}

pub fn holds(expr: &Expr, root: &Value, current: &Value) -> bool {
    match expr {
        Expr::Or(a, b) => holds(a, root, current) || holds(b, root, current),
        Expr::And(a, b) => holds(a, root, current) && holds(b, root, current),
        Expr::Not(e) => !holds(e, root, current),
        Expr::Exists(path) => !select(path, root, current, Mode::Apply).is_empty(),
        Expr::Compare(left, op, right) => {
            let l = resolve(left, root, current);
            if let (Op::Matches, Operand::Regex(re)) = (op, right) {
                return l.as_deref().and_then(Value::as_str).is_some_and(|s| re.is_match(s));
            }
            compare(l.as_deref(), *op, resolve(right, root, current).as_deref())
        }
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn compare(left: Option<&Value>, op: Op, right: Option<&Value>) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let Some(r) = right else { return op == Op::Ne || op == Op::Nin };
    let Some(l) = left else { return op == Op::Ne || op == Op::Nin };
    let list = |v: &Value| v.as_array().cloned();
    match op {
        Op::Eq => equal(l, r),
        Op::Ne => !equal(l, r),
        Op::Lt => order(l, r) == Some(Less),
        Op::Le => matches!(order(l, r), Some(Less | Equal)),
        Op::Gt => order(l, r) == Some(Greater),
        Op::Ge => matches!(order(l, r), Some(Greater | Equal)),
        Op::Matches => false,
        Op::In => list(r).is_some_and(|rs| rs.iter().any(|x| equal(l, x))),
        Op::Nin => list(r).is_some_and(|rs| !rs.iter().any(|x| equal(l, x))),
        Op::SubsetOf => match (list(l), list(r)) {
            (Some(ls), Some(rs)) => ls.iter().all(|x| rs.iter().any(|y| equal(x, y))),
            _ => false,
        },
        Op::AnyOf => match (list(l), list(r)) {
            (Some(ls), Some(rs)) => ls.iter().any(|x| rs.iter().any(|y| equal(x, y))),
            _ => false,
        },
        Op::NoneOf => match (list(l), list(r)) {
            (Some(ls), Some(rs)) => !ls.iter().any(|x| rs.iter().any(|y| equal(x, y))),
            _ => false,
        },
        Op::Size => match (l, r.as_u64()) {
            (Value::String(_) | Value::Array(_), Some(n)) => length(l).is_some_and(|len| len as u64 == n),
            _ => false,
        },
        Op::Empty => match (l, r.as_bool()) {
            (Value::String(_) | Value::Array(_), Some(want)) => (length(l) == Some(0)) == want,
            _ => false,
        },
        Op::Contains => match (l, r) {
            (Value::String(s), Value::String(sub)) => s.contains(sub.as_str()),
            (Value::Array(items), _) => items.iter().any(|x| equal(x, r)),
            _ => false,
        },
    }
}

/// Every `$`-rooted path inside the filters of `path`.
pub fn absolute_paths<'a>(path: &'a Path, out: &mut Vec<&'a Path>) {
    fn in_expr<'a>(expr: &'a Expr, out: &mut Vec<&'a Path>) {
        match expr {
            Expr::Or(a, b) | Expr::And(a, b) => {
                in_expr(a, out);
                in_expr(b, out);
            }
            Expr::Not(e) => in_expr(e, out),
            Expr::Exists(p) => absolute_paths(p, out),
            Expr::Compare(l, _, r) => {
                for operand in [l, r] {
                    if let Operand::Path(p) = operand {
                        absolute_paths(p, out);
                    }
                }
            }
        }
    }
    if path.root == Root::Document {
        out.push(path);
    }
    for step in &path.steps {
        if let Step::Child(Selector::Filter(e)) | Step::Descendant(Selector::Filter(e)) = step {
            in_expr(e, out);
        }
    }
}
