//! A recursive-descent parser for Jayway-style JSONPath.

use regex::RegexBuilder;
use serde_json::Value;

use super::ast::{Expr, Function, Op, Operand, Path, Root, Selector, Step};

/// Why an expression is not valid JSONPath, with the character offset where parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath at character {position}: {message}")]
pub struct ParseError {
    pub position: usize,
    pub message: String,
}

const MAX_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

pub fn parse(text: &str) -> Result<Path, ParseError> {
    if text.len() > MAX_LEN {
        return Err(ParseError { position: MAX_LEN, message: format!("longer than {MAX_LEN} bytes") });
    }
    let mut p = Parser { chars: text.chars().collect(), pos: 0, depth: 0 };
    p.skip_ws();
    let path = match p.peek() {
        Some('$') => p.path()?,
        // Jayway reads `[?(...)]` and `.a` as if they started with `$`.
        Some('[' | '.') => p.path_steps(Root::Document)?,
        _ => return Err(p.error("a path must start with '$'")),
    };
    p.skip_ws();
    if p.pos < p.chars.len() {
        return Err(p.error("unexpected text after the path"));
    }
    Ok(path)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError { position: self.pos, message: message.into() }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ParseError> {
        if self.eat(c) { Ok(()) } else { Err(self.error(format!("expected '{c}'"))) }
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars().enumerate().all(|(i, c)| self.peek_at(i) == Some(c))
    }

    fn path(&mut self) -> Result<Path, ParseError> {
        let root = match self.peek() {
            Some('$') => Root::Document,
            Some('@') => Root::Current,
            _ => return Err(self.error("expected '$' or '@'")),
        };
        self.pos += 1;
        self.path_steps(root)
    }

    fn path_steps(&mut self, root: Root) -> Result<Path, ParseError> {
        let mut steps = Vec::new();
        loop {
            if self.starts_with("..") {
                self.pos += 2;
                let selector = match self.peek() {
                    Some('*') => {
                        self.pos += 1;
                        Selector::Wildcard
                    }
                    Some('[') => self.bracket()?,
                    _ => Selector::Name(self.name()?),
                };
                steps.push(Step::Descendant(selector));
            } else if self.eat('.') {
                if self.eat('*') {
                    steps.push(Step::Child(Selector::Wildcard));
                    continue;
                }
                let name = self.name()?;
                if self.peek() == Some('(') {
                    let function = self.function(&name)?;
                    return Ok(Path { root, steps, function: Some(function) });
                }
                steps.push(Step::Child(Selector::Name(name)));
            } else if self.peek() == Some('[') {
                steps.push(Step::Child(self.bracket()?));
            } else {
                return Ok(Path { root, steps, function: None });
            }
        }
    }

    fn function(&mut self, name: &str) -> Result<Function, ParseError> {
        self.expect('(')?;
        self.skip_ws();
        self.expect(')')?;
        match name {
            "length" | "size" => Ok(Function::Length),
            other => Err(self.error(format!("unknown function '{other}()'; supported: length()"))),
        }
    }

    fn name(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '$')) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("expected a property name"));
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn bracket(&mut self) -> Result<Selector, ParseError> {
        self.expect('[')?;
        self.skip_ws();
        let selector = match self.peek() {
            Some('*') => {
                self.pos += 1;
                Selector::Wildcard
            }
            Some('?') => {
                self.pos += 1;
                self.skip_ws();
                self.expect('(')?;
                let expr = self.nested(Self::or_expr)?;
                self.skip_ws();
                self.expect(')')?;
                Selector::Filter(Box::new(expr))
            }
            Some('\'' | '"') => {
                let mut names = vec![self.string()?];
                self.skip_ws();
                while self.eat(',') {
                    self.skip_ws();
                    names.push(self.string()?);
                    self.skip_ws();
                }
                if names.len() == 1 { Selector::Name(names.remove(0)) } else { Selector::Names(names) }
            }
            Some(c) if c == '-' || c == ':' || c.is_ascii_digit() => self.index_or_slice()?,
            _ => return Err(self.error("expected '*', '?(', a quoted name, an index or a slice")),
        };
        self.skip_ws();
        self.expect(']')?;
        Ok(selector)
    }

    fn index_or_slice(&mut self) -> Result<Selector, ParseError> {
        let first = self.optional_int()?;
        self.skip_ws();
        if self.peek() == Some(':') {
            self.pos += 1;
            self.skip_ws();
            let end = self.optional_int()?;
            self.skip_ws();
            let mut step = None;
            if self.eat(':') {
                self.skip_ws();
                step = self.optional_int()?;
                if step == Some(0) {
                    return Err(self.error("a slice step cannot be 0"));
                }
            }
            return Ok(Selector::Slice { start: first, end, step });
        }
        let first = first.ok_or_else(|| self.error("expected an index"))?;
        let mut indexes = vec![first];
        while self.eat(',') {
            self.skip_ws();
            indexes.push(self.optional_int()?.ok_or_else(|| self.error("expected an index"))?);
            self.skip_ws();
        }
        Ok(if indexes.len() == 1 { Selector::Index(first) } else { Selector::Indexes(indexes) })
    }

    fn optional_int(&mut self) -> Result<Option<i64>, ParseError> {
        let start = self.pos;
        self.eat('-');
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            return Ok(None);
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        text.parse().map(Some).map_err(|_| self.error(format!("'{text}' is not an index")))
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let quote = self.peek().ok_or_else(|| self.error("expected a string"))?;
        if quote != '\'' && quote != '"' {
            return Err(self.error("expected a quoted string"));
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    let c = self.peek().ok_or_else(|| self.error("unterminated escape"))?;
                    out.push(match c {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn nested<T>(&mut self, f: fn(&mut Self) -> Result<T, ParseError>) -> Result<T, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn or_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and_expr()?;
        loop {
            self.skip_ws();
            if !self.starts_with("||") {
                return Ok(left);
            }
            self.pos += 2;
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            self.skip_ws();
            if !self.starts_with("&&") {
                return Ok(left);
            }
            self.pos += 2;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.skip_ws();
        if self.peek() == Some('!') && self.peek_at(1) != Some('=') {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.nested(Self::unary)?)));
        }
        if self.eat('(') {
            let expr = self.nested(Self::or_expr)?;
            self.skip_ws();
            self.expect(')')?;
            return Ok(expr);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.operand()?;
        self.skip_ws();
        let Some(op) = self.operator()? else {
            return match left {
                Operand::Path(path) => Ok(Expr::Exists(path)),
                _ => Err(self.error("expected a comparison operator after the value")),
            };
        };
        self.skip_ws();
        let right = if op == Op::Matches { self.regex()? } else { self.operand()? };
        Ok(Expr::Compare(left, op, right))
    }

    fn operator(&mut self) -> Result<Option<Op>, ParseError> {
        for (text, op) in
            [("==", Op::Eq), ("!=", Op::Ne), ("<=", Op::Le), (">=", Op::Ge), ("=~", Op::Matches)]
        {
            if self.starts_with(text) {
                self.pos += 2;
                return Ok(Some(op));
            }
        }
        for (c, op) in [('<', Op::Lt), ('>', Op::Gt)] {
            if self.eat(c) {
                return Ok(Some(op));
            }
        }
        if !self.peek().is_some_and(char::is_alphabetic) {
            return Ok(None);
        }
        let start = self.pos;
        let word = self.name()?;
        let op = match word.as_str() {
            "in" => Op::In,
            "nin" => Op::Nin,
            "subsetof" => Op::SubsetOf,
            "anyof" => Op::AnyOf,
            "noneof" => Op::NoneOf,
            "size" => Op::Size,
            "empty" => Op::Empty,
            "contains" => Op::Contains,
            other => {
                self.pos = start;
                return Err(self.error(format!("unknown operator '{other}'")));
            }
        };
        Ok(Some(op))
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        self.skip_ws();
        match self.peek() {
            Some('$' | '@') => Ok(Operand::Path(self.nested(Self::path)?)),
            _ => Ok(Operand::Literal(self.nested(Self::literal)?)),
        }
    }

    fn literal(&mut self) -> Result<Value, ParseError> {
        self.skip_ws();
        match self.peek() {
            Some('\'' | '"') => Ok(Value::String(self.string()?)),
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.eat(']') {
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.nested(Self::literal)?);
                    self.skip_ws();
                    if self.eat(']') {
                        return Ok(Value::Array(items));
                    }
                    self.expect(',')?;
                }
            }
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_alphabetic() => {
                let start = self.pos;
                let word = self.name()?;
                match word.as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    _ => {
                        self.pos = start;
                        Err(self.error(format!("'{word}' is not a value; quote strings")))
                    }
                }
            }
            _ => Err(self.error("expected a path, a string, a number, true, false, null or a list")),
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        self.eat('-');
        while self.peek().is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+')) {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        serde_json::from_str::<serde_json::Number>(&text)
            .map(Value::Number)
            .map_err(|_| ParseError { position: start, message: format!("'{text}' is not a number") })
    }

    fn regex(&mut self) -> Result<Operand, ParseError> {
        self.expect('/')?;
        let mut pattern = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated regular expression")),
                Some('/') => break,
                Some('\\') if self.peek_at(1) == Some('/') => {
                    pattern.push('/');
                    self.pos += 2;
                }
                Some(c) => {
                    pattern.push(c);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        let mut builder = RegexBuilder::new(&format!("^(?:{pattern})$"));
        builder.size_limit(1 << 20);
        while let Some(flag) = self.peek().filter(char::is_ascii_alphabetic) {
            match flag {
                'i' => builder.case_insensitive(true),
                'm' => builder.multi_line(true),
                's' => builder.dot_matches_new_line(true),
                'x' => builder.ignore_whitespace(true),
                other => return Err(self.error(format!("unknown regular expression flag '{other}'"))),
            };
            self.pos += 1;
        }
        builder
            .build()
            .map(Operand::Regex)
            .map_err(|e| self.error(format!("invalid regular expression: {e}")))
    }
}
