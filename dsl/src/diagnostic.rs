//! [`ParseError`]: the compiler-style diagnostic of the run-time parser, and
//! the helpers that keep every diagnostic short whatever the input.

use std::fmt;

/// How many characters of the offending source line a diagnostic shows: a
/// longer line is cut to a window around the caret, with `…` where text is
/// left out, so that an error about a 200 KB spec stays a few lines long.
pub const SOURCE_WINDOW: usize = 100;

/// How many characters of user text (a name, a number, a word) a message
/// quotes before cutting it with `…`.
pub const QUOTE_CHARS: usize = 40;

/// Longest `message` or `expected` text a diagnostic prints (longer ones are
/// cut with `…`; the messages the DSL writes stay far below it).
const MESSAGE_CHARS: usize = 300;

/// User text as quoted in a message: at most [`QUOTE_CHARS`] characters,
/// control characters escaped.
///
/// ```
/// assert_eq!(normflow_dsl::quote("mafx"), "mafx");
/// let long = normflow_dsl::quote(&"x".repeat(10_000));
/// assert!(long.chars().count() < 70 && long.ends_with("(10000 characters)"));
/// assert_eq!(normflow_dsl::quote("a\u{7}b"), "a\\u{7}b");
/// ```
pub fn quote(text: &str) -> String {
    let n = text.chars().count();
    let mut out = String::new();
    for c in text.chars().take(QUOTE_CHARS) {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    if n > QUOTE_CHARS {
        out.push_str(&format!("… ({n} characters)"));
    }
    out
}

/// Cuts `text` to `max` characters, ending in `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// A parse or validation error in flow-spec text: where (byte offset, column),
/// what was wrong, what was expected, and a did-you-mean suggestion when a
/// near miss exists. `Display` renders it like a compiler diagnostic with a
/// caret under the offending text; a long line is shown as a window of about
/// [`SOURCE_WINDOW`] characters around the caret.
///
/// ```
/// let e = normflow_dsl::parse("maf(3) >> permte").unwrap_err();
/// assert_eq!(e.column(), 11);
/// assert_eq!(e.suggestion(), Some("permute"));
/// let shown = e.to_string();
/// assert!(shown.contains("maf(3) >> permte"));
/// assert!(shown.contains("          ^^^^^^"));
///
/// // A huge spec gives a short error.
/// let long = format!("{}mafx", "maf >> ".repeat(30_000));
/// let e = normflow_dsl::parse(&long).unwrap_err();
/// assert!(e.to_string().lines().all(|l| l.chars().count() < 400));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    source: String,
    offset: usize,
    len: usize,
    message: String,
    expected: String,
    pub(crate) suggestion: Option<String>,
}

impl ParseError {
    pub(crate) fn new(
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

    /// The source up to the offending text (the offset clamped to the text
    /// and to a character boundary).
    fn before(&self) -> &str {
        let mut end = self.offset.min(self.source.len());
        while !self.source.is_char_boundary(end) {
            end -= 1;
        }
        &self.source[..end]
    }

    /// 1-based line of the offending text.
    pub fn line(&self) -> usize {
        self.before().matches('\n').count() + 1
    }

    /// 1-based column (in characters) of the offending text.
    pub fn column(&self) -> usize {
        let before = self.before();
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

/// The part of a source line a diagnostic shows, and where the caret goes in
/// it: `(text, caret column (0-based, in characters), caret width)`.
fn window(line: &str, col: usize, width: usize) -> (String, usize, usize) {
    let clean = |c: char| if c.is_control() { ' ' } else { c };
    let n = line.chars().count();
    if n <= SOURCE_WINDOW {
        let shown: String = line.chars().map(clean).collect();
        return (shown, col, width.min(n.saturating_sub(col)).max(1));
    }
    // Some context before the caret, the rest after it.
    let lead = SOURCE_WINDOW * 2 / 5;
    let mut start = col.saturating_sub(lead);
    let end = (start + SOURCE_WINDOW).min(n);
    start = start.min(end.saturating_sub(SOURCE_WINDOW));
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    shown.extend(line.chars().skip(start).take(end - start).map(clean));
    if end < n {
        shown.push('…');
    }
    let caret = col - start + usize::from(start > 0);
    let width = width.min(end.saturating_sub(col)).max(1);
    (shown, caret, width)
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line_no = self.line();
        let line = self.source.split('\n').nth(line_no - 1).unwrap_or("");
        let line = line.strip_suffix('\r').unwrap_or(line);
        let col = self.column();
        let rest = &self.source[self.before().len()..];
        let width = rest
            .chars()
            .take(self.len.max(1))
            .take_while(|c| *c != '\n')
            .count()
            .clamp(1, self.len.max(1));
        let (shown, caret, width) = window(line, col - 1, width);
        let gutter = " ".repeat(line_no.to_string().len());
        writeln!(f, "error: {}", cut(&self.message, MESSAGE_CHARS))?;
        writeln!(f, "{gutter}--> flow spec, line {line_no}, column {col}")?;
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{line_no} | {shown}")?;
        write!(
            f,
            "{gutter} | {}{} expected {}",
            " ".repeat(caret),
            "^".repeat(width),
            cut(&self.expected, MESSAGE_CHARS)
        )?;
        if let Some(s) = &self.suggestion {
            write!(f, "\n{gutter} = help: did you mean `{}`?", quote(s))?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lines_are_shown_whole() {
        let (s, c, w) = window("maf(3) >> permte", 10, 6);
        assert_eq!((s.as_str(), c, w), ("maf(3) >> permte", 10, 6));
    }

    #[test]
    fn long_lines_are_windowed_around_the_caret() {
        let line = format!("{}XYZ{}", "a".repeat(5000), "b".repeat(5000));
        let (s, c, w) = window(&line, 5000, 3);
        assert!(s.chars().count() <= SOURCE_WINDOW + 2, "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'));
        let chars: Vec<char> = s.chars().collect();
        assert_eq!(chars[c..c + w].iter().collect::<String>(), "XYZ");
        // At the very start and the very end.
        let (s, c, _) = window(&line, 0, 1);
        assert_eq!((c, s.starts_with('…')), (0, false));
        let (s, c, w) = window(&line, 10_002, 1);
        assert!(!s.ends_with('…'));
        assert_eq!(s.chars().nth(c), Some('b'));
        assert_eq!(w, 1);
    }

    #[test]
    fn huge_carets_are_capped() {
        let line = "x".repeat(100_000);
        let (s, c, w) = window(&line, 0, 100_000);
        assert!(c + w <= s.chars().count());
    }
}
