//! The `flow!` macro: declares a normalizing flow in the DSL of
//! `normflow_dsl`, checked at compile time. Use it through `normflow::flow!`.
//!
//! `flow!(maf(3) >> permute >> iaf(2))` expands to the `FlowSpec` that
//! `FlowSpec::parse("maf(3) >> permute >> iaf(2)")` returns; unknown layers,
//! unknown keys, a count of zero and values of the wrong type are compile
//! errors pointing at the offending token, with a did-you-mean suggestion for
//! near-miss names. A `{ expr }` layer embeds any Rust value implementing the
//! bijector trait; the macro then returns a `FlowBuilder` instead.

use normflow_dsl::{Location, Value, check_layer};
use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::quote;

/// Declares a flow: `flow!(maf(3) >> permute >> iaf(2))`. See the crate docs.
#[proc_macro]
pub fn flow(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    match expand(input.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

enum Segment {
    Spec(Vec<String>),
    Expr(TokenStream),
}

fn err(span: Span, msg: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, msg)
}

fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let toks: Vec<TokenTree> = input.into_iter().collect();
    if toks.is_empty() {
        return Err(err(
            Span::call_site(),
            "the flow is empty; expected at least one layer, e.g. `flow!(maf(3))`",
        ));
    }
    let mut segments: Vec<Segment> = Vec::new();
    let mut p = 0;
    // Layers so far (counts expanded), against the DSL's limit.
    let mut total = 0usize;
    loop {
        let Some(t) = toks.get(p) else {
            let span = toks.last().map_or(Span::call_site(), TokenTree::span);
            return Err(err(
                span,
                "the flow ends early; expected a layer after `>>`",
            ));
        };
        match t {
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
                segments.push(Segment::Expr(g.stream()));
                p += 1;
            }
            TokenTree::Ident(name) => {
                p += 1;
                let mut count: Option<(u64, Span)> = None;
                let mut args: Vec<(String, Value)> = Vec::new();
                let mut spans: Vec<(Span, Span)> = Vec::new();
                if let Some(TokenTree::Group(g)) = toks.get(p)
                    && g.delimiter() == Delimiter::Parenthesis
                {
                    p += 1;
                    parse_args(g.stream(), &mut count, &mut args, &mut spans)?;
                }
                let layer = check_layer(&name.to_string(), count.map(|c| c.0), &args).map_err(
                    |problem| {
                        let span = match problem.at {
                            Location::Name => name.span(),
                            Location::Count => count.map_or(name.span(), |c| c.1),
                            Location::Key(i) => spans[i].0,
                            Location::Value(i) => spans[i].1,
                        };
                        let mut msg = format!("{}; expected {}", problem.message, problem.expected);
                        if let Some(s) = &problem.suggestion {
                            msg.push_str(&format!("\nhelp: did you mean `{s}`?"));
                        }
                        err(span, msg)
                    },
                )?;
                total = normflow_dsl::add_to_total(total, &layer, normflow_dsl::MAX_LAYERS)
                    .map_err(|problem| {
                        err(
                            count.map_or(name.span(), |c| c.1),
                            format!("{}; expected {}", problem.message, problem.expected),
                        )
                    })?;
                match segments.last_mut() {
                    Some(Segment::Spec(v)) => v.push(layer.to_string()),
                    _ => segments.push(Segment::Spec(vec![layer.to_string()])),
                }
            }
            other => {
                return Err(err(
                    other.span(),
                    format!("expected a layer name or a `{{ expr }}` block, found `{other}`"),
                ));
            }
        }
        match (toks.get(p), toks.get(p + 1)) {
            (None, _) => break,
            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                if a.as_char() == '>' && b.as_char() == '>' =>
            {
                p += 2
            }
            (Some(t), _) => {
                return Err(err(
                    t.span(),
                    format!("expected `>>` between layers, found `{t}`"),
                ));
            }
        }
    }
    let has_expr = segments.iter().any(|s| matches!(s, Segment::Expr(_)));
    if !has_expr {
        let text = match &segments[0] {
            Segment::Spec(v) => v.join(" >> "),
            Segment::Expr(_) => unreachable!(),
        };
        return Ok(quote! { ::normflow::spec::FlowSpec::__from_macro(#text) });
    }
    let calls = segments.iter().map(|s| match s {
        Segment::Spec(v) => {
            let text = v.join(" >> ");
            quote! { .spec(::normflow::spec::FlowSpec::__from_macro(#text)) }
        }
        Segment::Expr(e) => quote! { .layer({ #e }) },
    });
    Ok(quote! { ::normflow::spec::FlowBuilder::new() #(#calls)* })
}

fn parse_args(
    stream: TokenStream,
    count: &mut Option<(u64, Span)>,
    args: &mut Vec<(String, Value)>,
    spans: &mut Vec<(Span, Span)>,
) -> syn::Result<()> {
    let toks: Vec<TokenTree> = stream.into_iter().collect();
    let mut p = 0;
    let mut first = true;
    while p < toks.len() {
        if !first {
            match &toks[p] {
                TokenTree::Punct(c) if c.as_char() == ',' => p += 1,
                t => return Err(err(t.span(), format!("expected `,` or `)`, found `{t}`"))),
            }
            if p == toks.len() {
                break;
            }
        }
        match &toks[p] {
            TokenTree::Literal(lit) if first => {
                let span = lit.span();
                match syn::parse2::<syn::Lit>(TokenTree::Literal(lit.clone()).into())? {
                    syn::Lit::Int(i) => *count = Some((i.base10_parse::<u64>()?, span)),
                    _ => {
                        return Err(err(
                            span,
                            format!(
                                "the count must be a whole number, found `{lit}`; expected a count of at least 1"
                            ),
                        ));
                    }
                }
                p += 1;
            }
            TokenTree::Ident(key) => {
                let key_span = key.span();
                p += 1;
                match toks.get(p) {
                    Some(TokenTree::Punct(e)) if e.as_char() == '=' => p += 1,
                    Some(t) => {
                        return Err(err(
                            t.span(),
                            format!("expected `=` after `{key}`, found `{t}`"),
                        ));
                    }
                    None => return Err(err(key_span, format!("expected `= value` after `{key}`"))),
                }
                let (value, vspan, used) = parse_value(&toks[p..], key_span)?;
                p += used;
                args.push((key.to_string(), value));
                spans.push((key_span, vspan));
            }
            t => {
                let what = if first {
                    "a count or `key = value`"
                } else {
                    "`key = value`"
                };
                return Err(err(t.span(), format!("expected {what}, found `{t}`")));
            }
        }
        first = false;
    }
    Ok(())
}

/// A value: a literal, `true`/`false`, a bare word, or `-` followed by a literal.
fn parse_value(toks: &[TokenTree], key_span: Span) -> syn::Result<(Value, Span, usize)> {
    let Some(t) = toks.first() else {
        return Err(err(key_span, "expected a value after `=`"));
    };
    match t {
        TokenTree::Ident(w) => {
            let s = w.to_string();
            let v = match s.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::Word(s),
            };
            Ok((v, w.span(), 1))
        }
        TokenTree::Literal(lit) => Ok((literal_value(lit, false)?, lit.span(), 1)),
        TokenTree::Punct(m) if m.as_char() == '-' => match toks.get(1) {
            Some(TokenTree::Literal(lit)) => {
                let span = m.span().join(lit.span()).unwrap_or(lit.span());
                Ok((literal_value(lit, true)?, span, 2))
            }
            _ => Err(err(m.span(), "expected a number after `-`")),
        },
        other => Err(err(
            other.span(),
            format!(
                "expected a value (an integer, a decimal, `true`/`false` or a word), found `{other}`"
            ),
        )),
    }
}

fn literal_value(lit: &proc_macro2::Literal, negative: bool) -> syn::Result<Value> {
    let span = lit.span();
    match syn::parse2::<syn::Lit>(TokenTree::Literal(lit.clone()).into())? {
        syn::Lit::Int(i) if !negative => Ok(Value::Int(i.base10_parse::<u64>()?)),
        syn::Lit::Int(i) => Ok(Value::Float(-i.base10_parse::<f64>()?)),
        syn::Lit::Float(f) => {
            let v = f.base10_parse::<f64>()?;
            Ok(Value::Float(if negative { -v } else { v }))
        }
        _ => Err(err(
            span,
            format!("expected a number, `true`/`false` or a word, found `{lit}`"),
        )),
    }
}
