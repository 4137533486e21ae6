//! SailPoint's collection parameters: SCIM-like `filters`, `sorters`, `limit`, `offset`.
//! Each list endpoint declares which fields and operators it supports; anything else is refused.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Co,
    Sw,
    In,
    Pr,
    Isnull,
}

impl CmpOp {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            "co" => Self::Co,
            "sw" => Self::Sw,
            "in" => Self::In,
            "pr" => Self::Pr,
            "isnull" => Self::Isnull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
            Self::Co => "co",
            Self::Sw => "sw",
            Self::In => "in",
            Self::Pr => "pr",
            Self::Isnull => "isnull",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp { field: String, op: CmpOp, values: Vec<String> },
}

/// The fields a list endpoint can filter on, each with its operators.
pub type FilterFields = &'static [(&'static str, &'static [CmpOp])];

pub fn parse_filters(text: &str, allowed: FilterFields) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    let mut p = FilterParser { tokens, pos: 0, allowed };
    let expr = p.or()?;
    if p.pos != p.tokens.len() {
        return Err(format!("unexpected '{}' in filters", p.tokens[p.pos].text()));
    }
    Ok(expr)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    Comma,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Self::Word(w) => w.clone(),
            Self::Str(s) => format!("\"{s}\""),
            Self::Open => "(".into(),
            Self::Close => ")".into(),
            Self::Comma => ",".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string in filters".into()),
                        Some('"') => break,
                        Some('\\') => s.push(chars.next().ok_or("unterminated escape in filters")?),
                        Some(c) => s.push(c),
                    }
                }
                tokens.push(Token::Str(s));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '"') {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(w));
            }
        }
    }
    if tokens.is_empty() {
        return Err("filters is empty".into());
    }
    Ok(tokens)
}

struct FilterParser {
    tokens: Vec<Token>,
    pos: usize,
    allowed: FilterFields,
}

impl FilterParser {
    fn word_is(&self, w: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(x)) if x == w)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.word_is("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.word_is("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.word_is("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        if self.tokens.get(self.pos) == Some(&Token::Open) {
            self.pos += 1;
            let e = self.or()?;
            if self.tokens.get(self.pos) != Some(&Token::Close) {
                return Err("missing ')' in filters".into());
            }
            self.pos += 1;
            return Ok(e);
        }
        self.comparison()
    }

    fn value(&mut self) -> Result<String, String> {
        match self.tokens.get(self.pos) {
            Some(Token::Str(s)) => {
                self.pos += 1;
                Ok(s.clone())
            }
            Some(Token::Word(w)) if w.parse::<f64>().is_ok() || w == "true" || w == "false" => {
                self.pos += 1;
                Ok(w.clone())
            }
            Some(t) => Err(format!("expected a quoted value in filters, found '{}'", t.text())),
            None => Err("expected a value at the end of filters".into()),
        }
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let Some(Token::Word(field)) = self.tokens.get(self.pos).cloned() else {
            return Err("expected a field name in filters".into());
        };
        self.pos += 1;
        let Some(Token::Word(op_word)) = self.tokens.get(self.pos).cloned() else {
            return Err(format!("expected an operator after '{field}' in filters"));
        };
        self.pos += 1;
        let op = CmpOp::parse(&op_word).ok_or_else(|| format!("unknown filter operator '{op_word}'"))?;
        let Some((_, ops)) = self.allowed.iter().find(|(f, _)| *f == field) else {
            let names: Vec<&str> = self.allowed.iter().map(|(f, _)| *f).collect();
            return Err(format!(
                "filtering on '{field}' is not supported; supported fields: {}",
                names.join(", ")
            ));
        };
        if !ops.contains(&op) {
            let names: Vec<&str> = ops.iter().map(|o| o.as_str()).collect();
            return Err(format!(
                "operator '{op_word}' is not supported for '{field}'; supported: {}",
                names.join(", ")
            ));
        }
        let values = match op {
            CmpOp::Pr | CmpOp::Isnull => Vec::new(),
            CmpOp::In => {
                if self.tokens.get(self.pos) != Some(&Token::Open) {
                    return Err(format!("'{field} in' needs a list such as (\"a\", \"b\")"));
                }
                self.pos += 1;
                let mut values = vec![self.value()?];
                while self.tokens.get(self.pos) == Some(&Token::Comma) {
                    self.pos += 1;
                    values.push(self.value()?);
                }
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return Err("missing ')' after an 'in' list".into());
                }
                self.pos += 1;
                values
            }
            _ => vec![self.value()?],
        };
        Ok(Expr::Cmp { field, op, values })
    }
}

