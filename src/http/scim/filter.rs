//! SCIM filters and PATCH paths (RFC 7644 §3.4.2.2, §3.5.2): a small
//! recursive-descent parser and an evaluator over a rendered resource
//! (`serde_json::Value`). Attribute names match case-insensitively;
//! string comparisons ignore case except for `id`, `externalId` and
//! `meta.version` (caseExact in RFC 7643).
//!
//! Precedence: `not` and parentheses, then `and`, then `or`.

use std::cmp::Ordering;

use serde_json::Value;

/// The longest filter accepted (a bound on parser work).
const MAX_FILTER: usize = 4096;
/// Deepest nesting of parentheses and `not`.
const MAX_DEPTH: usize = 32;

/// `[urn:…:]attr[.sub]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN when given (`urn:…:enterprise:2.0:User`).
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare(AttrPath, Op, Value),
    /// `emails[type eq "work"]`: some value of the multi-valued attribute matches.
    ValuePath(AttrPath, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// A PATCH target: `attrPath`, or `attr[filter]` with an optional `.sub`.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter (`emails[type eq "work"].value`).
    pub sub_after_filter: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// `.sub` right after `]`.
    DotWord(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    if text.len() > MAX_FILTER {
        return Err(format!("filter longer than {MAX_FILTER} characters"));
    }
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                tokens.push(Token::LParen);
                i += 1
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1
            }
            '[' => {
                tokens.push(Token::LBracket);
                i += 1
            }
            ']' => {
                tokens.push(Token::RBracket);
                i += 1;
                if chars.get(i) == Some(&'.') {
                    i += 1;
                    let start = i;
                    while chars.get(i).is_some_and(|c| is_word(*c)) {
                        i += 1;
                    }
                    if start == i {
                        return Err("expected a sub-attribute after ']. '".into());
                    }
                    tokens.push(Token::DotWord(chars[start..i].iter().collect()));
                }
            }
            '"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string in filter".into()),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('"') => s.push('"'),
                                Some('\\') => s.push('\\'),
                                Some('/') => s.push('/'),
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some('r') => s.push('\r'),
                                Some('b') => s.push('\u{8}'),
                                Some('f') => s.push('\u{c}'),
                                Some('u') => {
                                    let hex: String = chars.iter().skip(i + 1).take(4).collect();
                                    let code = u32::from_str_radix(&hex, 16)
                                        .ok()
                                        .and_then(char::from_u32)
                                        .ok_or("bad \\u escape in filter string")?;
                                    s.push(code);
                                    i += 4;
                                }
                                _ => return Err("bad escape in filter string".into()),
                            }
                            i += 1;
                        }
                        Some(&c) => {
                            s.push(c);
                            i += 1
                        }
                    }
                }
                tokens.push(Token::Str(s));
            }
            c if is_word(c) => {
                let start = i;
                while chars.get(i).is_some_and(|c| is_word(*c)) {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character '{other}' in filter")),
        }
    }
    Ok(tokens)
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-' | '$' | '+')
}

