//! The run-time parser: text → [`Spec`], with compiler-style errors.

use crate::diagnostic::ParseError;
use crate::{Location, MAX_LAYERS, Problem, Spec, Value, add_to_total, check_layer, quote};

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

/// How a token is named in a message: its text (quoted and clipped) for
/// names and numbers, its symbol otherwise.
fn describe(src: &str, t: &Lexed) -> String {
    match &t.tok {
        Tok::Ident(_) | Tok::Int(_) | Tok::Float(_) => format!("`{}`", quote(&src[t.start..t.end])),
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
                let shown = quote(&src[start..i]);
                let bad = || {
                    ParseError::new(
                        src,
                        start,
                        i - start,
                        format!("malformed number `{shown}`"),
                        "an integer like `128` or a decimal like `2.5`",
                    )
                };
                // Signed numbers (`-3`) lex as decimals so that the range
                // check, not the lexer, reports them.
                let tok = if !is_float && !text.starts_with(['-', '+']) {
                    match text.parse::<u64>() {
                        Ok(v) => Tok::Int(v),
                        // Only digits: the one way to fail is overflow.
                        Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                            return Err(ParseError::new(
                                src,
                                start,
                                i - start,
                                format!("the integer `{shown}` is too large"),
                                format!("an integer of at most {}", u64::MAX),
                            ));
                        }
                        Err(_) => return Err(bad()),
                    }
                } else {
                    match text.parse::<f64>() {
                        Ok(v) if v.is_finite() => Tok::Float(v),
                        Ok(_) => {
                            return Err(ParseError::new(
                                src,
                                start,
                                i - start,
                                format!("the number `{shown}` is too large for a 64-bit float"),
                                "a decimal of magnitude below 1.8e308",
                            ));
                        }
                        Err(_) => return Err(bad()),
                    }
                };
                out.push(Lexed { tok, start, end: i });
            }
            other => {
                return Err(ParseError::new(
                    src,
                    start,
                    other.len_utf8(),
                    format!("unexpected character `{}`", quote(&other.to_string())),
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
    parse_with_limit(src, MAX_LAYERS)
}

/// [`parse`] with another limit on the number of built layers than
/// [`MAX_LAYERS`] (`usize::MAX` for none): a spec whose layers expand to more
/// is an error pointing at the layer that passes the limit.
///
/// ```
/// assert!(normflow_dsl::parse_with_limit("maf(3) >> permute", 6).is_ok());
/// let e = normflow_dsl::parse_with_limit("maf(3) >> permute", 5).unwrap_err();
/// assert_eq!(e.column(), 11);
/// assert!(e.message().contains("6 layers"), "{e}");
/// ```
pub fn parse_with_limit(src: &str, max_layers: usize) -> Result<Spec, ParseError> {
    let toks = lex(src)?;
    let mut total = 0usize;
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
                format!("expected a layer name, found {}", describe(src, t))
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
                                    format!("expected `,` or `)`, found {}", describe(src, t)),
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
                            Tok::Float(x) if first => {
                                let what = if *x < 1.0 {
                                    "at least 1"
                                } else {
                                    "a whole number"
                                };
                                return Err(ParseError::new(
                                    src,
                                    t.start,
                                    t.end - t.start,
                                    format!("the count must be {what}, found {}", describe(src, t)),
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
                                                "expected `=` after `{}`, found {}",
                                                quote(key),
                                                describe(src, o)
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
                                    _ => {
                                        return Err(ParseError::new(
                                            src,
                                            v.start,
                                            v.end - v.start,
                                            format!("expected a value, found {}", describe(src, v)),
                                            "an integer, a decimal, `true`/`false` or a word",
                                        ));
                                    }
                                };
                                p += 1;
                                args.push((key.clone(), value));
                                spans.push((key_span, (v.start, v.end)));
                            }
                            _ => {
                                let expected = if first {
                                    "a count or `key = value`"
                                } else {
                                    "`key = value`"
                                };
                                return Err(ParseError::new(
                                    src,
                                    t.start,
                                    t.end - t.start,
                                    format!("expected {expected}, found {}", describe(src, t)),
                                    expected,
                                ));
                            }
                        }
                        first = false;
                    }
                }
            }
        }
        match check_layer(name, count, &args)
            .and_then(|l| add_to_total(total, &l, max_layers).map(|t| (l, t)))
        {
            Ok((l, t)) => {
                total = t;
                spec.layers.push(l);
            }
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
                    format!("expected `>>` between layers, found {}", describe(src, t)),
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