impl Expr {
    /// Evaluates against a record; `field` answers a field's value (`None` when it is unset).
    /// Comparisons ignore case, as SailPoint's do.
    pub fn matches(&self, field: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Self::And(a, b) => a.matches(field) && b.matches(field),
            Self::Or(a, b) => a.matches(field) || b.matches(field),
            Self::Not(e) => !e.matches(field),
            Self::Cmp { field: name, op, values } => {
                let actual = field(name).map(|v| v.to_lowercase());
                let first = values.first().map(|v| v.to_lowercase()).unwrap_or_default();
                match (op, actual) {
                    (CmpOp::Pr, a) => a.is_some(),
                    (CmpOp::Isnull, a) => a.is_none(),
                    (_, None) => *op == CmpOp::Ne,
                    (CmpOp::Eq, Some(a)) => a == first,
                    (CmpOp::Ne, Some(a)) => a != first,
                    (CmpOp::Gt, Some(a)) => a > first,
                    (CmpOp::Ge, Some(a)) => a >= first,
                    (CmpOp::Lt, Some(a)) => a < first,
                    (CmpOp::Le, Some(a)) => a <= first,
                    (CmpOp::Co, Some(a)) => a.contains(&first),
                    (CmpOp::Sw, Some(a)) => a.starts_with(&first),
                    (CmpOp::In, Some(a)) => values.iter().any(|v| v.to_lowercase() == a),
                }
            }
        }
    }
}

/// One `sorters` key: a field and its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sorter {
    pub field: &'static str,
    pub descending: bool,
}

pub fn parse_sorters(text: &str, allowed: &'static [&'static str]) -> Result<Vec<Sorter>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (descending, name) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s.strip_prefix('+').unwrap_or(s)),
            };
            let field = allowed.iter().find(|f| **f == name).ok_or_else(|| {
                format!("sorting on '{name}' is not supported; supported: {}", allowed.join(", "))
            })?;
            Ok(Sorter { field, descending })
        })
        .collect()
}

/// Orders two records by a list of sorters; `key` answers a field's sort value.
pub fn compare_by<T>(a: &T, b: &T, sorters: &[Sorter], key: &dyn Fn(&T, &str) -> String) -> Ordering {
    for s in sorters {
        let o = key(a, s.field).to_lowercase().cmp(&key(b, s.field).to_lowercase());
        let o = if s.descending { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

pub const MAX_LIMIT: u32 = 250;

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: FilterFields = &[("id", &[CmpOp::Eq, CmpOp::Ge, CmpOp::Le]), ("type", &[CmpOp::Eq])];

    fn record(field: &str) -> Option<String> {
        match field {
            "id" => Some("idn:Identity-Created".into()),
            "type" => Some("FIRE_AND_FORGET".into()),
            _ => None,
        }
    }

    #[test]
    fn eq_ignores_case() {
        assert!(parse_filters(r#"id eq "idn:identity-created""#, FIELDS).unwrap().matches(&record));
    }

    #[test]
    fn composite_operators_follow_precedence() {
        let e = parse_filters(r#"id eq "x" or type eq "fire_and_forget" and not id eq "y""#, FIELDS).unwrap();
        assert!(e.matches(&record));
        let e = parse_filters(r#"(id eq "x" or type eq "fire_and_forget") and id eq "y""#, FIELDS).unwrap();
        assert!(!e.matches(&record));
    }

    #[test]
    fn unknown_fields_and_operators_are_refused_by_name() {
        assert!(parse_filters(r#"name eq "x""#, FIELDS).unwrap_err().contains("'name'"));
        assert!(parse_filters(r#"type le "x""#, FIELDS).unwrap_err().contains("'le'"));
        assert!(parse_filters(r"id eq", FIELDS).is_err());
        assert!(parse_filters(r#"id eq "x" junk"#, FIELDS).is_err());
    }

    #[test]
    fn sorters_take_a_leading_minus_for_descending() {
        let s = parse_sorters("name,-id", &["id", "name"]).unwrap();
        assert_eq!(
            s,
            vec![Sorter { field: "name", descending: false }, Sorter { field: "id", descending: true }]
        );
        assert!(parse_sorters("created", &["id"]).is_err());
    }
}