/// Splits `urn:…:attr.sub` / `attr.sub`.
pub fn parse_attr_path(word: &str) -> Result<AttrPath, String> {
    let (urn, rest) = if word.to_ascii_lowercase().starts_with("urn:") {
        match word.rsplit_once(':') {
            Some((urn, rest)) => (Some(urn.to_string()), rest),
            None => return Err(format!("bad attribute path '{word}'")),
        }
    } else {
        (None, word)
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    let name_ok = |n: &str| {
        n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
    };
    if !name_ok(attr) || sub.is_some_and(|s| !name_ok(s)) {
        return Err(format!("bad attribute path '{word}'"));
    }
    Ok(AttrPath {
        urn,
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or_expr(&mut self) -> Result<Filter, String> {
        let mut left = self.and_expr()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and_expr()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn nested(&mut self, close: Token) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("filter nested too deeply".into());
        }
        let inner = self.or_expr()?;
        self.depth -= 1;
        match self.next() {
            Some(t) if t == close => Ok(inner),
            _ => Err(format!(
                "expected '{}' in filter",
                if close == Token::RParen { ")" } else { "]" }
            )),
        }
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.keyword("not") {
            self.pos += 1;
            if self.next() != Some(Token::LParen) {
                return Err("expected '(' after not".into());
            }
            return Ok(Filter::Not(Box::new(self.nested(Token::RParen)?)));
        }
        if self.peek() == Some(&Token::LParen) {
            self.pos += 1;
            return self.nested(Token::RParen);
        }
        let word = match self.next() {
            Some(Token::Word(w)) => w,
            Some(other) => return Err(format!("expected an attribute, found {other:?}")),
            None => return Err("filter ends where an attribute was expected".into()),
        };
        let path = parse_attr_path(&word)?;
        if self.peek() == Some(&Token::LBracket) {
            self.pos += 1;
            let inner = self.nested(Token::RBracket)?;
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        let op = match self.next() {
            Some(Token::Word(w)) => w.to_ascii_lowercase(),
            _ => return Err(format!("expected an operator after '{word}'")),
        };
        let op = match op.as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return Err(format!("unknown operator '{other}'")),
        };
        let value = match self.next() {
            Some(Token::Str(s)) => Value::String(s),
            Some(Token::Word(w)) => match w.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                n => serde_json::from_str::<serde_json::Number>(n)
                    .map(Value::Number)
                    .map_err(|_| format!("bad comparison value '{n}' (strings need quotes)"))?,
            },
            _ => return Err("expected a value after the operator".into()),
        };
        Ok(Filter::Compare(path, op, value))
    }
}

/// Parses a `filter` query parameter.
pub fn parse(text: &str) -> Result<Filter, String> {
    let mut p = Parser {
        tokens: tokenize(text)?,
        pos: 0,
        depth: 0,
    };
    if p.tokens.is_empty() {
        return Err("empty filter".into());
    }
    let f = p.or_expr()?;
    if p.pos != p.tokens.len() {
        return Err(format!("unexpected {:?} in filter", p.peek()));
    }
    Ok(f)
}

/// Parses a PATCH `path`.
pub fn parse_path(text: &str) -> Result<PatchPath, String> {
    let mut p = Parser {
        tokens: tokenize(text)?,
        pos: 0,
        depth: 0,
    };
    let word = match p.next() {
        Some(Token::Word(w)) => w,
        _ => return Err(format!("bad path '{text}'")),
    };
    let attr = parse_attr_path(&word)?;
    let mut filter = None;
    let mut sub_after_filter = None;
    if p.peek() == Some(&Token::LBracket) {
        if attr.sub.is_some() {
            return Err(format!(
                "bad path '{text}': a value filter follows the attribute"
            ));
        }
        p.pos += 1;
        filter = Some(p.nested(Token::RBracket)?);
        if let Some(Token::DotWord(sub)) = p.peek().cloned() {
            p.pos += 1;
            sub_after_filter = Some(sub);
        }
    }
    if p.pos != p.tokens.len() {
        return Err(format!("bad path '{text}'"));
    }
    Ok(PatchPath {
        attr,
        filter,
        sub_after_filter,
    })
}

/// A key of `obj` equal to `name` ignoring case.
pub fn get_ci<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The object an attribute path starts from: the resource itself, or its
/// extension object for a URN other than the core one.
pub fn scope<'a>(resource: &'a Value, path: &AttrPath, core: &str) -> Option<&'a Value> {
    match &path.urn {
        None => Some(resource),
        Some(urn) if urn.eq_ignore_ascii_case(core) => Some(resource),
        Some(urn) => get_ci(resource, urn),
    }
}

fn case_exact(path: &AttrPath) -> bool {
    let a = path.attr.to_ascii_lowercase();
    a == "id"
        || a == "externalid"
        || (a == "meta"
            && path
                .sub
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("version")))
}

