//! What Sotto writes to a terminal. Text that a server, a relay, another device or the model
//! chose (answers, titles, passkey names, error strings) could carry control characters that
//! move the cursor, rewrite what was shown before, retitle the window or reorder text (bidi
//! overrides). [`shown`] escapes them, so every such string reaches the screen as visible
//! text, newlines and tabs passing as they are; [`one_line`] escapes those too, for a message
//! that must stay one line.

use std::borrow::Cow;

/// `text` with every control character (C0, DEL, C1) other than `\n` and `\t`, and every
/// bidirectional formatting character, written as Rust writes it escaped (`\u{1b}`, `\r`).
pub fn shown(text: &str) -> Cow<'_, str> {
    escaped(text, |c| c == '\n' || c == '\t')
}

/// [`shown`], with newlines and tabs escaped too.
pub fn one_line(text: &str) -> Cow<'_, str> {
    escaped(text, |_| false)
}

fn escaped(text: &str, passes: fn(char) -> bool) -> Cow<'_, str> {
    let escape = |c: char| !passes(c) && (c.is_control() || is_bidi(c));
    if !text.chars().any(escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn is_bidi(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::{one_line, shown};

    #[test]
    fn escape_sequences_become_visible_text() {
        assert_eq!(
            shown("\x1b[2J\x1b]0;owned\x07"),
            "\\u{1b}[2J\\u{1b}]0;owned\\u{7}"
        );
        assert_eq!(shown("a\rb\x7f\u{9b}c"), "a\\rb\\u{7f}\\u{9b}c");
        assert_eq!(shown("admin\u{202e}gpj.exe"), "admin\\u{202e}gpj.exe");
    }

    #[test]
    fn one_line_escapes_line_breaks_too() {
        assert_eq!(one_line("no\nsuch\treport"), "no\\nsuch\\treport");
        assert_eq!(shown("no\nsuch\treport"), "no\nsuch\treport");
    }

    #[test]
    fn ordinary_text_passes_unchanged() {
        let text = "Hello, wörld: 你好\n\tindented 🙂";
        assert!(matches!(shown(text), std::borrow::Cow::Borrowed(t) if t == text));
    }
}
