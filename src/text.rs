//! Text that came from outside, made safe to print on a terminal.
//!
//! Usernames offered at login, key comments, reasons, exec lines and refused
//! target names end up in tables, audit lines and logs that an admin reads in
//! a terminal. A value must never be able to move the cursor, clear the
//! screen, set the window title, start a forged line or reorder what is shown.
//! `escape_text` is the one rule every plain-text printer and log line uses:
//! it renders each such character visibly (`\x1b`, `\n`, `\u{202e}`) instead
//! of passing it through. JSON output needs none of this (serde escapes).

use std::borrow::Cow;
use std::fmt;

/// Characters that act on a terminal or on the order and visibility of text:
/// C0 controls (tab and newline too: inside a value they would forge cells
/// and lines), DEL, C1 controls, the bidirectional embedding / override /
/// isolate controls and marks, zero-width characters, line and paragraph
/// separators and the BOM.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(
            c,
            '\u{061C}'               // Arabic letter mark (bidi)
            | '\u{200B}'..='\u{200F}' // zero-width space, non-joiner, joiner, LRM, RLM
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner and invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{FEFF}' // zero-width no-break space (BOM)
        )
}

/// Bidirectional controls that reorder text (refused in stored text: a name
/// or comment that displays differently from what it is).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character written out visibly: `\n`, `\r`, `\t`,
/// `\x1b` for the other ASCII controls, `\u{85}` / `\u{202e}` above ASCII.
/// Borrows when there is nothing to escape (the common case).
pub fn escape_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// `escape_text` as a `Display` value, for format strings and tracing fields:
/// `tracing::info!(user = %Escaped(user), "login refused")`.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_text(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["bob", "Zoë Åström", "日本語", "a\\x1b literal", ""] {
            assert!(matches!(escape_text(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn every_control_bidi_and_zero_width_character_is_escaped() {
        assert_eq!(escape_text("\x1b[2J"), "\\x1b[2J");
        assert_eq!(escape_text("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(escape_text("\x00\x07\x7f"), "\\x00\\x07\\x7f");
        assert_eq!(escape_text("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape_text("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert_eq!(escape_text("x\u{200b}y\u{2066}z"), "x\\u{200b}y\\u{2066}z");
        for c in (0u32..0x20)
            .chain([0x7f])
            .chain(0x80..0xa0)
            .chain(0x202a..=0x202e)
            .chain(0x2066..=0x2069)
            .chain(0x200b..=0x200f)
        {
            let c = char::from_u32(c).unwrap();
            let shown = escape_text(&c.to_string()).into_owned();
            assert!(
                shown.starts_with('\\') && shown.chars().all(|c| c.is_ascii_graphic()),
                "{:x} shown as {shown:?}",
                c as u32
            );
        }
    }

    #[test]
    fn escaped_displays_like_escape_text() {
        assert_eq!(
            format!("user {}", Escaped("\x1b]0;pwned\x07")),
            "user \\x1b]0;pwned\\x07"
        );
    }
}