/// The values an attribute path reaches (flattening multi-valued ones).
fn values<'a>(resource: &'a Value, path: &AttrPath, core: &str) -> Vec<&'a Value> {
    let Some(base) = scope(resource, path, core) else {
        return vec![];
    };
    let Some(top) = get_ci(base, &path.attr) else {
        return vec![];
    };
    let items: Vec<&Value> = match top {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    match &path.sub {
        Some(sub) => items.into_iter().filter_map(|v| get_ci(v, sub)).collect(),
        None => items
            .into_iter()
            // A complex multi-valued attribute compared as a whole compares its `value`.
            .map(|v| {
                if v.is_object() {
                    get_ci(v, "value").unwrap_or(v)
                } else {
                    v
                }
            })
            .collect(),
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn compare_one(actual: &Value, op: Op, wanted: &Value, exact: bool) -> bool {
    match (actual, wanted) {
        (Value::String(a), Value::String(w)) => {
            let (a, w) = if exact {
                (a.clone(), w.clone())
            } else {
                (a.to_lowercase(), w.to_lowercase())
            };
            match op {
                Op::Eq => a == w,
                Op::Ne => a != w,
                Op::Co => a.contains(&w),
                Op::Sw => a.starts_with(&w),
                Op::Ew => a.ends_with(&w),
                Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                    let ordering = match (
                        chrono::DateTime::parse_from_rfc3339(&a),
                        chrono::DateTime::parse_from_rfc3339(&w),
                    ) {
                        (Ok(x), Ok(y)) => x.cmp(&y),
                        _ => a.cmp(&w),
                    };
                    ordered(ordering, op)
                }
            }
        }
        (Value::Number(a), Value::Number(w)) => {
            let (Some(a), Some(w)) = (a.as_f64(), w.as_f64()) else {
                return false;
            };
            let ordering = a.partial_cmp(&w).unwrap_or(Ordering::Equal);
            match op {
                Op::Eq => ordering == Ordering::Equal,
                Op::Ne => ordering != Ordering::Equal,
                Op::Co | Op::Sw | Op::Ew => false,
                _ => ordered(ordering, op),
            }
        }
        (Value::Bool(a), Value::Bool(w)) => match op {
            Op::Eq => a == w,
            Op::Ne => a != w,
            _ => false,
        },
        (a, Value::Null) => match op {
            Op::Eq => !present(a),
            Op::Ne => present(a),
            _ => false,
        },
        _ => op == Op::Ne,
    }
}

fn ordered(o: Ordering, op: Op) -> bool {
    match op {
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        _ => false,
    }
}

/// Does `resource` match? `core` is the URN of the resource's core schema.
pub fn matches(filter: &Filter, resource: &Value, core: &str) -> bool {
    match filter {
        Filter::Present(path) => values(resource, path, core).into_iter().any(present),
        Filter::Compare(path, op, wanted) => {
            let found = values(resource, path, core);
            if found.is_empty() {
                return match (op, wanted) {
                    (Op::Eq, Value::Null) => true,
                    (Op::Ne, Value::Null) => false,
                    (Op::Ne, _) => true,
                    _ => false,
                };
            }
            let exact = case_exact(path);
            if *op == Op::Ne {
                // "ne": no value equals it.
                return !found.iter().any(|v| compare_one(v, Op::Eq, wanted, exact));
            }
            found.iter().any(|v| compare_one(v, *op, wanted, exact))
        }
        Filter::ValuePath(path, inner) => {
            let Some(base) = scope(resource, path, core) else {
                return false;
            };
            match get_ci(base, &path.attr) {
                Some(Value::Array(items)) => items.iter().any(|item| matches(inner, item, core)),
                Some(item @ Value::Object(_)) => matches(inner, item, core),
                _ => false,
            }
        }
        Filter::And(a, b) => matches(a, resource, core) && matches(b, resource, core),
        Filter::Or(a, b) => matches(a, resource, core) || matches(b, resource, core),
        Filter::Not(a) => !matches(a, resource, core),
    }
}

/// `userName eq "x"` (case-insensitive attribute name, any URN of the
/// core schema): the one filter answered from an index.
pub fn simple_eq<'a>(filter: &'a Filter, attr: &str) -> Option<&'a str> {
    match filter {
        Filter::Compare(path, Op::Eq, Value::String(v))
            if path.attr.eq_ignore_ascii_case(attr) && path.sub.is_none() =>
        {
            Some(v)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

    fn user() -> Value {
        json!({
            "id": "bjensen",
            "userName": "bjensen@example.com",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "active": true,
            "meta": {"lastModified": "2026-05-13T04:42:34Z", "version": "W/\"a\""},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984",
                "manager": {"value": "jsmith"}
            }
        })
    }

    fn m(f: &str) -> bool {
        matches(
            &parse(f).unwrap_or_else(|e| panic!("{f}: {e}")),
            &user(),
            CORE,
        )
    }

    #[test]
    fn every_operator_and_the_logic_between_them() {
        assert!(m("userName eq \"BJENSEN@example.com\""));
        assert!(m("username Eq \"bjensen@example.com\""));
        assert!(!m("userName ne \"bjensen@example.com\""));
        assert!(m("name.familyName co \"ens\""));
        assert!(m("userName sw \"bj\""));
        assert!(m("userName ew \".com\""));
        assert!(m("name.givenName pr"));
        assert!(!m("title pr"));
        assert!(m("meta.lastModified gt \"2026-01-01T00:00:00Z\""));
        assert!(m("meta.lastModified ge \"2026-05-13T04:42:34Z\""));
        assert!(!m("meta.lastModified lt \"2026-05-13T04:42:34Z\""));
        assert!(m("meta.lastModified le \"2026-05-13T04:42:34+00:00\""));
        assert!(m("active eq true and not (userName eq \"x\")"));
        assert!(m("userName eq \"x\" or (active eq true and emails pr)"));
        assert!(!m("userName eq \"x\" or active eq false and emails pr"));
        assert!(m("emails[type eq \"work\" and value co \"@example.com\"]"));
        assert!(!m("emails[type eq \"other\"]"));
        assert!(m("emails.value eq \"babs@jensen.org\""));
        assert!(m("emails eq \"babs@jensen.org\""));
        assert!(m("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"701984\""));
        assert!(m("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"jsmith\""));
        assert!(m(
            "urn:ietf:params:scim:schemas:core:2.0:User:userName sw \"bjen\""
        ));
        assert!(!m("id eq \"BJENSEN\""), "id is case-exact");
    }

    #[test]
    fn bad_filters_are_refused_with_a_reason() {
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName zz \"x\"",
            "userName eq bob",
            "(userName eq \"x\"",
            "userName eq \"x\" and",
            "emails[type eq \"work\"",
            "not userName eq \"x\"",
            "userName eq \"unterminated",
            "user;Name eq \"x\"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = format!("{}userName pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn patch_paths() {
        let p = parse_path("emails[type eq \"work\"].value").unwrap();
        assert_eq!(p.attr.attr, "emails");
        assert_eq!(p.sub_after_filter.as_deref(), Some("value"));
        let p = parse_path("members[value eq \"2819c223\"]").unwrap();
        assert!(p.filter.is_some());
        let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
            .unwrap();
        assert_eq!(
            p.attr.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.attr.attr, "manager");
        assert_eq!(
            parse_path("name.givenName").unwrap().attr.sub.as_deref(),
            Some("givenName")
        );
        assert!(parse_path("name.givenName junk").is_err());
    }
}
