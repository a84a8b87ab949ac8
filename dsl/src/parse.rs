//! The run-time parser: text → [`Spec`], with compiler-style errors.

use std::fmt;

use crate::{Location, Problem, Spec, Value, check_layer};

/// A parse or validation error in flow-spec text: where (byte offset, column),
/// what was wrong, what was expected, and a did-you-mean suggestion when a
/// near miss exists. `Display` renders it like a compiler diagnostic with a
/// caret under the offending text.
///
/// ```
/// let e = normflow_dsl::parse("maf(3) >> permte").unwrap_err();
/// assert_eq!(e.column(), 11);
/// assert_eq!(e.suggestion(), Some("permute"));
/// let shown = e.to_string();
/// assert!(shown.contains("maf(3) >> permte"));
/// assert!(shown.contains("          ^^^^^^"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    source: String,
    offset: usize,
    len: usize,
    message: String,
    expected: String,
    suggestion: Option<String>,
}

impl ParseError {
    fn new(
        source: &str,
        offset: usize,
        len: usize,
        message: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Self {
            source: source.to_string(),
            offset,
            len: len.max(1),
            message: message.into(),
            expected: expected.into(),
            suggestion: None,
        }
    }

    /// Byte offset of the offending text in the source.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Length in bytes of the offending text (at least 1).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an error points at something.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// 1-based line of the offending text.
    pub fn line(&self) -> usize {
        self.source[..self.offset.min(self.source.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// 1-based column (in characters) of the offending text.
    pub fn column(&self) -> usize {
        let before = &self.source[..self.offset.min(self.source.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        before[line_start..].chars().count() + 1
    }

    /// What went wrong, e.g. "unknown layer `mafx`".
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What was expected at that point.
    pub fn expected(&self) -> &str {
        &self.expected
    }

    /// The did-you-mean suggestion, if any.
    pub fn suggestion(&self) -> Option<&str> {
        self.suggestion.as_deref()
    }

    /// The text that was parsed.
    pub fn source_text(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line_no = self.line();
        let line = self.source.lines().nth(line_no - 1).unwrap_or("");
        let col = self.column();
        let width = self.source[self.offset.min(self.source.len())..]
            .chars()
            .take_while(|c| *c != '\n')
            .count()
            .clamp(1, self.len.max(1));
        let gutter = " ".repeat(line_no.to_string().len());
        writeln!(f, "error: {}", self.message)?;
        writeln!(f, "{gutter}--> flow spec, line {line_no}, column {col}")?;
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{line_no} | {line}")?;
        write!(
            f,
            "{gutter} | {}{} expected {}",
            " ".repeat(col - 1),
            "^".repeat(width),
            self.expected
        )?;
        if let Some(s) = &self.suggestion {
            write!(f, "\n{gutter} = help: did you mean `{s}`?")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(u64),
    Float(f64),
    LParen,
    RParen,
    Comma,
    Eq,
    Then,
    LBrace,
}

struct Lexed {
    tok: Tok,
    start: usize,
    end: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Int(i) => format!("`{i}`"),
        Tok::Float(x) => format!("`{x}`"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Eq => "`=`".into(),
        Tok::Then => "`>>`".into(),
        Tok::LBrace => "a `{ expr }` block".into(),
    }
}

fn lex(src: &str) -> Result<Vec<Lexed>, ParseError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = src[i..].chars().next().expect("in bounds");
        let start = i;
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let single = |t: Tok| Lexed {
            tok: t,
            start,
            end: start + 1,
        };
        match c {
            '(' => {
                out.push(single(Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push(single(Tok::RParen));
                i += 1;
            }
            ',' => {
                out.push(single(Tok::Comma));
                i += 1;
            }
            '=' => {
                out.push(single(Tok::Eq));
                i += 1;
            }
            '{' => {
                // A `{ expr }` layer: one token up to the matching brace.
                let mut depth = 0usize;
                let mut end = src.len();
                for (k, ch) in src[start..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = start + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                out.push(Lexed {
                    tok: Tok::LBrace,
                    start,
                    end,
                });
                i = end;
            }
            '>' if bytes.get(i + 1) == Some(&b'>') => {
                out.push(Lexed {
                    tok: Tok::Then,
                    start,
                    end: start + 2,
                });
                i += 2;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push(Lexed {
                    tok: Tok::Ident(src[start..i].to_string()),
                    start,
                    end: i,
                });
            }
            c if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' => {
                i += 1;
                let mut is_float = c == '.';
                while i < bytes.len() {
                    let b = bytes[i];
                    if b.is_ascii_digit() || b == b'_' {
                        i += 1;
                    } else if b == b'.'
                        || ((b == b'e' || b == b'E') && !src[start..i].contains(['e', 'E']))
                    {
                        is_float = true;
                        i += 1;
                        if (b == b'e' || b == b'E')
                            && i < bytes.len()
                            && (bytes[i] == b'-' || bytes[i] == b'+')
                        {
                            i += 1;
                        }
                    } else {
                        break;
                    }
                }
                let text: String = src[start..i].chars().filter(|c| *c != '_').collect();
                let bad = || {
                    ParseError::new(
                        src,
                        start,
                        i - start,
                        format!("malformed number `{}`", &src[start..i]),
                        "an integer like `128` or a decimal like `2.5`",
                    )
                };
                // Signed numbers (`-3`) lex as decimals so that the range
                // check, not the lexer, reports them.
                let tok = if !is_float && !text.starts_with(['-', '+']) {
                    Tok::Int(text.parse().map_err(|_| bad())?)
                } else {
                    Tok::Float(text.parse().map_err(|_| bad())?)
                };
                out.push(Lexed { tok, start, end: i });
            }
            other => {
                return Err(ParseError::new(
                    src,
                    start,
                    other.len_utf8(),
                    format!("unexpected character `{other}`"),
                    "a layer name, `(`, `)`, `,`, `=`, `>>` or a value",
                ));
            }
        }
    }
    Ok(out)
}

/// Parses and validates flow-spec text.
///
/// ```
/// let spec = normflow_dsl::parse("maf(3, hidden = 128) >> permute >> nsf(bins = 4)").unwrap();
/// assert_eq!(spec.layers.len(), 3);
/// assert_eq!(spec.to_string(), "maf(3, hidden = 128) >> permute >> spline_coupling(bins = 4)");
/// assert!(normflow_dsl::parse("maf(0)").is_err());
/// ```
pub fn parse(src: &str) -> Result<Spec, ParseError> {
    let toks = lex(src)?;
    let mut p = 0usize;
    let mut spec = Spec::default();
    let end_err = |what: &str| {
        ParseError::new(
            src,
            src.len(),
            1,
            "the flow spec ends early",
            what.to_string(),
        )
    };
    if toks.is_empty() {
        return Err(ParseError::new(
            src,
            0,
            1,
            "the flow spec is empty",
            "at least one layer, e.g. `maf(3)`",
        ));
    }
    loop {
        // A layer name.
        let Some(t) = toks.get(p) else {
            return Err(end_err("a layer name after `>>`"));
        };
        let Tok::Ident(name) = &t.tok else {
            let msg = if t.tok == Tok::LBrace {
                "`{ expr }` layers embed Rust values and only work inside the `flow!` macro"
                    .to_string()
            } else {
                format!("expected a layer name, found {}", describe(&t.tok))
            };
            return Err(ParseError::new(
                src,
                t.start,
                t.end - t.start,
                msg,
                "a layer name such as `maf`",
            ));
        };
        let name_tok = t;
        p += 1;
        let mut count: Option<u64> = None;
        let mut count_span = (name_tok.start, name_tok.end);
        let mut args: Vec<(String, Value)> = Vec::new();
        let mut spans: Vec<((usize, usize), (usize, usize))> = Vec::new();
        if matches!(
            toks.get(p),
            Some(Lexed {
                tok: Tok::LParen,
                ..
            })
        ) {
            let open = &toks[p];
            p += 1;
            let mut first = true;
            loop {
                match toks.get(p) {
                    None => {
                        return Err(ParseError::new(
                            src,
                            open.start,
                            1,
                            "this `(` is never closed",
                            "a matching `)`",
                        ));
                    }
                    Some(Lexed {
                        tok: Tok::RParen, ..
                    }) => {
                        p += 1;
                        break;
                    }
                    Some(t) => {
                        if !first {
                            if t.tok != Tok::Comma {
                                return Err(ParseError::new(
                                    src,
                                    t.start,
                                    t.end - t.start,
                                    format!("expected `,` or `)`, found {}", describe(&t.tok)),
                                    "`,` or `)`",
                                ));
                            }
                            p += 1;
                            if matches!(
                                toks.get(p),
                                Some(Lexed {
                                    tok: Tok::RParen,
                                    ..
                                })
                            ) {
                                p += 1;
                                break;
                            }
                        }
                        let Some(t) = toks.get(p) else { continue };
                        match &t.tok {
                            Tok::Int(c) if first => {
                                count = Some(*c);
                                count_span = (t.start, t.end);
                                p += 1;
                            }
                            Tok::Float(_) if first => {
                                return Err(ParseError::new(
                                    src,
                                    t.start,
                                    t.end - t.start,
                                    format!(
                                        "the count must be a whole number, found {}",
                                        describe(&t.tok)
                                    ),
                                    "a count of at least 1",
                                ));
                            }
                            Tok::Ident(key) => {
                                let key_span = (t.start, t.end);
                                p += 1;
                                match toks.get(p) {
                                    Some(Lexed { tok: Tok::Eq, .. }) => p += 1,
                                    Some(o) => {
                                        return Err(ParseError::new(
                                            src,
                                            o.start,
                                            o.end - o.start,
                                            format!(
                                                "expected `=` after `{key}`, found {}",
                                                describe(&o.tok)
                                            ),
                                            "`=`",
                                        ));
                                    }
                                    None => return Err(end_err("`=` and a value")),
                                }
                                let Some(v) = toks.get(p) else {
                                    return Err(end_err("a value"));
                                };
                                let value = match &v.tok {
                                    Tok::Int(i) => Value::Int(*i),
                                    Tok::Float(x) => Value::Float(*x),
                                    Tok::Ident(w) if w == "true" => Value::Bool(true),
                                    Tok::Ident(w) if w == "false" => Value::Bool(false),
                                    Tok::Ident(w) => Value::Word(w.clone()),
                                    other => {
                                        return Err(ParseError::new(
                                            src,
                                            v.start,
                                            v.end - v.start,
                                            format!("expected a value, found {}", describe(other)),
                                            "an integer, a decimal, `true`/`false` or a word",
                                        ));
                                    }
                                };
                                p += 1;
                                args.push((key.clone(), value));
                                spans.push((key_span, (v.start, v.end)));
                            }
                            other => {
                                let expected = if first {
                                    "a count or `key = value`"
                                } else {
                                    "`key = value`"
                                };
                                return Err(ParseError::new(
                                    src,
                                    t.start,
                                    t.end - t.start,
                                    format!("expected {expected}, found {}", describe(other)),
                                    expected,
                                ));
                            }
                        }
                        first = false;
                    }
                }
            }
        }
        match check_layer(name, count, &args) {
            Ok(l) => spec.layers.push(l),
            Err(problem) => {
                let (s, e) = match problem.at {
                    Location::Name => (name_tok.start, name_tok.end),
                    Location::Count => count_span,
                    Location::Key(i) => spans[i].0,
                    Location::Value(i) => spans[i].1,
                };
                return Err(from_problem(src, s, e - s, problem));
            }
        }
        match toks.get(p) {
            None => break,
            Some(Lexed { tok: Tok::Then, .. }) => p += 1,
            Some(t) => {
                return Err(ParseError::new(
                    src,
                    t.start,
                    t.end - t.start,
                    format!("expected `>>` between layers, found {}", describe(&t.tok)),
                    "`>>` or the end of the spec",
                ));
            }
        }
    }
    Ok(spec)
}

fn from_problem(src: &str, offset: usize, len: usize, p: Problem) -> ParseError {
    let mut e = ParseError::new(src, offset, len, p.message, p.expected);
    e.suggestion = p.suggestion;
    e
}
